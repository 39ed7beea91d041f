"""The actions on a case as use cases: each is one function that the API, the console
and the CLI call, so an action means the same whichever way it is taken.

Each runs the domain function in one transaction, audits a denial in a transaction of
its own, and sends on what must move after the commit (assessed cases to routing,
notices the police released to dispatch).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.app.auth import Principal, audit_denials, require_notified
from pipeline.app.runtime import Runtime
from pipeline.core.messaging import DISPATCH, ROUTE
from pipeline.domain.access import require
from pipeline.stages import assessment, police
from pipeline.store.models import Case, User
from pipeline.store.states import CaseState
from schemas.assessment import AssessmentIn, DecisionOut, DecisionsOut, LeaseOut, Welfare

T = TypeVar("T")


def in_transaction(runtime: Runtime, principal: Principal, work: Callable[[Session], T]) -> T:
    """Run `work` in one transaction; a denial is audited in a transaction of its own."""
    denials = audit_denials(runtime.session_factory, principal, runtime.clock)
    with denials, runtime.session_factory.begin() as session:
        return work(session)


def own_welfare(session: Session, runtime: Runtime, principal: Principal) -> Welfare | None:
    if principal.user_id is None:
        return None
    user = session.get(User, principal.user_id)
    if user is None:
        return None
    return assessment.welfare(session, user, now=runtime.clock.now(),
                              settings=runtime.settings.assessment)


def decide(runtime: Runtime, principal: Principal, keys: list[str],
           item: AssessmentIn) -> DecisionsOut:
    """Assess, commit, then send the finalised cases on to routing."""

    def work(session: Session) -> tuple[list[DecisionOut], list[int], DecisionsOut]:
        decisions = assessment.assess_many(session, principal, keys, item,
                                           now=runtime.clock.now(),
                                           settings=runtime.settings.assessment)
        out = [DecisionOut(case_id=d.case.id, case_ref=d.case.ref, state=d.case.state,
                           outcome=d.outcome,
                           assessment=assessment.assessment_out(d.assessment, principal.name))
               for d in decisions]
        welfare = own_welfare(session, runtime, principal)
        return out, [d.case.id for d in decisions if d.route], DecisionsOut(
            decisions=out, welfare=welfare)

    _, route, result = in_transaction(runtime, principal, work)
    if route:
        runtime.enqueuer.send(ROUTE, route)
    return result


def claim(runtime: Runtime, principal: Principal, *, kind: str = "any") -> LeaseOut | None:
    """Take the next case (priority first, then oldest) with a lease; None if none waits."""
    settings = runtime.settings.assessment
    return in_transaction(runtime, principal, lambda s: assessment.claim_next(
        s, principal, now=runtime.clock.now(), lease_seconds=settings.lease_seconds,
        kind=kind, wait_for_disk=settings.claim_waits_for_disk))


def claim_site(runtime: Runtime, principal: Principal, *, host: str | None = None,
               registered_domain: str | None = None, case_key: str | None = None,
               by: str = "registered_domain") -> tuple[str, list[LeaseOut], int]:
    """Take the open cases of one host or registered domain together: the site, the
    leases taken, and how many cases others hold."""
    settings = runtime.settings.assessment
    return in_transaction(runtime, principal, lambda s: assessment.claim_site(
        s, principal, now=runtime.clock.now(), lease_seconds=settings.lease_seconds,
        max_cases=settings.same_site_max_cases, host=host,
        registered_domain=registered_domain, case_key=case_key, by=by))


def release(runtime: Runtime, principal: Principal, key: str) -> tuple[str, str]:
    """Give a claimed case back to the queue: its reference and new state."""
    def work(session: Session) -> tuple[str, str]:
        case = assessment.release(session, principal, key, now=runtime.clock.now())
        return case.ref, case.state

    return in_transaction(runtime, principal, work)


def renew(runtime: Runtime, principal: Principal, key: str) -> LeaseOut:
    """Extend the caller's own lease on a case."""
    return in_transaction(runtime, principal, lambda s: assessment.renew(
        s, principal, key, now=runtime.clock.now(),
        lease_seconds=runtime.settings.assessment.lease_seconds))


@dataclass(frozen=True)
class PoliceReply:
    """A case after the police's reply."""

    case_ref: str
    state: str
    hold_until: datetime | None  # the hold's deadline while the case is still held
    released: list[int]  # notices released for sending


def police_reply(runtime: Runtime, principal: Principal, ref: str,
                 decision: police.PoliceDecision, *, reason: str | None = None,
                 hold_until: datetime | None = None) -> PoliceReply:
    """The police's reply on a case held for them (proceed, keep holding, take over):
    given by a police token for a case notified to its destination, or recorded by a
    supervisor who had it by telephone or letter. Commits, then sends the released
    notices to dispatch. `police.NotHeld` when the case is not held (any more)."""
    what = "reply on a police hold"
    if principal.role == "police":
        require_notified(runtime.session_factory, principal, ref, at=runtime.clock.now(),
                         what=what)
    else:
        with audit_denials(runtime.session_factory, principal, runtime.clock):
            require(principal, "case.police_reply",
                    what=f"{what}; a supervisor records the police's reply")

    def work(session: Session) -> PoliceReply:
        released = police.reply(session, ref, decision, clock=runtime.clock,
                                settings=runtime.settings, actor=principal.actor,
                                reason=reason, hold_until=hold_until)
        case = session.execute(select(Case).where(Case.ref == ref)).scalar_one()
        held = case.state == CaseState.POLICE_HOLD
        return PoliceReply(case_ref=case.ref, state=case.state,
                           hold_until=case.police_hold_until if held else None,
                           released=released)

    result = in_transaction(runtime, principal, work)
    runtime.enqueuer.send(DISPATCH, result.released)
    return result
