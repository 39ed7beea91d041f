"""Authentication (passwords, API tokens) and authorisation (roles), kept apart."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from pipeline.app import auth, users
from pipeline.core.errors import PermissionDenied
from pipeline.store.models import ApiToken, Event, User


def test_a_password_is_stored_as_an_argon2_hash_and_verified(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        user, password = users.add_user(session, "ana", "analyst", at=rt.clock.now())
        assert user.password_hash.startswith("$argon2id$")
        assert password not in user.password_hash and user.must_change_password
    with rt.session_factory.begin() as session:
        found = auth.authenticate_password(session, "ana", password, at=rt.clock.now())
        assert found is not None and found.last_login_at == rt.clock.now()
        assert auth.authenticate_password(session, "ana", password + "x",
                                          at=rt.clock.now()) is None
        assert auth.authenticate_password(session, "nobody", password,
                                          at=rt.clock.now()) is None


def test_a_deactivated_user_cannot_sign_in_nor_use_their_token(sqlite_runtime):
    rt = sqlite_runtime
    now = rt.clock.now()
    with rt.session_factory.begin() as session:
        _, password = users.add_user(session, "ana", "analyst", at=now)
        token, _ = users.add_token(session, scope="analyst", label="ana", at=now,
                                   user_name="ana")
        users.set_active(session, "ana", False, at=now, actor="user:root")
    with rt.session_factory.begin() as session:
        assert auth.authenticate_password(session, "ana", password, at=now) is None
        assert auth.authenticate_token(session, token, at=now) is None


def test_an_api_token_is_stored_only_as_its_sha256_and_acts_as_its_user(sqlite_runtime):
    rt = sqlite_runtime
    now = rt.clock.now()
    with rt.session_factory.begin() as session:
        users.add_user(session, "sue", "supervisor", at=now)
        token, row = users.add_token(session, scope="analyst", label="sue's laptop", at=now,
                                     user_name="sue")
    with rt.session_factory() as session:
        stored = session.execute(select(ApiToken)).scalar_one()
        assert stored.token_hash == auth.token_hash(token) and token not in stored.token_hash
        assert stored.prefix == token[:12]
        principal = auth.authenticate_token(session, token, at=now)
    assert (principal.name, principal.role, principal.actor) == ("sue", "supervisor",
                                                                 "user:sue")


def test_a_partner_token_is_the_partner_and_no_user(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        token, _ = users.add_token(session, scope="partner", label="Stoponline",
                                   at=rt.clock.now())
        principal = auth.authenticate_token(session, token, at=rt.clock.now())
    assert principal.role == "partner" and principal.user_id is None
    assert principal.actor == "partner:Stoponline"
    assert not auth.can(principal, "case.view")


def test_a_revoked_or_expired_token_no_longer_authenticates(sqlite_runtime):
    rt = sqlite_runtime
    now = rt.clock.now()
    with rt.session_factory.begin() as session:
        short, _ = users.add_token(session, scope="police", label="Cybercrime unit", at=now,
                                   expires_days=1)
        revoked, row = users.add_token(session, scope="provider", label="Host A", at=now)
        assert users.revoke(session, row.prefix, at=now) == 1
    with rt.session_factory() as session:
        assert auth.authenticate_token(session, revoked, at=now) is None
        assert auth.authenticate_token(session, short, at=now) is not None
        assert auth.authenticate_token(session, short, at=now + timedelta(days=1)) is None
        assert auth.authenticate_token(session, "hl_made-up", at=now) is None






def test_a_denial_is_recorded_in_the_callers_audit_stream_despite_the_rollback(sqlite_runtime):
    rt = sqlite_runtime
    with rt.session_factory.begin() as session:
        user, _ = users.add_user(session, "al", "auditor", at=rt.clock.now())
        principal = auth.principal_for_user(user, via="test")
    with (pytest.raises(PermissionDenied),
          auth.audit_denials(rt.session_factory, principal, rt.clock),
          rt.session_factory.begin() as session):
        session.add(User(name="ghost", role="admin", created_at=rt.clock.now()))
        auth.require(principal, "users.manage")
    with rt.session_factory() as session:
        assert session.execute(select(User).where(User.name == "ghost")).first() is None
        event = session.execute(select(Event).where(Event.stream == "user:al")
                                .order_by(Event.seq.desc())).scalars().first()
    assert event.action == "access_denied" and "users.manage" in event.data["reason"]
