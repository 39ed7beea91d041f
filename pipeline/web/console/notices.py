"""The notices page: every notice by state, destination and case, its rendered text,
and the truth about its delivery; supervisors resolve an unconfirmed one here with
the same audit as `hotline notices resolve` (`pipeline.stages.dispatch`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from pipeline.app.runtime import Runtime
from pipeline.core.errors import FieldError
from pipeline.core.i18n import N_
from pipeline.core.messaging import DISPATCH
from pipeline.domain.problems import Problem, form_problems
from pipeline.domain.rules import RulesInvalid, load_ruleset, placeholders
from pipeline.stages.dispatch import NOTICE_STATES, UNCONFIRMED_TEXT, resolve_unconfirmed
from pipeline.store.models import Case, Notice
from pipeline.store.states import NoticeState
from pipeline.web.console.render import render
from pipeline.web.security import Viewer, require, require_form

router = APIRouter(include_in_schema=False)

READERS = ("analyst", "supervisor", "admin", "auditor")
RESOLVERS = ("supervisor", "admin")
PAGE = 200

# Why a notice is not (yet) with its receiver, in words.
WHY = {
    "unconfirmed": N_("The SMTP server was given the whole message but its answer was never "
                      "recorded: the receiver may or may not have it. Check with them, then "
                      "resolve it."),
    "dead": N_("Delivery failed past every retry; it will not be tried again by itself."),
    "failed": N_("The last attempt failed; it is tried again at the time shown."),
    "held": N_("Waiting for the police to clear the case."),
    "planned": N_("Not sent yet."),
}


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def directory(runtime: Runtime) -> tuple[dict[str, str], set[str]]:
    """Destination names by key, and the keys whose address is still a placeholder."""
    try:
        ruleset = load_ruleset(runtime.settings.routing.rules_dir)
    except (RulesInvalid, OSError):
        return {}, set()
    names = {k: d.name for k, d in ruleset.directory.destinations.items()}
    return names, set(placeholders(ruleset))


@router.get("/console/notices")
def notices_page(request: Request, state: str = "", destination: str = "", case: str = "",
                 viewer: Viewer = Depends(require(*READERS))) -> Response:
    problems = []
    if state and state not in NOTICE_STATES:  # the page again, the filter marked
        problems = form_problems(FieldError("n-state", N_("Choose a state from the list.")))
        state = ""
    return _page(request, viewer, problems, state=state, destination=destination, case=case)


def _page(request: Request, viewer: Viewer, problems: list[Problem], *, state: str = "",
          destination: str = "", case: str = "") -> Response:
    runtime = _runtime(request)
    stmt = select(Notice, Case.ref).join(Case, Case.id == Notice.case_id)
    if state:
        stmt = stmt.where(Notice.state == state)
    if destination:
        stmt = stmt.where(Notice.destination == destination[:120])
    if case:
        stmt = stmt.where(Case.ref == case.strip().upper()[:32])
    with runtime.session_factory() as session:
        rows = list(session.execute(stmt.order_by(Notice.id.desc()).limit(PAGE)).all())
        keys = sorted({d for (d,) in session.execute(
            select(Notice.destination).distinct().limit(500))})
    names, unfilled = directory(runtime)
    return render(request, "notices.html", {
        "rows": rows, "names": names, "unfilled": unfilled, "why": WHY,
        "unconfirmed_text": UNCONFIRMED_TEXT, "states": NOTICE_STATES, "keys": keys,
        "chosen": {"state": state, "destination": destination, "case": case},
        "may_resolve": viewer.role in RESOLVERS,
        # A police notice may carry the reporter's contact (routing.
        # police_notices_include_reporter): its text only for the roles that may see one.
        "sees_contacts": viewer.role in runtime.settings.assessment.reporter_contact_roles,
        "done": request.query_params.get("done"), "problems": problems},
        status_code=422 if problems else 200)


@router.post("/console/notices/{notice_id}/resolve")
def resolve(notice_id: int, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form(*RESOLVERS))) -> Response:
    """The console's `hotline notices resolve`: same function, same audit event."""
    viewer, form = posted
    runtime = _runtime(request)
    outcome = str(form.get("outcome") or "")
    if not str(form.get("reason") or "").strip():  # the list again, the field marked
        return _page(request, viewer, form_problems(FieldError(
            f"reason-{notice_id}", N_("Write what the receiver said: the answer is "
                                      "recorded with your decision."))))
    if outcome not in ("sent", "send_again"):
        raise FieldError(None, N_("Say whether the receiver has the "
                                                    "notice: choose one of the two "
                                                    "answers."))
    chosen: Literal["sent", "send_again"] = "sent" if outcome == "sent" else "send_again"
    sent_at: datetime | None = None
    with runtime.session_factory.begin() as session:
        notice = resolve_unconfirmed(session, notice_id, outcome=chosen,
                                     by=f"operator:{viewer.name}",
                                     reason=str(form.get("reason") or ""),
                                     now=runtime.clock.now(), sent_at=sent_at)
        state = notice.state
    if state == NoticeState.PLANNED:
        runtime.enqueuer.send(DISPATCH, [notice_id])
    return RedirectResponse(f"/console/notices?done={state}", status_code=303)

