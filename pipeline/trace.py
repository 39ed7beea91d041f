"""Stage 3: hosting-origin tracing (pass-through until the tracer lands).

Steps of `trace_cases`:
1. lock the given cases that are `normalised` (or `traced` but not yet queued),
2. trace each (placeholder: origin unknown),
3. place them in the assessment queue.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from pipeline.clock import Clock
from pipeline.lifecycle import transition
from pipeline.models import Case
from pipeline.normalise import lock_in_state
from pipeline.queueing import queue_for_assessment
from pipeline.states import CaseState


def trace_cases(session: Session, case_ids: Sequence[int], *, clock: Clock) -> list[int]:
    now = clock.now()
    cases = lock_in_state(session, Case, case_ids, CaseState.NORMALISED, CaseState.TRACED)
    for case in cases:
        if case.state == CaseState.NORMALISED:
            transition(session, case, CaseState.TRACED, at=now, data={"outcome": "not_traced"})
    queue_for_assessment(session, cases, at=now)
    return []
