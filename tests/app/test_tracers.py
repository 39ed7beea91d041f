"""The tracer of a process for a runtime (pipeline.app.tracers): made on first use
with the runtime's trace settings, shared after that, closed and dropped by
`forget_tracer`."""

from __future__ import annotations

import pytest

from pipeline.adapters.tracing.ratelimit import RateLimiter
from pipeline.app import tracers
from pipeline.app.runtime import build_runtime
from pipeline.core.clock import FrozenClock
from pipeline.stages.dedupe import DedupClaims


@pytest.fixture
def two_runtimes(settings_factory, tmp_path):
    one = build_runtime(settings_factory(), clock=FrozenClock())
    other = build_runtime(settings_factory(database={"url": f"sqlite:///{tmp_path}/b.db"}),
                          clock=FrozenClock())
    yield one, other
    for rt in (one, other):
        tracers.forget_tracer(rt)
        rt.close()


def test_one_tracer_per_runtime_made_from_its_settings(two_runtimes):
    one, other = two_runtimes
    tracer = tracers.tracer_for(one)
    assert tracers.tracer_for(one) is tracer
    assert tracers.tracer_for(other) is not tracer
    assert tracer.config is one.settings.trace


def test_a_forgotten_tracer_is_closed_and_the_next_use_makes_a_new_one(two_runtimes,
                                                                      monkeypatch):
    one, _ = two_runtimes
    tracer = tracers.tracer_for(one)
    closed = []
    monkeypatch.setattr(tracer, "close", lambda: closed.append(tracer))
    tracers.forget_tracer(one)
    assert closed == [tracer]
    assert tracers.tracer_for(one) is not tracer
    tracers.forget_tracer(one)
    tracers.forget_tracer(one)  # nothing held: nothing to close
    assert closed == [tracer]


def test_a_process_connects_ahead_with_the_scripts_its_work_runs(two_runtimes, monkeypatch):
    """The web app loads the dedup claims' scripts, a worker those and the RDAP rate
    limiter's (`Runtime.connect_ahead`)."""
    one, _ = two_runtimes
    asked: list[tuple[str, ...]] = []
    monkeypatch.setattr(type(one), "connect_ahead",
                        lambda self, scripts=(): asked.append(tuple(scripts)))
    tracers.ready_to_settle(one)
    tracers.ready_to_work(one)
    assert asked == [DedupClaims.SCRIPTS, (*DedupClaims.SCRIPTS, *RateLimiter.SCRIPTS)]
    assert all(isinstance(script, str) and "redis.call" in script for script in asked[1])
