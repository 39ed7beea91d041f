"""The state tables themselves: every state reachable from creation, the terminal
states without a way out, no state a trap, every change named, every state time a
column. (`test_lifecycle.py` tests each transition as `lifecycle` applies it.)"""

from __future__ import annotations

from collections import defaultdict
from enum import StrEnum

import pytest
from sqlalchemy import inspect

from pipeline.store.helpline_models import HelplineCase
from pipeline.store.models import Case, Report
from pipeline.store.states import (
    CASE_STATE_TIME_COLUMNS,
    CASE_TRANSITIONS,
    HELPLINE_CASE_STATE_TIME_COLUMNS,
    HELPLINE_CASE_TRANSITIONS,
    HELPLINE_ENDED_STATES,
    LEASED_NOTICE_STATES,
    NOTICE_TRANSITIONS,
    OPEN_CASE_STATES,
    REPORT_STATE_TIME_COLUMNS,
    REPORT_TRANSITIONS,
    CaseState,
    HelplineCaseState,
    NoticeState,
    ReportState,
)

# table, its states, the states with no way out, the prefix of its audit actions
TABLES = {
    "report": (REPORT_TRANSITIONS, ReportState,
               {ReportState.REJECTED, ReportState.NEW_CASE}, "report_"),
    "case": (CASE_TRANSITIONS, CaseState, {CaseState.CLOSED}, "case_"),
    "helpline_case": (HELPLINE_CASE_TRANSITIONS, HelplineCaseState,
                      {HelplineCaseState.CLOSED}, "helpline_case_"),
    "notice": (NOTICE_TRANSITIONS, NoticeState,
               {NoticeState.SENT, NoticeState.CANCELLED}, "notice_"),
}


def _graph(table: dict) -> dict:
    edges = defaultdict(set)
    for source, target in table:
        edges[source].add(target)
    return edges


def _reachable(edges: dict, start) -> set:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


@pytest.mark.parametrize("kind", TABLES)
def test_every_state_is_reachable_from_creation(kind):
    table, states, _terminal, _prefix = TABLES[kind]
    assert _reachable(_graph(table), None) == set(states)


@pytest.mark.parametrize("kind", TABLES)
def test_only_the_terminal_states_have_no_way_out(kind):
    table, states, terminal, _prefix = TABLES[kind]
    edges = _graph(table)
    assert {s for s in states if not edges.get(s)} == terminal


@pytest.mark.parametrize("kind", TABLES)
def test_from_every_state_an_end_can_be_reached(kind):
    table, states, terminal, _prefix = TABLES[kind]
    edges = _graph(table)
    for state in set(states) - terminal:
        assert _reachable(edges, state) & terminal, f"{kind} {state} is a trap"


@pytest.mark.parametrize("kind", TABLES)
def test_every_change_is_named_by_an_action_of_its_kind(kind):
    table, states, _terminal, prefix = TABLES[kind]
    for (source, target), action in table.items():
        assert source is None or isinstance(source, states)
        assert isinstance(target, states)
        if kind == "notice" and action is None:
            continue  # recorded on the case or the notice's own columns
        assert isinstance(action, str) and action.startswith(prefix), (source, target)


def test_nothing_is_created_in_a_state_other_than_the_first():
    assert {t for s, t in REPORT_TRANSITIONS if s is None} == {ReportState.RECEIVED}
    assert {t for s, t in CASE_TRANSITIONS if s is None} == {CaseState.NORMALISED}
    assert {t for s, t in HELPLINE_CASE_TRANSITIONS if s is None} == {
        HelplineCaseState.OPEN}


def test_a_case_is_open_until_removed_or_closed():
    assert set(CaseState) - OPEN_CASE_STATES == {CaseState.REMOVED, CaseState.CLOSED}
    edges = _graph(CASE_TRANSITIONS)
    # Nothing leads from a finished case back to an open one.
    assert not _reachable(edges, CaseState.REMOVED) & OPEN_CASE_STATES


def test_an_ended_helpline_case_is_advisory_or_closed_and_every_other_may_end():
    assert {HelplineCaseState.ADVISORY, HelplineCaseState.CLOSED} == HELPLINE_ENDED_STATES
    edges = _graph(HELPLINE_CASE_TRANSITIONS)
    for state in set(HelplineCaseState) - HELPLINE_ENDED_STATES:
        assert _reachable(edges, state) & HELPLINE_ENDED_STATES, state


def test_a_leased_notice_can_be_sent_failed_or_given_up():
    edges = _graph(NOTICE_TRANSITIONS)
    for state in LEASED_NOTICE_STATES:
        assert {NoticeState.SENT, NoticeState.FAILED, NoticeState.DEAD,
                NoticeState.UNCONFIRMED} <= edges[state]


@pytest.mark.parametrize(("model", "columns", "states"), [
    (Report, REPORT_STATE_TIME_COLUMNS, ReportState),
    (Case, CASE_STATE_TIME_COLUMNS, CaseState),
    (HelplineCase, HELPLINE_CASE_STATE_TIME_COLUMNS, HelplineCaseState),
])
def test_every_state_has_a_time_column_on_its_model(model, columns, states: type[StrEnum]):
    assert set(columns) == set(states)
    names = {c.key for c in inspect(model).columns}
    assert {columns[s] for s in states} <= names
