"""The helpline: contacts, helpline cases, referrals to institutions.

A counsellor records every communication (a contact). A contact may form a helpline
case or join one. A case is closed as advisory (advice given) or referred to one or
more institutions from the directory (`rules/destinations.yaml`, entries with
`helpline_referral: true`). URLs inside a case enter the URL pipeline as reports
linked to the case, through the same intake function as every other report.

Steps of `record_contact`:
1. store the contact (caller contact and summary encrypted at rest) and its
   `contact_recorded` event;
2. form a new case (state `open`, through `lifecycle.transition`) or join the one
   named; a new case's URLs become reports (`pipeline.stages.intake.store_reports`);
3. walk the helpline rules (`rules/helpline.yaml`, the routing evaluator): a hit
   pages its institution at once, i.e. refers the case to it now;
4. return what the caller must enqueue after the commit (reports to normalise,
   notices to dispatch): nothing is enqueued before the rows are committed.

Steps of `refer` (for each institution, once):
1. lock the case; skip an institution it was already referred to (exactly once:
   also a unique key on the referrals and on the notices);
2. build the evidence bundle (`pipeline.stages.evidence.seal`: files, SHA-256 manifest,
   SHA256SUMS), with the caller's and child's data only for an institution whose
   `receives_personal_data` is on;
3. render the referral (`helpline_referral.<sr|en>.txt`) and write it as a notice in
   the dispatch outbox (`notices`, with `helpline_case_id`), with the bundle as a
   zip attachment; the dispatcher delivers it once like every notice;
4. record the referral, move the case to `referred`, audit.

`plan_reminders` (scheduler) sends a reminder to an institution that has not
replied after `helpline.reply_reminder_working_hours` of working time
(`pipeline.core.worktime`), at most `helpline.max_reminders` times.

`purge_personal_data` (retention) empties the encrypted fields a set time after a
case ended, unless a legal hold is active.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import re
import secrets
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import yaml
from pydantic import ValidationError
from sqlalchemy import Table, exists, func, or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.clock import Clock, as_utc
from pipeline.core.config import Settings
from pipeline.core.config_files import load_yaml
from pipeline.core.errors import BadInput, FieldError, IllegalTransition, NotFound
from pipeline.core.i18n import N_
from pipeline.core.messaging import DISPATCH, NORMALISE, Enqueuer
from pipeline.core.worktime import WorkCalendar
from pipeline.domain.notices import render_helpline_referral
from pipeline.domain.problems import FIELD_LABELS
from pipeline.domain.rules import (
    Destination,
    Directory,
    Notify,
    Rule,
    RuleFile,
    RulesInvalid,
    cached_ruleset,
    evaluate,
)
from pipeline.stages.evidence import canonical_json, seal, verify_streams
from pipeline.stages.intake import new_reference, store_reports
from pipeline.store import audit
from pipeline.store.audit import build_event
from pipeline.store.db import insert_ignoring_conflicts, lock_one
from pipeline.store.helpline_models import (
    HelplineCase,
    HelplineCaseReport,
    HelplineContact,
    HelplineReferral,
    HelplineTask,
)
from pipeline.store.lifecycle import transition
from pipeline.store.mail_models import HELPLINE as MAIL_HELPLINE
from pipeline.store.mail_models import LOOK_AT, MailMessage
from pipeline.store.models import Case, Event, Notice, Report, User
from pipeline.store.ops_models import LegalHold
from pipeline.store.states import HELPLINE_ENDED_STATES, HelplineCaseState, NoticeState
from schemas.helpline import (
    CaseIn,
    ContactIn,
    ContactOut,
    CounsellorWelfare,
    HelplineCaseOut,
    LinkedReportOut,
    ReferralOut,
    ReplyIn,
    TaskIn,
    TaskOut,
)
from schemas.intake import Category, ReportIn
from schemas.intake import Channel as ReportChannel

log = logging.getLogger(__name__)
T = TypeVar("T")
INCOMING_SOURCES = ("mailbox", "form")  # contacts no counsellor recorded
_LANGUAGE_TAG = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

H = HelplineCaseState
_NO_CONTACT = N_("There is no helpline contact %(ref)s.")
WITHHELD = "[withheld: personal data are not shared with this institution]"
PURGED = "[purged]"
REFERRAL_KINDS = ("police", "institution")

# How a URL found in a helpline case is reported: the intake channel by the contact's.
REPORT_CHANNEL = {"phone": ReportChannel.PHONE, "email": ReportChannel.EMAIL,
                  "contact_form": ReportChannel.WEB, "social_media": ReportChannel.SOCIAL,
                  "chat": ReportChannel.OTHER, "in_person": ReportChannel.OTHER}
# The content category a URL report claims, by the helpline case's type.
CLAIMED_CATEGORY = {"sextortion": Category.SEXTORTION, "grooming": Category.GROOMING,
                    "csam": Category.CSAM, "hate_speech": Category.HATE_SPEECH}

# The facts a helpline rule may name.
HELPLINE_FACTS: dict[str, str] = {
    "urgent": "the counsellor marked the case urgent: a child in danger now",
    "case_type": "sextortion, grooming, cyberbullying, hate_speech, csam, self_harm, other",
    "child_age_group": "under_10, 10_13, 14_15, 16_17, adult, unknown (null: not given)",
    "caller_type": "who got in touch: child, parent, teacher, other",
}


@dataclass
class Outcome:
    """What a helpline action did, and what to enqueue once it is committed."""

    contact: HelplineContact | None = None
    case: HelplineCase | None = None
    report_ids: list[int] = field(default_factory=list)
    report_refs: list[str] = field(default_factory=list)
    notice_ids: list[int] = field(default_factory=list)
    paged: list[str] = field(default_factory=list)


def commit_then_enqueue(session_factory: sessionmaker[Session], enqueuer: Enqueuer,
                        work: Callable[[Session], Outcome]) -> Outcome:
    """Run `work` in one transaction, commit, and only then enqueue the new reports for
    normalisation and the new notices for dispatch (a lost message delays them; the
    reconciler finds them)."""
    with session_factory.begin() as session:
        outcome = work(session)
    if outcome.report_ids:
        enqueuer.send(NORMALISE, outcome.report_ids)
    if outcome.notice_ids:
        enqueuer.send(DISPATCH, outcome.notice_ids)
    return outcome


# ------------------------------------------------------------------ rules and directory


def load_helpline_rules(path: str | Path, directory: Directory) -> list[Rule]:
    """The helpline rules, validated; `RulesInvalid` names file, rule and field."""
    path = Path(path)
    problems: list[str] = []
    if not path.is_file():
        raise RulesInvalid([f"{path}: no such file"])
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
        RuleFile.model_validate(raw)
    except (yaml.YAMLError, ValidationError) as exc:
        raise RulesInvalid([f"{path}: {exc}"]) from None
    rules: list[Rule] = []
    for index, item in enumerate(raw["rules"], start=1):
        where = f"{path}: rule #{index}"
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            problems.append(f"{where}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}")
            continue
        where = f"{path}: rule '{rule.name}' (#{index})"
        for fact in rule.when:
            if fact not in HELPLINE_FACTS:
                problems.append(f"{where}.when.{fact}: unknown fact (known: "
                                f"{', '.join(HELPLINE_FACTS)})")
        for number, action in enumerate(rule.then):
            if not isinstance(action, Notify):
                problems.append(f"{where}.then.{number}: a helpline rule can only notify "
                                "(page an institution at once)")
                continue
            try:
                referral_destination(directory, action.notify)
            except BadInput as exc:
                problems.append(f"{where}.then.{number}.notify: {exc}")
        rules.append(rule)
    if problems:
        raise RulesInvalid(problems)
    return rules


def directory_of(settings: Settings) -> Directory:
    return cached_ruleset(settings.routing.rules_dir).directory


def referral_destination(directory: Directory, key: str) -> Destination:
    """The institution a helpline case may be referred to, by key (`@police`: the home
    police unit); `BadInput` naming the key otherwise."""
    if key == "@police":
        key = directory.home_police
    dest = directory.get(key)
    if dest is None:
        raise FieldError("destinations", N_("Choose another institution: %(key)s is not in "
                                            "the directory."), key=key)
    if dest.kind not in REFERRAL_KINDS or not dest.helpline_referral:
        raise FieldError("destinations", N_("Choose another institution: %(key)s does not "
                                            "take helpline referrals."), key=key)
    return dest


def referral_directory(directory: Directory) -> list[Destination]:
    """The institutions counsellors refer to, in the directory's order."""
    return [d for d in directory.destinations.values()
            if d.kind in REFERRAL_KINDS and d.helpline_referral]


# ----------------------------------------------------------------------- contacts


def _check_text(name: str, value: str | None, limit: int) -> str | None:
    if value and len(value) > limit:
        raise FieldError(name, N_("Shorten “%(field)s”: it takes at most %(max)s characters."),
                         field=FIELD_LABELS.get(name, name), max=limit)
    return value or None


def _event(session: Session, head: HelplineCase | HelplineContact, action: str, *,
           actor: str, at: datetime, data: dict[str, Any] | None = None) -> None:
    session.add(build_event(head, actor=actor, action=action, at=at, data=data))


# A helpline case's state in a refusal's sentence (msgids, translated with it).
STATE_WORDS: dict[str, str] = {
    HelplineCaseState.OPEN: N_("open"),
    HelplineCaseState.ADVISORY: N_("closed as advisory"),
    HelplineCaseState.REFERRED: N_("referred to institutions"),
    HelplineCaseState.ANSWERED: N_("answered by the institutions"),
    HelplineCaseState.CLOSED: N_("closed"),
}


def _move(session: Session, case: HelplineCase, to: HelplineCaseState, *, actor: str,
          at: datetime, data: dict[str, Any] | None = None) -> None:
    """The one way a helpline case's state changes (through `lifecycle.transition`),
    with a refusal a counsellor can read."""
    try:
        transition(session, case, to, at=at, actor=actor, data=data)
    except IllegalTransition:
        raise FieldError(None, N_("Helpline case %(ref)s is %(state)s: it cannot become "
                                  "%(to)s."), ref=case.ref, state=STATE_WORDS[case.state],
                         to=STATE_WORDS[to]) from None


def record_contact(session: Session, item: ContactIn, *, counsellor: str, now: datetime,
                   settings: Settings, source: str = "console") -> Outcome:
    """Steps 1-3 of the module docstring, in the caller's transaction."""
    limit = settings.helpline.max_summary_chars
    received = as_utc(item.received_at) if item.received_at else now
    if received > now + timedelta(minutes=5):
        raise FieldError("received_at", N_("Correct the time the contact came in: it lies "
                                           "in the future."))
    contact = HelplineContact(
        ref=new_reference("K"), channel=item.channel.value, received_at=received,
        duration_seconds=round(item.duration_minutes * 60) if item.duration_minutes
        is not None else None, language=item.language, caller_type=item.caller_type.value,
        topic=item.topic.value, anonymous=item.anonymous,
        caller_contact=None if item.anonymous else item.caller_contact or None,
        summary=_check_text("summary", item.summary, limit), counsellor=counsellor,
        source=source, created_at=now, audit_seq=0,
    )
    session.add(contact)
    session.flush()
    _event(session, contact, "contact_recorded", actor=f"user:{counsellor}", at=now,
           data={"channel": contact.channel, "caller_type": contact.caller_type,
                 "topic": contact.topic, "source": source})
    outcome = Outcome(contact=contact)
    if item.case is not None:
        form_case(session, contact, item.case, counsellor=counsellor, now=now,
                  settings=settings, outcome=outcome)
    elif item.join_case:
        outcome.case = join_case(session, contact, item.join_case, counsellor=counsellor,
                                 now=now)
    contact_ref, channel, topic = contact.ref, contact.channel, contact.topic
    log.info("Contact %s recorded by %s (%s, %s).", contact_ref, counsellor, channel, topic)
    return outcome


def _case_by_ref(session: Session, ref: str, *, lock: bool = True,
                 field: str | None = None) -> HelplineCase:
    """The case `ref`; `NotFound` naming it (and the form `field` that named it)."""
    query = select(HelplineCase).where(HelplineCase.ref == ref.strip().upper())
    missing = NotFound(N_("There is no helpline case %(ref)s."), field=field, ref=ref)
    if lock:
        found: HelplineCase = lock_one(session, query, missing)
        return found
    case = session.execute(query).scalar_one_or_none()
    if case is None:
        raise missing
    return case


def form_case(session: Session, contact: HelplineContact, item: CaseIn, *, counsellor: str,
              now: datetime, settings: Settings, outcome: Outcome | None = None) -> Outcome:
    """A new helpline case from `contact`: its URLs become reports, its rules run."""
    outcome = outcome or Outcome(contact=contact)
    if contact.helpline_case_id is not None:
        raise FieldError(None, N_("Contact %(ref)s already belongs to a case."), ref=contact.ref)
    limit = settings.helpline.max_summary_chars
    if len(item.urls) > settings.helpline.max_urls_per_case:
        raise FieldError("urls", N_("Give at most %(max)s URLs for a case."),
                         max=settings.helpline.max_urls_per_case)
    case = HelplineCase(
        ref=new_reference("H"), case_type=item.case_type.value, urgent=item.urgent,
        child_age_group=item.child_age_group.value if item.child_age_group else None,
        relation=item.relation.value if item.relation else None,
        accounts=_check_text("accounts", item.accounts, limit),
        notes=_check_text("notes", item.notes, limit), counsellor=counsellor,
        state=None, audit_seq=0,
    )
    session.add(case)
    actor = f"user:{counsellor}"
    transition(session, case, H.OPEN, at=now, actor=actor,
               data={"case_type": case.case_type, "urgent": case.urgent,
                     "contact": contact.ref})
    session.flush()
    contact.helpline_case_id = case.id
    outcome.case = case
    if item.urls:
        _report_urls(session, case, item.urls, channel=contact.channel, actor=actor,
                     now=now, settings=settings, outcome=outcome)
    directory = directory_of(settings)
    rules = load_helpline_rules(settings.helpline.rules_file, directory)
    facts = {"urgent": case.urgent, "case_type": case.case_type,
             "child_age_group": case.child_age_group, "caller_type": contact.caller_type}
    decision = evaluate(rules, facts)
    case.routing = {"steps": [s.as_dict() for s in decision.steps]}
    pages = [referral_destination(directory, a.notify) for _, a in decision.actions
             if isinstance(a, Notify)]
    if pages:
        refer(session, case.ref, [d.key for d in pages], actor="system",
              now=now, settings=settings, paged=True, outcome=outcome)
    # A helpline case is not a URL case: no case_id; its reference names it.
    contact_ref = contact.ref
    log.info("Helpline case formed by %s from contact %s: %s (%s)%s.", counsellor,
             contact_ref, case.ref, case.case_type,
             f"; paged {', '.join(outcome.paged)}" if outcome.paged else "")
    return outcome


def join_case(session: Session, contact: HelplineContact, case_ref: str, *, counsellor: str,
              now: datetime) -> HelplineCase:
    """A later contact about a case already formed. An advisory case is reopened."""
    case = _case_by_ref(session, case_ref, field="join_case")
    if contact.helpline_case_id is not None:
        raise FieldError(None, N_("Contact %(ref)s already belongs to a case."), ref=contact.ref)
    contact.helpline_case_id = case.id
    actor = f"user:{counsellor}"
    if case.state == H.ADVISORY:
        _move(session, case, H.OPEN, actor=actor, at=now, data={"contact": contact.ref})
    elif case.state == H.CLOSED:
        raise FieldError("join_case", N_("Helpline case %(ref)s is closed: form a new case."),
                         ref=case.ref)
    _event(session, case, "helpline_contact_joined", actor=actor, at=now,
           data={"contact": contact.ref})
    return case


def record_incoming(session: Session, *, channel: str, received_at: datetime, summary: str,
                    sender: str | None, language: str | None, now: datetime,
                    settings: Settings, source: str, counsellor: str | None = None
                    ) -> HelplineContact:
    """A message from the mailbox or the public contact form turned into a helpline
    contact (instead of a URL report), for a counsellor to take up: caller type and
    topic are `other` until the counsellor sets them. `counsellor`: who turned it into
    a contact (none for the form: the contact waits for one as `(form)`)."""
    if language and not _LANGUAGE_TAG.match(language):
        language = None
    sender = (sender or "").strip()[:320] or None
    item = ContactIn(channel=channel, received_at=received_at, caller_type="other",
                     topic="other", anonymous=sender is None, caller_contact=sender,
                     summary=summary[:settings.helpline.max_summary_chars],
                     language=language)  # type: ignore[arg-type]
    outcome = record_contact(session, item, counsellor=counsellor or f"({source})", now=now,
                             settings=settings, source=source)
    assert outcome.contact is not None
    return outcome.contact


@dataclass(frozen=True)
class FromMail:
    """The helpline contact a mail message became; `created` false when another person
    had already turned it into that contact (the second of two clicks)."""

    contact_ref: str
    created: bool


def mail_summary(message: MailMessage) -> str:
    """A contact's summary from what the mailbox keeps of a message: its subject and its
    attachments by name and type (their content is never kept)."""
    pieces = [f"E-mail: {message.subject}" if message.subject else "E-mail without a subject"]
    attachments = message.attachments or []
    if attachments:
        pieces.append("Attachments (not kept): " + "; ".join(
            f"{a.get('name') or '(no name)'} ({a.get('type') or '?'})" for a in attachments[:20]))
    if message.reason:
        pieces.append(f"Mailbox: {message.reason}")
    return "\n".join(pieces)


def contact_from_mail(session: Session, message_id: int, *, counsellor: str, now: datetime,
                      settings: Settings) -> FromMail:
    """A message waiting in the mailbox's look-at queue becomes a helpline contact
    (channel e-mail, the sender as the encrypted caller contact, or anonymous without
    one, the summary from `mail_summary`), exactly once:
    1. claim the message: one conditional UPDATE from `look_at` to `helpline` (the
       first statement of the transaction: PostgreSQL's row lock and SQLite's write
       lock make a second person's claim wait, then find nothing to claim);
    2. a lost claim on a message already turned into a contact returns that contact
       (`created` false); a message no longer waiting (looked at) is `NotFound`;
    3. record the contact (`record_incoming`, source `mailbox`), link the message to
       it and empty the message's sender and subject (the contact holds them, under
       the helpline's retention), audit both (`contact_recorded` on the contact,
       `mail_to_helpline` on the message's stream)."""
    actor = f"user:{counsellor}"
    claimed = session.execute(
        update(MailMessage).where(MailMessage.id == message_id, MailMessage.state == LOOK_AT)
        .values(state=MAIL_HELPLINE, looked_at_by=actor[:120], looked_at_at=now)
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    message = session.execute(select(MailMessage).where(MailMessage.id == message_id)
                              .execution_options(populate_existing=True)).scalar_one_or_none()
    if not claimed:
        if message is not None and message.state == MAIL_HELPLINE and \
                message.helpline_contact_ref:
            return FromMail(message.helpline_contact_ref, False)
        raise NotFound(N_("No mail message %(id)s waits for a person."), id=message_id)
    assert message is not None
    contact = record_incoming(
        session, channel="email", received_at=as_utc(message.received_at),
        summary=mail_summary(message), sender=message.sender, language=message.language,
        now=now, settings=settings, source="mailbox", counsellor=counsellor)
    # Moved, not copied: the contact holds the sender and subject now, under the
    # helpline's retention; the message's row keeps only the link.
    message.helpline_contact_ref, message.sender, message.subject = contact.ref, None, None
    audit.record(session, f"mail:{message_id}", actor=actor, action="mail_to_helpline",
                 at=now, data={"contact": contact.ref})
    ref = contact.ref
    log.info("Mail message %s turned into helpline contact %s by %s.", message_id, ref,
             counsellor)
    return FromMail(ref, True)


_URL_IN_TEXT = re.compile(r"\b(?:https?://|www\.)[^\s<>\"')\]]+", re.I)


def urls_in(text: str | None, limit: int = 20) -> list[str]:
    """The web addresses written in a text (a message from the form or the mailbox), in
    order, once each, without trailing punctuation: what a counsellor is offered as the
    URLs of a case formed from it."""
    found = [u.rstrip(".,;:!?") for u in _URL_IN_TEXT.findall(text or "")]
    return list(dict.fromkeys(found))[:limit]


def find_contact(session: Session, contact_ref: str) -> tuple[HelplineContact, str | None]:
    """One contact and the reference of its case; `NotFound` naming it otherwise."""
    row = session.execute(
        select(HelplineContact, HelplineCase.ref)
        .outerjoin(HelplineCase, HelplineCase.id == HelplineContact.helpline_case_id)
        .where(HelplineContact.ref == contact_ref.strip().upper())).first()
    if row is None:
        raise NotFound(_NO_CONTACT, ref=contact_ref)
    return row[0], row[1]


def take_up(session: Session, contact_ref: str, *, caller_type: str, topic: str,
            case: CaseIn | None, join: str | None, counsellor: str, now: datetime,
            settings: Settings) -> Outcome:
    """A counsellor takes up a contact that came in by itself (the public form, the
    mailbox) or one recorded earlier without a case:
    1. lock the contact; set who got in touch and the topic (the form left them
       `other`); a contact still waiting for a counsellor (`(form)`) becomes theirs;
    2. form a case from it (its URLs, e.g. those written in the message, become
       reports linked to the case only now) or join an existing one, or neither;
    3. audit (`contact_taken_up`)."""
    query = select(HelplineContact).where(HelplineContact.ref == contact_ref.strip().upper())
    contact: HelplineContact = lock_one(session, query, NotFound(_NO_CONTACT, ref=contact_ref))
    if case is not None and join:
        raise FieldError("join_case", N_("Form a new case or join an existing one, not both."))
    item = ContactIn.model_validate({"caller_type": caller_type, "topic": topic})
    before = {"caller_type": contact.caller_type, "topic": contact.topic}
    contact.caller_type, contact.topic = item.caller_type.value, item.topic.value
    if contact.counsellor.startswith("("):
        contact.counsellor = counsellor
    contact.taken_up_at = contact.taken_up_at or now
    _event(session, contact, "contact_taken_up", actor=f"user:{counsellor}", at=now,
           data={"before": before, "caller_type": contact.caller_type,
                 "topic": contact.topic})
    outcome = Outcome(contact=contact)
    if case is not None:
        form_case(session, contact, case, counsellor=counsellor, now=now, settings=settings,
                  outcome=outcome)
    elif join:
        outcome.case = join_case(session, contact, join, counsellor=counsellor, now=now)
    ref = contact.ref
    log.info("Contact %s taken up by %s%s.", ref, counsellor,
             f" into case {outcome.case.ref}" if outcome.case else "")
    return outcome


# ------------------------------------------------------------------- URLs and tasks


def _report_urls(session: Session, case: HelplineCase, urls: Sequence[str], *, channel: str,
                 actor: str, now: datetime, settings: Settings, outcome: Outcome) -> None:
    """Each URL becomes a report through intake (`store_reports`, the same function as
    every report), linked to the case. No description, no reporter contact: the
    caller's and child's data stay in the helpline."""
    cleaned = [u.strip() for u in urls if u and u.strip()]
    if not cleaned:
        raise FieldError("urls", N_("Give at least one URL."))
    category = CLAIMED_CATEGORY.get(case.case_type, Category.OTHER)
    items = [ReportIn(url=u, channel=REPORT_CHANNEL.get(channel, ReportChannel.OTHER),
                      claimed_category=category, urgent=case.urgent) for u in cleaned]

    class _At:
        def now(self) -> datetime:
            return now

    accepted = store_reports(session, items, clock=_At(), limits=settings.intake,  # type: ignore[arg-type]
                             source="helpline", actor=actor)
    for a in accepted:
        session.add(HelplineCaseReport(helpline_case_id=case.id, report_id=a.id,
                                       added_by=actor, added_at=now))
    _event(session, case, "helpline_urls_reported", actor=actor, at=now,
           data={"reports": [a.ref for a in accepted]})
    outcome.report_ids += [a.id for a in accepted]
    outcome.report_refs += [a.ref for a in accepted]


def add_urls(session: Session, case_ref: str, urls: Sequence[str], *, actor: str,
             now: datetime, settings: Settings) -> Outcome:
    if len(urls) > settings.helpline.max_urls_per_case:
        raise FieldError("urls", N_("Give at most %(max)s URLs at once."),
                         max=settings.helpline.max_urls_per_case)
    case = _case_by_ref(session, case_ref)
    outcome = Outcome(case=case)
    _report_urls(session, case, urls, channel="other", actor=actor, now=now,
                 settings=settings, outcome=outcome)
    return outcome


def add_task(session: Session, case_ref: str, item: TaskIn, *, actor: str,
             now: datetime) -> HelplineTask:
    case = _case_by_ref(session, case_ref)
    task = HelplineTask(helpline_case_id=case.id, title=item.title, due_at=as_utc(item.due_at),
                        created_by=actor, created_at=now)
    session.add(task)
    session.flush()
    _event(session, case, "helpline_task_added", actor=actor, at=now,
           data={"task": task.id, "due_at": as_utc(task.due_at).isoformat()})
    return task


def complete_task(session: Session, case_ref: str, task_id: int, *, actor: str,
                  now: datetime) -> HelplineTask:
    case = _case_by_ref(session, case_ref)
    task = session.get(HelplineTask, task_id)
    if task is None or task.helpline_case_id != case.id:
        raise NotFound(N_("There is no task %(task)s in helpline case %(ref)s."),
                       task=task_id, ref=case.ref)
    if task.done_at is None:
        task.done_at, task.done_by = now, actor
        _event(session, case, "helpline_task_done", actor=actor, at=now, data={"task": task.id})
    return task


# ----------------------------------------------------------------------- outcomes


def close_advisory(session: Session, case_ref: str, *, actor: str, now: datetime
                   ) -> HelplineCase:
    """Advice given, nothing to refer: the case closes as advisory."""
    case = _case_by_ref(session, case_ref)
    _move(session, case, H.ADVISORY, actor=actor, at=now)
    case.outcome = "advisory"
    return case


def close_case(session: Session, case_ref: str, *, actor: str, now: datetime,
               reason: str) -> HelplineCase:
    """A referred (or answered) case with nothing more to do."""
    if not reason.strip():
        raise FieldError("reason", N_("Say why the case is closed."))
    case = _case_by_ref(session, case_ref)
    _move(session, case, H.CLOSED, actor=actor, at=now, data={"reason": reason[:200]})
    return case


def _contacts_of(session: Session, case: HelplineCase) -> list[HelplineContact]:
    return list(session.execute(
        select(HelplineContact).where(HelplineContact.helpline_case_id == case.id)
        .order_by(HelplineContact.received_at, HelplineContact.id)).scalars())


def _linked_reports(session: Session, case: HelplineCase) -> list[tuple[Report, Case | None]]:
    return [(r, c) for r, c in session.execute(
        select(Report, Case).join(HelplineCaseReport, HelplineCaseReport.report_id == Report.id)
        .outerjoin(Case, Case.id == Report.case_id)
        .where(HelplineCaseReport.helpline_case_id == case.id).order_by(Report.id))]


def _rows(session: Session, table: Table, condition: Any) -> list[dict[str, Any]]:
    def plain(value: Any) -> Any:
        return value.isoformat() if isinstance(value, datetime) else value

    return [{c.name: plain(row._mapping[c]) for c in table.columns}
            for row in session.execute(select(table).where(condition).order_by(*table.primary_key))]


def build_bundle(session: Session, case: HelplineCase, *, personal: bool, settings: Settings,
                 now: datetime) -> Any:
    """The evidence bundle of a helpline case (as `pipeline.stages.evidence` makes a URL
    case's): case, contacts, linked reports, referrals, the audit timeline with its
    chain verified, sealed with a SHA-256 manifest. Without `personal`, every field
    that can hold the caller's or child's data reads `WITHHELD`."""
    def hide(row: dict[str, Any], *names: str) -> dict[str, Any]:
        if not personal:
            for name in names:
                if row.get(name) is not None:
                    row[name] = WITHHELD
        return row

    cases: Table = HelplineCase.__table__  # type: ignore[assignment]
    contacts: Table = HelplineContact.__table__  # type: ignore[assignment]
    referrals: Table = HelplineReferral.__table__  # type: ignore[assignment]
    holds: Table = LegalHold.__table__  # type: ignore[assignment]
    files: dict[str, bytes] = {}
    case_row = hide(_rows(session, cases, cases.c.id == case.id)[0], "accounts", "notes")
    files["case.json"] = canonical_json({
        "case": case_row,
        "legal_holds": _rows(session, holds, holds.c.helpline_case_id == case.id)})
    files["contacts.json"] = canonical_json([
        hide(r, "caller_contact", "summary")
        for r in _rows(session, contacts, contacts.c.helpline_case_id == case.id)])
    files["reports.json"] = canonical_json([
        {"report": r.ref, "url": r.url, "received_at": as_utc(r.received_at).isoformat(),
         "state": r.state, "case": c.ref if c else None, "case_state": c.state if c else None}
        for r, c in _linked_reports(session, case)])
    files["referrals.json"] = canonical_json([
        hide(r, "reply_text")
        for r in _rows(session, referrals, referrals.c.helpline_case_id == case.id)])
    stream = f"helpline:{case.ref}"
    events = list(session.execute(select(Event).where(Event.stream == stream)
                                  .order_by(Event.seq)).scalars())
    files["timeline.json"] = canonical_json({
        "events": [{"seq": e.seq, "at": as_utc(e.at).isoformat(), "actor": e.actor,
                    "action": e.action, "from_state": e.from_state, "to_state": e.to_state,
                    "data": e.data, "prev_hash": e.prev_hash, "hash": e.hash} for e in events],
        "chains": verify_streams(events)})
    return seal(files, hotline=settings.app.name, case_ref=case.ref, now=now)


def export_bundle(session: Session, case_ref: str, out: Path, *, personal: bool, actor: str,
                  now: datetime, settings: Settings, write: Callable[[Any, Path], Path]
                  ) -> tuple[Path, Any]:
    """Write the case's bundle to `out` (a hand-over on paper or by hand) and audit it
    with its manifest's digest."""
    case = _case_by_ref(session, case_ref)
    bundle = build_bundle(session, case, personal=personal, settings=settings, now=now)
    path = write(bundle, out)
    _event(session, case, "evidence_exported", actor=actor, at=now, data={
        "manifest_sha256": hashlib.sha256(bundle.files["manifest.json"]).hexdigest(),
        "personal_data": personal})
    return path, bundle


def bundle_zip(bundle: Any) -> bytes:
    """The bundle as a zip (fixed file times: the same bundle, the same bytes)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in sorted(bundle.files.items()):
            info = zipfile.ZipInfo(f"{bundle.case_ref}-evidence/{name}", (1980, 1, 1, 0, 0, 0))
            archive.writestr(info, data)
    return buffer.getvalue()


def _context(session: Session, case: HelplineCase, *, personal: bool, settings: Settings,
             evidence_sha256: str | None, reminder: int = 0,
             referred_at: datetime | None = None) -> dict[str, Any]:
    context: dict[str, Any] = {
        "hotline": {"name": settings.app.name, "public_url": settings.web.public_url},
        "case": {"ref": case.ref, "case_type": case.case_type, "urgent": case.urgent,
                 "child_age_group": case.child_age_group,
                 "opened_at": as_utc(case.open_at or case.state_changed_at)},
        "reports": [{"ref": r.ref, "url": r.url} for r, _ in _linked_reports(session, case)],
        "personal": None, "evidence_sha256": evidence_sha256 or "",
        "reminder": reminder, "referred_at": referred_at,
    }
    if personal:
        context["personal"] = {
            "accounts": [line for line in (case.accounts or "").splitlines() if line.strip()],
            "notes": case.notes,
            "contacts": [{"ref": c.ref, "channel": c.channel,
                          "received_at": as_utc(c.received_at), "summary": c.summary,
                          "caller_contact": c.caller_contact}
                         for c in _contacts_of(session, case)],
        }
    return context


def refer(session: Session, case_ref: str, destinations: Iterable[str], *, actor: str,
          now: datetime, settings: Settings, paged: bool = False,
          outcome: Outcome | None = None) -> Outcome:
    """Steps 1-4 of `refer` in the module docstring, in the caller's transaction."""
    directory = directory_of(settings)
    wanted = [referral_destination(directory, key) for key in destinations]
    if not wanted:
        raise FieldError("destinations", N_("Choose at least one institution to refer the "
                                            "case to."))
    case = _case_by_ref(session, case_ref)
    outcome = outcome or Outcome(case=case)
    outcome.case = case
    done = set(session.execute(select(HelplineReferral.destination).where(
        HelplineReferral.helpline_case_id == case.id)).scalars())
    new = [d for d in dict((d.key, d) for d in wanted).values() if d.key not in done]
    if not new:
        return outcome
    if case.state in (H.OPEN, H.ANSWERED):
        _move(session, case, H.REFERRED, actor=actor, at=now,
              data={"destinations": [d.key for d in new], "paged": paged})
    elif case.state != H.REFERRED:
        raise FieldError(None, N_("Helpline case %(ref)s is %(state)s: it cannot be "
                                  "referred."), ref=case.ref, state=STATE_WORDS[case.state])
    case.outcome = "referred"
    for dest in new:
        personal = dest.receives_personal_data
        bundle = build_bundle(session, case, personal=personal, settings=settings, now=now)
        manifest_sha = hashlib.sha256(bundle.files["manifest.json"]).hexdigest()
        subject, body, lang = render_helpline_referral(
            _context(session, case, personal=personal, settings=settings,
                     evidence_sha256=manifest_sha), dest)
        notice = Notice(
            case_id=None, helpline_case_id=case.id, destination=dest.key,
            destination_kind=dest.kind, kind="referral", round=1, channel=dest.channel,
            address=dest.address, language=lang, state=NoticeState.PLANNED,
            token=secrets.token_urlsafe(24), subject=subject, body=body,
            payload={"case_ref": case.ref, "helpline": True, "evidence": {
                "name": f"{case.ref}-evidence.zip", "manifest_sha256": manifest_sha,
                "zip": base64.b64encode(bundle_zip(bundle)).decode()}},
            attempts=0, created_at=now, due_at=now,
        )
        session.add(notice)
        session.flush()
        session.add(HelplineReferral(
            helpline_case_id=case.id, destination=dest.key, notice_id=notice.id, paged=paged,
            personal_data_included=personal, evidence_sha256=manifest_sha,
            referred_by=actor, referred_at=now, reminders=0))
        _event(session, case, "helpline_referral_planned", actor=actor, at=now,
               data={"destination": dest.key, "notice": notice.id, "paged": paged,
                     "personal_data": personal, "manifest_sha256": manifest_sha})
        outcome.notice_ids.append(notice.id)
        if paged:
            outcome.paged.append(dest.key)
        log.info("Helpline case %s referred to %s (notice %s%s).", case.ref, dest.key,
                 notice.id, ", paged at once" if paged else "",
                 extra={"notice_id": notice.id})
    return outcome


def record_reply(session: Session, case_ref: str, item: ReplyIn, *, actor: str,
                 now: datetime, settings: Settings) -> HelplineReferral:
    """The institution's reply or reference; once every institution of the case
    replied, the case is `answered`."""
    case = _case_by_ref(session, case_ref)
    referral = session.execute(select(HelplineReferral).where(
        HelplineReferral.helpline_case_id == case.id,
        HelplineReferral.destination == item.destination)).scalar_one_or_none()
    if referral is None:
        raise FieldError("destination", N_("Choose an institution the case was referred to: "
                                           "helpline case %(ref)s was not referred to "
                                           "%(key)s."), ref=case.ref, key=item.destination)
    referral.reply_reference = item.reference or referral.reply_reference
    referral.reply_text = _check_text("text", item.text, settings.helpline.max_summary_chars) \
        or referral.reply_text
    referral.replied_at = referral.replied_at or now
    _event(session, case, "helpline_referral_replied", actor=actor, at=now,
           data={"destination": item.destination, "reference": item.reference})
    waiting = session.execute(select(func.count()).where(
        HelplineReferral.helpline_case_id == case.id,
        HelplineReferral.replied_at.is_(None))).scalar_one()
    if waiting == 0 and case.state == H.REFERRED:
        _move(session, case, H.ANSWERED, actor=actor, at=now)
    return referral


# ---------------------------------------------------------------------- reminders


def plan_reminders(session_factory: sessionmaker[Session], *, settings: Settings,
                   clock: Clock, enqueuer: Enqueuer) -> list[int]:
    """Reminders to institutions silent for `reply_reminder_working_hours` of working
    time since the referral was sent (or since the last reminder). Each reminder is a
    notice of its own round (the unique key keeps it to one), through dispatch."""
    cfg = settings.helpline
    calendar = WorkCalendar.from_settings(settings.worktime)
    needed = cfg.reply_reminder_working_hours * 3600
    new_ids: list[int] = []
    directory = directory_of(settings)
    with session_factory.begin() as session:
        now = clock.now()
        rows = session.execute(
            select(HelplineReferral, Notice.sent_at, HelplineCase)
            .join(Notice, Notice.id == HelplineReferral.notice_id)
            .join(HelplineCase, HelplineCase.id == HelplineReferral.helpline_case_id)
            .where(HelplineReferral.replied_at.is_(None), Notice.sent_at.is_not(None),
                   HelplineCase.state == H.REFERRED.value,
                   HelplineReferral.reminders < cfg.max_reminders)
            .order_by(HelplineReferral.id)).all()
        for referral, sent_at, case in rows:
            since = as_utc(referral.last_reminder_at or sent_at or now)
            if calendar.working_seconds(since, now) < needed:
                continue
            dest = directory.get(referral.destination)
            if dest is None:
                continue
            n = referral.reminders + 1
            subject, body, lang = render_helpline_referral(
                _context(session, case, personal=False, settings=settings,
                         evidence_sha256=referral.evidence_sha256, reminder=n,
                         referred_at=as_utc(referral.referred_at)), dest)
            inserted = insert_ignoring_conflicts(session, Notice.__table__, [{
                "case_id": None, "helpline_case_id": case.id, "destination": dest.key,
                "destination_kind": dest.kind, "kind": "reminder", "round": n,
                "channel": dest.channel, "address": dest.address, "language": lang,
                "state": NoticeState.PLANNED, "token": secrets.token_urlsafe(24),
                "subject": subject,
                "body": body, "payload": {"case_ref": case.ref, "helpline": True,
                                          "reminder": n},
                "attempts": 0, "created_at": now, "due_at": now}],
                conflict_columns=["helpline_case_id", "destination", "kind", "round"],
                returning=[Notice.id])
            referral.reminders, referral.last_reminder_at = n, now
            if not inserted:
                continue
            notice_id = int(inserted[0][0])
            new_ids.append(notice_id)
            _event(session, case, "helpline_referral_reminded", actor="system", at=now,
                   data={"destination": dest.key, "notice": notice_id, "round": n})
            log.info("Helpline case %s: reminder %d to %s planned as notice %s.", case.ref, n,
                     dest.key, notice_id, extra={"notice_id": notice_id})
    if new_ids:
        enqueuer.send(DISPATCH, new_ids)
    return new_ids


# --------------------------------------------------------------------------- views


def contact_out(contact: HelplineContact, case_ref: str | None) -> ContactOut:
    return ContactOut(
        ref=contact.ref, channel=contact.channel, received_at=contact.received_at,
        duration_seconds=contact.duration_seconds, language=contact.language,
        caller_type=contact.caller_type, topic=contact.topic, anonymous=contact.anonymous,
        caller_contact=contact.caller_contact, summary=contact.summary,
        counsellor=contact.counsellor, source=contact.source, case_ref=case_ref)


def case_view(session: Session, case_ref: str, *, now: datetime, settings: Settings
              ) -> HelplineCaseOut:
    """Everything about one helpline case, for counsellors and supervisors: its
    contacts, tasks, referrals, and the state of its URL reports in the pipeline."""
    case = _case_by_ref(session, case_ref, lock=False)
    directory = directory_of(settings)
    referrals = session.execute(
        select(HelplineReferral, Notice.state).outerjoin(
            Notice, Notice.id == HelplineReferral.notice_id)
        .where(HelplineReferral.helpline_case_id == case.id)
        .order_by(HelplineReferral.id)).all()
    tasks = session.execute(select(HelplineTask).where(
        HelplineTask.helpline_case_id == case.id).order_by(HelplineTask.due_at)).scalars()
    held = session.execute(select(exists().where(
        LegalHold.helpline_case_id == case.id, LegalHold.lifted_at.is_(None)))).scalar_one()
    return HelplineCaseOut(
        ref=case.ref, case_type=case.case_type, urgent=case.urgent,
        child_age_group=case.child_age_group, relation=case.relation,
        accounts=case.accounts, notes=case.notes, state=case.state, outcome=case.outcome,
        counsellor=case.counsellor, opened_at=case.open_at,
        rules=list((case.routing or {}).get("steps", [])),
        contacts=[contact_out(c, case.ref) for c in _contacts_of(session, case)],
        tasks=[TaskOut(id=t.id, title=t.title, due_at=t.due_at, done_at=t.done_at,
                       overdue=t.done_at is None and as_utc(t.due_at) < now) for t in tasks],
        referrals=[ReferralOut(
            destination=r.destination,
            name=(directory.get(r.destination).name if directory.get(r.destination)  # type: ignore[union-attr]
                  else r.destination),
            paged=r.paged, personal_data_included=r.personal_data_included,
            notice_state=state, referred_at=r.referred_at, evidence_sha256=r.evidence_sha256,
            reply_reference=r.reply_reference, reply_text=r.reply_text,
            replied_at=r.replied_at, reminders=r.reminders) for r, state in referrals],
        reports=[LinkedReportOut(report_ref=r.ref, url=r.url, report_state=r.state,
                                 case_ref=c.ref if c else None,
                                 case_state=c.state if c else None)
                 for r, c in _linked_reports(session, case)],
        legal_hold=bool(held),
    )


def list_cases(session: Session, *, states: Sequence[str] | None = None, limit: int = 100
               ) -> list[HelplineCase]:
    query = select(HelplineCase).order_by(HelplineCase.urgent.desc(),
                                          HelplineCase.state_changed_at.desc()).limit(limit)
    if states:
        unknown = set(states) - {s.value for s in H}
        if unknown:
            raise FieldError("state", N_("Choose states the helpline knows (%(known)s), not "
                                         "%(unknown)s."), known=", ".join(s.value for s in H),
                             unknown=", ".join(sorted(unknown)))
        query = query.where(HelplineCase.state.in_(list(states)))
    return list(session.execute(query).scalars())


def list_contacts(session: Session, *, limit: int = 100) -> list[tuple[HelplineContact,
                                                                        str | None]]:
    return [(c, ref) for c, ref in session.execute(
        select(HelplineContact, HelplineCase.ref)
        .outerjoin(HelplineCase, HelplineCase.id == HelplineContact.helpline_case_id)
        .order_by(HelplineContact.received_at.desc(), HelplineContact.id.desc())
        .limit(limit))]


def waiting_contacts(session: Session, *, limit: int = 100) -> list[HelplineContact]:
    """Contacts that came in by themselves (mailbox, public form) and no counsellor has
    taken up yet, oldest first."""
    return list(session.execute(
        select(HelplineContact).where(HelplineContact.source.in_(INCOMING_SOURCES),
                                      HelplineContact.taken_up_at.is_(None),
                                      HelplineContact.helpline_case_id.is_(None))
        .order_by(HelplineContact.received_at, HelplineContact.id).limit(limit)).scalars())


# ------------------------------------------------------------------------- welfare


def _day_bounds(now: datetime, zone: str) -> tuple[str, datetime, datetime]:
    tz = ZoneInfo(zone)
    day = as_utc(now).astimezone(tz).date()
    start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    return day.isoformat(), start, end


def counsellor_welfare(session: Session, *, now: datetime, settings: Settings,
                       counsellors: Sequence[str] | None = None) -> list[CounsellorWelfare]:
    """Today's contacts per counsellor, as analysts' welfare counts assessments: the
    contacts about abuse (`helpline.welfare_topics`) against a daily soft limit, in
    the day of `assessment.welfare_timezone`."""
    cfg = settings.helpline
    day, start, end = _day_bounds(now, settings.assessment.welfare_timezone)
    if counsellors is None:
        counsellors = list(session.execute(select(User.name).where(
            User.active.is_(True), User.role.in_(["counsellor", "supervisor"]))
            .order_by(User.name)).scalars())
    per = {name: {"n": 0, "abuse": 0, "seconds": 0} for name in counsellors}
    rows = session.execute(
        select(HelplineContact.counsellor, HelplineContact.topic,
               HelplineContact.duration_seconds)
        .where(HelplineContact.counsellor.in_(list(counsellors)),
               HelplineContact.received_at >= start, HelplineContact.received_at < end)).all()
    for name, topic, seconds in rows:
        entry = per[name]
        entry["n"] += 1
        entry["seconds"] += seconds or 0
        if topic in cfg.welfare_topics:
            entry["abuse"] += 1
    return [CounsellorWelfare(
        user=name, day=day, abuse_contacts=e["abuse"], contacts=e["n"],
        minutes_on_contacts=round(e["seconds"] / 60, 1),
        abuse_soft_limit=cfg.welfare_abuse_soft_limit,
        take_a_break=e["abuse"] >= cfg.welfare_abuse_soft_limit) for name, e in per.items()]


# ------------------------------------------------------------ retention, legal hold


def set_legal_hold(session: Session, case_ref: str, *, by: str, requested_by: str,
                   reason: str, now: datetime) -> LegalHold:
    if not reason.strip() or not requested_by.strip():
        raise FieldError("reason", N_("Say who asked for the legal hold and why."))
    case = _case_by_ref(session, case_ref)
    hold = LegalHold(case_id=None, helpline_case_id=case.id, requested_by=requested_by[:200],
                     reason=reason, set_by=by, set_at=now)
    session.add(hold)
    _event(session, case, "legal_hold_set", actor=f"user:{by}", at=now,
           data={"requested_by": requested_by[:200]})
    return hold


def lift_legal_hold(session: Session, case_ref: str, *, by: str, reason: str,
                    now: datetime) -> int:
    case = _case_by_ref(session, case_ref)
    holds = list(session.execute(select(LegalHold).where(
        LegalHold.helpline_case_id == case.id, LegalHold.lifted_at.is_(None))).scalars())
    if not holds:
        raise FieldError(None, N_("Helpline case %(ref)s has no active legal hold."),
                         ref=case.ref)
    for hold in holds:
        hold.lifted_at, hold.lifted_by, hold.lift_reason = now, by, reason
    _event(session, case, "legal_hold_lifted", actor=f"user:{by}", at=now,
           data={"holds": len(holds)})
    return len(holds)


def purge_personal_data(session_factory: sessionmaker[Session], *, settings: Settings,
                        now: datetime) -> dict[str, int]:
    """Empty the caller's and child's data `helpline.personal_data_days` after a case
    ended (advisory or closed) or a case-less contact was received; a case under an
    active legal hold is skipped. Rows, states, times, types and channels stay, so the
    statistics are unchanged. Each purge is audited (what, never the data)."""
    days = settings.helpline.personal_data_days
    counts = {"cases": 0, "contacts": 0, "held": 0}
    if days is None:
        return counts
    cutoff = now - timedelta(days=days)
    ended = func.coalesce(HelplineCase.closed_at, HelplineCase.advisory_at)
    held = exists().where(LegalHold.helpline_case_id == HelplineCase.id,
                          LegalHold.lifted_at.is_(None))
    with session_factory.begin() as session:
        due = select(HelplineCase).where(
            HelplineCase.state.in_([s.value for s in HELPLINE_ENDED_STATES]),
            HelplineCase.personal_data_purged_at.is_(None), ended < cutoff)
        counts["held"] = len(session.execute(due.where(held)).scalars().all())
        for case in session.execute(due.where(~held)).scalars():
            case.accounts = case.notes = None
            case.personal_data_purged_at = now
            for contact in _contacts_of(session, case):
                contact.caller_contact = contact.summary = None
                contact.personal_data_purged_at = now
            for referral in session.execute(select(HelplineReferral).where(
                    HelplineReferral.helpline_case_id == case.id)).scalars():
                referral.reply_text = None
            for notice in session.execute(select(Notice).where(
                    Notice.helpline_case_id == case.id)).scalars():
                notice.body = PURGED
                notice.payload = {k: v for k, v in (notice.payload or {}).items()
                                  if k != "evidence"}
            _event(session, case, "helpline_data_purged", actor="retention", at=now,
                   data={"kinds": ["caller_contact", "summary", "accounts", "notes",
                                   "reply_text", "notice_text"]})
            counts["cases"] += 1
        for contact in session.execute(select(HelplineContact).where(
                HelplineContact.helpline_case_id.is_(None),
                HelplineContact.personal_data_purged_at.is_(None),
                HelplineContact.received_at < cutoff,
                or_(HelplineContact.caller_contact.is_not(None),
                    HelplineContact.summary.is_not(None)))).scalars():
            contact.caller_contact = contact.summary = None
            contact.personal_data_purged_at = now
            _event(session, contact, "helpline_data_purged", actor="retention", at=now,
                   data={"kinds": ["caller_contact", "summary"]})
            counts["contacts"] += 1
    if counts["cases"] or counts["contacts"]:
        log.info("Helpline retention: purged %d cases and %d contacts; %d held.",
                 counts["cases"], counts["contacts"], counts["held"])
    return counts
