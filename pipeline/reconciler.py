"""The reconciler: nothing accepted is ever lost to a lost message.

Every stage waits on a state. A report or case that sat in such a state past the
deadline has lost its message (broker restart, killed worker, a bug): enqueue it
again. Stages are idempotent, so an item that was merely slow costs one no-op.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.messaging import DEDUPE, NORMALISE, TRACE, Enqueuer
from pipeline.models import Case, Report
from pipeline.states import CaseState, ReportState

log = logging.getLogger(__name__)

# (model, waiting state, stage that moves it on). Later stages add their rows.
PENDING: list[tuple[Any, str, str]] = [
    (Report, ReportState.RECEIVED, NORMALISE),
    (Report, ReportState.NORMALISED, DEDUPE),
    (Case, CaseState.NORMALISED, TRACE),
    (Case, CaseState.TRACED, TRACE),
]


def find_stuck(
    session: Session, *, now: Any, deadline_seconds: float, limit: int
) -> dict[str, list[int]]:
    cutoff = now - timedelta(seconds=deadline_seconds)
    stuck: dict[str, list[int]] = {}
    for model, state, stage in PENDING:
        ids = session.execute(
            select(model.id)
            .where(model.state == state, model.state_changed_at < cutoff)
            .order_by(model.state_changed_at)
            .limit(limit)
        ).scalars().all()
        if ids:
            stuck.setdefault(stage, []).extend(ids)
    return stuck


def reconcile(
    session: Session, enqueuer: Enqueuer, *, now: Any, deadline_seconds: float, limit: int
) -> dict[str, int]:
    """Enqueue again everything stuck; return how many per stage."""
    stuck = find_stuck(session, now=now, deadline_seconds=deadline_seconds, limit=limit)
    for stage, ids in stuck.items():
        log.warning("Reconciler re-enqueued %d items for stage %s.", len(ids), stage)
        enqueuer.send(stage, ids)
    return {stage: len(ids) for stage, ids in stuck.items()}
