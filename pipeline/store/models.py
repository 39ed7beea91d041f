"""Storage models. The database is the source of truth; the broker carries only ids.

Other parts of the pipeline add their own tables in their own modules; every model
module is imported by `pipeline.store.models_all` so Alembic and the tests see them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.core.crypto import EncryptedText
from pipeline.store.db import Base, BigId

GENESIS_HASH = "0" * 64
# Key in an event's `data`: the later states of an event that carries several (a
# transaction moved its row through them; `pipeline.store.audit.extend_event`).
EVENT_STEPS = "steps"


class AuditChained:
    """The head of an audit hash chain kept on the row the chain is about."""

    audit_seq: Mapped[int] = mapped_column(default=0)
    audit_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)


# The states in which the reconciler looks for stuck reports and cases
# (`pipeline.stages.reconciler.PENDING`; a test holds the two together), as index predicates.
REPORTS_WAITING = text("state IN ('received', 'normalised', 'rejected')")
CASES_WAITING = text("state IN ('normalised', 'traced', 'assessed')")
CLOSED = text("open_key IS NULL")


class Report(AuditChained, Base):
    """One reported URL from one source."""

    __tablename__ = "reports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)  # the reporter's reference
    submission_ref: Mapped[str] = mapped_column(String(32), index=True)
    url: Mapped[str] = mapped_column(Text)  # exactly as submitted
    channel: Mapped[str] = mapped_column(String(20))
    claimed_category: Mapped[str | None] = mapped_column(String(40))
    description: Mapped[str | None] = mapped_column(Text)
    # Encrypted at rest with the key from the environment (pipeline.core.crypto).
    reporter_contact: Mapped[str | None] = mapped_column(EncryptedText())
    language: Mapped[str | None] = mapped_column(String(35))
    source: Mapped[str | None] = mapped_column(String(120))  # partner hotline, API client
    urgent: Mapped[bool] = mapped_column(default=False)  # e.g. a child in immediate danger
    found_on: Mapped[str | None] = mapped_column(String(20))  # where it was seen (0016)

    state: Mapped[str] = mapped_column(String(24))
    state_changed_at: Mapped[datetime]
    received_at: Mapped[datetime]
    normalised_at: Mapped[datetime | None]
    rejected_at: Mapped[datetime | None]
    duplicate_at: Mapped[datetime | None]
    new_case_at: Mapped[datetime | None]
    reject_reason: Mapped[str | None] = mapped_column(Text)

    # Facts derived by normalisation.
    canonical_url: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str | None] = mapped_column(String(64))
    host: Mapped[str | None] = mapped_column(String(255))
    host_unicode: Mapped[str | None] = mapped_column(String(1024))
    registered_domain: Mapped[str | None] = mapped_column(String(255))
    url_kind: Mapped[str | None] = mapped_column(String(16))
    url_userinfo: Mapped[str | None] = mapped_column(Text)  # evidence, never in the key
    host_confusable: Mapped[bool] = mapped_column(default=False)

    case_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("cases.id"), index=True)

    # When retention purged each kind of personal data (pipeline.stages.retention).
    contact_purged_at: Mapped[datetime | None]
    description_purged_at: Mapped[datetime | None]
    url_purged_at: Mapped[datetime | None]

    # Only the states the reconciler looks for stuck reports in, and rejected reports
    # (retention purges them): a report moves on at once, so most cost no entry (0012).
    __table_args__ = (Index("ix_reports_state_changed", "state", "state_changed_at",
                            postgresql_where=REPORTS_WAITING, sqlite_where=REPORTS_WAITING),)


class Case(AuditChained, Base):
    """The unit of assessment for one canonical URL while it is worked on."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    canonical_url: Mapped[str] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(64))  # closed cases indexed (0012)
    # Equal to dedup_key while the case is open, NULL once removed or closed: the
    # unique index makes "one open case per URL" a database guarantee.
    open_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    host: Mapped[str | None] = mapped_column(String(255), index=True)
    host_unicode: Mapped[str | None] = mapped_column(String(1024))
    registered_domain: Mapped[str | None] = mapped_column(String(255), index=True)
    url_kind: Mapped[str | None] = mapped_column(String(16))
    claimed_category: Mapped[str | None] = mapped_column(String(40))
    source_channel: Mapped[str | None] = mapped_column(String(20))
    urgent: Mapped[bool] = mapped_column(default=False)
    report_count: Mapped[int] = mapped_column(default=1)

    # Latest trace, copied here for routing, queueing and statistics (tracing fills
    # these; the full evidence lives in the traces table).
    hosting_country: Mapped[str | None] = mapped_column(String(2))
    hosting_asn: Mapped[int | None]
    hosting_org: Mapped[str | None] = mapped_column(String(255))
    hosting_abuse_email: Mapped[str | None] = mapped_column(String(320))
    behind_cdn: Mapped[bool] = mapped_column(default=False)
    cdn_name: Mapped[str | None] = mapped_column(String(120))
    origin_unknown: Mapped[bool] = mapped_column(default=False)
    trace_outcome: Mapped[str | None] = mapped_column(String(40))
    registrar: Mapped[str | None] = mapped_column(String(255))
    registrar_abuse_email: Mapped[str | None] = mapped_column(String(320))

    # The final assessment, copied here for routing and statistics (the assessment fills
    # these; every assessment is kept in its own table).
    legality: Mapped[str | None] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(40))

    # Routing: which rules hit and missed and what was decided, and the
    # police hold: until when, and the police's last reason.
    routing: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    police_hold_until: Mapped[datetime | None]
    police_hold_reason: Mapped[str | None] = mapped_column(Text)

    previous_case_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("cases.id"))
    # The URL was reported again after its previous case closed as removed
    # (a re-upload, counted in statistics); and the host mixes scripts or looks Latin.
    reupload: Mapped[bool] = mapped_column(default=False)
    host_confusable: Mapped[bool] = mapped_column(default=False)
    # When retention purged the URLs and the raw trace answers (pipeline.stages.retention).
    url_purged_at: Mapped[datetime | None]
    trace_answers_purged_at: Mapped[datetime | None]
    priority: Mapped[int] = mapped_column(default=0)
    # The TRACE message of this case waits for its retry until then (a
    # registry failed in passing); the reconciler does not send it again before.
    retry_at: Mapped[datetime | None]
    # Failed trace attempts so far and why the last one failed (noted with
    # `retry_at`; shown in the console's "still tracing" list).
    trace_attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    trace_wait_reason: Mapped[str | None] = mapped_column(Text)

    state: Mapped[str] = mapped_column(String(32))
    state_changed_at: Mapped[datetime]
    received_at: Mapped[datetime]  # the first report's received time: the NTD clock starts
    normalised_at: Mapped[datetime | None]
    traced_at: Mapped[datetime | None]
    awaiting_assessment_at: Mapped[datetime | None]
    in_assessment_at: Mapped[datetime | None]
    awaiting_second_assessment_at: Mapped[datetime | None]
    awaiting_supervisor_at: Mapped[datetime | None]
    assessed_at: Mapped[datetime | None]
    routed_at: Mapped[datetime | None]
    police_hold_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]
    monitoring_at: Mapped[datetime | None]
    removed_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    # The content was unreachable before the first notice: closed as "gone before
    # notice", never a removal after notice (removed_at stays empty).
    gone_before_notice_at: Mapped[datetime | None]

    __table_args__ = (
        # Only the states the reconciler looks for stuck cases in (0012).
        Index("ix_cases_state_changed", "state", "state_changed_at",
              postgresql_where=CASES_WAITING, sqlite_where=CASES_WAITING),
        # The history of a URL, for the cases no longer open (the open one is found
        # by its unique open_key): a new case costs no entry here (0012).
        Index("ix_cases_closed_dedup_key", "dedup_key", postgresql_where=CLOSED,
              sqlite_where=CLOSED),
        Index("ix_cases_queue", "state", "priority", "received_at"),
        # The claim order of the assessment queue, only for cases waiting (0009).
        Index("ix_cases_claim", text("priority DESC"), "received_at", "id",
              postgresql_where=text("state = 'awaiting_assessment'"),
              sqlite_where=text("state = 'awaiting_assessment'")),
        # The console's search: each filter, newest first (0018).
        Index("ix_cases_received", "received_at", "id"),
        Index("ix_cases_state_received", "state", "received_at"),
        Index("ix_cases_category_received", "category", "received_at"),
        Index("ix_cases_country_received", "hosting_country", "received_at"),
        # When the police hold ends, only for cases held (0010).
        Index("ix_cases_police_hold", "police_hold_until",
              postgresql_where=text("state = 'police_hold'"),
              sqlite_where=text("state = 'police_hold'")),
    )


class User(Base):
    """A person who works in the system (analyst, supervisor, admin, auditor)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # analyst, supervisor, admin, auditor
    password_hash: Mapped[str | None] = mapped_column(String(255))  # argon2
    must_change_password: Mapped[bool] = mapped_column(default=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime]
    last_login_at: Mapped[datetime | None]


class ApiToken(Base):
    """A scoped API token; only its hash is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the token
    prefix: Mapped[str] = mapped_column(String(12))  # shown to operators to tell tokens apart
    scope: Mapped[str] = mapped_column(String(20))  # analyst, partner, police, provider
    user_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("users.id"))
    label: Mapped[str] = mapped_column(String(120))  # e.g. the partner hotline's name
    # Outside parties: the destination key (rules/destinations.yaml) the token acts
    # for; it may act only on cases with a notice to it (none: on no case).
    destination: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class Notice(Base):
    """One message to one destination: the outbox row, written in the transaction that
    decides to send it. (case, destination, kind, round) is unique: retries never make a
    second copy."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # A notice is about a URL case, or (a referral) about a helpline case: exactly one.
    case_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    # helpline_cases.id: the foreign key is made by migration 0017 (the helpline tables
    # live in pipeline.store.helpline_models, which imports this module).
    helpline_case_id: Mapped[int | None] = mapped_column(BigId)
    destination: Mapped[str] = mapped_column(String(120))  # key in rules/destinations.yaml
    destination_kind: Mapped[str] = mapped_column(String(20))  # police, provider, registrar,
    # cdn, hotline, institution, upstream
    kind: Mapped[str] = mapped_column(String(20))  # notice, reminder, escalation
    round: Mapped[int] = mapped_column(default=1)
    channel: Mapped[str] = mapped_column(String(20))  # smtp, webhook, file
    address: Mapped[str | None] = mapped_column(Text)  # e-mail address or webhook URL
    language: Mapped[str] = mapped_column(String(10), default="en")
    # planned, held (waits for the police), sending (claimed, with a lease),
    # handing_over (SMTP: only the final "." is left), failed (retried at due_at), sent,
    # dead (dead-lettered), unconfirmed (hand-over outcome unknown: an operator resolves
    # it), cancelled (the police took over). See pipeline.store.states.NoticeState.
    state: Mapped[str] = mapped_column(String(20), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)  # confirmation link token
    subject: Mapped[str | None] = mapped_column(Text)
    body: Mapped[str | None] = mapped_column(Text)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Deliveries the channel refused or failed (never a claim lost to a crash: those are `crashes`).
    attempts: Mapped[int] = mapped_column(default=0)
    # Claims lost without an outcome: the worker died or its lease ran out (audited as
    # `notice_claim_lost`); they never count towards dispatch.max_attempts.
    crashes: Mapped[int] = mapped_column(default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    due_at: Mapped[datetime | None]  # not before (e.g. after a police hold)
    sent_at: Mapped[datetime | None]
    confirmed_at: Mapped[datetime | None]  # the destination confirmed removal/receipt
    # Delivery claim: a worker sets state "sending" with a lease before it
    # delivers; another may claim the notice again only after the lease ran out.
    lease_until: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("case_id", "destination", "kind", "round", name="uq_notices_once"),
        UniqueConstraint("helpline_case_id", "destination", "kind", "round",
                         name="uq_notices_helpline_once"),
        Index("ix_notices_state_due", "state", "due_at"),  # due deliveries (0005)
        Index("ix_notices_destination", "destination", "case_id"),  # search (0018)
    )


class Event(Base):
    """Append-only audit record, hash-chained per stream (a report, a case, a user...)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    stream: Mapped[str] = mapped_column(String(80))
    seq: Mapped[int]
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(32))
    to_state: Mapped[str | None] = mapped_column(String(32))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)
    case_id: Mapped[int | None] = mapped_column(BigId)
    report_id: Mapped[int | None] = mapped_column(BigId)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    # Partial: events without a case cost no entry (migration 0010). No index by
    # report: a report's history is its stream, `report:<ref>` (migration 0011). On
    # PostgreSQL `id` has no index either (migration 0021): ids come from the
    # sequence and nothing looks an event up by id.
    __table_args__ = (
        UniqueConstraint("stream", "seq", name="uq_events_stream_seq"),
        Index("ix_events_case_id", "case_id", postgresql_where=text("case_id IS NOT NULL"),
              sqlite_where=text("case_id IS NOT NULL")),
    )


class AuditStream(AuditChained, Base):
    """Chain heads of streams that have no row of their own (users, the system)."""

    __tablename__ = "audit_streams"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)


class DeadLetter(Base):
    """A message that failed past its retries, kept for operators to inspect and retry."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(80))
    queue: Mapped[str] = mapped_column(String(80))
    args: Mapped[list[Any]] = mapped_column(default=list)
    kwargs: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str] = mapped_column(Text)
    traceback: Mapped[str | None] = mapped_column(Text)
    retries: Mapped[int] = mapped_column(default=0)
    failed_at: Mapped[datetime]
    retried_at: Mapped[datetime | None]
