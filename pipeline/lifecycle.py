"""The one way a report's or a case's state changes.

`transition` checks the table in `pipeline.states`, stamps the time, and adds the
audit event to the caller's session, so the change and its record commit together.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from pipeline.audit import build_event
from pipeline.errors import IllegalTransition
from pipeline.models import Case, Event, Report
from pipeline.states import (
    CASE_STATE_TIME_COLUMNS,
    CASE_TRANSITIONS,
    OPEN_CASE_STATES,
    REPORT_STATE_TIME_COLUMNS,
    REPORT_TRANSITIONS,
    CaseState,
    ReportState,
)


def _table(item: Report | Case) -> tuple[str, dict[Any, str], dict[Any, str], type]:
    if isinstance(item, Report):
        return "report", REPORT_TRANSITIONS, REPORT_STATE_TIME_COLUMNS, ReportState
    return "case", CASE_TRANSITIONS, CASE_STATE_TIME_COLUMNS, CaseState


def allowed(item: Report | Case, to_state: str) -> bool:
    _, table, _, enum = _table(item)
    current = enum(item.state) if item.state else None
    return (current, enum(to_state)) in table


def transition(
    session: Session | None,
    item: Report | Case,
    to_state: ReportState | CaseState | str,
    *,
    at: datetime,
    actor: str = "system",
    data: dict[str, Any] | None = None,
    action: str | None = None,
) -> Event:
    """Move `item` to `to_state`, stamping times and adding the audit event.

    With `session=None` the event is returned and the caller adds it (bulk paths that
    insert items and events in one statement each).
    """
    kind, table, time_columns, enum = _table(item)
    current = enum(item.state) if item.state else None
    target = enum(to_state)
    default_action = table.get((current, target))
    if default_action is None:
        raise IllegalTransition(kind, item.ref, current, target)
    item.state = target.value
    item.state_changed_at = at
    column = time_columns[target]
    if getattr(item, column, None) is None:
        setattr(item, column, at)
    if isinstance(item, Case):
        item.open_key = item.dedup_key if target in OPEN_CASE_STATES else None
    event = build_event(
        item,
        actor=actor,
        action=action or default_action,
        at=at,
        from_state=current.value if current else None,
        to_state=target.value,
        data=data,
        case_id=item.id if isinstance(item, Case) else item.case_id,
        report_id=item.id if isinstance(item, Report) else None,
    )
    if session is not None:
        session.add(event)
    return event
