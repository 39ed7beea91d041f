"""The reconciler: nothing accepted is ever lost to a lost message.

Every stage waits on a state. A report or case that sat in such a state past the
deadline has lost its message (broker restart, killed worker, a bug): enqueue it
again. Stages are idempotent, so an item that was merely slow costs one no-op.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from pipeline.messaging import DEDUPE, DISPATCH, NORMALISE, ROUTE, TRACE, Enqueuer
from pipeline.models import Case, Report
from pipeline.states import CaseState, ReportState

log = logging.getLogger(__name__)

# (model, waiting state, stage that moves it on). Later stages add their rows.
PENDING: list[tuple[Any, str, str]] = [
    (Report, ReportState.RECEIVED, NORMALISE),
    (Report, ReportState.NORMALISED, DEDUPE),
    (Case, CaseState.NORMALISED, TRACE),
    (Case, CaseState.TRACED, TRACE),
    (Case, CaseState.ASSESSED, ROUTE),
]


def _due_notices(session: Session, now: Any, cutoff: Any, limit: int) -> list[int]:
    from pipeline.dispatch import due_notice_ids

    return due_notice_ids(session, now=now, stuck_before=cutoff, limit=limit)


# Waits that are not a state of a Report or a Case: (finder, stage). A finder gets
# (session, now, cutoff, limit) and returns the ids to enqueue again. Notices: planned
# ones nobody delivered, failed ones due for a retry, claims whose lease ran out.
FINDERS: list[tuple[Callable[[Session, Any, Any, int], list[int]], str]] = [
    (_due_notices, DISPATCH),
]


def find_stuck(
    session: Session, *, now: Any, deadline_seconds: float, limit: int
) -> dict[str, list[int]]:
    cutoff = now - timedelta(seconds=deadline_seconds)
    stuck: dict[str, list[int]] = {}
    for model, state, stage in PENDING:
        query = select(model.id).where(model.state == state, model.state_changed_at < cutoff)
        if model is Case:  # a message waiting for its retry is not lost (issue 19)
            query = query.where(or_(Case.retry_at.is_(None), Case.retry_at < cutoff))
        ids = session.execute(
            query.order_by(model.state_changed_at).limit(limit)).scalars().all()
        if ids:
            stuck.setdefault(stage, []).extend(ids)
    for finder, stage in FINDERS:
        ids = finder(session, now, cutoff, limit)
        if ids:
            stuck.setdefault(stage, []).extend(ids)
    return stuck


def reconcile(
    session: Session, enqueuer: Enqueuer, *, now: Any, deadline_seconds: float, limit: int
) -> dict[str, int]:
    """Enqueue again everything stuck; return how many per stage."""
    stuck = find_stuck(session, now=now, deadline_seconds=deadline_seconds, limit=limit)
    for stage, ids in stuck.items():
        log.warning("Reconciler re-enqueued %d items for stage %s.", len(ids), stage,
                    extra={"stage": stage, "ids": ids[:20]})
        enqueuer.send(stage, ids)
    return {stage: len(ids) for stage, ids in stuck.items()}
