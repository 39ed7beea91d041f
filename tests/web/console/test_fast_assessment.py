"""Fast assessment in Chromium: a complete CSAM decision in at most four keystrokes
from the case page, a key for every field, same-site decisions and bulk actions."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.store.assessment_models import CaseLease
from pipeline.store.models import Case
from tests.conftest import CI
from tests.web.console.conftest import add_person, log_in, queued_case, screenshot

try:
    from playwright.sync_api import expect  # noqa: F401
except ImportError:
    if CI:
        raise
    pytest.skip("playwright is not installed", allow_module_level=True)


def _state(runtime, ref):
    with runtime.session_factory() as session:
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        return case.state, case.legality, case.category


def test_a_complete_csam_decision_takes_at_most_four_keystrokes(page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    first = queued_case(runtime, "http://pics.example.rs/1.html", priority=200)
    following = queued_case(runtime, "http://other.example.com/2.html", priority=100)
    log_in(page, "ana")
    page.wait_for_url("**/console/")
    page.click("#claim-next")
    page.wait_for_url(f"**/console/cases/{first}?done=claimed")
    screenshot(page, "fast-01-case")

    keystrokes = 0
    for key in ("1", "Enter"):  # the preset, then "save and next" (focused by the preset)
        page.keyboard.press(key)
        keystrokes += 1
    page.wait_for_url(f"**/console/cases/{following}?done=assessed-next")
    assert keystrokes <= 4
    state, legality, category = _state(runtime, first)
    assert (state, legality, category) == ("assessed", "illegal_international", "csam")
    # The next case is held for the analyst, with the form ready.
    assert page.locator("#assessment-form").count() == 1
    assert "This is the next case" in page.inner_text(".flash")
    assert page.js_errors == []


def test_every_field_has_a_key(page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    queued_case(runtime, "http://pics.example.rs/1.html")
    log_in(page, "ana")
    page.wait_for_url("**/console/")
    page.click("#claim-next")
    page.wait_for_url("**/console/cases/**")
    for key, field in [("l", "legality"), ("c", "category"), ("a", "age_group"),
                       ("g", "gender"), ("s", "site_type"), ("t", "content_type"),
                       ("m", "commercial"), ("n", "notes")]:
        page.locator("h1").click()
        page.keyboard.press(key)
        assert page.evaluate("document.activeElement.id") == f"f-{field}", key
        assert page.get_attribute(f"#f-{field}", "aria-keyshortcuts") == key


def test_one_decision_covers_the_chosen_cases_of_a_site(page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    refs = [queued_case(runtime, f"http://pics.example.rs/{n}.html", priority=300 - n)
            for n in range(3)]
    log_in(page, "ana")
    page.wait_for_url("**/console/")
    page.click("#claim-next")
    page.wait_for_url(f"**/console/cases/{refs[0]}?done=claimed")
    assert page.locator("#site-open tbody tr").count() == 2
    page.click("#claim-site")
    page.wait_for_url(f"**/console/cases/{refs[0]}?done=site-claimed")
    assert page.locator("#same-site input[name=also]").count() == 2
    page.uncheck(f"#same-site input[value='{refs[2]}']")
    screenshot(page, "fast-02-same-site")
    page.locator("h1").click()
    page.keyboard.press("1")
    page.click("#save-assessment")
    page.wait_for_url(f"**/console/cases/{refs[0]}?done=assessed")
    assert _state(runtime, refs[0])[0] == "assessed"
    assert _state(runtime, refs[1])[0] == "assessed"
    assert _state(runtime, refs[2])[0] == "in_assessment"


def test_bulk_claim_by_site_and_bulk_release_on_the_queue(page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    site = [queued_case(runtime, f"http://pics.example.rs/{n}.html") for n in range(3)]
    queued_case(runtime, "http://elsewhere.example.com/x")
    log_in(page, "ana")
    page.wait_for_url("**/console/")
    page.locator("#queue tbody tr", has_text=site[0]).locator("button").click()
    page.wait_for_url("**/console/?done=site-claimed")
    with runtime.session_factory() as session:
        held = set(session.execute(select(Case.ref).join(
            CaseLease, CaseLease.case_id == Case.id)).scalars())
    assert held == set(site)
    assert page.locator("#mine tbody tr").count() == 3
    page.check(f"#pick-{site[0]}")
    page.check(f"#pick-{site[1]}")
    page.click("#release-chosen")
    page.wait_for_url("**/console/?done=released")
    assert page.locator("#mine tbody tr").count() == 1
    assert _state(runtime, site[0])[0] == "awaiting_assessment"
    assert _state(runtime, site[2])[0] == "in_assessment"
