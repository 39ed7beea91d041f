"""Storage of the analysts' work: assessments, and the leases on claimed cases."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pipeline.store.db import Base, BigId


class Assessment(Base):
    """One analyst's decision on one case. Every assessment is kept; the one that
    decided the case has `final` set and its legality and category are copied onto
    the case."""

    __tablename__ = "assessments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), index=True)
    analyst_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(12))  # first, second, supervisor
    legality: Mapped[str] = mapped_column(String(40))
    category: Mapped[str | None] = mapped_column(String(40))
    age_group: Mapped[str | None] = mapped_column(String(20))
    gender: Mapped[str | None] = mapped_column(String(20))
    site_type: Mapped[str | None] = mapped_column(String(30))
    content_type: Mapped[str | None] = mapped_column(String(30))
    commercial: Mapped[bool | None]
    notes: Mapped[str | None] = mapped_column(Text)
    final: Mapped[bool] = mapped_column(default=False)
    four_eyes_rule: Mapped[str | None] = mapped_column(String(80))  # why a second was asked
    site_batch: Mapped[str | None] = mapped_column(String(32))  # same-site work reference
    claimed_at: Mapped[datetime | None]  # when the analyst took the case (time in queue)
    created_at: Mapped[datetime]

    __table_args__ = (Index("ix_assessments_analyst_created", "analyst_id", "created_at"),)


class CaseLease(Base):
    """Who holds a claimed case, and until when. One row per case at most: the primary
    key makes "two analysts never hold the same case" a database guarantee.

    A first assessment's lease goes with the state `in_assessment`; a second
    assessment's lease holds a case that stays `awaiting_second_assessment`.
    """

    __tablename__ = "case_leases"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(12))  # first, second
    claimed_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    site_batch: Mapped[str | None] = mapped_column(String(32))
