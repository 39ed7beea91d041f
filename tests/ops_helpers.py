"""Builders for the operations tests: a case walked to a closed state, with reports,
a trace with raw answers and a notice, written through the real lifecycle."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from pipeline.stages.intake import new_reference
from pipeline.store.lifecycle import transition
from pipeline.store.models import Case, Notice, Report
from pipeline.store.states import CaseState, ReportState

PATH_TO_CLOSED = [CaseState.NORMALISED, CaseState.TRACED, CaseState.AWAITING_ASSESSMENT,
                  CaseState.IN_ASSESSMENT, CaseState.ASSESSED, CaseState.ROUTED,
                  CaseState.NOTIFIED, CaseState.REMOVED, CaseState.CLOSED]


def add_case(session: Session, *, at: datetime, url: str = "http://bad.example/x.html",
             contact: str | None = "reporter@example.org",
             description: str | None = "I found this on a forum yesterday evening.",
             until: CaseState = CaseState.CLOSED, step: timedelta = timedelta(hours=1),
             with_trace: bool = True) -> Case:
    """A case with one report, walked state by state up to `until`."""
    report = Report(ref=new_reference("R"), submission_ref=new_reference("S"), url=url,
                    channel="web", received_at=at, reporter_contact=contact,
                    description=description, state=None, audit_seq=0)
    transition(session, report, ReportState.RECEIVED, at=at, data={"channel": "web"})
    session.add(report)
    session.flush()
    transition(session, report, ReportState.NORMALISED, at=at)
    report.canonical_url = url
    key = hashlib.sha256(url.encode()).hexdigest()
    case = Case(ref=new_reference("C"), canonical_url=url, dedup_key=key, host="bad.example",
                registered_domain="bad.example", received_at=at, state=None, audit_seq=0,
                hosting_country="NL", category="csam", legality="illegal")
    opened = transition(None, case, CaseState.NORMALISED, at=at)
    session.add(case)
    session.flush()
    opened.case_id = case.id
    session.add(opened)
    report.case_id = case.id
    transition(session, report, ReportState.NEW_CASE, at=at)
    when = at
    for state in PATH_TO_CLOSED[1:]:
        when = when + step
        transition(session, case, state, at=when)
        if state == CaseState.TRACED and with_trace:
            add_trace(session, case, at=when)
        if state == CaseState.ROUTED:
            session.add(Notice(case_id=case.id, destination="nl-provider",
                               destination_kind="provider", kind="notice", channel="smtp",
                               address="abuse@host.example", state="sent",
                               token=new_reference("T"), subject=f"Notice about {url}",
                               body=f"Please remove {url} from your service.",
                               payload={"url": url, "category": "csam"}, created_at=when,
                               sent_at=when))
        if state == until:
            break
    session.flush()
    return case


RDAP_URL = "https://rdap.example/ip/192.0.2.7"


def add_trace(session: Session, case: Case, *, at: datetime,
              answer: dict[str, Any] | None = None) -> Any:
    """A trace as the tracer writes it: DNS answers inline, the RDAP answer in the
    shared `trace_answers` table named by its content hash."""
    from pipeline.store.trace_models import Trace, TraceAnswer

    body = answer or {"handle": "NET-192-0-2", "name": "EXAMPLE-NET"}
    key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    if session.get(TraceAnswer, key) is None:
        session.add(TraceAnswer(key=key, url=RDAP_URL, status=200, received_at=at, body=body))
    trace = Trace(case_id=case.id, host=case.host, started_at=at, traced_at=at,
                  outcome="traced", resolver="127.0.0.1:53",
                  addresses=[{"ip": "192.0.2.7", "asn": 64500, "country": "NL"}],
                  hosting_country="NL", hosting_asn=64500,
                  dns_raw={"A": "bad.example. 300 IN A 192.0.2.7"},
                  rdap_raw=[{"url": RDAP_URL, "status": 200, "at": at.isoformat(),
                             "answer": key}])
    session.add(trace)
    return trace
