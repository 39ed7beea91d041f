"""The console's search: one box for references, URLs in any spelling, hosts and
sites; filters, pages and orders; refusals that name the field."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from pipeline.domain.urls import canonicalise
from pipeline.store.models import Notice
from pipeline.web.app import create_app
from tests.factories import make_case, make_report
from tests.web.console.conftest import PASSWORD, add_person


@pytest.fixture(params=["sqlite_runtime", "pg_runtime"])
def runtime(request):
    runtime = request.getfixturevalue(request.param)
    add_person(runtime, "ana", "analyst")
    return runtime


def _case(session, at, url, **fields):
    found = canonicalise(url)
    values = {"open_key": found.dedup_key, **fields}
    return make_case(session, at=at, url=found.canonical, dedup_key=found.dedup_key,
                     host=found.host, registered_domain=found.registered_domain, **values)


@pytest.fixture
def cases(runtime):
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        first = _case(session, now - timedelta(days=10), "http://pics.example.rs/a/1.html",
                      state="notified", legality="illegal_international", category="csam",
                      hosting_country="RS")
        report = make_report(session, at=now - timedelta(days=10),
                             url="http://pics.example.rs/a/1.html", state="new_case",
                             case_id=first.id, reporter_contact="reporter@example.org")
        session.add(Notice(case_id=first.id, destination="rs_police",
                           destination_kind="police", kind="notice", channel="file",
                           state="sent", token="t1", created_at=now))
        second = _case(session, now - timedelta(days=2), "https://cdn.example.rs/x.jpg",
                       state="awaiting_assessment", hosting_country="DE")
        third = _case(session, now, "http://other.example.org/", state="closed",
                      open_key=None, legality="not_illegal", hosting_country="NL")
        for number in range(55):
            _case(session, now - timedelta(minutes=number), f"http://many.example.net/{number}",
                  state="awaiting_assessment", hosting_country="NL")
        return {"first": first.ref, "report": report.ref, "second": second.ref,
                "third": third.ref}


def _client(runtime):
    client = TestClient(create_app(runtime), follow_redirects=False,
                        headers={"Accept-Language": "en"})
    form = client.get("/console/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)
    assert client.post("/console/login", data={"name": "ana", "password": PASSWORD,
                                                "csrf": csrf}).status_code == 303
    return client


def _found(page) -> list[str]:
    table = page.text.split('id="found"', 1)
    return re.findall(r'href="/console/cases/([^"]+)"', table[1]) if len(table) > 1 else []


def test_what_happened_to_a_report_takes_one_search(runtime, cases):
    with _client(runtime) as client:
        page = client.get("/console/search", params={"q": cases["report"]})
        assert _found(page) == [cases["first"]]
        assert "by report reference" in page.text
        assert "notified" in page.text
        # Reporter contacts never appear in results, whatever the role.
        assert "reporter@example.org" not in page.text
        assert _found(client.get("/console/search", params={
            "q": cases["first"].lower()})) == [cases["first"]]


@pytest.mark.parametrize("spelling", [
    "http://pics.example.rs/a/1.html", "HTTP://PICS.EXAMPLE.RS/a/1.html#top",
    "http://pics.example.rs:80/a/1.html", "http://pics.example.rs./a/1.html"])
def test_a_url_is_found_in_any_spelling(runtime, cases, spelling):
    with _client(runtime) as client:
        page = client.get("/console/search", params={"q": spelling})
    assert _found(page) == [cases["first"]]


def test_hosts_sites_and_filters(runtime, cases):
    with _client(runtime) as client:
        assert _found(client.get("/console/search", params={"q": "cdn.example.rs"})) == [
            cases["second"]]
        site = _found(client.get("/console/search", params={"q": "example.rs",
                                                            "sort": "oldest"}))
        assert site == [cases["first"], cases["second"]]
        assert _found(client.get("/console/search", params={"country": "de"})) == [
            cases["second"]]
        assert _found(client.get("/console/search", params={"category": "csam"})) == [
            cases["first"]]
        assert _found(client.get("/console/search", params={"state": "closed"})) == [
            cases["third"]]
        assert _found(client.get("/console/search", params={
            "destination": "rs_police"})) == [cases["first"]]
        day = (runtime.clock.now() - timedelta(days=2)).date().isoformat()
        assert _found(client.get("/console/search", params={
            "start": day, "end": day})) == [cases["second"]]


def test_results_come_a_page_at_a_time(runtime, cases):
    with _client(runtime) as client:
        first = client.get("/console/search", params={"country": "NL"})
        assert len(_found(first)) == 50 and 'id="next-page"' in first.text
        link = re.search(r'id="next-page"|href="(/console/search\?[^"]*page=2[^"]*)"',
                         first.text)
        assert link
        second = client.get("/console/search", params={"country": "NL", "page": "2"})
        assert len(_found(second)) == 6 and 'id="next-page"' not in second.text
        assert not set(_found(first)) & set(_found(second))


@pytest.mark.parametrize(("params", "field"), [
    ({"start": "7/12/2026"}, "start"), ({"sort": "size"}, "sort"),
    ({"page": "0"}, "page"), ({"country": "Serbia"}, "country"),
    ({"q": "??"}, "q"), ({"start": "2026-12-07", "end": "2026-01-01"}, "start")])
def test_bad_searches_are_refused_naming_the_field(runtime, params, field):
    with _client(runtime) as client:
        page = client.get("/console/search", params=params)
    assert page.status_code == 422
    assert f"{field}:" not in page.text  # a sentence, not the framework's "field: ..."
    summary = page.text[page.text.index('id="problems"'):]
    summary = summary[:summary.index("</div>")]
    if field == "page":  # no field of the form: the summary says it, linking nowhere
        assert "Pages are numbered" in summary
        return
    assert f'href="#s-{field}"' in summary
    assert re.search(rf'id="s-{field}" aria-invalid="true" aria-describedby="problems"',
                     page.text)


def test_a_refused_search_speaks_serbian_by_default(runtime):
    with _client(runtime) as client:
        client.headers.pop("Accept-Language", None)
        page = client.get("/console/search", params={"country": "Serbia"})
    assert page.status_code == 422
    assert "Upišite zemlju hostovanja" in page.text
