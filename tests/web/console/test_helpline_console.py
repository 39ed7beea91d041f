"""The counsellors' console pages: through the forms without a browser
(roles, bad input named with a 422, Serbian and English), and in Chromium: recording
a call with the keyboard, forming a case, referring it."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from pipeline.core.messaging import DISPATCH
from pipeline.store.helpline_models import (
    HelplineCase,
    HelplineContact,
    HelplineReferral,
    HelplineTask,
)
from tests.web.console.conftest import add_person, log_in, screenshot
from tests.web.console.test_casework import Person


@pytest.fixture
def people(sqlite_runtime):
    for name, role in [("cara", "counsellor"), ("ana", "analyst"), ("sue", "supervisor")]:
        add_person(sqlite_runtime, name, role)
    return sqlite_runtime


CALL = {"caller_type": "parent", "channel": "phone", "topic": "sextortion", "minutes": "5",
        "language": "sr", "caller_contact": "+381 60 111 222", "summary": "Kći ucenjivana"}


def test_a_counsellor_records_a_call_forms_a_case_and_refers_it_through_the_forms(people):
    cara = Person(people, "cara")
    page = cara.client.get("/console/helpline", headers={"Accept-Language": "sr"})
    assert page.status_code == 200 and "Evidentiraj kontakt" in page.text
    answer = cara.post("/console/helpline/contacts", **CALL, case_type="sextortion",
                       child_age_group="14_15", urls="https://example.net/profile/x")
    assert answer.status_code == 303
    ref = re.search(r"/console/helpline/cases/(H-[A-Z0-9-]+)", answer.headers["location"]).group(1)
    case_page = cara.client.get(f"/console/helpline/cases/{ref}",
                                headers={"Accept-Language": "en"})
    assert "Refer to institutions" in case_page.text and "hxxps[://]example[.]net" in case_page.text
    assert cara.post(f"/console/helpline/cases/{ref}/refer",
                     destination="rs-vtk-prosecutor").status_code == 303
    with people.session_factory() as session:
        case = session.execute(select(HelplineCase)).scalar_one()
        assert case.state == "referred"
        referral = session.execute(select(HelplineReferral)).scalar_one()
    assert people.enqueuer.ids(DISPATCH) == [referral.notice_id]
    # A due time typed in the browser is the centre's local time (Belgrade, UTC+1).
    assert cara.post(f"/console/helpline/cases/{ref}/task", title="Call back",
                     due_at="2026-01-05T14:00").status_code == 303
    with people.session_factory() as session:
        task = session.execute(select(HelplineTask)).scalar_one()
    assert task.due_at.isoformat() == "2026-01-05T13:00:00+00:00"


def test_bad_input_is_shown_beside_the_form_with_a_422(people):
    cara = Person(people, "cara")
    answer = cara.post("/console/helpline/contacts", **{**CALL, "topic": "weather"},
                       headers=None)
    assert answer.status_code == 422 and "topic:" not in answer.text
    assert 'href="#topic">Choose “Topic” from the options offered.</a>' in answer.text
    assert re.search(r'id="topic" aria-invalid="true"', answer.text)
    answer = cara.post("/console/helpline/contacts", **{**CALL, "minutes": "-3"})
    assert 'href="#minutes">Write “Duration (minutes)” as a number' in answer.text
    answer = cara.post("/console/helpline/contacts", **CALL, join_case="H-NOPE")
    assert answer.status_code == 422
    assert 'href="#join_case">There is no helpline case H-NOPE.</a>' in answer.text
    assert re.search(r'id="join_case"[^>]*aria-invalid="true"', answer.text)
    with people.session_factory() as session:
        assert session.execute(select(HelplineContact)).first() is None
    ref = re.search(r"(H-[A-Z0-9-]+)", cara.post(
        "/console/helpline/contacts", **CALL, case_type="grooming").headers["location"]).group(1)
    answer = cara.post(f"/console/helpline/cases/{ref}/refer")
    assert answer.status_code == 422
    assert 'href="#refer">Choose at least one institution to refer the case to.</a>' \
        in answer.text
    answer = cara.post(f"/console/helpline/cases/{ref}/task", title="Call back", due_at="soon")
    assert answer.status_code == 422 and "due_at:" not in answer.text
    assert 'href="#due_at">Write “Due” as a date and time' in answer.text


def test_analysts_do_not_reach_the_helpline_pages_and_counsellors_not_the_queue(people):
    ana, cara = Person(people, "ana"), Person(people, "cara")
    assert ana.client.get("/console/helpline").status_code == 403
    assert ana.post("/console/helpline/contacts", **CALL).status_code == 403
    assert cara.client.get("/console/").status_code == 403
    assert Person(people, "sue").client.get("/console/helpline").status_code == 200


# ------------------------------------------------------------------------- Chromium


def test_in_chromium_a_call_is_recorded_with_the_keyboard_a_case_formed_and_referred(
        page, people):
    log_in(page, "cara")
    page.goto("/console/helpline")
    assert page.locator("h1").inner_text() == "Record a contact"  # Chromium asks for English
    # Keyboard only: the caller's type has the focus; arrow keys choose, Tab moves on.
    assert page.evaluate("document.activeElement.name") == "caller_type"
    page.keyboard.press("ArrowRight")  # child -> parent
    page.keyboard.press("Tab")  # on to the topic (the channel stays phone)
    page.keyboard.type("Sext")  # the select jumps to "Sextortion"
    page.keyboard.press("Tab")
    page.keyboard.type("6")
    page.locator("#summary").fill("Daughter blackmailed for more photos.")
    page.select_option("#case_type", "sextortion")
    page.select_option("#child_age_group", "14_15")
    page.locator("#caller_contact").focus()
    page.keyboard.type("+381 64 000 111")
    page.keyboard.press("Enter")  # records the contact
    page.wait_for_url(re.compile(r"/console/helpline/cases/H-"))
    assert page.locator("#case-state").get_attribute("data-state") == "open"
    ref = page.locator("#case-ref").inner_text()
    screenshot(page, "helpline-case")
    page.check("input[name=destination][value=rs-mup-vtk]")
    page.click("#refer-button")
    page.wait_for_url(re.compile(r"done=referred"))
    assert page.locator("#case-state").get_attribute("data-state") == "referred"
    assert page.locator("#referrals tr[data-destination=rs-mup-vtk]").count() == 1
    screenshot(page, "helpline-referred")
    assert page.js_errors == []
    with people.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
        assert (contact.caller_type, contact.topic, contact.duration_seconds) == (
            "parent", "sextortion", 360)
        assert contact.caller_contact == "+381 64 000 111"
        case = session.execute(select(HelplineCase)).scalar_one()
        assert case.ref == ref and case.child_age_group == "14_15"


class Keys:
    """The keyboard, counting every key the counsellor presses (free text apart)."""

    def __init__(self, page):
        self.page, self.count = page, 0

    def press(self, key):
        self.page.keyboard.press(key)
        self.count += 1

    def type(self, text):
        self.page.keyboard.type(text)
        self.count += len(text)


def test_in_chromium_a_typical_call_is_recorded_in_a_few_keystrokes(page, people):
    """The keystroke path of docs/helpline/counsellors-guide.md: a parent calls about
    sextortion, six minutes, anonymous. Counted, never timed."""
    log_in(page, "cara")
    page.goto("/console/helpline")
    keys = Keys(page)
    assert page.evaluate("document.activeElement.name") == "caller_type"  # autofocus
    keys.press("ArrowRight")  # child -> parent
    keys.press("Tab")  # topic
    assert page.evaluate("document.activeElement.id") == "topic"
    keys.type("Sex")  # Sextortion (typed letters search the list)
    keys.press("Tab")  # minutes
    keys.type("6")
    keys.press("Tab")  # summary
    assert page.evaluate("document.activeElement.id") == "summary"
    page.keyboard.type("Parent: daughter blackmailed for photos, advised.")  # free text
    keys.press("Tab")  # caller's contact: empty, anonymous
    assert page.evaluate("document.activeElement.id") == "caller_contact"
    keys.press("Enter")  # records the contact
    page.wait_for_url(re.compile(r"/console/helpline\?done=recorded"))
    assert keys.count <= 15, keys.count
    assert page.locator("#contacts tbody tr").count() == 1
    assert page.js_errors == []
    with people.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
    assert (contact.channel, contact.caller_type, contact.topic) == ("phone", "parent",
                                                                     "sextortion")
    assert (contact.duration_seconds, contact.anonymous) == (360, True)
    assert contact.received_at == people.clock.now()  # time: now by default
    assert contact.summary == "Parent: daughter blackmailed for photos, advised."


def test_a_call_recorded_later_takes_the_time_typed_in_the_centres_zone(people):
    cara = Person(people, "cara")
    assert cara.post("/console/helpline/contacts", **CALL,
                     received_at="2026-01-05T09:30").status_code == 303
    with people.session_factory() as session:
        contact = session.execute(select(HelplineContact)).scalar_one()
    assert contact.received_at.isoformat() == "2026-01-05T08:30:00+00:00"
