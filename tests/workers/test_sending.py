"""`workers.sending.MessageSender`: the messages of `hotline import` and `hotline submit`,
sent without loading the stages, are the ones the actors consume."""

from __future__ import annotations

from pipeline.core.messaging import NORMALISE, STAGE_QUEUES
from pipeline.stages.intake import accept_reports
from schemas.intake import ReportIn
from tests.workers.conftest import report_states, run_worker, wait_for
from workers.actors import ACTORS
from workers.sending import MessageSender


def test_every_actor_is_named_and_queued_by_its_stage():
    # MessageSender addresses a stage's actor by the stage's name alone.
    assert set(ACTORS) == set(STAGE_QUEUES)
    for stage, actor in ACTORS.items():
        assert actor.actor_name == actor.queue_name == stage


def test_reports_sent_without_the_stages_loaded_are_processed_by_a_worker(
    broker_runtime_factory, redis_url, redis_namespace, redis_client, pg_runtime,
):
    runtime = broker_runtime_factory(
        broker={"url": redis_url, "namespace": redis_namespace},
        redis={"namespace": redis_namespace},
        database={"url": pg_runtime.settings.database.url},
        worker={"batch_size": 2})
    sender = MessageSender(runtime.settings)
    try:
        accept_reports(runtime.session_factory,
                       [ReportIn(url=u) for u in ("http://a.example/1", "http://a.example/1",
                                                  "http://b.example/", "ftp://c.example/")],
                       clock=runtime.clock, limits=runtime.settings.intake, enqueuer=sender)
    finally:
        sender.close()
    # Two messages of two ids each (worker.batch_size), on the normalise queue.
    assert redis_client.llen(f"{redis_namespace}:{NORMALISE}") == 2
    run_worker(runtime)
    wait_for(lambda: report_states(runtime) == {"new_case": 2, "duplicate": 1, "rejected": 1},
             what="every report settled")
