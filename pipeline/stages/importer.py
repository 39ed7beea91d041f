"""Bulk import of reports from JSON Lines or CSV, one report per line.

A bad line is reported with its line number and the rest are still imported; good
lines are committed in batches before they are enqueued.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.clock import Clock
from pipeline.core.config import IntakeSection
from pipeline.core.errors import BadInput
from pipeline.core.messaging import NORMALISE, Enqueuer
from pipeline.stages.intake import check_limits, new_reference, store_reports
from schemas.guards import BodyRefused, load_json
from schemas.intake import Channel, ReportIn

CSV_FIELDS = {"url", "channel", "claimed_category", "description", "reporter_contact",
              "received_at", "language", "urgent"}


@dataclass
class ImportResult:
    submission: str
    imported: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)


def _rows(path: Path) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, fields or None, error or None) per data line. A line that is not
    UTF-8 or not JSON, or nests too deep, is refused by number (`schemas.guards`)."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if path.suffix.lower() == ".csv":
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            # A CSV field may span lines: the file is read whole, and refused whole.
            bad_line = data.count(b"\n", 0, exc.start) + 1
            raise BadInput(f"{path.name}:{bad_line}: not valid UTF-8 (byte {exc.start}); "
                           "nothing was imported") from None
        reader = csv.DictReader(io.StringIO(text))
        unknown = set(reader.fieldnames or []) - CSV_FIELDS
        if unknown or "url" not in (reader.fieldnames or []):
            raise BadInput(
                f"{path.name}: the CSV header must name url and may name "
                f"{', '.join(sorted(CSV_FIELDS - {'url'}))}; unknown: {', '.join(sorted(unknown))}"
            )
        for row in reader:
            cleaned = {k: v for k, v in row.items() if k and v not in (None, "")}
            if None in row:
                yield reader.line_num, None, "more fields than the header names"
                continue
            if "urgent" in cleaned:
                cleaned["urgent"] = cleaned["urgent"].strip().lower() in ("1", "true", "yes")
            yield reader.line_num, cleaned, None
        return
    for number, line in enumerate(data.split(b"\n"), start=1):
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


def import_file(
    path: Path,
    session_factory: sessionmaker[Session],
    *,
    clock: Clock,
    limits: IntakeSection,
    enqueuer: Enqueuer,
    source: str | None = None,
) -> ImportResult:
    result = ImportResult(submission=new_reference("S"))
    pending: list[ReportIn] = []

    def flush() -> None:
        if not pending:
            return
        with session_factory() as session, session.begin():
            reports = store_reports(session, pending, clock=clock, limits=limits,
                                    source=source, actor="import",
                                    submission_ref=result.submission)
            ids = [r.id for r in reports]
        enqueuer.send(NORMALISE, ids)
        result.imported += len(ids)
        pending.clear()

    now = clock.now()

    for number, fields, error in _rows(path):
        if error is None and fields is not None:
            fields.setdefault("channel", Channel.IMPORT.value)
            try:
                item = ReportIn.model_validate(fields)
                check_limits(item, limits, now)
            except ValidationError as exc:
                error = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'line'}: {e['msg']}" for e in exc.errors()
                )
            except BadInput as exc:
                error = str(exc)
            else:
                pending.append(item)
        if error is not None:
            result.errors.append((number, error))
        if len(pending) >= limits.import_commit_every:
            flush()
    flush()
    return result
