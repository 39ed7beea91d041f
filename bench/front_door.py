"""Benchmark of the front door: the mailbox's parser and the public form.

`run(tmp, n)` returns:
- `mail_messages_parsed_per_s`: `adapters.mail.parse.read_message` over the test
  corpus (tests/data/mail: Outlook, Gmail, Apple Mail, forwarded, HTML-only, Cyrillic,
  defanged) read round-robin, n messages,
- `form_submissions_per_s`: whole form submissions through the web app in process
  (GET /report for the token, then POST /report with two URLs, stored through intake
  on a temporary SQLite database), min(n, 500) of them, rate limits raised out of
  the way.
Neither figure is asserted anywhere; they are for comparing runs on one machine.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "data" / "mail"


def parse_rate(n: int) -> float:
    from pipeline.adapters.mail.parse import read_message

    messages = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    start = time.perf_counter()
    for index in range(n):
        read_message(messages[index % len(messages)])
    return n / (time.perf_counter() - start)


def form_rate(tmp: Path, n: int) -> float:
    from fastapi.testclient import TestClient

    from pipeline.app.runtime import build_runtime
    from pipeline.core.config import Settings
    from pipeline.core.messaging import RecordingEnqueuer
    from pipeline.store.migrate import upgrade
    from pipeline.web.app import create_app

    url = f"sqlite:///{tmp}/front_door.db"
    settings = Settings(app={"data_dir": str(tmp)}, database={"url": url},
                        public={"address_limit": 10 * n + 10, "global_limit": 10 * n + 10})
    upgrade(url)
    runtime = build_runtime(settings)
    runtime.enqueuer = RecordingEnqueuer()
    token_re = re.compile(r'name="csrf" value="([^"]+)"')
    try:
        with TestClient(create_app(runtime)) as client:
            start = time.perf_counter()
            for index in range(n):
                token = token_re.search(client.get("/report?lang=en").text)
                assert token is not None
                response = client.post("/report", data={
                    "csrf": token.group(1), "lang": "en", "category": "csam",
                    "urls": f"http://bench{index}.example/a\nhttp://bench{index}.example/b"})
                assert response.status_code == 201, response.text[:200]
            return n / (time.perf_counter() - start)
    finally:
        runtime.close()


def run(tmp: Path, n: int) -> dict[str, Any]:
    return {"mail_messages_parsed_per_s": round(parse_rate(min(n, 20_000)), 1),
            "form_submissions_per_s": round(form_rate(Path(tmp), min(n, 500)), 1)}


if __name__ == "__main__":  # a quick look: python -m bench.front_door
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        print(json.dumps(run(Path(folder), 200)))
