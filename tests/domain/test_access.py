"""Roles and what each may do: the authorisation rules, without storage."""

from __future__ import annotations

import pytest

from pipeline.core.errors import PermissionDenied
from pipeline.domain.access import PERMISSIONS, ROLES, Principal, can, require, roles_for


@pytest.mark.parametrize(("role", "action", "allowed"), [
    ("analyst", "case.claim", True),
    ("analyst", "case.view_any", False),
    ("analyst", "users.manage", False),
    ("supervisor", "case.decide_dispute", True),
    ("auditor", "case.view", True),
    ("auditor", "case.claim", False),
    ("admin", "users.manage", True),
    ("admin", "case.assess", False),
    ("police", "queue.view", False),
])
def test_roles_allow_only_their_actions(role, action, allowed):
    principal = Principal(name="x", role=role, user_id=1)
    assert can(principal, action) is allowed


def test_analysts_never_see_helpline_data_and_counsellors_no_url_casework():
    analyst = Principal(name="ana", role="analyst", user_id=1)
    counsellor = Principal(name="co", role="counsellor", user_id=2)
    assert not can(analyst, "helpline.view") and not can(analyst, "helpline.record")
    assert can(counsellor, "helpline.view") and can(counsellor, "mailbox.to_helpline")
    assert not can(counsellor, "queue.view") and not can(counsellor, "case.assess")


def test_an_unknown_action_is_allowed_to_nobody():
    assert not can(Principal(name="root", role="admin", user_id=1), "everything")


def test_outside_parties_may_do_none_of_the_role_actions():
    for scope in ("partner", "police", "provider"):
        party = Principal(name="x", role=scope, token_id=3)
        assert not [action for action in PERMISSIONS if can(party, action)]


def test_every_action_names_only_known_roles():
    for action, roles in PERMISSIONS.items():
        assert roles and roles <= set(ROLES), action


def test_the_roles_for_an_action_come_in_the_order_of_roles():
    assert roles_for("case.view") == ("analyst", "supervisor", "admin", "auditor")
    assert roles_for("helpline.record") == ("supervisor", "counsellor")
    with pytest.raises(KeyError):
        roles_for("no.such.action")


def test_require_refuses_with_a_sentence_naming_the_role():
    auditor = Principal(name="al", role="auditor", user_id=4)
    with pytest.raises(PermissionDenied, match="^an auditor may not users.manage$"):
        require(auditor, "users.manage")
    with pytest.raises(PermissionDenied, match="^a police may not see the case$"):
        require(Principal(name="unit", role="police", token_id=9), "case.view",
                what="see the case")
    require(auditor, "case.view")  # allowed: no error


def test_a_person_and_an_outside_party_are_named_apart_in_audit_events():
    person = Principal(name="sue", role="supervisor", user_id=5, token_id=2)
    party = Principal(name="Stoponline", role="partner", token_id=7)
    assert (person.is_person, person.actor, person.stream) == (True, "user:sue", "user:sue")
    assert (party.is_person, party.actor, party.stream) == (
        False, "partner:Stoponline", "token:7")
