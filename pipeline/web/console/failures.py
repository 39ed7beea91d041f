"""Tracing failures in view: the cases still waiting for their hosting origin, and
the dead letters (messages that failed past their retries).

A case waits in `normalised` (new) or `traced` (sent back to be traced again) while
a registry is slow or refusing; the trace stage retries it and, past
`trace.give_up_after_seconds`, sends it on marked "origin unknown"
(`pipeline.stages.trace`). This page shows each such case with its age, the reason
of its last failed attempt, how many attempts failed, when the next retry is due
and when it will go on by itself; "trace again now" sends it to the trace stage at
once. Supervisors may also send chosen cases on at once marked "origin unknown"
(`pipeline.stages.trace.send_on_unknown`, the steps a case whose registries are
unreachable goes through, audited with their name), and retry dead letters
(`pipeline.app.deadletters`, the same as `hotline deadletters retry`).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from pipeline.app.deadletters import list_dead_letters, retry_dead_letters
from pipeline.app.runtime import Runtime
from pipeline.core.clock import as_utc
from pipeline.core.errors import FieldError
from pipeline.core.i18n import N_
from pipeline.core.messaging import ROUTE, TRACE
from pipeline.stages.trace import send_on_unknown
from pipeline.store.models import Case
from pipeline.store.states import CaseState
from pipeline.store.trace_models import Trace
from pipeline.web.console.render import render
from pipeline.web.security import Viewer, require, require_form

router = APIRouter(include_in_schema=False)

TRACING = (CaseState.NORMALISED.value, CaseState.TRACED.value)
READERS = ("analyst", "supervisor", "admin")
SUPERVISORS = ("supervisor", "admin")
DONE = {"traced": N_("The cases were sent to be traced again now."),
        "sent-on": N_("The cases were sent on to assessment marked origin unknown."),
        "retried": N_("The messages were sent again.")}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


@router.get("/console/tracing")
def tracing_page(request: Request, viewer: Viewer = Depends(require(*READERS))) -> Response:
    runtime = _runtime(request)
    now = runtime.clock.now()
    give_up = timedelta(seconds=runtime.settings.trace.give_up_after_seconds)
    with runtime.session_factory() as session:
        cases = list(session.execute(
            select(Case).where(Case.state.in_(TRACING)).order_by(Case.received_at)
            .limit(500)).scalars())
        last: dict[int, Trace] = {}
        if cases:
            for trace in session.execute(
                    select(Trace).where(Trace.case_id.in_([c.id for c in cases]))
                    .order_by(Trace.traced_at)).scalars():
                last[trace.case_id] = trace
        letters = list_dead_letters(session) if viewer.role in SUPERVISORS else []
    rows = [{"case": c, "age": now - as_utc(c.received_at), "trace": last.get(c.id),
             "reason": c.trace_wait_reason or (last[c.id].reason if c.id in last else None),
             "next_retry": (as_utc(c.retry_at) if c.retry_at is not None
                            and as_utc(c.retry_at) > now else None),
             "gives_up_in": as_utc(c.received_at) + give_up - now} for c in cases]
    done = request.query_params.get("done")
    return render(request, "tracing.html", {
        "rows": rows, "letters": letters, "may_retry_letters": viewer.role in SUPERVISORS,
        "may_send_on": viewer.role in SUPERVISORS,
        **({"notice": DONE[done]} if done in DONE else {})})


@router.post("/console/tracing/retry")
def trace_again(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form("analyst", "supervisor", "admin"))) -> Response:
    """Send the chosen still-tracing cases to the trace stage now."""
    _viewer, form = posted
    runtime = _runtime(request)
    runtime.enqueuer.send(TRACE, _chosen(runtime, form))
    return RedirectResponse("/console/tracing?done=traced", status_code=303)


@router.post("/console/tracing/send-on")
def send_on(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*SUPERVISORS))) -> Response:
    """Send the chosen still-tracing cases on at once, marked origin unknown."""
    viewer, form = posted
    runtime = _runtime(request)
    ids = _chosen(runtime, form)
    rerouted: list[int] = []
    with runtime.session_factory.begin() as session:
        send_on_unknown(session, ids, clock=runtime.clock, actor=viewer.actor,
                        rerouted=rerouted)
    if rerouted:  # already assessed (the content moved): straight to routing
        runtime.enqueuer.send(ROUTE, rerouted)
    return RedirectResponse("/console/tracing?done=sent-on", status_code=303)


def _chosen(runtime: Runtime, form: FormData) -> list[int]:
    """The ids of the chosen cases that are still being traced."""
    refs = [str(v) for v in form.getlist("ref") if str(v)]
    if not refs:
        raise FieldError(None, N_("Choose at least one case in the list."))
    with runtime.session_factory() as session:
        ids = list(session.execute(select(Case.id).where(
            Case.ref.in_(refs[:500]), Case.state.in_(TRACING))).scalars())
    if not ids:
        raise FieldError(None, N_("None of the chosen cases is still being traced: the "
                                  "list has changed, look again."))
    return ids


@router.post("/console/deadletters/retry")
def retry_letters(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*SUPERVISORS))) -> Response:
    _viewer, form = posted
    ids = [int(str(v)) for v in form.getlist("id") if str(v).isdigit()]
    if not ids:
        raise FieldError(None, N_("Choose at least one dead letter in the list."))
    retry_dead_letters(_runtime(request), ids)
    return RedirectResponse("/console/tracing?done=retried", status_code=303)
