"""Stage 3: hosting-origin tracing.

Steps of `trace_cases`:
1. read the given cases that are `normalised` (new) or `traced` (sent back to be
   traced again, e.g. because the content moved),
2. trace their distinct hosts once (`pipeline.adapters.tracing.tracer.Tracer.trace`), then lock
   the cases still waiting (rows are not held during the network work); the ids of
   cases another transaction holds are returned, for the TRACE stage again,
3. if a registry failed in passing (429, timeout, rate limit) for a case younger than
   `trace.give_up_after_seconds`, raise `RetryLater`: the transaction rolls back, the
   answers already received stay cached, and the retry asks only for what is missing;
   an older case goes on marked "origin unknown" with the reason; a case whose
   registries are unreachable (their circuits open) goes on at once marked
   "origin unknown: registries unreachable" (traced again later by the scheduler),
   and a supervisor may send a waiting case on the same way from the console
   (`send_on_unknown`),
4. store one immutable `Trace` per case with the raw answers, copy its summary onto
   the case, move the case to `traced`,
5. place the cases in the assessment queue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import CancelledError, Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from pipeline.adapters.tracing.rdap import RdapAnswer
from pipeline.adapters.tracing.tracer import (
    RDAP_UNAVAILABLE,
    REGISTRIES_UNREACHABLE,
    HostTrace,
    Tracer,
    TraceTarget,
)
from pipeline.core.clock import Clock, as_utc
from pipeline.core.errors import RetryLater
from pipeline.stages.queueing import (
    Priority,
    configured_rules,
    priorities,
    priority_of,
    queued_data,
)
from pipeline.store.audit import insert_events
from pipeline.store.db import (
    among,
    insert_ignoring_conflicts,
    insert_rows,
    is_postgresql,
    lock_rows,
)
from pipeline.store.lifecycle import (
    HEAD_COLUMNS,
    add_event,
    advance_step,
    transition,
    write_rows,
)
from pipeline.store.models import Case
from pipeline.store.states import CaseState
from pipeline.store.trace_models import Trace, TraceAnswer

log = logging.getLogger(__name__)

NOT_TRACED = "not_traced"
# The outcome of a case a person sent on without waiting for the registries.
SENT_ON_BY_HAND = "sent_on_by_hand"
_TRACES: Any = Trace.__table__


def trace_cases(
    session: Session,
    case_ids: Sequence[int],
    *,
    clock: Clock,
    tracer: Tracer | None = None,
    rerouted: list[int] | None = None,
) -> list[int]:
    """Trace the cases; return the ids another transaction held (to trace again).

    Cases already assessed (the content moved while monitored) go back to `assessed`
    and their ids are appended to `rerouted`, for the route stage.
    """
    now = clock.now()
    # Read without locking, trace (network), then lock: rows are not held while the
    # registries answer (PostgreSQL; SQLite holds its one write lock throughout).
    pending = list(session.execute(
        select(Case.id, Case.host, Case.url_kind, Case.registered_domain, Case.state)
        .where(among(session, Case.id, case_ids),
               Case.state.in_([CaseState.NORMALISED, CaseState.TRACED]))
    ).all())
    if not pending:
        return []
    targets = {row.id: TraceTarget(row.host, row.url_kind, row.registered_domain)
               for row in pending}
    if tracer is not None:
        # Cases sent back to be traced again (the content moved) skip the DNS caches.
        refresh = {row.host for row in pending if row.state == CaseState.TRACED and row.host}
        results = tracer.trace(list(targets.values()), refresh=refresh)
        give_up = tracer.config.give_up_after_seconds
    else:
        results = {t: _not_traced(t, now) for t in targets.values()}
        give_up = 0.0
    # The registry answers go in before any case row is locked. Deduplication (at
    # intake or in a worker) stores the answers of cases it traces from the caches,
    # then locks the cases its reports join; a trace that locked its cases first and
    # then waited for the same answer key deadlocked with it (PostgreSQL's log, make
    # bench: one to six deadlocks in every 20,000-report import, each a second lost).
    _store_answers(session, _answers_of(results.values()))
    cases = lock_rows(session, Case, list(targets), [CaseState.NORMALISED, CaseState.TRACED],
                      (*HEAD_COLUMNS, *_READ))
    # Cases another transaction holds (deduplication adding a report) are handed back
    # to be traced again at once, rather than waited for with locks held (deadlocks)
    # or left for the reconciler.
    locked = {case["id"] for case in cases}
    skipped = [case_id for case_id in targets if case_id not in locked]
    if not cases:
        return skipped

    waiting = [case for case in cases if results[targets[case["id"]]].transient
               and not results[targets[case["id"]]].unreachable
               and _age_seconds(case, now) < give_up]
    if waiting:
        delay = max(results[targets[c["id"]]].retry_delay_ms for c in waiting)
        first = results[targets[waiting[0]["id"]]]
        log.info("Tracing of %d cases (first %s) waits %d ms: %s.", len(waiting),
                 waiting[0]["id"], delay, first.transient,
                 extra={"case_id": waiting[0]["id"]})
        raise RetryLater(f"tracing waits for a registry: {first.transient}", delay_ms=delay)

    for case in cases:
        result = results[targets[case["id"]]]
        if result.transient and result.unreachable:  # do not wait: go on, retrace later
            result.unknown(REGISTRIES_UNREACHABLE, "origin unknown: registries unreachable "
                           f"({result.transient})")
        elif result.transient:  # past the give-up age: recorded as unknown
            result.unknown(RDAP_UNAVAILABLE, f"gave up after {int(give_up)} s: "
                           f"{result.transient}")
    go_on(session, cases, {case["id"]: results[targets[case["id"]]] for case in cases},
          now=now, rerouted=rerouted, answers_stored=True)
    log.info("Traced %d cases over %d hosts.", len(cases), len(set(targets.values())))
    return skipped


def trace_ahead(session: Session, tracer: Tracer,
                case_ids: Sequence[int]) -> Future[Any] | None:
    """Start tracing the hosts of the new cases `case_ids` (their rows written in
    `session`, not yet committed) in the background (`Tracer.trace_ahead`), so that
    their answers wait in the caches when the TRACE stage takes the cases after the
    commit. Intake does this for the first report of a large submission while it
    writes the rest: measured (make bench, the API's batches of 1,000), that trace
    had started only after the commit and took as long again.

    The registry answers are stored too, in a transaction of their own committed at
    once. Otherwise the first to store them would be the workers' deduplication,
    tracing new cases of the same networks from the caches in batches whose
    transactions stay open for hundreds of milliseconds under load; the TRACE stage,
    storing the same keys, waited for those commits (measured with a first version
    that only filled the caches: the first report's trace took 20-30 ms, and the
    rest of its transaction 373-430)."""
    targets = _targets(session, case_ids)
    engine = session.get_bind()

    def store(results: dict[TraceTarget, HostTrace]) -> None:
        answers = _answers_of(results.values())
        if answers:
            with Session(engine) as own, own.begin():
                _store_answers(own, answers)

    # SQLite: the submission's transaction holds the one write lock until it commits,
    # so the answers wait for the stage (or `finish_ahead`) to store them in theirs.
    return tracer.trace_ahead(list(targets.values()),
                              then=store if is_postgresql(session) else None)


def finish_ahead(session: Session, tracer: Tracer, case_ids: Sequence[int],
                 ahead: Future[Any] | None, *, wait: float, now: datetime) -> list[int]:
    """Trace and queue in `session` the new cases `case_ids` whose trace ahead
    (`trace_ahead`, returning `ahead`) has ended within `wait` seconds with every
    answer in the caches; return the others, for the TRACE stage as before.

    Intake calls this once it has written the rest of a large submission: then the
    first report's case commits waiting for assessment with the submission, instead
    of waiting after the commit for a worker to take its TRACE message (measured,
    make bench, API path: its report was seen settled 140 ms after it was seen
    stored). Nothing is asked over the network here (`Tracer.trace_known`): a trace
    not ended in time, failed or answered in part is left to the stage."""
    if ahead is None or not case_ids:
        return list(case_ids)
    try:
        ahead.result(timeout=wait)  # a failure was logged by the tracer: the stage asks
    except (FutureTimeout, CancelledError):  # not ended in time; the tracer closed
        return list(case_ids)
    targets = _targets(session, case_ids, CaseState.NORMALISED)
    known = tracer.trace_known(list(targets.values())) if targets else {}
    ready = [case_id for case_id, target in targets.items() if target in known]
    if not ready:
        return list(case_ids)
    cases = lock_rows(session, Case, ready, [CaseState.NORMALISED], (*HEAD_COLUMNS, *_READ))
    go_on(session, cases, {case["id"]: known[targets[case["id"]]] for case in cases}, now=now)
    done = {case["id"] for case in cases}
    return [case_id for case_id in case_ids if case_id not in done]


def _targets(session: Session, case_ids: Sequence[int],
             state: CaseState | None = None) -> dict[int, TraceTarget]:
    """What to trace for each of the cases `case_ids` (those in `state`, if given)."""
    query = (select(Case.id, Case.host, Case.url_kind, Case.registered_domain)
             .where(among(session, Case.id, case_ids)))
    if state is not None:
        query = query.where(Case.state == state)
    return {row.id: TraceTarget(row.host, row.url_kind, row.registered_domain)
            for row in session.execute(query)}


def go_on(session: Session, cases: list[dict[str, Any]], results: dict[int, HostTrace], *,
          now: datetime, rerouted: list[int] | None = None, actor: str = "system",
          reason: str | None = None, answers_stored: bool = False) -> None:
    """Record each locked case row's trace (`results` by case id), then send it on:
    to the assessment queue, or (already assessed: the content moved) back to
    `assessed`, its id appended to `rerouted` for the route stage. `actor` and
    `reason` go into the audit events (a person sending cases on by hand).
    `answers_stored`: the registry answers of `results` are in already."""
    answers: dict[str, dict[str, Any]] = {}
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for case in cases:
        row, event = record_trace(case, results[case["id"]], now, answers, actor=actor)
        rows.append(row)
        add_event(events, event)
    store_traces(session, rows, {} if answers_stored else answers)
    moved = [case for case in cases if case["legality"] is not None]
    for case in moved:
        add_event(events, advance_step(
            "case", case, CaseState.ASSESSED, at=now, actor=actor,
            data={"reason": reason or "traced again after the content moved"}))
        log.info("Case %s moved to AS%s in %s; routing it again.", case["id"],
                 case["hosting_asn"], case["hosting_country"], extra={"case_id": case["id"]})
        if rerouted is not None:
            rerouted.append(case["id"])
    queued = [case for case in cases if case["legality"] is None]
    for case, priority in zip(queued, priorities(session, queued), strict=True):
        add_event(events, queue_row(case, priority, now, actor=actor, reason=reason))
    write_rows(session, "case", cases, _WRITTEN)
    insert_events(session, events)


def send_on_unknown(session: Session, case_ids: Sequence[int], *, clock: Clock, actor: str,
                    rerouted: list[int] | None = None) -> list[int]:
    """A supervisor sends cases still waiting for their trace on without waiting for
    the registries: each goes on marked "origin unknown" (`SENT_ON_BY_HAND`) through
    the same steps as a case whose registries are unreachable (`go_on`), the person
    named in its audit events. Returns the ids of the cases sent on (cases traced or
    held by another transaction meanwhile are left alone)."""
    now = clock.now()
    cases = lock_rows(session, Case, case_ids, [CaseState.NORMALISED, CaseState.TRACED],
                      (*HEAD_COLUMNS, *_READ, "host", "url_kind"))
    if not cases:
        return []
    results = {}
    for case in cases:
        result = HostTrace(host=case["host"], url_kind=case["url_kind"], started_at=now)
        result.unknown(SENT_ON_BY_HAND, f"origin unknown: sent on by {actor} without "
                       "waiting for the registries")
        results[case["id"]] = result
    go_on(session, cases, results, now=now, rerouted=rerouted, actor=actor,
          reason="sent on as origin unknown by hand")
    ids = [case["id"] for case in cases]
    log.info("%s sent %d cases on as origin unknown (first %s).", actor, len(ids), ids[0],
             extra={"case_id": ids[0]})
    return ids


def note_retry(session_factory: sessionmaker[Session], case_ids: Sequence[int], *,
               retry_at: datetime, reason: str | None = None) -> None:
    """The TRACE message of these cases waits for its retry until `retry_at`: noted
    (in a transaction of its own, the stage's rolled back) so that the reconciler
    does not send the cases again meanwhile; the failed attempt is counted and its
    `reason` kept, for the console's "still tracing" list."""
    with session_factory.begin() as session:
        session.execute(update(Case).where(
            among(session, Case.id, case_ids),
            Case.state.in_([CaseState.NORMALISED, CaseState.TRACED])).values(
                retry_at=retry_at, trace_attempts=Case.trace_attempts + 1,
                trace_wait_reason=reason[:2000] if reason else None))


def send_back_unreachable(session: Session, *, now: datetime, limit: int) -> list[int]:
    """Cases traced while the registries were unreachable and still waiting for an
    analyst (not claimed) go back to `traced`; their ids are returned, for the TRACE
    stage (the scheduler's `retrace-unreachable` job, once no circuit is open)."""
    query = (select(Case).where(Case.state == CaseState.AWAITING_ASSESSMENT,
                                Case.trace_outcome == REGISTRIES_UNREACHABLE)
             .order_by(Case.id).limit(limit))
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True)
    ids = []
    for case in session.execute(query).scalars().all():
        transition(session, case, CaseState.TRACED, at=now,
                   data={"reason": "traced again: the registries were unreachable"})
        ids.append(case.id)
    if ids:
        log.info("Sent %d cases traced while the registries were unreachable to be traced "
                 "again (first %s).", len(ids), ids[0], extra={"case_id": ids[0]})
    return ids


def record_trace(case: dict[str, Any], result: HostTrace, now: datetime,
                 answers: dict[str, dict[str, Any]], *,
                 actor: str = "system") -> tuple[dict[str, Any], dict[str, Any] | None]:
    """One case's trace: its summary copied onto the row `case`, the registry answers
    added to `answers` (by content key), and the `Trace` row (for `store_traces`) and
    the `case_traced` event returned (None for a case traced again, or when the step
    went into the event the case's row has in this transaction: `advance_step`)."""
    rdap_raw = []
    for answer in result.rdap_answers:
        key = _answer_key(answer)
        answers.setdefault(key, answer)
        rdap_raw.append({"url": answer["url"], "status": answer["status"],
                         "at": answer["at"], "answer": key})
    row = _trace_row(case["id"], result, rdap_raw, now)
    case.update(_summary(result))
    data = {"outcome": result.outcome, "country": result.hosting_country,
            "asn": result.hosting_asn, "cdn": result.cdn_name}
    if result.reason and result.origin_unknown:
        data["reason"] = result.reason
    event = None
    if case["state"] == CaseState.NORMALISED:
        event = advance_step("case", case, CaseState.TRACED, at=now, data=data, actor=actor)
    log.debug("Case %s traced to AS%s in %s (%s).", case["id"] or case["ref"],
              result.hosting_asn, result.hosting_country, result.outcome,
              extra={"case_id": case["id"]})
    return row, event


def queue_row(case: dict[str, Any], priority: Priority, now: datetime, *,
              actor: str = "system", reason: str | None = None) -> dict[str, Any] | None:
    """Place a traced case row in the assessment queue; its `case_queued` event (None
    when the step went into the row's event of this transaction: `advance_step`)."""
    case["priority"] = priority.value
    data = queued_data(priority)
    if reason:
        data = {**data, "reason": reason}
    return advance_step("case", case, CaseState.AWAITING_ASSESSMENT, at=now, actor=actor,
                        data=data)


def store_traces(session: Session, rows: list[dict[str, Any]],
                 answers: dict[str, dict[str, Any]]) -> None:
    """Insert `Trace` rows and the registry answers not stored yet."""
    insert_rows(session, _TRACES, rows)
    _store_answers(session, answers)


@dataclass
class Known:
    """New cases traced and queued from the caches (`trace_known_cases`): by their
    index in the batch, the `Trace` row and the events of each (none when the steps
    went into the case's `case_opened` event); the answers."""

    cases: dict[int, tuple[dict[str, Any], list[dict[str, Any]]]] = field(
        default_factory=dict)
    answers: dict[str, dict[str, Any]] = field(default_factory=dict)


def trace_known_cases(tracer: Tracer, cases: Sequence[dict[str, Any]],
                      sources: Sequence[set[str]], now: datetime) -> Known:
    """Deduplication opens cases; those whose hosts the caches answer in full are
    traced and queued at once, in the same rows, before they are stored: no TRACE
    message, no second read, lock and write of them (in the benchmark's workload,
    where hosts repeat as reports of one site do, 93% of new cases). `cases` are new
    case rows
    (`normalised`, no id yet) with `sources` the partner sources of their reports;
    the rows of the cases traced move to `awaiting_assessment`."""
    known = Known()
    targets = [TraceTarget(c["host"], c["url_kind"], c["registered_domain"]) for c in cases]
    results = tracer.trace_known(targets) if targets else {}
    if not results:
        return known
    rules = configured_rules()
    for index, (case, target) in enumerate(zip(cases, targets, strict=True)):
        result = results.get(target)
        if result is None:
            continue
        row, traced = record_trace(case, result, now, known.answers)
        queued = queue_row(case, priority_of(rules, case, sources[index]), now)
        known.cases[index] = (row, [e for e in (traced, queued) if e is not None])
    return known


def _age_seconds(case: dict[str, Any], now: datetime) -> float:
    since = case["state_changed_at"] if case["state"] == CaseState.TRACED else (
        case["normalised_at"] or case["state_changed_at"])
    return (now - as_utc(since)).total_seconds()


def _not_traced(target: TraceTarget, now: datetime) -> HostTrace:
    result = HostTrace(host=target.host, url_kind=target.url_kind, started_at=now)
    result.unknown(NOT_TRACED, "no tracer is configured in this process")
    return result


def _answer_key(answer: dict[str, Any]) -> str:
    return answer.get("key") or RdapAnswer.from_dict(answer).key


def _trace_row(case_id: int, result: HostTrace, rdap_raw: list[dict[str, Any]],
               now: datetime) -> dict[str, Any]:
    return dict(
        case_id=case_id, host=result.host, url_kind=result.url_kind,
        started_at=result.started_at, traced_at=now, outcome=result.outcome,
        origin_unknown=result.origin_unknown, reason=result.reason,
        resolver=result.resolver, addresses=result.addresses,
        cname_chain=result.cname_chain, nameservers=result.nameservers,
        registrar=result.registrar, registrar_abuse_email=result.registrar_abuse_email,
        behind_cdn=result.behind_cdn, cdn_name=result.cdn_name,
        hosting_country=result.hosting_country, country_source=result.country_source,
        hosting_asn=result.hosting_asn, hosting_org=_cut(result.hosting_org, 255),
        hosting_abuse_email=_cut(result.hosting_abuse_email, 320),
        dns_raw=result.dns_raw, rdap_raw=rdap_raw,
    )


# The trace summary copied onto the case (the queue and the rules read it there).
_SUMMARY = ("hosting_country", "hosting_asn", "hosting_org", "hosting_abuse_email",
            "behind_cdn", "cdn_name", "origin_unknown", "trace_outcome", "registrar",
            "registrar_abuse_email")
# What the stage reads of a case besides its state and audit head.
_READ = (*_SUMMARY, "legality", "urgent", "claimed_category", "source_channel", "priority",
         "state_changed_at", "normalised_at")
_WRITTEN = (*_SUMMARY, "priority")


def _summary(result: HostTrace) -> dict[str, Any]:
    return dict(
        hosting_country=result.hosting_country, hosting_asn=result.hosting_asn,
        hosting_org=_cut(result.hosting_org, 255),
        hosting_abuse_email=_cut(result.hosting_abuse_email, 320),
        behind_cdn=result.behind_cdn, cdn_name=result.cdn_name,
        origin_unknown=result.origin_unknown, trace_outcome=result.outcome,
        registrar=_cut(result.registrar, 255),
        registrar_abuse_email=_cut(result.registrar_abuse_email, 320),
    )


def _answers_of(results: Iterable[HostTrace]) -> dict[str, dict[str, Any]]:
    """The registry answers of `results`, by key, each once."""
    answers: dict[str, dict[str, Any]] = {}
    for result in results:
        for answer in result.rdap_answers:
            answers.setdefault(_answer_key(answer), answer)
    return answers


def _store_answers(session: Session, answers: dict[str, dict[str, Any]]) -> None:
    """Registry answers are shared by many traces and stored once (by content key).
    Most of a batch's answers came from the caches and are stored already: only the
    others are sent (profiled: serialising every answer again for an INSERT that
    then did nothing was a twentieth of a worker's time)."""
    if not answers:
        return
    table: Any = TraceAnswer.__table__
    stored = set(session.execute(
        select(table.c.key).where(among(session, table.c.key, sorted(answers)))).scalars())
    rows = [{"key": key, "url": a["url"], "status": a["status"],
             "received_at": datetime.fromisoformat(a["at"]), "body": a["body"]}
            for key, a in sorted(answers.items()) if key not in stored]
    insert_ignoring_conflicts(session, table, rows, conflict_columns=["key"])


def _cut(value: str | None, length: int) -> str | None:
    return value[:length] if value else value
