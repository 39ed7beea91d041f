"""Stage 2: deduplication. One open case per canonical URL.

Steps of `dedupe_reports`:
1. lock the given reports that are still `normalised`,
2. group them by dedup key; with Redis, claim the keys atomically (`DedupClaims`):
   a key nobody held is ours to open, a key that names a case is probably open,
3. join the open case of each key: one UPDATE on the unique `open_key`, which both
   checks that the case is still open and counts the new reports on it,
4. for each key left, read the history of the URL: a report received before the last
   case left the open states is a late duplicate of that case; a URL whose last case
   closed (not removed) within the window joins it; otherwise a new case opens,
   linked to the last one (`previous_case_id`), marked `reupload` when the last case
   closed as removed,
5. open the new cases: INSERT ... ON CONFLICT DO NOTHING on the unique `open_key`, so
   two workers racing on one URL make exactly one case (the database is the truth;
   the Redis claim only saves work); a key lost to another worker goes back to step 3;
   given the tracer, a new case whose host its caches answer in full goes in traced
   and queued for assessment (`pipeline.stages.trace.trace_known_cases`),
6. attach every report: the first of a new case becomes `new_case`, the others
   `duplicate`; tell Redis which case is open for each key,
7. return the ids of the other new cases, to be traced.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipeline.core.clock import Clock, as_utc
from pipeline.core.errors import RetryLater
from pipeline.domain.urls import CanonicalURL, canonicalise
from pipeline.stages.intake import new_references
from pipeline.stages.normalise import FACTS, normalise_rows
from pipeline.stages.normalise import READ as NORMALISE_READ
from pipeline.stages.trace import (
    Known,
    finish_ahead,
    store_traces,
    trace_ahead,
    trace_known_cases,
)
from pipeline.store.audit import insert_events
from pipeline.store.db import (
    among,
    blank_row,
    insert_by_unnest,
    insert_rows,
    is_postgresql,
    lock_rows,
)
from pipeline.store.lifecycle import (
    HEAD_COLUMNS,
    add_event,
    advance,
    advance_step,
    fill_times,
    write_rows,
)
from pipeline.store.models import Case, Report
from pipeline.store.states import CaseState, ReportState

if TYPE_CHECKING:
    from pipeline.adapters.tracing.tracer import Tracer
    from pipeline.core.config import Settings, UrlsSection

log = logging.getLogger(__name__)

# How often one batch goes round "join, else open" when other workers keep winning
# (a case closing and a new one opening under our feet); then the message is retried.
MAX_ROUNDS = 4


@dataclass(frozen=True)
class DedupRules:
    """The configurable part of deduplication (from the `urls` config section)."""

    closed_case_window: timedelta = timedelta(hours=24)
    claim_ttl_seconds: int = 86_400

    @classmethod
    def from_settings(cls, section: UrlsSection) -> DedupRules:
        return cls(closed_case_window=timedelta(hours=section.closed_case_window_hours),
                   claim_ttl_seconds=section.claim_ttl_seconds)


# For each key: claim it if nobody holds it (""), else answer what it holds.
_CLAIM_SCRIPT = """
local out = {}
for i, key in ipairs(KEYS) do
  if redis.call('SET', key, ARGV[1], 'NX', 'EX', tonumber(ARGV[2])) then
    out[i] = ''
  else
    out[i] = redis.call('GET', key) or ''
  end
end
return out
"""

# Name the open case of each key (ARGV[1] is the time to live, then one id per key).
_SETTLE_SCRIPT = """
for i, key in ipairs(KEYS) do
  redis.call('SET', key, ARGV[i + 1], 'EX', tonumber(ARGV[1]))
end
return #KEYS
"""

# Delete the keys still holding this worker's pending claim.
_RELEASE_SCRIPT = """
local n = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    n = n + 1
  end
end
return n
"""


class DedupClaims:
    """Atomic claims of dedup keys in Redis: `<namespace>:dedup:<key>` holds the id of
    the key's open case, or `pending:<token>` while a worker opens it.

    The claims only save database work. Every answer is checked against the database
    (a case named here may have closed; a claim may have expired or Redis been
    flushed), and the unique `open_key` decides who opens a case.
    """

    SCRIPTS = (_CLAIM_SCRIPT, _RELEASE_SCRIPT, _SETTLE_SCRIPT)  # loaded ahead by processes

    def __init__(self, redis: Any, namespace: str, *, ttl_seconds: int = 86_400):
        self.redis = redis
        self.prefix = f"{namespace}:dedup:"
        self.ttl_seconds = ttl_seconds
        self._claim = redis.register_script(_CLAIM_SCRIPT)
        self._release = redis.register_script(_RELEASE_SCRIPT)
        self._settle = redis.register_script(_SETTLE_SCRIPT)
        self.token = "pending:" + uuid.uuid4().hex

    def claim(self, keys: Sequence[str]) -> tuple[set[str], dict[str, int]]:
        """Claim `keys` at once. Returns the keys nobody held (ours to open) and, for
        keys another worker settled, the case id it named."""
        if not keys:
            return set(), {}
        answers = self._claim(keys=[self.prefix + k for k in keys],
                              args=[self.token, self.ttl_seconds])
        won: set[str] = set()
        hints: dict[str, int] = {}
        for key, answer in zip(keys, answers, strict=True):
            value = answer.decode() if isinstance(answer, bytes) else str(answer)
            if value == "":
                won.add(key)
            elif value.isdigit():
                hints[key] = int(value)
        return won, hints

    def settle(self, open_cases: dict[str, int]) -> None:
        """Record the open case of each key (one script call for the batch)."""
        if not open_cases:
            return
        keys = list(open_cases)
        self._settle(keys=[self.prefix + k for k in keys],
                     args=[self.ttl_seconds, *(open_cases[k] for k in keys)])

    def release(self, keys: Sequence[str]) -> None:
        """Give up this worker's pending claims on `keys` (no open case to name)."""
        if keys:
            self._release(keys=[self.prefix + k for k in keys], args=[self.token])


@dataclass(frozen=True)
class _Placed:
    case_id: int
    case_ref: str
    created: bool = False  # this call opened the case
    queued: bool = False  # ... and traced it from the caches: it awaits assessment
    closed: bool = False  # a closed case the reports joined


@dataclass(frozen=True)
class _Last:
    """The latest case of a URL that is no longer open."""

    case_id: int
    case_ref: str
    removed: bool
    left_open_at: datetime | None  # when it was removed or closed


def _open_cases_of(session: Session, keys: Sequence[str]) -> dict[str, _Placed]:
    """The open case of each key that has one (read without locking: the count of the
    reports joining it is added at the end of the transaction, see `_count_joined`)."""
    if not keys:
        return {}
    table: Any = Case.__table__
    rows = session.execute(
        select(table.c.id, table.c.ref, table.c.open_key)
        .where(among(session, table.c.open_key, sorted(keys)))
    ).all()
    return {key: _Placed(case_id, ref) for case_id, ref, key in rows}


def _count_joined(session: Session,
                  placements: Sequence[tuple[_Placed, list[dict[str, Any]]]]) -> None:
    """Add the reports that joined existing cases to their counts: the last statements
    of the transaction, so that the rows of popular cases are locked for the moment
    before the commit, not for the whole batch (profiled: workers queued on them).
    The rows are locked first, all of them in id order by one statement: the UPDATEs
    that follow (one per distinct count) each take a different subset, and two
    workers taking overlapping subsets in different orders deadlocked (seen in the
    benchmark's PostgreSQL log, a batch retried each time). A case that was open
    when read must still be open, or the batch goes round again."""
    table: Any = Case.__table__
    counts: dict[tuple[bool, int], list[int]] = {}
    for placed, members in placements:
        if not placed.created:
            counts.setdefault((placed.closed, len(members)), []).append(placed.case_id)
    every = sorted({case_id for ids in counts.values() for case_id in ids})
    # Even one UPDATE needs the ordered lock first when it counts on more than one
    # case: it locks its rows in the order its plan visits them (a bitmap heap scan
    # goes by page), not by id, and deadlocked with another batch's ordered lock
    # (PostgreSQL's log, make bench at 100,000 reports: one to three per run).
    if is_postgresql(session) and len(every) > 1:
        session.execute(select(table.c.id).where(among(session, table.c.id, every))
                        .order_by(table.c.id).with_for_update(key_share=True))
    for (closed, count), ids in sorted(counts.items()):
        statement = update(table).where(among(session, table.c.id, sorted(ids)))
        if not closed:
            statement = statement.where(table.c.open_key.is_not(None))
        done = session.execute(statement.values(
            report_count=table.c.report_count + count).returning(table.c.id)
        ).scalars().all()
        if len(done) != len(ids):
            raise RetryLater("a case closed while reports were joining it; retrying the batch",
                             delay_ms=50)


def _last_cases(session: Session, keys: Sequence[str]) -> dict[str, _Last]:
    if not keys:
        return {}
    rows = session.execute(
        select(Case.dedup_key, Case.id, Case.ref, Case.removed_at, Case.closed_at)
        .where(among(session, Case.dedup_key, keys), Case.open_key.is_(None))
        .order_by(Case.id)
    )
    last: dict[str, _Last] = {}
    for key, case_id, ref, removed_at, closed_at in rows:
        times = [as_utc(t) for t in (removed_at, closed_at) if t is not None]
        last[key] = _Last(case_id, ref, removed_at is not None, min(times) if times else None)
    return last


@functools.cache
def _case_defaults() -> dict[str, Any]:
    """Every column of a new case row, with the model's Python-side defaults."""
    return blank_row(Case.__table__)


def _insert_cases(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """INSERT ... ON CONFLICT (open_key) DO NOTHING: the rows that lost went to another
    worker. Returns the id of each key inserted. On PostgreSQL one statement over
    arrays (`insert_by_unnest`): profiled, the batch's cases cost more as a pipelined
    executemany than the rest of deduplication."""
    table: Any = Case.__table__
    if is_postgresql(session):
        inserted = insert_by_unnest(session, table, rows, conflict=["open_key"],
                                    returning=["id", "open_key"])
        return {key: case_id for case_id, key in inserted}
    # SQLite: one executemany on the driver's connection, then the rows that went in
    # found by their new references (profiled in embedded mode: SQLAlchemy's
    # `INSERT ... RETURNING`, row by row with its parameter processing, was a tenth
    # of the process's time).
    insert_rows(session, table, rows, on_conflict="ON CONFLICT (open_key) DO NOTHING")
    found = session.execute(select(table.c.id, table.c.open_key).where(
        among(session, table.c.ref, [row["ref"] for row in rows])))
    return {key: case_id for case_id, key in found}


def open_cases(
    session: Session, groups: dict[str, list[dict[str, Any]]], last: dict[str, _Last], *,
    at: datetime, tracer: Tracer | None = None
) -> dict[str, _Placed]:
    """Insert one case per key (losing races quietly); return the cases this call made.
    With `tracer`, the cases whose hosts its caches answer go in traced and queued
    (`pipeline.stages.trace.trace_known_cases`); the others are left for the TRACE stage."""
    drafts: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    refs = new_references("C", len(groups))
    # Keys in one order for every worker: no deadlock between inserts.
    for key, ref in zip(sorted(groups), refs, strict=True):
        reports = groups[key]
        first = reports[0]
        previous = last.get(key)
        reupload = previous is not None and previous.removed
        case = dict(
            _case_defaults(),
            ref=ref,
            canonical_url=first["canonical_url"],
            dedup_key=key,
            open_key=key,
            host=first["host"],
            host_unicode=first["host_unicode"],
            registered_domain=first["registered_domain"],
            url_kind=first["url_kind"],
            host_confusable=bool(first["host_confusable"]),
            claimed_category=first["claimed_category"],
            source_channel=first["channel"],
            urgent=any(r["urgent"] for r in reports),
            report_count=len(reports),
            previous_case_id=previous.case_id if previous else None,
            reupload=reupload,
            priority=0,
            received_at=min(r["received_at"] for r in reports),
            state=None,
            audit_seq=0,
            audit_hash=None,
        )
        case["id"] = None
        data = {"previous_case_id": case["previous_case_id"], "reupload": reupload}
        drafts.append((case, [advance("case", case, CaseState.NORMALISED, at=at, data=data)]))
    if not drafts:
        return {}
    known = Known()
    if tracer is not None:
        known = trace_known_cases(
            tracer, [case for case, _ in drafts],
            [{r["source"] for r in groups[case["dedup_key"]] if r["source"]}
             for case, _ in drafts], at)
        for index, (_, more) in known.cases.items():
            drafts[index][1].extend(more)
    for case, _ in drafts:
        fill_times(case).pop("id")
    won = _insert_cases(session, [case for case, _ in drafts])
    created: dict[str, _Placed] = {}
    events = []
    traces = []
    for index, (case, case_events) in enumerate(drafts):
        case_id = won.get(case["dedup_key"])
        if case_id is None:
            continue
        for event in case_events:
            event["case_id"] = case_id
        events.extend(case_events)
        trace = known.cases[index][0] if index in known.cases else None
        if trace is not None:
            trace["case_id"] = case_id
            traces.append(trace)
        created[case["dedup_key"]] = _Placed(case_id, case["ref"], created=True,
                                             queued=trace is not None)
        if case["reupload"]:
            log.info("Case %s opened for a URL reported again after case %s was removed "
                     "(a re-upload).", case["ref"], last[case["dedup_key"]].case_ref,
                     extra={"case_id": case_id})
    insert_events(session, events)
    if traces:
        store_traces(session, traces, known.answers)
    return created


def _place(
    session: Session,
    groups: dict[str, list[dict[str, Any]]],
    won: set[str],
    *,
    rules: DedupRules,
    now: datetime,
    tracer: Tracer | None = None,
) -> tuple[list[tuple[_Placed, list[dict[str, Any]]]], dict[str, list[dict[str, Any]]]]:
    """Steps 3 to 5: where each report goes; also the keys still undecided."""
    placements: list[tuple[_Placed, list[dict[str, Any]]]] = []
    pending = dict(groups)
    for round_ in range(MAX_ROUNDS):
        # Keys nobody held in Redis have no open case to join (unless the claim expired
        # or Redis lost it: then the insert below loses and the next round joins).
        joinable = [k for k in pending if round_ > 0 or k not in won]
        for key, placed in _open_cases_of(session, joinable).items():
            placements.append((placed, pending.pop(key)))
        if not pending:
            break
        last = _last_cases(session, list(pending))
        to_open: dict[str, list[dict[str, Any]]] = {}
        for key, members in pending.items():
            previous = last.get(key)
            late: list[dict[str, Any]] = []
            rest = members
            if previous is not None and previous.left_open_at is not None:
                left = previous.left_open_at
                late = [r for r in members if as_utc(r["received_at"]) <= left]
                rest = [r for r in members if as_utc(r["received_at"]) > left]
                if rest and not previous.removed and (
                    now - previous.left_open_at <= rules.closed_case_window
                ):
                    late, rest = members, []
            if late and previous is not None:
                placements.append((_Placed(previous.case_id, previous.case_ref, closed=True),
                                   late))
            if rest:
                to_open[key] = rest
        created = open_cases(session, to_open, last, at=now, tracer=tracer)
        for key, placed in created.items():
            placements.append((placed, to_open[key]))
        # Keys whose case another worker opened between our join and our insert.
        pending = {k: v for k, v in to_open.items() if k not in created}
        if not pending:
            break
    return placements, pending


# What deduplication reads of a report (besides its state and audit head).
_READ = ("case_id", "source", "dedup_key", "canonical_url", "host", "host_unicode",
         "registered_domain", "url_kind", "host_confusable", "claimed_category", "channel",
         "urgent", "received_at")


def dedupe_reports(
    session: Session,
    report_ids: Sequence[int],
    *,
    clock: Clock,
    claims: DedupClaims | None = None,
    rules: DedupRules | None = None,
    tracer: Tracer | None = None,
) -> list[int]:
    reports = lock_rows(session, Report, report_ids, [ReportState.NORMALISED],
                        (*HEAD_COLUMNS, *_READ))
    new_ids, events, placements = dedupe_rows(session, reports, at=clock.now(),
                                              claims=claims, rules=rules, tracer=tracer)
    _store(session, reports, ("case_id",), events, placements)
    return new_ids


def normalise_and_dedupe(
    session: Session,
    report_ids: Sequence[int],
    *,
    clock: Clock,
    claims: DedupClaims | None = None,
    rules: DedupRules | None = None,
    canonicaliser: Callable[[str], CanonicalURL] = canonicalise,
    tracer: Tracer | None = None,
) -> list[int]:
    """Both stages in one transaction: each report is locked, read and written once
    (its two state changes, two events). What the normalise actor runs; the dedupe
    stage alone serves reports left `normalised` (the reconciler's)."""
    now = clock.now()
    rows = lock_rows(session, Report, report_ids, [ReportState.RECEIVED],
                     tuple(dict.fromkeys((*NORMALISE_READ, *_READ))))
    done, events = normalise_rows(rows, at=now, canonicaliser=canonicaliser)
    new_ids, more, placements = dedupe_rows(session, done, at=now, claims=claims, rules=rules,
                                            tracer=tracer)
    _store(session, rows, (*FACTS, "case_id"), events + more, placements)
    return new_ids


def settle_at_intake(
    session: Session,
    rows: list[dict[str, Any]],
    *,
    at: datetime,
    actor: str,
    write: Callable[[], None],
    claims: DedupClaims | None = None,
    rules: DedupRules | None = None,
    canonicaliser: Callable[[str], CanonicalURL] = canonicalise,
    tracer: Tracer | None = None,
) -> list[int]:
    """Both stages on reports intake has built and not yet inserted (`received`, their
    events made by `actor`), in intake's transaction: each report row is written once,
    already placed on its case, and its one event carries every state it passed
    through (received, normalised, new case or duplicate; `advance_step`). `write`
    inserts the rows and their events once they are settled (cases are opened before,
    so the rows can name them); the joined counts come last, as in `_store`. Returns
    the ids of the new cases to trace (`pipeline.stages.intake.accept_reports`)."""
    done, events = normalise_rows(rows, at=at, canonicaliser=canonicaliser, actor=actor)
    new_ids, more, placements = dedupe_rows(session, done, at=at, claims=claims, rules=rules,
                                            tracer=tracer, actor=actor)
    if events or more:  # every step joins the event intake made for the row
        raise RuntimeError("settling at intake made events of their own")
    write()
    _count_joined(session, placements)
    return new_ids


@dataclass(frozen=True)
class IntakeSettler:
    """A `pipeline.stages.intake.Settle`: `settle_at_intake` with a process's options
    (`dedupe_options`, its canonicaliser and tracer; `pipeline.app.tracers.settler_for`)."""

    up_to: int
    options: dict[str, Any]
    # How long intake waits, once the rest of a large submission is written, for the
    # trace ahead of its first report to end (seconds): it has had the writing's time
    # already (70-150 ms for 999 reports on the 2-core machine; the trace of a host
    # over loopback takes 20-30), and a longer wait would hold the whole request.
    ahead_wait: float = 0.05

    def __call__(self, session: Session, rows: list[dict[str, Any]], *, at: datetime,
                 actor: str, write: Callable[[], None]) -> list[int]:
        return settle_at_intake(session, rows, at=at, actor=actor, write=write, **self.options)

    def trace_ahead(self, session: Session, case_ids: list[int]) -> Future[Any] | None:
        """Start tracing the new cases `case_ids` in the background
        (`pipeline.stages.trace.trace_ahead`), when this process has a tracer."""
        tracer = self.options.get("tracer")
        if tracer is not None and case_ids:
            return trace_ahead(session, tracer, case_ids)
        return None

    def finish_ahead(self, session: Session, case_ids: list[int],
                     ahead: Future[Any] | None, *, now: datetime) -> list[int]:
        """Queue the cases whose trace ahead has ended in time
        (`pipeline.stages.trace.finish_ahead`); the ids left to the TRACE stage."""
        tracer = self.options.get("tracer")
        if tracer is None:
            return case_ids
        return finish_ahead(session, tracer, case_ids, ahead, wait=self.ahead_wait,
                            now=now)


def _store(session: Session, reports: list[dict[str, Any]], columns: Sequence[str],
           events: list[dict[str, Any]],
           placements: list[tuple[_Placed, list[dict[str, Any]]]]) -> None:
    """The reports, their events, then (last, see `_count_joined`) the joined counts."""
    write_rows(session, "report", reports, columns)
    insert_events(session, events)
    _count_joined(session, placements)


def dedupe_rows(
    session: Session,
    reports: list[dict[str, Any]],
    *,
    at: datetime,
    claims: DedupClaims | None = None,
    rules: DedupRules | None = None,
    tracer: Tracer | None = None,
    actor: str = "system",
) -> tuple[list[int], list[dict[str, Any]], list[tuple[_Placed, list[dict[str, Any]]]]]:
    """Steps 2 to 6 on locked `normalised` rows: cases are opened here; the rows get
    their `case_id` and state in memory, for the caller to store with the events
    returned, and then to count the joined reports on their cases (`_count_joined`,
    last). Returns the ids of the new cases to trace (those traced from the caches
    and queued already, with a `tracer`, are not among them), the events and where
    the reports went."""
    if not reports:
        return [], [], []
    rules = rules or DedupRules()
    groups: dict[str, list[dict[str, Any]]] = {}
    for report in reports:
        groups.setdefault(report["dedup_key"] or "", []).append(report)

    won: set[str] = set()
    if claims is not None:
        try:
            won, _hints = claims.claim(sorted(groups))
        except Exception as exc:  # Redis down: the database alone decides
            log.warning("Dedup claims in Redis failed (%s); deciding in the database.", exc)
            claims = None

    placements, pending = _place(session, groups, won, rules=rules, now=at, tracer=tracer)
    if pending:
        raise RetryLater(f"deduplication of {len(pending)} URLs kept losing races; "
                         "retrying the batch")

    events: list[dict[str, Any]] = []
    for placed, members in placements:
        rest = members
        if placed.created:
            first, rest = members[0], members[1:]
            first["case_id"] = placed.case_id
            add_event(events, advance_step("report", first, ReportState.NEW_CASE, at=at,
                                           actor=actor, data={"case": placed.case_ref}))
        for report in rest:
            report["case_id"] = placed.case_id
            data: dict[str, Any] = {"case": placed.case_ref}
            if placed.closed:
                data["closed_case"] = True
            add_event(events, advance_step("report", report, ReportState.DUPLICATE, at=at,
                                           actor=actor, data=data))

    if claims is not None:
        open_now = {members[0]["dedup_key"] or "": placed.case_id
                    for placed, members in placements if not placed.closed}
        try:
            claims.settle(open_now)
            claims.release([k for k in won if k not in open_now])
        except Exception as exc:
            log.warning("Dedup claims in Redis could not be settled (%s).", exc)

    new_ids = [p.case_id for p, _ in placements if p.created and not p.queued]
    queued = sum(1 for p, _ in placements if p.queued)
    joined = sum(len(m) for p, m in placements if not p.created)
    log.info("Deduplicated %d reports: %d new cases (%d traced from the caches and queued), "
             "%d reports joined existing cases.", len(reports), len(new_ids) + queued,
             queued, joined)
    return new_ids, events, placements


def dedupe_options(settings: Settings, redis: Any | None) -> dict[str, Any]:
    """The keyword arguments of `dedupe_reports` for a process: Redis claims when there
    is a Redis client, and the configured rules (what the dedupe actor passes)."""
    claims = None
    if redis is not None:
        claims = DedupClaims(redis, settings.redis.namespace,
                             ttl_seconds=settings.urls.claim_ttl_seconds)
    return {"claims": claims, "rules": DedupRules.from_settings(settings.urls)}
