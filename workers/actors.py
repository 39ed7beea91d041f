"""One thin actor per stage: open a transaction, call the stage, commit, send on.

Actors stay plain callables: calling `normalise([1, 2])` runs the stage directly.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from datetime import timedelta

import dramatiq

from pipeline.app.tracers import tracer_for
from pipeline.core.errors import BadInput, PermanentError, RetryLater
from pipeline.core.messaging import DEDUPE, DISPATCH, NORMALISE, ROUTE, TRACE
from pipeline.domain.urls import configure as configure_urls
from pipeline.stages.dedupe import dedupe_options, dedupe_reports, normalise_and_dedupe
from pipeline.stages.dispatch import deliver_notices
from pipeline.stages.routing import route_cases
from pipeline.stages.trace import note_retry, trace_cases
from pipeline.store.db import deadlock_retried
from workers import context
from workers.context import placeholder_broker

PERMANENT = (PermanentError, BadInput)

# Within a worker, messages already fetched run later stages first (dramatiq: lower
# runs first; the default is 0): a TRACE batch of new hosts does not wait behind the
# normalise batches fetched with it, so a case already in the pipeline reaches the
# analysts before newer reports are started.
FIRST_STAGES_PRIORITY = 20
TRACE_PRIORITY = 10


def run_stage(stage: Callable[..., list[int]], ids: Sequence[int], next_stage: str | None) -> None:
    rt = context.runtime()
    try:
        name = getattr(stage, "func", stage).__name__
        with deadlock_retried(name), rt.session_factory.begin() as session:
            next_ids = stage(session, ids, clock=rt.clock)
    except RetryLater as exc:
        raise dramatiq.Retry(str(exc), delay=exc.delay_ms) from exc
    if next_stage and next_ids:
        rt.enqueuer.send(next_stage, next_ids)


@dramatiq.actor(queue_name=NORMALISE, actor_name=NORMALISE, throws=PERMANENT,
                priority=FIRST_STAGES_PRIORITY, broker=placeholder_broker)
def normalise(report_ids: list[int]) -> None:
    """Normalisation and deduplication in one transaction (each report is locked and
    written once); new cases whose hosts the tracer's caches answer are traced and
    queued in it too, the others go to TRACE. The dedupe actor serves reports found
    `normalised` by the reconciler."""
    rt = context.runtime()
    configure_urls(rt.settings.urls)
    options = dedupe_options(rt.settings, rt.redis)
    run_stage(functools.partial(normalise_and_dedupe, **options, tracer=tracer_for(rt)),
              report_ids, TRACE)


@dramatiq.actor(queue_name=DEDUPE, actor_name=DEDUPE, throws=PERMANENT,
                priority=FIRST_STAGES_PRIORITY, broker=placeholder_broker)
def dedupe(report_ids: list[int]) -> None:
    rt = context.runtime()
    options = dedupe_options(rt.settings, rt.redis)
    run_stage(functools.partial(dedupe_reports, **options, tracer=tracer_for(rt)),
              report_ids, TRACE)


@dramatiq.actor(queue_name=TRACE, actor_name=TRACE, throws=PERMANENT,
                priority=TRACE_PRIORITY, broker=placeholder_broker)
def trace(case_ids: list[int]) -> None:
    rt = context.runtime()
    tracer = tracer_for(rt)
    rerouted: list[int] = []
    # trace_cases hands back the cases another transaction held: they go round again.
    try:
        run_stage(functools.partial(trace_cases, tracer=tracer, rerouted=rerouted),
                  case_ids, TRACE)
    except dramatiq.Retry as exc:  # the reconciler leaves them until the retry is due
        note_retry(rt.session_factory, case_ids,
                   retry_at=rt.clock.now() + timedelta(milliseconds=exc.delay or 0),
                   reason=str(exc))
        raise
    if rerouted:  # content that moved: already assessed, so straight to routing
        rt.enqueuer.send(ROUTE, rerouted)


@dramatiq.actor(queue_name=ROUTE, actor_name=ROUTE, throws=PERMANENT,
                broker=placeholder_broker)
def route(case_ids: list[int]) -> None:

    run_stage(functools.partial(route_cases, settings=context.runtime().settings), case_ids,
              DISPATCH)


@dramatiq.actor(queue_name=DISPATCH, actor_name=DISPATCH, throws=PERMANENT,
                broker=placeholder_broker)
def dispatch(notice_ids: list[int]) -> None:
    """Delivery failures are handled per notice (retry time or dead letter) inside
    `deliver_notices`; the reconciler sends failed notices again when due."""

    rt = context.runtime()
    deliver_notices(rt.session_factory, notice_ids, clock=rt.clock, settings=rt.settings)


# Every actor, by stage name. Later stages add theirs here.
ACTORS: dict[str, dramatiq.Actor] = {a.actor_name: a for a in (normalise, dedupe, trace)}
ACTORS.update({a.actor_name: a for a in (route, dispatch)})
