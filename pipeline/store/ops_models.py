"""Tables of operations and data protection: legal holds and process heartbeats."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.db import Base, BigId


class LegalHold(Base):
    """A case whose data must not be purged: the police asked, a supervisor set it.

    A hold is active while `lifted_at` is NULL; a case may be held several times.
    """

    __tablename__ = "legal_holds"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # A URL case, or a helpline case (that foreign key is made by migration
    # 0017, as the helpline tables import the base models).
    case_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    helpline_case_id: Mapped[int | None] = mapped_column(BigId, index=True)
    requested_by: Mapped[str] = mapped_column(String(200))  # police unit and its reference
    reason: Mapped[str] = mapped_column(Text)
    set_by: Mapped[str] = mapped_column(String(80))  # the supervisor's user name
    set_at: Mapped[datetime]
    lifted_by: Mapped[str | None] = mapped_column(String(80))
    lifted_at: Mapped[datetime | None]
    lift_reason: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_legal_holds_active", "case_id", "lifted_at"),)


class Heartbeat(Base):
    """The last sign of life of a process: the scheduler (`scheduler`, for /readyz) and
    every worker process (`worker:<process id>`: the scheduler releases the notices a
    worker claimed once its row is `recovery.dead_after_seconds` old)."""

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    beat_at: Mapped[datetime]
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
