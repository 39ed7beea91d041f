"""Roles, what each may do, and the caller: the authorisation rules, with no storage.

`pipeline.app.auth` authenticates (passwords, tokens) and records denials; stages
check roles with `can` and `require` from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.errors import PermissionDenied

ROLES = ("analyst", "supervisor", "admin", "auditor", "counsellor")
TOKEN_SCOPES = ("analyst", "partner", "police", "provider")
OUTSIDE_SCOPES = ("partner", "police", "provider")
TOKEN_PREFIX = "hl_"  # noqa: S105  (a marker, not a secret)

A, S, ADM, AUD = "analyst", "supervisor", "admin", "auditor"
# Counsellors work on helpline contacts and cases only; analysts never see them
# (helpline data are the caller's and the child's special-category data).
CO = "counsellor"

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
    # Record the police's reply on a held case that came by telephone or letter (the
    # police themselves reply with a police token, on cases notified to them).
    "case.police_reply": frozenset({S}),
    "welfare.view_own": frozenset({A, S, CO}),
    "welfare.view_all": frozenset({S, ADM}),
    "helpline.record": frozenset({CO, S}),  # record contacts, form and join cases
    "helpline.view": frozenset({CO, S}),  # contacts and helpline cases, with their data
    "helpline.refer": frozenset({CO, S}),  # close advisory, refer, record replies
    "helpline.legal_hold": frozenset({S}),
    "helpline.welfare_all": frozenset({S, ADM}),
    # The mailbox's look-at queue: messages that made no URL report. Analysts report by
    # hand what needs reporting and mark them looked at; counsellors turn a call for
    # help into a helpline contact; supervisors do both. Admins do no casework.
    "mailbox.view": frozenset({A, S, CO}),
    "mailbox.mark": frozenset({A, S}),
    "mailbox.to_helpline": frozenset({CO, S}),
    "users.manage": frozenset({ADM}),
    "tokens.manage": frozenset({ADM}),
}


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


def roles_for(action: str) -> tuple[str, ...]:
    """The roles allowed to do `action`, in the order of `ROLES` (for the console's
    role checks)."""
    allowed = PERMISSIONS[action]
    return tuple(role for role in ROLES if role in allowed)


def can(principal: Principal, action: str) -> bool:
    """The role check: may this principal's role do `action` at all?"""
    return principal.role in PERMISSIONS.get(action, frozenset())


def require(principal: Principal, action: str, *, what: str | None = None) -> None:
    """Raise `PermissionDenied` unless the role allows `action`."""
    if not can(principal, action):
        article = "an" if principal.role[0] in "aeiou" else "a"
        raise PermissionDenied(f"{article} {principal.role} may not {what or action}")
