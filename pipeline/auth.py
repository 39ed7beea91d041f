"""Who is this (authentication) and may they do X (authorisation), kept apart.

Authentication:
- passwords are hashed with argon2id (argon2-cffi's `PasswordHasher`, its default
  parameters); a hash made with older parameters is re-hashed at the next login;
- API tokens are 256 random bits shown once; the database keeps their SHA-256
  (`ApiToken.token_hash`) and a short prefix operators can recognise. A token is
  scoped: `analyst` tokens act as their user (and that user's role); `partner`,
  `police` and `provider` tokens are the principals of those outside parties.
- `current_principal` is the FastAPI dependency for the API: a principal already
  put on `request.state.principal` (the console's cookie session does that), else
  `Authorization: Bearer <token>`. Failed authentication is audited.

Authorisation:
- `can(principal, action)` is the role check, from the table `PERMISSIONS`;
- object checks (may this analyst see this case?) live beside the objects
  (`pipeline.assessment.can_see_case`);
- `require` raises `PermissionDenied`; `audit_denials` records every denial in the
  principal's own audit stream, in a transaction of its own so that the rollback of
  the refused work does not take the record with it.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline import audit
from pipeline.clock import Clock, as_utc
from pipeline.errors import PermissionDenied
from pipeline.models import ApiToken, Case, Notice, User

log = logging.getLogger(__name__)

ROLES = ("analyst", "supervisor", "admin", "auditor")
TOKEN_SCOPES = ("analyst", "partner", "police", "provider")
OUTSIDE_SCOPES = ("partner", "police", "provider")
TOKEN_PREFIX = "hl_"  # noqa: S105  (a marker, not a secret)

A, S, ADM, AUD = "analyst", "supervisor", "admin", "auditor"

# action -> the roles allowed to do it. Object checks come on top of these.
PERMISSIONS: dict[str, frozenset[str]] = {
    "queue.view": frozenset({A, S, ADM, AUD}),
    "case.claim": frozenset({A, S}),
    "case.assess": frozenset({A, S}),
    "case.release": frozenset({A, S}),
    "case.release_any": frozenset({S, ADM}),  # free a case someone else holds
    "case.view": frozenset({A, S, ADM, AUD}),
    "case.view_any": frozenset({S, ADM, AUD}),  # beyond the analyst's own and queued cases
    "case.decide_dispute": frozenset({S}),  # the two analysts disagreed
    "case.legal_hold": frozenset({S}),  # set or lift, at the police's request
    "case.legal_hold_view": frozenset({S, ADM, AUD}),
    "welfare.view_own": frozenset({A, S}),
    "welfare.view_all": frozenset({S, ADM}),
    "users.manage": frozenset({ADM}),
    "tokens.manage": frozenset({ADM}),
}

_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: a person (by session or analyst token) or an outside
    party (partner hotline, police, provider) by its token."""

    name: str  # user name, or the token's label for outside parties
    role: str  # analyst, supervisor, admin, auditor; or partner, police, provider
    user_id: int | None = None
    token_id: int | None = None
    via: str = "token"  # token, session, cli
    destination: str | None = None  # outside parties: the destination key they act for

    @property
    def is_person(self) -> bool:
        return self.user_id is not None

    @property
    def actor(self) -> str:
        """How the principal is named in audit events."""
        return f"user:{self.name}" if self.is_person else f"{self.role}:{self.name}"

    @property
    def stream(self) -> str:
        """The audit stream of the principal's own non-state events."""
        return f"user:{self.name}" if self.is_person else f"token:{self.token_id}"


def principal_for_user(user: User, via: str) -> Principal:
    return Principal(name=user.name, role=user.role, user_id=user.id, via=via)


# --- passwords ---------------------------------------------------------------------


def new_password() -> str:
    """A one-time password: 16 characters, about 95 bits."""
    return secrets.token_urlsafe(12)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def authenticate_password(
    session: Session, name: str, password: str, *, at: datetime
) -> User | None:
    """The active user with this name and password, or None. Re-hashes an outdated
    hash and stamps `last_login_at`. Auditing the attempt is the caller's."""
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        _hasher.hash(password)  # spend the same time as a real check
        return None
    if not user.active or not verify_password(user.password_hash, password):
        return None
    if user.password_hash and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = at
    return user


def set_password(user: User, password: str, *, must_change: bool = False) -> None:
    user.password_hash = hash_password(password)
    user.must_change_password = must_change


# --- API tokens ----------------------------------------------------------------------


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_token(
    session: Session,
    *,
    scope: str,
    label: str,
    at: datetime,
    user: User | None = None,
    expires_at: datetime | None = None,
    destination: str | None = None,
) -> tuple[str, ApiToken]:
    """Make a token; return it (shown once) and its stored row (hash only). An outside
    party's token names the destination it acts for (`destination`)."""
    if scope not in TOKEN_SCOPES:
        raise ValueError(f"scope must be one of {', '.join(TOKEN_SCOPES)}")
    if scope == "analyst" and user is None:
        raise ValueError("an analyst token acts as a user: name the user")
    if scope in OUTSIDE_SCOPES and user is not None:
        raise ValueError(f"a {scope} token belongs to an outside party, not to a user")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        token_hash=token_hash(token), prefix=token[:12], scope=scope,
        user_id=user.id if user else None, label=label, created_at=at, expires_at=expires_at,
        destination=destination if scope in OUTSIDE_SCOPES else None,
    )
    session.add(row)
    session.flush()
    return token, row


def authenticate_token(session: Session, token: str, *, at: datetime) -> Principal | None:
    """The principal a bearer token stands for, or None (unknown, revoked, expired, or
    its user deactivated)."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.execute(
        select(ApiToken).where(ApiToken.token_hash == token_hash(token))
    ).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    if row.expires_at is not None and as_utc(row.expires_at) <= at:
        return None
    if row.scope == "analyst":
        user = session.get(User, row.user_id) if row.user_id else None
        if user is None or not user.active:
            return None
        return Principal(name=user.name, role=user.role, user_id=user.id, token_id=row.id)
    return Principal(name=row.label, role=row.scope, token_id=row.id,
                     destination=row.destination)


def revoke_token(session: Session, prefix: str, *, at: datetime) -> int:
    """Revoke every live token with this prefix; return how many."""
    rows = session.execute(
        select(ApiToken).where(ApiToken.prefix == prefix, ApiToken.revoked_at.is_(None))
    ).scalars().all()
    for row in rows:
        row.revoked_at = at
    return len(rows)


# --- authorisation -------------------------------------------------------------------


def can(principal: Principal, action: str) -> bool:
    """The role check: may this principal's role do `action` at all?"""
    return principal.role in PERMISSIONS.get(action, frozenset())


def require(principal: Principal, action: str, *, what: str | None = None) -> None:
    """Raise `PermissionDenied` unless the role allows `action`."""
    if not can(principal, action):
        article = "an" if principal.role[0] in "aeiou" else "a"
        raise PermissionDenied(f"{article} {principal.role} may not {what or action}")


def record_denial(
    session: Session,
    principal: Principal,
    *,
    at: datetime,
    reason: str,
    case_id: int | None = None,
    data: dict[str, Any] | None = None,
) -> None:
    """Add the audit event of a denial to `session` (the caller commits)."""
    audit.record(session, principal.stream, actor=principal.actor, action="access_denied",
                 at=at, case_id=case_id, data={"reason": reason, **(data or {})})
    log.warning("Denied %s: %s.", principal.actor, reason, extra={"case_id": case_id})


def notified_to(principal: Principal) -> Any:
    """The SQL condition "a notice of the case went to the principal's destination"
    (for `select(Case).where(...)`); false for a token that names none."""
    return select(Notice.id).where(
        Notice.case_id == Case.id, Notice.destination == (principal.destination or "")
    ).exists() if principal.destination else Case.id.is_(None)


def require_notified(session_factory: sessionmaker[Session], principal: Principal,
                     case_ref: str, *, at: datetime, what: str) -> int:
    """The id of case `case_ref` when an outside party (partner, police, provider) may
    act on it: the case had a notice to the destination its token stands for.
    Otherwise an audited denial (its own transaction) and `PermissionDenied`; an
    unknown reference is refused the same way, so references cannot be probed."""
    with session_factory() as session:
        case_id = session.execute(select(Case.id).where(
            Case.ref == case_ref, notified_to(principal))).scalar_one_or_none()
    if case_id is not None:
        return int(case_id)
    with session_factory.begin() as session:
        record_denial(session, principal, at=at,
                      reason=f"case {case_ref[:40]} was not notified to "
                      f"{principal.destination or 'a token without a destination'}",
                      data={"case": case_ref[:40], "action": what})
    raise PermissionDenied(f"case {case_ref} was not notified to this token's destination")


@contextmanager
def audit_denials(
    session_factory: sessionmaker[Session], principal: Principal, clock: Clock,
    *, case_id: int | None = None,
) -> Iterator[None]:
    """Record every `PermissionDenied` raised inside, in its own transaction."""
    try:
        yield
    except PermissionDenied as exc:
        with session_factory.begin() as session:
            record_denial(session, principal, at=clock.now(), reason=str(exc),
                          case_id=getattr(exc, "case_id", None) or case_id)
        raise


# --- the FastAPI dependency ----------------------------------------------------------


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _unauthenticated(detail: str) -> HTTPException:
    return HTTPException(status_code=401, detail=detail,
                         headers={"WWW-Authenticate": 'Bearer realm="hotline"'})


def current_principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, or 401. A principal set on `request.state` by a
    session layer (the console) is taken as is."""
    existing = getattr(request.state, "principal", None)
    if isinstance(existing, Principal):
        return existing
    runtime = request.app.state.runtime
    token = bearer_token(request)
    if token is None:
        raise _unauthenticated("authentication required: Authorization: Bearer <token>")
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        principal = authenticate_token(session, token, at=now)
        if principal is None:
            # The prefix is what operators see too; the token itself is never recorded.
            audit.record(session, "auth:api", actor="anonymous", action="authentication_failed",
                         at=now, data={"token_prefix": token[:12] if token.startswith(
                             TOKEN_PREFIX) else None})
    if principal is None:
        raise _unauthenticated("the token is unknown, revoked or expired")
    request.state.principal = principal
    return principal
