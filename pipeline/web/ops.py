"""Operations endpoints: GET /metrics (Prometheus), /healthz (alive), /readyz (ready).

Under `hotline run` also /internal/v1/enqueue and /internal/v1/status, for the other
`hotline` commands of the same machine (`pipeline.app.running`): they need
the key of the run file and are not part of the API.

/healthz answers as long as the process serves requests. /readyz checks the
database, the broker and the scheduler's heartbeat and answers 503 naming what is
not reachable, so a load balancer or Kubernetes stops sending traffic here. Neither
says anything about cases; /metrics holds counts only, never a URL or a person.
"""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select
from starlette.responses import Response

from pipeline.adapters.tracing.breaker import BREAKERS
from pipeline.app import auth
from pipeline.app.health import queue_depths, readiness
from pipeline.app.metrics import registry_for
from pipeline.app.running import KEY_HEADER
from pipeline.app.runtime import Runtime
from pipeline.core.counters import exposition
from pipeline.core.errors import NotFound, PermissionDenied
from pipeline.stages.retention import lift_legal_hold, set_legal_hold
from pipeline.store.models import Case
from pipeline.store.ops_models import LegalHold
from pipeline.web.deps import runtime_of
from schemas.ops import EnqueueIn, LegalHoldIn, LegalHoldLiftIn, LegalHoldOut

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Database, broker and scheduler reachable",
            responses={503: {"description": "Something is not reachable; `checks` says what."}})
async def readyz(request: Request) -> JSONResponse:
    checks = await run_in_threadpool(readiness, runtime_of(request))
    ready = all(c.ok for c in checks)
    body = {
        "status": "ready" if ready else "not ready",
        "checks": {c.name: {"ok": c.ok, "detail": c.detail} for c in checks},
        "not_reachable": [c.name for c in checks if not c.ok],
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime = runtime_of(request)
    if not runtime.settings.metrics.enabled:
        return JSONResponse({"error": "metrics are disabled"}, status_code=404)
    registry = getattr(request.app.state, "metrics_registry", None)
    if registry is None:
        registry = request.app.state.metrics_registry = registry_for(runtime)
    body, content_type = await run_in_threadpool(exposition, registry)
    return Response(body, media_type=content_type)


def _run_key_checked(request: Request) -> Runtime:
    """Only the commands holding the key of this `hotline run`'s run file."""
    key = getattr(request.app.state, "run_key", None)
    if key is None:
        raise NotFound("not a `hotline run` process")
    given = request.headers.get(KEY_HEADER, "")
    if not hmac.compare_digest(given.encode(), key.encode()):
        raise PermissionDenied("the key of the run file is needed")
    return runtime_of(request)


@router.post("/internal/v1/enqueue", include_in_schema=False)
def internal_enqueue(body: EnqueueIn, request: Request) -> dict[str, int]:
    runtime = _run_key_checked(request)
    runtime.enqueuer.send(body.stage, body.ids)
    return {"queued": len(body.ids)}


@router.get("/internal/v1/status", include_in_schema=False)
def internal_status(request: Request) -> dict[str, Any]:
    runtime = _run_key_checked(request)
    return {"queues": queue_depths(runtime),
            "circuits": [c.as_dict() for c in BREAKERS.circuits()]}


def _hold_out(hold: LegalHold, case_ref: str) -> LegalHoldOut:
    return LegalHoldOut(id=hold.id, case=case_ref, requested_by=hold.requested_by,
                        reason=hold.reason, set_by=hold.set_by, set_at=hold.set_at,
                        lifted_by=hold.lifted_by, lifted_at=hold.lifted_at,
                        lift_reason=hold.lift_reason)


@router.get("/api/v1/cases/{ref}/legal-holds", response_model=list[LegalHoldOut],
            summary="A case's legal holds (supervisors, admins, auditors)")
def legal_holds(ref: str, runtime: Runtime = Depends(runtime_of),
                principal: auth.Principal = Depends(auth.current_principal)
                ) -> list[LegalHoldOut]:
    with auth.audit_denials(runtime.session_factory, principal, runtime.clock):
        auth.require(principal, "case.legal_hold_view", what="see legal holds")
    with runtime.session_factory() as session:
        case_id = session.execute(select(Case.id).where(Case.ref == ref)).scalar_one_or_none()
        if case_id is None:
            raise NotFound(f"no case with reference {ref}")
        holds = session.execute(select(LegalHold).where(LegalHold.case_id == case_id)
                                .order_by(LegalHold.id)).scalars().all()
        return [_hold_out(h, ref) for h in holds]


@router.post("/api/v1/cases/{ref}/legal-holds", response_model=LegalHoldOut, status_code=201,
             summary="Hold a case's data at the police's request (supervisors)")
def set_hold(ref: str, body: LegalHoldIn, runtime: Runtime = Depends(runtime_of),
             principal: auth.Principal = Depends(auth.current_principal)) -> LegalHoldOut:
    with (auth.audit_denials(runtime.session_factory, principal, runtime.clock),
          runtime.session_factory.begin() as session):
        hold = set_legal_hold(session, ref, principal=principal,
                              requested_by=body.requested_by, reason=body.reason,
                              at=runtime.clock.now())
        return _hold_out(hold, ref)


@router.post("/api/v1/cases/{ref}/legal-holds/lift", response_model=list[LegalHoldOut],
             summary="Lift a case's legal holds; retention applies again (supervisors)")
def lift_hold(ref: str, body: LegalHoldLiftIn, runtime: Runtime = Depends(runtime_of),
              principal: auth.Principal = Depends(auth.current_principal)
              ) -> list[LegalHoldOut]:
    with (auth.audit_denials(runtime.session_factory, principal, runtime.clock),
          runtime.session_factory.begin() as session):
        holds = lift_legal_hold(session, ref, principal=principal,
                                reason=body.reason, at=runtime.clock.now())
        return [_hold_out(h, ref) for h in holds]


def install(app: FastAPI) -> None:
    app.include_router(router)
