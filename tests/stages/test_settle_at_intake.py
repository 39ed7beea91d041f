"""Settling at intake (`pipeline.stages.dedupe.settle_at_intake`): a submission
normalised and deduplicated in its own intake transaction ends exactly as the workers
would leave it, each report written once with one event carrying every state; races
with the workers and with other intake transactions still make one case per URL; and
a failed settling leaves the reports to the workers, nothing lost."""

from __future__ import annotations

import logging
import threading

import pytest
from sqlalchemy import func, select, text

from pipeline.core.errors import RetryLater
from pipeline.core.messaging import NORMALISE, TRACE, RecordingEnqueuer
from pipeline.domain.urls import canonicalise
from pipeline.stages import intake
from pipeline.stages.dedupe import (
    DedupRules,
    IntakeSettler,
    dedupe_options,
    normalise_and_dedupe,
)
from pipeline.store.audit import steps, verify
from pipeline.store.models import Case, Event, Report
from pipeline.store.states import CaseState, ReportState
from schemas.intake import ReportIn
from tests.stages.test_dedupe import VARIANTS, _event_count, _intake, _outcome, cases


def settler(runtime, up_to=1_000, claims=None, **options) -> IntakeSettler:
    return IntakeSettler(up_to=up_to, options={"claims": claims, "rules": DedupRules(),
                                               **options})


def take_in(runtime, urls, settle, enqueuer=None):
    submission, accepted = intake.accept_reports(
        runtime.session_factory, [ReportIn(url=u, channel="web") for u in urls],
        clock=runtime.clock, limits=runtime.settings.intake,
        enqueuer=enqueuer or runtime.enqueuer, settle=settle)
    return [a.id for a in accepted]


def _batch(host):
    urls = [VARIANTS[i].replace("example.com", host) for i in (0, 2, 3, 4, 6)]
    return [*urls, f"http://{host}/other", "http://[not-an-address/", urls[0]]


def test_a_submission_settled_at_intake_ends_as_the_workers_leave_it(runtime):
    by_workers = _intake(runtime, _batch("example.com"))
    with runtime.session_factory.begin() as session:
        normalise_and_dedupe(session, by_workers, clock=runtime.clock)
    # One URL of the settled submission joins a case open before it.
    [earlier] = _intake(runtime, ["http://example.org/other"])
    with runtime.session_factory.begin() as session:
        normalise_and_dedupe(session, [earlier], clock=runtime.clock)
    runtime.enqueuer.sent.clear()

    settled = take_in(runtime, _batch("example.org"), settler(runtime))

    assert [o[0] for o in _outcome(runtime, settled)] == [
        o[0] for o in _outcome(runtime, by_workers)][:5] + [
        ReportState.DUPLICATE, ReportState.REJECTED, ReportState.DUPLICATE]
    # Each report written once, with one event: received, normalised, placed (or
    # rejected); the workers' way writes two.
    assert _event_count(runtime, settled) == len(settled)
    assert _event_count(runtime, by_workers) == 2 * len(by_workers)
    with runtime.session_factory() as session:
        for report_id in settled:
            report = session.get(Report, report_id)
            [event] = session.execute(select(Event).where(Event.report_id == report_id)
                                      ).scalars().all()
            assert event.actor == "intake" and event.case_id == report.case_id
            assert [s.to_state for s in steps(event)] == (
                ["received", "rejected"] if report.state == ReportState.REJECTED
                else ["received", "normalised", report.state])
            assert report.received_at and report.normalised_at or report.rejected_at
        new_case = session.execute(select(Case).where(
            Case.dedup_key == canonicalise("http://example.org/page").dedup_key)).scalar_one()
        joined = session.execute(select(Case).where(
            Case.dedup_key == canonicalise("http://example.org/other").dedup_key)).scalar_one()
        assert new_case.state == CaseState.NORMALISED and new_case.report_count == 6
        assert joined.report_count == 2  # counted on the case opened before
        assert verify(session) == []
    # Committed, then the one new case to trace; nothing left to normalise.
    assert runtime.enqueuer.sent == [(TRACE, [new_case.id])]


def test_a_large_submission_settles_its_first_report_and_leaves_the_rest(runtime):
    urls = [f"http://h{i}.example/" for i in range(6)]
    ids = take_in(runtime, urls, settler(runtime, up_to=5))
    with runtime.session_factory() as session:
        states = [session.get(Report, i).state for i in ids]
        [case_id] = session.execute(select(Case.id)).scalars().all()
    assert states == ["new_case"] + ["received"] * 5
    assert runtime.enqueuer.sent == [(TRACE, [case_id]), (NORMALISE, ids[1:])]


def test_settling_that_fails_leaves_the_reports_to_the_workers(runtime, caplog):
    def failing(session, rows, *, at, actor, write):
        write()  # rows inserted, then the transaction fails: all of it rolls back
        raise RetryLater("lost the race too often")

    failing.up_to = 100  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="pipeline.stages.intake"):
        ids = take_in(runtime, ["http://a.example/", "http://b.example/"], failing)
    assert ("Settling at intake failed for 2 report(s) (RetryLater: lost the race too often)"
            in caplog.text)
    with runtime.session_factory() as session:
        assert session.execute(select(func.count()).select_from(Report)).scalar_one() == 2
        assert {session.get(Report, i).state for i in ids} == {"received"}
        assert session.execute(select(func.count()).select_from(Event)).scalar_one() == 2
    assert runtime.enqueuer.sent == [(NORMALISE, ids)]


def test_a_database_error_while_settling_is_logged_without_the_reports_fields(runtime,
                                                                              caplog):
    def failing(session, rows, *, at, actor, write):
        session.execute(text("SELECT * FROM no_such_table WHERE x = :x"),
                        {"x": rows[0]["description"]})
        return []

    failing.up_to = 100  # type: ignore[attr-defined]
    with caplog.at_level(logging.WARNING, logger="pipeline.stages.intake"):
        intake.accept_reports(runtime.session_factory,
                              [ReportIn(url="http://a.example/", description="seen at home")],
                              clock=runtime.clock, limits=runtime.settings.intake,
                              enqueuer=runtime.enqueuer, settle=failing)
    assert "Settling at intake failed for 1 report(s)" in caplog.text
    assert "no_such_table" in caplog.text and "seen at home" not in caplog.text
    assert [stage for stage, _ in runtime.enqueuer.sent] == [NORMALISE]


def test_intake_and_workers_racing_on_the_same_urls_make_one_case_each(
        pg_runtime, redis_client, redis_namespace):
    """Four intake threads settle submissions while two worker threads settle reports
    stored for them, all on the same seven URLs at once, with Redis claims."""
    rt = pg_runtime
    urls = [f"http://site{i % 7}.example/{i % 7}" for i in range(84)]
    rt.settings.redis.namespace = redis_namespace
    options = dedupe_options(rt.settings, redis_client)
    for_workers = _intake(rt, urls[:24])
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []
    enqueuer = RecordingEnqueuer()

    def intake_thread(mine):
        barrier.wait()
        try:
            for start in range(0, len(mine), 3):
                take_in(rt, mine[start:start + 3], settler(rt, **options), enqueuer)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    def worker_thread(mine):
        barrier.wait()
        for report_id in mine:
            for _attempt in range(10):
                try:
                    with rt.session_factory.begin() as session:
                        normalise_and_dedupe(session, [report_id], clock=rt.clock, **options)
                    break
                except RetryLater:
                    continue
                except BaseException as exc:
                    errors.append(exc)
                    return

    threads = [threading.Thread(target=intake_thread, args=(urls[24 + i::4],))
               for i in range(4)]
    threads += [threading.Thread(target=worker_thread, args=(for_workers[i::2],))
                for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    # A submission whose settling lost too often was stored for the workers: they
    # settle it as the reconciler or the queue would have them do.
    with rt.session_factory.begin() as session:
        normalise_and_dedupe(session, enqueuer.ids(NORMALISE), clock=rt.clock, **options)
    found = cases(rt)
    assert sorted(c.dedup_key for c in found) == sorted(
        {canonicalise(u).dedup_key for u in urls})
    assert sum(c.report_count for c in found) == len(urls)
    with rt.session_factory() as session:
        states = dict(session.execute(select(Report.state, func.count())
                                      .group_by(Report.state)).all())
        assert states == {"new_case": 7, "duplicate": len(urls) - 7}
        assert verify(session) == []


@pytest.mark.parametrize("broker,expected", [("memory://", 1_000), ("redis://x:6379/0", 100)])
def test_the_process_settler_follows_the_broker_unless_told(settings_factory, broker,
                                                            expected):
    from pipeline.app.runtime import build_runtime
    from pipeline.app.tracers import settler_for

    for told, up_to in [(None, expected), (7, 7), (0, None)]:
        rt = build_runtime(settings_factory(broker={"url": broker},
                                            intake={"settle_up_to": told}))
        try:
            made = settler_for(rt)
            assert (made.up_to if made else None) == up_to
            assert settler_for(rt) is made  # one per runtime
        finally:
            rt.close()


def test_an_import_settles_each_commit_whole_whatever_the_requests_limit(runtime, tmp_path):
    from pipeline.stages.importer import import_file

    path = tmp_path / "reports.csv"
    path.write_text("url\n" + "".join(f"http://h{i}.example/x\n" for i in range(20)))
    result = import_file(path, runtime.session_factory, clock=runtime.clock,
                         limits=runtime.settings.intake, enqueuer=runtime.enqueuer,
                         settle=settler(runtime, up_to=2))
    assert result.imported == 20
    with runtime.session_factory() as session:
        assert set(session.execute(select(Report.state)).scalars()) == {"new_case"}
        assert session.execute(select(func.count()).select_from(Event)).scalar_one() == 40
    # Commits of 1, 2, 4, 8 and 5 lines, each settled whole: their new cases to trace
    # (on PostgreSQL two commits may end in either order: `importer.IN_FLIGHT`).
    assert sorted((stage, len(ids)) for stage, ids in runtime.enqueuer.sent) == [
        (TRACE, 1), (TRACE, 2), (TRACE, 4), (TRACE, 5), (TRACE, 8)]


def test_a_worker_makes_its_tracer_and_reads_its_rules_before_its_first_message(
        settings_factory):
    from pipeline.app import tracers
    from pipeline.app.runtime import build_runtime
    from pipeline.stages import queueing

    queueing._load.cache_clear()
    rt = build_runtime(settings_factory(broker={"url": "redis://x:6379/0"}))
    try:
        assert id(rt) not in tracers._tracers
        tracers.ready_to_work(rt)
        made = tracers.tracer_for(rt)
        assert tracers._tracers[id(rt)][1] is made  # the one the stages will use
        assert queueing._load.cache_info().currsize == 1  # the rules, parsed
    finally:
        rt.close()
