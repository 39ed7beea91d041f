"""What the routers share: the app's runtime (a FastAPI dependency) and a role check
whose denials are audited."""

from __future__ import annotations

from fastapi import Request

from pipeline.app.auth import Principal, record_denial
from pipeline.app.runtime import Runtime
from pipeline.core.errors import PermissionDenied


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def require_roles(runtime: Runtime, principal: Principal, roles: frozenset[str], what: str) -> None:
    """Refuse (403) a principal whose role is not in `roles`; the denial is audited."""
    if principal.role not in roles:
        with runtime.session_factory.begin() as session:
            record_denial(session, principal, at=runtime.clock.now(),
                          reason=f"a {principal.role} may not {what}")
        raise PermissionDenied(f"a {principal.role} may not {what}")
