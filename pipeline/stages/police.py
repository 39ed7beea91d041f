"""The police hold: the police may ask the hotline to wait before the hosting
provider is told, so as not to disturb an investigation.

A case routed with `hold_for_police` waits in `police_hold` until
`Case.police_hold_until`, with its provider notices written `held`. The police reply
through the API (a police-scoped token):

- `proceed`: the hold ends now; the held notices are planned and dispatched,
- `keep_holding` (a reason is required): the deadline moves (to the date they give,
  or by `routing.police_hold_hours` from now),
- `take_over` (a reason is required): the police handle it entirely; the held
  notices are cancelled and the case closes.

With `routing.police_hold_auto_release` the scheduler ends holds past their deadline
by itself (`release_expired_holds`), exactly as a `proceed` would.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.core.clock import Clock, as_utc
from pipeline.core.config import Settings
from pipeline.core.errors import BadInput, HotlineError
from pipeline.store.audit import build_event
from pipeline.store.db import is_postgresql, lock_one
from pipeline.store.lifecycle import check_notice_moves, transition
from pipeline.store.models import Case, Notice
from pipeline.store.states import CaseState, NoticeState

log = logging.getLogger(__name__)


class PoliceDecision(StrEnum):
    PROCEED = "proceed"
    KEEP_HOLDING = "keep_holding"
    TAKE_OVER = "take_over"


class NotHeld(HotlineError):
    """The case is not (or no longer) held for the police."""


def _lock_case(session: Session, ref: str) -> Case:
    case: Case = lock_one(session, select(Case).where(Case.ref == ref), f"no case {ref}")
    return case


def release_hold(session: Session, case: Case, *, at: datetime, actor: str,
                 reason: str) -> list[int]:
    """End the hold: the held notices become planned, due now; the case is notified.
    Returns the notice ids to dispatch."""
    held = list(session.execute(
        select(Notice.id).where(Notice.case_id == case.id, Notice.state == NoticeState.HELD)
    ).scalars())
    if held:
        planned = check_notice_moves([NoticeState.HELD], NoticeState.PLANNED, ref=case.ref)
        session.execute(update(Notice).where(Notice.id.in_(held))
                        .values(state=planned, due_at=at))
    case.police_hold_reason = reason
    transition(session, case, CaseState.NOTIFIED, at=at, actor=actor,
               data={"reason": reason, "notices": len(held)})
    log.info("Police hold of case %s ended (%s); %d notices released.", case.id, reason,
             len(held), extra={"case_id": case.id})
    return held


def reply(
    session: Session,
    case_ref: str,
    decision: PoliceDecision,
    *,
    clock: Clock,
    settings: Settings,
    actor: str,
    reason: str | None = None,
    hold_until: datetime | None = None,
) -> list[int]:
    """Apply the police's reply to a held case; return notice ids to dispatch."""
    now = clock.now()
    case = _lock_case(session, case_ref)
    if case.state != CaseState.POLICE_HOLD:
        raise NotHeld(f"case {case_ref} is not held for the police (it is {case.state})")
    reason = (reason or "").strip() or None
    if decision == PoliceDecision.PROCEED:
        return release_hold(session, case, at=now, actor=actor,
                            reason=reason or "the police asked to proceed")
    if reason is None:
        raise BadInput("reason: the police must give a reason to keep holding or take over")
    if decision == PoliceDecision.KEEP_HOLDING:
        until = as_utc(hold_until) if hold_until else now + timedelta(
            hours=settings.routing.police_hold_hours)
        if until <= now:
            raise BadInput("hold_until: must lie in the future")
        case.police_hold_until = until
        case.police_hold_reason = reason
        session.execute(update(Notice).where(Notice.case_id == case.id,
                                             Notice.state == NoticeState.HELD)
                        .values(due_at=until))
        session.add(build_event(case, actor=actor, action="police_hold_extended", at=now,
                                case_id=case.id,
                                data={"until": until.isoformat(), "reason": reason}))
        log.info("Police keep holding case %s until %s.", case.id, until.isoformat(),
                 extra={"case_id": case.id})
        return []
    # TAKE_OVER
    cancelled = check_notice_moves([NoticeState.HELD], NoticeState.CANCELLED, ref=case.ref)
    session.execute(update(Notice).where(Notice.case_id == case.id,
                                         Notice.state == NoticeState.HELD)
                    .values(state=cancelled, last_error="the police took the case over"))
    case.police_hold_reason = reason
    transition(session, case, CaseState.CLOSED, at=now, actor=actor,
               data={"reason": reason, "police": "took over"})
    log.info("Police took case %s over; its held notices are cancelled.", case.id,
             extra={"case_id": case.id})
    return []


def release_expired_holds(session: Session, *, clock: Clock, settings: Settings,
                          limit: int = 1_000) -> list[int]:
    """The scheduled job: end every hold past its deadline (when configured so).
    Returns the notice ids to dispatch."""
    if not settings.routing.police_hold_auto_release:
        return []
    now = clock.now()
    query = (select(Case)
             .where(Case.state == CaseState.POLICE_HOLD, Case.police_hold_until <= now)
             .order_by(Case.police_hold_until).limit(limit))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    released: list[int] = []
    for case in session.execute(query).scalars():
        released.extend(release_hold(session, case, at=now, actor="system",
                                     reason="the police hold ran out"))
    return released

