"""What the console calls each internal value, as people say it, in gettext catalogs.

The schema's enums and the state tables hold values such as `illegal_international`;
pages never show those. `label(value)` gives the words for a value (translated into
the language of the current request); `tests/web/console/test_i18n_console.py` fails
on an enum value without words here.
"""

from __future__ import annotations

from typing import Any

from pipeline.core.i18n import N_, _

LABELS: dict[str, str] = {
    # legality
    "illegal_international": N_("illegal everywhere (international baseline)"),
    "illegal_national": N_("illegal under national law"),
    "not_illegal": N_("not illegal"),
    "content_not_available": N_("content not available"),
    "out_of_remit": N_("out of remit"),
    # categories
    "csam": N_("child sexual abuse material"),
    "self_generated_csam": N_("self-generated"),
    "child_erotica": N_("child erotica"),
    "grooming": N_("grooming"),
    "sextortion": N_("sextortion"),
    "hate_speech": N_("hate speech"),
    "racism_xenophobia": N_("racism and xenophobia"),
    "terrorist_content": N_("terrorist content"),
    "phishing": N_("phishing"),
    "other": N_("other"),
    # age groups
    "infant": N_("infant"),
    "pre_pubescent": N_("pre-pubescent"),
    "pubescent": N_("pubescent"),
    "not_determined": N_("not determined"),
    # gender
    "female": N_("female"),
    "male": N_("male"),
    "both": N_("both"),
    # site types
    "website": N_("website"),
    "image_host": N_("image host"),
    "file_host": N_("file host"),
    "video_channel": N_("video channel"),
    "forum": N_("forum"),
    "image_board": N_("image board"),
    "blog": N_("blog"),
    "social_network": N_("social network"),
    "chat": N_("chat"),
    "web_archive": N_("web archive"),
    "search_engine": N_("search engine"),
    "redirector": N_("redirector"),
    # content types
    "image": N_("image"),
    "video": N_("video"),
    "image_and_video": N_("images and video"),
    "text": N_("text"),
    "audio": N_("audio"),
    # case states
    "normalised": N_("tracing"),
    "traced": N_("traced"),
    "awaiting_assessment": N_("awaiting assessment"),
    "in_assessment": N_("being assessed"),
    "awaiting_second_assessment": N_("awaiting a second analyst"),
    "awaiting_supervisor": N_("disputed (supervisor)"),
    "assessed": N_("assessed"),
    "routed": N_("routed"),
    "police_hold": N_("held for the police"),
    "notified": N_("notified"),
    "monitoring": N_("monitoring"),
    "removed": N_("removed"),
    "closed": N_("closed"),
    # report states
    "received": N_("received"),
    "rejected": N_("rejected"),
    "duplicate": N_("duplicate"),
    "new_case": N_("new case"),
    # takedown stages
    "police_notified": N_("police notified"),
    "police_cleared": N_("police cleared"),
    "provider_notified": N_("provider notified"),
    "hotline_notified": N_("partner hotline notified"),
    # notice states
    "planned": N_("planned"),
    "held": N_("held for the police"),
    "sending": N_("being sent"),
    "handing_over": N_("being handed over"),
    "sent": N_("sent"),
    "failed": N_("failed"),
    "dead": N_("dead"),
    "unconfirmed": N_("unconfirmed"),
    "notice": N_("notice"),
    "reminder": N_("reminder"),
    "escalation": N_("escalation"),
    "smtp": N_("e-mail"),
    "webhook": N_("webhook"),
    "file": N_("written to outbox"),
    "cancelled": N_("cancelled"),
    # trace outcomes a person sets
    "sent_on_by_hand": N_("origin unknown: sent on by hand"),
    # lease kinds and assessment kinds
    "first": N_("first assessment"),
    "second": N_("second assessment"),
    "supervisor": N_("supervisor"),
    "commercial": N_("commercial"),
    # roles
    "analyst": N_("analyst"),
    "admin": N_("administrator"),
    "auditor": N_("auditor"),
    # destination kinds
    "police": N_("police"),
    "provider": N_("hosting provider"),
    "hotline": N_("partner hotline"),
    "registrar": N_("registrar"),
    "cdn": N_("CDN"),
    "institution": N_("institution"),
    "upstream": N_("upstream provider"),
}


def label(value: Any) -> str:
    """The words for an internal value in the current language (`self_generated_csam`
    -> `self-generated`); a value without words is shown with spaces for underscores."""
    if value is None or value == "":
        return ""
    text = str(value)
    words = LABELS.get(text)
    if words is None:
        return text.replace("_", " ")
    return _(words)
