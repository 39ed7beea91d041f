"""People and tokens (pipeline.app.users): adding users and the first administrator,
issuing, revoking and listing, each change audited in the stream it concerns."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.app import auth, users
from pipeline.core.errors import BadInput, NotFound
from pipeline.store.models import Event


def test_a_token_must_match_its_scope(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        users.add_user(session, "ana", "analyst", at=rt.clock.now())
        with pytest.raises(BadInput, match="name the user"):
            users.add_token(session, scope="analyst", label="x", at=rt.clock.now())
        with pytest.raises(BadInput, match="outside party"):
            users.add_token(session, scope="police", label="x", at=rt.clock.now(),
                            user_name="ana")
        with pytest.raises(BadInput, match="scope"):
            users.add_token(session, scope="root", label="x", at=rt.clock.now())


def test_a_user_needs_a_known_role_and_a_new_name(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        users.add_user(session, "ana", "analyst", at=rt.clock.now())
        with pytest.raises(BadInput, match="role"):
            users.add_user(session, "bo", "superuser", at=rt.clock.now())
        with pytest.raises(BadInput, match="exists already"):
            users.add_user(session, "ana", "admin", at=rt.clock.now())


def test_the_first_administrator_is_added_once_on_an_empty_database(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        name, password = users.add_first_admin(session, at=rt.clock.now())
        assert users.add_first_admin(session, at=rt.clock.now()) is None
    assert name == users.FIRST_ADMIN
    with rt.session_factory() as session:
        admin = users.get_user(session, name)
        assert (admin.role, admin.active, admin.must_change_password) == ("admin", True, True)
        assert auth.verify_password(admin.password_hash, password)
        assert admin.password_hash != password


def test_a_database_with_a_user_gets_no_first_administrator(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        users.add_user(session, "ana", "analyst", at=rt.clock.now())
        assert users.add_first_admin(session, at=rt.clock.now()) is None
    with rt.session_factory() as session:
        assert [u.name for u in users.list_users(session)] == ["ana"]


def test_users_are_listed_by_name_and_an_unknown_name_is_not_found(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        for name in ("zoran", "ana", "mira"):
            users.add_user(session, name, "analyst", at=rt.clock.now())
    with rt.session_factory() as session:
        assert [u.name for u in users.list_users(session)] == ["ana", "mira", "zoran"]
        with pytest.raises(NotFound, match="no user named nobody"):
            users.get_user(session, "nobody")


def test_each_change_is_audited_in_the_stream_it_concerns(sqlite_runtime):
    rt = sqlite_runtime
    now = rt.clock.now()
    with rt.session_factory.begin() as session:
        users.add_user(session, "ana", "analyst", at=now, actor="user:root")
        users.add_token(session, scope="analyst", label="ana", at=now,
                        user_name="ana", actor="user:root")
        _, partner = users.add_token(session, scope="partner", label="Stoponline", at=now,
                                     expires_days=30, actor="user:root")
        users.set_active(session, "ana", False, at=now, actor="user:root")
        assert users.revoke(session, partner.prefix, at=now, actor="user:root") == 1
        assert users.revoke(session, "nope", at=now) == 0
        assert partner.expires_at is not None
    with rt.session_factory() as session:
        events = [(e.stream, e.action) for e in
                  session.execute(select(Event).order_by(Event.id)).scalars()]
        assert not users.get_user(session, "ana").active
    assert events == [
        ("user:ana", "user_added"),
        ("user:ana", "token_issued"),
        (f"token:{partner.id}", "token_issued"),
        ("user:ana", "user_deactivated"),
        ("tokens", "token_revoked"),
    ]
