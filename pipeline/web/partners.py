"""Outside parties on the API: partner hotlines, the police, hosting providers.

- `POST /api/v1/partner/reports` (partner token): reports in the hotline exchange
  format (schemas/exchange.py) from a partner hotline; stored like any report, with
  channel `partner` and the token's label as the source.
- `GET /api/v1/police/cases` (police token): the cases held for them.
- `POST /api/v1/police/cases/{ref}/reply` (police token): proceed, keep holding
  (with a reason and optionally a new deadline) or take over a held case.
- `GET /api/v1/notices/{token}/confirm`: the per-notice link in provider notices. It
  shows a page with a button and changes nothing, because mail scanners open links;
  `POST` to the same address records `Notice.confirmed_at` and an audit event.
  Checking that the content is really gone is the monitoring stage's.
"""

from __future__ import annotations

import html
from datetime import datetime

from fastapi import APIRouter, Depends, FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from pipeline.app import casework
from pipeline.app.auth import Principal, current_principal, notified_to, record_denial
from pipeline.app.runtime import Runtime
from pipeline.app.tracers import settler_for
from pipeline.core.errors import BadInput, NotFound, PermissionDenied
from pipeline.stages.intake import accept_reports
from pipeline.stages.police import NotHeld, PoliceDecision
from pipeline.store.audit import build_event
from pipeline.store.db import is_postgresql
from pipeline.store.models import Case, Notice
from pipeline.web.deps import runtime_of
from schemas.exchange import ExchangeMessage, PartnerAccepted, PartnerIntakeResponse
from schemas.guards import InputModel
from schemas.intake import Channel, ReportIn

router = APIRouter(prefix="/api/v1", tags=["partners"])


def _require_scope(runtime: Runtime, principal: Principal, scope: str, what: str) -> None:
    if principal.role != scope:
        with runtime.session_factory.begin() as session:
            record_denial(session, principal, at=runtime.clock.now(),
                          reason=f"a {principal.role} may not {what}")
        raise PermissionDenied(f"a {scope} token is needed to {what}")


@router.post("/partner/reports", status_code=201, response_model=PartnerIntakeResponse,
             summary="Reports from a partner hotline, in the hotline exchange format")
async def partner_reports(
    message: ExchangeMessage,
    runtime: Runtime = Depends(runtime_of),
    principal: Principal = Depends(current_principal),
) -> PartnerIntakeResponse:
    _require_scope(runtime, principal, "partner", "submit partner reports")
    if len(message.reports) > runtime.settings.intake.max_batch:
        raise BadInput(f"reports: at most {runtime.settings.intake.max_batch} per request")
    items = [
        ReportIn(url=r.url, channel=Channel.PARTNER, claimed_category=r.category,
                 description=r.notes, received_at=r.received_at, urgent=r.urgent)
        for r in message.reports
    ]
    submission, accepted = await run_in_threadpool(
        accept_reports, runtime.session_factory, items, clock=runtime.clock,
        limits=runtime.settings.intake, enqueuer=runtime.enqueuer,
        source=principal.name[:120], actor=principal.actor, settle=settler_for(runtime),
    )
    return PartnerIntakeResponse(
        submission=submission,
        reports=[PartnerAccepted(reference=r.reference, our_reference=a.ref)
                 for r, a in zip(message.reports, accepted, strict=True)],
    )


class PoliceReplyIn(InputModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: PoliceDecision = Field(..., description="proceed, keep_holding or take_over.")
    reason: str | None = Field(None, max_length=2_000, description="Required to keep "
                               "holding or take over; recorded in the case's audit trail.")
    hold_until: datetime | None = Field(None, description="keep_holding: the new deadline "
                                        "(default: routing.police_hold_hours from now).")


class PoliceReplyOut(BaseModel):
    case: str = Field(..., description="The case reference.")
    state: str = Field(..., description="The case's state after the reply.")
    hold_until: datetime | None = Field(None, description="The hold's deadline, if held.")
    released_notices: int = Field(..., description="Notices released for sending.")


@router.post("/police/cases/{ref}/reply", response_model=PoliceReplyOut,
             summary="The police's reply on a case held for them")
def police_reply(
    ref: str,
    body: PoliceReplyIn,
    runtime: Runtime = Depends(runtime_of),
    principal: Principal = Depends(current_principal),
) -> PoliceReplyOut | JSONResponse:
    _require_scope(runtime, principal, "police", "reply on a police hold")
    try:
        done = casework.police_reply(runtime, principal, ref, body.decision,
                                     reason=body.reason, hold_until=body.hold_until)
    except NotHeld as exc:
        return JSONResponse({"error": str(exc)}, status_code=409)
    return PoliceReplyOut(case=done.case_ref, state=done.state, hold_until=done.hold_until,
                          released_notices=len(done.released))


class HeldCase(BaseModel):
    case: str = Field(..., description="The case reference.")
    url: str = Field(..., description="The reported URL.")
    category: str | None = Field(None, description="The analysts' content category.")
    hold_until: datetime | None = Field(None, description="When the hold ends.")
    reason: str | None = Field(None, description="The police's last reason, if any.")


@router.get("/police/cases", response_model=list[HeldCase],
            summary="Cases held for the police, earliest deadline first")
def police_cases(
    runtime: Runtime = Depends(runtime_of),
    principal: Principal = Depends(current_principal),
) -> list[HeldCase]:
    _require_scope(runtime, principal, "police", "list police holds")
    with runtime.session_factory() as session:
        rows = session.execute(select(Case).where(Case.state == "police_hold",
                                                  notified_to(principal))
                               .order_by(Case.police_hold_until).limit(1_000)).scalars()
        return [HeldCase(case=c.ref, url=c.canonical_url, category=c.category,
                         hold_until=c.police_hold_until, reason=c.police_hold_reason)
                for c in rows]


_PAGE = """<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="robots" content="noindex"><title>{title}</title></head>
<body><h1>{title}</h1>{content}</body></html>"""


def _find_notice(runtime: Runtime, token: str) -> tuple[str, str, datetime | None]:
    if len(token) > 64:
        raise NotFound("no such notice")
    with runtime.session_factory() as session:
        row = session.execute(
            select(Notice.destination, Case.ref, Notice.confirmed_at)
            .join(Case, Case.id == Notice.case_id).where(Notice.token == token)
        ).one_or_none()
    if row is None:
        raise NotFound("no such notice")
    return row[0], row[1], row[2]


@router.get("/notices/{token}/confirm", response_class=HTMLResponse,
            summary="The confirmation page of a notice (changes nothing)")
def confirm_page(token: str, runtime: Runtime = Depends(runtime_of)) -> HTMLResponse:
    _, case_ref, confirmed_at = _find_notice(runtime, token)
    if confirmed_at is not None:
        return HTMLResponse(_PAGE.format(title="Already confirmed", content=(
            f"<p>Removal for case {html.escape(case_ref)} was confirmed on "
            f"{confirmed_at:%Y-%m-%d %H:%M} UTC. Thank you.</p>")))
    return HTMLResponse(_PAGE.format(title="Confirm removal", content=(
        f"<p>Case {html.escape(case_ref)}: please confirm that the reported content has "
        "been removed or access to it disabled.</p>"
        '<form method="post"><button type="submit">The content has been removed'
        "</button></form>")))


@router.post("/notices/{token}/confirm", response_class=HTMLResponse,
             summary="Confirm removal (or receipt) of a notice")
def confirm(token: str, runtime: Runtime = Depends(runtime_of)) -> HTMLResponse:
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        query = select(Notice).where(Notice.token == token)
        if is_postgresql(session):
            query = query.with_for_update()
        notice = session.execute(query).scalar_one_or_none()
        if notice is None:
            raise NotFound("no such notice")
        case_query = select(Case).where(Case.id == notice.case_id)
        if is_postgresql(session):
            case_query = case_query.with_for_update()
        case = session.execute(case_query).scalar_one()
        if notice.confirmed_at is None:
            notice.confirmed_at = now
            session.add(build_event(case, actor=f"{notice.destination_kind}:"
                                    f"{notice.destination}", action="notice_confirmed",
                                    at=now, case_id=case.id, data={"notice": notice.id}))
        ref = case.ref
    return HTMLResponse(_PAGE.format(title="Thank you", content=(
        f"<p>Your confirmation for case {html.escape(ref)} has been recorded.</p>")))


def install(app: FastAPI) -> None:
    app.include_router(router)
