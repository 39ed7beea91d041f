"""Builders shared by the assessment tests: users, principals, queued cases."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from pipeline.app.auth import Principal, principal_for_user
from pipeline.app.runtime import Runtime
from pipeline.stages.intake import new_reference
from pipeline.store.models import Case, Report, User


def make_user(session: Session, name: str, role: str = "analyst", *,
              at: datetime) -> User:
    user = User(name=name, role=role, password_hash=None, must_change_password=False,
                active=True, created_at=at)
    session.add(user)
    session.flush()
    return user


def people(runtime: Runtime, *specs: tuple[str, str]) -> dict[str, Principal]:
    """Add users (name, role) and return their principals by name."""
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        users = [make_user(session, name, role, at=now) for name, role in specs]
        return {u.name: principal_for_user(u, via="test") for u in users}


def queued_case(session: Session, *, url: str, at: datetime, age_minutes: float = 0,
                priority: int = 0, host: str = "example.com",
                registered_domain: str | None = "example.com", contact: str | None = None,
                **fields: Any) -> Case:
    """A case waiting in the queue, with one report joined to it."""
    received = at - timedelta(minutes=age_minutes)
    key = hashlib.sha256(url.encode()).hexdigest()
    case = Case(ref=new_reference("C"), canonical_url=url, dedup_key=key, open_key=key,
                host=host, registered_domain=registered_domain, received_at=received,
                state="awaiting_assessment", state_changed_at=at, priority=priority,
                audit_seq=0, **fields)
    session.add(case)
    session.flush()
    report = Report(ref=new_reference("R"), submission_ref=new_reference("S"), url=url,
                    channel="web", received_at=received, state="new_case",
                    state_changed_at=at, audit_seq=0, case_id=case.id,
                    reporter_contact=contact, claimed_category=fields.get("claimed_category"))
    session.add(report)
    session.flush()
    return case


def queue(runtime: Runtime, *specs: dict[str, Any]) -> list[int]:
    """Add queued cases (keyword dicts for `queued_case`); return their ids."""
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        return [queued_case(session, at=now, **spec).id for spec in specs]
