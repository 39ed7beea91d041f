"""The tracer of this process for a runtime, and what settles reports at intake
(`settler_for`, which traces new cases from the tracer's caches): made on first use,
then shared, and closed with the runtime.

Apart from `pipeline.app.runtime` so that a process that only takes reports in
(`hotline import`, `hotline submit`) does not load the DNS and RDAP clients: they
were about a tenth of `hotline import`'s start-up (python -X importtime).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from pipeline.adapters.tracing.ratelimit import RateLimiter
from pipeline.adapters.tracing.tracer import Tracer
from pipeline.app.runtime import Runtime
from pipeline.core.errors import ConfigError
from pipeline.domain.urls import canonicaliser_for, warm_up
from pipeline.stages.dedupe import DedupClaims, IntakeSettler, dedupe_options
from pipeline.stages.intake import FIRST_ALONE_ABOVE
from pipeline.stages.queueing import configured_rules

_tracers_lock = threading.RLock()  # a settler is made with the tracer, under the lock
_tracers: dict[int, tuple[Runtime, Tracer]] = {}
_settlers: dict[int, tuple[Runtime, IntakeSettler | None]] = {}


def _once(held: dict[int, tuple[Runtime, Any]], runtime: Runtime, make: Callable[[], Any],
          forget: Callable[[Runtime], None]) -> Any:
    """What `make` made for `runtime` in this process (made on first use, then shared;
    `forget` runs when the runtime closes)."""
    with _tracers_lock:
        found = held.get(id(runtime))
        if found is not None and found[0] is runtime:
            return found[1]
        made = make()
        held[id(runtime)] = (runtime, made)
        runtime.closers.append(lambda: forget(runtime))
        return made


def tracer_for(runtime: Runtime) -> Tracer:
    """The tracer of this process for `runtime` (made on first use, then shared).

    One tracer per process holds the DNS and RDAP clients and the caches."""
    tracer: Tracer = _once(_tracers, runtime, lambda: Tracer(
        runtime.settings.trace, redis=runtime.redis,
        namespace=runtime.settings.redis.namespace), forget_tracer)
    return tracer


def settler_for(runtime: Runtime) -> IntakeSettler | None:
    """What settles reports in their intake transaction in this process
    (`pipeline.stages.intake.Settle`), or None when `intake.settle_up_to` is 0.

    Unset, every submission is settled at intake with the in-process broker (embedded:
    the same process does the work either way, and each report is then written once),
    and submissions of at most 100 reports with a Redis broker: of a larger request
    only the first report, since the request would wait for all of it (measured: a
    1,000-report API request settled whole showed its first report after 227 ms, the
    workers' way after about 110) while the workers settle the rest side by side. An
    import settles every commit whole (`pipeline.stages.importer`)."""
    settler: IntakeSettler | None = _once(_settlers, runtime, lambda: _settler(runtime),
                                          forget_settler)
    return settler


def _settler(runtime: Runtime) -> IntakeSettler | None:
    settings = runtime.settings
    up_to = settings.intake.settle_up_to
    if up_to is None:
        up_to = (FIRST_ALONE_ABOVE if settings.broker.is_redis
                 else max(settings.intake.max_batch, settings.intake.import_commit_every))
    if up_to == 0:
        return None
    return IntakeSettler(up_to=up_to, options={
        **dedupe_options(settings, runtime.redis),
        "canonicaliser": canonicaliser_for(settings.urls), "tracer": tracer_for(runtime)})


def ready_to_settle(runtime: Runtime) -> None:
    """Make this process's settler and build the suffix list's lookup tree now (a web
    process does as it starts), not inside its first intake request: measured, that
    tree is most of a second (`pipeline.domain.urls.warm_up`). Then open the
    connections intake uses (`Runtime.connect_ahead`)."""
    if settler_for(runtime) is not None:
        warm_up()
        _load_rules()  # new cases traced from the caches are queued by them
    runtime.connect_ahead(DedupClaims.SCRIPTS)


def ready_to_work(runtime: Runtime) -> None:
    """What a worker's first messages would otherwise load: this process's tracer
    and the priority rules (the configuration file read and parsed), and the
    connections they use (`Runtime.connect_ahead`). A worker does this as it starts:
    measured (make bench, API path), the first trace of a new worker took 100 ms
    longer than the next ones, and the first report of the first request waited on
    it."""
    tracer_for(runtime)
    _load_rules()
    runtime.connect_ahead((*DedupClaims.SCRIPTS, *RateLimiter.SCRIPTS))


def _load_rules() -> None:
    """The priority rules, loaded now; a problem with them is said at start-up
    (`pipeline.app.preflight`) and again by the stage that needs them."""
    with contextlib.suppress(ConfigError):
        configured_rules()


def forget_settler(runtime: Runtime) -> None:
    with _tracers_lock:
        _settlers.pop(id(runtime), None)


def forget_tracer(runtime: Runtime) -> None:
    """Close and drop the tracer made for `runtime` (tests, shutdown)."""
    with _tracers_lock:
        held = _tracers.pop(id(runtime), None)
    if held is not None:
        held[1].close()
