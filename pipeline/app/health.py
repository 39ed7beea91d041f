"""Health and backlogs: what /readyz, `hotline status` and the metrics report.

- `readiness(rt)`: the database, the broker and the scheduler, each reachable or
  not, with what is wrong;
- `beat(rt, name)`: the scheduler's heartbeat (a row in `heartbeats`), which
  readiness reads, so any web process can tell whether the one scheduler is alive;
- `backlog(session, now)`: reports and cases by state, the assessment backlog and
  the age of its oldest case, notices by state and destination kind, dead letters,
  legal holds;
- `queue_depths(rt)`: messages waiting (or in progress) per broker queue;
- `stage_backlog(session, now)`: what waits for each automatic stage (normalise,
  dedupe, trace, route, dispatch) and how long the oldest has waited: empty
  everywhere means the system is idle (`hotline wait --idle`).
"""

from __future__ import annotations

import os
import socket
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import dramatiq
import redis
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import and_, func, or_, select, text
from sqlalchemy.orm import Session

from pipeline.app.runtime import Runtime
from pipeline.core.clock import as_utc
from pipeline.core.messaging import STAGE_QUEUES
from pipeline.store.models import Case, DeadLetter, Notice, Report
from pipeline.store.ops_models import Heartbeat, LegalHold
from pipeline.store.states import LEASED_NOTICE_STATES, CaseState, NoticeState, ReportState

ASSESSMENT_STATES = (
    CaseState.AWAITING_ASSESSMENT.value,
    CaseState.IN_ASSESSMENT.value,
    CaseState.AWAITING_SECOND_ASSESSMENT.value,
    CaseState.AWAITING_SUPERVISOR.value,
)


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_database(rt: Runtime) -> Check:
    try:
        with rt.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return Check("database", False, f"not reachable: {type(exc).__name__}")
    return Check("database", True, rt.engine.dialect.name)


def check_broker(rt: Runtime) -> Check:
    broker = rt.settings.broker
    if not broker.is_redis:
        return Check("broker", True, "in-process")

    client = redis.Redis.from_url(broker.url, socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except Exception as exc:
        return Check("broker", False, f"Redis not reachable: {type(exc).__name__}")
    finally:
        client.close()
    return Check("broker", True, "redis")


def check_scheduler(rt: Runtime) -> Check:
    try:
        with rt.session_factory() as session:
            row = session.get(Heartbeat, "scheduler")
    except Exception as exc:
        return Check("scheduler", False, f"heartbeat unreadable: {type(exc).__name__}")
    if row is None:
        return Check("scheduler", False, "no heartbeat yet: is `hotline scheduler` running?")
    silence = (rt.clock.now() - as_utc(row.beat_at)).total_seconds()
    limit = rt.settings.metrics.scheduler_max_silence_seconds
    if silence > limit:
        return Check("scheduler", False,
                     f"silent for {silence:.0f} s (more than {limit:.0f} s) on {row.host}")
    return Check("scheduler", True, f"heartbeat {silence:.0f} s ago from {row.host}")


def readiness(rt: Runtime) -> list[Check]:
    database = check_database(rt)
    checks = [database, check_broker(rt)]
    checks.append(check_scheduler(rt) if database.ok else
                  Check("scheduler", False, "unknown: the database is not reachable"))
    return checks


def beat(rt: Runtime, name: str) -> datetime:
    now = rt.clock.now()
    with rt.session_factory.begin() as session:
        row = session.get(Heartbeat, name, with_for_update=True)
        if row is None:
            session.add(Heartbeat(name=name, beat_at=now, host=socket.gethostname()[:255],
                                  pid=os.getpid()))
        else:
            row.beat_at, row.host, row.pid = now, socket.gethostname()[:255], os.getpid()
    return now


def backlog(session: Session, now: datetime) -> dict[str, Any]:
    """Counts an operator (and Prometheus) watches."""
    reports: dict[str, int] = dict(session.execute(  # type: ignore[arg-type]
        select(Report.state, func.count()).group_by(Report.state)).all())
    channels: dict[str, int] = dict(session.execute(  # type: ignore[arg-type]
        select(Report.channel, func.count()).group_by(Report.channel)).all())
    cases: dict[str, int] = dict(session.execute(  # type: ignore[arg-type]
        select(Case.state, func.count()).group_by(Case.state)).all())
    waiting, oldest = session.execute(
        select(func.count(), func.min(func.coalesce(Case.awaiting_assessment_at,
                                                    Case.state_changed_at)))
        .where(Case.state.in_(ASSESSMENT_STATES))
    ).one()
    notices = [
        {"state": state, "destination_kind": kind, "count": count}
        for state, kind, count in session.execute(
            select(Notice.state, Notice.destination_kind, func.count())
            .group_by(Notice.state, Notice.destination_kind))
    ]
    dead = session.execute(
        select(func.count()).select_from(DeadLetter).where(DeadLetter.retried_at.is_(None))
    ).scalar_one()
    holds = session.execute(
        select(func.count()).select_from(LegalHold).where(LegalHold.lifted_at.is_(None))
    ).scalar_one()
    return {
        "reports_by_state": reports,
        "reports_by_channel": channels,
        "cases_by_state": cases,
        "assessment_backlog": waiting,
        "assessment_oldest_age_seconds": (
            (now - as_utc(oldest)).total_seconds() if oldest is not None else 0.0),
        "notices": notices,
        "dead_letters": dead,
        "legal_holds": holds,
    }


AUTOMATIC_STAGES = ("normalise", "dedupe", "trace", "route", "dispatch")
REGISTRIES_UNREACHABLE = "registries_unreachable"


def stage_backlog(session: Session, now: datetime) -> dict[str, dict[str, Any]]:
    """Per automatic stage: items waiting for it and the age (seconds) of the oldest.
    Notices count when due (planned, being sent, or failed and due for their retry);
    those held for the police or waiting for a later retry do not."""
    due = or_(Notice.due_at.is_(None), Notice.due_at <= now)
    waits: dict[str, tuple[Any, Any, Any]] = {
        "normalise": (Report, Report.state == ReportState.RECEIVED, Report.state_changed_at),
        "dedupe": (Report, Report.state == ReportState.NORMALISED, Report.state_changed_at),
        "trace": (Case, Case.state.in_([CaseState.NORMALISED, CaseState.TRACED]),
                  Case.state_changed_at),
        "route": (Case, Case.state == CaseState.ASSESSED, Case.state_changed_at),
        "dispatch": (Notice, or_(Notice.state.in_(LEASED_NOTICE_STATES),
                                 and_(Notice.state.in_([NoticeState.PLANNED,
                                                        NoticeState.FAILED]), due)),
                     Notice.created_at),
    }
    out: dict[str, dict[str, Any]] = {}
    for stage, (model, where, since) in waits.items():
        count, oldest = session.execute(
            select(func.count(), func.min(since)).select_from(model).where(where)).one()
        out[stage] = {"waiting": count, "oldest_age_seconds": (
            max(0.0, (now - as_utc(oldest)).total_seconds()) if oldest is not None else 0.0)}
    return out


def unreachable_cases(session: Session) -> int:
    """Cases traced while the registries were unreachable, waiting to be traced again
    (and for an analyst meanwhile)."""
    return int(session.execute(select(func.count()).select_from(Case).where(
        Case.state == CaseState.AWAITING_ASSESSMENT,
        Case.trace_outcome == REGISTRIES_UNREACHABLE)).scalar_one())


def queue_depths(rt: Runtime) -> dict[str, int]:
    """Messages enqueued, delayed or in progress per stage queue (empty if unknown)."""
    queues = sorted(STAGE_QUEUES)
    if rt.settings.broker.is_redis:
        namespace = rt.settings.broker.namespace
        client = redis.Redis.from_url(rt.settings.broker.url, socket_connect_timeout=2,
                                      socket_timeout=2)
        try:
            with client.pipeline(transaction=False) as pipe:
                for queue in queues:
                    pipe.hlen(f"{namespace}:{queue}.msgs")
                    pipe.hlen(f"{namespace}:{queue}.DQ.msgs")
                counts = pipe.execute()
        except Exception:
            return {}
        finally:
            client.close()
        return {q: int(counts[2 * i]) + int(counts[2 * i + 1]) for i, q in enumerate(queues)}

    broker = dramatiq.get_broker()
    if not isinstance(broker, StubBroker):
        return {}
    return {q: sum(broker.queues[name].qsize() for name in (q, f"{q}.DQ")
                   if name in broker.queues) for q in queues}
