"""The public reporting form over HTTP: the same intake as the API, errors as
sentences beside their fields, references on the confirmation, abuse limits."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from pipeline.core.messaging import NORMALISE
from pipeline.store.models import Event, Report
from pipeline.web.app import create_app
from pipeline.web.report_form import CSRF_COOKIE


@pytest.fixture
def client(sqlite_runtime):
    with TestClient(create_app(sqlite_runtime), base_url="http://testserver") as client:
        yield client


def _token(client, lang="en"):
    page = client.get(f"/report?lang={lang}")
    assert page.status_code == 200
    return re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)


def _send(client, token=None, **fields):
    data = {"csrf": token if token is not None else _token(client), "lang": "en",
            "urls": "http://bad.example.com/a", "category": "csam", **fields}
    return client.post("/report", data=data)


def _count(runtime):
    with runtime.session_factory() as session:
        return session.execute(select(func.count()).select_from(Report)).scalar_one()


@pytest.fixture
def public_runtime(settings_factory):
    """A runtime whose `public` section is the given one (migrated; closed after)."""
    from pipeline.app.runtime import build_runtime
    from pipeline.store.migrate import upgrade

    made = []

    def make(public):
        settings = settings_factory(public=public)
        upgrade(settings.database.url)
        made.append(build_runtime(settings))
        return made[-1]

    yield make
    for runtime in made:
        runtime.close()


def test_the_form_stores_reports_through_intake_and_shows_their_references(
        client, sqlite_runtime):
    token = _token(client)
    response = _send(client, token, urls="http://bad.example.com/a\r\n\r\nbad.example.net/b?x=1\n",
                     found_on="social_network", description="seen in a group",
                     contact="me@example.org", urgent="yes")
    assert response.status_code == 201, response.text
    refs = re.findall(r"R-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}-[A-Z2-9]{4}", response.text)
    assert len(set(refs)) == 2
    # The URLs are shown defanged and as text: never as a link.
    assert "hxxp[://]bad[.]example[.]com/a" in response.text
    assert 'href="http://bad' not in response.text and "href=\"bad" not in response.text
    assert "bad.example.com" not in response.text
    with sqlite_runtime.session_factory() as session:
        reports = session.execute(select(Report).order_by(Report.id)).scalars().all()
        assert [r.url for r in reports] == ["http://bad.example.com/a",
                                            "bad.example.net/b?x=1"]
        assert {r.channel for r in reports} == {"web"}
        assert {r.found_on for r in reports} == {"social_network"}
        assert {r.reporter_contact for r in reports} == {"me@example.org"}
        assert all(r.urgent and r.language == "en" and r.claimed_category == "csam"
                   for r in reports)
        assert len({r.submission_ref for r in reports}) == 1
        assert reports[0].submission_ref in response.text
        events = session.execute(select(Event.action)).scalars().all()
        assert events.count("report_received") == 2
        # Settled in the intake transaction: on their (two) cases, which go to tracing.
        assert {r.state for r in reports} == {"new_case"}
    assert sqlite_runtime.enqueuer.sent == [("trace", [r.case_id for r in reports])]
    # Sending the same page again (reload, back button) is refused: the token was
    # renewed with the confirmation.
    again = _send(client, token, urls="http://bad.example.com/a")
    assert again.status_code == 400
    assert _count(sqlite_runtime) == 2


def test_errors_are_sentences_beside_their_fields_with_a_summary(client, sqlite_runtime):
    response = _send(client, urls="not a url\nhttp://ok.example/x", category="",
                     found_on="moon", description="x" * 10_001)
    assert response.status_code == 422
    page = response.text
    assert 'id="error-summary"' in page and 'role="alert"' in page
    assert "Address 1 does not look like a web address" in page
    assert "Choose what the content shows" in page
    assert "Choose where you found it from the list." in page
    assert "The description is too long: at most 10000 characters" in page
    assert re.search(r'<textarea id="f-urls"[^>]*aria-invalid="true"', page)
    assert re.search(r'<select id="f-found_on"[^>]*aria-invalid="true"', page)
    assert 'href="#f-urls"' in page and 'href="#f-category"' in page
    # What the person typed is kept.
    assert "http://ok.example/x" in page
    assert _count(sqlite_runtime) == 0


def test_the_page_speaks_serbian_or_english_by_header_switch_and_cookie(client):
    serbian = client.get("/report", headers={"accept-language": "sr-RS,sr;q=0.9,en;q=0.5"})
    assert '<html lang="sr-Latn">' in serbian.text
    assert "Prijavite nezakonit sadržaj" in serbian.text
    assert serbian.headers["content-language"] == "sr-Latn"
    english = client.get("/report", headers={"accept-language": "de-DE,en;q=0.8"})
    assert "Report illegal content" in english.text
    # The visible switch: a link per language; choosing one is remembered.
    assert 'href="/report?lang=en"' in serbian.text
    switched = client.get("/report?lang=en", headers={"accept-language": "sr"})
    assert '<html lang="en">' in switched.text
    assert switched.cookies.get("hotline_lang") == "en"
    later = client.get("/report", headers={"accept-language": "sr"})
    assert '<html lang="en">' in later.text
    # Errors come in the page's language.
    refused = _send(client, lang="sr-Latn", urls="")
    assert "Unesite adresu (URL) onoga što ste videli." in refused.text


def test_deployment_texts_come_from_the_configuration(public_runtime):
    runtime = public_runtime({"texts": {
        "en": {"hotline_name": "Net Watch", "helpline_number": "0800 123",
               "remit": "We take CSAM.", "elsewhere": "Call 192.",
               "not_handled": "Not fraud.", "privacy_notice": "Kept 30 days."}}})
    with TestClient(create_app(runtime)) as client:
        page = client.get("/report?lang=en").text
        for text in ("Net Watch", "0800 123", "We take CSAM.", "Call 192.",
                     "Not fraud.", "Kept 30 days."):
            assert text in page
        # Serbian has no texts here: the default language's (none) and the app name.
        assert "Hotline" in client.get("/report?lang=sr-Latn").text


def test_a_post_without_the_csrf_token_keeps_the_input_and_stores_nothing(
        client, sqlite_runtime):
    client.get("/report")
    response = _send(client, token="forged-token-forged-token-forged-token")
    assert response.status_code == 400
    assert "The form expired" in response.text
    assert "http://bad.example.com/a" in response.text
    assert _count(sqlite_runtime) == 0


def test_the_honeypot_field_stops_robots(client, sqlite_runtime):
    response = _send(client, leave_empty="http://spam.example/")
    assert response.status_code == 422
    assert _count(sqlite_runtime) == 0


def test_a_body_over_the_limit_or_not_a_form_is_refused_with_a_page(client, sqlite_runtime):
    big = client.post("/report", content=b"urls=" + b"a" * 70_000,
                      headers={"content-type": "application/x-www-form-urlencoded"})
    assert big.status_code == 413 and "Obrazac je prevelik" in big.text  # the default
    json_body = client.post("/report", json={"urls": "http://x.example/"})
    assert json_body.status_code == 415
    assert _count(sqlite_runtime) == 0


def test_the_per_address_limit_refuses_with_429_and_keeps_the_input(public_runtime):
    runtime = public_runtime({"address_limit": 2})
    with TestClient(create_app(runtime)) as client:
        assert _send(client).status_code == 201
        assert _send(client).status_code == 201
        third = _send(client, urls="http://third.example/")
        assert third.status_code == 429
        assert "Too many reports" in third.text and "http://third.example/" in third.text
        assert _count(runtime) == 2


def test_the_status_page_shows_the_public_status_only(client, sqlite_runtime):
    created = _send(client, lang="sr-Latn", urls="http://status.example/x")
    ref = re.search(r"R-[A-Z2-9]{4}(?:-[A-Z2-9]{4}){3}", created.text).group(0)
    page = client.get(f"/report/status?ref={ref.lower()}&lang=sr-Latn")
    assert page.status_code == 200
    # Settled at intake: on its case, waiting for tracing and an analyst.
    assert "Vašu prijavu obrađuje analitičar." in page.text
    assert "status.example" not in page.text  # no URL, no analysis
    english = client.get(f"/report/status?ref={ref}&lang=en")
    assert "Your report is being processed by an analyst." in english.text
    assert client.get("/report/status?ref=R-AAAA-AAAA-AAAA-AAAA").status_code == 404
    assert client.get("/report/status?ref=<script>").status_code == 422
    assert "&lt;script&gt;" in client.get("/report/status?ref=<script>").text.lower()


def test_the_form_carries_the_consoles_security_headers_and_no_outside_assets(client):
    response = client.get("/report")
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script" not in response.text
    assert not re.search(r'(src|href)="(https?:)?//', response.text)
    cookie = response.headers["set-cookie"]
    assert CSRF_COOKIE in cookie and "httponly" in cookie.lower()
    css = client.get("/report/static/public.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]


def test_a_flood_of_the_form_meets_the_global_limit_while_the_api_still_takes_reports(
        public_runtime):
    runtime = public_runtime({"global_limit": 3, "address_limit": 100})
    with TestClient(create_app(runtime)) as client:
        codes = [_send(client, urls=f"http://flood{n}.example/").status_code
                 for n in range(5)]
        assert codes == [201, 201, 201, 429, 429]
        api = client.post("/api/v1/reports", json={"url": "http://api.example/x",
                                                   "found_on": "forum"})
        assert api.status_code == 201
        assert _count(runtime) == 4
    with runtime.session_factory() as session:
        assert session.execute(select(Report.found_on).where(
            Report.url == "http://api.example/x")).scalar_one() == "forum"


def test_serbian_cyrillic_is_offered_when_configured(public_runtime):
    runtime = public_runtime({"languages": ["sr-Latn", "en", "sr-Cyrl"]})
    with TestClient(create_app(runtime)) as client:
        page = client.get("/report", headers={"accept-language": "sr-Cyrl-RS"})
        assert '<html lang="sr-Cyrl">' in page.text
        assert "Пријавите незаконит садржај" in page.text
        assert 'hreflang="sr-Cyrl"' in page.text and "Српски" in page.text


# ------------------------------------------------- asking for advice or help (helpline)


def _ask(client, token=None, **fields):
    data = {"csrf": token if token is not None else _token(client, fields.get("lang", "en")),
            "lang": "en", "purpose": "help", **fields}
    return client.post("/report", data=data)


def _contacts(runtime):
    from pipeline.store.helpline_models import HelplineContact

    with runtime.session_factory() as session:
        return session.execute(select(HelplineContact)).scalars().all()


def test_a_request_for_help_becomes_a_helpline_contact_not_a_report(client, sqlite_runtime):
    page = client.get("/report?lang=sr-Latn")
    assert 'id="help-form"' in page.text and "Zatražite savet ili pomoć" in page.text
    token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    answer = _ask(client, token, lang="sr-Latn", help_contact="mama@example.org",
                  message="Neko ucenjuje moju ćerku, profil https://bad.example.net/u/x",
                  urls="http://ignored.example/", category="csam")
    assert answer.status_code == 201, answer.text
    assert answer.headers["content-language"] == "sr-Latn"
    assert "Hvala: vaša poruka je stigla do savetnika" in answer.text
    assert "na kontakt koji ste ostavili" in answer.text
    [contact] = _contacts(sqlite_runtime)
    assert (contact.channel, contact.source, contact.counsellor) == ("contact_form", "form",
                                                                      "(form)")
    assert (contact.anonymous, contact.caller_contact) == (False, "mama@example.org")
    assert contact.language == "sr-Latn" and "https://bad.example.net/u/x" in contact.summary
    # Not a report: the URL waits in the summary until a counsellor forms a case.
    assert _count(sqlite_runtime) == 0 and sqlite_runtime.enqueuer.ids(NORMALISE) == []
    with sqlite_runtime.session_factory() as session:
        assert session.execute(select(Event.action).where(
            Event.action == "contact_recorded")).scalars().all() == ["contact_recorded"]
    again = _ask(client, token, message="twice")  # the token was renewed
    assert again.status_code == 400 and len(_contacts(sqlite_runtime)) == 1


def test_an_anonymous_request_for_help_is_told_we_cannot_answer(client, sqlite_runtime):
    answer = _ask(client, message="Someone keeps messaging my son.")
    assert answer.status_code == 201 and "You left no contact" in answer.text
    [contact] = _contacts(sqlite_runtime)
    assert contact.anonymous and contact.caller_contact is None


def test_a_request_for_help_is_checked_like_a_report(client, sqlite_runtime):
    empty = _ask(client, message="  ", help_contact="x" * 400)
    assert empty.status_code == 422
    assert "Your message was not sent yet" in empty.text
    assert 'href="#f-message"' in empty.text and 'href="#f-help_contact"' in empty.text
    assert 'aria-invalid="true"' in empty.text and "x" * 400 in empty.text  # input kept
    assert _ask(client, message="help", leave_empty="spam").status_code == 422
    assert _ask(client, token="forged-token-forged-token-forged-token",
                message="help").status_code == 400
    assert _contacts(sqlite_runtime) == [] and _count(sqlite_runtime) == 0


def test_requests_for_help_count_against_the_forms_limits(public_runtime):
    runtime = public_runtime({"address_limit": 2})
    with TestClient(create_app(runtime)) as client:
        assert _ask(client, message="first").status_code == 201
        assert _send(client).status_code == 201
        third = _ask(client, message="my third message")
        assert third.status_code == 429 and "my third message" in third.text
        assert len(_contacts(runtime)) == 1


def test_without_helpline_requests_the_form_offers_reports_only(public_runtime):
    runtime = public_runtime({"helpline_requests": False})
    with TestClient(create_app(runtime)) as client:
        assert 'id="help-form"' not in client.get("/report?lang=en").text
        refused = _ask(client, message="help me")  # read as a report without a URL
        assert refused.status_code == 422 and "Enter the address" in refused.text
        assert _contacts(runtime) == []
