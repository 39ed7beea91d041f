"""Notices: rendered from templates, built into messages that cannot carry injected
headers.

- `render_notice` fills the template for the destination's kind
  (`pipeline/templates/notices/<kind>.txt`, with `subject` and `body` blocks) in the
  destination's language (`notice_language`): the text comes from the gettext
  catalogs, categories and legality in words (`CATEGORY_LABELS`, `LEGALITY_LABELS`),
  never as internal values; and it builds the machine-readable payload: an
  XARF v4 `content` report for providers, registrars and CDNs, the exchange format
  for hotlines. It is called when the notice is planned, so a retry sends the same
  text.
- Provider notices travel as XARF's e-mail binding (xarf.org, "Email Transport"):
  `multipart/report; report-type=feedback-report` with exactly three parts, the text,
  a `message/feedback-report` part with `Feedback-Type: xarf` (XARF's own, unofficial
  extension of RFC 5965: a plain ARF parser rejects it, as XARF intends), and the
  XARF JSON as `xarf.json`. This is not ARF: RFC 5965's third part is the reported
  message or its headers, and a URL report has no such message. A category XARF has
  no type for (hate speech, terrorist content...) gets the text alone, with no
  report part pretending to be ARF.
- The reporter's contact details reach the template only for a police destination
  that may receive them, and only when `routing.police_notices_include_reporter` is
  on. Every other notice is rendered without them, whatever the caller passes.
- `build_email` makes an `email.message.EmailMessage`; every header value goes
  through `safe_header`, which refuses CR, LF and other control characters.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateNotFound

from pipeline.core import i18n
from pipeline.core.clock import as_utc
from pipeline.core.config import Settings
from pipeline.core.errors import BadInput
from pipeline.core.i18n import N_
from pipeline.domain.rules import Destination
from pipeline.store.models import Case, Notice
from schemas.exchange import ExchangeHosting, ExchangeMessage, ExchangeReport, ExchangeSender

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "notices"
LANGUAGES = ("sr", "en")
USER_AGENT = "hotline/0.1"

# Which template a destination kind uses.
TEMPLATE_OF_KIND = {
    "police": "police",
    "institution": "institution",
    "provider": "provider",
    "registrar": "provider",
    "cdn": "provider",
    "upstream": "provider",
    "hotline": "hotline",
}
# Kinds whose notices carry an XARF report and a confirmation link.
TAKEDOWN_KINDS = frozenset({"provider", "registrar", "cdn", "upstream"})

# XARF v4 `content` types by content category (xarf-spec, schemas/v4/types). XARF has
# no type for hate speech, racism or terrorist content: those notices are text only.
XARF_TYPE = {
    "csam": "csam", "self_generated_csam": "csam", "child_erotica": "csem",
    "grooming": "csem", "sextortion": "csem", "phishing": "phishing",
}
# `exploitation_type` of a `csem` report (required by its schema).
XARF_EXPLOITATION = {"grooming": "grooming", "sextortion": "sextortion",
                     "child_erotica": "other"}
XARF_VERSION = "4.0.0"
XARF_FEEDBACK_TYPE = "xarf"
_XARF_TAG = re.compile(r"[^a-z0-9_]+")

# Content categories and legality as a notice names them (gettext msgids: the text
# comes from the catalogs in the destination's language), never the internal values.
CATEGORY_LABELS = {
    "csam": N_("child sexual abuse material"),
    "self_generated_csam": N_("self-generated child sexual abuse material"),
    "child_erotica": N_("sexualised images of children"),
    "grooming": N_("grooming of children"),
    "sextortion": N_("sexual extortion"),
    "hate_speech": N_("hate speech"),
    "racism_xenophobia": N_("racist and xenophobic content"),
    "terrorist_content": N_("terrorist content"),
    "phishing": N_("phishing"),
    "other": N_("other illegal content"),
}
LEGALITY_LABELS = {
    "illegal_international": N_("illegal under international standards"),
    "illegal_national": N_("illegal under national law"),
    "not_illegal": N_("not illegal"),
    "content_not_available": N_("content no longer available"),
    "out_of_remit": N_("outside the hotline's remit"),
}
_NOT_ASSESSED = N_("not yet assessed")

# Control characters (C0 but tab, DEL, C1) and every other character Python counts as
# a line boundary (str.splitlines): none may appear in a header value.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


class HeaderInjection(BadInput):
    """A header value carried a line break or another control character."""


def safe_header(name: str, value: str) -> str:
    """The value, if it is safe to put in header `name`; otherwise `HeaderInjection`."""
    if _CONTROL.search(value) or len(value.splitlines()) > 1:
        raise HeaderInjection(f"header {name}: control characters (CR, LF...) are not allowed")
    return value


def safe_address(name: str, value: str) -> Address:
    """One e-mail address, checked and parsed (no display-name tricks, no lists)."""
    safe_header(name, value)
    try:
        address = Address(addr_spec=value.strip())
    except (ValueError, IndexError) as exc:
        raise HeaderInjection(f"header {name}: not one e-mail address: {exc}") from None
    if not address.domain or not address.username:
        raise HeaderInjection(f"header {name}: not one e-mail address")
    return address


@dataclass(frozen=True)
class Rendered:
    subject: str
    body: str
    payload: dict[str, Any]
    language: str = "en"  # the language it is written in: sr or en


def _environment() -> Environment:
    return Environment(  # noqa: S701 - plain-text notices, not HTML
        loader=FileSystemLoader(str(TEMPLATES)),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


# Every notice's text comes from the gettext catalogs (pipeline/locale), rendered in
# the destination's language: Serbian (Latin) for `sr`, English otherwise.
_i18n_env = i18n.install(_environment())


def notice_language(destination: Destination, settings: Settings) -> str:
    """The language of a destination's notices: its own (`language` in
    destinations.yaml), else `routing.notice_language`; Serbian for `sr*`, English
    for anything else. A language tag of `pipeline.core.i18n`."""
    lang = (destination.language or settings.routing.notice_language).split("-")[0].lower()
    return i18n.SERBIAN_LATIN if lang == "sr" else i18n.ENGLISH


def template_for(kind: str) -> str:
    """The template of a destination kind (one per kind, its text from the catalogs)."""
    return f"{TEMPLATE_OF_KIND[kind]}.txt"


def confirm_url(settings: Settings, token: str) -> str:
    return f"{settings.web.public_url.rstrip('/')}/api/v1/notices/{token}/confirm"


def xarf_report_id(token: str) -> str:
    """XARF wants a UUID as report_id: one derived from the notice token, so every
    retry of a notice carries the same report."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"hotline-notice:{token}"))


def xarf_report(case: Case, settings: Settings, token: str, at: datetime
                ) -> dict[str, Any] | None:
    """An XARF v4 `content` report for abuse desks that parse them, with the fields the
    v4 core and type schemas require; None when XARF has no type for the case's
    category, or for CSAM that is not illegal under the international baseline (the
    `csam` type's `classification` has no value for national law)."""
    category = case.category or case.claimed_category or ""
    xarf_type = XARF_TYPE.get(category)
    if xarf_type is None:
        return None
    if xarf_type == "csam" and case.legality != "illegal_international":
        return None
    sender_domain = settings.dispatch.sender_address.rpartition("@")[2] or "localhost"
    party = {"org": settings.app.name[:200], "contact": settings.dispatch.sender_address,
             "domain": sender_domain}
    report: dict[str, Any] = {
        "xarf_version": XARF_VERSION,
        "report_id": xarf_report_id(token),
        "timestamp": _utc(at),
        "reporter": party,
        "sender": party,
        "source_identifier": case.host or case.canonical_url,
        "category": "content",
        "type": xarf_type,
        "url": case.canonical_url,
        "evidence_source": "user_report",
        "verification_method": "manual",
    }
    if case.host:
        report["domain"] = case.host
    if case.hosting_country:
        report["country_code"] = case.hosting_country.upper()
    if case.hosting_asn:
        report["asn"] = case.hosting_asn
    if case.assessed_at:
        report["verified_at"] = _utc(case.assessed_at)
    if xarf_type == "csam":
        report["classification"] = "baseline"
        report["detection_method"] = "manual_review"
    elif xarf_type == "csem":
        report["exploitation_type"] = XARF_EXPLOITATION.get(category, "other")
        report["detection_method"] = "manual_review"
    report["tags"] = [f"legality:{_XARF_TAG.sub('_', (case.legality or 'unknown').lower())}"]
    # Fields of ours (XARF allows additional properties at the report level).
    report["hotline_case"] = case.ref
    report["hotline_notice"] = token
    report["confirmation_url"] = confirm_url(settings, token)
    return report


def _utc(at: datetime) -> str:
    return as_utc(at).isoformat().replace("+00:00", "Z")


def exchange_message(case: Case, settings: Settings, at: datetime) -> dict[str, Any]:
    """The case in the hotline exchange format (schemas/exchange.py)."""
    message = ExchangeMessage(
        sender=ExchangeSender(name=settings.app.name, country=settings.app.country),
        sent_at=at,
        reports=[ExchangeReport(
            reference=case.ref,
            url=case.canonical_url,
            received_at=case.received_at,
            category=case.category,
            legality=case.legality,
            hosting=ExchangeHosting(country=case.hosting_country, asn=case.hosting_asn,
                                    org=case.hosting_org, cdn=case.cdn_name),
            urgent=case.urgent,
        )],
    )
    return message.model_dump(mode="json")


def render_notice(
    case: Case,
    destination: Destination,
    *,
    token: str,
    settings: Settings,
    at: datetime,
    reporter_contacts: list[str] | None = None,
    hold_until: datetime | None = None,
) -> Rendered:
    """Subject, text and machine-readable payload of one notice."""
    name, lang = template_for(destination.kind), notice_language(destination, settings)
    may_identify = (
        destination.kind == "police"
        and destination.receives_reporter_identity
        and settings.routing.police_notices_include_reporter
    )
    contacts = [c for c in (reporter_contacts or []) if c] if may_identify else []
    category = case.category or case.claimed_category or "other"
    context = {
        "hotline": {"name": settings.app.name, "country": settings.app.country,
                    "public_url": settings.web.public_url},
        "case": {
            "ref": case.ref, "url": case.canonical_url, "host": case.host or "",
            "category": category,
            "category_label": i18n.gettext(lang, CATEGORY_LABELS.get(
                category, CATEGORY_LABELS["other"])),
            "legality_label": i18n.gettext(lang, LEGALITY_LABELS.get(
                case.legality or "", _NOT_ASSESSED)),
            "hosting_country": case.hosting_country or "",
            "hosting_org": case.hosting_org or "", "hosting_asn": case.hosting_asn,
            "cdn_name": case.cdn_name or "", "received_at": case.received_at,
            "assessed_at": case.assessed_at, "urgent": case.urgent,
        },
        "destination": {"name": destination.name, "kind": destination.kind},
        "notice": {"token": token, "confirm_url": confirm_url(settings, token)},
        "reporter_contacts": contacts,
        "xarf": False,
        "hold_until": hold_until,
        "at": at,
    }
    xarf = (xarf_report(case, settings, token, at)
            if destination.kind in TAKEDOWN_KINDS else None)
    context["xarf"] = xarf is not None
    try:
        template = _i18n_env.get_template(name)
    except TemplateNotFound:
        raise BadInput(f"no notice template {name}") from None
    with i18n.set_language(lang):
        subject = "".join(template.blocks["subject"](template.new_context(context))).strip()
        body = "".join(template.blocks["body"](template.new_context(context))).strip() + "\n"
    safe_header("Subject", subject)
    payload: dict[str, Any] = {"case_ref": case.ref, "url": case.canonical_url}
    if destination.kind in TAKEDOWN_KINDS:
        payload["takedown"] = True
        payload["host"] = case.host
        if xarf is not None:
            payload["xarf"] = xarf
    if destination.kind == "hotline":
        payload["exchange"] = exchange_message(case, settings, at)
    return Rendered(subject=subject, body=body, payload=payload,
                    language="sr" if lang == i18n.SERBIAN_LATIN else "en")


def message_id(notice: Notice, settings: Settings) -> str:
    domain = settings.dispatch.sender_address.rpartition("@")[2] or "localhost"
    return f"<{notice.token}@{domain}>"


def _feedback_report(notice: Notice) -> str:
    """The second part of XARF's e-mail binding (message/feedback-report): the three
    fields it requires, plus RFC 5965's optional Reported-Uri / Reported-Domain."""
    fields = [("Feedback-Type", XARF_FEEDBACK_TYPE), ("User-Agent", USER_AGENT),
              ("Version", "1")]
    url = notice.payload.get("url")
    if url:
        fields.append(("Reported-Uri", str(url)))
    if notice.payload.get("host"):
        fields.append(("Reported-Domain", str(notice.payload["host"])))
    lines = [f"{key}: {safe_header(key, value)}" for key, value in fields]
    return "\r\n".join(lines) + "\r\n"


# Helpline case types and age groups as a referral names them (gettext msgids).
HELPLINE_TYPE_LABELS = {
    "sextortion": N_("sexual extortion"), "grooming": N_("grooming of a child"),
    "cyberbullying": N_("cyberbullying"), "hate_speech": N_("hate speech"),
    "csam": N_("child sexual abuse material"), "self_harm": N_("self-harm"),
    "other": N_("other harm to a child online"),
}
AGE_GROUP_LABELS = {
    "under_10": N_("under 10"), "10_13": N_("10 to 13"), "14_15": N_("14 or 15"),
    "16_17": N_("16 or 17"), "adult": N_("adult"), "unknown": N_("not known"),
}


def render_helpline_referral(context: dict[str, Any], destination: Destination
                             ) -> tuple[str, str, str]:
    """Subject, text and language of a helpline case's referral to an institution
    (`helpline_referral.txt`, text from the catalogs). `context["personal"]` holds the
    caller's and the child's data only when the caller found the institution allowed
    to receive them (`Destination.receives_personal_data`); the template prints what
    it is given."""
    lang = (destination.language or "en").split("-")[0].lower()
    if lang not in LANGUAGES:
        lang = "en"
    tag = i18n.SERBIAN_LATIN if lang == "sr" else i18n.ENGLISH
    case = dict(context["case"])
    case["type_label"] = i18n.gettext(tag, HELPLINE_TYPE_LABELS.get(
        case["case_type"], HELPLINE_TYPE_LABELS["other"]))
    age = case.get("child_age_group")
    case["age_label"] = i18n.gettext(tag, AGE_GROUP_LABELS[age]) if age in AGE_GROUP_LABELS \
        else ""
    full = {**context, "case": case,
            "destination": {"name": destination.name, "kind": destination.kind}}
    template = _i18n_env.get_template("helpline_referral.txt")
    with i18n.set_language(tag):
        subject = "".join(template.blocks["subject"](template.new_context(full))).strip()
        body = "".join(template.blocks["body"](template.new_context(full))).strip() + "\n"
    safe_header("Subject", subject)
    return subject, body, lang


def build_email(notice: Notice, settings: Settings, *, at: datetime) -> EmailMessage:
    """The e-mail for a notice. A takedown notice with an XARF report is a
    multipart/report in XARF's e-mail binding: the text, the message/feedback-report
    part (`Feedback-Type: xarf`) and `xarf.json`, base64; without one it is the text
    alone. Hotlines get the exchange JSON attached (multipart/mixed)."""

    if not notice.address:
        raise BadInput(f"notice {notice.id} has no address")
    msg = EmailMessage()
    msg["From"] = safe_address("From", settings.dispatch.sender_address)
    msg["To"] = safe_address("To", notice.address)
    msg["Subject"] = safe_header("Subject", notice.subject or "")
    msg["Date"] = format_datetime(at)
    msg["Message-ID"] = safe_header("Message-ID", message_id(notice, settings))
    msg["X-Hotline-Notice"] = safe_header("X-Hotline-Notice", notice.token)
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(notice.body or "", subtype="plain", charset="utf-8")
    xarf = notice.payload.get("xarf")
    if xarf is not None:
        feedback = EmailMessage()
        feedback["Content-Type"] = "message/feedback-report"
        feedback["Content-Disposition"] = "inline"
        feedback.set_payload(_feedback_report(notice))
        msg.make_mixed()
        msg.attach(feedback)
        msg.add_attachment(json.dumps(xarf, indent=2, ensure_ascii=False).encode(),
                           maintype="application", subtype="json", filename="xarf.json",
                           cte="base64")
        msg.set_type("multipart/report")
        msg.set_param("report-type", "feedback-report")
    exchange = notice.payload.get("exchange")
    if exchange is not None:
        msg.add_attachment(json.dumps(exchange, indent=2, ensure_ascii=False).encode(),
                           maintype="application", subtype="json",
                           filename="hotline-exchange.json")
    evidence = notice.payload.get("evidence")
    if evidence is not None:  # a helpline referral: its evidence bundle, as a zip
        msg.add_attachment(base64.b64decode(evidence["zip"]), maintype="application",
                           subtype="zip", filename=safe_header("filename", evidence["name"]))
    return msg


def webhook_body(notice: Notice, settings: Settings) -> dict[str, Any]:
    """The JSON a webhook destination receives."""
    body: dict[str, Any] = {
        "notice": notice.token,
        "destination": notice.destination,
        "kind": notice.kind,
        "round": notice.round,
        "case": notice.payload.get("case_ref"),
        "url": notice.payload.get("url"),
        "subject": notice.subject,
        "text": notice.body,
        "sender": {"name": settings.app.name, "country": settings.app.country},
    }
    for key in ("xarf", "exchange", "evidence"):
        if key in notice.payload:
            body[key] = notice.payload[key]
    return body
