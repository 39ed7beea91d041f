"""Security of the console: sessions, CSRF tokens, role checks, login rate limits, headers.

- The session cookie carries a random token (HttpOnly, SameSite=Strict, Secure when the
  request came over TLS or `console.cookie_secure` says always); the database keeps
  only its SHA-256, with an idle and an absolute expiry. Logout deletes the row.
- Every form carries a CSRF token: the session's own token once logged in, a
  double-submitted cookie on the login form. A POST without the right token is refused.
- Every page names the roles that may see it (`require`); a wrong role gets a "denied"
  page and the denial is audited.
- Failed logins are counted per user name and per client address (both hashed) in a
  window; past the limit further attempts are refused without checking the password.
- Responses under /console carry a Content-Security-Policy that allows only the app's
  own scripts, styles and images, and forbids framing.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pipeline.app import auth
from pipeline.app.runtime import Runtime
from pipeline.core.config import ConsoleSection
from pipeline.core.i18n import N_
from pipeline.store import audit
from pipeline.store.console_models import ConsoleSession, LoginAttempt
from pipeline.store.models import User

log = logging.getLogger(__name__)

SESSION_COOKIE = "hotline_session"
LOGIN_CSRF_COOKIE = "hotline_login_csrf"
ROLES = ("analyst", "supervisor", "admin", "auditor", "counsellor")

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
])
SECURITY_HEADERS = [
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


class LoginRequired(Exception):
    """No valid session: the browser is sent to the login page."""

    def __init__(self, next_path: str = "/console/"):
        self.next_path = next_path
        super().__init__(next_path)


class Denied(Exception):
    """The viewer's role may not see this page, or the form's CSRF token is wrong."""

    def __init__(self, reason: str, status_code: int = 403, *, role: str | None = None,
                 roles: tuple[str, ...] = ()):
        self.reason = reason  # a msgid, translated where it is shown
        self.status_code = status_code
        self.role, self.roles = role, roles  # a wrong role: the viewer's and the page's
        super().__init__(reason)


class PasswordChangeRequired(Exception):
    """The user logs in with a one-time password and must choose their own first."""


@dataclass(frozen=True)
class Viewer:
    """The logged-in person looking at a page."""

    user_id: int
    name: str
    role: str
    csrf_token: str
    session_id: str
    must_change_password: bool = False

    @property
    def actor(self) -> str:
        """How this person appears in audit events."""
        return f"user:{self.name}"

    @property
    def principal(self) -> auth.Principal:
        """The same person as the domain functions know them."""
        return auth.Principal(name=self.name, role=self.role, user_id=self.user_id,
                              via="session")

    def can(self, *roles: str) -> bool:
        return self.role in roles


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _attempt_key(kind: str, value: str) -> str:
    return hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()


def _failures(session: Session, key: str, since: datetime) -> int:
    last_success = session.execute(
        select(func.max(LoginAttempt.at)).where(LoginAttempt.key == key,
                                                LoginAttempt.succeeded.is_(True))
    ).scalar_one_or_none()
    start = max(since, last_success) if last_success is not None else since
    return int(session.execute(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.key == key, LoginAttempt.succeeded.is_(False), LoginAttempt.at > start)
    ).scalar_one())


@dataclass(frozen=True)
class LoginResult:
    """A session token and the user's role, or the reason shown to the person."""

    token: str | None = None
    role: str | None = None
    refused: str | None = None
    throttled: bool = False


def log_in(
    session: Session, name: str, password: str, client: str, *, settings: ConsoleSection,
    now: datetime,
) -> LoginResult:
    """Check the credentials and open a session. A refusal never says which part was
    wrong; it is recorded (attempt and audit event) in the caller's transaction, which
    the caller commits either way."""
    keys = [_attempt_key("name", name.strip().casefold()), _attempt_key("addr", client)]
    since = now - timedelta(seconds=settings.login_window_seconds)
    # Housekeeping: attempts older than the window and ended sessions count no more.
    session.execute(delete(LoginAttempt).where(LoginAttempt.at <= since))
    session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
    if any(_failures(session, key, since) >= settings.login_max_failures for key in keys):
        audit.record(session, "auth:console", actor="anonymous",
                     action="console_login_throttled", at=now)
        log.warning("A console login was refused: too many failed attempts.")
        return LoginResult(refused=N_("Too many failed attempts. Wait a few minutes and try "
                                             "again."), throttled=True)
    name = name.strip()
    user = auth.authenticate_password(session, name, password, at=now)
    for key in keys:
        session.add(LoginAttempt(key=key, at=now, succeeded=user is not None))
    if user is None:
        known = session.execute(select(User.id).where(User.name == name)).first() is not None
        audit.record(session, f"user:{name}" if known else "auth:console",
                     actor=f"user:{name}" if known else "anonymous",
                     action="console_login_failed", at=now)
        log.info("A console login failed%s.", f" for user {name}" if known else "")
        return LoginResult(refused=N_("Wrong user name or password."))
    token = secrets.token_urlsafe(32)
    expires = min(now + timedelta(hours=settings.session_max_hours),
                  now + timedelta(minutes=settings.session_idle_minutes))
    session.add(ConsoleSession(id=token_hash(token), user_id=user.id,
                               csrf_token=secrets.token_urlsafe(32), created_at=now,
                               last_seen_at=now, expires_at=expires))
    audit.record(session, f"user:{user.name}", actor=f"user:{user.name}",
                 action="console_login", at=now)
    log.info("User %s logged in to the console.", user.name)
    return LoginResult(token=token, role=user.role)


def log_out(session: Session, token: str | None, *, now: datetime) -> None:
    if not token:
        return
    row = session.get(ConsoleSession, token_hash(token))
    if row is None:
        return
    session.delete(row)
    user = session.get(User, row.user_id)
    if user is not None:
        audit.record(session, f"user:{user.name}", actor=f"user:{user.name}",
                     action="console_logout", at=now)


def end_sessions_of(session: Session, user_id: int) -> None:
    """Log a user out everywhere (deactivation, role change)."""
    session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))


def _viewer_from_cookie(runtime: Runtime, token: str | None) -> Viewer | None:
    if not token:
        return None
    settings = runtime.settings.console
    now = runtime.clock.now()
    with runtime.session_factory() as session, session.begin():
        row = session.get(ConsoleSession, token_hash(token))
        if row is None:
            return None
        user = session.get(User, row.user_id)
        if row.expires_at <= now or user is None or not user.active:
            session.delete(row)
            return None
        hard_end = row.created_at + timedelta(hours=settings.session_max_hours)
        new_expiry = min(hard_end, now + timedelta(minutes=settings.session_idle_minutes))
        if new_expiry - row.expires_at > timedelta(seconds=30):
            row.expires_at, row.last_seen_at = new_expiry, now
        return Viewer(user_id=user.id, name=user.name, role=user.role,
                      csrf_token=row.csrf_token, session_id=row.id,
                      must_change_password=bool(user.must_change_password))


def current_viewer(request: Request) -> Viewer | None:
    """The logged-in viewer of this request, or None."""
    if hasattr(request.state, "viewer"):
        cached: Viewer | None = request.state.viewer
        return cached
    runtime: Runtime = request.app.state.runtime
    viewer = _viewer_from_cookie(runtime, request.cookies.get(SESSION_COOKIE))
    request.state.viewer = viewer
    if viewer is not None:
        request.state.principal = viewer.principal
    return viewer


def record_denial(runtime: Runtime, viewer: Viewer, path: str, reason: str) -> None:
    """Audit a refused page or form in the viewer's own stream (its own transaction)."""
    with runtime.session_factory() as session, session.begin():
        auth.record_denial(session, viewer.principal, at=runtime.clock.now(), reason=reason,
                           data={"page": path[:200]})


def require(*roles: str) -> Callable[[Request], Viewer]:
    """A dependency: the viewer, who must be logged in and hold one of `roles`."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown roles {sorted(unknown)}")

    def dependency(request: Request) -> Viewer:
        viewer = current_viewer(request)
        if viewer is None:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise LoginRequired(target)
        if viewer.must_change_password:
            raise PasswordChangeRequired()
        if viewer.role not in roles:
            record_denial(request.app.state.runtime, viewer, request.url.path,
                          f"role {viewer.role} may not see this page")
            raise Denied(f"This page is for {', '.join(roles)} only; you are signed in as "
                         f"{viewer.role}.", role=viewer.role, roles=tuple(roles))
        return viewer

    return dependency


def check_csrf(request: Request, form: FormData, viewer: Viewer) -> None:
    sent = form.get("csrf")
    if not isinstance(sent, str) or not hmac.compare_digest(sent, viewer.csrf_token):
        record_denial(request.app.state.runtime, viewer, request.url.path,
                      "missing or wrong CSRF token")
        raise Denied(N_("The form expired or did not come from this console. Reload the "
                        "page and try again."), status_code=400)


def require_form(*roles: str) -> Callable[[Request], Any]:
    """A dependency for POSTs: the viewer (role checked) and the form (CSRF checked)."""
    role_check = require(*roles)

    async def dependency(request: Request) -> tuple[Viewer, FormData]:

        viewer = await run_in_threadpool(role_check, request)
        form = await request.form()
        await run_in_threadpool(check_csrf, request, form, viewer)
        return viewer, form

    return dependency


def cookie_secure(request: Request, settings: ConsoleSection) -> bool:
    if settings.cookie_secure == "always":
        return True
    if settings.cookie_secure == "never":
        return False
    return request.url.scheme == "https"


def set_session_cookie(response: Response, request: Request, token: str,
                       settings: ConsoleSection) -> None:
    response.set_cookie(SESSION_COOKIE, token, max_age=settings.session_max_hours * 3600,
                        path="/", httponly=True, samesite="strict",
                        secure=cookie_secure(request, settings))


def clear_session_cookie(response: Response, request: Request,
                         settings: ConsoleSection) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict",
                           secure=cookie_secure(request, settings))


def login_csrf(request: Request) -> str:
    """The token the login form must send back (double-submitted with its cookie)."""
    existing = request.cookies.get(LOGIN_CSRF_COOKIE)
    return existing if existing and len(existing) >= 32 else secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, request: Request, token: str,
                          settings: ConsoleSection) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/console/login",
                        httponly=True, samesite="strict",
                        secure=cookie_secure(request, settings))


def login_csrf_ok(request: Request, sent: object) -> bool:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE)
    return (isinstance(sent, str) and bool(cookie)
            and hmac.compare_digest(sent, cookie or ""))


class SecurityHeaders:
    """Pure ASGI middleware adding the CSP and related headers to console responses."""

    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...] = ("/console",)):
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path == "/" or path.startswith(self.prefixes)):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])
                           if k.lower() not in {name for name, _ in SECURITY_HEADERS}]
                static = path.startswith("/console/static/")
                for name, value in SECURITY_HEADERS:
                    if static and name == b"cache-control":
                        continue
                    headers.append((name, value))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
