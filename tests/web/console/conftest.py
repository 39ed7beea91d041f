"""The console under test: the real app served by uvicorn on a loopback port, and
headless Chromium (Debian's `chromium` package) driven by Playwright.

The browser tests skip on a machine without /usr/bin/chromium, but fail when CI=true:
`make test` installs it there.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pipeline.app import auth, users
from pipeline.app.runtime import Runtime
from pipeline.core.messaging import ROUTE
from pipeline.web.app import create_app
from tests.conftest import CI
from tests.factories import make_case, make_report

CHROMIUM = os.environ.get("HOTLINE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
ROOT = Path(__file__).resolve().parents[3]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
# axe-core, installed from npm by `make test` (test-only; HOTLINE_TEST_AXE names another copy).
AXE = Path(os.environ.get("HOTLINE_TEST_AXE", str(
    ROOT / ".venv" / "axe" / "node_modules" / "axe-core" / "axe.min.js")))
PASSWORD = "correct horse battery staple"


def logged_in_client(runtime: Runtime, name: str) -> Any:
    """A test client of the console (English pages), logged in as `name` through the
    login form (its CSRF token read from the page)."""
    from fastapi.testclient import TestClient

    client = TestClient(create_app(runtime), follow_redirects=False,
                        headers={"Accept-Language": "en"})
    form = client.get("/console/login")
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, form.text[:500]
    assert client.post("/console/login", data={"name": name, "password": PASSWORD,
                                                "csrf": found.group(1)}).status_code == 303
    return client


def add_person(runtime: Runtime, name: str, role: str, *, password: str = PASSWORD,
               must_change: bool = False) -> None:
    """A user who can log in with `password`."""
    with runtime.session_factory.begin() as session:
        user, _ = users.add_user(session, name, role, at=runtime.clock.now())
        auth.set_password(user, password, must_change=must_change)


class LiveServer:
    """uvicorn serving the app in a background thread on a free loopback port."""

    def __init__(self, runtime: Runtime):
        import uvicorn

        self.runtime = runtime
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(create_app(runtime), log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run,
                                       kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the console's web server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


@pytest.fixture
def live_server(sqlite_runtime: Runtime) -> Iterator[LiveServer]:
    server = LiveServer(sqlite_runtime).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if CI:
            pytest.fail(f"Chromium is required when CI=true but {CHROMIUM} is missing "
                        "(make test installs Debian's chromium package)")
        pytest.skip(f"Chromium not installed at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if CI:
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1280,
                                                                     "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # Script errors only: a refused form (422) or a denied page (403) is logged by
    # Chromium as a failed resource, and those are expected.
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" and (
        not msg.text.startswith("Failed to load resource")) else None)
    page.js_errors = errors  # type: ignore[attr-defined]
    yield page
    context.close()


def screenshot(page: Any, name: str) -> Path:
    """Save a full-page screenshot as a test artefact (artifacts/screenshots/)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def log_in(page: Any, name: str, password: str = PASSWORD) -> None:
    page.goto("/console/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")


@pytest.fixture
def sqlite_runtime(settings_factory: Any) -> Iterator[Runtime]:
    """The shared SQLite runtime, with the shipped rules found from any directory."""
    from pipeline.app.runtime import build_runtime
    from pipeline.core.clock import FrozenClock
    from pipeline.core.messaging import RecordingEnqueuer
    from pipeline.store.migrate import upgrade

    settings = settings_factory(routing={"rules_dir": str(ROOT / "rules")},
                                stats={"suppress_below": 0})
    upgrade(settings.database.url)
    runtime = build_runtime(settings, clock=FrozenClock())
    runtime.enqueuer = RecordingEnqueuer()
    yield runtime
    runtime.close()


def queued_case(runtime: Runtime, url: str, *, country: str = "RS", urgent: bool = False,
                priority: int = 100, claimed: str = "csam", description: str | None = None,
                contact: str | None = None) -> str:
    """A traced case waiting in the queue, with one report; its reference."""
    now = runtime.clock.now()
    host = url.split("/")[2]
    with runtime.session_factory.begin() as session:
        case = make_case(
            session, at=now, url=url, state="awaiting_assessment", host=host,
            registered_domain=".".join(host.split(".")[-2:]), url_kind="domain",
            claimed_category=claimed, urgent=urgent, priority=priority,
            hosting_country=country, hosting_asn=64500, hosting_org="Example Hosting d.o.o.",
            hosting_abuse_email="abuse@hosting.example", trace_outcome="traced",
            traced_at=now, awaiting_assessment_at=now, registrar="Example Registrar",
            registrar_abuse_email="abuse@registrar.example")
        make_report(session, at=now, url=url, state="new_case", case_id=case.id,
                    canonical_url=url, claimed_category=claimed, urgent=urgent,
                    description=description, reporter_contact=contact)
        return case.ref


def route_assessed(runtime: Runtime) -> None:
    """Run the route stage on what the console sent to it (the worker's job)."""
    from pipeline.stages.routing import route_cases

    ids = runtime.enqueuer.ids(ROUTE)
    assert ids, "the assessment sent nothing on to routing"
    with runtime.session_factory.begin() as session:
        route_cases(session, ids, clock=runtime.clock, settings=runtime.settings)


def removed_cases(runtime: Runtime) -> None:
    """Six illegal cases removed after known times, in three hosting countries."""
    from datetime import timedelta

    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        for number, (country, days) in enumerate(
                [("RS", 0.5), ("RS", 2), ("DE", 1.5), ("DE", 4), ("NL", 6), ("NL", 9)]):
            received = now - timedelta(days=12, hours=number)
            assessed = received + timedelta(hours=3)
            make_case(session, at=received, url=f"http://gone{number}.example.net/",
                      state="removed", open_key=None, hosting_country=country,
                      legality="illegal_international", category="csam",
                      assessed_at=assessed, removed_at=received + timedelta(days=days),
                      closed_at=None)
