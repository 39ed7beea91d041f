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

The breaker is this module's own, some sixty lines: the well-kept library,
pybreaker, holds a breaker's lock for the whole guarded call (`CircuitBreaker.call`),
so every question a worker's threads asked one resolver went one at a time. That is
pybreaker's documented design (danielfm/pybreaker issue #3; pull requests #40, #41,
#57 and #77, which lifted the lock, were closed unmerged), and it made tracing wait
on the round trip of one question at a time: the trace threads of a worker spent the
benchmark queued on that lock (py-spy). Here the lock guards only the bookkeeping
before and after a question; questions to one server go side by side. The
`circuitbreaker` package has no lock at all. The states of this process's breakers
are in `BREAKERS`; they are shown by `hotline status` (for the process it runs in;
`hotline run` writes them to the heartbeat table: see `pipeline.app.health`),
/metrics and the console.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

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


class _Breaker:
    """The circuit of one server. Closed: questions go out side by side and
    `failures` in a row open it. Open: no question goes out until `reset_seconds`
    have passed; then one trial question is let through (half open) while the others
    still fail at once; its answer closes the circuit, its failure opens it again. A
    question asked before the circuit opened may still come back: an answer closes
    it (the server is there), a failure leaves it open as it was."""

    def __init__(self, name: str, owner: Breakers):
        self.name, self.owner = name, owner
        self.lock = threading.Lock()
        self.state = CLOSED
        self.failures = 0
        self.opened_at: datetime | None = None
        self._reopen_at = 0.0  # time.monotonic() when a trial question may go out

    def admit(self) -> bool:
        """May a question go out now? Moves an open circuit past its reset time to
        half open, the caller's question being the trial."""
        with self.lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN and time.monotonic() >= self._reopen_at:
                self.state = HALF_OPEN
                return True
            return False

    def answered(self) -> None:
        with self.lock:
            self.failures = 0
            if self.state == CLOSED:
                return
            self.state, self.opened_at = CLOSED, None
        CIRCUIT_OPEN.labels(self.name).set(0)
        log.info("Registry %s answers again: its circuit is closed.", self.name)

    def abandoned(self) -> None:
        """The question was interrupted: a trial question may go out again at once."""
        with self.lock:
            if self.state == HALF_OPEN:
                self.state, self._reopen_at = OPEN, time.monotonic()

    def failed(self) -> bool:
        """Count a failure; True when the circuit is open after it."""
        with self.lock:
            self.failures += 1
            if self.state == OPEN:
                return True
            if self.state == CLOSED and self.failures < self.owner.failures:
                return False
            reset = self.owner.reset_seconds
            self.state, self.opened_at = OPEN, datetime.now(UTC)
            self._reopen_at = time.monotonic() + reset
        CIRCUIT_OPEN.labels(self.name).set(1)
        CIRCUIT_TRIPS.labels(self.name).inc()
        log.warning("Registry %s does not answer: its circuit is open for %.0f s; "
                    "cases go on as 'origin unknown: registries unreachable'.",
                    self.name, reset)
        return True

    def circuit(self) -> Circuit:
        with self.lock:
            state, failures, opened = self.state, self.failures, self.opened_at
        retry = (opened + timedelta(seconds=self.owner.reset_seconds)
                 if opened is not None and state != CLOSED else None)
        return Circuit(self.name, state, failures, opened if state != CLOSED else None,
                       retry)


class Breakers:
    """The breakers of one process, made on first use per server name."""

    def __init__(self, *, failures: int = 3, reset_seconds: float = 60.0,
                 retry_ms: int = 2_000):
        self.failures, self.reset_seconds, self.retry_ms = failures, reset_seconds, retry_ms
        self._lock = threading.Lock()
        self._breakers: dict[str, _Breaker] = {}

    def configure(self, *, failures: int, reset_seconds: float, retry_ms: int) -> None:
        """New settings for the breakers made from now on and those made already."""
        with self._lock:
            self.failures, self.reset_seconds, self.retry_ms = (failures, reset_seconds,
                                                                retry_ms)

    def _breaker(self, server: str) -> _Breaker:
        found = self._breakers.get(server)
        if found is None:
            with self._lock:
                found = self._breakers.setdefault(server, _Breaker(server, self))
        return found

    def call(self, server: str, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` through the breaker of `server`. Raises `RegistryUnreachable`
        when its circuit is open, or when this failure opened it; `ServerDown` for a
        failure that left it closed; anything else `func` raises, unchanged (and
        counted as an answer: the server is there). A failure that left the circuit
        closed is retried after `retry_ms` at most: the next failures open it soon,
        not after the registries' usual retry delay."""
        self.admit(server)
        try:
            result = func(*args)
        except BaseException as exc:
            meant = self.settle(server, exc)
            if meant is exc or meant is None:
                raise
            raise meant from exc
        self.settle(server, None)
        return result

    def admit(self, server: str) -> None:
        """Let a question to `server` go out, or raise `RegistryUnreachable` when its
        circuit is open. Each question admitted is then settled (`settle`)."""
        if not self._breaker(server).admit():
            raise RegistryUnreachable(
                server, f"registries unreachable: {server} does not answer (circuit open)",
                int(self.reset_seconds * 1000))

    def abandon(self, server: str) -> None:
        """A question admitted to `server` was interrupted before any outcome: a trial
        question may go out again at once."""
        self._breaker(server).abandoned()

    def settle(self, server: str, outcome: BaseException | None) -> BaseException | None:
        """Count the outcome of a question admitted to `server` (None: an answer) and
        return what it means, as `call` raises it: `RegistryUnreachable` for a
        failure (`ServerDown`) that opened the circuit, else the outcome itself."""
        breaker = self._breaker(server)
        if outcome is None:
            breaker.answered()
            return None
        if isinstance(outcome, ServerDown):
            if breaker.failed():
                unreachable = RegistryUnreachable(
                    server, f"registries unreachable: {server} does not answer ({outcome})",
                    int(self.reset_seconds * 1000))
                unreachable.__cause__ = outcome
                return unreachable
            outcome.delay_ms = min(outcome.delay_ms, self.retry_ms)
            return outcome
        if isinstance(outcome, Exception):  # an answer that is a failure: it is there
            breaker.answered()
        else:  # interrupted: no answer either way
            breaker.abandoned()
        return outcome

    def circuits(self) -> list[Circuit]:
        with self._lock:
            breakers = list(self._breakers.values())
        return sorted((b.circuit() for b in breakers), key=lambda c: c.server)

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
