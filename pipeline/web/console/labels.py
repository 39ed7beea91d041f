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


# What each audit action is called in a case's history (the actions the state tables
# in `pipeline.store.states` and the stages write; tests/web/console/
# test_labels_history.py fails on an action that can be written without words here).
ACTIONS: dict[str, str] = {
    # reports
    "report_received": N_("report received"),
    "report_normalised": N_("report checked"),
    "report_rejected": N_("report rejected"),
    "report_joined_case": N_("report joined an open case"),
    "report_opened_case": N_("report opened a case"),
    "report_requeued": N_("report checked again for duplicates"),
    "report_data_purged": N_("report data deleted (retention)"),
    # cases
    "case_opened": N_("case opened"),
    "case_traced": N_("hosting traced"),
    "case_queued": N_("placed in the assessment queue"),
    "case_claimed": N_("claimed for assessment"),
    "case_claimed_for_second": N_("claimed for a second assessment"),
    "case_released": N_("put back in the queue"),
    "case_lease_expired": N_("back in the queue: the hold ran out"),
    "case_assessed": N_("assessed"),
    "case_needs_second_assessment": N_("sent for a second assessment"),
    "case_confirmed": N_("confirmed by a second analyst"),
    "case_disputed": N_("disputed: the two analysts disagreed"),
    "case_decided_by_supervisor": N_("decided by a supervisor"),
    "case_routed": N_("routed to its destinations"),
    "case_closed": N_("closed"),
    "case_held_for_police": N_("held for the police"),
    "case_police_cleared": N_("cleared by the police"),
    "police_hold_extended": N_("police hold extended"),
    "case_notified": N_("notices sent"),
    "case_monitoring": N_("removal being monitored"),
    "case_removed": N_("content removed"),
    "removal_claimed": N_("removal reported by the receiver"),
    "case_retraced": N_("traced again: the content moved"),
    "case_retrace_unreachable": N_("traced again: the registries were unreachable"),
    "case_rerouted": N_("routed again after the content moved"),
    "case_gone_before_notice": N_("gone before any notice"),
    "case_takedown_inconclusive": N_("removal checks inconclusive: back to an analyst"),
    "case_reminded": N_("reminder planned"),
    "case_escalated": N_("escalation planned"),
    "case_escalation_unresolved": N_("escalation without a destination"),
    "case_data_purged": N_("case data deleted (retention)"),
    "reporter_contact_viewed": N_("reporter's contact viewed"),
    "evidence_exported": N_("evidence exported"),
    # notices
    "notice_sent": N_("notice sent"),
    "notice_unconfirmed": N_("notice unconfirmed"),
    "notice_dead": N_("notice failed for good"),
    "notice_claim_lost": N_("notice sender stopped; sent again"),
    "notice_confirmed": N_("notice confirmed by the receiver"),
    "notice_confirmed_sent": N_("unconfirmed notice resolved: the receiver has it"),
    "notice_send_again": N_("unconfirmed notice resolved: to be sent again"),
    # helpline
    "contact_recorded": N_("contact recorded"),
    "contact_taken_up": N_("contact taken up by a counsellor"),
    "mail_to_helpline": N_("mail message turned into a helpline contact"),
    "helpline_case_formed": N_("helpline case formed"),
    "helpline_case_closed_advisory": N_("closed as advisory"),
    "helpline_case_referred": N_("referred to institutions"),
    "helpline_case_referred_again": N_("referred to one more institution"),
    "helpline_case_answered": N_("answered by the institutions"),
    "helpline_case_closed": N_("helpline case closed"),
    "helpline_case_reopened": N_("helpline case reopened"),
    "helpline_contact_joined": N_("contact added to the case"),
    "helpline_urls_reported": N_("URLs reported into the URL pipeline"),
    "helpline_task_added": N_("task added"),
    "helpline_task_done": N_("task done"),
    "helpline_referral_planned": N_("referral planned"),
    "helpline_referral_replied": N_("institution replied"),
    "helpline_referral_reminded": N_("institution reminded"),
    "helpline_data_purged": N_("helpline data deleted (retention)"),
    "helpline_data_reencrypted": N_("helpline data re-encrypted"),
    "legal_hold_set": N_("legal hold set"),
    "legal_hold_lifted": N_("legal hold lifted"),
    # people, access and operations
    "access_denied": N_("access denied"),
    "authentication_failed": N_("authentication failed"),
    "console_login": N_("logged in to the console"),
    "console_login_failed": N_("console login failed"),
    "console_login_throttled": N_("console login refused: too many attempts"),
    "console_logout": N_("logged out of the console"),
    "password_changed": N_("password changed"),
    "password_reset": N_("password reset"),
    "user_added": N_("user added"),
    "user_activated": N_("user activated"),
    "user_deactivated": N_("user deactivated"),
    "token_issued": N_("API token issued"),
    "token_revoked": N_("API token revoked"),
    "contacts_reencrypted": N_("reporter contacts re-encrypted"),
    "retention_run": N_("retention run"),
    "url_export": N_("URLs exported"),
    "mail_looked_at": N_("mail looked at"),
}


def action_label(action: str | None) -> str:
    """The words for an audit action in the current language (`case_claimed` ->
    `claimed for assessment`); an action without words, with spaces for underscores."""
    if not action:
        return ""
    words = ACTIONS.get(action)
    return _(words) if words is not None else action.replace("_", " ")


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
