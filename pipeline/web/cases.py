"""Case API for analysts: the case view, release and renewal of a claim, assessments
(one case, or one decision on several cases of a site)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from pipeline.app.auth import Principal, current_principal
from pipeline.app.runtime import Runtime
from pipeline.core.messaging import ROUTE
from pipeline.stages import assessment
from pipeline.web.app import runtime_of
from pipeline.web.queue import in_transaction, own_welfare
from schemas.assessment import (
    AssessmentIn,
    BatchAssessmentIn,
    CaseView,
    DecisionOut,
    DecisionsOut,
    LeaseOut,
)

router = APIRouter(prefix="/api/v1", tags=["assessment"])


@router.get("/cases/{case}", response_model=CaseView, summary="Everything about one case")
def get_case(
    case: str,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> CaseView:
    return in_transaction(runtime, principal, lambda s: assessment.case_view(
        s, principal, case, now=runtime.clock.now(), settings=runtime.settings.assessment))


@router.post("/cases/{case}/release", response_model=dict[str, str],
             summary="Give a claimed case back to the queue")
def release_case(
    case: str,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> dict[str, str]:
    def work(session: Session) -> dict[str, str]:
        released = assessment.release(session, principal, case, now=runtime.clock.now())
        return {"case": released.ref, "state": released.state}

    return in_transaction(runtime, principal, work)


@router.post("/cases/{case}/renew", response_model=LeaseOut,
             summary="Extend the caller's lease on a case")
def renew_case(
    case: str,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> LeaseOut:
    return in_transaction(runtime, principal, lambda s: assessment.renew(
        s, principal, case, now=runtime.clock.now(),
        lease_seconds=runtime.settings.assessment.lease_seconds))


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


@router.post("/cases/{case}/assessment", response_model=DecisionsOut,
             summary="Record the caller's assessment of a case")
def assess_case(
    case: str,
    body: AssessmentIn,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> DecisionsOut:
    return decide(runtime, principal, [case], body)


@router.post("/assessments/batch", response_model=DecisionsOut,
             summary="Apply one assessment to several cases the caller holds (same site)")
def assess_batch(
    body: BatchAssessmentIn,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> DecisionsOut:
    return decide(runtime, principal, body.cases, body.assessment)
