"""Circuit breakers per DNS resolver and RDAP server, against loopback
servers that stop answering: cases go on to the analysts as "origin unknown:
registries unreachable", are traced again once the registries answer, and the
reconciler does not send again a batch that only waits for its retry."""

from __future__ import annotations

import contextlib
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest

from pipeline.adapters.tracing.breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Breakers,
    RegistryUnreachable,
    ServerDown,
)
from pipeline.adapters.tracing.tracer import Tracer
from pipeline.core.errors import RetryLater
from pipeline.core.messaging import TRACE
from pipeline.stages.reconciler import find_stuck
from pipeline.stages.trace import note_retry, send_back_unreachable
from pipeline.store.states import CaseState
from tests.netfakes import FakeDNS, FakeRDAP
from tests.stages.test_trace import cases, hosting, open_case, run, traces  # noqa: F401

UNREACHABLE = "registries_unreachable"


@pytest.fixture
def tracer_with(trace_config):
    made: list[Tracer] = []

    def make(breakers: Breakers, **overrides) -> Tracer:
        tracer = Tracer(trace_config(**overrides), breakers=breakers)
        made.append(tracer)
        return tracer

    yield make
    for tracer in made:
        tracer.close()


def test_a_breaker_opens_after_the_failures_in_a_row_and_closes_on_an_answer():
    # The reset times here are real time: long enough for the steps in between on a
    # loaded machine (the suite runs in two processes on two cores), short enough to
    # sleep past.
    breakers = Breakers(failures=2, reset_seconds=1.0)

    def down():
        raise ServerDown("no answer")

    with pytest.raises(ServerDown):
        breakers.call("rdap x", down)
    assert breakers.call("rdap x", lambda: "an answer") == "an answer"  # resets the count
    with pytest.raises(ServerDown):
        breakers.call("rdap x", down)
    with pytest.raises(RegistryUnreachable):  # the second in a row opens it
        breakers.call("rdap x", down)
    asked = []
    with pytest.raises(RegistryUnreachable):
        breakers.call("rdap x", lambda: asked.append(1))
    assert asked == [] and breakers.blocked() == ["rdap x"]
    (circuit,) = breakers.circuits()
    assert circuit.state == OPEN and circuit.retry_at is not None
    time.sleep(1.1)  # past the reset time: one trial question is let through
    assert breakers.blocked() == []
    assert breakers.call("rdap x", lambda: "back") == "back"
    assert breakers.circuits()[0].state == CLOSED


def test_questions_to_one_server_go_side_by_side():
    """Four threads each wait inside their question until all four are inside: a
    breaker that let one question out at a time (pybreaker holds its lock over the
    call) would keep the others out, and the barrier would break."""
    breakers = Breakers(failures=2, reset_seconds=60)
    inside = threading.Barrier(4, timeout=5)

    def ask():
        inside.wait()
        return "an answer"

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: breakers.call("dns 10.0.0.1:53", ask), range(4)))
    assert answers == ["an answer"] * 4
    assert breakers.circuits()[0].state == CLOSED


@contextlib.contextmanager
def _held_question(breakers, answer):
    """A question to "rdap x" asked in a thread and held there, inside the breaker,
    until `release` is set; yields (its future, release)."""
    inside, release = threading.Event(), threading.Event()

    def question():
        inside.set()
        release.wait(5)
        return answer

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(breakers.call, "rdap x", question)
        assert inside.wait(5)
        yield future, release


def test_past_the_reset_time_one_trial_question_goes_out_and_the_rest_wait():
    breakers = Breakers(failures=1, reset_seconds=0.5)
    with pytest.raises(RegistryUnreachable):
        breakers.call("rdap x", _raise(ServerDown("no answer")))
    time.sleep(0.6)
    with _held_question(breakers, "back") as (answer, release):
        assert breakers.circuits()[0].state == HALF_OPEN
        asked = []
        with pytest.raises(RegistryUnreachable, match="circuit open"):
            breakers.call("rdap x", lambda: asked.append(1))
        assert asked == []
        release.set()
        assert answer.result(5) == "back"
    assert breakers.circuits()[0].state == CLOSED
    # A failed trial opens the circuit again for the whole reset time.
    with pytest.raises(RegistryUnreachable):
        breakers.call("rdap x", _raise(ServerDown("no answer")))
    time.sleep(0.6)
    with pytest.raises(RegistryUnreachable):
        breakers.call("rdap x", _raise(ServerDown("still no answer")))
    assert breakers.blocked() == ["rdap x"]


def test_an_answer_to_a_question_asked_before_the_circuit_opened_closes_it():
    breakers = Breakers(failures=1, reset_seconds=60)
    with _held_question(breakers, "late answer") as (late, release):
        with pytest.raises(RegistryUnreachable):
            breakers.call("rdap x", _raise(ServerDown("no answer")))
        assert breakers.blocked() == ["rdap x"]
        release.set()
        assert late.result(5) == "late answer"
    assert breakers.circuits()[0].state == CLOSED and breakers.blocked() == []


def test_an_answer_that_is_not_a_failure_leaves_the_circuit_closed():
    breakers = Breakers(failures=1, reset_seconds=60)
    for _ in range(3):
        with pytest.raises(RetryLater):  # a 429 or the rate limit: the server is there
            breakers.call("rdap x", _raise(RetryLater("429")))
    assert breakers.circuits()[0].state == CLOSED


def _raise(exc):
    def fail():
        raise exc
    return fail


def test_rdap_down_sends_cases_on_as_registries_unreachable_then_traces_them_again(
        runtime, tracer_with, hosting, fake_dns, fake_rdap):  # noqa: F811
    # Open for 3 s of real time: tracing a case in between took more than 0.3 s
    # once, with the suite in two processes on two cores (the server was asked).
    breakers = Breakers(failures=2, reset_seconds=3.0)
    # Hosts with one IPv4 address each: www.example.com's IPv6 network answers, and
    # its question, asked side by side with the failing one, would count as the
    # server answering in between.
    fake_dns.add_host("cdn.example.com", a=["185.50.0.3"])
    # (The fake serves every registry from one address: no registrar questions, whose
    # answers would count as the server answering.)
    tracer = tracer_with(breakers, give_up_after_seconds=900, registrar_lookup="never")
    fake_rdap.fail("185.50.0.0/16", "500")
    first = open_case(runtime, "img.example.com", domain="example.com")
    # One failure: the circuit is still closed, the batch waits for its retry: a
    # short one (breaker retry_ms, not the registries' 7 s), so the circuit opens soon.
    with pytest.raises(RetryLater) as waited:
        run(runtime, [first], tracer)
    assert waited.value.delay_ms == 2_000
    assert cases(runtime, [first])[0].state == CaseState.NORMALISED
    # The second failure in a row opens it: the case goes on at once, long before
    # the give-up age, marked origin unknown.
    run(runtime, [first], tracer)
    (case,) = cases(runtime, [first])
    assert case.state == CaseState.AWAITING_ASSESSMENT
    assert (case.trace_outcome, case.origin_unknown) == (UNREACHABLE, True)
    assert "registries unreachable" in traces(runtime, first)[0].reason
    # While it is open the server is not asked at all.
    asked = fake_rdap.queries
    other = open_case(runtime, "cdn.example.com", domain="example.com")
    run(runtime, [other], tracer)
    assert fake_rdap.queries == asked
    assert cases(runtime, [other])[0].trace_outcome == UNREACHABLE
    assert breakers.blocked() == [f"rdap http://127.0.0.1:{fake_rdap.port}"]

    # The registry answers again: past the reset time the scheduler's job sends the
    # waiting cases back to be traced, and they are traced in full.
    fake_rdap.heal("185.50.0.0/16")
    time.sleep(3.1)
    assert breakers.blocked() == []
    with runtime.session_factory.begin() as session:
        again = send_back_unreachable(session, now=runtime.clock.now(), limit=100)
    assert sorted(again) == sorted([first, other])
    assert {c.state for c in cases(runtime, again)} == {CaseState.TRACED}
    run(runtime, again, tracer)
    for case in cases(runtime, again):
        assert case.state == CaseState.AWAITING_ASSESSMENT
        assert (case.trace_outcome, case.origin_unknown) == ("traced", False)
        assert case.hosting_abuse_email == "abuse@hoster.de"
    assert len(traces(runtime, first)) == 2  # the first trace is kept as it was
    with runtime.session_factory.begin() as session:  # nothing left to send back
        assert send_back_unreachable(session, now=runtime.clock.now(), limit=100) == []


def test_a_dns_resolver_that_stops_answering_opens_its_circuit(
        runtime, trace_config, bootstrap_dir, fake_rdap):
    from pipeline.core.config import TraceSection

    with FakeDNS() as dns:
        dns.add_host("www.example.com", a=["185.50.0.1"])
        config = trace_config().model_dump()
        config["resolvers"] = [dns.resolver]
        breakers = Breakers(failures=1, reset_seconds=60)
        tracer = Tracer(TraceSection(**config), breakers=breakers)
        try:
            ok = open_case(runtime, "www.example.com")
            fake_rdap.add_network("185.50.0.0/16", {"handle": "N", "startAddress":
                                  "185.50.0.0", "endAddress": "185.50.255.255"})
            run(runtime, [ok], tracer)
            assert cases(runtime, [ok])[0].trace_outcome != UNREACHABLE
            dns.stop()
            breakers.configure(failures=3, reset_seconds=60, retry_ms=2_000)
            # No resolver answers: the case goes on at once, the circuit still closed.
            silent = open_case(runtime, "silent.example.com")
            run(runtime, [silent], tracer)
            assert cases(runtime, [silent])[0].trace_outcome == UNREACHABLE
            assert {c.state for c in breakers.circuits()} == {CLOSED}
            breakers.configure(failures=1, reset_seconds=60, retry_ms=2_000)
            gone = open_case(runtime, "other.example.com")
            run(runtime, [gone], tracer)
            (case,) = cases(runtime, [gone])
            assert case.state == CaseState.AWAITING_ASSESSMENT
            assert (case.trace_outcome, case.origin_unknown) == (UNREACHABLE, True)
            states = {c.server: c.state for c in breakers.circuits()}
            assert states[f"dns 127.0.0.1:{dns.port}"] == OPEN
        finally:
            tracer.close()


def test_the_reconciler_leaves_a_batch_waiting_for_its_retry_alone(runtime):
    case_id = open_case(runtime, "www.example.com")
    deadline = 120
    later = runtime.clock.now() + timedelta(seconds=deadline + 1)
    with runtime.session_factory() as session:
        stuck = find_stuck(session, now=later, deadline_seconds=deadline, limit=100)
    assert stuck.get(TRACE) == [case_id]  # no retry noted: a lost message
    note_retry(runtime.session_factory, [case_id],
               retry_at=runtime.clock.now() + timedelta(seconds=600))
    with runtime.session_factory() as session:
        assert TRACE not in find_stuck(session, now=later, deadline_seconds=deadline,
                                       limit=100)
        # The retry was due and nothing happened past the deadline: lost after all.
        lost = runtime.clock.now() + timedelta(seconds=600 + deadline + 1)
        assert find_stuck(session, now=lost, deadline_seconds=deadline,
                          limit=100)[TRACE] == [case_id]


def test_a_stopped_rdap_server_counts_as_down(trace_config, bootstrap_dir):
    """A refused connection (the server gone, not just slow) is a failure too."""
    from pipeline.adapters.tracing.rdap import RdapClient

    server = FakeRDAP().start()
    port = server.port
    server.stop()
    tracer = Tracer(trace_config(rdap_base_url=f"http://127.0.0.1:{port}/"),
                    breakers=Breakers(failures=1, reset_seconds=60))
    try:
        assert isinstance(tracer.rdap, RdapClient)
        with pytest.raises(RegistryUnreachable):
            tracer.rdap.ip("185.50.0.1")
        with pytest.raises(RegistryUnreachable, match="circuit open"):
            tracer.rdap.ip("185.50.0.1")
    finally:
        tracer.close()


def test_the_trace_actor_notes_when_its_retry_is_due(settings_factory, trace_config,
                                                     hosting, fake_rdap):  # noqa: F811
    import dramatiq

    from pipeline.app.runtime import build_runtime
    from pipeline.app.tracers import forget_tracer
    from pipeline.core.clock import FrozenClock
    from pipeline.core.messaging import RecordingEnqueuer
    from pipeline.store.migrate import upgrade
    from workers import actors, context

    settings = settings_factory(trace=trace_config(give_up_after_seconds=900).model_dump())
    upgrade(settings.database.url)
    rt = build_runtime(settings, clock=FrozenClock())
    rt.enqueuer = RecordingEnqueuer()
    context.set_runtime(rt)
    try:
        fake_rdap.fail("185.50.0.0/16", "429")
        case_id = open_case(rt, "www.example.com", domain="example.com")
        with pytest.raises(dramatiq.Retry):
            actors.trace([case_id])
        (case,) = cases(rt, [case_id])
        assert case.state == CaseState.NORMALISED
        assert case.retry_at.replace(tzinfo=None) == (
            rt.clock.now() + timedelta(milliseconds=7_000)).replace(tzinfo=None)
    finally:
        context.set_runtime(None)
        forget_tracer(rt)
        rt.close()


def test_with_breakers_the_next_resolver_answers_when_the_first_is_silent(fake_dns):
    from pipeline.adapters.tracing import dns as tdns

    with FakeDNS() as second:
        fake_dns.fail("www.example.com", "timeout")
        second.add_host("www.example.com", a=["185.1.1.1"])
        breakers = Breakers(failures=3, reset_seconds=60)
        client = tdns.DnsClient([(fake_dns.address, fake_dns.port),
                                 (second.address, second.port)],
                                timeout=0.5, lifetime=2.0, breakers=breakers)
        result = client.resolve_host("www.example.com")
    assert result.outcome == tdns.OK
    assert result.resolver == f"127.0.0.1:{second.port}"
    failures = {c.server: c.failures for c in breakers.circuits()}  # A, then AAAA
    assert failures == {f"dns 127.0.0.1:{fake_dns.port}": 2, f"dns 127.0.0.1:{second.port}": 0}
