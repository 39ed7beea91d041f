"""What the routers share (pipeline.web.deps): the app's runtime as a dependency, and a
role check that refuses with 403 and audits the denial in the caller's stream."""

from __future__ import annotations

import pytest
from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select

from pipeline.app.runtime import Runtime
from pipeline.core.errors import PermissionDenied
from pipeline.domain.access import Principal
from pipeline.store.models import Event
from pipeline.web.deps import require_roles, runtime_of

SUPERVISORS = frozenset({"supervisor", "admin"})


def test_a_route_gets_the_runtime_of_its_app(sqlite_runtime):
    app = FastAPI()
    app.state.runtime = sqlite_runtime

    @app.get("/probe")
    def probe(runtime: Runtime = Depends(runtime_of)) -> dict[str, str]:
        assert runtime is sqlite_runtime
        return {"database": runtime.settings.database.url}

    with TestClient(app) as client:
        assert client.get("/probe").json() == {"database": sqlite_runtime.settings.database.url}


def test_a_role_in_the_set_passes_and_nothing_is_recorded(sqlite_runtime):
    require_roles(sqlite_runtime, Principal(name="sue", role="supervisor", user_id=1),
                  SUPERVISORS, "lift a hold")
    with sqlite_runtime.session_factory() as session:
        assert session.execute(select(Event)).scalars().all() == []


def test_another_role_is_refused_and_the_denial_audited_in_its_stream(sqlite_runtime):
    ana = Principal(name="ana", role="analyst", user_id=7)
    with pytest.raises(PermissionDenied, match="a analyst may not lift a hold"):
        require_roles(sqlite_runtime, ana, SUPERVISORS, "lift a hold")
    police = Principal(name="VTK", role="police", token_id=3)
    with pytest.raises(PermissionDenied):
        require_roles(sqlite_runtime, police, SUPERVISORS, "lift a hold")
    with sqlite_runtime.session_factory() as session:
        events = session.execute(select(Event).order_by(Event.id)).scalars().all()
    assert [(e.stream, e.actor, e.action, e.data["reason"]) for e in events] == [
        (ana.stream, "user:ana", "access_denied", "a analyst may not lift a hold"),
        (police.stream, "police:VTK", "access_denied", "a police may not lift a hold"),
    ]
