"""Session listeners: every committed state change and takedown counted for /metrics,
and every reporter contact and description loaded kept out of the logs.

The counters themselves are `pipeline.core.counters`; the audit trail's batch path
(`pipeline.store.audit.insert_events`) reports its rows through `note_events`.
"""

from __future__ import annotations

import collections
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from pipeline.core.counters import REPORTS_RECEIVED, TAKEDOWN_SECONDS, TRANSITIONS
from pipeline.core.logs import register_personal
from pipeline.store.models import EVENT_STEPS as STEPS
from pipeline.store.models import Case, Event, Report

_watching = False
_PENDING = "hotline_metrics_pending"


def watch_sessions() -> None:
    """Count every committed state change and takedown from the session's events."""
    global _watching
    if _watching:
        return
    # Before the flush, and before any other listener: pipeline.store.audit takes the pending
    # events out of the session to insert them in one statement.
    event.listen(Session, "before_flush", _before_flush, insert=True)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)
    _watching = True


def _before_flush(session: Any, _context: Any, _instances: Any) -> None:
    pending = session.info.setdefault(_PENDING, [])
    for obj in session.new:
        if not isinstance(obj, Event) or obj.to_state is None:
            continue
        item = _item(obj.stream, obj.action, obj.data)
        kind = item["kind"]
        if kind == "case" and obj.to_state == "removed" and obj.case_id is not None:
            case = session.identity_map.get(identity_key(Case, obj.case_id))
            if case is not None:
                item["removed"] = (obj.at, case.received_at, case.notified_at)
        pending.append(item)


def _item(stream: str, action: str, data: dict[str, Any] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"kind": stream.split(":", 1)[0], "action": action}
    if action == "report_received":
        item["channel"] = (data or {}).get("channel", "unknown")
    return item


def _actions(row: dict[str, Any]) -> list[tuple[str, Any]]:
    """Each state change an event row records (one carries several: `STEPS`)."""
    data = row.get("data")
    first = [(row["action"], data)]
    if not data or STEPS not in data:
        return first
    return first + [(step["action"], step.get("data")) for step in data[STEPS]]


def note_events(session: Any, rows: list[dict[str, Any]]) -> None:
    """Count state changes inserted as rows, not ORM objects (the stages' batch path,
    `pipeline.store.audit.insert_events`), when the session commits: one item per kind of
    change with its count (profiled: a `labels()` call per event was a twentieth of a
    worker's time)."""
    if not _watching:
        return
    counts: collections.Counter[tuple[tuple[str, Any], ...]] = collections.Counter(
        tuple(_item(row["stream"], action, data).items())
        for row in rows if row.get("to_state") is not None
        for action, data in _actions(row))
    session.info.setdefault(_PENDING, []).extend(
        {**dict(item), "count": count} for item, count in counts.items())


def _after_commit(session: Any) -> None:
    for item in session.info.pop(_PENDING, []):
        count = item.get("count", 1)
        TRANSITIONS.labels(item["kind"], item["action"]).inc(count)
        if "channel" in item:
            REPORTS_RECEIVED.labels(str(item["channel"])).inc(count)
        if "removed" in item:
            at, received, notified = item["removed"]
            if received is not None:
                TAKEDOWN_SECONDS.labels("report").observe(max(0.0, (at - received)
                                                              .total_seconds()))
            if notified is not None:
                TAKEDOWN_SECONDS.labels("notice").observe(max(0.0, (at - notified)
                                                              .total_seconds()))


def _after_rollback(session: Any) -> None:
    session.info.pop(_PENDING, None)


_watching_reports = False


def watch_reports() -> None:
    """Register every reporter contact and description this process loads or sets, so
    that no log line can carry them (`pipeline.core.logs.register_personal`)."""
    global _watching_reports
    if _watching_reports:
        return

    def _loaded(target: Report, *_: Any) -> None:
        state = target.__dict__
        register_personal(state.get("reporter_contact"))
        register_personal(state.get("description"))

    def _set(_target: Any, value: Any, *_: Any) -> Any:
        if isinstance(value, str):
            register_personal(value)
        return value

    event.listen(Report, "load", _loaded)
    event.listen(Report, "refresh", _loaded)
    event.listen(Report.reporter_contact, "set", _set, retval=True)
    event.listen(Report.description, "set", _set, retval=True)
    _watching_reports = True
