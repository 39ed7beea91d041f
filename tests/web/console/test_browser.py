"""The console in a real browser (headless Chromium): the analysts' day end to end.

Each test starts the app on a loopback port against a fresh SQLite database, drives it
through Playwright, and saves screenshots of the pages it passes through under
artifacts/screenshots/.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.store.models import Case, Notice, Report
from tests.conftest import CI
from tests.factories import make_case
from tests.web.console.conftest import (
    add_person,
    log_in,
    queued_case,
    removed_cases,
    route_assessed,
    screenshot,
)

try:
    from playwright.sync_api import expect
except ImportError:  # a laptop without the dev dependencies
    if CI:
        raise
    pytest.skip("playwright is not installed (pip install -e '.[dev]')",
                allow_module_level=True)


def test_an_analyst_logs_in_claims_assesses_and_sees_the_notice_planned(
        page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    older = queued_case(runtime, "http://pics.example.rs/gallery/1.html",
                        description="seen on a forum", contact="reporter@example.org")
    runtime.clock.advance(minutes=5)
    urgent = queued_case(runtime, "https://files.example.com/a.zip", country="DE",
                         urgent=True, priority=1100)

    page.goto("/console/")
    assert page.url.endswith("/console/login?next=/console/")
    screenshot(page, "01-login")
    log_in(page, "ana")
    page.wait_for_url("**/console/")
    assert page.locator("#queue tbody tr").count() == 2
    # Priority first: the urgent case leads although it came later.
    assert page.locator("#queue tbody tr").first.inner_text().startswith("1100")
    assert "2" in page.locator("#counts .count").first.inner_text()
    screenshot(page, "02-queue")

    page.click("#claim-next")
    page.wait_for_url(f"**/console/cases/{urgent}?done=claimed")
    page.click("#release")
    page.wait_for_url("**/console/?done=released")

    # Claim again: the urgent one comes first again; put it back, take the older.
    page.click("#claim-next")
    page.wait_for_url(f"**/console/cases/{urgent}?done=claimed")
    page.click("#release")
    page.goto(f"/console/cases/{older}")
    assert page.locator("#assessment-form").count() == 0  # not claimed: no form
    with runtime.session_factory.begin() as session:
        session.execute(select(Case).where(Case.ref == urgent)).scalar_one().priority = 0
    page.goto("/console/")
    page.click("#claim-next")
    page.wait_for_url(f"**/console/cases/{older}?done=claimed")

    # The URL is shown defanged and is no link; copying it is a deliberate act.
    assert page.inner_text("#defanged-url") == "hxxp[://]pics[.]example[.]rs/gallery/1.html"
    assert page.locator("a[href*='example.rs']").count() == 0
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy-url")
    expect(page.locator("#copy-status")).to_contain_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == (
        "http://pics.example.rs/gallery/1.html")
    # The reporter's contact is not shown to an analyst, only that one was given.
    assert "reporter@example.org" not in page.content()
    assert "given (not shown to your role)" in page.inner_text("#reporter")
    assert "AS64500" in page.inner_text("#trace")
    screenshot(page, "03-case-claimed")

    # Keyboard shortcut "1": CSAM under the international baseline, details filled in.
    page.locator("body").click()
    page.keyboard.press("1")
    assert page.input_value("#f-legality") == "illegal_international"
    assert page.input_value("#f-category") == "csam"
    assert page.input_value("#f-age_group") == "pre_pubescent"
    # Saving without the ICCAM details is refused, naming what is missing in a sentence
    # linked to the field, which is marked invalid.
    page.select_option("#f-age_group", "")
    page.click("#save-assessment")
    assert "Choose an age group: it is required for child sexual abuse material." in (
        page.inner_text("#problems"))
    assert page.get_attribute("#f-age_group", "aria-invalid") == "true"
    assert page.get_attribute("#problems a", "href") == "#f-age_group"
    assert page.input_value("#f-legality") == "illegal_international"
    page.select_option("#f-age_group", "pre_pubescent")
    page.select_option("#f-gender", "female")
    page.select_option("#f-site_type", "image_host")
    page.select_option("#f-content_type", "image")
    page.select_option("#f-commercial", "no")
    page.fill("#f-notes", "Two images, clearly below 12.")
    page.click("#save-assessment")
    page.wait_for_url(f"**/console/cases/{older}?done=assessed")
    assert page.inner_text("#case-state") == "assessed"
    assert page.inner_text("#decision") == (
        "illegal everywhere (international baseline), child sexual abuse material")

    route_assessed(runtime)
    page.reload()
    notices = page.inner_text("#notices")
    assert "planned" in notices and "police" in notices
    with runtime.session_factory() as session:
        case = session.execute(select(Case).where(Case.ref == older)).scalar_one()
        states = {n.destination_kind: n.state for n in session.execute(
            select(Notice).where(Notice.case_id == case.id)).scalars()}
    assert states.get("police") == "planned"
    assert "received" in page.inner_text("#timeline")
    screenshot(page, "04-case-notice-planned")
    assert page.js_errors == []


def test_four_eyes_a_second_analyst_confirms_a_national_law_decision(page, browser,
                                                                    sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    add_person(runtime, "ben", "analyst")
    ref = queued_case(runtime, "http://hate.example.rs/post/9", claimed="hate_speech")

    log_in(page, "ana")
    page.wait_for_url("**/console/")
    page.click("#claim-next")
    page.wait_for_url(f"**/console/cases/{ref}?done=claimed")
    page.locator("body").click()
    page.keyboard.press("3")  # hate speech under national law: four eyes by default
    page.click("#save-assessment")
    page.wait_for_url(f"**/console/cases/{ref}?done=assessed")
    assert page.inner_text("#case-state") == "awaiting a second analyst"

    other = page.context.browser.new_context(base_url=page.url.split("/console")[0])
    second = other.new_page()
    log_in(second, "ben")
    second.wait_for_url("**/console/")
    second.goto("/console/review")
    assert ref in second.inner_text("#second")
    screenshot(second, "05-four-eyes")
    second.click("#claim-second")
    second.wait_for_url(f"**/console/cases/{ref}?done=claimed")
    # The second analyst decides without seeing the first decision.
    assert second.locator("#assessments").count() == 0
    assert "Second assessment" in second.inner_text("#assessment h2")
    second.locator("body").click()
    second.keyboard.press("3")
    second.click("#save-assessment")
    second.wait_for_url(f"**/console/cases/{ref}?done=assessed")
    assert second.inner_text("#case-state") == "assessed"
    assert "illegal under national law, hate speech" in second.inner_text("#decision")
    other.close()


def test_the_supervisor_sees_workload_welfare_police_holds_and_statistics(
        page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    add_person(runtime, "sue", "supervisor")
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        held = make_case(session, at=now, url="http://held.example.rs/x", state="police_hold",
                         host="held.example.rs", registered_domain="example.rs",
                         legality="illegal_international", category="csam",
                         police_hold_at=now, hosting_country="RS",
                         police_hold_until=now.replace(hour=now.hour + 3))
        held_ref = held.ref

    log_in(page, "sue")
    page.wait_for_url("**/console/")
    page.goto("/console/team")
    rows = page.inner_text("#team")
    assert "ana" in rows and "sue" in rows
    screenshot(page, "06-team")

    page.goto("/console/police")
    assert held_ref in page.inner_text("#holds")
    assert "in 3 h 0 min" in page.inner_text("#holds")
    screenshot(page, "07-police-holds")

    removed_cases(runtime)
    page.goto("/console/stats")
    # Removal-time distribution, illegal URLs and removal by country, stage durations.
    assert page.locator("svg.chart").count() == 4
    assert page.inner_text("#removal-count") == "6"
    bars = page.locator("#chart-removal svg g title").all_text_contents()
    assert bars == ["within 1 day: 1", "1 to 3 days: 2", "3 to 7 days: 2", "over 7 days: 1"]
    assert "DE" in page.locator("#chart-country svg").first.text_content()
    assert page.locator("#export-csv").count() == 1
    screenshot(page, "08-statistics")
    with page.expect_download() as download:
        page.click("#export-csv")
    assert download.value.suggested_filename.endswith(".csv")

    page.goto("/console/rules")
    assert "routing.yaml" in page.inner_text("main")
    screenshot(page, "09-rules")
    assert page.js_errors == []


def test_a_wrong_role_gets_a_denied_page_and_an_admin_manages_users(page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    add_person(runtime, "root", "admin")

    log_in(page, "ana")
    page.wait_for_url("**/console/")
    response = page.goto("/console/admin")
    assert response.status == 403
    assert "Not allowed" in page.inner_text("h1")
    assert page.locator("nav a[href='/console/admin']").count() == 0
    screenshot(page, "10-denied")
    page.click("button:has-text('Log out')")
    page.wait_for_url("**/console/login")

    log_in(page, "root")
    page.wait_for_url("**/console/admin")
    page.fill("input[name=name]", "nina")
    page.select_option("select[name=role]", "analyst")
    page.click("button:has-text('Add user')")
    assert "One-time password" in page.inner_text("#one-time-password")
    assert "nina" in page.inner_text("#users")
    screenshot(page, "11-admin-users")
    page.on("dialog", lambda dialog: dialog.accept())
    page.locator("#users tr:has-text('nina') button:has-text('Deactivate')").click()
    page.wait_for_url("**/console/admin?done=deactivated")
    assert "no" in page.locator("#users tr:has-text('nina')").inner_text()
    with runtime.session_factory() as session:
        assert session.execute(select(Report)).first() is None  # nothing else was touched
