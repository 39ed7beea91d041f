"""The tracing stage on SQLite and PostgreSQL, and `hotline trace URL`."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from pipeline.core.errors import RetryLater
from pipeline.core.messaging import NORMALISE
from pipeline.stages.trace import trace_cases
from pipeline.store.lifecycle import transition
from pipeline.store.models import Case, Event
from pipeline.store.states import CaseState
from pipeline.store.trace_models import ImmutableEvidence, Trace, TraceAnswer
from tests.netfakes import records


def open_case(runtime, host, *, kind="domain", domain=None) -> int:
    with runtime.session_factory.begin() as session:
        now = runtime.clock.now()
        key = uuid.uuid4().hex
        case = Case(ref="C" + key[:12], canonical_url=f"http://{host}/x", dedup_key=key,
                    host=host, registered_domain=domain, url_kind=kind, received_at=now,
                    state=None, audit_seq=0, report_count=1, priority=0)
        event = transition(None, case, CaseState.NORMALISED, at=now)
        session.add(case)
        session.flush()
        event.case_id = case.id
        session.add(event)
        return case.id


def run(runtime, ids, tracer):
    with runtime.session_factory.begin() as session:
        return trace_cases(session, ids, clock=runtime.clock, tracer=tracer)


def cases(runtime, ids) -> list[Case]:
    with runtime.session_factory() as session:
        return list(session.execute(select(Case).where(Case.id.in_(ids)).order_by(Case.id))
                    .scalars())


def traces(runtime, case_id) -> list[Trace]:
    with runtime.session_factory() as session:
        return list(session.execute(select(Trace).where(Trace.case_id == case_id)
                                    .order_by(Trace.id)).scalars())


@pytest.fixture
def hosting(fake_dns, fake_rdap):
    fake_rdap.add_network("185.50.0.0/16", records.ripe_network(
        "185.50.0.0/16", country="DE", org="Hoster GmbH", abuse_email="abuse@hoster.de"))
    fake_rdap.add_domain("example.com", records.domain("example.com"))
    fake_dns.add_origin("185.50.0.0/16", asn=64800, country="DE")
    fake_dns.add_host("www.example.com", a=["185.50.0.1"], aaaa=["2a00:50::1"])
    fake_dns.add_host("img.example.com", a=["185.50.0.2"])
    fake_rdap.add_network("2a00:50::/32", records.ripe_network("2a00:50::/32", country="DE"))


def test_a_batch_traces_each_distinct_host_once_and_records_a_trace_per_case(
    runtime, make_tracer, hosting, fake_dns, fake_rdap
):
    ids = [open_case(runtime, "www.example.com", domain="example.com") for _ in range(3)]
    ids.append(open_case(runtime, "img.example.com", domain="example.com"))
    assert run(runtime, ids, make_tracer()) == []
    assert fake_dns.by_type["A"] == 2  # two hosts, four cases
    assert fake_rdap.queries_by_kind == {"ip": 2, "domain": 1}
    for case in cases(runtime, ids):
        assert case.state == CaseState.AWAITING_ASSESSMENT
        assert (case.hosting_country, case.hosting_asn, case.hosting_org,
                case.hosting_abuse_email) == ("DE", 64800, "Hoster GmbH", "abuse@hoster.de")
        assert (case.trace_outcome, case.origin_unknown, case.behind_cdn) == (
            "traced", False, False)
        assert case.registrar == "Example Registrar, Inc."
        assert case.registrar_abuse_email == "abuse@registrar.example"
    evidence = traces(runtime, ids[0])
    assert len(evidence) == 1
    trace = evidence[0]
    assert [a["ip"] for a in trace.addresses] == ["185.50.0.1", "2a00:50::1"]
    assert trace.resolver == f"127.0.0.1:{fake_dns.port}"
    assert "185.50.0.1" in trace.dns_raw["A"]["text"]
    with runtime.session_factory() as session:
        stored = {row.key: row for row in session.execute(select(TraceAnswer)).scalars()}
    assert {entry["answer"] for entry in trace.rdap_raw} <= set(stored)
    assert any(row.body and row.body.get("name") == "EXAMPLE-NET" for row in stored.values())


def _case_steps(session, case_id):
    """The state changes the case's own events record (an event may carry several)."""
    from pipeline.store.audit import steps

    events = session.execute(select(Event).where(
        Event.case_id == case_id, Event.report_id.is_(None)).order_by(Event.seq)).scalars()
    return [step for event in events for step in steps(event)]


def test_a_failed_trace_still_queues_the_case_marked_origin_unknown_with_the_reason(
    runtime, make_tracer, fake_dns
):
    fake_dns.add_host("www.example.com", a=["185.50.0.1"])
    fake_dns.fail("gone.example.com", "nxdomain")
    case_id = open_case(runtime, "gone.example.com", domain="example.com")
    run(runtime, [case_id], make_tracer(asn_dns_zone_v4=""))
    (case,) = cases(runtime, [case_id])
    assert case.state == CaseState.AWAITING_ASSESSMENT
    assert case.origin_unknown and case.trace_outcome == "nxdomain"
    with runtime.session_factory() as session:
        [event] = [step for step in _case_steps(session, case_id)
                   if step.to_state == CaseState.TRACED]
    assert event.data["outcome"] == "nxdomain" and "NXDOMAIN" in event.data["reason"]
    assert traces(runtime, case_id)[0].reason == "the host name does not exist (NXDOMAIN)"


def test_onion_and_ip_literal_urls_skip_dns(runtime, make_tracer, hosting, fake_dns):
    onion = open_case(runtime, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz23.onion",
                      kind="onion")
    literal = open_case(runtime, "185.50.7.7", kind="ip")
    six = open_case(runtime, "[2a00:50::9]", kind="ip")
    run(runtime, [onion, literal, six], make_tracer())
    assert fake_dns.by_type["A"] == 0 and fake_dns.by_type["AAAA"] == 0
    by_id = {c.id: c for c in cases(runtime, [onion, literal, six])}
    assert by_id[onion].trace_outcome == "onion_service" and by_id[onion].origin_unknown
    assert by_id[literal].hosting_country == "DE" and by_id[literal].hosting_asn == 64800
    assert by_id[six].trace_outcome == "traced"


def test_a_passing_registry_failure_retries_the_batch_until_the_give_up_age(
    runtime, make_tracer, hosting, fake_rdap
):
    fake_rdap.fail("185.50.0.0/16", "429")
    case_id = open_case(runtime, "www.example.com", domain="example.com")
    tracer = make_tracer(give_up_after_seconds=600)
    with pytest.raises(RetryLater) as raised:
        run(runtime, [case_id], tracer)
    assert raised.value.delay_ms == 7_000
    (case,) = cases(runtime, [case_id])
    assert case.state == CaseState.NORMALISED and traces(runtime, case_id) == []
    runtime.clock.advance(seconds=601)
    run(runtime, [case_id], tracer)
    (case,) = cases(runtime, [case_id])
    assert case.state == CaseState.AWAITING_ASSESSMENT
    assert case.origin_unknown and case.trace_outcome == "rdap_unavailable"
    assert "429" in (traces(runtime, case_id)[0].reason or "")


def test_a_retraced_case_keeps_its_trace_history(runtime, make_tracer, hosting, fake_dns):
    case_id = open_case(runtime, "www.example.com", domain="example.com")
    tracer = make_tracer()  # one tracer: its caches must not hide the move
    run(runtime, [case_id], tracer)
    # The content moved (as monitoring records it): the case is traced again.
    with runtime.session_factory.begin() as session:
        session.execute(update(Case).where(Case.id == case_id).values(state="traced"))
    fake_dns.add_host("www.example.com", a=["185.50.9.9"])
    runtime.clock.advance(hours=1)
    run(runtime, [case_id], tracer)
    history = traces(runtime, case_id)
    assert [t.addresses[0]["ip"] for t in history] == ["185.50.0.1", "185.50.9.9"]
    assert history[0].traced_at < history[1].traced_at
    (case,) = cases(runtime, [case_id])
    assert case.state == CaseState.AWAITING_ASSESSMENT


def test_a_trace_cannot_be_changed_once_written(runtime, make_tracer, hosting):
    case_id = open_case(runtime, "www.example.com", domain="example.com")
    run(runtime, [case_id], make_tracer())
    with pytest.raises(ImmutableEvidence), runtime.session_factory.begin() as session:
        trace = session.execute(select(Trace)).scalars().first()
        trace.hosting_country = "XX"


def test_cases_already_queued_are_left_alone(runtime, make_tracer, hosting, fake_rdap):
    case_id = open_case(runtime, "www.example.com", domain="example.com")
    tracer = make_tracer()
    run(runtime, [case_id], tracer)
    run(runtime, [case_id], tracer)
    assert len(traces(runtime, case_id)) == 1


def test_hotline_trace_prints_the_trace_as_json(
    monkeypatch, hosting, fake_dns, fake_rdap, bootstrap_dir
):
    from pipeline.cli import main

    monkeypatch.setenv("HOTLINE_TRACE__RESOLVERS",
                       json.dumps([{"address": "127.0.0.1", "port": fake_dns.port}]))
    monkeypatch.setenv("HOTLINE_TRACE__BOOTSTRAP_DIR", str(bootstrap_dir))
    result = CliRunner().invoke(main, ["trace", "http://www.example.com/some/page"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["outcome"] == "traced" and data["cdn"] is None
    assert data["addresses"][0] == {
        "ip": "185.50.0.1", "asn": 64800, "prefix": "185.50.0.0/16", "rir": "ripencc",
        "country": "DE", "abuse_email": "abuse@hoster.de", "org": "Hoster GmbH",
        "network_name": "EXAMPLE-NET", "provider": None}
    assert data["registrar"] == "Example Registrar, Inc."
    assert data["registrar_abuse_email"] == "abuse@registrar.example"


def test_a_case_locked_by_another_transaction_is_handed_back_to_be_traced_again(
    pg_runtime, make_tracer, hosting
):
    runtime = pg_runtime
    case_id = open_case(runtime, "www.example.com", domain="example.com")
    tracer = make_tracer()
    # Deduplication adding a report to the case holds its row for a moment.
    with runtime.session_factory.begin() as other:
        other.execute(select(Case).where(Case.id == case_id).with_for_update())
        assert run(runtime, [case_id], tracer) == [case_id]
    assert run(runtime, [case_id], tracer) == []
    (case,) = cases(runtime, [case_id])
    assert case.state == CaseState.AWAITING_ASSESSMENT


def _take_in(runtime, urls, source=None):
    from pipeline.stages.intake import store_reports
    from schemas.intake import ReportIn

    with runtime.session_factory.begin() as session:
        accepted = store_reports(session, [ReportIn(url=u, channel="web") for u in urls],
                                 clock=runtime.clock, limits=runtime.settings.intake,
                                 source=source)
    return [a.id for a in accepted]


def test_deduplication_traces_and_queues_new_cases_the_caches_answer(
    runtime, make_tracer, hosting, fake_dns, fake_rdap
):
    """A new case whose host was traced before goes in traced and queued, in the
    deduplication's transaction, with the same trace and events as through the stage;
    one the caches do not know is left for the stage, and nobody is asked meanwhile."""
    from pipeline.stages.dedupe import normalise_and_dedupe
    from pipeline.store.audit import verify
    from pipeline.store.models import Report

    tracer = make_tracer()
    first = open_case(runtime, "www.example.com", domain="example.com")
    run(runtime, [first], tracer)
    asked = (dict(fake_dns.by_type), dict(fake_rdap.queries_by_kind))

    ids = _take_in(runtime, ["http://www.example.com/other", "http://www.example.com/other",
                             "http://unknown.example.com/x"], source="partner-hotline")
    with runtime.session_factory.begin() as session:
        to_trace = normalise_and_dedupe(session, ids, clock=runtime.clock, tracer=tracer)
    assert (dict(fake_dns.by_type), dict(fake_rdap.queries_by_kind)) == asked

    with runtime.session_factory() as session:
        reports = [session.get(Report, i) for i in ids]
        known, unknown = session.get(Case, reports[0].case_id), session.get(
            Case, reports[2].case_id)
        assert to_trace == [unknown.id]
        assert unknown.state == CaseState.NORMALISED
        assert known.state == CaseState.AWAITING_ASSESSMENT and known.report_count == 2
        assert known.traced_at == known.awaiting_assessment_at == known.normalised_at
        reference = session.get(Case, first)
        for name in ("hosting_country", "hosting_asn", "hosting_org", "hosting_abuse_email",
                     "registrar", "trace_outcome", "origin_unknown"):
            assert getattr(known, name) == getattr(reference, name), name
        # One event carries the three states the case went through in the transaction.
        [event] = session.execute(select(Event).where(
            Event.case_id == known.id, Event.report_id.is_(None))).scalars().all()
        assert [s.action for s in _case_steps(session, known.id)] == [
            "case_opened", "case_traced", "case_queued"]
        assert [s.to_state for s in _case_steps(session, known.id)] == [
            "normalised", "traced", "awaiting_assessment"]
        assert (event.from_state, event.to_state) == (None, "awaiting_assessment")
        assert verify(session) == []
    assert traces(runtime, unknown.id) == []
    [trace] = traces(runtime, known.id)
    assert trace.addresses == traces(runtime, first)[0].addresses
    assert trace.rdap_raw == traces(runtime, first)[0].rdap_raw

    # The stage traces the other as before.
    assert run(runtime, to_trace, tracer) == []
    assert cases(runtime, to_trace)[0].state == CaseState.AWAITING_ASSESSMENT


def test_a_failed_attempt_is_counted_with_its_reason_and_next_retry(runtime, make_tracer,
                                                                     hosting, fake_rdap):
    from datetime import timedelta

    from pipeline.stages.trace import note_retry

    fake_rdap.fail("185.50.0.0/16", "429")
    case_id = open_case(runtime, "www.example.com", domain="example.com")
    tracer = make_tracer(give_up_after_seconds=600)
    for attempt in (1, 2):
        with pytest.raises(RetryLater) as raised:
            run(runtime, [case_id], tracer)
        retry_at = runtime.clock.now() + timedelta(milliseconds=raised.value.delay_ms)
        note_retry(runtime.session_factory, [case_id], retry_at=retry_at,
                   reason=str(raised.value))
        (case,) = cases(runtime, [case_id])
        assert case.trace_attempts == attempt
        assert "429" in case.trace_wait_reason
        assert case.retry_at.replace(tzinfo=None) == retry_at.replace(tzinfo=None)


def test_a_waiting_case_is_sent_on_as_origin_unknown_by_a_person_audited(
        runtime, make_tracer, hosting, fake_rdap):
    from pipeline.stages.trace import SENT_ON_BY_HAND, send_on_unknown
    from pipeline.store.audit import steps

    fake_rdap.fail("185.50.0.0/16", "429")
    waiting = open_case(runtime, "www.example.com", domain="example.com")
    with pytest.raises(RetryLater):
        run(runtime, [waiting], make_tracer(give_up_after_seconds=600))
    with runtime.session_factory.begin() as session:
        sent = send_on_unknown(session, [waiting], clock=runtime.clock, actor="user:sue")
    assert sent == [waiting]
    (case,) = cases(runtime, [waiting])
    assert case.state == CaseState.AWAITING_ASSESSMENT
    assert case.origin_unknown and case.trace_outcome == SENT_ON_BY_HAND
    assert "user:sue" in traces(runtime, waiting)[0].reason
    with runtime.session_factory() as session:
        events = list(session.execute(select(Event).where(
            Event.case_id == waiting).order_by(Event.seq)).scalars())
    # Traced and queued in one transaction: one event carries both steps, by the person.
    moved = [step for event in events for step in steps(event)
             if step.to_state in (CaseState.TRACED, CaseState.AWAITING_ASSESSMENT)]
    assert [(s.to_state, s.actor) for s in moved] == [
        (CaseState.TRACED, "user:sue"), (CaseState.AWAITING_ASSESSMENT, "user:sue")]
    assert moved[1].data["reason"] == "sent on as origin unknown by hand"
    # A case no longer waiting is left alone.
    with runtime.session_factory.begin() as session:
        assert send_on_unknown(session, [waiting], clock=runtime.clock,
                               actor="user:sue") == []


def test_a_trace_holds_no_case_while_it_waits_for_an_answer_deduplication_is_storing(
    pg_runtime, make_tracer, hosting
):
    """Deduplication (at intake or in a worker) stores the registry answers of the
    cases it traces from the caches, then locks the cases its reports join. A trace
    that waits for one of those answers must not hold its own cases meanwhile: that
    order deadlocked (one to six times in every 20,000-report benchmark import, each
    costing the deadlock timeout, a second)."""
    import threading

    from sqlalchemy import text

    from pipeline.adapters.tracing.tracer import TraceTarget
    from pipeline.stages.trace import _answer_key, _store_answers
    from tests.pg_support import wait_for_a_lock_wait

    runtime = pg_runtime
    case_id = open_case(runtime, "www.example.com", domain="example.com")
    tracer = make_tracer()
    # The answers the trace will use, from the tracer's caches: the same keys.
    (warm,) = tracer.trace([TraceTarget("www.example.com", "domain", "example.com")]).values()
    answers = {_answer_key(a): a for a in warm.rdap_answers}
    assert answers
    errors: list[BaseException] = []
    outcome: list[list[int]] = []

    def trace() -> None:
        try:
            outcome.append(run(runtime, [case_id], tracer))
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    with runtime.session_factory.begin() as dedupe:
        _store_answers(dedupe, answers)  # not committed yet
        worker = threading.Thread(target=trace)
        worker.start()
        wait_for_a_lock_wait(runtime, "the trace")
        # Deduplication now joins a report to the case: with the trace holding it,
        # PostgreSQL found a deadlock here and cancelled one of the two.
        dedupe.execute(text("SET LOCAL lock_timeout = '5s'"))
        dedupe.execute(select(Case.id).where(Case.id == case_id)
                       .with_for_update(key_share=True))
    worker.join(30)
    assert errors == []
    assert outcome == [[]]
    (case,) = cases(runtime, [case_id])
    assert case.state == CaseState.AWAITING_ASSESSMENT


def _ahead_intake(runtime, tracer, **options):
    from pipeline.core.messaging import RecordingEnqueuer
    from pipeline.stages.dedupe import DedupRules, IntakeSettler
    from pipeline.stages.intake import accept_reports
    from schemas.intake import ReportIn

    settle = IntakeSettler(up_to=2, options={"claims": None, "rules": DedupRules(),
                                             "tracer": tracer}, **options)

    def take_in(urls):
        enqueuer = RecordingEnqueuer()
        _, accepted = accept_reports(
            runtime.session_factory, [ReportIn(url=u, channel="web") for u in urls],
            clock=runtime.clock, limits=runtime.settings.intake, enqueuer=enqueuer,
            settle=settle)
        return [a.id for a in accepted], enqueuer

    return take_in


def test_a_large_submission_traces_its_first_report_ahead_while_the_rest_go_in(
    runtime, make_tracer, hosting, fake_dns, fake_rdap, redis_client
):
    """Intake settles a large submission's first report alone and starts tracing its
    new case before writing the rest; a trace ahead not ended when the rest is written
    (held here) leaves the case to a worker's trace stage, which then finds every
    answer in the shared caches. A submission settled whole traces nothing ahead."""
    import threading

    from pipeline.core.messaging import TRACE

    namespace = f"hotline-test-{uuid.uuid4().hex}"
    intake_tracer = make_tracer(redis=redis_client, namespace=namespace)
    take_in = _ahead_intake(runtime, intake_tracer)

    # Settled whole (two reports, up to two): nothing asked before the stage.
    take_in(["http://img.example.com/1", "http://img.example.com/2"])
    assert intake_tracer._ahead is None
    assert fake_dns.by_type["A"] == 0 and not fake_rdap.queries_by_kind

    go = threading.Event()
    real_trace = intake_tracer.trace

    def held_trace(targets, **kwargs):
        assert go.wait(30)
        return real_trace(targets, **kwargs)

    intake_tracer.trace = held_trace  # the ahead thread's; intake reads the caches only
    _, enqueuer = take_in([f"http://www.example.com/{i}" for i in range(3)])
    [case_id] = enqueuer.ids(TRACE)
    assert cases(runtime, [case_id])[0].state == CaseState.NORMALISED
    go.set()
    assert intake_tracer._ahead is not None
    intake_tracer._ahead.result(timeout=10)
    assert fake_dns.by_type["A"] == 1  # asked by intake, before any trace stage ran
    assert fake_rdap.queries_by_kind == {"ip": 2, "domain": 1}
    # On PostgreSQL its answers are stored and committed already: no batch that traces
    # a case of the same networks from the caches holds their keys for the stage to
    # wait on. (SQLite's one writer would wait for the submission: the stage stores
    # them.)
    postgresql = runtime.engine.dialect.name == "postgresql"
    with runtime.session_factory() as session:
        assert len(session.execute(select(TraceAnswer.key)).all()) == (3 if postgresql else 0)

    # A worker (caches of its own in front of the same Redis) asks nothing more.
    assert run(runtime, [case_id], make_tracer(redis=redis_client, namespace=namespace)) == []
    assert fake_dns.by_type["A"] == 1
    assert fake_rdap.queries_by_kind == {"ip": 2, "domain": 1}
    [case] = cases(runtime, [case_id])
    assert case.state == CaseState.AWAITING_ASSESSMENT
    assert (case.hosting_country, case.registrar) == ("DE", "Example Registrar, Inc.")
    with runtime.session_factory() as session:
        assert len(session.execute(select(TraceAnswer.key)).all()) == 3


def test_a_trace_ahead_ended_in_time_queues_the_first_case_with_the_submission(
    runtime, make_tracer, hosting, fake_dns, fake_rdap, redis_client
):
    """Once the rest is written, intake waits (up to `ahead_wait`, long here) for the
    trace ahead and queues the first report's case in the submission's own
    transaction: no TRACE message, the case committed waiting for assessment with its
    trace, its audit events chained as the stage's would be."""
    from pipeline.core.messaging import TRACE
    from pipeline.store.audit import verify

    namespace = f"hotline-test-{uuid.uuid4().hex}"
    take_in = _ahead_intake(runtime, make_tracer(redis=redis_client, namespace=namespace),
                            ahead_wait=30)
    ids, enqueuer = take_in([f"http://www.example.com/{i}" for i in range(3)])
    assert enqueuer.ids(TRACE) == []
    assert len(enqueuer.ids(NORMALISE)) == 2  # the rest, for the workers as before
    assert fake_dns.by_type["A"] == 1
    with runtime.session_factory() as session:
        [case_id] = session.execute(select(Case.id)).scalars().all()
    [case] = cases(runtime, [case_id])
    assert case.state == CaseState.AWAITING_ASSESSMENT
    assert (case.hosting_country, case.registrar) == ("DE", "Example Registrar, Inc.")
    assert len(traces(runtime, case_id)) == 1
    with runtime.session_factory() as session:
        steps = session.execute(select(Event.action, Event.to_state)
                                .where(Event.case_id == case_id).order_by(Event.id)).all()
        assert verify(session) == []
    # Opened at intake, then traced and queued: the states the stage would have written.
    assert [to for _, to in steps][-1] == CaseState.AWAITING_ASSESSMENT
    assert steps[0][0] == "case_opened" and len(steps) >= 2


def test_a_trace_ahead_not_ended_or_cancelled_leaves_the_cases_to_the_stage(runtime):
    """`finish_ahead` with a trace still running past its wait, or cancelled (the
    tracer closed as the process stops), gives every id back and reads nothing."""
    from concurrent.futures import Future

    from pipeline.stages.trace import finish_ahead

    running: Future[None] = Future()
    cancelled: Future[None] = Future()
    assert cancelled.cancel()
    no_tracer: Any = object()  # not reached: nothing is traced or read
    with runtime.session_factory() as session:
        for ahead in (running, cancelled, None):
            assert finish_ahead(session, no_tracer, [7, 8], ahead, wait=0.01,
                                now=runtime.clock.now()) == [7, 8]
