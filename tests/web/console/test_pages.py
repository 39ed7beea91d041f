"""The console's pages outside the work on cases (pipeline.web.console.pages): each
page held to its roles, the admin's users page adding a user with a one-time password
and deactivating one (ending their sessions), never oneself."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.app import users
from pipeline.store.console_models import ConsoleSession
from pipeline.store.models import Event
from tests.web.console.conftest import add_person
from tests.web.console.test_casework import Person

PAGES = {
    "/console/team": {"supervisor", "admin"},
    "/console/police": {"analyst", "supervisor", "admin"},
    "/console/rules": {"supervisor", "admin", "auditor"},
    "/console/admin": {"admin"},
    "/console/stats": {"analyst", "supervisor", "admin", "auditor"},
}
ROLES = ["analyst", "supervisor", "admin", "auditor"]


@pytest.fixture
def people(sqlite_runtime):
    for role in ROLES:
        add_person(sqlite_runtime, role, role)
    return sqlite_runtime


@pytest.mark.parametrize("role", ROLES)
def test_each_page_is_shown_only_to_its_roles(people, role):
    person = Person(people, role)
    for path, allowed in PAGES.items():
        status = person.client.get(path).status_code
        assert status == (200 if role in allowed else 403), (role, path, status)


def test_an_admin_adds_a_user_who_gets_a_one_time_password(people):
    admin = Person(people, "admin")
    page = admin.post("/console/admin/users", name="mira", role="supervisor")
    assert page.status_code == 200
    with people.session_factory() as session:
        mira = users.get_user(session, "mira")
        added = session.execute(select(Event).where(Event.stream == "user:mira")
                                ).scalar_one()
    assert (mira.role, mira.must_change_password) == ("supervisor", True)
    assert added.actor == "user:admin" and added.action == "user_added"
    assert "mira" in page.text


def test_a_deactivated_user_loses_their_sessions_and_an_admin_cannot_stop_themselves(people):
    supervisor = Person(people, "supervisor")
    assert supervisor.client.get("/console/team").status_code == 200
    admin = Person(people, "admin")
    done = admin.post("/console/admin/users/supervisor/active", active="0")
    assert (done.status_code, done.headers["location"]) == (
        303, "/console/admin?done=deactivated")
    with people.session_factory() as session:
        assert not users.get_user(session, "supervisor").active
        supervisor_id = users.get_user(session, "supervisor").id
        assert session.execute(select(ConsoleSession).where(
            ConsoleSession.user_id == supervisor_id)).first() is None
    assert supervisor.client.get("/console/team").status_code == 303  # to the login page
    refused = admin.post("/console/admin/users/admin/active", active="0")
    assert refused.status_code == 422 and "You cannot deactivate yourself" in refused.text
    again = admin.post("/console/admin/users/supervisor/active", active="1")
    assert again.headers["location"] == "/console/admin?done=activated"
