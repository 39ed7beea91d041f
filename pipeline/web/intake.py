"""Intake API: reports in, tracking references out, status for reporters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import TypeAdapter, ValidationError

from pipeline.app.runtime import Runtime
from pipeline.app.tracers import settler_for
from pipeline.core.errors import BadInput, describe_validation_errors
from pipeline.stages.intake import accept_reports, public_status
from pipeline.web.deps import runtime_of
from schemas.guards import BodyRefused, load_json
from schemas.intake import (
    IntakeResponse,
    ReportAccepted,
    ReportBatchIn,
    ReportIn,
    ReportStatus,
)

router = APIRouter(prefix="/api/v1", tags=["intake"])

_report = TypeAdapter(ReportIn)
_batch = TypeAdapter(ReportBatchIn)


def parse_reports(body: bytes, max_batch: int) -> list[ReportIn]:
    """One report object, or {"reports": [...]} with up to `max_batch` of them; the
    body and every field meet the rules of `schemas.guards` (BodyRefused: 400)."""
    payload: Any = load_json(body)
    try:
        if isinstance(payload, dict) and "reports" in payload:
            raw = payload["reports"]
            if isinstance(raw, list) and len(raw) > max_batch:
                raise BadInput(
                    f"reports: a request holds at most {max_batch} reports, got {len(raw)}"
                )
            return _batch.validate_python(payload).reports
        return [_report.validate_python(payload)]
    except ValidationError as exc:
        raise BadInput("; ".join(describe_validation_errors(list(exc.errors())))) from None


@router.post(
    "/reports",
    status_code=201,
    response_model=IntakeResponse,
    summary="Report one URL, or a batch of up to 1,000",
    openapi_extra={"requestBody": {"content": {"application/json": {"schema": {
        "oneOf": [ReportIn.model_json_schema(), ReportBatchIn.model_json_schema()]}}},
        "required": True}},
)
async def submit_reports(
    request: Request, runtime: Runtime = Depends(runtime_of)
) -> IntakeResponse | JSONResponse:
    body = await request.body()  # bounded while read (pipeline.web.guard)
    try:
        items = parse_reports(body, runtime.settings.intake.max_batch)
    except BodyRefused as exc:
        return JSONResponse({"error": str(exc)}, status_code=exc.status)
    except BadInput as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)
    submission, accepted = await run_in_threadpool(
        accept_reports,
        runtime.session_factory,
        items,
        clock=runtime.clock,
        limits=runtime.settings.intake,
        enqueuer=runtime.enqueuer,
        settle=settler_for(runtime),
    )
    base = runtime.settings.web.public_url.rstrip("/")
    return IntakeResponse(
        submission=submission,
        reports=[
            ReportAccepted(reference=a.ref, url=a.url,
                           status_url=f"{base}/api/v1/reports/{a.ref}")
            for a in accepted
        ],
    )


@router.get("/reports/{ref}", response_model=ReportStatus, summary="A report's status")
def report_status(ref: str, runtime: Runtime = Depends(runtime_of)) -> ReportStatus:
    with runtime.session_factory() as session:
        return public_status(session, ref)
