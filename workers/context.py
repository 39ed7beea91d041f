"""The runtime the actors of this process work with (set once by `workers.broker`)."""

from __future__ import annotations

from pipeline.app.runtime import Runtime

_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("workers.broker.install() has not been called in this process")
    return _runtime
