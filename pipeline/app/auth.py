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
- `can(principal, action)` is the role check, from the table `PERMISSIONS`
  (both in `pipeline.domain.access`, so stages check roles without this module);
- object checks (may this analyst see this case?) live beside the objects
  (`pipeline.stages.assessment.can_see_case`);
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
from datetime import datetime
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.clock import Clock, as_utc
from pipeline.core.errors import PermissionDenied
from pipeline.domain.access import (  # the roles and the role check, used here too
    OUTSIDE_SCOPES,
    PERMISSIONS,
    ROLES,
    TOKEN_PREFIX,
    TOKEN_SCOPES,
    Principal,
    can,
    require,
)
from pipeline.store import audit
from pipeline.store.models import ApiToken, Case, Notice, User

log = logging.getLogger(__name__)

_hasher = PasswordHasher()





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


# --- recording denials ----------------------------------------------------------------


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


__all__ = ["OUTSIDE_SCOPES", "PERMISSIONS", "ROLES", "TOKEN_PREFIX", "TOKEN_SCOPES", "Principal",
           "can", "require"]
