"""Notice-and-takedown tracking: the monitoring tables and the INHOPE stage clock.

The clock of a case is derived, never copied, from times the pipeline already stamps:

| stage time               | source                                                    |
|--------------------------|-----------------------------------------------------------|
| received                 | `cases.received_at` (the first report's)                  |
| assessed                 | `cases.assessed_at`                                       |
| police notified          | earliest `sent_at` of the case's police notices           |
| police cleared           | `cases.notified_at` when the case went through police_hold |
| provider notified        | earliest `sent_at` of the case's provider notices         |
| partner hotline notified | earliest `sent_at` of the case's hotline notices          |
| removed                  | `cases.removed_at` (first miss of the confirming streak)  |
| closed                   | `cases.closed_at`                                         |

(A held case enters `notified` only when the police clear it, so `notified_at` of such
a case is the time of clearance; a case the police took over never has one.)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from pipeline.store.db import Base, BigId
from pipeline.store.models import Case, Notice, Report

# Stage times, in the INHOPE order.
STAGES = (
    "received",
    "assessed",
    "police_notified",
    "police_cleared",
    "provider_notified",
    "hotline_notified",
    "removed",
    "closed",
)

# Notice destination kinds that start each "notified" clock.
NOTIFIED_KINDS = {"police_notified": "police", "provider_notified": "provider",
                  "hotline_notified": "hotline"}


class TakedownWatch(Base):
    """A case whose URL is being checked until the content is gone."""

    __tablename__ = "takedown_watches"

    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"), primary_key=True)
    started_at: Mapped[datetime]
    next_check_at: Mapped[datetime] = mapped_column(index=True)
    checks: Mapped[int] = mapped_column(default=0)
    misses: Mapped[int] = mapped_column(default=0)  # consecutive misses so far
    # Consecutive checks that could not tell (non-global addresses only); at
    # monitoring.inconclusive_to_analyst the case goes to an analyst.
    inconclusive: Mapped[int] = mapped_column(default=0, server_default="0")
    first_miss_at: Mapped[datetime | None]  # first miss of the current streak
    last_checked_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(20))
    # The global addresses the host had when the content was first seen: an answer
    # sharing none of them while the content is still there means it moved.
    baseline_addresses: Mapped[list[Any]] = mapped_column(default=list)
    # A claim that the content is gone (provider's confirmation link, partner hotline's
    # status), verified by the same checks before the case counts as removed.
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(140))
    claim_status: Mapped[str | None] = mapped_column(String(20))  # removed, unavailable, moved


class TakedownCheck(Base):
    """One check of one case's URL: the history behind a "removed"."""

    __tablename__ = "takedown_checks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    case_id: Mapped[int] = mapped_column(BigId, ForeignKey("cases.id"))
    at: Mapped[datetime]
    outcome: Mapped[str] = mapped_column(String(20))  # present, miss, unknown
    reason: Mapped[str] = mapped_column(String(40))  # e.g. http_404, nxdomain, timeout
    http_status: Mapped[int | None]
    address: Mapped[str | None] = mapped_column(String(64))  # the server address asked
    redirects: Mapped[int] = mapped_column(default=0)
    misses: Mapped[int] = mapped_column(default=0)  # consecutive misses after this check
    detail: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_takedown_checks_case", "case_id", "at"),)


def notice_times_query(kind: str = "notice") -> Any:
    """Per case, the earliest sent time of its police, provider and hotline notices."""
    columns = [
        func.min(Notice.sent_at).filter(Notice.destination_kind == dest).label(stage)
        for stage, dest in NOTIFIED_KINDS.items()
    ]
    return (
        select(Notice.case_id, *columns)
        .where(Notice.kind == kind, Notice.sent_at.is_not(None))
        .group_by(Notice.case_id)
    )


def stage_times(session: Session, case: Case) -> dict[str, datetime | None]:
    """The INHOPE stage times of one case (None where the stage has not happened)."""
    row = session.execute(
        notice_times_query().where(Notice.case_id == case.id)
    ).one_or_none()
    notified = dict(row._mapping) if row is not None else {}
    return {
        "received": case.received_at,
        "assessed": case.assessed_at,
        "police_notified": notified.get("police_notified"),
        "police_cleared": case.notified_at if case.police_hold_at is not None else None,
        "provider_notified": notified.get("provider_notified"),
        "hotline_notified": notified.get("hotline_notified"),
        "removed": case.removed_at,
        "closed": case.closed_at,
    }


# Indexes the statistics export relies on (created by migration 0006).
Index("ix_notices_case_kind_sent", Notice.case_id, Notice.kind, Notice.destination_kind,
      Notice.sent_at)
# Partial (migration 0021): a new case has neither time yet and costs no entry;
# the statistics ask for ranges of them, which only non-null times match.
Index("ix_cases_removed_at", Case.removed_at,
      postgresql_where=Case.removed_at.is_not(None), sqlite_where=Case.removed_at.is_not(None))
Index("ix_cases_assessed_at", Case.assessed_at,
      postgresql_where=Case.assessed_at.is_not(None),
      sqlite_where=Case.assessed_at.is_not(None))
Index("ix_reports_received_at", Report.received_at)
