"""The console's pages other than the work on cases (see `casework.py`): the password
change, the supervisor's team view, police holds, statistics, rules and users.

Every page states the roles that may see it (`require`), every form is CSRF-checked
(`require_form`), and the work itself is done by the domain modules (`pipeline.app.users`,
`pipeline.stages.assessment`, `pipeline.stages.stats`...): this module only reads forms and renders.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from sqlalchemy import select
from starlette.datastructures import FormData
from starlette.responses import Response

from pipeline.app import auth, users
from pipeline.app.runtime import Runtime
from pipeline.core import i18n
from pipeline.core.errors import BadInput, FieldError
from pipeline.core.i18n import N_
from pipeline.domain.problems import Problem, form_problems
from pipeline.store import audit
from pipeline.store.models import Case, Notice, User
from pipeline.store.states import CaseState
from pipeline.web import security
from pipeline.web.console import domain, search
from pipeline.web.console.casework import router as casework_router
from pipeline.web.console.failures import router as failures_router
from pipeline.web.console.helpline import router as helpline_router
from pipeline.web.console.mailbox import router as mailbox_router
from pipeline.web.console.notices import router as notices_router
from pipeline.web.console.render import ANALYSTS, EVERYONE, language_of, render
from pipeline.web.security import Viewer, require, require_form
from schemas.intake import Category

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
router.include_router(casework_router)
router.include_router(mailbox_router)  # mail that waits for a person
router.include_router(helpline_router)
router.include_router(notices_router)
router.include_router(failures_router)

MIN_PASSWORD_LENGTH = 12


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


# --- password ------------------------------------------------------------------------


def _logged_in(request: Request) -> Viewer:
    viewer = security.current_viewer(request)
    if viewer is None:
        raise security.LoginRequired("/console/password")
    return viewer


@router.get("/console/password")
def password_page(request: Request, viewer: Viewer = Depends(_logged_in)) -> Response:
    return render(request, "password.html", {"forced": viewer.must_change_password})


@router.post("/console/password")
async def change_password(request: Request) -> Response:
    viewer = await run_in_threadpool(_logged_in, request)
    form = await request.form()
    await run_in_threadpool(security.check_csrf, request, form, viewer)
    runtime = _runtime(request)
    current, new, again = (str(form.get(k) or "") for k in ("current", "new", "again"))

    def change() -> str | None:
        now = runtime.clock.now()
        with runtime.session_factory.begin() as session:
            user = session.get(User, viewer.user_id)
            if user is None or not auth.verify_password(user.password_hash, current):
                return N_("The current password is wrong.")
            if new != again:
                return N_("The two new passwords differ.")
            if len(new) < MIN_PASSWORD_LENGTH:
                return N_("Choose a password of at least 12 characters.")  # MIN_PASSWORD_LENGTH
            if new == current:
                return N_("Choose a password different from the current one.")
            auth.set_password(user, new, must_change=False)
            audit.record(session, f"user:{user.name}", actor=viewer.actor,
                         action="password_changed", at=now)
            log.info("User %s changed their password.", user.name)
            return None

    problem = await run_in_threadpool(change)
    if problem:
        return render(request, "password.html", {"forced": viewer.must_change_password,
                                                 "error": problem}, status_code=422)
    return RedirectResponse("/console/?done=password", status_code=303)


# --- search --------------------------------------------------------------------------


@router.get("/console/search")
def search_page(request: Request, viewer: Viewer = Depends(require(*EVERYONE))) -> Response:
    """Find cases by reference, URL, host or site and filters (`search.py`)."""
    runtime = _runtime(request)
    params = dict(request.query_params)
    problems: list[Problem] = []
    try:
        query = search.parse(params)
        with runtime.session_factory() as session:
            result = search.search(session, query) if request.query_params else None
    except BadInput as exc:  # the form again, the field named and marked
        problems, result = form_problems(exc), None
        query = search.Query(text=params.get("q", "")[:2048])
    with runtime.session_factory() as session:
        destinations = search.destinations(session)
    return render(request, "search.html", {
        "query": query, "result": result, "destinations": destinations,
        "states": [s.value for s in CaseState], "categories": [c.value for c in Category],
        "sorts": list(search.SORTS), "urlencode": urlencode, "problems": problems},
        status_code=422 if problems else 200)


# --- the supervisor's team view ------------------------------------------------------


@router.get("/console/team")
def team(request: Request, viewer: Viewer = Depends(require("supervisor", "admin"))
         ) -> Response:

    return render(request, "team.html", {"rows": domain.team_view(_runtime(request), viewer)})


# --- police holds --------------------------------------------------------------------


@router.get("/console/police")
def police_holds(request: Request, viewer: Viewer = Depends(
        require("analyst", "supervisor", "admin"))) -> Response:
    runtime = _runtime(request)
    now = runtime.clock.now()
    with runtime.session_factory() as session:
        cases = list(session.execute(
            select(Case).where(Case.state == "police_hold")
            .order_by(Case.police_hold_until.asc().nulls_last(), Case.police_hold_at)
        ).scalars())
        police_sent: dict[int | None, Any] = {}
        if cases:
            for case_id, sent_at in session.execute(
                select(Notice.case_id, Notice.sent_at).where(
                    Notice.case_id.in_([c.id for c in cases]),
                    Notice.destination_kind == "police", Notice.kind == "notice")
            ):
                police_sent[case_id] = sent_at
    return render(request, "police.html", {"cases": cases, "police_sent": police_sent,
                                           "now": now})


# --- statistics ----------------------------------------------------------------------


@router.get("/console/stats")
def statistics(request: Request, start: str | None = None, end: str | None = None,
               viewer: Viewer = Depends(require(*EVERYONE))) -> Response:

    runtime = _runtime(request)
    period = domain.period(runtime, start, end)
    figures = domain.statistics(runtime, viewer, period)
    with i18n.set_language(language_of(request)):
        charts = domain.charts(figures)
    return render(request, "stats.html", {"period": period, "figures": figures,
                                          "charts": charts})


@router.get("/console/stats/export")
def statistics_export(request: Request, start: str | None = None, end: str | None = None,
                      format: str = "csv",  # noqa: A002
                      viewer: Viewer = Depends(require(*EVERYONE))) -> Response:

    if format not in ("csv", "json"):
        raise FieldError(None, N_("Export as CSV or JSON."))
    runtime = _runtime(request)
    response: Response = domain.statistics_export(
        runtime, viewer, domain.period(runtime, start, end), format)
    return response


@router.get("/console/stats/urls")
def url_export(request: Request, start: str | None = None, end: str | None = None,
               viewer: Viewer = Depends(require("admin"))) -> Response:

    runtime = _runtime(request)
    response: Response = domain.url_export(runtime, viewer, domain.period(runtime, start, end))
    return response


# --- rules (read-only) ---------------------------------------------------------------


@router.get("/console/rules")
def rules(request: Request, viewer: Viewer = Depends(require("supervisor", "admin", "auditor"))
          ) -> Response:
    runtime = _runtime(request)
    folder = Path(runtime.settings.routing.rules_dir)
    files = []
    if folder.is_dir():
        for path in sorted(folder.glob("*.y*ml")):
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                text = f"(cannot read: {exc.strerror})"
            files.append({"name": path.name, "text": text})

    ruleset, problems, unfilled = domain.rules_table(runtime)
    return render(request, "rules.html", {"folder": str(folder), "files": files,
                                          "ruleset": ruleset, "problems": problems,
                                          "unfilled": unfilled})


# --- users (admin) -------------------------------------------------------------------


@router.get("/console/admin")
def admin(request: Request, viewer: Viewer = Depends(require("admin"))) -> Response:
    runtime = _runtime(request)
    with runtime.session_factory() as session:
        people = users.list_users(session)
    return render(request, "admin.html", {"users": people, "roles": auth.ROLES,
                                          "done": request.query_params.get("done")})


@router.post("/console/admin/users")
def add_user(request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form("admin"))) -> Response:
    viewer, form = posted
    runtime = _runtime(request)
    name, role = str(form.get("name") or "").strip(), str(form.get("role") or "")
    now = runtime.clock.now()
    try:
        with runtime.session_factory.begin() as session:
            user, password = users.add_user(session, name, role, at=now, actor=viewer.actor)
            created = (user.name, user.role, password)
    except BadInput as exc:
        with runtime.session_factory() as session:
            people = users.list_users(session)
        return render(request, "admin.html", {
            "users": people, "roles": auth.ROLES, "problems": form_problems(exc),
            "entered": {"name": name, "role": role}}, status_code=422)
    log.info("User %s added user %s as %s.", viewer.name, created[0], created[1])
    with runtime.session_factory() as session:
        people = users.list_users(session)
    return render(request, "admin.html", {"users": people, "roles": auth.ROLES,
                                          "created": created})


@router.post("/console/admin/users/{name}/active")
def set_active(name: str, request: Request, posted: tuple[Viewer, FormData] = Depends(
        require_form("admin"))) -> Response:
    viewer, form = posted
    runtime = _runtime(request)
    active = form.get("active") == "1"
    if name == viewer.name and not active:
        raise FieldError(None, N_("You cannot deactivate yourself: ask another "
                                  "administrator."))
    with runtime.session_factory.begin() as session:
        user = users.set_active(session, name, active, at=runtime.clock.now(),
                                actor=viewer.actor)
        if not active:
            security.end_sessions_of(session, user.id)
    return RedirectResponse("/console/admin?done=" + ("activated" if active else "deactivated"),
                            status_code=303)


__all__ = ["router", "ANALYSTS"]
