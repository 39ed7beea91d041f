"""Bulk import of reports from JSON Lines or CSV, one report per line.

A bad line is reported with its line number and the rest are still imported; good
lines are committed in batches before they are enqueued.

The file is read as a stream: the first good line is committed and enqueued on its
own, then batches of 2, 4, 8... lines up to `intake.import_commit_every`, so the
pipeline starts on the first reports while the rest are still being read (a
1,000-line first commit held the first report back by most of a second), and a file
arriving through a pipe is imported as it arrives.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.clock import Clock
from pipeline.core.config import IntakeSection
from pipeline.core.errors import BadInput
from pipeline.core.messaging import Enqueuer
from pipeline.stages.intake import Settle, Stored, check_limits, new_reference, take_in
from pipeline.store.db import is_postgresql
from schemas.guards import BodyRefused, load_json
from schemas.intake import Channel, ReportIn

CSV_FIELDS = {"url", "channel", "claimed_category", "description", "reporter_contact",
              "received_at", "language", "urgent"}
_BOM = b"\xef\xbb\xbf"

log = logging.getLogger(__name__)


# Batches of one import in their transactions at once on PostgreSQL. One batch's
# transaction waits on the database for about two fifths of its time (make bench,
# import path: 352 ms a batch of 1,000, 211 of them the thread's CPU): a second batch
# settles meanwhile. Batches that share a URL meet as two workers do: the second
# insert of its case waits for the first transaction and joins what it opened
# (`pipeline.stages.dedupe`). SQLite takes one writer at a time: one batch.
IN_FLIGHT = 2

# Below this many reports a table is small enough that any plan is quick.
ANALYSE_FROM = 2_500


class _Analyser:
    """PostgreSQL: ANALYZE the tables an import fills each time it has doubled them.

    psycopg prepares a statement on the server after five uses, and PostgreSQL then
    keeps a generic plan for the connection's life, replanned only when the tables'
    statistics change. Importing 100,000 reports into a new database, deduplication's
    count of the reports joining cases (`UPDATE ... WHERE id = ANY($2)`) kept the
    sequential scan planned while the cases table was nearly empty: up to 250 ms a
    batch, twice the database's CPU per report (auto_explain, make bench); autovacuum
    analyses a table a minute or more later, after the import. PostgreSQL's advice
    for bulk loads is to ANALYZE; doing it whenever the import has doubled the
    reports table costs a few analyses per import, each replanning every
    connection's statements on these tables. (Planning every execution instead,
    `plan_cache_mode = force_custom_plan`, was measured: it cost the workers' many
    small statements more than it saved.)"""

    TABLES = "reports, cases"

    def __init__(self, session_factory: sessionmaker[Session]):
        self.session_factory = session_factory
        self.next_at: float | None = None  # reports in the table at the next ANALYZE
        self.start = 0.0

    def after(self, imported: int) -> None:
        if self.next_at is None:
            with self.session_factory() as session:
                if not is_postgresql(session):
                    self.next_at = float("inf")
                    return
                rows = session.execute(text(
                    "SELECT greatest(reltuples, 0) FROM pg_class "
                    "WHERE oid = to_regclass('reports')")).scalar()
            self.start = float(rows or 0)
            self.next_at = 2 * max(self.start, ANALYSE_FROM)
        if self.start + imported < self.next_at:
            return
        self.next_at = 2 * (self.start + imported)
        try:
            with self.session_factory.begin() as session:  # ANALYZE may run in one
                session.execute(text(f"ANALYZE {self.TABLES}"))
        except SQLAlchemyError as exc:  # the import goes on; autovacuum analyses later
            log.warning("ANALYZE during the import failed (%s); going on.",
                        getattr(exc, "orig", exc))


@dataclass
class ImportResult:
    submission: str
    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _csv_rows(stream: IO[bytes], name: str
              ) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    # Bytes that are not UTF-8 are carried as surrogates (a CSV field may span
    # lines, so the record they fall in is refused, by its line number, after parsing).
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape",
                            newline="")
    reader = csv.DictReader(text)
    unknown = set(reader.fieldnames or []) - CSV_FIELDS
    if unknown or "url" not in (reader.fieldnames or []):
        raise BadInput(
            f"{name}: the CSV header must name url and may name "
            f"{', '.join(sorted(CSV_FIELDS - {'url'}))}; unknown: {', '.join(sorted(unknown))}"
        )
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # a field longer than the csv module reads (128 KiB)
            yield reader.line_num + 1, None, f"the record cannot be read as CSV ({exc})"
            continue
        if None in row:
            yield reader.line_num, None, "more fields than the header names"
            continue
        cleaned = {k: v for k, v in row.items() if k and v not in (None, "")}
        try:
            "".join(cleaned.values()).encode("utf-8")
        except UnicodeEncodeError:
            yield reader.line_num, None, "not valid UTF-8"
            continue
        if "urgent" in cleaned:
            cleaned["urgent"] = cleaned["urgent"].strip().lower() in ("1", "true", "yes")
        yield reader.line_num, cleaned, None


def _json_lines(stream: IO[bytes]) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    for number, line in enumerate(stream, start=1):
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM):]
        if not line.strip():
            continue
        try:
            value = load_json(line)
        except BodyRefused as exc:
            yield number, None, str(exc).replace("the body", "the line", 1)
            continue
        if not isinstance(value, dict):
            yield number, None, "each line must be a JSON object"
            continue
        yield number, value, None


def _rows(stream: IO[bytes], name: str, is_csv: bool
          ) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, fields or None, error or None) per data line, read as they come.
    A line that is not UTF-8 or not JSON, or nests too deep, is refused by number
    (`schemas.guards`)."""
    return _csv_rows(stream, name) if is_csv else _json_lines(stream)


def import_file(
    path: Path,
    session_factory: sessionmaker[Session],
    *,
    clock: Clock,
    limits: IntakeSection,
    enqueuer: Enqueuer,
    source: str | None = None,
    settle: Settle | None = None,
) -> ImportResult:
    """Import `path` (CSV when it ends in .csv, JSON Lines otherwise)."""
    with path.open("rb") as stream:
        return import_stream(stream, session_factory, name=path.name,
                             is_csv=path.suffix.lower() == ".csv", clock=clock, limits=limits,
                             enqueuer=enqueuer, source=source, settle=settle)


def import_stream(
    stream: IO[bytes],
    session_factory: sessionmaker[Session],
    *,
    name: str,
    is_csv: bool,
    clock: Clock,
    limits: IntakeSection,
    enqueuer: Enqueuer,
    source: str | None = None,
    settle: Settle | None = None,
) -> ImportResult:
    """Steps, per batch of good lines (1, then 2, 4, 8... up to
    `limits.import_commit_every`, while the stream is still being read):
    1. validate each line as a report (`ReportIn`, the configured limits),
    2. store the batch and commit (given `settle`, settled whole in that
       transaction: normalised, deduplicated and on their cases as they are
       committed; no request waits on a large commit, and the first line goes alone),
    3. only then enqueue (`pipeline.stages.intake.take_in`).

    On PostgreSQL up to `IN_FLIGHT` full batches are in their transactions at once,
    each in a thread of its own, while this one reads the next lines."""
    result = ImportResult(submission=new_reference("S"))
    pending: list[ReportIn] = []
    batch = 1
    analyser = _Analyser(session_factory)
    with session_factory() as session:
        in_flight = IN_FLIGHT if is_postgresql(session) else 1
    running: deque[Future[Stored]] = deque()

    def done_oldest() -> None:
        stored = running.popleft().result()
        result.imported += len(stored.accepted)
        analyser.after(result.imported)

    def flush() -> None:
        if not pending:
            return
        # One at a time until the batches are full: the first lines' transactions, and
        # the workers tracing their cases, have the machine to themselves (measured:
        # with two in flight from the second batch, the first report was seen settled
        # about 20 ms later, 136 against 115 ms over five pairs).
        full = result.imported > 0 and len(pending) >= limits.import_commit_every
        while len(running) >= (in_flight if full else 1):
            done_oldest()
        running.append(pool.submit(
            take_in, session_factory, list(pending), clock=clock, limits=limits,
            enqueuer=enqueuer, source=source, actor="import",
            submission_ref=result.submission, settle=settle, whole=True))
        pending.clear()

    now = clock.now()
    # Leaving this block, on an error too, waits for the batches still running: a
    # failure is said once what was committed is known to be committed.
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="import") as pool:
        for number, fields, error in _rows(stream, name, is_csv):
            if error is None and fields is not None:
                fields.setdefault("channel", Channel.IMPORT.value)
                try:
                    item = ReportIn.model_validate(fields)
                    check_limits(item, limits, now)
                except ValidationError as exc:
                    error = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}"
                                      for e in exc.errors())
                except BadInput as exc:
                    error = str(exc)
                else:
                    pending.append(item)
            if error is not None:
                result.errors.append((number, error))
            if len(pending) >= batch:
                flush()
                batch = min(batch * 2, limits.import_commit_every)
        flush()
        while running:
            done_oldest()
    return result
