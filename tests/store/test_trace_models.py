"""The trace tables: what the migrations make, and evidence that cannot be changed."""

from __future__ import annotations

import pytest

from pipeline.store import trace_models
from pipeline.store.trace_models import ImmutableEvidence, Trace, TraceAnswer
from tests.factories import make_case
from tests.store.schema_support import schema_differences


def test_the_tables_are_what_the_migrations_make(migrated_url):
    assert schema_differences(migrated_url, trace_models) == []


def test_a_trace_and_an_answer_cannot_be_changed_but_can_be_deleted(runtime):
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=now)
        trace = Trace(case_id=case.id, host="example.com", started_at=now, traced_at=now,
                      outcome="traced", addresses=[{"ip": "192.0.2.1"}])
        answer = TraceAnswer(key="a" * 64, url="https://rdap.example/ip/192.0.2.1",
                             status=200, received_at=now, body={"handle": "NET-1"})
        session.add_all([trace, answer])
    for change in ({"hosting_country": "RS"}, {"body": {"handle": "forged"}}):
        with runtime.session_factory() as session:
            target = session.get(Trace, trace.id) if "hosting_country" in change else (
                session.get(TraceAnswer, "a" * 64))
            for name, value in change.items():
                setattr(target, name, value)
            with pytest.raises(ImmutableEvidence, match="is evidence"):
                session.commit()
    with runtime.session_factory() as session:
        assert session.get(Trace, trace.id).hosting_country is None
        assert session.get(TraceAnswer, "a" * 64).body == {"handle": "NET-1"}
    with runtime.session_factory.begin() as session:  # retention may delete evidence
        session.delete(session.get(Trace, trace.id))
        session.delete(session.get(TraceAnswer, "a" * 64))
    with runtime.session_factory() as session:
        assert session.get(Trace, trace.id) is None
