"""Users and API tokens over the API (pipeline.web.users), for admins only."""

from __future__ import annotations

from tests.web.test_queue import client, tokens  # noqa: F401 - the fixtures


def test_an_admin_adds_a_user_and_issues_a_token_that_works(client, runtime, tokens):  # noqa: F811
    added = client.post("/api/v1/users", headers=tokens["root"],
                        json={"name": "cy", "role": "analyst"})
    assert added.status_code == 201 and added.json()["one_time_password"]
    issued = client.post("/api/v1/tokens", headers=tokens["root"],
                         json={"scope": "analyst", "label": "cy", "user": "cy"}).json()
    header = {"Authorization": f"Bearer {issued['token']}"}
    assert client.get("/api/v1/queue", headers=header).status_code == 200
    revoked = client.delete(f"/api/v1/tokens/{issued['prefix']}", headers=tokens["root"])
    assert revoked.json() == {"revoked": 1}
    assert client.get("/api/v1/queue", headers=header).status_code == 401
