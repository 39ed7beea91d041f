"""Retention: personal data and URLs purged a set time after their case closes.

Kinds of data (each with its own `retention.<kind>_days`):
- `reporter_contact`: `Report.reporter_contact`;
- `description`: `Report.description` (the reporter's own words);
- `trace_answers`: the raw DNS and RDAP answers of every trace (`traces.dns_raw`,
  `traces.rdap_raw`, and the shared RDAP answer rows in `trace_answers` once no
  remaining trace refers to them); the hosting summary on the case and the trace
  stays;
- `case_urls`: the reported and canonical URLs of the case and its reports, and the
  subject, body and quoted URLs of its notices. The URL's hash (`dedup_key`), host
  and registered domain stay, so a re-upload is still recognised.

The clock of a case starts when it ended (`removed_at`, else `closed_at`); a report
rejected before it ever had a case counts from `rejected_at`. A purge nulls the
fields (or writes `[purged]` where a value is required) and stamps
`<kind>_purged_at`; it never deletes a row or changes a state or a time, so every
statistic computed from states, times, countries and categories is unchanged.

A case under an active legal hold is skipped, whatever its age, until a supervisor
lifts the hold. Each purged case gets a `case_data_purged` audit event naming the
kinds purged (never the data), and each run a `retention_run` event with counts on
the `system:retention` stream. Audit events hold no personal data, so the hash
chains stay verifiable.

Steps of `purge`:
1. find the cases (and case-less rejected reports) due for each kind,
2. in batches: lock the cases, drop those now held, purge each kind, add the events,
   commit,
3. record the run.
`plan` does step 1 only and says what `purge` would remove (the dry run).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Table, and_, exists, func, select, update
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.config import RetentionSection
from pipeline.core.errors import BadInput, NotFound
from pipeline.domain import access
from pipeline.store import audit
from pipeline.store.db import Base
from pipeline.store.models import Case, Notice, Report
from pipeline.store.ops_models import LegalHold
from pipeline.store.states import CaseState, ReportState

log = logging.getLogger(__name__)
T = TypeVar("T")

KINDS = ("reporter_contact", "description", "trace_answers", "case_urls")
PURGED = "[purged]"
ACTOR = "retention"
STREAM = "system:retention"
TERMINAL = (CaseState.REMOVED.value, CaseState.CLOSED.value)


@dataclass
class PurgePlan:
    """What a purge removes (or removed): per kind, the cases and reports concerned."""

    cases: dict[str, list[int]] = field(default_factory=dict)  # kind -> case ids
    reports: dict[str, int] = field(default_factory=dict)  # kind -> reports touched
    caseless: dict[str, list[int]] = field(default_factory=dict)  # kind -> report ids
    held: list[int] = field(default_factory=list)  # due cases skipped for a legal hold

    def summary(self) -> dict[str, Any]:
        return {
            kind: {"cases": len(self.cases.get(kind, [])),
                   "reports": self.reports.get(kind, 0)
                   + len(self.caseless.get(kind, []))}
            for kind in KINDS
        } | {"held_cases": len(self.held)}

    @property
    def empty(self) -> bool:
        return not any(self.cases.values()) and not any(self.caseless.values())


def _traces_table() -> Table | None:
    """The traces table with its raw answer columns, if it is there."""
    table = Base.metadata.tables.get("traces")
    if table is None or not {"dns_raw", "rdap_raw", "case_id"} <= set(table.c.keys()):
        return None
    return table


def _ended_at() -> Any:
    return func.coalesce(Case.removed_at, Case.closed_at)


def active_hold_exists() -> Any:
    return exists().where(LegalHold.case_id == Case.id, LegalHold.lifted_at.is_(None))


def _remaining(kind: str) -> Any:
    """SQL condition: the case still holds data of this kind."""
    if kind == "reporter_contact":
        return exists().where(Report.case_id == Case.id, Report.reporter_contact.is_not(None))
    if kind == "description":
        return exists().where(Report.case_id == Case.id, Report.description.is_not(None))
    if kind == "trace_answers":
        traces = _traces_table()
        if traces is None:
            return None
        return and_(Case.trace_answers_purged_at.is_(None),
                    exists().where(traces.c.case_id == Case.id))
    return Case.url_purged_at.is_(None)


def _report_remaining(kind: str) -> Any:
    if kind == "reporter_contact":
        return Report.reporter_contact.is_not(None)
    if kind == "description":
        return Report.description.is_not(None)
    if kind == "case_urls":
        return Report.url_purged_at.is_(None)
    return None


SETTING = {"reporter_contact": "reporter_contact_days", "description": "description_days",
           "trace_answers": "trace_answers_days", "case_urls": "closed_case_urls_days"}


def days_for(section: RetentionSection, kind: str) -> int | None:
    """Days after closing that `kind` is kept (None: for ever)."""
    days: int | None = getattr(section, SETTING[kind])
    return days


def plan(session: Session, section: RetentionSection, *, now: datetime,
         limit: int | None = None) -> PurgePlan:
    """What a purge at `now` would remove (nothing is changed)."""
    result = PurgePlan()
    held: set[int] = set()
    for kind in KINDS:
        days = days_for(section, kind)
        remaining = _remaining(kind)
        if days is None or remaining is None:
            continue
        cutoff = now - timedelta(days=days)
        due = and_(Case.state.in_(TERMINAL), _ended_at() <= cutoff, remaining)
        query = select(Case.id).where(due, ~active_hold_exists()).order_by(Case.id)
        if limit:
            query = query.limit(limit)
        ids = list(session.execute(query).scalars())
        result.cases[kind] = ids
        held.update(session.execute(select(Case.id).where(due, active_hold_exists())).scalars())
        report_condition = _report_remaining(kind)
        if report_condition is not None:
            if ids:
                result.reports[kind] = sum(
                    session.execute(select(func.count()).select_from(Report).where(
                        Report.case_id.in_(chunk), report_condition)).scalar_one()
                    for chunk in _chunks(ids, 1_000)
                )
            caseless = select(Report.id).where(
                Report.case_id.is_(None), Report.state == ReportState.REJECTED.value,
                Report.rejected_at <= cutoff, report_condition,
            ).order_by(Report.id)
            if limit:
                caseless = caseless.limit(limit)
            result.caseless[kind] = list(session.execute(caseless).scalars())
    result.held = sorted(held)
    return result


def _chunks(ids: Sequence[T], size: int) -> list[list[T]]:
    return [list(ids[i:i + size]) for i in range(0, len(ids), size)]


def _scrub(value: Any, urls: set[str]) -> Any:
    """`value` with every string that quotes one of `urls` replaced by [purged]."""
    if isinstance(value, str):
        return PURGED if any(url and url in value for url in urls) else value
    if isinstance(value, list):
        return [_scrub(v, urls) for v in value]
    if isinstance(value, dict):
        return {k: _scrub(v, urls) for k, v in value.items()}
    return value


def _purge_case_batch(session: Session, work: dict[int, list[str]], now: datetime
                      ) -> tuple[int, set[str]]:
    """Purge the given kinds of the given cases; return how many cases were purged and
    the keys of the shared RDAP answers their traces referred to."""
    cases = session.execute(
        select(Case).where(Case.id.in_(list(work))).order_by(Case.id).with_for_update()
    ).scalars().all()
    held = set(session.execute(
        select(LegalHold.case_id).where(LegalHold.case_id.in_(list(work)),
                                        LegalHold.lifted_at.is_(None))
    ).scalars())
    done = 0
    for case in cases:
        if case.id in held or case.state not in TERMINAL:
            continue
        kinds = work[case.id]
        touched = 0
        for kind in kinds:
            touched += _purge_case_kind(session, case, kind, now)
        session.add(audit.build_event(
            case, actor=ACTOR, action="case_data_purged", at=now,
            data={"kinds": sorted(kinds), "reports": touched}, case_id=case.id,
        ))
        log.info("Case %s: purged %s after retention.", case.ref, ", ".join(sorted(kinds)),
                 extra={"case_id": case.id})
        done += 1
    return done, session.info.pop(_ANSWER_KEYS, set())


_ANSWER_KEYS = "hotline_retention_answer_keys"


def _empty(column: Any) -> Any:
    """The empty value of a JSON column ({} or [], from its default)."""
    default = column.default
    if default is not None and default.is_callable:
        return default.arg(None)
    return {}


def _answer_keys(raw: Any) -> set[str]:
    """Keys of `trace_answers` rows a trace's `rdap_raw` refers to (its "answer" fields)."""
    found: set[str] = set()
    if isinstance(raw, dict):
        for key, value in raw.items():
            if key == "answer" and isinstance(value, str):
                found.add(value)
            else:
                found |= _answer_keys(value)
    elif isinstance(raw, list):
        for value in raw:
            found |= _answer_keys(value)
    return found


def _drop_orphan_answers(session: Session, candidates: set[str], cutoff: datetime) -> int:
    """Delete the shared RDAP answers no trace refers to any more (received before
    `cutoff`, so an answer a tracer is just now reusing is left alone)."""
    answers = Base.metadata.tables.get("trace_answers")
    traces = _traces_table()
    if answers is None or traces is None or not candidates or "key" not in answers.c:
        return 0
    still_used: set[str] = set()
    for raw in session.execute(select(traces.c.rdap_raw)
                               .execution_options(yield_per=2_000)).scalars():
        still_used |= _answer_keys(raw) & candidates
    orphans = sorted(candidates - still_used)
    deleted = 0
    for chunk in _chunks(orphans, 500):
        condition: Any = answers.c.key.in_(chunk)
        if "received_at" in answers.c:
            condition = and_(condition, answers.c.received_at < cutoff)
        deleted += _updated(session, answers.delete().where(condition))
    return deleted


def _updated(session: Session, statement: Any) -> int:
    result = session.execute(statement.execution_options(synchronize_session=False))
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _purge_case_kind(session: Session, case: Case, kind: str, now: datetime) -> int:
    if kind == "reporter_contact":
        return _updated(session, update(Report)
                        .where(Report.case_id == case.id, Report.reporter_contact.is_not(None))
                        .values(reporter_contact=None, contact_purged_at=now))
    if kind == "description":
        return _updated(session, update(Report)
                        .where(Report.case_id == case.id, Report.description.is_not(None))
                        .values(description=None, description_purged_at=now))
    if kind == "trace_answers":
        traces = _traces_table()
        if traces is not None:
            keys = session.info.setdefault(_ANSWER_KEYS, set())
            for raw in session.execute(select(traces.c.rdap_raw)
                                       .where(traces.c.case_id == case.id)).scalars():
                keys.update(_answer_keys(raw))
            # A Core UPDATE: the trace stays immutable to the ORM; only retention empties
            # its raw answers.
            session.execute(update(traces).where(traces.c.case_id == case.id)
                            .values(dns_raw=_empty(traces.c.dns_raw),
                                    rdap_raw=_empty(traces.c.rdap_raw)))
        case.trace_answers_purged_at = now
        return 0
    # case_urls
    urls = {case.canonical_url}
    urls.update(session.execute(
        select(Report.url).where(Report.case_id == case.id)).scalars())
    urls.update(u for u in session.execute(
        select(Report.canonical_url).where(Report.case_id == case.id)).scalars() if u)
    for notice in session.execute(
        select(Notice).where(Notice.case_id == case.id)
    ).scalars():
        notice.subject = None
        notice.body = None
        notice.payload = _scrub(notice.payload or {}, urls)
        if notice.address and notice.address in urls:
            notice.address = PURGED
    case.canonical_url = PURGED
    case.url_purged_at = now
    return _updated(session, update(Report)
                    .where(Report.case_id == case.id, Report.url_purged_at.is_(None))
                    .values(url=PURGED, canonical_url=None, url_userinfo=None,
                            url_purged_at=now))


_REPORT_PURGE_VALUES: dict[str, dict[str, Any]] = {
    "reporter_contact": {"reporter_contact": None},
    "description": {"description": None},
    "case_urls": {"url": PURGED, "canonical_url": None, "url_userinfo": None},
}
_REPORT_MARKERS = {"reporter_contact": "contact_purged_at",
                   "description": "description_purged_at", "case_urls": "url_purged_at"}


def _purge_caseless_batch(session: Session, work: dict[int, list[str]], now: datetime) -> int:
    reports = session.execute(
        select(Report).where(Report.id.in_(list(work)), Report.case_id.is_(None))
        .order_by(Report.id).with_for_update()
    ).scalars().all()
    for report in reports:
        kinds = work[report.id]
        for kind in kinds:
            for column, value in _REPORT_PURGE_VALUES[kind].items():
                setattr(report, column, value)
            setattr(report, _REPORT_MARKERS[kind], now)
        session.add(audit.build_event(
            report, actor=ACTOR, action="report_data_purged", at=now,
            data={"kinds": sorted(kinds)}, report_id=report.id,
        ))
        log.info("Report %s: purged %s after retention.", report.ref, ", ".join(sorted(kinds)),
                 extra={"report_id": report.id})
    return len(reports)


def purge(session_factory: sessionmaker[Session], section: RetentionSection, *,
          now: datetime) -> PurgePlan:
    """Purge everything due at `now`, one committed batch at a time; return what was
    purged."""
    with session_factory() as session:
        todo = plan(session, section, now=now)
    by_case: dict[int, list[str]] = defaultdict(list)
    for kind, ids in todo.cases.items():
        for case_id in ids:
            by_case[case_id].append(kind)
    by_report: dict[int, list[str]] = defaultdict(list)
    for kind, ids in todo.caseless.items():
        for report_id in ids:
            by_report[report_id].append(kind)
    cases_done = reports_done = answers_done = 0
    answer_keys: set[str] = set()
    for chunk in _chunks(sorted(by_case), section.batch_size):
        with session_factory.begin() as session:
            done, keys = _purge_case_batch(session, {i: by_case[i] for i in chunk}, now)
            cases_done += done
            answer_keys |= keys
    days = days_for(section, "trace_answers")
    if answer_keys and days is not None:
        with session_factory.begin() as session:
            answers_done = _drop_orphan_answers(session, answer_keys,
                                                now - timedelta(days=days))
    for chunk in _chunks(sorted(by_report), section.batch_size):
        with session_factory.begin() as session:
            reports_done += _purge_caseless_batch(session, {i: by_report[i] for i in chunk}, now)
    if cases_done or reports_done:
        with session_factory.begin() as session:
            audit.record(session, STREAM, actor=ACTOR, action="retention_run", at=now,
                         data={"cases": cases_done, "caseless_reports": reports_done,
                               "rdap_answers": answers_done, "summary": todo.summary()})
        log.info("Retention purged data of %d cases and %d case-less reports; %d due cases "
                 "are under a legal hold.", cases_done, reports_done, len(todo.held))
    return todo


# --- legal holds ---------------------------------------------------------------------


def _case_by_ref(session: Session, ref: str) -> Case:
    case = session.execute(
        select(Case).where(Case.ref == ref).with_for_update()
    ).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case with reference {ref}")
    return case


def active_holds(session: Session, case_id: int) -> list[LegalHold]:
    return list(session.execute(
        select(LegalHold).where(LegalHold.case_id == case_id, LegalHold.lifted_at.is_(None))
        .order_by(LegalHold.id)
    ).scalars())


def set_legal_hold(session: Session, case_ref: str, *, principal: access.Principal,
                   requested_by: str, reason: str, at: datetime) -> LegalHold:
    """A supervisor holds a case's data at the police's request (audited). Needs the
    permission `case.legal_hold` (`PermissionDenied` otherwise)."""
    access.require(principal, "case.legal_hold", what="set a legal hold; a supervisor sets it")
    if not reason.strip() or not requested_by.strip():
        raise BadInput("a legal hold needs the requester (the police unit) and a reason")
    case = _case_by_ref(session, case_ref)
    hold = LegalHold(case_id=case.id, requested_by=requested_by.strip()[:200],
                     reason=reason.strip(), set_by=principal.name, set_at=at)
    session.add(hold)
    session.flush()
    session.add(audit.build_event(case, actor=principal.actor, action="legal_hold_set", at=at,
                                  data={"hold": hold.id}, case_id=case.id))
    log.info("Case %s put under legal hold %d by %s.", case.ref, hold.id, principal.name,
             extra={"case_id": case.id})
    return hold


def lift_legal_hold(session: Session, case_ref: str, *, principal: access.Principal,
                    reason: str, at: datetime) -> list[LegalHold]:
    """A supervisor lifts every active hold of the case (audited); purge resumes. Needs
    the permission `case.legal_hold`."""
    access.require(principal, "case.legal_hold", what="lift a legal hold; a supervisor lifts it")
    if not reason.strip():
        raise BadInput("lifting a legal hold needs a reason")
    case = _case_by_ref(session, case_ref)
    holds = active_holds(session, case.id)
    if not holds:
        raise BadInput(f"case {case_ref} is not under a legal hold")
    for hold in holds:
        hold.lifted_at, hold.lifted_by, hold.lift_reason = at, principal.name, reason.strip()
        session.add(audit.build_event(case, actor=principal.actor, action="legal_hold_lifted",
                                      at=at, data={"hold": hold.id}, case_id=case.id))
    log.info("Case %s: legal hold lifted by %s.", case.ref, principal.name,
             extra={"case_id": case.id})
    return holds


def is_held(session: Session, case_id: int) -> bool:
    return bool(session.execute(
        select(LegalHold.id).where(LegalHold.case_id == case_id, LegalHold.lifted_at.is_(None))
        .limit(1)
    ).first())



def scheduled_purge(rt: Any) -> dict[str, Any] | None:
    """The scheduler's job: purge what is due, if retention is enabled."""
    if not rt.settings.retention.enabled:
        return None
    return purge(rt.session_factory, rt.settings.retention, now=rt.clock.now()).summary()
