"""axe-core in both languages on the views the first pass did not reach: a second
assessment (four eyes), a dispute seen by the supervisor, the helpline's pages, the
mailbox, and a refused form with its error summary. Screenshots under
artifacts/screenshots/."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.app.mailbox import deliverer
from pipeline.store.models import Case
from tests.web.console.conftest import add_person, log_in, queued_case, screenshot
from tests.web.console.test_accessibility import axe, violations  # noqa: F401
from tests.web.console.test_casework import Person

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"


def _assess(person: Person, ref: str, kind: str, **decision: str) -> None:
    claimed = person.post("/console/claim", kind=kind)
    assert claimed.headers["location"] == f"/console/cases/{ref}?done=claimed"
    if decision:
        assert person.post(f"/console/cases/{ref}/assessment", **decision).status_code == 303


def _data(runtime: Any) -> dict[str, str]:
    """A case ben holds for its second assessment, a disputed one, a helpline case and
    mail waiting for a person."""
    for name, role in (("ana", "analyst"), ("ben", "analyst"), ("sue", "supervisor"),
                       ("cara", "counsellor")):
        add_person(runtime, name, role)
    ana, ben = Person(runtime, "ana"), Person(runtime, "ben")
    national = {"legality": "illegal_national", "category": "hate_speech",
                "notes": "slurs against a group"}
    disputed = queued_case(runtime, "http://hate.example.rs/1", claimed="hate_speech",
                           priority=200)
    _assess(ana, disputed, "first", **national)
    _assess(ben, disputed, "second", legality="not_illegal", notes="satire")
    second = queued_case(runtime, "http://hate.example.rs/2", claimed="hate_speech")
    _assess(ana, second, "first", **national)
    _assess(ben, second, "second")  # held by ben, not decided yet
    with runtime.session_factory() as session:
        states = dict(session.execute(select(Case.ref, Case.state).where(
            Case.ref.in_([disputed, second]))).all())
    assert states == {disputed: "awaiting_supervisor", second: "awaiting_second_assessment"}
    cara = Person(runtime, "cara")
    formed = cara.post("/console/helpline/contacts", caller_type="parent", channel="phone",
                       topic="sextortion", minutes="5", language="sr",
                       summary="Kći ucenjivana", case_type="sextortion",
                       child_age_group="14_15", urls="https://example.net/profile/x")
    helpline_ref = re.search(r"(H-[A-Z0-9-]+)", formed.headers["location"]).group(1)
    deliver = deliverer(runtime, "lmtp")
    deliver((CORPUS / "21-no-url-question.eml").read_bytes())
    deliver((CORPUS / "20-attachment-only-no-url.eml").read_bytes())
    return {"disputed": disputed, "second": second, "helpline": helpline_ref}


@pytest.mark.parametrize("language", ["sr-Latn", "en"])
def test_second_assessment_dispute_helpline_and_mailbox_have_no_axe_violation(
        browser, live_server, axe, language):  # noqa: F811
    refs = _data(live_server.runtime)
    visits = {
        "ben": [f"/console/cases/{refs['second']}"],
        "sue": [f"/console/cases/{refs['disputed']}", "/console/review", "/console/mail",
                "/console/helpline", f"/console/helpline/cases/{refs['helpline']}",
                "/console/search?country=Serbia", "/console/notices?state=nonsense"],
        "cara": ["/console/helpline", f"/console/helpline/cases/{refs['helpline']}"],
    }
    problems: dict[str, Any] = {}
    for who, paths in visits.items():
        context = browser.new_context(base_url=live_server.url, bypass_csp=True,
                                      locale=language, extra_http_headers={
                                          "Accept-Language": language},
                                      viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        log_in(page, who)
        page.wait_for_load_state()
        for path in paths:
            page.goto(path)
            assert page.get_attribute("html", "lang") == language
            if path.endswith(refs["second"]):
                assert page.locator("#assessment-form").count() == 1
            if path.endswith(refs["disputed"]):
                assert page.locator("#dispute .assessment-card").count() == 2
            found = violations(page, axe)
            if found:
                problems[f"{language} {who} {path}"] = found
            name = re.sub(r"[/?=]+", "-", path.strip("/"))
            screenshot(page, f"a11y-{language}-{who}-{name}")
        context.close()
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)
