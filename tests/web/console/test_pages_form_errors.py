"""Refused input on the console's pages outside the assessment (pipeline.web.console.pages:
the users form, the statistics period; and the tracing retry): one sentence per
problem in the page's language naming the field, the field marked `aria-invalid`
and linked from an error summary; never a framework's `field: ...`."""

from __future__ import annotations

import re

import pytest

from tests.web.console.conftest import add_person
from tests.web.console.test_casework import Person


@pytest.fixture
def people(sqlite_runtime):
    for name, role in [("root", "admin"), ("sue", "supervisor")]:
        add_person(sqlite_runtime, name, role)
    return sqlite_runtime


def test_a_user_name_taken_is_named_beside_the_field(people):
    root = Person(people, "root")
    answer = root.post("/console/admin/users", name="sue", role="analyst")
    assert answer.status_code == 422 and not re.search(r">\s*name:", answer.text)
    assert ('href="#u-name">Choose another name: a user named sue exists already.</a>'
            in answer.text)
    assert re.search(r'id="u-name"[^>]*value="sue" aria-invalid="true" '
                     r'aria-describedby="problems"', answer.text)
    answer = root.post("/console/admin/users", name="bo", role="root")
    assert 'href="#u-role">Choose a role from the list' in answer.text
    serbian = root.client.post("/console/admin/users", headers={"Accept-Language": "sr"},
                               data={"csrf": root.csrf, "name": "sue", "role": "analyst"})
    assert "Izaberite drugo ime: korisnik po imenu sue već postoji." in serbian.text


def test_a_refusal_without_its_form_still_speaks_the_pages_language(people):
    sue = Person(people, "sue")
    answer = sue.post("/console/tracing/retry")
    assert answer.status_code == 422
    assert "Choose at least one case in the list." in answer.text and "ref:" not in answer.text
    serbian = sue.client.post("/console/tracing/retry", data={"csrf": sue.csrf},
                              headers={"Accept-Language": "sr"})
    assert "Izaberite bar jedan slučaj sa spiska." in serbian.text
    stats = sue.client.get("/console/stats", params={"start": "yesterday"})
    assert stats.status_code == 422 and "Write the dates as year-month-day" in stats.text


def test_a_refused_helpline_form_speaks_serbian_and_marks_the_field(sqlite_runtime):
    add_person(sqlite_runtime, "cara", "counsellor")
    cara = Person(sqlite_runtime, "cara")
    serbian = {"Accept-Language": "sr"}
    call = {"csrf": cara.csrf, "caller_type": "parent", "channel": "phone",
            "topic": "sextortion", "minutes": "5", "language": "sr"}
    answer = cara.client.post("/console/helpline/contacts", headers=serbian,
                              data={**call, "join_case": "H-NOPE"})
    assert answer.status_code == 422 and "no helpline case" not in answer.text
    assert 'href="#join_case">Ne postoji slučaj savetovališta H-NOPE.</a>' in answer.text
    assert re.search(r'id="join_case" aria-invalid="true" aria-describedby="problems"',
                     answer.text)
    ref = re.search(r"(H-[A-Z0-9-]+)", cara.client.post(
        "/console/helpline/contacts", data={**call, "case_type": "grooming"})
        .headers["location"]).group(1)
    answer = cara.client.post(f"/console/helpline/cases/{ref}/refer", headers=serbian,
                              data={"csrf": cara.csrf})
    assert answer.status_code == 422
    assert 'href="#refer">Izaberite bar jednu instituciju kojoj se slučaj prosleđuje.</a>' \
        in answer.text
    # What is not there: the error page, in the page's language too.
    missing = cara.client.get("/console/helpline/cases/H-NOPE", headers=serbian)
    assert missing.status_code == 404
    assert "Ne postoji slučaj savetovališta H-NOPE." in missing.text
    assert "no helpline case" not in missing.text
