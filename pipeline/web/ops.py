"""Operations endpoints: GET /metrics (Prometheus), /healthz (alive), /readyz (ready).

Under `hotline run` (and `hotline serve` with a Redis broker) also
/internal/v1/enqueue, /internal/v1/status, /internal/v1/import and /internal/v1/submit,
for the other `hotline` commands of the same machine (`pipeline.app.running`,
`pipeline.launcher`): they need the key of the run file and are not part of the API.
/internal/v1/import takes a whole import file as the request body, read as it streams
in (`pipeline.stages.importer`, the rules of `hotline import`; the body limit does not
apply, a key does), and answers NDJSON: a line per refused line, then the summary.
/internal/v1/submit takes the arguments of a `hotline submit` and does what it does.

/healthz answers as long as the process serves requests. /readyz checks the
database, the broker and the scheduler's heartbeat and answers 503 naming what is
not reachable, so a load balancer or Kubernetes stops sending traffic here. Neither
says anything about cases; /metrics holds counts only, never a URL or a person.
"""

from __future__ import annotations

import hmac
import io
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio.from_thread
import orjson
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.requests import ClientDisconnect
from starlette.responses import Response, StreamingResponse

from pipeline.adapters.tracing.breaker import BREAKERS
from pipeline.app import auth
from pipeline.app.health import queue_depths, readiness
from pipeline.app.metrics import registry_for
from pipeline.app.running import KEY_HEADER
from pipeline.app.runtime import Runtime
from pipeline.app.tracers import settler_for
from pipeline.core import i18n
from pipeline.core.counters import exposition
from pipeline.core.errors import BadInput, NotFound, PermissionDenied
from pipeline.core.runfile import IMPORT_PATH, SUBMIT_PATH
from pipeline.domain.problems import form_problems
from pipeline.stages.importer import ImportResult, import_stream
from pipeline.stages.intake import accept_reports
from pipeline.stages.retention import lift_legal_hold, set_legal_hold
from pipeline.store.models import Case
from pipeline.store.ops_models import LegalHold
from pipeline.web.deps import runtime_of
from schemas.intake import ReportIn
from schemas.ops import (
    SUBMIT_OPTIONS,
    CommandSubmitIn,
    EnqueueIn,
    LegalHoldIn,
    LegalHoldLiftIn,
    LegalHoldOut,
)

log = logging.getLogger(__name__)

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


class _BodyReader(io.RawIOBase):
    """The request body as a blocking binary stream, for the importer running in a
    worker thread: each read takes the next chunk from the event loop as it arrives,
    so no more than a chunk is held."""

    def __init__(self, chunks: AsyncIterator[bytes]):
        self._chunks = chunks
        self._left = b""
        self._done = False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return b""

    def readinto(self, buffer: Any) -> int:
        while not self._left and not self._done:
            chunk = anyio.from_thread.run(self._next)
            if chunk:
                self._left = chunk
            else:
                self._done = True
        size = min(len(buffer), len(self._left))
        buffer[:size] = self._left[:size]
        self._left = self._left[size:]
        return size


def _outcome_lines(result: ImportResult) -> Iterator[bytes]:
    for line, error in result.errors:
        yield orjson.dumps({"line": line, "error": error}) + b"\n"
    yield orjson.dumps({"imported": result.imported, "submission": result.submission,
                        "refused": len(result.errors)}) + b"\n"


@router.get(IMPORT_PATH, include_in_schema=False)
def internal_import_ready(request: Request) -> dict[str, list[str]]:
    """Asked by `hotline import` before it sends a file: this process answers and holds
    the key (a run file left by another process is not sent a file)."""
    _run_key_checked(request)
    return {"formats": ["csv", "jsonl"]}


@router.post(IMPORT_PATH, include_in_schema=False)
async def internal_import(request: Request, format: str = "jsonl", name: str = "import",
                          source: str | None = None) -> Response:
    """Import the body as `hotline import` would a file (`format` csv or jsonl, `name`
    in what its messages say): the database first, each batch queued once committed,
    the first line on its own. Answers NDJSON once the body is read: {"line", "error"}
    per refused line, then {"imported", "submission", "refused"}; 422 with a sentence
    when the file cannot be read at all (a CSV header naming no url)."""
    runtime = _run_key_checked(request)  # before a byte of the body is read
    if format not in ("csv", "jsonl"):
        return JSONResponse({"error": f"format must be csv or jsonl, not {format!r}"},
                            status_code=400)
    body = io.BufferedReader(_BodyReader(request.stream()), buffer_size=64 * 1024)
    try:
        result = await run_in_threadpool(
            import_stream, body, runtime.session_factory, name=name, is_csv=format == "csv",
            clock=runtime.clock, limits=runtime.settings.intake, enqueuer=runtime.enqueuer,
            source=source, settle=settler_for(runtime))
    except BadInput as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    except ClientDisconnect:
        log.warning("An import ended early: the command sending it went away; the "
                    "batches committed before stay stored and queued, the rest of the "
                    "file was not imported.")
        return Response(status_code=400)
    log.info("Imported %d reports streamed by a command (submission %s); %d lines refused.",
             result.imported, result.submission, len(result.errors))
    return StreamingResponse(_outcome_lines(result), media_type="application/x-ndjson")


@router.post(SUBMIT_PATH, include_in_schema=False)
def internal_submit(body: CommandSubmitIn, request: Request) -> JSONResponse:
    """`hotline submit` done here, as the command would: each URL a report of one
    submission, stored, then queued. {"submission", "reports": [{"reference", "url"}]};
    422 {"problems": [...]} naming the command's options, in the shell's language."""
    runtime = _run_key_checked(request)
    try:
        items = [ReportIn.model_validate({"url": url, "channel": body.channel,
                                          "claimed_category": body.claimed_category,
                                          "description": body.description})
                 for url in body.urls]
        submission, accepted = accept_reports(
            runtime.session_factory, items, clock=runtime.clock,
            limits=runtime.settings.intake, enqueuer=runtime.enqueuer,
            settle=settler_for(runtime))
    except (ValidationError, BadInput) as exc:
        lang = (i18n.canonical(body.language.split(".")[0].split(":")[0])
                or i18n.ENGLISH)  # as the command reads the shell's language
        return JSONResponse({"problems": [p.text(lang) for p in
                                          form_problems(exc, SUBMIT_OPTIONS)]},
                            status_code=422)
    return JSONResponse({"submission": submission, "reports": [
        {"reference": a.ref, "url": a.url} for a in accepted]})


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
