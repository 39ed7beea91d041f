"""The evidence bundle of a case for a police referral.

`hotline case evidence CASE` writes a folder (or a zip) holding:
- `case.json`: the case as recorded (hosting summary, assessment outcome, times) and
  its legal holds;
- `reports.json`: every report of the case (the reporter's contact only when
  `routing.police_notices_include_reporter` lets the police have it);
- `timeline.json`: every audit event of the case and its reports, in time order,
  with their hashes, and whether each hash chain verifies;
- `traces.json`: every trace with its raw DNS and RDAP answers as received (the
  RDAP JSON from `trace_answers`, and the rows of any table hanging off a trace);
- `assessments.json`: every analyst's assessment;
- `notices.json`: every notice (sent or not) with its text, destination and times;
- `manifest.json`: SHA-256 and size of each file above, and `SHA256SUMS` (the same
  digests plus the manifest's, for `sha256sum -c`), so the police can show that
  nothing was altered after the bundle was made.

Steps of `build_bundle`: load the case, collect each file as canonical JSON
(sorted keys, UTF-8), verify the case's chains, digest, write the manifest.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Table, or_, select
from sqlalchemy.orm import Session

from pipeline.core.config import Settings
from pipeline.core.errors import NotFound
from pipeline.stages.retention import _answer_keys
from pipeline.store import audit
from pipeline.store.audit import event_hash
from pipeline.store.db import Base
from pipeline.store.models import GENESIS_HASH, Case, Event, Notice, Report
from pipeline.store.ops_models import LegalHold

FORMAT_VERSION = 1
# Tables dumped besides the case, its reports, events and notices (when they exist).
CASE_TABLES = ("traces", "assessments")
WITHHELD = "[withheld: reporter identity is not shared]"


@dataclass
class Bundle:
    case_ref: str
    files: dict[str, bytes]

    @property
    def manifest(self) -> dict[str, Any]:
        manifest: dict[str, Any] = json.loads(self.files["manifest.json"])
        return manifest


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return value


def _row(table: Table, row: Any, *, drop: frozenset[str] = frozenset()) -> dict[str, Any]:
    return {c.name: _plain(row._mapping[c]) for c in table.columns if c.name not in drop}


def canonical_json(value: Any) -> bytes:
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False, default=str)
            + "\n").encode()


def _rows(session: Session, table: Table, condition: Any,
          drop: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    order = [table.c.id] if "id" in table.c else []
    return [_row(table, r, drop=drop)
            for r in session.execute(select(table).where(condition).order_by(*order))]


def verify_streams(events: list[Event]) -> dict[str, str]:
    """Per stream: "intact" or what is wrong (the bundle's events are whole streams)."""
    result: dict[str, str] = {}
    by_stream: dict[str, list[Event]] = {}
    for ev in events:
        by_stream.setdefault(ev.stream, []).append(ev)
    for stream, evs in by_stream.items():
        prev, seq, status = GENESIS_HASH, 1, "intact"
        for ev in sorted(evs, key=lambda e: e.seq):
            digest = event_hash(ev.prev_hash, ev.stream, ev.seq, ev.at, ev.actor, ev.action,
                                ev.from_state, ev.to_state, ev.data or {})
            if ev.seq != seq or ev.prev_hash != prev or digest != ev.hash:
                status = f"broken at seq {ev.seq}"
                break
            prev, seq = ev.hash, seq + 1
        result[stream] = status
    return result


def _children(session: Session, parent: Table, parent_ids: list[Any]) -> dict[str, list[Any]]:
    """Rows of tables that refer to `parent` by a foreign key (e.g. trace answers)."""
    found: dict[str, list[Any]] = {}
    if not parent_ids:
        return found
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table is parent and table is not parent:
                found[table.name] = _rows(session, table, fk.parent.in_(parent_ids))
    return found


def _shared_answers(session: Session, traces: list[dict[str, Any]]) -> dict[str, Any]:
    """The RDAP answers (kept once, by content hash, in `trace_answers`) the traces
    refer to, so the bundle holds every answer as received."""

    answers = Base.metadata.tables.get("trace_answers")
    keys = set().union(*(_answer_keys(t.get("rdap_raw")) for t in traces)) if traces else set()
    if answers is None or "key" not in answers.c or not keys:
        return {}
    return {"trace_answers": _rows(session, answers, answers.c.key.in_(sorted(keys)))}


def police_receive_contact(settings: Settings) -> bool:
    """The police may have the reporter's contact (the setting notices to them obey)."""
    routing = getattr(settings, "routing", None)
    return bool(getattr(routing, "police_notices_include_reporter", False))


def build_bundle(session: Session, case_ref: str, *, settings: Settings,
                 now: datetime) -> Bundle:
    case = session.execute(select(Case).where(Case.ref == case_ref)).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case with reference {case_ref}")
    cases_table: Table = Case.__table__  # type: ignore[assignment]
    files: dict[str, bytes] = {}
    case_row = _rows(session, cases_table, cases_table.c.id == case.id)[0]
    holds_table: Table = LegalHold.__table__  # type: ignore[assignment]
    files["case.json"] = canonical_json({
        "case": case_row,
        "legal_holds": _rows(session, holds_table, holds_table.c.case_id == case.id),
    })
    reports_table: Table = Report.__table__  # type: ignore[assignment]
    reports = _rows(session, reports_table, reports_table.c.case_id == case.id)
    if not police_receive_contact(settings):
        for report in reports:
            if report.get("reporter_contact"):
                report["reporter_contact"] = WITHHELD
    files["reports.json"] = canonical_json(reports)
    streams = [f"case:{case.ref}", *(f"report:{r['ref']}" for r in reports)]
    events = list(session.execute(
        select(Event).where(or_(Event.stream.in_(streams), Event.case_id == case.id))
        .order_by(Event.at, Event.stream, Event.seq)).scalars())
    events_table: Table = Event.__table__  # type: ignore[assignment]
    event_rows = _rows(session, events_table, events_table.c.id.in_([e.id for e in events]))
    event_rows.sort(key=lambda e: (e["at"], e["stream"], e["seq"]))
    # Streams that are only partly in the bundle (a user's stream) are not judged.
    whole = [e for e in events if e.stream.startswith(("case:", "report:"))]
    files["timeline.json"] = canonical_json({"events": event_rows,
                                             "chains": verify_streams(whole)})
    for name in CASE_TABLES:
        table = Base.metadata.tables.get(name)
        if table is None or "case_id" not in table.c:
            continue
        rows = _rows(session, table, table.c.case_id == case.id)
        content: dict[str, Any] = {name: rows}
        if "id" in table.c:
            content.update(_children(session, table, [r["id"] for r in rows]))
        if name == "traces":
            content.update(_shared_answers(session, rows))
        files[f"{name}.json"] = canonical_json(content)
    notices_table: Table = Notice.__table__  # type: ignore[assignment]
    files["notices.json"] = canonical_json(_rows(session, notices_table,
                                        notices_table.c.case_id == case.id,
                                        drop=frozenset({"lease_owner", "lease_until"})))
    return seal(files, hotline=settings.app.name, case_ref=case.ref, now=now)


def seal(files: dict[str, bytes], *, hotline: str, case_ref: str, now: datetime) -> Bundle:
    """Add `manifest.json` (SHA-256 and size of each file) and `SHA256SUMS` (the same
    digests plus the manifest's, for `sha256sum -c`) to a bundle's files. Shared by the
    URL case's bundle and the helpline case's (`pipeline.stages.helpline`)."""
    manifest = {
        "format": FORMAT_VERSION,
        "hotline": hotline,
        "case": case_ref,
        "created_at": now.isoformat(),
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
                  for name, data in sorted(files.items())},
    }
    files["manifest.json"] = canonical_json(manifest)
    sums = {name: hashlib.sha256(data).hexdigest() for name, data in files.items()}
    files["SHA256SUMS"] = "".join(f"{digest}  {name}\n"
                                  for name, digest in sorted(sums.items())).encode()
    return Bundle(case_ref, files)


def write_bundle(bundle: Bundle, out: Path, *, as_zip: bool = False) -> Path:
    """Write the bundle as `out/<case>-evidence/` or `out/<case>-evidence.zip`."""
    out.mkdir(parents=True, exist_ok=True)
    name = f"{bundle.case_ref}-evidence"
    if as_zip:
        path = out / f"{name}.zip"
        with zipfile.ZipFile(path, "x", compression=zipfile.ZIP_DEFLATED) as archive:
            for filename, data in sorted(bundle.files.items()):
                archive.writestr(f"{name}/{filename}", data)
        return path
    folder = out / name
    folder.mkdir(exist_ok=False)
    for filename, data in bundle.files.items():
        (folder / filename).write_bytes(data)
    return folder


def verify_folder(folder: Path) -> list[str]:
    """Files whose digest no longer matches SHA256SUMS (empty: unaltered)."""
    problems = []
    for line in (folder / "SHA256SUMS").read_text().splitlines():
        digest, _, name = line.partition("  ")
        path = folder / name
        if not path.is_file():
            problems.append(f"{name}: missing")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"{name}: altered")
    return problems


def export_evidence(session_factory: Any, case_ref: str, out: Path, *, settings: Settings,
                    now: datetime, actor: str, as_zip: bool = False) -> tuple[Path, Bundle]:
    """Build and write the bundle, and audit that it was made (with its manifest's digest)."""
    with session_factory.begin() as session:
        bundle = build_bundle(session, case_ref, settings=settings, now=now)
        path = write_bundle(bundle, out, as_zip=as_zip)
        case = session.execute(
            select(Case).where(Case.ref == case_ref).with_for_update()).scalar_one()
        session.add(audit.build_event(
            case, actor=actor, action="evidence_exported", at=now, case_id=case.id,
            data={"manifest_sha256": hashlib.sha256(bundle.files["manifest.json"]).hexdigest(),
                  "files": len(bundle.files)},
        ))
    return path, bundle
