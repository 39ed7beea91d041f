"""Tables of the helpline: contacts (calls, e-mails, chats...), helpline cases, their
tasks, their referrals to institutions, and the URL reports a case put into the URL
pipeline.

The caller's and the child's data are special-category personal data. The fields
that can hold them (the caller's contact, the summary, the accounts involved, the
notes, an institution's reply) are `EncryptedText`: encrypted at rest with the same
key(s) as reporters' contacts (`pipeline.core.crypto`). Everything else is kept minimal
by design: an age group, not a birth date; a relation, not a name. Retention purges
the encrypted fields a set time after the case (or a contact without a case) ended,
unless a legal hold is active (`pipeline.stages.helpline.purge_personal_data`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.core.crypto import EncryptedText
from pipeline.store.db import Base, BigId
from pipeline.store.models import AuditChained

# What the tables accept (checked by the schemas at the boundary; kept here so the
# store, the stages and the statistics share one list).
CHANNELS = ("phone", "email", "contact_form", "chat", "social_media", "in_person")
CALLER_TYPES = ("child", "parent", "teacher", "other")
CASE_TYPES = ("sextortion", "grooming", "cyberbullying", "hate_speech", "csam", "self_harm",
              "other")
# A contact's topic: a case type, or advice that forms no case.
TOPICS = (*CASE_TYPES, "online_safety", "privacy", "information")
AGE_GROUPS = ("under_10", "10_13", "14_15", "16_17", "adult", "unknown")
RELATIONS = ("self", "parent", "sibling", "friend", "teacher", "stranger", "other",
             "unknown")
OUTCOMES = ("advisory", "referred")


class HelplineCase(AuditChained, Base):
    """A helpline case: formed by a contact, joined by later ones, closed as advisory
    or referred to one or more institutions. Its state lives in `state`, changed only
    through `pipeline.stages.helpline.move` (the table `HELPLINE_CASE_TRANSITIONS`)."""

    __tablename__ = "helpline_cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)  # H-XXXX-XXXX-XXXX-XXXX
    case_type: Mapped[str] = mapped_column(String(20))
    urgent: Mapped[bool] = mapped_column(default=False)  # a child in danger now
    # The people involved, minimally: the child's age group and the caller's relation.
    child_age_group: Mapped[str | None] = mapped_column(String(12))
    relation: Mapped[str | None] = mapped_column(String(12))
    # Encrypted: accounts and platforms involved (one per line), the counsellor's notes.
    accounts: Mapped[str | None] = mapped_column(EncryptedText())
    notes: Mapped[str | None] = mapped_column(EncryptedText())
    outcome: Mapped[str | None] = mapped_column(String(12))  # advisory, referred
    counsellor: Mapped[str] = mapped_column(String(80))  # user name who formed it
    routing: Mapped[dict[str, Any] | None] = mapped_column()  # helpline rule hits/misses

    state: Mapped[str] = mapped_column(String(16))
    state_changed_at: Mapped[datetime]
    open_at: Mapped[datetime | None]
    advisory_at: Mapped[datetime | None]
    referred_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    personal_data_purged_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_helpline_cases_state", "state", "state_changed_at"),)


class HelplineContact(AuditChained, Base):
    """One communication with the helpline, as the counsellor recorded it."""

    __tablename__ = "helpline_contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)  # K-XXXX-XXXX-XXXX-XXXX
    channel: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime] = mapped_column(index=True)
    duration_seconds: Mapped[int | None]
    language: Mapped[str | None] = mapped_column(String(35))
    caller_type: Mapped[str] = mapped_column(String(10))
    topic: Mapped[str] = mapped_column(String(20))
    anonymous: Mapped[bool] = mapped_column(default=True)
    # Encrypted: how to reach the caller (only when not anonymous), and the summary.
    caller_contact: Mapped[str | None] = mapped_column(EncryptedText())
    summary: Mapped[str | None] = mapped_column(EncryptedText())
    counsellor: Mapped[str] = mapped_column(String(80), index=True)
    source: Mapped[str] = mapped_column(String(16), default="console")  # console, mailbox, form
    helpline_case_id: Mapped[int | None] = mapped_column(
        BigId, ForeignKey("helpline_cases.id"), index=True)
    created_at: Mapped[datetime]
    personal_data_purged_at: Mapped[datetime | None]
    # A contact that came in by itself (mailbox, form) waits for a counsellor until
    # one takes it up (`pipeline.stages.helpline.take_up`).
    taken_up_at: Mapped[datetime | None]


class HelplineTask(Base):
    """Something a counsellor must do for a case by a date (call back, check a reply)."""

    __tablename__ = "helpline_tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    helpline_case_id: Mapped[int] = mapped_column(BigId, ForeignKey("helpline_cases.id"),
                                                  index=True)
    title: Mapped[str] = mapped_column(String(200))  # no personal data: the case holds it
    due_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(80))
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]
    done_by: Mapped[str | None] = mapped_column(String(80))


class HelplineReferral(Base):
    """A helpline case referred to one institution: the notice that carried the case
    file (through the dispatch outbox), the institution's reply or reference, and the
    reminders sent while it was silent. One referral per case and institution."""

    __tablename__ = "helpline_referrals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    helpline_case_id: Mapped[int] = mapped_column(BigId, ForeignKey("helpline_cases.id"),
                                                  index=True)
    destination: Mapped[str] = mapped_column(String(120))  # key in rules/destinations.yaml
    notice_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("notices.id"))
    paged: Mapped[bool] = mapped_column(default=False)  # by the urgency rule, at once
    personal_data_included: Mapped[bool] = mapped_column(default=False)
    evidence_sha256: Mapped[str | None] = mapped_column(String(64))  # of the manifest
    referred_by: Mapped[str] = mapped_column(String(80))
    referred_at: Mapped[datetime]
    reply_reference: Mapped[str | None] = mapped_column(String(120))
    reply_text: Mapped[str | None] = mapped_column(EncryptedText())
    replied_at: Mapped[datetime | None]
    reminders: Mapped[int] = mapped_column(default=0)
    last_reminder_at: Mapped[datetime | None]

    __table_args__ = (UniqueConstraint("helpline_case_id", "destination",
                                       name="uq_helpline_referrals_once"),)


class HelplineCaseReport(Base):
    """A URL report a helpline case put into the URL pipeline (through intake)."""

    __tablename__ = "helpline_case_reports"

    helpline_case_id: Mapped[int] = mapped_column(BigId, ForeignKey("helpline_cases.id"),
                                                  primary_key=True)
    report_id: Mapped[int] = mapped_column(BigId, ForeignKey("reports.id"), primary_key=True)
    added_by: Mapped[str] = mapped_column(String(80))
    added_at: Mapped[datetime]
