from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import func, select

from pipeline.app.runtime import Runtime, build_runtime
from pipeline.core.clock import SystemClock
from pipeline.store.models import Report
from workers import context
from workers.broker import install, start_worker
from workers.context import placeholder_broker


@pytest.fixture
def broker_runtime_factory(settings_factory) -> Iterator[Callable[..., Runtime]]:
    """A runtime wired to a real broker (memory:// or Redis), with a worker to start."""
    made: list[tuple[Runtime, object]] = []

    def make(**sections) -> Runtime:
        from pipeline.store.migrate import upgrade

        settings = settings_factory(**sections)
        upgrade(settings.database.url)
        runtime = build_runtime(settings, clock=SystemClock())
        broker = install(runtime)
        runtime.broker = broker  # type: ignore[attr-defined]
        made.append((runtime, broker))
        return runtime

    yield make
    from workers.actors import ACTORS

    for runtime, broker in made:
        worker = getattr(runtime, "worker", None)
        if worker is not None:
            worker.stop()
        client = getattr(broker, "client", None)
        if client is not None:  # Redis: what the stopped consumers wrote last (heartbeats)
            for key in client.scan_iter(match=f"{broker.namespace}:*", count=1000):
                client.delete(key)
        broker.close()
        runtime.close()
    for actor in ACTORS.values():
        actor.broker = placeholder_broker
    context.set_runtime(None)


def run_worker(runtime: Runtime, threads: int = 2):
    runtime.worker = start_worker(runtime.broker, threads)  # type: ignore[attr-defined]
    return runtime.worker


def wait_for(predicate: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or predicate}")


def report_states(runtime: Runtime) -> dict[str, int]:
    with runtime.session_factory() as session:
        return dict(session.execute(
            select(Report.state, func.count()).group_by(Report.state)).all())
