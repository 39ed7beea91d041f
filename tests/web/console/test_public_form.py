"""The public reporting form in a real browser (Debian's Chromium through Playwright):
keyboard only, both languages, its error state and confirmation checked by axe-core.

axe-core is not vendored: `make test` installs it from npm into
.venv/axe/node_modules/axe-core (test-only; HOTLINE_TEST_AXE names another copy).
The axe checks skip without it but fail when CI=true.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.store.models import Report
from tests.conftest import CI
from tests.web.console.conftest import AXE, screenshot

REF = r"R-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}"


@pytest.fixture
def axe_page(browser, live_server):
    """A page whose context bypasses the CSP only so that axe can be injected."""
    if not AXE.is_file():
        if CI:
            pytest.fail(f"axe-core is required when CI=true but {AXE} is missing "
                        "(make test installs it from npm)")
        pytest.skip(f"axe-core not installed at {AXE}")
    context = browser.new_context(base_url=live_server.url, bypass_csp=True,
                                  locale="en-GB", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def axe_violations(page) -> list[str]:
    page.add_script_tag(content=AXE.read_text())
    result = page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values:
            ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']}});
        return r.violations.map(v => v.id + ': ' + v.help + ' @ ' +
            v.nodes.map(n => n.target.join(' ')).join(', '));
    }""")
    return list(result)


def test_a_reporter_uses_the_form_with_the_keyboard_only_in_serbian(browser, live_server,
                                                                     sqlite_runtime):
    context = browser.new_context(base_url=live_server.url, locale="sr-RS",
                                  extra_http_headers={"Accept-Language": "sr-RS,sr;q=0.9"})
    page = context.new_page()
    page.set_default_timeout(15_000)
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error"
            and not msg.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.goto("/report")
    assert page.locator("html").get_attribute("lang") == "sr-Latn"
    assert page.locator("h1").inner_text() == "Prijavite nezakonit sadržaj"
    screenshot(page, "public-01-form-sr")

    # Sending the empty form with the keyboard: the summary names each problem.
    page.keyboard.press("Tab")  # the skip link
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    page.keyboard.press("Tab")  # the way to the request for help, before the report form
    assert page.evaluate("document.activeElement.getAttribute('href')") == "#help-title"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-urls"
    page.locator("#send").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#error-summary")
    summary = page.inner_text("#error-summary")
    assert "Unesite adresu (URL) onoga što ste videli." in summary
    assert page.get_attribute("#f-urls", "aria-invalid") == "true"
    screenshot(page, "public-02-errors-sr")

    # Following the summary's first link lands in the field; fill in by keyboard.
    page.locator("#error-summary a").first.focus()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "f-urls"
    page.keyboard.type("http://slike.example.rs/album/7")
    page.keyboard.press("Tab")  # into the radio group: the first category
    page.keyboard.press("Space")
    page.keyboard.press("ArrowDown")  # the second category
    assert page.evaluate("document.activeElement.value") == "self_generated_csam"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "f-found_on"
    page.keyboard.press("Tab")
    page.keyboard.type("Video u grupi na četu.")
    page.locator("#send").focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#references")
    assert "Hvala vam" in page.inner_text("h1")
    reference = page.locator("#references .ref").first.inner_text()
    # The reported URL is text, defanged, and no link points to it.
    assert page.inner_text("#references code.url") == "hxxp[://]slike[.]example[.]rs/album/7"
    assert page.locator("a[href*='example.rs']").count() == 0
    screenshot(page, "public-03-confirmation-sr")
    with sqlite_runtime.session_factory() as session:
        report = session.execute(select(Report).where(Report.ref == reference)).scalar_one()
        assert report.claimed_category == "self_generated_csam"
        assert report.description == "Video u grupi na četu."
        assert report.channel == "web" and report.language == "sr-Latn"

    # The status link from the confirmation, then the language switch.
    page.locator("#references .ref").first.focus()
    page.keyboard.press("Enter")
    page.wait_for_selector("#status")
    # Settled in the intake transaction: on its case already, waiting for an analyst.
    assert page.inner_text("#status-label") == "U obradi"
    page.click("a[hreflang=en]")
    page.wait_for_selector("html[lang=en]")
    assert "Status of a report" in page.inner_text("h1")
    screenshot(page, "public-04-status-en")
    assert problems == []  # no script errors, no CSP violations
    context.close()


def test_axe_finds_no_violations_on_the_form_its_errors_confirmation_and_status(axe_page):
    page = axe_page
    page.goto("/report?lang=en")
    assert axe_violations(page) == []
    page.fill("#f-urls", "not an address")
    page.fill("#f-description", "x")
    page.click("#send")
    page.wait_for_selector("#error-summary")
    assert "does not look like a web address" in page.inner_text("#error-summary")
    assert axe_violations(page) == []
    screenshot(page, "public-05-errors-en")
    page.fill("#f-urls", "https://bad.example.com/x\nbad.example.org/y")
    page.check("#c-not_sure")
    page.click("#send")
    page.wait_for_selector("#references")
    assert page.locator("#references tbody tr").count() == 2
    assert axe_violations(page) == []
    page.goto("/report/status?ref=R-AAAA-BBBB-CCCC-DDDD&lang=sr-Latn")
    assert axe_violations(page) == []
    # The check itself can fail: a field without a label is found.
    page.evaluate("document.querySelector('label[for=f-ref]').remove()")
    assert any(v.startswith("label") for v in axe_violations(page))
