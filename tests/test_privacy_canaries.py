"""Reporter privacy, end to end: reports carry canary identities (a contact and a
description nobody else could write), the pipeline runs as far as it can without the
internet, and then every place the system shows, sends or writes something is
searched for the canaries:

- every notice (subject, body, payload, address), other than to the police when
  `routing.police_notices_include_reporter` says so;
- every file the system wrote under its data folder (outbox, exports), other than
  a police notice's;
- the statistics export and the evidence bundle (police only, when configured);
- every GET endpoint of the web app (API and console, found by walking the routes)
  asked by every role and outside party, with every path parameter filled with
  every known reference; only roles with the right see the contact;
- every log line written meanwhile, at DEBUG;
- every table at rest (contacts are encrypted; audit data never holds them).

New stages, endpoints, exports and tables are picked up without changing this test.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from pipeline.core.config import LoggingSection
from pipeline.core.logs import configure
from pipeline.store.db import Base
from pipeline.store.lifecycle import transition
from pipeline.store.models import ApiToken, Case, Notice, Report, User
from pipeline.store.states import CaseState
from pipeline.web.app import create_app

TAG = uuid.uuid4().hex[:10]
CONTACTS = [f"canary.{TAG}.{i}@reporter.example" for i in range(2)]
DESCRIPTIONS = [f"Canary words {TAG}-{i}: only this reporter wrote this sentence." for i in
                range(2)]
URLS = ["http://domestic.example/canary/a.html", "http://abroad.example/canary/b.html"]
HOSTING = [("RS", "abuse@domestic.example"), ("NL", "abuse@abroad.example")]
STAFF_ROLES = ("analyst", "supervisor", "admin", "auditor")
OUTSIDE_SCOPES = ("partner", "police", "provider")
PASSWORD = "canary horse battery staple"


def _found(text_: str, needles: list[str]) -> list[str]:
    return [n for n in needles if n in text_]


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure(LoggingSection(level="DEBUG", format="json"), stream=stream)
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def _run_pipeline(runtime: Any, client: TestClient) -> list[int]:
    """Intake through the API, then every stage that needs no internet; tracing and
    assessment are done as a tracer and an analyst would leave them."""
    from pipeline.stages.queueing import queue_for_assessment
    from workers import context
    from workers.actors import ACTORS

    response = client.post("/api/v1/reports", json={"reports": [
        {"url": url, "channel": "web", "claimed_category": "csam", "description": words,
         "reporter_contact": contact}
        for url, words, contact in zip(URLS, DESCRIPTIONS, CONTACTS, strict=True)]})
    assert response.status_code == 201, response.text
    assert not _found(response.text, CONTACTS)
    context.set_runtime(runtime)
    try:
        ACTORS["normalise"](runtime.enqueuer.ids("normalise"))
        ACTORS["dedupe"](runtime.enqueuer.ids("dedupe"))
        with runtime.session_factory.begin() as session:
            cases = session.execute(select(Case).order_by(Case.id)).scalars().all()
            assert len(cases) == 2
            now = runtime.clock.now()
            for case, (country, abuse) in zip(cases, HOSTING, strict=True):
                case.hosting_country, case.hosting_abuse_email = country, abuse
                case.hosting_org, case.hosting_asn = "Example Hosting", 64500
                transition(session, case, CaseState.TRACED, at=now)
            queue_for_assessment(session, cases, at=now)
            for case in cases:
                case.legality, case.category = "illegal_international", "csam"
                transition(session, case, CaseState.ASSESSED, at=now, actor="user:ana")
            case_ids = [c.id for c in cases]
        for stage, ids in (("route", case_ids), ("dispatch", None)):
            if stage not in ACTORS:
                continue
            ids = ids if ids is not None else runtime.enqueuer.ids(stage)
            try:
                ACTORS[stage](ids)
            except Exception:  # noqa: S110 - a delivery failure still leaves its notice
                logging.getLogger(__name__).info("Stage %s raised; checking what it left.",
                                                 stage)
    finally:
        context.set_runtime(None)
    return case_ids


def _principals(runtime: Any) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(role, headers, cookies) for nobody, every staff role (console session and API
    token) and every outside party (API token)."""
    from pipeline.app import auth, users
    found: list[tuple[str, dict[str, str], dict[str, str]]] = [("anonymous", {}, {})]
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        for role in STAFF_ROLES:
            user, _ = users.add_user(session, f"{role}-{TAG}", role, at=now)
            auth.set_password(user, PASSWORD, must_change=False)
            token, _ = auth.issue_token(session, scope="analyst", label=role, at=now,
                                        user=user)
            found.append((role, {"Authorization": f"Bearer {token}"}, {}))
        for scope in OUTSIDE_SCOPES:
            token, _ = auth.issue_token(session, scope=scope, label=f"{scope} {TAG}", at=now)
            found.append((scope, {"Authorization": f"Bearer {token}"}, {}))
    try:
        from pipeline.web import security
    except ImportError:
        return found
    for role in STAFF_ROLES:
        with runtime.session_factory.begin() as session:
            result = security.log_in(session, f"{role}-{TAG}", PASSWORD, "127.0.0.1",
                                     settings=runtime.settings.console, now=now)
        if result.token:
            found.append((role, {}, {security.SESSION_COOKIE: result.token}))
    return found


def _get_paths(app: Any) -> set[str]:
    """Every GET path of the app: from the OpenAPI schema and from walking the routes
    (the console's pages are not in the schema)."""
    paths = {p for p, ops in app.openapi().get("paths", {}).items() if "get" in ops}

    def walk(routes: Any) -> None:
        for route in routes:
            route = route[0] if isinstance(route, tuple) else route
            path, methods = getattr(route, "path", None), getattr(route, "methods", None)
            if path and methods and "GET" in methods:
                paths.add(path)
            for attr in ("routes", "effective_candidates"):
                sub = getattr(route, attr, None)
                if callable(sub):
                    sub = sub()
                if sub:
                    walk(sub)

    walk(app.routes)
    return {p for p in paths if not p.startswith(("/docs", "/redoc", "/openapi"))}


def _queries(schema: dict[str, Any], path: str, today: Any) -> list[str]:
    """Query strings worth asking: a period around the test's data under the usual
    names, plus one variant per value of every enumerated parameter (json, csv...)."""
    period = {"from": today - timedelta(days=30), "to": today + timedelta(days=1)}
    base = (f"from={period['from']}&to={period['to']}&start={period['from']}"
            f"&end={period['to']}&since={period['from']}&until={period['to']}")
    operation = schema.get("paths", {}).get(path, {}).get("get", {})
    query = [p for p in operation.get("parameters", []) if p.get("in") == "query"]
    if "{" in path and not query:
        return [""]  # a page about one item: its reference is what matters
    variants = ["", base]
    for parameter in query:
        for value in parameter.get("schema", {}).get("enum", []):
            variants.append(f"{base}&{parameter['name']}={value}")
    return variants


def _fill(path: str, values: dict[str, list[str]]) -> list[str]:
    names = re.findall(r"{([^}:]+)(?::[^}]*)?}", path)
    if not names:
        return [path]
    options = []
    for name in names:
        lowered = name.lower()
        if "token" in lowered:
            options.append(values["token"])
        elif "prefix" in lowered:
            options.append(values["prefix"])
        elif "name" in lowered or "user" in lowered:
            options.append(values["user"])
        else:
            options.append(values["item"])
    filled = []
    for combo in itertools.islice(itertools.product(*options), 200):
        url = path
        for name, value in zip(names, combo, strict=True):
            url = re.sub(r"{" + re.escape(name) + r"(?::[^}]*)?}", value, url, count=1)
        filled.append(url)
    return filled


def _known_values(runtime: Any) -> dict[str, list[str]]:
    with runtime.session_factory() as session:
        cases = session.execute(select(Case.id, Case.ref)).all()
        reports = session.execute(select(Report.id, Report.ref)).all()
        tokens = list(session.execute(select(Notice.token)).scalars())
        users = list(session.execute(select(User.name)).scalars())
        prefixes = list(session.execute(select(ApiToken.prefix)).scalars())
    return {
        "item": [str(v) for row in (*cases, *reports) for v in row],
        "token": tokens or ["none"], "user": users or ["none"],
        "prefix": prefixes or ["none"],
    }


def _police_identifies(runtime: Any) -> bool:
    return bool(getattr(getattr(runtime.settings, "routing", None),
                        "police_notices_include_reporter", False))


@pytest.mark.parametrize("police_get_contact", [False, True],
                         ids=["police-without-contact", "police-with-contact"])
def test_canary_identities_appear_only_where_a_role_has_the_right(
        runtime, log_output, police_get_contact):
    if hasattr(runtime.settings, "routing"):
        runtime.settings.routing.police_notices_include_reporter = police_get_contact
    app = create_app(runtime)
    # A page that fails (500) shows nothing; other tests own that failure.
    client = TestClient(app, raise_server_exceptions=False)
    case_ids = _run_pipeline(runtime, client)
    police_ok = _police_identifies(runtime)
    leaks: list[str] = []

    # 1. Notices: only a police notice may carry the contact, and only when configured.
    police_tokens: list[str] = []
    with runtime.session_factory() as session:
        notices = session.execute(select(Notice)).scalars().all()
        for notice in notices:
            shown = " ".join(str(v) for v in (notice.subject, notice.body, notice.address,
                                              notice.last_error))
            shown += json.dumps(notice.payload or {}, ensure_ascii=False)
            allowed = notice.destination_kind == "police" and police_ok
            if allowed:
                police_tokens.append(notice.token)
            if not allowed and _found(shown, CONTACTS):
                leaks.append(f"notice {notice.id} to {notice.destination} shows a contact")
            if notice.destination_kind != "police" and _found(shown, DESCRIPTIONS):
                leaks.append(f"notice {notice.id} to {notice.destination} shows a description")
    from workers.actors import ACTORS

    if "route" in ACTORS:
        assert notices, "routing made no notice: nothing was checked"
    if police_tokens:  # the search sees a contact where one is allowed to be
        police_text = " ".join(n.body or "" for n in notices if n.token in police_tokens)
        assert _found(police_text, CONTACTS)

    # 2. Files written under the data folder (outbox, exports, evidence).
    data = Path(runtime.settings.app.data_dir)
    for path in data.rglob("*") if data.exists() else []:
        if not path.is_file() or path.suffix in (".db", ".db-wal", ".db-shm") or (
                "secrets" in path.parts):
            continue
        content = path.read_bytes().decode("utf-8", "replace")
        if any(token in content or token in path.name for token in police_tokens):
            continue  # a police notice, allowed to identify the reporter
        if _found(content, CONTACTS + DESCRIPTIONS):
            leaks.append(f"file {path.relative_to(data)} shows a canary")

    # 3. Exports: statistics, and the evidence bundle (for the police).
    with runtime.session_factory() as session:
        try:
            from pipeline.stages import stats
        except ImportError:
            stats = None  # type: ignore[assignment]
        if stats is not None and hasattr(stats, "export_stats"):
            today = runtime.clock.now().date()
            export = stats.export_stats(session, today - timedelta(days=1),
                                        today + timedelta(days=1),
                                        settings=runtime.settings, now=runtime.clock.now())
            dumped = json.dumps(export.model_dump(mode="json") if hasattr(
                export, "model_dump") else str(export), ensure_ascii=False, default=str)
            if hasattr(stats, "export_rows"):
                dumped += json.dumps(stats.export_rows(export), default=str)
            if _found(dumped, CONTACTS + DESCRIPTIONS):
                leaks.append("the statistics export shows a canary")
        from pipeline.stages.evidence import build_bundle

        for case in session.execute(select(Case).where(Case.id.in_(case_ids))).scalars():
            bundle = build_bundle(session, case.ref, settings=runtime.settings,
                                  now=runtime.clock.now())
            everything = b"".join(bundle.files.values()).decode()
            if not police_ok and _found(everything, CONTACTS):
                leaks.append(f"the evidence bundle of {case.ref} shows a contact")

    # 4. Every GET endpoint, for every role and outside party.
    contact_roles = set(getattr(getattr(runtime.settings, "assessment", None),
                                "reporter_contact_roles", []))
    values = _known_values(runtime)
    paths = _get_paths(app)
    schema = app.openapi()
    today = runtime.clock.now().date()
    assert "/api/v1/reports/{ref}" in paths and "/metrics" in paths
    asked = 0
    seen_with_right: list[str] = []
    for role, headers, cookies in _principals(runtime):
        values = _known_values(runtime)
        may_see_contact = role in contact_roles or (role == "police" and police_ok)
        may_see_words = role in STAFF_ROLES
        for path in sorted(paths):
            for url in (u + ("?" + q if q else "") for u in _fill(path, values)
                        for q in _queries(schema, path, today)):
                client.cookies.clear()
                for name, value in cookies.items():
                    client.cookies.set(name, value)
                response = client.get(url, headers=headers, follow_redirects=False)
                asked += 1
                body = response.text
                if not may_see_contact and _found(body, CONTACTS):
                    leaks.append(f"GET {url} as {role} shows a contact")
                elif may_see_contact and _found(body, CONTACTS):
                    seen_with_right.append(f"{role} {url}")
                if not may_see_words and _found(body, DESCRIPTIONS):
                    leaks.append(f"GET {url} as {role} shows a description")
    assert asked > 50
    if contact_roles:  # the roles with the right were really let in and shown it
        assert seen_with_right, "no role with the right saw a contact: were they let in?"

    # 5. Every table at rest: contacts only encrypted; descriptions only on the report;
    # nothing personal in audit data.
    with runtime.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"')).mappings():
                for column, value in row.items():
                    if value is None:
                        continue
                    shown = value if isinstance(value, str) else json.dumps(
                        value, default=str, ensure_ascii=False)
                    where = f"{table.name}.{column}"
                    if table.name == "notices" and row.get("token") in police_tokens:
                        continue
                    if _found(shown, CONTACTS):
                        leaks.append(f"{where} holds a contact in clear")
                    if _found(shown, DESCRIPTIONS) and where != "reports.description" and (
                            table.name != "notices" or row.get("destination_kind") != "police"):
                        leaks.append(f"{where} holds a description")

    # 6. Every log line written meanwhile.
    output = log_output.getvalue()
    assert output, "nothing was logged: the log capture is not working"
    if _found(output, CONTACTS + DESCRIPTIONS):
        leaks.append("a log line shows a canary")

    assert leaks == []


def test_the_canary_search_would_see_a_leak(runtime, log_output):
    """The checks above can fail: a contact put into a notice is found."""
    with runtime.session_factory.begin() as session:
        from tests.ops_helpers import add_case

        case = add_case(session, at=runtime.clock.now(), contact=CONTACTS[0],
                        until=CaseState.ROUTED)
        notice = session.execute(select(Notice).where(Notice.case_id == case.id)).scalar_one()
        notice.body = f"Reported by {CONTACTS[0]}"
    with runtime.engine.connect() as conn:
        bodies = [r[0] for r in conn.execute(text("SELECT body FROM notices"))]
    assert _found(" ".join(bodies), CONTACTS) == [CONTACTS[0]]
    logging.getLogger("pipeline.careless").info("Body: %s", bodies[0])
    assert not _found(log_output.getvalue(), CONTACTS)
