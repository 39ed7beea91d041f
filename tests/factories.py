"""Small builders for rows the tests need (no factories library: the models are few)."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from pipeline.stages.intake import new_reference
from pipeline.store.models import Case, Notice, Report


def make_report(session: Session, *, at: datetime, url: str = "http://example.com/a",
                state: str = "received", **fields: Any) -> Report:
    report = Report(ref=new_reference("R"), submission_ref=new_reference("S"), url=url,
                    channel="web", received_at=at, state=state, state_changed_at=at,
                    audit_seq=0, **fields)
    session.add(report)
    session.flush()
    return report


def make_case(session: Session, *, at: datetime, url: str = "http://example.com/a",
              state: str = "normalised", **fields: Any) -> Case:
    key = hashlib.sha256(url.encode()).hexdigest()
    values: dict[str, Any] = dict(
        ref=new_reference("C"), canonical_url=url, dedup_key=key, open_key=key,
        host="example.com", received_at=at, state=state, state_changed_at=at, audit_seq=0,
    )
    values.update(fields)
    case = Case(**values)
    session.add(case)
    session.flush()
    return case


def make_notice(session: Session, case: Case, *, at: datetime, state: str | None = "planned",
                channel: str = "smtp", **fields: Any) -> Notice:
    """A provider notice of `case` (added and flushed unless its state is None: a notice
    not written yet)."""
    values: dict[str, Any] = dict(
        case_id=case.id, destination="hosting-provider", destination_kind="provider",
        kind="notice", round=1, channel=channel, address="abuse@host.example",
        language="en", state=state, token=secrets.token_urlsafe(24), subject="Notice",
        body=f"Please remove case {case.ref}.\n", payload={}, attempts=0, created_at=at,
        due_at=at,
    )
    values.update(fields)
    notice = Notice(**values)
    if state is not None:
        session.add(notice)
        session.flush()
    return notice
