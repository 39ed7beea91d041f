"""Case API for analysts: the case view, release and renewal of a claim, assessments
(one case, or one decision on several cases of a site)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from pipeline.app import casework
from pipeline.app.auth import Principal, current_principal
from pipeline.app.casework import decide, in_transaction
from pipeline.app.runtime import Runtime
from pipeline.stages import assessment
from pipeline.web.deps import runtime_of
from schemas.assessment import (
    AssessmentIn,
    BatchAssessmentIn,
    CaseView,
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
    ref, state = casework.release(runtime, principal, case)
    return {"case": ref, "state": state}


@router.post("/cases/{case}/renew", response_model=LeaseOut,
             summary="Extend the caller's lease on a case")
def renew_case(
    case: str,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> LeaseOut:
    return casework.renew(runtime, principal, case)


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
