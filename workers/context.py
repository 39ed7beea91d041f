"""The runtime the actors of this process work with (set once by `workers.broker`), and
the placeholder broker they are declared against until then."""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from pipeline.app.runtime import Runtime

# Actors are declared against this until `workers.broker.install` binds them to the
# real broker, so importing the actors never makes dramatiq pick a default (RabbitMQ)
# broker.
placeholder_broker = StubBroker()
dramatiq.set_broker(placeholder_broker)

_runtime: Runtime | None = None


def set_runtime(runtime: Runtime | None) -> None:
    global _runtime
    _runtime = runtime


def runtime() -> Runtime:
    if _runtime is None:
        raise RuntimeError("workers.broker.install() has not been called in this process")
    return _runtime
