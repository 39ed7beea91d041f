"""The worker context: the runtime the actors work with, set once per process."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    """In a fresh process (other tests here bind the actors to real brokers)."""
    code = ("from dramatiq.brokers.stub import StubBroker\n"
            "from workers import context\n"
            "from workers.actors import ACTORS\n"
            "assert isinstance(context.placeholder_broker, StubBroker)\n"
            "assert ACTORS and all(a.broker is context.placeholder_broker\n"
            "                      for a in ACTORS.values())\n"
            "print('ok')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
