"""Accessibility in Chromium: axe-core (npm, installed by `make test` into
tests/web/console/node/) finds no violation of any impact on any console page, in
Serbian and in English; a skip link; screenshots of every page in both languages
under artifacts/screenshots/."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.store.models import Case, Notice
from tests.conftest import CI
from tests.web.console.conftest import AXE, PASSWORD, add_person, log_in, queued_case, screenshot

PAGES = ["/console/", "/console/search?q=example.rs", "/console/review", "/console/police",
         "/console/team", "/console/stats", "/console/rules", "/console/notices",
         "/console/tracing", "/console/password", "/console/no-such-page"]


@pytest.fixture
def axe() -> str:
    if not AXE.is_file():
        if CI or os.environ.get("CI") == "true":
            pytest.fail(f"axe-core is required when CI=true but {AXE} is missing "
                        "(make test installs it with npm)")
        pytest.skip("axe-core is not installed (npm install --prefix tests/web/console/node "
                    "axe-core)")
    return AXE.read_text(encoding="utf-8")


def violations(page: Any, axe_source: str) -> list[dict[str, Any]]:
    page.add_script_tag(content=axe_source)
    found: list[dict[str, Any]] = page.evaluate("""async () => {
        const result = await axe.run(document, {resultTypes: ['violations']});
        return result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
            nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}));
    }""")
    return found


def _data(runtime: Any) -> str:
    ref = queued_case(runtime, "http://pics.example.rs/1.html", description="seen on a forum")
    queued_case(runtime, "http://pics.example.rs/2.html")
    with runtime.session_factory.begin() as session:
        case_id = session.execute(select(Case.id).where(Case.ref == ref)).scalar_one()
        session.add(Notice(case_id=case_id, destination="rs_police", destination_kind="police",
                           kind="notice", channel="file", state="sent", token="x",
                           created_at=runtime.clock.now(), body="text"))
    return ref


@pytest.mark.parametrize("language", ["sr-Latn", "en"])
def test_every_page_has_no_axe_violation_in_either_language(browser, live_server, axe,
                                                             language):
    runtime = live_server.runtime
    add_person(runtime, "sue", "supervisor")
    add_person(runtime, "root", "admin")
    ref = _data(runtime)
    problems: dict[str, Any] = {}
    for who, pages in (("sue", [*PAGES, "claim"]), ("root", ["/console/admin"])):
        context = browser.new_context(base_url=live_server.url, bypass_csp=True,
                                      locale=language, extra_http_headers={
                                          "Accept-Language": language},
                                      viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        page.goto("/console/login")
        assert page.get_attribute("html", "lang") == language
        if who == "sue":
            found = violations(page, axe)
            if found:
                problems[f"{language} /console/login"] = found
            screenshot(page, f"a11y-{language}-login")
        log_in(page, who)
        page.wait_for_load_state()
        for path in pages:
            if path == "claim":
                page.goto("/console/")
                page.click("#claim-next")
                page.wait_for_url(f"**/console/cases/{ref}?done=claimed")
                path = f"/console/cases/{ref}"
            else:
                page.goto(path)
            assert page.get_attribute("html", "lang") == language
            found = violations(page, axe)
            if found:
                problems[f"{language} {path}"] = found
            name = path.strip("/").replace("/", "-").replace("?", "-").replace("=", "-")
            screenshot(page, f"a11y-{language}-{name or 'queue'}")
        context.close()
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)


def test_the_skip_link_is_the_first_stop_and_leads_to_the_content(page, sqlite_runtime):
    add_person(sqlite_runtime, "sue", "supervisor")
    log_in(page, "sue")
    page.wait_for_url("**/console/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def _tab_to(page: Any, element_id: str, limit: int = 60) -> int:
    """Press Tab until the element has the focus; how many presses it took."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == element_id:
            return presses
    raise AssertionError(f"#{element_id} cannot be reached with the keyboard")


def test_the_whole_flow_works_with_the_keyboard_only(page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "ana", "analyst")
    first = queued_case(runtime, "http://pics.example.rs/1.html", priority=200)
    second = queued_case(runtime, "http://pics.example.rs/2.html", priority=100)
    page.goto("/console/login")
    page.keyboard.type("ana")  # the name field has the focus
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/")
    _tab_to(page, "claim-next")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/cases/{first}?done=claimed")
    page.keyboard.press("1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/console/cases/{second}?done=assessed-next")
    _tab_to(page, "release")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/?done=released")
    page.keyboard.press("Tab")  # the skip link, then into the search
    page.keyboard.press("Enter")
    _tab_to(page, "lang-sr-Latn")
    page.keyboard.press("Enter")
    page.wait_for_url("**/console/")
    assert page.get_attribute("html", "lang") == "sr-Latn"
