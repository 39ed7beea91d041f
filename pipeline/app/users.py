"""People and tokens: adding users, issuing and revoking API tokens. Each change is
audited in the stream of the user concerned (`user:<name>`) or of the token."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.app.auth import (
    ROLES,
    TOKEN_SCOPES,
    hash_password,
    issue_token,
    new_password,
    revoke_token,
)
from pipeline.core.errors import BadInput, FieldError, NotFound
from pipeline.core.i18n import N_
from pipeline.store import audit
from pipeline.store.models import ApiToken, User


def get_user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFound(f"no user named {name}")
    return user


def add_user(
    session: Session, name: str, role: str, *, at: datetime, actor: str = "system"
) -> tuple[User, str]:
    """Add a user with a one-time password (they must change it at first login).
    Returns the user and the password, which is shown once and stored only hashed."""
    if role not in ROLES:
        raise FieldError("role", N_("Choose a role from the list (%(roles)s)."),
                         roles=", ".join(ROLES))
    if not name or len(name) > 80:
        raise FieldError("name", N_("Give the user a name of 1 to 80 characters."))
    if session.execute(select(User.id).where(User.name == name)).first():
        raise FieldError("name", N_("Choose another name: a user named %(name)s exists "
                                    "already."), name=name)
    password = new_password()
    user = User(name=name, role=role, password_hash=hash_password(password),
                must_change_password=True, active=True, created_at=at)
    session.add(user)
    session.flush()
    audit.record(session, f"user:{name}", actor=actor, action="user_added", at=at,
                 data={"role": role})
    return user, password


FIRST_ADMIN = "admin"


def add_first_admin(session: Session, *, at: datetime) -> tuple[str, str] | None:
    """On a database without any user, add the administrator `admin` with a one-time
    password; return (name, password), or None when a user exists already (so it
    happens once, on the first start, never again)."""
    if session.execute(select(User.id).limit(1)).first() is not None:
        return None
    user, password = add_user(session, FIRST_ADMIN, "admin", at=at, actor="system:first-start")
    return user.name, password


def set_active(session: Session, name: str, active: bool, *, at: datetime, actor: str) -> User:
    user = get_user(session, name)
    user.active = active
    audit.record(session, f"user:{name}", actor=actor,
                 action="user_activated" if active else "user_deactivated", at=at)
    return user


def add_token(
    session: Session,
    *,
    scope: str,
    label: str,
    at: datetime,
    user_name: str | None = None,
    expires_days: int | None = None,
    actor: str = "system",
    destination: str | None = None,
) -> tuple[str, ApiToken]:
    """Issue an API token; return it (shown once) and its row."""
    if scope not in TOKEN_SCOPES:
        raise BadInput(f"scope: must be one of {', '.join(TOKEN_SCOPES)}, got {scope!r}")
    user = get_user(session, user_name) if user_name else None
    expires_at = at + timedelta(days=expires_days) if expires_days else None
    try:
        token, row = issue_token(session, scope=scope, label=label, at=at, user=user,
                                 expires_at=expires_at, destination=destination)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    stream = f"user:{user.name}" if user else f"token:{row.id}"
    audit.record(session, stream, actor=actor, action="token_issued", at=at,
                 data={"scope": scope, "prefix": row.prefix, "token_id": row.id})
    return token, row


def revoke(session: Session, prefix: str, *, at: datetime, actor: str = "system") -> int:
    count = revoke_token(session, prefix, at=at)
    if count:
        audit.record(session, "tokens", actor=actor, action="token_revoked", at=at,
                     data={"prefix": prefix, "count": count})
    return count


def list_users(session: Session) -> list[User]:
    return list(session.execute(select(User).order_by(User.name)).scalars())
