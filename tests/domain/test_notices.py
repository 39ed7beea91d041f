"""Notices: a template per kind in Serbian and English from the catalogs (words,
never internal values), the machine-readable parts, the
confirmation link, the reporter's identity kept from everyone but the police, and no
header injection."""

from __future__ import annotations

import email
import json
import re
import uuid
from datetime import UTC, datetime
from email import policy
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select

from pipeline.core.config import Settings
from pipeline.domain.notices import (
    HeaderInjection,
    build_email,
    render_notice,
    safe_address,
    safe_header,
)
from pipeline.domain.rules import Destination, load_ruleset
from pipeline.stages.routing import route_cases
from pipeline.store.models import Case, Notice
from schemas.exchange import ExchangeMessage
from tests.factories import make_case, make_report

AT = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
RULES = load_ruleset(Path(__file__).resolve().parents[2] / "rules")
CONTACT = "jana.reporter@example.org"


def settings(**routing):
    return Settings(app={"name": "Net Patrola", "country": "RS"},
                    web={"public_url": "https://hotline.example.rs"},
                    dispatch={"sender_address": "notices@hotline.example.rs"},
                    routing=routing)


def case(**fields):
    values = dict(id=7, ref="C-ABC", canonical_url="http://bad.example.rs/x",
                  host="bad.example.rs", legality="illegal_international", category="csam",
                  hosting_country="RS", hosting_org="Host d.o.o.", hosting_asn=64500,
                  received_at=AT, assessed_at=AT, urgent=False)
    values.update(fields)
    return Case(**values)


def dest(kind="provider", language="en", **fields):
    values = dict(key=f"{kind}-x", kind=kind, name=f"The {kind}", language=language,
                  channel="smtp", address="abuse@host.example")
    values.update(fields)
    return Destination(**values)


def notice_from(rendered, destination, token="tok-123", address="abuse@host.example"):
    return Notice(id=1, case_id=7, destination=destination.key,
                  destination_kind=destination.kind, kind="notice", round=1, channel="smtp",
                  address=address, language=destination.language, state="planned",
                  token=token, subject=rendered.subject, body=rendered.body,
                  payload=rendered.payload, attempts=0, created_at=AT)


def test_provider_notices_are_written_in_serbian_or_english_and_fall_back_to_english():
    s = settings()
    sr = render_notice(case(), dest(language="sr"), token="t1", settings=s, at=AT)
    en = render_notice(case(), dest(language="en"), token="t1", settings=s, at=AT)
    de = render_notice(case(), dest(language="de"), token="t1", settings=s, at=AT)
    assert sr.subject == "Obaveštenje o nezakonitom sadržaju na bad.example.rs [C-ABC]"
    assert "materijal seksualnog zlostavljanja dece" in sr.body
    assert en.subject == "Notice of illegal content on bad.example.rs [C-ABC]"
    assert "child sexual abuse material" in en.body
    assert de.subject == en.subject


@pytest.mark.parametrize("kind", ["police", "institution", "hotline", "provider", "cdn",
                                  "registrar"])
@pytest.mark.parametrize("language", ["sr", "en"])
def test_every_destination_kind_has_a_template_in_serbian_and_english(kind, language):
    rendered = render_notice(case(), dest(kind=kind, language=language), token="t",
                             settings=settings(), at=AT)
    assert "C-ABC" in rendered.subject
    assert "http://bad.example.rs/x" in rendered.body


# Internal values a notice must never show (the words people use instead).
INTERNAL = re.compile(r"\b[a-z]+(?:_[a-z]+)+\b")
# A few words of each language's template text, to tell which language a notice is in.
ENGLISH_WORDS = re.compile(r"\b(the|Please|Reference|Received|assessed)\b")


@pytest.mark.parametrize("kind", ["police", "institution", "hotline", "provider"])
@pytest.mark.parametrize("legality", ["illegal_international", "illegal_national"])
@pytest.mark.parametrize("category", ["self_generated_csam", "racism_xenophobia",
                                      "child_erotica"])
def test_each_template_in_both_languages_shows_words_never_internal_values(
        kind, legality, category):
    s = settings(police_notices_include_reporter=True)
    the_case = case(legality=legality, category=category, urgent=True, cdn_name="Edge CDN")
    for language in ("sr", "en"):
        rendered = render_notice(the_case, dest(kind=kind, language=language), token="t",
                                 settings=s, at=AT, hold_until=AT,
                                 reporter_contacts=[CONTACT])
        shown = rendered.subject + "\n" + rendered.body
        for value in (legality, category):
            assert value not in shown
        assert INTERNAL.findall(shown.replace("hotline-exchange", "")) == [], shown
        if language == "sr":
            assert ENGLISH_WORDS.findall(shown) == [], shown
            assert "05.01.2026." in shown or kind == "provider"  # the Serbian date
        else:
            assert ENGLISH_WORDS.search(shown)
    sr = render_notice(the_case, dest(kind="police", language="sr"), token="t", settings=s,
                       at=AT)
    assert "samostalno napravljen" in sr.body or category != "self_generated_csam"
    assert "nezakonito prema međunarodnim standardima" in sr.body or (
        legality != "illegal_international")


def test_a_destination_without_a_language_gets_the_configured_one():
    no_language = dest(language=None)
    assert render_notice(case(), no_language, token="t", settings=settings(), at=AT
                         ).subject.startswith("Notice of illegal content")
    serbian = settings(notice_language="sr")
    assert render_notice(case(), no_language, token="t", settings=serbian, at=AT
                         ).subject.startswith("Obaveštenje o nezakonitom sadržaju")


def parse(message):
    """What a receiver sees: the bytes on the wire, parsed by the standard library."""
    return email.message_from_bytes(message.as_bytes(), policy=policy.default)


def test_a_provider_notice_is_an_xarf_email_with_three_parts_and_a_confirmation_link():
    s = settings()
    d = dest()
    rendered = render_notice(case(), d, token="tok-123", settings=s, at=AT)
    link = "https://hotline.example.rs/api/v1/notices/tok-123/confirm"
    assert link in rendered.body and "xarf.json" in rendered.body
    parsed = parse(build_email(notice_from(rendered, d), s, at=AT))
    assert parsed.get_content_type() == "multipart/report"
    assert parsed.get_param("report-type") == "feedback-report"
    assert parsed["Message-ID"] == "<tok-123@hotline.example.rs>"
    # XARF's e-mail binding: exactly three parts, in this order.
    text, feedback, xarf = parsed.get_payload()
    assert text.get_content_type() == "text/plain" and link in text.get_content()
    assert feedback.get_content_type() == "message/feedback-report"
    assert feedback.get_content_disposition() == "inline"
    (fields,) = feedback.get_payload()  # the parser reads message/* as a block of fields
    assert (fields["Feedback-Type"], fields["Version"]) == ("xarf", "1")
    assert fields["User-Agent"].startswith("hotline/")
    assert fields["Reported-Uri"] == "http://bad.example.rs/x"
    assert (xarf.get_content_type(), xarf.get_filename()) == ("application/json", "xarf.json")
    assert xarf["Content-Transfer-Encoding"] == "base64"
    report = json.loads(xarf.get_content())
    assert report == rendered.payload["xarf"]
    assert (report["xarf_version"], report["category"], report["type"], report["url"]) == (
        "4.0.0", "content", "csam", "http://bad.example.rs/x")
    assert (report["classification"], report["detection_method"]) == ("baseline",
                                                                      "manual_review")
    assert report["report_id"] == str(uuid.uuid5(uuid.NAMESPACE_URL,
                                                 "hotline-notice:tok-123"))
    assert report["confirmation_url"] == link and report["hotline_case"] == "C-ABC"


XARF_CORE_REQUIRED = {"xarf_version", "report_id", "timestamp", "reporter",
                      "source_identifier", "category", "type"}
XARF_TYPE_REQUIRED = {"csam": {"url", "classification", "detection_method"},
                      "csem": {"url", "exploitation_type", "detection_method"},
                      "phishing": {"url"}}


@pytest.mark.parametrize(("category", "xarf_type"), [
    ("csam", "csam"), ("self_generated_csam", "csam"), ("child_erotica", "csem"),
    ("grooming", "csem"), ("sextortion", "csem"), ("phishing", "phishing")])
def test_every_xarf_report_has_the_fields_the_v4_schemas_require(category, xarf_type):
    rendered = render_notice(case(category=category), dest(), token="t", settings=settings(),
                             at=AT)
    report = rendered.payload["xarf"]
    assert report["type"] == xarf_type
    assert XARF_CORE_REQUIRED | XARF_TYPE_REQUIRED[xarf_type] <= set(report)
    assert re.fullmatch(r"4\.[0-9]+\.[0-9]+", report["xarf_version"])
    assert uuid.UUID(report["report_id"]).version == 5
    assert datetime.fromisoformat(report["timestamp"]) == AT
    assert set(report["reporter"]) == {"org", "contact", "domain"}
    assert report["reporter"]["contact"] == "notices@hotline.example.rs"
    assert all(re.fullmatch(r"[a-z0-9_]+:[a-z0-9_]+", tag) for tag in report["tags"])
    if xarf_type == "csem":
        assert report["exploitation_type"] in {"grooming", "sextortion", "other"}


def test_a_hotline_notice_carries_the_case_in_the_exchange_format():
    s = settings()
    d = dest(kind="hotline", country="DE", key="hotline-de")
    rendered = render_notice(case(hosting_country="DE"), d, token="t", settings=s, at=AT)
    ExchangeMessage.model_validate(rendered.payload["exchange"])
    message = build_email(notice_from(rendered, d), s, at=AT)
    attachment = next(message.iter_attachments())
    assert attachment.get_filename() == "hotline-exchange.json"
    assert json.loads(attachment.get_content())["reports"][0]["reference"] == "C-ABC"


def test_the_reporter_is_named_only_to_the_police_and_only_when_configured():
    police = dest(kind="police", receives_reporter_identity=True)
    on, off = settings(police_notices_include_reporter=True), settings()
    assert CONTACT in render_notice(case(), police, token="t", settings=on, at=AT,
                                    reporter_contacts=[CONTACT]).body
    assert CONTACT not in render_notice(case(), police, token="t", settings=off, at=AT,
                                        reporter_contacts=[CONTACT]).body
    for kind in ("provider", "hotline", "institution", "cdn", "registrar"):
        rendered = render_notice(case(), dest(kind=kind, receives_reporter_identity=True),
                                 token="t", settings=on, at=AT, reporter_contacts=[CONTACT])
        assert CONTACT not in rendered.body + rendered.subject + json.dumps(rendered.payload)


def test_routing_a_reported_case_names_the_reporter_to_no_one_but_the_police(
    sqlite_runtime, settings_factory
):
    rt = sqlite_runtime
    on = settings_factory(routing={"police_notices_include_reporter": True})
    with rt.session_factory.begin() as session:
        c = make_case(session, at=rt.clock.now(), state="assessed",
                      legality="illegal_international", hosting_country="RS",
                      hosting_abuse_email="abuse@host.rs", behind_cdn=True,
                      cdn_name="cloudflare")
        make_report(session, at=rt.clock.now(), state="new_case", case_id=c.id,
                    reporter_contact=CONTACT)
        route_cases(session, [c.id], clock=rt.clock, settings=on, ruleset=RULES)
    with rt.session_factory() as session:
        notices = list(session.execute(select(Notice)).scalars())
    assert sorted(n.destination_kind for n in notices) == ["cdn", "police", "provider"]
    for n in notices:
        everything = (n.subject or "") + (n.body or "") + json.dumps(n.payload)
        assert (CONTACT in everything) == (n.destination_kind == "police")


def test_a_header_value_with_a_line_break_is_refused():
    with pytest.raises(HeaderInjection):
        safe_header("Subject", "hello\r\nBcc: victim@example.org")
    with pytest.raises(HeaderInjection):
        safe_address("To", "abuse@host.example\nBcc: victim@example.org")
    with pytest.raises(HeaderInjection):
        safe_address("To", "abuse@host.example, victim@example.org")
    with pytest.raises(HeaderInjection):
        render_notice(case(host="bad.example\r\nBcc: x@y.z"), dest(), token="t",
                      settings=settings(), at=AT)


def test_a_notice_to_an_address_carrying_extra_headers_is_never_built():
    s = settings()
    d = dest()
    rendered = render_notice(case(), d, token="t", settings=s, at=AT)
    with pytest.raises(HeaderInjection):
        build_email(notice_from(rendered, d, address="a@b.example\r\nBcc: c@d.example"), s,
                    at=AT)


@given(st.text(max_size=200))
def test_any_subject_either_is_refused_or_arrives_as_one_header(subject):
    s = settings()
    d = dest()
    rendered = render_notice(case(), d, token="t", settings=s, at=AT)
    n = notice_from(rendered, d)
    n.subject = subject
    try:
        message = build_email(n, s, at=AT)
    except HeaderInjection:
        assert any((ord(ch) < 32 and ch != "\t") or 127 <= ord(ch) <= 159
                   or ch in "\u2028\u2029" for ch in subject)
        return
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert len(parsed.get_all("To")) == 1
    assert str(parsed["Subject"]).split() == subject.split()


def test_the_published_exchange_schema_file_matches_the_model():
    from schemas.exchange import json_schema

    published = Path(__file__).resolve().parents[2] / "schemas" / "exchange.schema.json"
    assert json.loads(published.read_text()) == json_schema(), (
        "regenerate schemas/exchange.schema.json from schemas.exchange.json_schema()")


@pytest.mark.parametrize("fields", [{"category": "hate_speech"},
                                    {"category": "terrorist_content"},
                                    {"category": "csam", "legality": "illegal_national"}])
def test_a_provider_notice_without_an_xarf_type_is_the_text_alone(fields):
    """No report part that would claim to be ARF without the third part RFC 5965
    requires."""
    s = settings()
    d = dest()
    rendered = render_notice(case(**fields), d, token="t", settings=s, at=AT)
    assert "xarf" not in rendered.payload and "XARF" not in rendered.body
    assert "https://hotline.example.rs/api/v1/notices/t/confirm" in rendered.body
    parsed = parse(build_email(notice_from(rendered, d), s, at=AT))
    assert parsed.get_content_type() == "text/plain" and not parsed.is_multipart()
    assert "confirm" in parsed.get_content()
