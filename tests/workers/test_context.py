"""The worker context: the runtime the actors work with, set once per process."""

from __future__ import annotations

import pytest
from dramatiq.brokers.stub import StubBroker

from workers import context


def test_the_runtime_must_be_installed_before_an_actor_asks_for_it():
    context.set_runtime(None)
    with pytest.raises(RuntimeError, match="install"):
        context.runtime()


def test_the_installed_runtime_is_the_one_handed_out(sqlite_runtime):
    context.set_runtime(sqlite_runtime)
    try:
        assert context.runtime() is sqlite_runtime
    finally:
        context.set_runtime(None)
    with pytest.raises(RuntimeError):
        context.runtime()


def test_importing_the_actors_never_picks_a_real_broker():
    from workers.actors import ACTORS

    assert isinstance(context.placeholder_broker, StubBroker)
    for actor in ACTORS.values():
        assert actor.broker is context.placeholder_broker
