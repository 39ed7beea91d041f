"""Stage 2: deduplication. One open case per canonical URL.

Steps of `dedupe_reports`:
1. lock the given reports that are still `normalised`,
2. group them by dedup key and look up the open case of each key,
3. open a case for each key that has none: INSERT ... ON CONFLICT DO NOTHING on the
   unique `open_key`, so two workers racing on one URL make exactly one case (the
   database is the truth; a Redis claim in front only saves work),
4. attach every report: the first of a new case becomes `new_case`, the others
   `duplicate`; counts on the cases move with them,
5. return the ids of the new cases, to be traced.
A URL whose earlier case was closed opens a new case linked to the old one (a
re-upload when the old one was removed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.orm import Session

from pipeline.clock import Clock
from pipeline.db import insert_ignoring_conflicts
from pipeline.intake import new_reference
from pipeline.lifecycle import transition
from pipeline.models import Case, Event, Report
from pipeline.normalise import lock_in_state
from pipeline.states import CaseState, ReportState

log = logging.getLogger(__name__)

_CASE_COLUMNS = [c.key for c in Case.__table__.columns if c.key != "id"]


def _open_cases(session: Session, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    if not keys:
        return {}
    rows = session.execute(
        select(Case.open_key, Case.id, Case.ref).where(Case.open_key.in_(list(keys)))
    )
    return {key: (case_id, ref) for key, case_id, ref in rows if key is not None}


def _previous_cases(session: Session, keys: Sequence[str]) -> dict[str, int]:
    if not keys:
        return {}
    rows = session.execute(
        select(Case.dedup_key, func.max(Case.id))
        .where(Case.dedup_key.in_(list(keys)), Case.open_key.is_(None))
        .group_by(Case.dedup_key)
    )
    return {key: case_id for key, case_id in rows}


def open_cases(
    session: Session, groups: dict[str, list[Report]], *, at: Any
) -> dict[str, tuple[int, str]]:
    """Insert one case per key (losing races quietly); return key -> (case id, ref) of the
    cases this call created."""
    previous = _previous_cases(session, list(groups))
    drafts: list[tuple[Case, Event]] = []
    for key, reports in groups.items():
        first = reports[0]
        case = Case(
            ref=new_reference("C"),
            canonical_url=first.canonical_url,
            dedup_key=key,
            host=first.host,
            host_unicode=first.host_unicode,
            registered_domain=first.registered_domain,
            url_kind=first.url_kind,
            claimed_category=first.claimed_category,
            source_channel=first.channel,
            urgent=any(r.urgent for r in reports),
            report_count=len(reports),
            previous_case_id=previous.get(key),
            priority=0,
            received_at=min(r.received_at for r in reports),
            state=None,
            audit_seq=0,
        )
        event = transition(None, case, CaseState.NORMALISED, at=at,
                           data={"previous_case_id": previous.get(key)})
        drafts.append((case, event))
    rows = [{col: getattr(case, col) for col in _CASE_COLUMNS} for case, _ in drafts]
    inserted = insert_ignoring_conflicts(
        session, Case, rows, conflict_columns=["open_key"], returning=[Case.id, Case.open_key]
    )
    won = {key: case_id for case_id, key in inserted}
    created: dict[str, tuple[int, str]] = {}
    for case, event in drafts:
        case_id = won.get(case.dedup_key)
        if case_id is None:
            continue
        event.case_id = case_id
        session.add(event)
        created[case.dedup_key] = (case_id, case.ref)
    return created


def dedupe_reports(session: Session, report_ids: Sequence[int], *, clock: Clock) -> list[int]:
    now = clock.now()
    reports = lock_in_state(session, Report, report_ids, ReportState.NORMALISED)
    if not reports:
        return []
    groups: dict[str, list[Report]] = {}
    for report in reports:
        groups.setdefault(report.dedup_key or "", []).append(report)

    existing = _open_cases(session, list(groups))
    created = open_cases(
        session, {k: v for k, v in groups.items() if k not in existing}, at=now
    )
    # Keys whose case another worker opened between our look-up and our insert.
    lost = [k for k in groups if k not in existing and k not in created]
    existing.update(_open_cases(session, lost))

    joined_counts: dict[int, int] = {}
    for key, members in groups.items():
        if key in created:
            case_id, case_ref = created[key]
            first, rest = members[0], members[1:]
            first.case_id = case_id
            transition(session, first, ReportState.NEW_CASE, at=now, data={"case": case_ref})
        else:
            case_id, case_ref = existing[key]
            rest = members
            joined_counts[case_id] = joined_counts.get(case_id, 0) + len(rest)
        for report in rest:
            report.case_id = case_id
            transition(session, report, ReportState.DUPLICATE, at=now, data={"case": case_ref})
    if joined_counts:
        cases: Any = Case.__table__
        session.execute(
            update(cases)
            .where(cases.c.id == bindparam("case_id"))
            .values(report_count=cases.c.report_count + bindparam("n")),
            [{"case_id": cid, "n": n} for cid, n in joined_counts.items()],
        )
    new_ids = [case_id for case_id, _ in created.values()]
    log.info("Deduplicated %d reports: %d new cases, %d joined open cases.",
             len(reports), len(new_ids), sum(joined_counts.values()))
    return new_ids

