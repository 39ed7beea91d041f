"""The web app's answers to the project's errors (pipeline/web/app.py)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from pipeline.core.errors import IllegalTransition
from pipeline.store.states import CaseState
from pipeline.web.app import create_app


def test_a_state_change_another_made_first_is_a_conflict_not_a_server_error(sqlite_runtime):
    app = create_app(sqlite_runtime)

    @app.post("/api/v1/test-illegal")
    def illegal() -> None:
        raise IllegalTransition("case", "C-TEST", CaseState.CLOSED, CaseState.ROUTED)

    with TestClient(app) as client:
        answer = client.post("/api/v1/test-illegal")
    assert answer.status_code == 409
    assert answer.json() == {
        "error": "case C-TEST cannot go from closed to routed: it changed meanwhile; "
                 "look at it again", "state": "closed"}
