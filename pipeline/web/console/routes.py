"""The console's shell: login and logout, the start page, static files, error pages.

The pages themselves live in `pages.py`; `install(app)` adds both routers, the static
files, the security headers and the HTML error pages for console paths.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from pipeline.app.runtime import Runtime
from pipeline.core import i18n
from pipeline.core.errors import BadInput, HotlineError, NotFound, PermissionDenied
from pipeline.core.i18n import N_
from pipeline.domain.problems import form_problems
from pipeline.stages.assessment import Conflict
from pipeline.web import security
from pipeline.web.console.pages import router as pages_router
from pipeline.web.console.render import LANGUAGE_COOKIE, STATIC, languages_of, render
from pipeline.web.security import Denied, LoginRequired, PasswordChangeRequired

log = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)

# Where each role lands after logging in.
HOME = {"analyst": "/console/", "supervisor": "/console/", "admin": "/console/admin",
        "auditor": "/console/stats", "counsellor": "/console/helpline"}


def _safe_next(value: object) -> str | None:
    """Only paths inside the console: never an open redirect."""
    if isinstance(value, str) and value.startswith("/console/") and "//" not in value \
            and "\\" not in value and "/console/login" not in value:
        return value
    return None


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=303)


@router.get("/console/language/{lang}")
def choose_language(lang: str, request: Request, next: str | None = None  # noqa: A002
                    ) -> Response:
    """The language switch in every page's header: remembered in a cookie for a year."""
    tag = i18n.canonical(lang)
    offered = languages_of(request)
    if tag not in offered:
        raise NotFound(f"language {lang[:20]!r}: choose one of {', '.join(offered)}")
    back = next if isinstance(next, str) and next.startswith("/console/") \
        and "//" not in next and "\\" not in next else "/console/"
    response = RedirectResponse(back, status_code=303)
    response.set_cookie(LANGUAGE_COOKIE, tag, max_age=365 * 24 * 3600, path="/",
                        httponly=True, samesite="lax", secure=request.url.scheme == "https")
    return response


@router.get("/console/login")
def login_page(request: Request, next: str | None = None) -> Response:  # noqa: A002
    runtime: Runtime = request.app.state.runtime
    viewer = security.current_viewer(request)
    if viewer is not None:
        return RedirectResponse(_safe_next(next) or HOME[viewer.role], status_code=303)
    token = security.login_csrf(request)
    response = render(request, "login.html", {"csrf": token, "next_path": _safe_next(next)
                                              or ""})
    security.set_login_csrf_cookie(response, request, token, runtime.settings.console)
    return response


@router.post("/console/login")
async def login(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    form = await request.form()
    name, password = str(form.get("name") or ""), str(form.get("password") or "")
    next_path = _safe_next(form.get("next"))
    if not security.login_csrf_ok(request, form.get("csrf")):
        token = security.login_csrf(request)
        response = render(request, "login.html", {
            "csrf": token, "next_path": next_path or "", "name": name,
            "error": N_("The login form expired. Please try again.")}, status_code=400)
        security.set_login_csrf_cookie(response, request, token, runtime.settings.console)
        return response

    def attempt() -> security.LoginResult:
        with runtime.session_factory() as session, session.begin():
            return security.log_in(session, name, password, _client(request),
                                   settings=runtime.settings.console, now=runtime.clock.now())

    result = await run_in_threadpool(attempt)
    if result.token is None:
        csrf = security.login_csrf(request)
        response = render(request, "login.html", {
            "csrf": csrf, "next_path": next_path or "", "name": name,
            "error": result.refused}, status_code=429 if result.throttled else 401)
        security.set_login_csrf_cookie(response, request, csrf, runtime.settings.console)
        return response
    token, role = result.token, result.role or "analyst"
    response = RedirectResponse(next_path or HOME.get(role, "/console/"), status_code=303)
    security.set_session_cookie(response, request, token, runtime.settings.console)
    response.delete_cookie(security.LOGIN_CSRF_COOKIE, path="/console/login")
    return response


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    viewer = await run_in_threadpool(security.current_viewer, request)
    if viewer is not None:
        form = await request.form()
        await run_in_threadpool(security.check_csrf, request, form, viewer)

        def end() -> None:
            with runtime.session_factory() as session, session.begin():
                security.log_out(session, request.cookies.get(security.SESSION_COOKIE),
                                 now=runtime.clock.now())

        await run_in_threadpool(end)
    response = RedirectResponse("/console/login", status_code=303)
    security.clear_session_cookie(response, request, runtime.settings.console)
    return response


def _is_console(request: Request) -> bool:
    return request.url.path.startswith("/console")


def install(app: FastAPI) -> None:
    """Add the console to the web app."""

    app.include_router(router)
    app.include_router(pages_router)
    app.mount("/console/static", StaticFiles(directory=str(STATIC)), name="console-static")
    app.add_middleware(security.SecurityHeaders)

    previous = dict(app.exception_handlers)

    @app.exception_handler(LoginRequired)
    async def _login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/console/login?next={quote(exc.next_path, safe='/')}",
                                status_code=303)

    @app.exception_handler(PasswordChangeRequired)
    async def _password(request: Request, exc: PasswordChangeRequired) -> Response:
        return RedirectResponse("/console/password", status_code=303)

    @app.exception_handler(Denied)
    async def _denied(request: Request, exc: Denied) -> Response:
        return render(request, "denied.html", {"reason": exc.reason, "role": exc.role,
                                               "roles": exc.roles},
                      status_code=exc.status_code)

    async def _fallback(request: Request, exc: Exception) -> Response:
        handler = previous.get(type(exc))
        if handler is None:
            for cls in type(exc).__mro__:
                handler = previous.get(cls)
                if handler is not None:
                    break
        if handler is None:
            raise exc
        return await handler(request, exc)  # type: ignore[no-any-return]

    # Domain errors on console pages become HTML pages; elsewhere (the API) the
    # handlers registered before the console keep answering in JSON.
    pages_for: dict[type, tuple[int, str]] = {
        HotlineError: (409, N_("Cannot do that")), BadInput: (422, N_("Cannot do that")),
        NotFound: (404, N_("Not found")), PermissionDenied: (403, N_("Not allowed")),
        Conflict: (409, N_("Cannot do that")),
    }

    async def _domain_error(request: Request, exc: Exception) -> Response:
        if not _is_console(request):
            return await _fallback(request, exc)
        status, title = next(pages_for[c] for c in type(exc).__mro__ if c in pages_for)
        # Refused input, or what was not found: one sentence per problem in the
        # page's language.
        problems = form_problems(exc) if isinstance(exc, (BadInput, NotFound)) else []
        return render(request, "error.html", {"title": title, "message": str(exc),
                                              "problems": problems}, status_code=status)

    for cls in {*pages_for, *(c for c in previous if isinstance(c, type)
                              and issubclass(c, HotlineError))}:
        app.add_exception_handler(cls, _domain_error)

    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if not _is_console(request) or exc.status_code not in (404, 405):
            return await _fallback(request, exc)
        return render(request, "error.html", {"title": N_("Not found"),
                                              "message": N_("There is no such page.")},
                      status_code=exc.status_code)

    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
