"""Storage models. The database is the source of truth; the broker carries only ids.

Other parts of the pipeline add their own tables in their own modules; every model
module is imported by `pipeline.models_all` so Alembic and the tests see them all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.db import Base, BigId

GENESIS_HASH = "0" * 64


class AuditChained:
    """The head of an audit hash chain kept on the row the chain is about."""

    audit_seq: Mapped[int] = mapped_column(default=0)
    audit_hash: Mapped[str] = mapped_column(String(64), default=GENESIS_HASH)


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
    reporter_contact: Mapped[str | None] = mapped_column(Text)
    language: Mapped[str | None] = mapped_column(String(35))
    source: Mapped[str | None] = mapped_column(String(120))  # partner hotline, API client
    urgent: Mapped[bool] = mapped_column(default=False)  # e.g. a child in immediate danger

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

    __table_args__ = (Index("ix_reports_state_changed", "state", "state_changed_at"),)


class Case(AuditChained, Base):
    """The unit of assessment for one canonical URL while it is worked on."""

    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ref: Mapped[str] = mapped_column(String(32), unique=True)
    canonical_url: Mapped[str] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(64), index=True)
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
    previous_case_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("cases.id"))
    priority: Mapped[int] = mapped_column(default=0)

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

    __table_args__ = (
        Index("ix_cases_state_changed", "state", "state_changed_at"),
        Index("ix_cases_queue", "state", "priority", "received_at"),
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
    case_id: Mapped[int | None] = mapped_column(BigId, index=True)
    report_id: Mapped[int | None] = mapped_column(BigId, index=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (UniqueConstraint("stream", "seq", name="uq_events_stream_seq"),)


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
