"""One thin actor per stage: open a transaction, call the stage, commit, send on.

Actors stay plain callables: calling `normalise([1, 2])` runs the stage directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dramatiq

from pipeline.dedupe import dedupe_reports
from pipeline.errors import BadInput, PermanentError, RetryLater
from pipeline.messaging import DEDUPE, NORMALISE, TRACE
from pipeline.normalise import normalise_reports
from pipeline.trace import trace_cases
from workers import context
from workers.broker import placeholder_broker

PERMANENT = (PermanentError, BadInput)


def run_stage(stage: Callable[..., list[int]], ids: Sequence[int], next_stage: str | None) -> None:
    rt = context.runtime()
    try:
        with rt.session_factory.begin() as session:
            next_ids = stage(session, ids, clock=rt.clock)
    except RetryLater as exc:
        raise dramatiq.Retry(str(exc), delay=exc.delay_ms) from exc
    if next_stage and next_ids:
        rt.enqueuer.send(next_stage, next_ids)


@dramatiq.actor(queue_name=NORMALISE, actor_name=NORMALISE, throws=PERMANENT,
                broker=placeholder_broker)
def normalise(report_ids: list[int]) -> None:
    run_stage(normalise_reports, report_ids, DEDUPE)


@dramatiq.actor(queue_name=DEDUPE, actor_name=DEDUPE, throws=PERMANENT,
                broker=placeholder_broker)
def dedupe(report_ids: list[int]) -> None:
    run_stage(dedupe_reports, report_ids, TRACE)


@dramatiq.actor(queue_name=TRACE, actor_name=TRACE, throws=PERMANENT,
                broker=placeholder_broker)
def trace(case_ids: list[int]) -> None:
    run_stage(trace_cases, case_ids, None)


# Every actor, by stage name. Later stages add theirs here.
ACTORS: dict[str, dramatiq.Actor] = {a.actor_name: a for a in (normalise, dedupe, trace)}
