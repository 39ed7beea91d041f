"""Assessment queue API: the queue, claims (one case or a whole site), welfare.

Every route authenticates the caller (`pipeline.app.auth.current_principal`), checks the
role and the object in the domain functions, and audits every denial.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from pipeline.app import casework
from pipeline.app.auth import Principal, current_principal, require
from pipeline.app.casework import in_transaction, own_welfare
from pipeline.app.runtime import Runtime
from pipeline.core.errors import NotFound
from pipeline.stages import assessment
from pipeline.web import cases, users
from pipeline.web.deps import runtime_of
from schemas.assessment import ClaimIn, ClaimOut, QueueOut, SiteClaimIn, SiteClaimOut, Welfare

router = APIRouter(prefix="/api/v1", tags=["assessment"])

@router.get("/queue", response_model=QueueOut, summary="Cases waiting for analysts")
def get_queue(
    state: str = Query("awaiting_assessment", description="awaiting_assessment, "
                       "awaiting_second_assessment or awaiting_supervisor."),
    limit: int | None = Query(None, ge=1, le=1000, description="Cases per page."),
    offset: int = Query(0, ge=0, description="Cases to skip."),
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> QueueOut:
    page = limit or runtime.settings.assessment.queue_page_size
    return in_transaction(runtime, principal, lambda s: assessment.list_queue(
        s, principal, state=state, limit=page, offset=offset))


@router.post("/queue/claim", response_model=ClaimOut,
             summary="Take the next case (priority first, then oldest) with a lease")
def claim(
    body: ClaimIn | None = None,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> ClaimOut:
    kind = body.kind if body else "any"
    lease = casework.claim(runtime, principal, kind=kind)
    message = (f"Case {lease.case_ref} is yours until {lease.expires_at.isoformat()}."
               if lease else "The queue holds no case for you now.")
    return ClaimOut(lease=lease, message=message, welfare=in_transaction(
        runtime, principal, lambda s: own_welfare(s, runtime, principal)))


@router.post("/queue/claim-site", response_model=SiteClaimOut,
             summary="Take the open cases of one host or registered domain together")
def claim_site(
    body: SiteClaimIn,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> SiteClaimOut:
    site, leases, skipped = casework.claim_site(
        runtime, principal, host=body.host, registered_domain=body.registered_domain,
        case_key=body.case, by=body.by)
    return SiteClaimOut(site=site, leases=leases, skipped=skipped)


@router.get("/welfare", response_model=Welfare, summary="The caller's counts today")
def my_welfare(
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> Welfare:
    def work(session: Session) -> Welfare:
        require(principal, "welfare.view_own", what="have welfare counts")
        found = own_welfare(session, runtime, principal)
        if found is None:
            raise NotFound(f"no user {principal.name}")
        return found

    return in_transaction(runtime, principal, work)


@router.get("/welfare/analysts", response_model=list[Welfare],
            summary="Every analyst's counts today (supervisors)")
def all_welfare(
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> list[Welfare]:
    def work(session: Session) -> list[Welfare]:
        require(principal, "welfare.view_all", what="see other analysts' welfare counts")
        return assessment.welfare_all(session, now=runtime.clock.now(),
                                      settings=runtime.settings.assessment)

    return in_transaction(runtime, principal, work)


def install(app: FastAPI) -> None:
    """Add the assessment API (queue, cases, users) to the app."""
    @app.exception_handler(assessment.Conflict)
    async def _conflict(_: Request, exc: assessment.Conflict) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=409)

    app.include_router(router)
    app.include_router(cases.router)
    app.include_router(users.router)
