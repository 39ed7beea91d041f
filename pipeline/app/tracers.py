"""The tracer of this process for a runtime: made on first use, then shared.

Apart from `pipeline.app.runtime` so that a process that only takes reports in
(`hotline import`, `hotline submit`) does not load the DNS and RDAP clients: they
were about a tenth of `hotline import`'s start-up (python -X importtime).
"""

from __future__ import annotations

import threading

from pipeline.adapters.tracing.tracer import Tracer
from pipeline.app.runtime import Runtime

_tracers_lock = threading.Lock()
_tracers: dict[int, tuple[Runtime, Tracer]] = {}


def tracer_for(runtime: Runtime) -> Tracer:
    """The tracer of this process for `runtime` (made on first use, then shared).

    One tracer per process holds the DNS and RDAP clients and the caches."""
    with _tracers_lock:
        held = _tracers.get(id(runtime))
        if held is not None and held[0] is runtime:
            return held[1]
        tracer = Tracer(runtime.settings.trace, redis=runtime.redis,
                        namespace=runtime.settings.redis.namespace)
        _tracers[id(runtime)] = (runtime, tracer)
        return tracer


def forget_tracer(runtime: Runtime) -> None:
    """Close and drop the tracer made for `runtime` (tests, shutdown)."""
    with _tracers_lock:
        held = _tracers.pop(id(runtime), None)
    if held is not None:
        held[1].close()
