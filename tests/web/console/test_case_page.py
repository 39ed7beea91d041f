"""The case page for urgent work: the reporter's words, urgency and the URL first;
two columns at 1920 px; references never wrap; a dispute shows both assessments
side by side above the supervisor's form."""

from __future__ import annotations

from sqlalchemy import select

from pipeline.store.models import Case
from tests.web.console.conftest import add_person, log_in, queued_case, screenshot


def _top(page, selector):
    return page.locator(selector).bounding_box()


def test_the_case_page_reads_in_the_order_of_urgent_work_and_uses_wide_screens(
        page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    ref = queued_case(runtime, "http://pics.example.rs/1.html", urgent=True,
                      description="A child, filmed live right now")
    log_in(page, "ana")
    page.wait_for_url("**/console/")
    page.click("#claim-next")
    page.wait_for_url(f"**/console/cases/{ref}?done=claimed")
    order = page.evaluate("""() => {
        const all = Array.from(document.querySelectorAll('section[id]')).map(s => s.id);
        return ['reporter', 'url', 'trace', 'history', 'notices'].map(id => all.indexOf(id));
    }""")
    assert order == sorted(order) and -1 not in order
    assert "A child, filmed live right now" in page.inner_text("#reporter")
    assert "urgent" in page.inner_text("#reporter")

    page.set_viewport_size({"width": 1920, "height": 1080})
    page.reload()
    reporter, form = _top(page, "#reporter"), _top(page, "#assessment")
    assert form["x"] > reporter["x"] + reporter["width"] - 1  # side by side
    assert abs(form["y"] - reporter["y"]) < 200
    heading = page.locator("h1 .ref")
    assert heading.evaluate("e => getComputedStyle(e).whiteSpace") == "nowrap"
    screenshot(page, "case-1920")

    page.set_viewport_size({"width": 900, "height": 1000})
    page.reload()
    reporter, form = _top(page, "#reporter"), _top(page, "#assessment")
    assert form["y"] > reporter["y"]  # one column on a narrow screen


def test_a_dispute_shows_both_assessments_side_by_side_above_the_form(page, sqlite_runtime):
    runtime = sqlite_runtime
    for name, role in (("ana", "analyst"), ("ben", "analyst"), ("sue", "supervisor")):
        add_person(runtime, name, role)
    ref = queued_case(runtime, "http://hate.example.rs/9", claimed="hate_speech")
    for analyst, key in (("ana", "3"), ("ben", "4")):
        log_in(page, analyst)
        page.wait_for_url("**/console/")
        if analyst == "ben":
            page.goto("/console/review")
            page.click("#claim-second")
        else:
            page.click("#claim-next")
        page.wait_for_url(f"**/console/cases/{ref}?done=claimed")
        page.locator("h1").click()
        page.keyboard.press(key)
        page.fill("#f-notes", f"notes of {analyst}")
        page.click("#save-assessment")
        page.wait_for_url(f"**/console/cases/{ref}?done=assessed")
        page.context.clear_cookies()
    with runtime.session_factory() as session:
        assert session.execute(select(Case.state).where(Case.ref == ref)).scalar_one() == (
            "awaiting_supervisor")
    log_in(page, "sue")
    page.wait_for_url("**/console/")
    page.goto(f"/console/cases/{ref}")
    cards = page.locator("#dispute .assessment-card")
    assert cards.count() == 2
    text = page.inner_text("#dispute")
    assert "notes of ana" in text and "notes of ben" in text
    first, second = cards.nth(0).bounding_box(), cards.nth(1).bounding_box()
    assert abs(first["y"] - second["y"]) < 5  # side by side
    assert _top(page, "#dispute")["y"] < _top(page, "#assessment-form")["y"]
    screenshot(page, "case-dispute")
