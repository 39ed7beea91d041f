"""Users and API tokens, for admins."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from pipeline.app import users
from pipeline.app.auth import Principal, current_principal, require
from pipeline.app.casework import in_transaction
from pipeline.app.runtime import Runtime
from pipeline.store.models import User
from pipeline.web.deps import runtime_of
from schemas.assessment import TokenIn, TokenOut, UserIn, UserOut

router = APIRouter(prefix="/api/v1", tags=["users"])


def _user_out(user: User, one_time_password: str | None = None) -> UserOut:
    return UserOut(name=user.name, role=user.role, active=user.active,
                   created_at=user.created_at, one_time_password=one_time_password)


@router.get("/users", response_model=list[UserOut], summary="Every user (admins)")
def list_users(
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> list[UserOut]:
    def work(session: Session) -> list[UserOut]:
        require(principal, "users.manage", what="list users")
        return [_user_out(u) for u in users.list_users(session)]

    return in_transaction(runtime, principal, work)


@router.post("/users", response_model=UserOut, status_code=201,
             summary="Add a user; the answer carries a one-time password")
def add_user(
    body: UserIn,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> UserOut:
    def work(session: Session) -> UserOut:
        require(principal, "users.manage", what="add users")
        user, password = users.add_user(session, body.name, body.role,
                                        at=runtime.clock.now(), actor=principal.actor)
        return _user_out(user, one_time_password=password)

    return in_transaction(runtime, principal, work)


@router.post("/tokens", response_model=TokenOut, status_code=201,
             summary="Issue an API token (shown once)")
def add_token(
    body: TokenIn,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> TokenOut:
    def work(session: Session) -> TokenOut:
        require(principal, "tokens.manage", what="issue tokens")
        token, row = users.add_token(session, scope=body.scope, label=body.label,
                                     at=runtime.clock.now(), user_name=body.user,
                                     expires_days=body.expires_days, actor=principal.actor)
        return TokenOut(token=token, prefix=row.prefix, scope=row.scope,
                        expires_at=row.expires_at)

    return in_transaction(runtime, principal, work)


@router.delete("/tokens/{prefix}", response_model=dict[str, int],
               summary="Revoke the tokens with this prefix")
def revoke_token(
    prefix: str,
    principal: Principal = Depends(current_principal),
    runtime: Runtime = Depends(runtime_of),
) -> dict[str, int]:
    def work(session: Session) -> dict[str, int]:
        require(principal, "tokens.manage", what="revoke tokens")
        return {"revoked": users.revoke(session, prefix, at=runtime.clock.now(),
                                        actor=principal.actor)}

    return in_transaction(runtime, principal, work)
