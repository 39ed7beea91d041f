"""How the domain asks for the next stage without knowing the broker.

The workers package implements `Enqueuer` with dramatiq actors; tests may use a list.
Messages carry ids only, in batches, so that a 1,000-report intake is a handful of
messages and a handful of commits per stage, while a single report flows at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

# Stage names, in pipeline order. Each names a dramatiq actor and its queue.
NORMALISE = "normalise"
DEDUPE = "dedupe"
TRACE = "trace"
ROUTE = "route"  # assessed cases -> rules -> planned notices
DISPATCH = "dispatch"  # notice ids -> delivered exactly once

# Every stage queue, in pipeline order: the actors consume them, health reports them.
STAGE_QUEUES = (NORMALISE, DEDUPE, TRACE, ROUTE, DISPATCH)


class Enqueuer(Protocol):
    def send(self, stage: str, ids: Sequence[int]) -> None:
        """Ask for `stage` to run on `ids` (split into batches as configured)."""


class RecordingEnqueuer:
    """Keeps what was sent; for tests and dry runs."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, list[int]]] = []

    def send(self, stage: str, ids: Sequence[int]) -> None:
        if ids:
            self.sent.append((stage, list(ids)))

    def ids(self, stage: str) -> list[int]:
        return [i for s, batch in self.sent if s == stage for i in batch]


def chunks(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]
