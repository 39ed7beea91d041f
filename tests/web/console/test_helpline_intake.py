"""The helpline's intake in Chromium: a counsellor turns a mail message into a helpline
contact and takes it up; a person asks for help on the public form. axe-core finds no
violation on the new and changed pages, in Serbian and in English."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.app.mailbox import deliverer
from pipeline.stages import helpline
from pipeline.store.helpline_models import HelplineContact
from pipeline.store.mail_models import MailMessage
from tests.web.console.conftest import add_person, log_in, screenshot
from tests.web.console.test_accessibility import axe, violations  # noqa: F401 - a fixture

CORPUS = Path(__file__).resolve().parents[2] / "data" / "mail"


def test_in_chromium_a_counsellor_turns_a_mail_message_into_a_contact_and_takes_it_up(
        page, sqlite_runtime):
    runtime = sqlite_runtime
    add_person(runtime, "cara", "counsellor")
    deliverer(runtime, "lmtp")((CORPUS / "21-no-url-question.eml").read_bytes())
    log_in(page, "cara")
    page.goto("/console/mail")
    assert page.locator("#look-at tbody tr").count() == 1
    page.click("#look-at button.to-helpline")
    page.wait_for_url(re.compile(r"/console/mail\?contact=K-"))
    assert "helpline contact K-" in page.inner_text("#mail-notice")
    assert page.locator("#look-at").count() == 0  # the queue is empty now
    screenshot(page, "helpline-mail-turned")
    page.click("#open-contact")
    page.wait_for_url(re.compile(r"/console/helpline/contacts/K-"))
    assert page.locator("#contact-channel").get_attribute("data-channel") == "email"
    assert "E-mail: Pitanje" in page.inner_text("#contact-summary")
    # Keyboard: the first choice has the focus; a parent, advice on online safety.
    assert page.evaluate("document.activeElement.id") == "caller_type"
    page.select_option("#caller_type", "parent")
    page.select_option("#topic", "online_safety")
    page.click("#take-up")
    page.wait_for_url(re.compile(r"/console/helpline\?done=recorded"))
    row = page.locator('#contacts tr[data-source="mailbox"]')
    assert row.count() == 1 and row.get_attribute("data-channel") == "email"
    assert page.js_errors == []
    with runtime.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
        message = session.execute(select(MailMessage)).scalar_one()
    assert (contact.caller_type, contact.topic, contact.counsellor) == (
        "parent", "online_safety", "cara")
    assert (message.state, message.helpline_contact_ref) == ("helpline", contact.ref)


def test_in_chromium_a_person_asks_the_helpline_for_help_on_the_public_form(page,
                                                                           sqlite_runtime):
    page.goto("/report?lang=sr-Latn")
    page.click("#to-help a")
    assert page.evaluate("location.hash") == "#help-title"
    page.fill("#f-message", "Neko ucenjuje moju ćerku preko Instagrama.")
    page.fill("#f-help_contact", "mama@example.org")
    page.click("#send-help")
    page.wait_for_selector("#help-received")
    assert "Hvala" in page.inner_text("h1")
    screenshot(page, "public-help-received-sr")
    with sqlite_runtime.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
    assert (contact.channel, contact.source, contact.language) == ("contact_form", "form",
                                                                   "sr-Latn")


@pytest.mark.parametrize("language", ["sr-Latn", "en"])
def test_the_helpline_intake_pages_have_no_axe_violation(browser, live_server, axe,  # noqa: F811
                                                          language):
    runtime = live_server.runtime
    for name, role in [("cara", "counsellor"), ("sue", "supervisor")]:
        add_person(runtime, name, role)
    deliver = deliverer(runtime, "lmtp")
    deliver((CORPUS / "21-no-url-question.eml").read_bytes())
    deliver((CORPUS / "20-attachment-only-no-url.eml").read_bytes())
    with runtime.session_factory.begin() as session:
        ref = helpline.record_incoming(
            session, channel="contact_form", received_at=runtime.clock.now(),
            summary="Pitanje: https://bad.example.net/u/x", sender=None, language="sr-Latn",
            now=runtime.clock.now(), settings=runtime.settings, source="form").ref
    problems: dict[str, Any] = {}

    def check(page: Any, what: str) -> None:
        assert page.get_attribute("html", "lang") == language
        found = violations(page, axe)
        if found:
            problems[f"{language} {what}"] = found
        screenshot(page, f"a11y-{language}-{what.strip('/').replace('/', '-')}")

    for who in ("public", "sue", "cara"):
        context = browser.new_context(base_url=live_server.url, bypass_csp=True,
                                      locale=language,
                                      extra_http_headers={"Accept-Language": language},
                                      viewport={"width": 1920, "height": 1080})
        page = context.new_page()
        page.set_default_timeout(15_000)
        if who == "public":
            for path in ("/report", "/report#errors", "/report#sent"):
                page.goto(f"/report?lang={language}")
                if path.endswith("errors"):
                    page.click("#send-help")  # nothing written: the error state
                    page.wait_for_selector("#error-summary")
                elif path.endswith("sent"):
                    page.fill("#f-message", "Help")
                    page.click("#send-help")
                    page.wait_for_selector("#help-received")
                check(page, path.replace("#", "-"))
            context.close()
            continue
        log_in(page, who)
        page.wait_for_load_state()
        for path in ("/console/mail", "/console/helpline", f"/console/helpline/contacts/{ref}"):
            page.goto(path)
            check(page, f"{who}{path}")
        page.goto("/console/mail")
        page.click("#look-at button.to-helpline")
        page.wait_for_selector("#mail-notice")
        check(page, f"{who}/console/mail-turned")
        context.close()
    assert problems == {}, json.dumps(problems, indent=1, ensure_ascii=False)
