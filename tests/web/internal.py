"""A test client of the web app as `hotline run` or `hotline serve` runs it, holding
the key of its run file (the internal endpoints answer only to that key)."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from pipeline.web.app import create_app

KEY = "the-key-of-the-run-file"


def internal_client(runtime: Any, run_key: str | None = KEY) -> TestClient:
    """The app of `runtime`, its run key `run_key` (None: started outside `hotline
    run`/`serve`, as `hotline serve` with the in-process broker)."""
    app = create_app(runtime)
    if run_key is not None:
        app.state.run_key = run_key
    return TestClient(app, follow_redirects=False)
