"""Statistics API: GET /api/v1/stats (aggregates, for the hotline's own people),
GET /api/v1/stats/urls (the per-URL export for ICCAM-style exchange: admins only),
GET /api/v1/stats/schema, and POST /api/v1/partner/cases/{ref}/takedown-status
(a partner hotline's status of content it was sent).

Authentication is `pipeline.app.auth.current_principal` (bearer token or console
session); every refusal is recorded in the caller's audit stream.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from pipeline.app.auth import Principal, current_principal, require_notified
from pipeline.app.runtime import Runtime
from pipeline.core.errors import BadInput
from pipeline.stages.monitoring import record_partner_status
from pipeline.stages.stats import export_stats, iccam_csv, iccam_rows, to_csv
from pipeline.store.audit import record
from pipeline.web.deps import require_roles, runtime_of
from schemas.guards import InputModel
from schemas.stats import IccamRow, StatsExport

router = APIRouter(prefix="/api/v1", tags=["statistics"])

# People of the hotline may read aggregates; only admins the per-URL export.
STATS_ROLES = frozenset({"analyst", "supervisor", "admin", "auditor"})
URL_EXPORT_ROLES = frozenset({"admin"})


def _period(start: date, end: date) -> None:
    if end < start:
        raise BadInput("to: the period ends before it starts")
    if (end - start).days > 3660:
        raise BadInput("to: a period is at most ten years")


@router.get("/stats", response_model=StatsExport, summary="Aggregate statistics of a period",
            responses={200: {"content": {"text/csv": {}}}})
def get_stats(
    start: date = Query(..., alias="from", description="First day (UTC), YYYY-MM-DD."),
    end: date = Query(..., alias="to", description="Last day (UTC), YYYY-MM-DD, included."),
    fmt: Literal["json", "csv"] = Query("json", alias="format"),
    suppress_below: int | None = Query(None, ge=0, description="Withhold counts 1..N-1 "
                                       "(default: stats.suppress_below)."),
    runtime: Runtime = Depends(runtime_of),
    principal: Principal = Depends(current_principal),
) -> Any:

    require_roles(runtime, principal, STATS_ROLES, "read statistics")
    _period(start, end)
    with runtime.session_factory.begin() as session:
        result = export_stats(session, start, end, settings=runtime.settings,
                              now=runtime.clock.now(), suppress_below=suppress_below)
    if fmt == "csv":
        return Response(to_csv(result), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="stats-{start}-{end}.csv"'})
    return result


@router.get("/stats/schema", summary="JSON Schema of the statistics export")
def get_stats_schema() -> JSONResponse:
    return JSONResponse(StatsExport.model_json_schema())


@router.get("/stats/urls", response_model=list[IccamRow],
            summary="Per-URL export for ICCAM-style exchange (admins only)",
            responses={200: {"content": {"text/csv": {}}}})
def get_url_export(
    start: date = Query(..., alias="from"),
    end: date = Query(..., alias="to"),
    fmt: Literal["json", "csv"] = Query("json", alias="format"),
    runtime: Runtime = Depends(runtime_of),
    principal: Principal = Depends(current_principal),
) -> Any:

    require_roles(runtime, principal, URL_EXPORT_ROLES, "export URLs")
    _period(start, end)
    with runtime.session_factory.begin() as session:
        rows = iccam_rows(session, start, end)
        record(session, principal.stream, actor=principal.actor, action="url_export",
               at=runtime.clock.now(), data={"from": str(start), "to": str(end),
                                             "rows": len(rows)})
    if fmt == "csv":
        return Response(iccam_csv(rows), media_type="text/csv; charset=utf-8")
    return rows


class TakedownStatusIn(InputModel):
    status: Literal["removed", "unavailable", "moved"] = Field(
        ..., description="What the partner hotline found: removed, unavailable, or moved "
        "(still online at another hosting).")


@router.post("/partner/cases/{ref}/takedown-status", status_code=202,
             summary="A partner hotline's status of content it was sent")
def post_takedown_status(
    ref: str,
    body: TakedownStatusIn,
    runtime: Runtime = Depends(runtime_of),
    principal: Principal = Depends(current_principal),
) -> dict[str, Any]:
    """Recorded, then verified by the hotline's own check before anything follows."""

    require_roles(runtime, principal, frozenset({"partner"}), "report a takedown status")
    case_id = require_notified(runtime.session_factory, principal, ref,
                               at=runtime.clock.now(), what="report a takedown status")
    with runtime.session_factory.begin() as session:
        recorded = record_partner_status(session, case_id, body.status,
                                         hotline=principal.name, at=runtime.clock.now())
    return {"case": ref, "status": body.status, "recorded": recorded}


def install(app: FastAPI) -> None:
    app.include_router(router)
