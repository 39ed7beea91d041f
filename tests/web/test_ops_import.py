"""The running process's import (POST /internal/v1/import, pipeline.web.ops): a whole
file streamed as the body, imported by `pipeline.stages.importer` as it arrives, the
outcome answered as NDJSON; and its `hotline submit` (POST /internal/v1/submit); only
with the key of the run file."""

from __future__ import annotations

import json

from sqlalchemy import func, select

from pipeline.app.running import KEY_HEADER
from pipeline.core.runfile import IMPORT_PATH
from pipeline.store.models import Report
from tests.web.internal import KEY, internal_client


def _reports(runtime):
    with runtime.session_factory() as session:
        return session.execute(select(func.count()).select_from(Report)).scalar_one()


def _pieces(data: bytes, size: int):
    """The body as a stream of pieces (sent chunked, read as they come)."""
    for start in range(0, len(data), size):
        yield data[start:start + size]


def test_a_streamed_csv_is_imported_refused_lines_named_then_the_summary(sqlite_runtime):
    body = ("url,claimed_category\n" + "".join(f"http://h{i}.example/x,csam\n"
                                               for i in range(40))
            + "http://bad.example/,spam\n").encode()
    response = internal_client(sqlite_runtime).post(
        f"{IMPORT_PATH}?format=csv&name=partner.csv&source=partner",
        headers={KEY_HEADER: KEY}, content=_pieces(body, 37))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert lines[0]["line"] == 42 and lines[0]["error"].startswith("claimed_category:")
    assert lines[1]["imported"] == 40 and lines[1]["refused"] == 1
    assert lines[1]["submission"].startswith("S-")
    assert _reports(sqlite_runtime) == 40
    # Each batch settled in its own transaction (in-process broker), the first line
    # on its own: its new cases go to tracing as each batch commits.
    assert [stage for stage, _ in sqlite_runtime.enqueuer.sent] == ["trace"] * 6
    batches = [ids for _, ids in sqlite_runtime.enqueuer.sent]
    assert [len(b) for b in batches] == [1, 2, 4, 8, 16, 9]
    assert sum(len(b) for b in batches) == 40


def test_json_lines_meet_the_importer_s_guards(sqlite_runtime):
    body = (b'{"url": "http://a.example/"}\n{"url": 3}\n\xff\xfe\n'
            b'{"url": "http://x.example/\\u0000"}\n[1]\n')
    response = internal_client(sqlite_runtime).post(f"{IMPORT_PATH}?format=jsonl&name=r.jsonl",
                                            headers={KEY_HEADER: KEY}, content=body)
    assert response.status_code == 200
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert [line.get("line") for line in lines[:-1]] == [2, 3, 4, 5]
    assert "not valid UTF-8" in lines[1]["error"] and "NUL" in lines[2]["error"]
    assert lines[-1]["imported"] == 1 and lines[-1]["refused"] == 4


def test_a_file_larger_than_the_body_limit_is_taken_other_routes_still_limited(
        settings_factory):
    from pipeline.app.runtime import build_runtime
    from pipeline.core.clock import FrozenClock
    from pipeline.core.messaging import RecordingEnqueuer
    from pipeline.store.migrate import upgrade

    settings = settings_factory(web={"max_body_bytes": 1024})
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=FrozenClock())
    runtime.enqueuer = RecordingEnqueuer()
    try:
        body = ("url\n" + "".join(f"http://h{i}.example/a-longer-path/{i}\n"
                                  for i in range(300))).encode()
        assert len(body) > 8 * 1024
        client = internal_client(runtime)
        response = client.post(f"{IMPORT_PATH}?format=csv", headers={KEY_HEADER: KEY},
                               content=body)
        assert response.status_code == 200, response.text
        assert json.loads(response.text.splitlines()[-1])["imported"] == 300
        too_big = client.post("/api/v1/reports", content=body,
                              headers={"Content-Type": "application/json"})
        assert too_big.status_code == 413
    finally:
        runtime.close()


def test_without_the_key_nothing_is_read_nor_stored(sqlite_runtime):
    client = internal_client(sqlite_runtime)
    for headers in ({}, {KEY_HEADER: "a-guess"}):
        assert client.get(IMPORT_PATH, headers=headers).status_code == 403
        response = client.post(f"{IMPORT_PATH}?format=csv", headers=headers,
                               content=b"url\nhttp://a.example/\n")
        assert response.status_code == 403
    outside_run = internal_client(sqlite_runtime, run_key=None)
    assert outside_run.post(f"{IMPORT_PATH}?format=csv", headers={KEY_HEADER: KEY},
                            content=b"url\nhttp://a.example/\n").status_code == 404
    assert _reports(sqlite_runtime) == 0
    assert client.get(IMPORT_PATH, headers={KEY_HEADER: KEY}).json() == {
        "formats": ["csv", "jsonl"]}


def test_a_file_that_cannot_be_read_is_a_4xx_with_a_sentence(sqlite_runtime):
    client = internal_client(sqlite_runtime)
    header = client.post(f"{IMPORT_PATH}?format=csv&name=r.csv", headers={KEY_HEADER: KEY},
                         content=b"uri,x\nhttp://a.example/,1\n")
    assert header.status_code == 422
    assert header.json()["error"].startswith("r.csv: the CSV header must name url")
    unknown = client.post(f"{IMPORT_PATH}?format=xml", headers={KEY_HEADER: KEY},
                          content=b"<r/>")
    assert unknown.status_code == 400 and "csv or jsonl" in unknown.json()["error"]
    for body in (b"", b"\x00\x00\x00", b"url\n\xff\xfe\n"):
        answer = client.post(f"{IMPORT_PATH}?format=csv&name=r.csv",
                             headers={KEY_HEADER: KEY}, content=body)
        assert 200 <= answer.status_code < 500, (body, answer.text)
    assert _reports(sqlite_runtime) == 0


def test_a_submit_is_taken_in_as_the_command_would(sqlite_runtime):
    client = internal_client(sqlite_runtime)
    body = {"urls": ["http://a.example/", "http://b.example/"], "channel": "api",
            "claimed_category": "csam", "description": None, "language": "en_GB.UTF-8"}
    assert client.post("/internal/v1/submit", json=body).status_code == 403
    answer = client.post("/internal/v1/submit", json=body, headers={KEY_HEADER: KEY})
    assert answer.status_code == 200
    reports = answer.json()["reports"]
    assert [r["url"] for r in reports] == ["http://a.example/", "http://b.example/"]
    assert answer.json()["submission"].startswith("S-")
    assert _reports(sqlite_runtime) == 2
    refused = client.post("/internal/v1/submit", headers={KEY_HEADER: KEY},
                          json={**body, "claimed_category": "spam"})
    assert refused.status_code == 422
    assert refused.json()["problems"] == ["Choose “--category” from the options offered."]
    serbian = client.post("/internal/v1/submit", headers={KEY_HEADER: KEY},
                          json={**body, "claimed_category": "spam", "language": "sr_RS"})
    assert serbian.json()["problems"] != refused.json()["problems"]
    assert _reports(sqlite_runtime) == 2
