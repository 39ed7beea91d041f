"""Session listeners: committed state changes and takedowns counted (rolled-back ones
not), the batch path's rows counted once per kind, and reporter data kept out of logs.

(`tests/app/test_metrics.py` shows the same counts through GET /metrics.)"""

from __future__ import annotations

import io
import logging
from datetime import timedelta

from sqlalchemy import select

from pipeline.core.config import LoggingSection
from pipeline.core.counters import REPORTS_RECEIVED, TAKEDOWN_SECONDS, TRANSITIONS
from pipeline.core.logs import configure
from pipeline.store.listeners import note_events
from pipeline.store.models import Report
from pipeline.store.states import CaseState
from tests.ops_helpers import add_case


def _count(counter, *labels) -> float:
    return counter.labels(*labels)._value.get()


def _observed(histogram, *labels) -> float:
    [metric] = histogram.labels(*labels).collect()
    return next(s.value for s in metric.samples if s.name.endswith("_count"))


def test_committed_state_changes_and_a_takedown_are_counted(sqlite_runtime):
    rt = sqlite_runtime  # build_runtime has the listeners watch every session
    removed, received = _count(TRANSITIONS, "case", "case_removed"), _count(
        TRANSITIONS, "report", "report_received")
    web, takedowns = _count(REPORTS_RECEIVED, "web"), _observed(TAKEDOWN_SECONDS, "report")
    with rt.session_factory.begin() as session:
        add_case(session, at=rt.clock.now() - timedelta(days=2), until=CaseState.REMOVED)
    assert _count(TRANSITIONS, "case", "case_removed") == removed + 1
    assert _count(TRANSITIONS, "report", "report_received") == received + 1
    assert _count(REPORTS_RECEIVED, "web") == web + 1
    assert _observed(TAKEDOWN_SECONDS, "report") == takedowns + 1


def test_a_rolled_back_change_is_not_counted(sqlite_runtime):
    before = _count(TRANSITIONS, "case", "case_removed")
    session = sqlite_runtime.session_factory()
    add_case(session, at=sqlite_runtime.clock.now(), until=CaseState.REMOVED)
    session.rollback()
    session.close()
    with sqlite_runtime.session_factory.begin() as session:
        pass  # a later commit does not count what was rolled back either
    assert _count(TRANSITIONS, "case", "case_removed") == before


def test_rows_of_the_batch_path_are_counted_per_kind_when_the_session_commits(
        sqlite_runtime):
    normalised = _count(TRANSITIONS, "report", "report_normalised")
    email = _count(REPORTS_RECEIVED, "email")
    rows = [{"stream": "report:1", "action": "report_normalised", "to_state": "normalised"},
            {"stream": "report:2", "action": "report_normalised", "to_state": "normalised"},
            {"stream": "report:3", "action": "report_received", "to_state": "received",
             "data": {"channel": "email"}},
            {"stream": "user:ana", "action": "case_viewed", "to_state": None}]
    with sqlite_runtime.session_factory.begin() as session:
        note_events(session, rows)
        assert _count(TRANSITIONS, "report", "report_normalised") == normalised  # not yet
    assert _count(TRANSITIONS, "report", "report_normalised") == normalised + 2
    assert _count(REPORTS_RECEIVED, "email") == email + 1
    assert _count(TRANSITIONS, "user", "case_viewed") == 0


def test_a_reporter_contact_and_description_set_or_loaded_never_reach_a_log_line(sqlite_runtime):
    contact, words = "listener-canary-5Tq@example.org", "A listener canary sentence 91K."
    with sqlite_runtime.session_factory.begin() as session:
        add_case(session, at=sqlite_runtime.clock.now(), contact=contact, description=words,
                 until=CaseState.NORMALISED)
    stream = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        configure(LoggingSection(level="INFO", format="text"), stream=stream)
        with sqlite_runtime.session_factory() as session:
            report = session.scalars(select(Report)).one()
            logging.getLogger("pipeline.careless").info(
                "Report from %s: %s", report.reporter_contact, report.description)
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    assert contact not in stream.getvalue() and words not in stream.getvalue()
