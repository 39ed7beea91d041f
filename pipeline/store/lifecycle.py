"""The one way a report's, a case's, a helpline case's or a notice's state changes.

`transition` checks the table in `pipeline.store.states`, stamps the time, and adds the
audit event to the caller's session, so the change and its record commit together.

The stages move whole batches: `advance` does the same to a plain row (a dict read
with `HEAD_COLUMNS`), and `write_rows` stores the changed rows with one executemany,
so a batch of 250 reports is one UPDATE statement and one INSERT of events, not 250
ORM objects flushed one by one.

A notice has no audit stream of its own: `notice_transition` checks
`NOTICE_TRANSITIONS` and writes the event the table names on the notice's case (or
helpline case). A set of notices changed by one UPDATE (the police reply) has its
pairs checked by `check_notice_moves` first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session

from pipeline.core.errors import IllegalTransition
from pipeline.store.audit import build_event, event_row, extend_event, seal_event
from pipeline.store.db import is_postgresql, update_by_id
from pipeline.store.helpline_models import HelplineCase
from pipeline.store.models import Case, Event, Notice, Report
from pipeline.store.states import (
    CASE_STATE_TIME_COLUMNS,
    CASE_TRANSITIONS,
    HELPLINE_CASE_STATE_TIME_COLUMNS,
    HELPLINE_CASE_TRANSITIONS,
    LEASED_NOTICE_STATES,
    NOTICE_TRANSITIONS,
    OPEN_CASE_STATES,
    REPORT_STATE_TIME_COLUMNS,
    REPORT_TRANSITIONS,
    CaseState,
    HelplineCaseState,
    NoticeState,
    ReportState,
)

_TABLES: dict[str, tuple[dict[Any, str], dict[Any, str], type]] = {
    "report": (REPORT_TRANSITIONS, REPORT_STATE_TIME_COLUMNS, ReportState),
    "case": (CASE_TRANSITIONS, CASE_STATE_TIME_COLUMNS, CaseState),
    "helpline_case": (HELPLINE_CASE_TRANSITIONS, HELPLINE_CASE_STATE_TIME_COLUMNS,
                      HelplineCaseState),
}

# The columns a row needs for `advance` (besides those the caller reads for itself).
HEAD_COLUMNS = ("id", "ref", "state", "audit_seq", "audit_hash")
# Keys `advance` sets on a row; `write_rows` stores them.
_TIMES = "_times"
# ... and the event it built for the row in this transaction (not stored on the row).
_EVENT = "_event"


def _kind(item: Report | Case | HelplineCase) -> str:
    if isinstance(item, HelplineCase):
        return "helpline_case"
    return "report" if isinstance(item, Report) else "case"


# Each state by its value (and by itself: the states are str enums), for `_check`: a
# dictionary look instead of an Enum call per step (a twentieth of the stages' time).
def _by_value(enum: Any) -> dict[Any, Any]:
    return {**{s.value: s for s in enum}, **{s: s for s in enum}}


_BY_VALUE = {"report": _by_value(ReportState), "case": _by_value(CaseState),
             "helpline_case": _by_value(HelplineCaseState)}


def _check(kind: str, ref: str, state: str | None, to_state: Any) -> tuple[Any, Any, str]:
    """The current and target states and the default action; raises when not allowed."""
    table, _, enum = _TABLES[kind]
    by_value = _BY_VALUE[kind]
    current = (by_value.get(state) or enum(state)) if state else None
    target = by_value.get(to_state) or enum(to_state)
    default_action = table.get((current, target))
    if default_action is None:
        raise IllegalTransition(kind, ref, current, target)
    return current, target, default_action


def allowed(item: Report | Case | HelplineCase, to_state: str) -> bool:
    table, _, enum = _TABLES[_kind(item)]
    current = enum(item.state) if item.state else None
    return (current, enum(to_state)) in table


def transition(
    session: Session | None,
    item: Report | Case | HelplineCase,
    to_state: ReportState | CaseState | HelplineCaseState | str,
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
    kind = _kind(item)
    current, target, default_action = _check(kind, item.ref, item.state, to_state)
    item.state = target.value
    item.state_changed_at = at
    column = _TABLES[kind][1][target]
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
        case_id=item.id if isinstance(item, Case) else getattr(item, "case_id", None),
        report_id=item.id if isinstance(item, Report) else None,
    )
    if session is not None:
        session.add(event)
    return event


def advance(
    kind: str,
    row: dict[str, Any],
    to_state: ReportState | CaseState | str,
    *,
    at: datetime,
    actor: str = "system",
    data: dict[str, Any] | None = None,
    action: str | None = None,
) -> dict[str, Any]:
    """`transition` for a plain row of `kind` ("report" or "case") read with
    `HEAD_COLUMNS` (a report row also needs `case_id`): the row's state and audit head
    move, and the event comes back as a row for `pipeline.store.audit.insert_events`. Several
    steps may be taken on one row before `write_rows` stores it once (`advance_step`
    adds the later ones to this event).

    The state's time column is stored only where it is still empty (as `transition`
    does); a case's `open_key` is kept in step with its state by `write_rows`.
    """
    _seal(row)  # the row's event so far is hashed before the next one chains on it
    current, target, action = _move(kind, row, to_state, at, action)
    event = event_row(
        f"{kind}:{row['ref']}", row, actor=actor, action=action, at=at,
        from_state=current.value if current else None, to_state=target.value, data=data,
        case_id=row.get("id") if kind == "case" else row.get("case_id"),
        report_id=row.get("id") if kind == "report" else None, sealed=False,
    )
    row[_EVENT] = event
    return event


def advance_step(
    kind: str,
    row: dict[str, Any],
    to_state: ReportState | CaseState | str,
    *,
    at: datetime,
    actor: str = "system",
    data: dict[str, Any] | None = None,
    action: str | None = None,
) -> dict[str, Any] | None:
    """`advance`, except that a row this transaction moved already (by the same actor)
    gets no second event: the step is added to its event (`audit.extend_event`: one
    event carrying every state the row passed through, each with its time), and None
    comes back. Measured: the stages wrote about five events per report, most of
    them for rows that one transaction moves through two or three states."""
    earlier = row.get(_EVENT)
    if earlier is None or earlier["actor"] != actor:
        return advance(kind, row, to_state, at=at, actor=actor, data=data, action=action)
    current, target, action = _move(kind, row, to_state, at, action)
    extend_event(earlier, row, action=action, at=at,
                 from_state=current.value if current else None, to_state=target.value,
                 data=data, sealed=False)
    if kind == "report":  # placed on a case by this step (not hashed: a lookup column)
        earlier["case_id"] = row.get("case_id")
    return None


def _move(kind: str, row: dict[str, Any], to_state: Any, at: datetime,
          action: str | None) -> tuple[Any, Any, str]:
    """Check and make one step on a row: its state, state time and time column."""
    current, target, default_action = _check(kind, row["ref"], row["state"], to_state)
    row["state"] = target.value
    row["state_changed_at"] = at
    row.setdefault(_TIMES, {})[_TABLES[kind][1][target]] = at
    return current, target, action or default_action


def add_event(events: list[dict[str, Any]], event: dict[str, Any] | None) -> None:
    """Keep a new event from `advance` (None: the step went into the row's event)."""
    if event is not None:
        events.append(event)


def _seal(row: dict[str, Any]) -> None:
    """Hash the event `advance` made for the row in this transaction, with every step
    added to it (`audit.seal_event`): once per event, when its row is written or a
    next event chains on it (profiled: hashing each step again was a sixth of an
    import's intake, whose reports each pass three states in one event)."""
    event = row.get(_EVENT)
    if event is not None:
        seal_event(event, row)


def fill_times(row: dict[str, Any]) -> dict[str, Any]:
    """For a row about to be inserted: its event sealed (`_seal`), then the time
    columns of the states `advance` moved it through stamped, where still empty (as
    `write_rows` does for stored rows)."""
    _seal(row)
    row.pop(_EVENT, None)
    for column, at in row.pop(_TIMES, {}).items():
        if row.get(column) is None:
            row[column] = at
    return row


def write_rows(session: Session, kind: str, rows: Sequence[dict[str, Any]],
               columns: Sequence[str] = ()) -> None:
    """Store rows moved by `advance`: state, times, audit head and `columns`, with one
    statement for the batch, in the caller's transaction. A state's time column is
    set only where it is still empty (`COALESCE`), so rows that went through different
    states share the statement."""
    if not rows:
        return
    model: Any = Report if kind == "report" else Case
    table = model.__table__
    assign = ("state", "state_changed_at", "audit_seq", "audit_hash", *columns)
    times = sorted({column for row in rows for column in row.get(_TIMES, {})})
    params = []
    for row in rows:
        _seal(row)
        param = {name: row[name] for name in assign}
        param["row_id"] = row["id"]
        stamped = row.pop(_TIMES, {})
        row.pop(_EVENT, None)
        for column in times:
            param[f"t_{column}"] = stamped.get(column)
        if kind == "case":  # open_key names the URL while the case is open
            param["is_open"] = CaseState(row["state"]) in OPEN_CASE_STATES
        params.append(param)
    fill = {column: f"t_{column}" for column in times}
    if is_postgresql(session):
        flag = {"open_key": ("is_open", "dedup_key")} if kind == "case" else {}
        update_by_id(session, table, params, assign=assign, fill=fill, flag=flag)
        return
    values: dict[str, Any] = {name: bindparam(name) for name in assign}
    for column, param_name in fill.items():
        values[column] = func.coalesce(table.c[column], bindparam(param_name))
    if kind == "case":
        values["open_key"] = sql_case((bindparam("is_open"), table.c.dedup_key), else_=None)
    session.execute(update(table).where(table.c.id == bindparam("row_id")).values(values),
                    params)


# ------------------------------------------------------------------------- notices

def _notice_state(value: str | None) -> NoticeState | None:
    return NoticeState(value) if value else None


def check_notice_moves(from_states: Iterable[NoticeState | str | None], to_state: NoticeState | str,
                       *, ref: str = "*") -> NoticeState:
    """The target state, after checking that every `from_states` -> `to_state` is in
    `NOTICE_TRANSITIONS` (`IllegalTransition` otherwise): for a set-based UPDATE (or
    INSERT, from None) of notices in those states. The caller writes the audit the
    table names, as `notice_transition` does for one notice."""
    target = NoticeState(to_state)
    for state in from_states:
        current = _notice_state(state)
        if (current, target) not in NOTICE_TRANSITIONS:
            raise IllegalTransition("notice", ref, current, target)
    return target


def audit_notice(session: Session, notice: Notice, *, at: datetime, action: str,
                 data: dict[str, Any] | None = None, actor: str = "dispatch") -> Event:
    """Add an event about `notice` to its case's audit stream (a helpline referral's:
    to its helpline case's), the case row locked first."""
    data = {"notice": notice.id, "destination": notice.destination, **(data or {})}
    if notice.case_id is None:  # a helpline referral: the event goes on the helpline case
        helpline_query = select(HelplineCase).where(HelplineCase.id == notice.helpline_case_id)
        if is_postgresql(session):
            helpline_query = helpline_query.with_for_update()
        helpline_case = session.execute(helpline_query).scalar_one()
        event = build_event(helpline_case, actor=actor, action=action, at=at, data=data)
    else:
        query = select(Case).where(Case.id == notice.case_id)
        if is_postgresql(session):
            query = query.with_for_update()
        case = session.execute(query).scalar_one()
        event = build_event(case, actor=actor, action=action, at=at, case_id=case.id,
                            data=data)
    session.add(event)
    return event


def notice_transition(
    session: Session,
    notice: Notice,
    to_state: NoticeState | str,
    *,
    at: datetime,
    actor: str = "dispatch",
    data: dict[str, Any] | None = None,
    action: str | None = None,
    owner: str | None = None,
    values: dict[str, Any] | None = None,
    lease_until: datetime | None = None,
) -> bool:
    """Move `notice` to `to_state` after checking `NOTICE_TRANSITIONS`, and add the
    audit event the table names (`action` overrides it) on its case; a transition the
    table audits with None writes no event. `values` are set on the notice with the
    state. Returns whether the notice moved.

    Without `owner` the notice is an object of `session` (locked by the caller) and
    moves in memory; an illegal move raises `IllegalTransition`.

    With `owner` it is a dispatcher's detached copy, and the move is a compare-and-set
    on its row: made only while the row is still leased by `owner` in a state from
    which `to_state` is allowed. The lease ends with the move (`lease_until` given:
    the lease goes on to then, as for the SMTP marker). False when the row was no
    longer this owner's: nothing is written.
    """
    target = NoticeState(to_state)
    values = dict(values or {})
    if owner is None:
        current = _notice_state(notice.state)
        if (current, target) not in NOTICE_TRANSITIONS:
            raise IllegalTransition("notice", str(notice.id), current, target)
        default_action = NOTICE_TRANSITIONS[(current, target)]
        notice.state = target.value
        for name, value in values.items():
            setattr(notice, name, value)
    else:
        sources = [s.value for s in LEASED_NOTICE_STATES if (s, target) in NOTICE_TRANSITIONS]
        if not sources:
            raise IllegalTransition("notice", str(notice.id), _notice_state(notice.state),
                                    target)
        result = session.execute(
            update(Notice)
            .where(Notice.id == notice.id, Notice.state.in_(sources),
                   Notice.lease_owner == owner)
            .values(state=target.value, lease_owner=None if lease_until is None else owner,
                    lease_until=lease_until, **values))
        if not result.rowcount:  # type: ignore[attr-defined]
            return False
        # Every leased state moves to `target` with the same audit action.
        default_action = NOTICE_TRANSITIONS[(NoticeState(sources[0]), target)]
    if action or default_action:
        audit_notice(session, notice, at=at, action=action or default_action or "",
                     data=data, actor=actor)
    return True
