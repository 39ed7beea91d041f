"""The reconciler: nothing accepted is ever lost to a lost message.

Every stage waits on a state. A report or case that sat in such a state past the
deadline has lost its message (broker restart, killed worker, a bug): enqueue it
again. Stages are idempotent, so an item that was merely slow costs one no-op.

`release_dead_holders` does not wait for deadlines: notices claimed by a worker
process whose heartbeat stopped go out again at once (docs/operators/recovery.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.messaging import DEDUPE, DISPATCH, NORMALISE, ROUTE, TRACE, Enqueuer
from pipeline.core.process import HEARTBEAT_PREFIX
from pipeline.stages.dispatch import due_notice_ids
from pipeline.stages.dispatch import release_dead_holders as release_notices
from pipeline.store.models import Case, Report
from pipeline.store.ops_models import Heartbeat
from pipeline.store.states import CaseState, ReportState

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
        if model is Case:  # a message waiting for its retry is not lost
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


def release_dead_holders(
    session_factory: sessionmaker[Session], enqueuer: Enqueuer, *, now: Any,
    dead_after_seconds: float, lease_seconds: float,
) -> dict[str, int]:
    """Worker processes silent for `dead_after_seconds` are dead: the notices they had
    claimed are released (sent again, or flagged `unconfirmed` after a hand-over) and
    their heartbeat rows removed, in one transaction; then the released notices are
    enqueued. A process that was only stalled beats again and finds its claims gone
    (its hand-over and its `sent` check the claim, so nothing goes out twice)."""
    cutoff = now - timedelta(seconds=dead_after_seconds)
    with session_factory.begin() as session:
        names = list(session.execute(
            select(Heartbeat.name).where(Heartbeat.name.startswith(HEARTBEAT_PREFIX),
                                         Heartbeat.beat_at < cutoff)
        ).scalars())
        if not names:
            return {}
        holders = [name.removeprefix(HEARTBEAT_PREFIX) for name in names]
        again, flagged = release_notices(session, holders, now=now,
                                         lease=timedelta(seconds=lease_seconds))
        session.execute(delete(Heartbeat).where(Heartbeat.name.in_(names),
                                                Heartbeat.beat_at < cutoff))
    if again:
        enqueuer.send(DISPATCH, again)
    log.warning("%d worker processes stopped beating; %d of their notices go out again, "
                "%d are unconfirmed.", len(names), len(again), len(flagged),
                extra={"stage": DISPATCH, "ids": again[:20]})
    return {"dead_processes": len(names), "notices_released": len(again),
            "notices_unconfirmed": len(flagged)}
