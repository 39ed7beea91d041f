"""Small builders for rows the tests need (no factories library: the models are few)."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from pipeline.stages.intake import new_reference
from pipeline.store.models import Case, Report


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
