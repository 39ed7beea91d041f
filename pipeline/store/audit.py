"""The audit trail: append-only events, hash-chained per stream.

Each event's hash covers the previous event's hash and the event's own content, and
the row the stream is about (a report, a case, an `AuditStream`) keeps the head
(`audit_seq`, `audit_hash`) in the same transaction. `verify` walks every stream and
names the first event that was edited, deleted or moved. Personal data never goes
into `data`: only ids, states and reasons, so a retention purge never touches a
hashed payload.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from json import encoder
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert, select
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from pipeline.core.clock import as_utc
from pipeline.store.db import insert_ignoring_conflicts, insert_rows, is_postgresql
from pipeline.store.helpline_models import HelplineCase, HelplineContact
from pipeline.store.listeners import note_events
from pipeline.store.models import (
    EVENT_STEPS,
    GENESIS_HASH,
    AuditChained,
    AuditStream,
    Case,
    Event,
    Report,
)

SYSTEM_ACTOR = "system"


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def _prebuilt_encoder() -> Any:
    """The C encoder `_dumps` builds on every call, built once (measured: half of the
    hash's cost per event; the stages hash about five events per report). The same
    function with the same settings, so the bytes are the same; checked here, and
    `_dumps` serves where the C accelerator is missing."""

    make = getattr(encoder, "c_make_encoder", None)
    if make is None:
        return None
    # markers=None: no circular-reference check (audit data never refers to itself),
    # and no state shared between the threads that call it.
    made = make(None, str, encoder.encode_basestring, None, ":", ",", True, False, True)
    sample = ["s", 1, 2.5, None, True, {"b": [1e16, "é\n"], "a": {"z": 0}}, datetime.min]
    return made if "".join(made(sample, 0)) == _dumps(sample) else None


_ENCODER = _prebuilt_encoder()


def _canonical(value: Any) -> str:
    if _ENCODER is None:
        return _dumps(value)
    return "".join(_ENCODER(value, 0))


@functools.lru_cache(maxsize=4096)
def _iso(at: datetime) -> str:
    """The hashed form of an event's time (a batch's events share one: made once)."""
    return as_utc(at).isoformat(timespec="microseconds")


def event_hash(
    prev_hash: str,
    stream: str,
    seq: int,
    at: datetime,
    actor: str,
    action: str,
    from_state: str | None,
    to_state: str | None,
    data: dict[str, Any],
) -> str:
    payload = _canonical([stream, seq, _iso(at), actor, action, from_state, to_state, data])
    return hashlib.sha256((prev_hash + payload).encode()).hexdigest()


def stream_of(head: AuditChained) -> str:
    if isinstance(head, Report):
        return f"report:{head.ref}"
    if isinstance(head, Case):
        return f"case:{head.ref}"
    if isinstance(head, AuditStream):
        return head.name
    if isinstance(head, HelplineCase):
        return f"helpline:{head.ref}"
    if isinstance(head, HelplineContact):
        return f"contact:{head.ref}"
    raise TypeError(f"{type(head).__name__} carries no audit stream")


def event_row(
    stream: str,
    head: dict[str, Any],
    *,
    actor: str,
    action: str,
    at: datetime,
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict[str, Any] | None = None,
    case_id: int | None = None,
    report_id: int | None = None,
    sealed: bool = True,
) -> dict[str, Any]:
    """The next event of `stream` as a row, moving the head held in `head`'s
    `audit_seq` and `audit_hash` keys (a row being advanced, or a dict of them).

    Not `sealed`, the hash is left to `seal_event` (None until then, in the event and
    in the head): a transaction that moves its row through several states hashes
    the event once, when the row is written (`pipeline.store.lifecycle`)."""
    data = data or {}
    seq = (head.get("audit_seq") or 0) + 1
    prev = head.get("audit_hash")
    if prev is None and seq > 1:
        raise ValueError(f"{stream}: the head's last event is not sealed yet")
    prev = prev or GENESIS_HASH
    digest = (event_hash(prev, stream, seq, at, actor, action, from_state, to_state, data)
              if sealed else None)
    head["audit_seq"], head["audit_hash"] = seq, digest
    return {"stream": stream, "seq": seq, "at": at, "actor": actor, "action": action,
            "from_state": from_state, "to_state": to_state, "data": data,
            "case_id": case_id, "report_id": report_id, "prev_hash": prev, "hash": digest}


STEPS = EVENT_STEPS


def extend_event(
    event: dict[str, Any],
    head: dict[str, Any],
    *,
    action: str,
    at: datetime,
    from_state: str | None,
    to_state: str | None,
    data: dict[str, Any] | None = None,
    sealed: bool = True,
) -> None:
    """One more state on `event`, the last event of `head`'s stream and not stored
    yet (a transaction that moves a row through several states writes one event):
    the step goes into `data["steps"]` with its own action, states and time, the
    event's `to_state` becomes the step's, the hash is computed again (not `sealed`:
    left to `seal_event`) and the head moved to it. Every state and time is covered
    by the hash, as in separate events.

    The event's own fields (`at`, `action`, `from_state`, `data` without `steps`)
    stay those of its first step; `steps(event)` lists them all."""
    if head.get("audit_hash") != event["hash"] or event["to_state"] != from_state:
        raise ValueError(f"{event['stream']}: a step must follow the event's last state")
    step: dict[str, Any] = {"action": action, "from_state": from_state,
                            "to_state": to_state, "at": _iso(at)}
    if data:
        step["data"] = data
    merged = {**event["data"], STEPS: [*event["data"].get(STEPS, ()), step]}
    event.update(to_state=to_state, data=merged, hash=None)
    head["audit_hash"] = None
    if sealed:
        seal_event(event, head)


def seal_event(event: dict[str, Any], head: dict[str, Any]) -> None:
    """Hash an event made or extended without its hash (`sealed=False`), and move
    the head to it; nothing to do for one hashed already."""
    if event["hash"] is not None:
        return
    if head.get("audit_hash") is not None or head.get("audit_seq") != event["seq"]:
        raise ValueError(f"{event['stream']}: the head has moved past this event")
    digest = event_hash(event["prev_hash"], event["stream"], event["seq"], event["at"],
                        event["actor"], event["action"], event["from_state"],
                        event["to_state"], event["data"])
    event["hash"] = head["audit_hash"] = digest


@dataclass(frozen=True)
class Step:
    """One state change recorded by an event (an event may carry several)."""

    at: datetime
    actor: str
    action: str
    from_state: str | None
    to_state: str | None
    data: dict[str, Any]


def steps(event: Any) -> list[Step]:
    """The state changes an event records, in order: one for most events, several
    for one written by a transaction that moved its row through several states
    (`extend_event`). `event` is an `Event` or an event row."""
    def get(name: str) -> Any:
        return event.get(name) if isinstance(event, dict) else getattr(event, name)

    data = get("data") or {}
    later = data.get(STEPS) if isinstance(data, dict) else None
    if not later:
        return [Step(get("at"), get("actor"), get("action"), get("from_state"),
                     get("to_state"), data)]
    first = {k: v for k, v in data.items() if k != STEPS}
    out = [Step(get("at"), get("actor"), get("action"), get("from_state"),
                later[0].get("from_state"), first)]
    out += [Step(datetime.fromisoformat(s["at"]), get("actor"), s["action"],
                 s.get("from_state"), s.get("to_state"), s.get("data") or {}) for s in later]
    return out


def _steps_problem(ev: Any) -> str | None:
    """A multi-state event whose steps do not follow each other (its hash matched:
    written so, not edited afterwards)."""
    chain = steps(ev)
    for before, after in zip(chain, chain[1:], strict=False):
        if before.to_state != after.from_state:
            return "its states do not follow each other"
    if chain[-1].to_state != ev.to_state:
        return "its last state is not the event's"
    return None


# session.info key: the heads this session's current transaction holds (locked, read).
_HELD = "audit_heads_held"


def _head_key(head: AuditChained) -> tuple[str, Any]:
    return type(head).__name__, sa_inspect(head).identity


def hold_head(head: AuditChained) -> None:
    """The one rule for every append to a chain: the head is read from the database
    and locked (PostgreSQL: FOR NO KEY UPDATE, the stages' own lock; SQLite: the
    transaction holds the database's write lock from BEGIN IMMEDIATE) before the next
    event is built on it, once per transaction. A head object loaded earlier, or
    without a lock, while another viewer, a stage or a job appended to the same
    stream, would otherwise build an event with a sequence number already taken
    (`uq_events_stream_seq`): the caller would see an error and the event be lost.

    A head new in this session, or one whose head this transaction already moved,
    is ours alone and is left as it is."""
    state = sa_inspect(head)
    session = state.session
    if session is None or not state.persistent:
        return
    held: set[tuple[str, Any]] = session.info.setdefault(_HELD, set())
    key = _head_key(head)
    if key in held or state.attrs.audit_seq.history.has_changes():
        held.add(key)
        return
    model: Any = type(head)
    keys = state.mapper.primary_key
    query = select(model.audit_seq, model.audit_hash).where(
        *[column == value for column, value in zip(keys, state.identity, strict=True)])
    if is_postgresql(session):
        query = query.with_for_update(key_share=True)
    with session.no_autoflush:
        seq, digest = session.execute(query).one()
    set_committed_value(head, "audit_seq", seq)
    set_committed_value(head, "audit_hash", digest)
    held.add(key)


@sa_event.listens_for(Session, "after_transaction_end")
def _release_heads(session: Session, transaction: Any) -> None:
    """Locks end with the transaction (a savepoint's rollback may also restore a
    head): read the head again in the next one."""
    session.info.pop(_HELD, None)


def build_event(
    head: AuditChained,
    *,
    actor: str,
    action: str,
    at: datetime,
    from_state: str | None = None,
    to_state: str | None = None,
    data: dict[str, Any] | None = None,
    case_id: int | None = None,
    report_id: int | None = None,
) -> Event:
    """Make the next event of `head`'s stream and move the head (read and locked
    first: `hold_head`). The caller adds it."""
    hold_head(head)
    chain: dict[str, Any] = {"audit_seq": head.audit_seq, "audit_hash": head.audit_hash}
    row = event_row(stream_of(head), chain, actor=actor, action=action, at=at,
                    from_state=from_state, to_state=to_state, data=data, case_id=case_id,
                    report_id=report_id)
    head.audit_seq, head.audit_hash = chain["audit_seq"], chain["audit_hash"]
    return Event(**row)


_EVENT_TABLE: Any = Event.__table__
_EVENT_COLUMNS = [c.key for c in _EVENT_TABLE.columns if c.key != "id"]


def insert_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert event rows (from `event_row`) with one executemany, in order, in the
    session's transaction; /metrics counts them when the transaction commits."""
    if not rows:
        return
    if any(row["hash"] is None for row in rows):
        raise ValueError("an event is inserted before it was sealed (`seal_event`: its "
                         "row is written first, which seals it)")
    insert_rows(session, _EVENT_TABLE, rows)
    note_events(session, rows)


@sa_event.listens_for(Session, "before_flush")
def _insert_events_in_bulk(session: Session, _context: Any, _instances: Any) -> None:
    """Insert the session's pending audit events with one executemany, in the order they
    were added, before the rest of the flush (same transaction).

    Events are append-only and nothing reads their ids back, so the ORM's per-row
    identity work and its `INSERT ... RETURNING` are not needed; on PostgreSQL a plain
    executemany is psycopg's pipelined one, about four times cheaper per event (profiled
    with the benchmark: events are most of the rows the pipeline writes).
    """
    pending = [obj for obj in session.new if isinstance(obj, Event)]
    if not pending:
        return
    pending.sort(key=lambda obj: sa_inspect(obj).insert_order or 0)
    rows = []
    for obj in pending:
        row = {key: getattr(obj, key) for key in _EVENT_COLUMNS}
        if row["data"] is None:
            row["data"] = {}
        rows.append(row)
        session.expunge(obj)
    session.execute(insert(_EVENT_TABLE), rows)


def record(
    session: Session,
    stream_name: str,
    *,
    actor: str,
    action: str,
    at: datetime,
    data: dict[str, Any] | None = None,
    case_id: int | None = None,
) -> Event:
    """Append an event to a named stream (users, the system, a login...). A stream
    named for the first time by two writers at once is created once: the loser of the
    insert waits for the winner's row and follows it."""
    head = session.execute(
        select(AuditStream).where(AuditStream.name == stream_name).with_for_update()
    ).scalar_one_or_none()
    if head is None:
        insert_ignoring_conflicts(
            session, AuditStream.__table__,
            [{"name": stream_name, "audit_seq": 0, "audit_hash": GENESIS_HASH}],
            conflict_columns=["name"])
        head = session.execute(
            select(AuditStream).where(AuditStream.name == stream_name).with_for_update()
        ).scalar_one()
    event = build_event(head, actor=actor, action=action, at=at, data=data, case_id=case_id)
    session.add(event)
    return event


@dataclass(frozen=True)
class Problem:
    stream: str
    seq: int | None
    event_id: int | None
    what: str

    def __str__(self) -> str:
        where = f"event {self.event_id} (stream {self.stream}, seq {self.seq})" if (
            self.event_id is not None
        ) else f"stream {self.stream}"
        return f"{where}: {self.what}"


def _heads(session: Session) -> Iterator[tuple[str, int, str]]:
    for ref, seq, digest in session.execute(
        select(Report.ref, Report.audit_seq, Report.audit_hash)
    ):
        yield f"report:{ref}", seq, digest
    for ref, seq, digest in session.execute(select(Case.ref, Case.audit_seq, Case.audit_hash)):
        yield f"case:{ref}", seq, digest
    for ref, seq, digest in session.execute(
        select(HelplineCase.ref, HelplineCase.audit_seq, HelplineCase.audit_hash)
    ):
        yield f"helpline:{ref}", seq, digest
    for ref, seq, digest in session.execute(
        select(HelplineContact.ref, HelplineContact.audit_seq, HelplineContact.audit_hash)
    ):
        yield f"contact:{ref}", seq, digest
    for name, seq, digest in session.execute(
        select(AuditStream.name, AuditStream.audit_seq, AuditStream.audit_hash)
    ):
        yield name, seq, digest


def verify(session: Session) -> list[Problem]:
    """Check every stream; return one problem per broken stream (empty list: intact)."""
    problems: list[Problem] = []
    tails: dict[str, tuple[int, str]] = {}
    broken: set[str] = set()
    current: str | None = None
    expected_seq, expected_prev = 1, GENESIS_HASH
    rows = session.execute(
        select(Event).order_by(Event.stream, Event.seq).execution_options(yield_per=5_000)
    ).scalars()
    for ev in rows:
        if ev.stream != current:
            current, expected_seq, expected_prev = ev.stream, 1, GENESIS_HASH
        if ev.stream in broken:
            continue
        what = None
        if ev.seq != expected_seq:
            what = f"expected seq {expected_seq}: an event before it was deleted or moved"
        elif ev.prev_hash != expected_prev:
            what = "does not follow the previous event: events were deleted or reordered"
        else:
            digest = event_hash(
                ev.prev_hash, ev.stream, ev.seq, ev.at, ev.actor, ev.action,
                ev.from_state, ev.to_state, ev.data or {},
            )
            if digest != ev.hash:
                what = "content does not match its hash: the event was edited"
            elif ev.data and STEPS in ev.data:
                what = _steps_problem(ev)
        if what:
            problems.append(Problem(ev.stream, ev.seq, ev.id, what))
            broken.add(ev.stream)
            continue
        tails[ev.stream] = (ev.seq, ev.hash)
        expected_seq, expected_prev = ev.seq + 1, ev.hash
    for stream, seq, digest in _heads(session):
        if stream in broken or seq == 0:
            continue
        tail = tails.get(stream)
        if tail is None:
            problems.append(Problem(stream, None, None, f"all {seq} events are missing"))
        elif tail[0] != seq or tail[1] != digest:
            problems.append(
                Problem(stream, None, None,
                        f"ends at seq {tail[0]} but its head says {seq}: "
                        "the last events were deleted or the head was edited")
            )
    return problems
