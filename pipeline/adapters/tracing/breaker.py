"""Circuit breakers, one per DNS resolver and per RDAP server.

Without them, a hotline cut off from the internet (or with its registries down)
waited out every timeout of every question, retried each batch for up to
`trace.give_up_after_seconds`, and piled up dead letters. With them:

1. every question to a server goes through that server's breaker; a timeout, a
   refused connection or a 5xx answer counts as a failure (`ServerDown`); any other
   answer (NXDOMAIN, 404, 429...) shows the server is there and counts as a success;
2. after `trace.breaker_failures` failures in a row the circuit opens: for
   `trace.breaker_reset_seconds` the server is not asked at all and the question
   fails at once with `RegistryUnreachable`;
3. the tracer records a case whose registries are unreachable as "origin unknown:
   registries unreachable" (outcome `registries_unreachable`) and it goes on to the
   analysts within seconds; the scheduler's `retrace-unreachable` job sends such
   cases to be traced again once no circuit is open any more;
4. after the reset time one question is let through (half open): an answer closes
   the circuit, a failure opens it again.

The breakers are pybreaker's (danielfm/pybreaker, maintained, thread-safe with a
lock, listeners for state changes, exclusion of exceptions that are not failures).
The `circuitbreaker` package was the other candidate: a decorator without a lock
or listeners, a worse fit for per-server breakers made at run time and shared by the
tracer's threads. The states of this process's breakers are in `BREAKERS`; they are
shown by `hotline status` (for the process it runs in; `hotline run` writes them
to the heartbeat table: see `pipeline.app.health`), /metrics and the console.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pybreaker
from prometheus_client import Counter, Gauge

from pipeline.core.errors import RetryLater

log = logging.getLogger(__name__)

T = TypeVar("T")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"

CIRCUIT_OPEN = Gauge(
    "hotline_registry_circuit_open", "1 while the circuit of a DNS resolver or RDAP "
    "server is open (it is not asked; cases go on as 'registries unreachable').",
    ["server"], multiprocess_mode="livemax")
CIRCUIT_TRIPS = Counter(
    "hotline_registry_circuit_trips", "Times the circuit of a DNS resolver or RDAP "
    "server opened.", ["server"])


class ServerDown(RetryLater):
    """A server did not answer: a timeout, a refused connection, a 5xx answer. It
    counts against the server's circuit."""

    def __init__(self, message: str, delay_ms: int = 5_000,
                 cause: BaseException | None = None):
        super().__init__(message, delay_ms=delay_ms)
        self.cause = cause


class RegistryUnreachable(RetryLater):
    """The circuit of `server` is open: the question was not asked (or the failure
    just now opened it)."""

    def __init__(self, server: str, message: str, delay_ms: int):
        super().__init__(message, delay_ms=delay_ms)
        self.server = server


class UnreachableReason(str):
    """A reason (text) saying that a registry is unreachable: the tracer carries
    reasons as text through its (reason, delay) pairs; this kind tells them apart."""

    __slots__ = ()


def reason_of(exc: RetryLater) -> str:
    """The text of a passing failure, marked when it says a registry is unreachable."""
    return UnreachableReason(exc) if isinstance(exc, RegistryUnreachable) else str(exc)


@dataclass(frozen=True)
class Circuit:
    server: str
    state: str
    failures: int
    opened_at: datetime | None
    retry_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return {"server": self.server, "state": self.state, "failures": self.failures,
                "opened_at": self.opened_at.isoformat() if self.opened_at else None,
                "retry_at": self.retry_at.isoformat() if self.retry_at else None}


class _Listener(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: Any,
                     new_state: Any) -> None:
        name = new_state.name
        CIRCUIT_OPEN.labels(cb.name).set(1 if name == OPEN else 0)
        if name == OPEN:
            CIRCUIT_TRIPS.labels(cb.name).inc()
            log.warning("Registry %s does not answer: its circuit is open for %.0f s; "
                        "cases go on as 'origin unknown: registries unreachable'.",
                        cb.name, cb.reset_timeout)
        elif name == CLOSED and old_state is not None and old_state.name != CLOSED:
            log.info("Registry %s answers again: its circuit is closed.", cb.name)


def _not_a_failure(exc: BaseException) -> bool:
    return not isinstance(exc, ServerDown)


class Breakers:
    """The breakers of one process, made on first use per server name."""

    def __init__(self, *, failures: int = 3, reset_seconds: float = 60.0,
                 retry_ms: int = 2_000):
        self.failures, self.reset_seconds, self.retry_ms = failures, reset_seconds, retry_ms
        self._lock = threading.Lock()
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}

    def configure(self, *, failures: int, reset_seconds: float, retry_ms: int) -> None:
        """New settings for the breakers made from now on and those made already."""
        with self._lock:
            self.failures, self.reset_seconds, self.retry_ms = (failures, reset_seconds,
                                                                retry_ms)
            for breaker in self._breakers.values():
                breaker.fail_max, breaker.reset_timeout = failures, reset_seconds

    def breaker(self, server: str) -> pybreaker.CircuitBreaker:
        with self._lock:
            found = self._breakers.get(server)
            if found is None:
                found = pybreaker.CircuitBreaker(
                    fail_max=self.failures, reset_timeout=self.reset_seconds,
                    exclude=[_not_a_failure], listeners=[_Listener()], name=server,
                    throw_new_error_on_trip=False)
                self._breakers[server] = found
            return found

    def call(self, server: str, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` through the breaker of `server`. Raises `RegistryUnreachable`
        when its circuit is open, or when this failure opened it; `ServerDown` for a
        failure that left it closed; anything else `func` raises, unchanged. A failure
        that left the circuit closed is retried after `retry_ms` at most: the next
        failures open it soon, not after the registries' usual retry delay."""
        breaker = self.breaker(server)
        delay_ms = int(self.reset_seconds * 1000)
        try:
            return breaker.call(func, *args)
        except pybreaker.CircuitBreakerError:
            raise RegistryUnreachable(
                server, f"registries unreachable: {server} does not answer (circuit open)",
                delay_ms) from None
        except ServerDown as exc:
            if breaker.current_state == OPEN:
                raise RegistryUnreachable(
                    server, f"registries unreachable: {server} does not answer ({exc})",
                    delay_ms) from exc
            exc.delay_ms = min(exc.delay_ms, self.retry_ms)
            raise

    def circuits(self) -> list[Circuit]:
        with self._lock:
            breakers = list(self._breakers.values())
        out = []
        for breaker in breakers:
            opened = breaker._state_storage.opened_at  # noqa: SLF001 - no public getter
            state = breaker.current_state
            retry = (opened + timedelta(seconds=breaker.reset_timeout)
                     if opened is not None and state != CLOSED else None)
            out.append(Circuit(breaker.name or "", state, breaker.fail_counter,
                               opened if state != CLOSED else None, retry))
        return sorted(out, key=lambda c: c.server)

    def blocked(self, now: datetime | None = None) -> list[str]:
        """Servers whose circuit is open and not yet due for a trial question."""
        now = now or datetime.now(UTC)
        return [c.server for c in self.circuits()
                if c.state == OPEN and c.retry_at is not None and c.retry_at > now]

    def reset(self) -> None:
        """Close every circuit and forget the servers (tests)."""
        with self._lock:
            breakers, self._breakers = list(self._breakers.values()), {}
        for breaker in breakers:
            CIRCUIT_OPEN.labels(breaker.name).set(0)


# The breakers of this process, shared by every tracer in it (a server is one server
# whichever thread asks it).
BREAKERS = Breakers()
