"""Intake: reports are committed to the database before anything is enqueued.

Steps of `accept_reports`:
1. check sizes the schema cannot know (configured limits),
2. insert the reports and their `report_received` events in one transaction; given a
   `Settle` (`pipeline.app.tracers.settler_for`), a small submission (at most its
   `up_to` reports; of a larger one, the first report) is normalised and
   deduplicated in this same transaction before it is inserted, so its rows are
   written once, already on their cases, with one event each,
3. commit,
4. only then ask for normalisation of the reports stored `received`, and for tracing
   of the cases step 2 opened and could not trace from the tracer's caches.
If the broker is down after step 3, nothing is lost: the reconciler finds the
reports still `received` (and the cases still `normalised`) past the deadline and
enqueues them again. If settling fails (a race lost too often, Redis or the database
in trouble), the submission is stored `received` for the workers instead.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.exc import StatementError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.clock import Clock, as_utc
from pipeline.core.config import IntakeSection
from pipeline.core.errors import BadInput, NotFound
from pipeline.core.messaging import NORMALISE, TRACE, Enqueuer
from pipeline.store.audit import insert_events
from pipeline.store.db import insert_rows_numbered
from pipeline.store.lifecycle import advance, fill_times
from pipeline.store.models import Case, Report
from pipeline.store.states import CaseState, ReportState
from schemas.intake import ReportIn, ReportStatus

log = logging.getLogger(__name__)

_REF_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read out on the phone


# Base32 (RFC 4648) spells 5 bits a letter: its alphabet mapped onto ours, letter for
# letter, spells a reference's 80 random bits in C.
_FROM_BASE32 = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", _REF_ALPHABET.encode())


def new_reference(prefix: str) -> str:
    """An unguessable reference such as R-7KQ2-MX9D-4TPA-WZ3B (80 random bits: 16
    letters of the 32-letter alphabet, 5 bits each)."""
    return new_references(prefix, 1)[0]


def new_references(prefix: str, count: int) -> list[str]:
    """`count` references as `new_reference` makes them, from one read of the system's
    random source, spelt in C: 2.5 ms per 1,000 against 6.4 one at a time with the
    letters picked in Python (py-spy had shown that at 7% of the web app importing a
    file, counting the references of the reports and of their new cases)."""
    letters = base64.b32encode(secrets.token_bytes(10 * count)).translate(_FROM_BASE32).decode()
    return [f"{prefix}-{letters[i:i + 4]}-{letters[i + 4:i + 8]}-{letters[i + 8:i + 12]}-"
            f"{letters[i + 12:i + 16]}" for i in range(0, 16 * count, 16)]


@dataclass(frozen=True)
class Accepted:
    id: int
    ref: str
    url: str


def check_limits(item: ReportIn, limits: IntakeSection, now: datetime) -> None:
    """Raise `BadInput` naming the field that is over a configured limit."""
    if len(item.url.encode()) > limits.max_url_bytes:
        raise BadInput(f"url: longer than {limits.max_url_bytes} bytes")
    if item.description and len(item.description) > limits.max_description_chars:
        raise BadInput(f"description: longer than {limits.max_description_chars} characters")
    if item.reporter_contact and len(item.reporter_contact) > limits.max_contact_chars:
        raise BadInput(f"reporter_contact: longer than {limits.max_contact_chars} characters")
    if item.received_at and as_utc(item.received_at) > now + timedelta(
        seconds=limits.max_future_skew_seconds
    ):
        raise BadInput("received_at: lies in the future")


class Settle(Protocol):
    """Normalises and deduplicates reports intake built and has not inserted yet, in
    its transaction (`pipeline.stages.dedupe.settle_at_intake`): calls `write` to insert
    them once settled; returns the ids of the new cases to trace."""

    @property
    def up_to(self) -> int:
        """The most reports of a submission settled at intake (of more: the first)."""

    def __call__(self, session: Session, rows: list[dict[str, Any]], *, at: datetime,
                 actor: str, write: Callable[[], None]) -> list[int]: ...

    def trace_ahead(self, session: Session, case_ids: list[int]) -> Future[Any] | None:
        """Start tracing the new cases `case_ids` in the background while the rest of
        the submission is written (their answers then wait in the caches)."""

    def finish_ahead(self, session: Session, case_ids: list[int],
                     ahead: Future[Any] | None, *, now: datetime) -> list[int]:
        """Once the rest is written: trace and queue, in the submission's transaction,
        the cases whose trace ahead has ended; the ids left for the TRACE stage."""


@dataclass
class Stored:
    """What `store_reports` stored: every report, in the order given; the ids stored
    `received` (for normalisation) and the new cases settling opened (for tracing)."""

    accepted: list[Accepted]
    to_normalise: list[int]
    to_trace: list[int] = field(default_factory=list)


def store_reports(
    session: Session,
    items: Sequence[ReportIn],
    *,
    clock: Clock,
    limits: IntakeSection,
    source: str | None = None,
    actor: str = "intake",
    submission_ref: str | None = None,
) -> list[Accepted]:
    """Insert the reports and their first audit events in `session` (no commit): one
    executemany for the reports, one for the events. Every report is `received`."""
    return store_and_settle(session, items, clock=clock, limits=limits, source=source,
                            actor=actor, submission_ref=submission_ref).accepted


def store_and_settle(
    session: Session,
    items: Sequence[ReportIn],
    *,
    clock: Clock,
    limits: IntakeSection,
    settle: Settle | None = None,
    whole: bool = False,
    source: str | None = None,
    actor: str = "intake",
    submission_ref: str | None = None,
) -> Stored:
    """`store_reports`, settling with `settle` the whole submission when it holds at
    most `settle.up_to` reports (or `whole`), else its first report (no commit)."""
    now = clock.now()
    for index, item in enumerate(items):
        try:
            check_limits(item, limits, now)
        except BadInput as exc:
            raise BadInput(f"reports[{index}].{exc}") if len(items) > 1 else exc from None
    submission_ref = submission_ref or new_reference("S")
    rows: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for item, ref in zip(items, new_references("R", len(items)), strict=True):
        row: dict[str, Any] = dict(
            ref=ref,
            submission_ref=submission_ref,
            url=item.url,
            channel=item.channel.value,
            claimed_category=item.claimed_category.value if item.claimed_category else None,
            description=item.description or None,
            reporter_contact=item.reporter_contact or None,
            language=item.language,
            source=source,
            urgent=item.urgent,
            found_on=item.found_on.value if item.found_on else None,
            received_at=as_utc(item.received_at) if item.received_at else now,
            state=None,
            audit_seq=0,
            audit_hash=None,
            case_id=None,
        )
        events.append(advance("report", row, ReportState.RECEIVED, at=now, actor=actor,
                              data={"channel": row["channel"]}))
        rows.append(row)
    count = 0
    if settle is not None and settle.up_to > 0:
        count = len(rows) if whole or len(rows) <= settle.up_to else 1
    ids: list[int] = []

    def write(part: list[dict[str, Any]], part_events: list[dict[str, Any]]) -> None:
        for row in part:
            fill_times(row)
        columns = dict.fromkeys(key for row in part for key in row)
        for row in part:  # settled rows gain the columns of the states they went through
            for key in columns:
                row.setdefault(key, None)
        part_ids = _insert(session, part)
        # The events were built before the ids existed; the hash does not cover ids.
        for event, report_id in zip(part_events, part_ids, strict=True):
            event["report_id"] = report_id
        insert_events(session, part_events)
        ids.extend(part_ids)

    to_trace: list[int] = []
    ahead = None
    if count:
        assert settle is not None
        to_trace = settle(session, rows[:count], at=now, actor=actor,
                          write=lambda: write(rows[:count], events[:count]))
        if count < len(rows):  # the first report alone: trace it while the rest go in
            ahead = settle.trace_ahead(session, to_trace)
    write(rows[count:], events[count:])
    if ahead is not None:
        assert settle is not None
        to_trace = settle.finish_ahead(session, to_trace, ahead, now=now)
    return Stored(
        accepted=[Accepted(report_id, row["ref"], row["url"])
                  for report_id, row in zip(ids, rows, strict=True)],
        to_normalise=ids[count:], to_trace=to_trace)


_REPORTS: Any = Report.__table__


def _insert(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert report rows; their ids, in order (`insert_rows_numbered`: on PostgreSQL
    from the sequence first, so the insert is a COPY instead of a huge `INSERT ...
    VALUES ... RETURNING` that the driver must parse for every batch; profiled: most
    of intake's time)."""
    return insert_rows_numbered(session, _REPORTS, rows, unique="ref")


# Submissions larger than this send their first report ahead in a message of its own
# (make bench, API phase: a batch of 1,000 stored its first report 219 ms after the
# request and settled it 1.2 s after, behind 249 others). Smaller ones, such as the
# benchmark's open-loop ticks of a few reports, stay one message: splitting them
# doubled the messages per report for no earlier first report.
FIRST_ALONE_ABOVE = 100


def accept_reports(
    session_factory: sessionmaker[Session],
    items: Sequence[ReportIn],
    *,
    clock: Clock,
    limits: IntakeSection,
    enqueuer: Enqueuer,
    source: str | None = None,
    actor: str = "intake",
    settle: Settle | None = None,
) -> tuple[str, list[Accepted]]:
    """Store (settling what `settle` may), commit, then enqueue. Returns the submission
    reference and the reports."""
    if not items:
        raise BadInput("reports: at least one report is needed")
    if len(items) > limits.max_batch:
        raise BadInput(
            f"reports: a request holds at most {limits.max_batch} reports, got {len(items)}"
        )
    submission = new_reference("S")
    stored = take_in(session_factory, items, clock=clock, limits=limits, enqueuer=enqueuer,
                     source=source, actor=actor, submission_ref=submission, settle=settle)
    return submission, stored.accepted


def take_in(
    session_factory: sessionmaker[Session],
    items: Sequence[ReportIn],
    *,
    clock: Clock,
    limits: IntakeSection,
    enqueuer: Enqueuer,
    source: str | None,
    actor: str,
    submission_ref: str,
    settle: Settle | None = None,
    whole: bool = False,
) -> Stored:
    """Steps 2 to 4 for one transaction of reports (an API request, a batch of an
    import; `whole`: settled whole, whatever `settle.up_to`). Settling that fails
    leaves the reports to the workers: stored `received` in a second transaction."""
    stored: Stored | None = None
    if settle is not None:
        try:
            with session_factory() as session, session.begin():
                stored = store_and_settle(session, items, clock=clock, limits=limits,
                                          settle=settle, whole=whole, source=source,
                                          actor=actor, submission_ref=submission_ref)
        except BadInput:
            raise
        except Exception as exc:  # the workers settle them instead, as without `settle`
            # A database error is named by the driver's message: SQLAlchemy's own would
            # carry the statement's parameters, the reports' fields among them.
            database = isinstance(exc, StatementError)
            log.warning("Settling at intake failed for %d report(s) (%s: %s); they are "
                        "stored for the workers.", len(items), type(exc).__name__,
                        exc.orig if isinstance(exc, StatementError) else exc,
                        exc_info=not database)
    if stored is None:
        with session_factory() as session, session.begin():
            stored = store_and_settle(session, items, clock=clock, limits=limits,
                                      source=source, actor=actor,
                                      submission_ref=submission_ref)
    enqueuer.send(TRACE, stored.to_trace)
    ids = stored.to_normalise
    if len(ids) > FIRST_ALONE_ABOVE and len(ids) == len(stored.accepted):
        # A large batch's first report in a message of its own: a worker settles it at
        # once instead of after the first `worker.batch_size` reports of the batch.
        enqueuer.send(NORMALISE, ids[:1])
        ids = ids[1:]
    enqueuer.send(NORMALISE, ids)
    return stored


_PUBLIC_STATUS = {
    ReportState.RECEIVED: ("received", "Your report was received and is waiting to be processed."),
    ReportState.REJECTED: ("rejected", "The address you reported could not be processed."),
}
_CASE_STATUS = {
    CaseState.CLOSED: ("closed", "Your report was assessed and the case is closed."),
    CaseState.REMOVED: ("content_removed", "The content you reported has been removed."),
    CaseState.ROUTED: ("action_taken", "Your report was assessed and passed on for action."),
    CaseState.POLICE_HOLD: ("action_taken",
                            "Your report was assessed and passed on for action."),
    CaseState.NOTIFIED: ("action_taken", "Your report was assessed and passed on for action."),
    CaseState.MONITORING: ("action_taken",
                           "Your report was assessed and passed on for action."),
}


def public_status(session: Session, ref: str) -> ReportStatus:
    """The status a reporter may see: no URL analysis, no assessment, no destination."""
    row = session.execute(
        select(Report.ref, Report.received_at, Report.state, Case.state)
        .outerjoin(Case, Case.id == Report.case_id)
        .where(Report.ref == ref)
    ).one_or_none()
    if row is None:
        raise NotFound(f"no report with reference {ref}")
    ref, received_at, report_state, case_state = row
    status, text = _PUBLIC_STATUS.get(
        ReportState(report_state),
        ("in_progress", "Your report is being processed by an analyst."),
    )
    if case_state is not None and report_state != ReportState.REJECTED:
        status, text = _CASE_STATUS.get(CaseState(case_state), (status, text))
    return ReportStatus(reference=ref, received_at=received_at, status=status, explanation=text)
