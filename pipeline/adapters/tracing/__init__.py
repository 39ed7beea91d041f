"""Hosting-origin tracing: DNS, RDAP, CDNs and big providers, jurisdiction.

`Tracer` (pipeline.adapters.tracing.tracer) does the network work for a batch of hosts;
`pipeline.stages.trace.trace_cases` is the stage that records its results on cases.
One tracer per process holds the clients and caches: `tracer_for(runtime)`.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.adapters.tracing.tracer import Tracer
    from pipeline.app.runtime import Runtime

_lock = threading.Lock()
_tracers: dict[int, tuple[Runtime, Tracer]] = {}


def tracer_for(runtime: Runtime) -> Tracer:
    """The tracer of this process for `runtime` (made on first use, then shared)."""
    from pipeline.adapters.tracing.tracer import Tracer

    with _lock:
        held = _tracers.get(id(runtime))
        if held is not None and held[0] is runtime:
            return held[1]
        tracer = Tracer(runtime.settings.trace, redis=runtime.redis,
                        namespace=runtime.settings.redis.namespace)
        _tracers[id(runtime)] = (runtime, tracer)
        return tracer


def forget_tracer(runtime: Runtime) -> None:
    """Close and drop the tracer made for `runtime` (tests, shutdown)."""
    with _lock:
        held = _tracers.pop(id(runtime), None)
    if held is not None:
        held[1].close()
