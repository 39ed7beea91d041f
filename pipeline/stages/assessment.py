"""The analysts' work: the queue, claims with a lease, assessments, four eyes,
same-site work, and the welfare counts.

Claims (`claim_next`):
1. check the role; only people claim;
2. `any`: a second assessment waiting for this analyst (not one they made the first
   assessment of) when its priority is at least that of the best new case; else
3. the best new case: highest priority, then oldest (then lowest id). On PostgreSQL
   one statement takes it with `ORDER BY priority DESC, received_at, id LIMIT 1 FOR
   UPDATE SKIP LOCKED` on `ix_cases_claim` (a partial index of exactly that order
   over the cases awaiting assessment: the first free entry is the answer) and writes
   the lease in the same statement; concurrent claimers skip each other's rows
   instead of waiting. One UPDATE moves the case, its audit event goes in with the
   flush: no ORM load or unit of work on this path;
4. write the lease (`case_leases`, one row per case: INSERT ... ON CONFLICT DO UPDATE
   only over an expired lease, so even a stale read can never hand a case held by one
   analyst to another) and move a new case to `in_assessment`.

Assessments (`assess`), by the case's state:
- `in_assessment` (the caller's lease): a four-eyes rule that matches sends the case to
  `awaiting_second_assessment`, otherwise the decision is final;
- `awaiting_second_assessment` (the caller's lease, a different analyst): the same
  legality and category finalise the case, a different one sends it to
  `awaiting_supervisor`;
- `awaiting_supervisor`: a supervisor who made neither assessment decides.
A final decision copies legality and category onto the case; "not illegal", "out of
remit" and "content not available" close it, the rest wait for routing: the caller
sends the ids in `AssessmentDecision.route` to the route stage after the commit.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, bindparam, exists, func, or_, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from pipeline.core.clock import as_utc
from pipeline.core.config import AssessmentSection, FourEyesRule
from pipeline.core.errors import BadInput, NotFound, PermissionDenied
from pipeline.domain.access import Principal, can, require
from pipeline.store.assessment_models import Assessment, CaseLease
from pipeline.store.audit import build_event, steps
from pipeline.store.db import is_postgresql
from pipeline.store.lifecycle import transition
from pipeline.store.models import Case, Event, Notice, Report, User
from pipeline.store.states import CASE_STATE_TIME_COLUMNS, CaseState
from pipeline.store.takedown_models import stage_times
from pipeline.store.trace_models import Trace
from schemas.assessment import (
    CLOSING_LEGALITIES,
    AssessmentIn,
    AssessmentOut,
    CaseView,
    HistoryEntry,
    LeaseOut,
    NoticeView,
    QueueItem,
    QueueOut,
    RelatedCase,
    ReportView,
    TakedownStage,
    TraceView,
    Welfare,
)

log = logging.getLogger(__name__)

C = CaseState
QUEUE_STATES = (C.AWAITING_ASSESSMENT, C.AWAITING_SECOND_ASSESSMENT, C.AWAITING_SUPERVISOR)


class Conflict(BadInput):
    """The case is not in a state that allows this (already decided, claimed...)."""


class CaseDenied(PermissionDenied):
    """Denied on one case: the audit record names it."""

    def __init__(self, message: str, case_id: int):
        super().__init__(message)
        self.case_id = case_id


# --- small helpers -------------------------------------------------------------------


def person(principal: Principal) -> int:
    if principal.user_id is None:
        raise PermissionDenied(f"a {principal.role} token cannot do an analyst's work")
    return principal.user_id


def find_case(session: Session, key: str | int, *, lock: bool = False) -> Case:
    """A case by id (digits) or reference; locked for update when asked."""
    text = str(key).strip()
    column = Case.id if text.isdigit() else Case.ref
    value: Any = int(text) if text.isdigit() else text
    query = select(Case).where(column == value)
    if lock and is_postgresql(session):
        query = query.with_for_update()
    case = session.execute(query).scalar_one_or_none()
    if case is None:
        raise NotFound(f"no case {text}")
    return case


def note(session: Session, case: Case, *, actor: str, action: str, at: datetime,
         data: dict[str, Any] | None = None) -> None:
    """A non-state event in the case's own hash chain."""
    session.add(build_event(case, actor=actor, action=action, at=at, data=data,
                            case_id=case.id))


def _user_names(session: Session, ids: set[int]) -> dict[int, str]:
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all())


def lease_out(lease: CaseLease, case: Case, holder: str) -> LeaseOut:
    return LeaseOut(case_id=case.id, case_ref=case.ref, kind=lease.kind, holder=holder,
                    claimed_at=lease.claimed_at, expires_at=lease.expires_at)


# --- leases and claims ---------------------------------------------------------------


_LEASE_COLUMNS = ("case_id", "user_id", "kind", "claimed_at", "expires_at", "site_batch")


@lru_cache(maxsize=2)
def _lease_upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT (case_id) DO UPDATE only over an expired lease or the
    caller's own, RETURNING the case id. Built once per dialect (claims are hot)."""
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(CaseLease).values({c: bindparam(c) for c in _LEASE_COLUMNS})
    return statement.on_conflict_do_update(
        index_elements=["case_id"],
        set_={c: statement.excluded[c] for c in _LEASE_COLUMNS if c != "case_id"},
        where=or_(CaseLease.expires_at <= bindparam("now"),
                  CaseLease.user_id == statement.excluded.user_id),
    ).returning(CaseLease.case_id)


def _take_lease(session: Session, case_id: int, user_id: int, kind: str, *, now: datetime,
                expires_at: datetime, site_batch: str | None = None) -> bool:
    """Write the lease unless someone else holds a live one. True if taken."""
    statement = _lease_upsert(session.get_bind().dialect.name)
    values = {"case_id": case_id, "user_id": user_id, "kind": kind, "claimed_at": now,
              "expires_at": expires_at, "site_batch": site_batch, "now": now}
    return session.execute(statement, values).first() is not None


# --- the first-claim hot path on PostgreSQL ---------------------------------------------
#
# One statement finds the best free case awaiting a first assessment, locks it and
# writes the lease; a second one moves the case to `in_assessment`; the audit event
# goes in with the session's flush (`pipeline.store.audit`, one plain INSERT). The queue is
# read through `ix_cases_claim` (migration 0009): a partial index on (priority DESC,
# received_at, id) WHERE state = 'awaiting_assessment', the exact order of the claim,
# so `LIMIT 1 FOR UPDATE SKIP LOCKED` stops at the first free row of the index.

_SITE_COLUMNS = {"host": Case.host, "registered_domain": Case.registered_domain}


@lru_cache(maxsize=4)
def _claim_first_pg(site_column: str | None) -> Any:
    """The lock-and-lease statement; `site_column` limits it to one host or domain."""
    if site_column is not None and site_column not in _SITE_COLUMNS:
        raise ValueError(f"no site column {site_column!r}")
    site = f"AND {site_column} = :site " if site_column else ""
    return text(f"""
        WITH c AS (
          SELECT id, ref, dedup_key, audit_seq, audit_hash FROM cases
          WHERE state = 'awaiting_assessment' AND id <> ALL(CAST(:tried AS BIGINT[])) {site}
          ORDER BY priority DESC, received_at, id
          LIMIT 1 FOR UPDATE SKIP LOCKED),
        lease AS (
          INSERT INTO case_leases AS cl (case_id, user_id, kind, claimed_at, expires_at,
                                         site_batch)
          SELECT id, CAST(:user_id AS BIGINT), 'first', CAST(:now AS TIMESTAMPTZ),
                 CAST(:expires AS TIMESTAMPTZ), CAST(:site_batch AS VARCHAR) FROM c
          ON CONFLICT (case_id) DO UPDATE SET user_id = excluded.user_id,
            kind = excluded.kind, claimed_at = excluded.claimed_at,
            expires_at = excluded.expires_at, site_batch = excluded.site_batch
          WHERE cl.expires_at <= excluded.claimed_at OR cl.user_id = excluded.user_id
          RETURNING case_id)
        SELECT c.id, c.ref, c.dedup_key, c.audit_seq, c.audit_hash,
               EXISTS (SELECT 1 FROM lease) AS taken,
               CASE WHEN :relax THEN set_config('synchronous_commit', 'off', true) END
        FROM c""")


_CLAIMED_COLUMN = CASE_STATE_TIME_COLUMNS[C.IN_ASSESSMENT]
_MARK_CLAIMED_PG = text(f"""
    UPDATE cases SET state = :state, state_changed_at = :at, open_key = :open_key,
      {_CLAIMED_COLUMN} = COALESCE({_CLAIMED_COLUMN}, :at), audit_seq = :audit_seq,
      audit_hash = :audit_hash
    WHERE id = :id AND state = 'awaiting_assessment'""")


def _claim_first_postgresql(
    session: Session, principal: Principal, *, now: datetime, expires: datetime,
    site: tuple[str, str] | None = None, site_batch: str | None = None,
    relax: bool = False,
) -> tuple[Case, CaseLease] | None:
    user_id = person(principal)
    statement = _claim_first_pg(site[0] if site else None)
    tried: list[int] = []
    while True:
        params: dict[str, Any] = {"tried": tried, "user_id": user_id, "now": now,
                                  "expires": expires, "site_batch": site_batch,
                                  "relax": relax}
        if site:
            params["site"] = site[1]
        row = session.execute(statement, params).first()
        if row is None:
            return None
        if not row.taken:
            tried.append(row.id)  # a stale lease of someone else: the expiry job's
            continue
        # The state change of `pipeline.store.lifecycle` on a detached copy of the row (the
        # only columns it touches), written back in one UPDATE; the event it makes goes
        # in with the session's next flush, counted by the metrics like any other.
        case = Case(id=row.id, ref=row.ref, dedup_key=row.dedup_key,
                    state=C.AWAITING_ASSESSMENT.value, audit_seq=row.audit_seq,
                    audit_hash=row.audit_hash)
        setattr(case, _CLAIMED_COLUMN, now)
        data: dict[str, Any] = {"expires_at": expires.isoformat()}
        if site_batch:
            data["site_batch"] = site_batch
        event = transition(None, case, C.IN_ASSESSMENT, at=now, actor=principal.actor,
                           data=data)
        session.execute(_MARK_CLAIMED_PG, {
            "id": case.id, "state": case.state, "at": now, "open_key": case.open_key,
            "audit_seq": case.audit_seq, "audit_hash": case.audit_hash})
        session.add(event)
        return case, CaseLease(case_id=case.id, user_id=user_id, kind="first",
                               claimed_at=now, expires_at=expires, site_batch=site_batch)


def _lock_first_candidate(
    session: Session, *, excluded: Sequence[int], where: Any = None
) -> Case | None:
    """The best case awaiting a first assessment (SQLite, whose `BEGIN IMMEDIATE`
    already serialises writers); None if there is none."""
    extra = [Case.id.not_in(list(excluded))] if excluded else []
    if where is not None:
        extra.append(where)
    return session.execute(
        select(Case).where(Case.state == C.AWAITING_ASSESSMENT.value, *extra)
        .order_by(Case.priority.desc(), Case.received_at, Case.id).limit(1)
    ).scalar_one_or_none()


# The priority of the best case awaiting a first assessment (the lowest possible when
# none waits): the floor of a second claim of kind `any`.
_TOP_NEW_PRIORITY = func.coalesce(
    select(func.max(Case.priority)).where(Case.state == C.AWAITING_ASSESSMENT.value)
    .scalar_subquery(), -(2**31))


def _second_candidates(session: Session, user_id: int, now: datetime, *,
                       min_priority: Any, excluded: Sequence[int]) -> Case | None:
    live_lease = exists().where(CaseLease.case_id == Case.id, CaseLease.expires_at > now)
    mine = exists().where(Assessment.case_id == Case.id, Assessment.analyst_id == user_id)
    # The id only (no ORM load when, as mostly, none waits); the entity once locked.
    query = select(Case.id).where(Case.state == C.AWAITING_SECOND_ASSESSMENT.value,
                                  ~live_lease, ~mine)
    if min_priority is not None:
        query = query.where(Case.priority >= min_priority)
    if excluded:
        query = query.where(Case.id.not_in(list(excluded)))
    query = query.order_by(Case.priority.desc(), Case.received_at, Case.id).limit(1)
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True, of=Case)
    case_id = session.execute(query).scalar_one_or_none()
    return None if case_id is None else session.get(Case, case_id)


def _claim_second(session: Session, principal: Principal, *, now: datetime, expires: datetime,
                  min_priority: Any) -> tuple[Case, CaseLease] | None:
    user_id = person(principal)
    tried: list[int] = []
    while True:
        case = _second_candidates(session, user_id, now, min_priority=min_priority,
                                  excluded=tried)
        if case is None:
            return None
        if _take_lease(session, case.id, user_id, "second", now=now, expires_at=expires):
            note(session, case, actor=principal.actor, action="case_claimed_for_second",
                 at=now, data={"expires_at": expires.isoformat()})
            return case, CaseLease(case_id=case.id, user_id=user_id, kind="second",
                                   claimed_at=now, expires_at=expires)
        tried.append(case.id)


def _claim_first(session: Session, principal: Principal, *, now: datetime, expires: datetime,
                 site: tuple[str, str] | None = None, site_batch: str | None = None,
                 relax: bool = False) -> tuple[Case, CaseLease] | None:
    """The best free case awaiting a first assessment, with the caller's lease; `site`:
    (column, value) of one host or registered domain."""
    if is_postgresql(session):
        return _claim_first_postgresql(session, principal, now=now, expires=expires,
                                       site=site, site_batch=site_batch, relax=relax)
    user_id = person(principal)
    where = _SITE_COLUMNS[site[0]] == site[1] if site else None
    tried: list[int] = []
    while True:
        case = _lock_first_candidate(session, excluded=tried, where=where)
        if case is None:
            return None
        if _take_lease(session, case.id, user_id, "first", now=now, expires_at=expires,
                       site_batch=site_batch):
            data: dict[str, Any] = {"expires_at": expires.isoformat()}
            if site_batch:
                data["site_batch"] = site_batch
            transition(session, case, C.IN_ASSESSMENT, at=now, actor=principal.actor, data=data)
            return case, CaseLease(case_id=case.id, user_id=user_id, kind="first",
                                   claimed_at=now, expires_at=expires, site_batch=site_batch)
        tried.append(case.id)  # a stale lease of someone else: leave it to the expiry job


def relax_commit(session: Session) -> None:
    """Let this transaction's commit return before the disk has it (PostgreSQL
    `synchronous_commit = off`, this transaction only). Used for claims: a crash of the
    database server may forget the last claims, which are then simply back in the queue
    with their state and audit event both undone; nothing is half-done."""
    if is_postgresql(session):
        session.execute(text("SET LOCAL synchronous_commit TO OFF"))


def claim_next(
    session: Session, principal: Principal, *, now: datetime, lease_seconds: int,
    kind: str = "any", wait_for_disk: bool = False,
) -> LeaseOut | None:
    """Give the caller the next case with a lease (see the module's steps). None: the
    queue holds nothing for them. `wait_for_disk=False`: see `relax_commit`."""
    require(principal, "case.claim", what="claim cases")
    person(principal)
    expires = now + timedelta(seconds=lease_seconds)
    claimed: tuple[Case, CaseLease] | None = None
    # `synchronous_commit` counts at the commit, so it is relaxed once something is
    # claimed: by the first-claim statement itself on PostgreSQL (no round trip of its
    # own on the hot path), else by `relax_commit`.
    relaxed = wait_for_disk
    if kind in ("any", "second"):
        # `any`: a second assessment only when it is at least as urgent as the best new
        # case (the floor is a subquery of the same statement: no round trip of its own).
        claimed = _claim_second(session, principal, now=now, expires=expires,
                                min_priority=_TOP_NEW_PRIORITY if kind == "any" else None)
    if claimed is None and kind in ("any", "first"):
        claimed = _claim_first(session, principal, now=now, expires=expires,
                               relax=not wait_for_disk)
        relaxed = relaxed or (claimed is not None and is_postgresql(session))
    if claimed is None and kind == "any":
        claimed = _claim_second(session, principal, now=now, expires=expires, min_priority=None)
    if claimed is None:
        return None
    if not relaxed:
        relax_commit(session)
    case, lease = claimed
    log.info("Case %s claimed by %s for a %s assessment until %s.", case.ref, principal.actor,
             lease.kind, lease.expires_at.isoformat(), extra={"case_id": case.id})
    return lease_out(lease, case, principal.name)


def renew(session: Session, principal: Principal, key: str | int, *, now: datetime,
          lease_seconds: int) -> LeaseOut:
    """Extend the caller's own lease."""
    case = find_case(session, key, lock=True)
    lease = session.get(CaseLease, case.id)
    if lease is None or lease.user_id != principal.user_id:
        raise CaseDenied(f"case {case.ref} is not held by {principal.name}", case.id)
    lease.expires_at = now + timedelta(seconds=lease_seconds)
    return lease_out(lease, case, principal.name)


def release(session: Session, principal: Principal, key: str | int, *, now: datetime) -> Case:
    """Give a claimed case back to the queue (the holder, or a supervisor/admin)."""
    if not can(principal, "case.release_any"):
        require(principal, "case.release", what="release cases")
    case = find_case(session, key, lock=True)
    lease = session.get(CaseLease, case.id)
    if lease is None:
        raise Conflict(f"case {case.ref} is not claimed")
    if lease.user_id != principal.user_id and not can(principal, "case.release_any"):
        raise CaseDenied(f"case {case.ref} is held by another analyst", case.id)
    _free(session, case, lease, actor=principal.actor, now=now, action="case_released")
    return case


def _free(session: Session, case: Case, lease: CaseLease, *, actor: str, now: datetime,
          action: str) -> None:
    data = {"holder_id": lease.user_id, "kind": lease.kind}
    session.delete(lease)
    if lease.kind == "first" and case.state == C.IN_ASSESSMENT:
        transition(session, case, C.AWAITING_ASSESSMENT, at=now, actor=actor, action=action,
                   data=data)
    else:
        note(session, case, actor=actor, action=action, at=now, data=data)


def expire_leases(session: Session, *, now: datetime, limit: int = 1_000) -> int:
    """Return cases whose lease ran out to the queue; the scheduler runs this."""
    query = (
        select(Case).join(CaseLease, CaseLease.case_id == Case.id)
        .where(CaseLease.expires_at <= now).order_by(CaseLease.expires_at).limit(limit)
    )
    if is_postgresql(session):
        query = query.with_for_update(skip_locked=True, of=Case)
    count = 0
    for case in session.execute(query).scalars().all():
        lease = session.get(CaseLease, case.id, populate_existing=True)
        if lease is None or as_utc(lease.expires_at) > now:
            continue  # released, assessed or renewed meanwhile
        _free(session, case, lease, actor="system", now=now, action="case_lease_expired")
        log.info("Case %s returned to the queue: its lease ran out.", case.ref,
                 extra={"case_id": case.id})
        count += 1
    return count


# --- same-site work ------------------------------------------------------------------


def claim_site(
    session: Session, principal: Principal, *, now: datetime, lease_seconds: int,
    max_cases: int, host: str | None = None, registered_domain: str | None = None,
    case_key: str | None = None, by: str = "registered_domain",
) -> tuple[str, list[LeaseOut], int]:
    """Claim the open cases of one host or registered domain together.
    Returns the site, the leases, and how many of its cases someone else holds."""
    require(principal, "case.claim", what="claim cases")
    user_id = person(principal)
    if case_key is not None:
        anchor = find_case(session, case_key)
        if by == "host":
            host = anchor.host
        else:
            registered_domain = anchor.registered_domain or anchor.host
            if anchor.registered_domain is None:
                by, host, registered_domain = "host", anchor.host, None
    if host:
        by, site = "host", host.lower().rstrip(".")
    elif registered_domain:
        by, site = "registered_domain", registered_domain.lower().rstrip(".")
    else:
        raise BadInput("give a host, a registered domain or a case")
    batch = secrets.token_hex(8)
    expires = now + timedelta(seconds=lease_seconds)
    leases: list[LeaseOut] = []
    for _ in range(max_cases):
        claimed = _claim_first(session, principal, now=now, expires=expires,
                               site=(by, site), site_batch=batch)
        if claimed is None:
            break
        leases.append(lease_out(claimed[1], claimed[0], principal.name))
    column = _SITE_COLUMNS[by]
    held = session.execute(
        select(func.count()).select_from(Case).join(CaseLease, CaseLease.case_id == Case.id)
        .where(column == site, Case.state.in_([C.IN_ASSESSMENT.value,
                                                C.AWAITING_ASSESSMENT.value]),
               CaseLease.user_id != user_id)
    ).scalar_one()
    log.info("Same-site claim %s by %s took %d cases of %s.", batch, principal.actor,
             len(leases), site)
    return site, leases, int(held)


# --- assessments ---------------------------------------------------------------------


@dataclass
class AssessmentDecision:
    case: Case
    assessment: Assessment
    outcome: str  # finalised, closed, needs_second_assessment, disputed
    route: bool  # send the case to the route stage after the commit


def four_eyes_rule(rules: Sequence[FourEyesRule], item: AssessmentIn,
                   claimed: set[str]) -> FourEyesRule | None:
    """The first rule asking for a second analyst on this decision, if any. `claimed`:
    every category a reporter of the case claimed."""
    category = item.category.value if item.category else None
    for rule in rules:
        if rule.legality is not None and item.legality.value not in rule.legality:
            continue
        if rule.category is not None and category not in rule.category:
            continue
        if rule.claimed_category is not None and not claimed & set(rule.claimed_category):
            continue
        return rule
    return None


def _claimed_categories(session: Session, case: Case) -> set[str]:
    """What the case's reporters claimed it is (any of them, not only the first)."""
    claimed = {c for c in session.execute(
        select(Report.claimed_category).where(Report.case_id == case.id).distinct()
    ).scalars() if c}
    return claimed | ({case.claimed_category} if case.claimed_category else set())


def _new_assessment(case: Case, principal: Principal, item: AssessmentIn, *, kind: str,
                    now: datetime, claimed_at: datetime | None,
                    site_batch: str | None) -> Assessment:
    return Assessment(
        case_id=case.id, analyst_id=person(principal), kind=kind,
        legality=item.legality.value, category=item.category.value if item.category else None,
        age_group=item.age_group.value if item.age_group else None,
        gender=item.gender.value if item.gender else None,
        site_type=item.site_type.value if item.site_type else None,
        content_type=item.content_type.value if item.content_type else None,
        commercial=item.commercial, notes=item.notes, final=False, site_batch=site_batch,
        claimed_at=claimed_at, created_at=now,
    )


def _summary(a: Assessment) -> dict[str, Any]:
    return {"assessment_id": a.id, "kind": a.kind, "legality": a.legality,
            "category": a.category}


def _finalise(session: Session, case: Case, a: Assessment, *, principal: Principal,
              now: datetime) -> str:
    a.final = True
    case.legality, case.category = a.legality, a.category
    if a.legality in CLOSING_LEGALITIES:
        transition(session, case, C.CLOSED, at=now, actor=principal.actor,
                   data={"reason": a.legality})
        return "closed"
    return "finalised"


def assess(
    session: Session,
    principal: Principal,
    key: str | int,
    item: AssessmentIn,
    *,
    now: datetime,
    settings: AssessmentSection,
) -> AssessmentDecision:
    """Record the caller's decision on a case and move the case on (see the module)."""
    require(principal, "case.assess", what="assess cases")
    user_id = person(principal)
    case = find_case(session, key, lock=True)
    state = C(case.state)
    lease = session.get(CaseLease, case.id)
    if state == C.IN_ASSESSMENT:
        return _assess_first(session, principal, case, lease, item, now=now, settings=settings)
    if state == C.AWAITING_SECOND_ASSESSMENT:
        if lease is None or lease.user_id != user_id or lease.kind != "second":
            raise CaseDenied(f"case {case.ref} needs a second assessment: claim it first "
                             "(POST /api/v1/queue/claim with kind second)", case.id)
        return _assess_second(session, principal, case, lease, item, now=now)
    if state == C.AWAITING_SUPERVISOR:
        if not can(principal, "case.decide_dispute"):
            raise CaseDenied(f"case {case.ref} awaits a supervisor's decision", case.id)
        return _decide_dispute(session, principal, case, item, now=now)
    if state == C.AWAITING_ASSESSMENT:
        raise Conflict(f"case {case.ref} is not claimed: claim it before assessing it")
    raise Conflict(f"case {case.ref} is {state.value}: it is not waiting for an assessment")


def _assess_first(session: Session, principal: Principal, case: Case, lease: CaseLease | None,
                  item: AssessmentIn, *, now: datetime, settings: AssessmentSection
                  ) -> AssessmentDecision:
    if lease is None or lease.user_id != principal.user_id:
        raise CaseDenied(f"case {case.ref} is held by another analyst", case.id)
    a = _new_assessment(case, principal, item, kind="first", now=now,
                        claimed_at=lease.claimed_at, site_batch=lease.site_batch)
    rule = four_eyes_rule(settings.four_eyes, item, _claimed_categories(session, case))
    a.four_eyes_rule = rule.name if rule else None
    session.add(a)
    session.delete(lease)
    session.flush()
    if rule is not None:
        transition(session, case, C.AWAITING_SECOND_ASSESSMENT, at=now, actor=principal.actor,
                   data={**_summary(a), "four_eyes_rule": rule.name})
        log.info("Case %s needs a second assessment (rule %s).", case.ref, rule.name,
                 extra={"case_id": case.id})
        return AssessmentDecision(case, a, "needs_second_assessment", route=False)
    transition(session, case, C.ASSESSED, at=now, actor=principal.actor, data=_summary(a))
    outcome = _finalise(session, case, a, principal=principal, now=now)
    log.info("Case %s assessed %s by %s.", case.ref, a.legality, principal.actor,
             extra={"case_id": case.id})
    return AssessmentDecision(case, a, outcome, route=outcome == "finalised")


def _first_of(session: Session, case: Case) -> Assessment:
    first = session.execute(
        select(Assessment).where(Assessment.case_id == case.id, Assessment.kind == "first")
        .order_by(Assessment.id.desc()).limit(1)
    ).scalar_one_or_none()
    if first is None:
        raise Conflict(f"case {case.ref} has no first assessment to compare with")
    return first


def _assess_second(session: Session, principal: Principal, case: Case, lease: CaseLease,
                   item: AssessmentIn, *, now: datetime) -> AssessmentDecision:
    first = _first_of(session, case)
    if first.analyst_id == principal.user_id:
        raise CaseDenied(f"case {case.ref}: the second assessment must be another "
                         "analyst's", case.id)
    a = _new_assessment(case, principal, item, kind="second", now=now,
                        claimed_at=lease.claimed_at, site_batch=lease.site_batch)
    a.four_eyes_rule = first.four_eyes_rule
    session.add(a)
    session.delete(lease)
    session.flush()
    agree = (a.legality, a.category) == (first.legality, first.category)
    data = {**_summary(a), "first_assessment_id": first.id, "agree": agree}
    if not agree:
        transition(session, case, C.AWAITING_SUPERVISOR, at=now, actor=principal.actor,
                   data=data)
        log.info("Case %s disputed: the second analyst disagreed; a supervisor decides.",
                 case.ref, extra={"case_id": case.id})
        return AssessmentDecision(case, a, "disputed", route=False)
    transition(session, case, C.ASSESSED, at=now, actor=principal.actor, data=data)
    outcome = _finalise(session, case, a, principal=principal, now=now)
    log.info("Case %s confirmed %s by a second analyst.", case.ref, a.legality,
             extra={"case_id": case.id})
    return AssessmentDecision(case, a, outcome, route=outcome == "finalised")


def _decide_dispute(session: Session, principal: Principal, case: Case, item: AssessmentIn,
                    *, now: datetime) -> AssessmentDecision:
    earlier = set(session.execute(
        select(Assessment.analyst_id).where(Assessment.case_id == case.id)
    ).scalars())
    if principal.user_id in earlier:
        raise CaseDenied(f"case {case.ref}: a supervisor who assessed it cannot decide the "
                         "dispute", case.id)
    a = _new_assessment(case, principal, item, kind="supervisor", now=now, claimed_at=None,
                        site_batch=None)
    session.add(a)
    session.flush()
    transition(session, case, C.ASSESSED, at=now, actor=principal.actor, data=_summary(a))
    outcome = _finalise(session, case, a, principal=principal, now=now)
    log.info("Case %s decided %s by a supervisor.", case.ref, a.legality,
             extra={"case_id": case.id})
    return AssessmentDecision(case, a, outcome, route=outcome == "finalised")


def assess_many(
    session: Session, principal: Principal, keys: Sequence[str | int], item: AssessmentIn,
    *, now: datetime, settings: AssessmentSection,
) -> list[AssessmentDecision]:
    """One decision on several cases the caller holds (same-site work): all or none."""
    seen: set[str] = set()
    decisions = []
    for key in keys:
        if str(key) in seen:
            raise BadInput(f"cases: {key} is listed twice")
        seen.add(str(key))
        try:
            decisions.append(assess(session, principal, key, item, now=now, settings=settings))
        except (BadInput, NotFound) as exc:
            raise type(exc)(f"case {key}: {exc}") from None
    return decisions


# --- reading: queue, case view, welfare ----------------------------------------------


def can_see_case(session: Session, principal: Principal, case: Case) -> bool:
    """The object check: supervisors, admins and auditors see every case; an analyst
    sees the queue's cases, the cases they hold and the cases they assessed."""
    if can(principal, "case.view_any"):
        return True
    if not can(principal, "case.view") or principal.user_id is None:
        return False
    if case.state in (C.AWAITING_ASSESSMENT, C.AWAITING_SECOND_ASSESSMENT):
        return True
    held = session.execute(select(CaseLease.case_id).where(
        CaseLease.case_id == case.id, CaseLease.user_id == principal.user_id)).first()
    if held:
        return True
    return session.execute(select(Assessment.id).where(
        Assessment.case_id == case.id, Assessment.analyst_id == principal.user_id
    ).limit(1)).first() is not None


def list_queue(session: Session, principal: Principal, *, state: str = "awaiting_assessment",
               limit: int = 50, offset: int = 0) -> QueueOut:
    """The waiting cases of one state, priority first then oldest, with the counts."""
    require(principal, "queue.view", what="see the queue")
    if state not in {s.value for s in QUEUE_STATES}:
        raise BadInput(f"state: one of {', '.join(s.value for s in QUEUE_STATES)}")
    counts = dict(session.execute(
        select(Case.state, func.count()).where(Case.state.in_([s.value for s in QUEUE_STATES]))
        .group_by(Case.state)
    ).all())
    rows = session.execute(
        select(Case, CaseLease.user_id).outerjoin(CaseLease, CaseLease.case_id == Case.id)
        .where(Case.state == state)
        .order_by(Case.priority.desc(), Case.received_at).limit(limit).offset(offset)
    ).all()
    names = _user_names(session, {uid for _, uid in rows if uid is not None})
    items = [
        QueueItem(id=c.id, ref=c.ref, state=c.state, canonical_url=c.canonical_url, host=c.host,
                  registered_domain=c.registered_domain, claimed_category=c.claimed_category,
                  urgent=c.urgent, priority=c.priority, received_at=c.received_at,
                  report_count=c.report_count, hosting_country=c.hosting_country,
                  held_by=names.get(uid) if uid is not None else None)
        for c, uid in rows
    ]
    return QueueOut(
        waiting=counts.get(C.AWAITING_ASSESSMENT.value, 0),
        awaiting_second=counts.get(C.AWAITING_SECOND_ASSESSMENT.value, 0),
        awaiting_supervisor=counts.get(C.AWAITING_SUPERVISOR.value, 0),
        items=items,
    )


def assessment_out(a: Assessment, analyst: str) -> AssessmentOut:
    return AssessmentOut(
        id=a.id, case_id=a.case_id, analyst=analyst, kind=a.kind, legality=a.legality,
        category=a.category, age_group=a.age_group, gender=a.gender, site_type=a.site_type,
        content_type=a.content_type, commercial=a.commercial, notes=a.notes, final=a.final,
        four_eyes_rule=a.four_eyes_rule, created_at=a.created_at,
    )


def case_view(session: Session, principal: Principal, key: str | int, *, now: datetime,
              settings: AssessmentSection) -> CaseView:
    """Everything about a case an analyst needs, as far as the caller may see it."""
    require(principal, "case.view", what="view cases")
    case = find_case(session, key)
    if not can_see_case(session, principal, case):
        raise CaseDenied(f"case {case.ref} is not open to {principal.name}", case.id)
    show_contact = principal.role in settings.reporter_contact_roles
    reports = session.execute(
        select(Report).where(Report.case_id == case.id).order_by(Report.received_at, Report.id)
    ).scalars().all()
    report_views = [
        ReportView(ref=r.ref, url=r.url, channel=r.channel, source=r.source,
                   claimed_category=r.claimed_category, description=r.description,
                   language=r.language, urgent=r.urgent, received_at=r.received_at,
                   reporter_contact=r.reporter_contact if show_contact else None,
                   reporter_contact_given=bool(r.reporter_contact))
        for r in reports
    ]
    if show_contact and any(r.reporter_contact for r in reports):
        # Who looked at a reporter's identity is itself on record.
        note(session, case, actor=principal.actor, action="reporter_contact_viewed", at=now)
    related = _related(session, case, settings.related_cases_limit)
    assessments = session.execute(
        select(Assessment).where(Assessment.case_id == case.id).order_by(Assessment.id)
    ).scalars().all()
    lease = session.get(CaseLease, case.id)
    names = _user_names(session, {a.analyst_id for a in assessments} | (
        {lease.user_id} if lease else set()))
    events = session.execute(
        select(Event).where(Event.stream == f"case:{case.ref}").order_by(Event.seq)
    ).scalars().all()
    return CaseView(
        id=case.id, ref=case.ref, canonical_url=case.canonical_url, host=case.host,
        registered_domain=case.registered_domain, state=case.state, priority=case.priority,
        urgent=case.urgent, claimed_category=case.claimed_category, legality=case.legality,
        category=case.category, received_at=case.received_at,
        lease=lease_out(lease, case, names.get(lease.user_id, "?")) if lease else None,
        reports=report_views,
        trace=_trace_view(session, case),
        earlier_cases=related,
        assessments=[assessment_out(a, names.get(a.analyst_id, "?")) for a in assessments],
        # One entry per state change (an event may carry several: `audit.steps`).
        history=[HistoryEntry(at=s.at, actor=s.actor, action=s.action, from_state=s.from_state,
                              to_state=s.to_state, data=s.data) for e in events
                 for s in steps(e)],
        notices=_notice_views(session, case),
        takedown=_takedown_timeline(session, case),
    )


def _notice_views(session: Session, case: Case) -> list[NoticeView]:
    """The case's notices, in the order they were planned."""
    notices = session.execute(
        select(Notice).where(Notice.case_id == case.id).order_by(Notice.created_at, Notice.id)
    ).scalars().all()
    return [NoticeView(id=n.id, destination=n.destination, destination_kind=n.destination_kind,
                       kind=n.kind, round=n.round, channel=n.channel, state=n.state,
                       planned_at=n.created_at, due_at=n.due_at, sent_at=n.sent_at,
                       confirmed_at=n.confirmed_at, attempts=n.attempts,
                       last_error=n.last_error) for n in notices]


def _takedown_timeline(session: Session, case: Case) -> list[TakedownStage]:
    """The INHOPE stage times of the case, with the time since the first report."""
    received = as_utc(case.received_at)
    return [TakedownStage(stage=stage, at=at, after_received_seconds=(
        (as_utc(at) - received).total_seconds() if at is not None else None))
        for stage, at in stage_times(session, case).items()]


def _trace_view(session: Session, case: Case) -> TraceView:
    """The latest recorded trace of the case, or the summary on the case itself."""

    trace = session.execute(
        select(Trace).where(Trace.case_id == case.id)
        .order_by(Trace.traced_at.desc(), Trace.id.desc()).limit(1)
    ).scalar_one_or_none()
    if trace is not None:
        return TraceView(
            trace_id=trace.id, outcome=trace.outcome, hosting_country=trace.hosting_country,
            hosting_asn=trace.hosting_asn, hosting_org=trace.hosting_org,
            hosting_abuse_email=trace.hosting_abuse_email, behind_cdn=trace.behind_cdn,
            cdn_name=trace.cdn_name, origin_unknown=trace.origin_unknown,
            registrar=trace.registrar, registrar_abuse_email=trace.registrar_abuse_email,
            traced_at=trace.traced_at, reason=trace.reason, resolver=trace.resolver,
            country_source=trace.country_source, addresses=list(trace.addresses or []),
            cname_chain=list(trace.cname_chain or []),
            nameservers=list(trace.nameservers or []),
        )
    return TraceView(
        outcome=case.trace_outcome, hosting_country=case.hosting_country,
        hosting_asn=case.hosting_asn, hosting_org=case.hosting_org,
        hosting_abuse_email=case.hosting_abuse_email, behind_cdn=case.behind_cdn,
        cdn_name=case.cdn_name, origin_unknown=case.origin_unknown, registrar=case.registrar,
        registrar_abuse_email=case.registrar_abuse_email, traced_at=case.traced_at,
    )


def _related(session: Session, case: Case, limit: int) -> list[RelatedCase]:
    if limit <= 0:
        return []
    same_site = Case.registered_domain == case.registered_domain if (
        case.registered_domain) else Case.host == case.host
    # The same URL: its open case by the unique open_key, the others (closed) by the
    # partial index of closed cases' keys.
    same_url = or_(Case.open_key == case.dedup_key,
                   and_(Case.dedup_key == case.dedup_key, Case.open_key.is_(None)))
    rows = session.execute(
        select(Case).where(Case.id != case.id, or_(same_url, same_site))
        .order_by(Case.received_at.desc()).limit(limit)
    ).scalars().all()
    return [
        RelatedCase(id=c.id, ref=c.ref,
                    relation="same_url" if c.dedup_key == case.dedup_key else "same_site",
                    canonical_url=c.canonical_url, state=c.state, legality=c.legality,
                    category=c.category, received_at=c.received_at)
        for c in rows
    ]


def _day_bounds(now: datetime, zone: str) -> tuple[str, datetime, datetime]:
    tz = ZoneInfo(zone)
    day = as_utc(now).astimezone(tz).date()
    start = datetime.combine(day, time.min, tzinfo=tz).astimezone(UTC)
    end = datetime.combine(day + timedelta(days=1), time.min, tzinfo=tz).astimezone(UTC)
    return day.isoformat(), start, end


def welfare(session: Session, user: User, *, now: datetime,
            settings: AssessmentSection) -> Welfare:
    """Today's counts of one analyst, against the soft limits."""
    return welfare_all(session, now=now, settings=settings, user_ids=[user.id])[0]


def welfare_all(session: Session, *, now: datetime, settings: AssessmentSection,
                user_ids: Sequence[int] | None = None) -> list[Welfare]:
    """Today's counts per analyst (every active analyst and supervisor by default)."""
    day, start, end = _day_bounds(now, settings.welfare_timezone)
    users_query = select(User).order_by(User.name)
    if user_ids is not None:
        users_query = users_query.where(User.id.in_(list(user_ids)))
    else:
        users_query = users_query.where(User.active.is_(True),
                                        User.role.in_(["analyst", "supervisor"]))
    users = session.execute(users_query).scalars().all()
    rows = session.execute(
        select(Assessment.analyst_id, Assessment.category, Assessment.claimed_at,
               Assessment.created_at, Assessment.site_batch)
        .where(Assessment.analyst_id.in_([u.id for u in users]),
               Assessment.created_at >= start, Assessment.created_at < end)
    ).all()
    per: dict[int, dict[str, Any]] = {u.id: {"n": 0, "csam": 0, "spans": {}} for u in users}
    for analyst_id, category, claimed_at, created_at, batch in rows:
        entry = per[analyst_id]
        entry["n"] += 1
        if category in settings.welfare_categories:
            entry["csam"] += 1
        if claimed_at is None:
            continue
        # A same-site batch is one stretch of work, however many cases it decided.
        span_key = batch or f"single:{entry['n']}"
        began, ended = entry["spans"].get(span_key, (claimed_at, created_at))
        entry["spans"][span_key] = (min(began, claimed_at), max(ended, created_at))
    result = []
    for u in users:
        entry = per[u.id]
        minutes = sum(((b - a).total_seconds() for a, b in entry["spans"].values()), 0.0) / 60
        result.append(Welfare(
            user=u.name, day=day, csam_assessments=entry["csam"], assessments=entry["n"],
            minutes_in_queue=round(minutes, 1),
            csam_soft_limit=settings.welfare_csam_soft_limit,
            minutes_soft_limit=settings.welfare_minutes_soft_limit,
            take_a_break=entry["csam"] >= settings.welfare_csam_soft_limit
            or minutes >= settings.welfare_minutes_soft_limit,
        ))
    return result

