"""Deduplication: one open case per URL, whatever the variant, however many workers race;
re-uploads after removal open a new linked case; Redis claims only save work."""

from __future__ import annotations

import multiprocessing
import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from pipeline.core.errors import RetryLater
from pipeline.domain.urls import canonicalise
from pipeline.stages.dedupe import DedupClaims, DedupRules, dedupe_options, dedupe_reports
from pipeline.store.lifecycle import transition
from pipeline.store.models import Case, Event, Report
from pipeline.store.states import CaseState, ReportState
from tests.factories import make_report

VARIANTS = [
    "http://example.com/page",
    "HTTP://EXAMPLE.COM/page",
    "http://example.com:80/page",
    "http://example.com./page",
    "http://example.com/page#comments",
    "http://user:pw@example.com/page",
    "http://example.com/x/../page",
    "http://example.com/%70age",
    "http://example.com/page?utm_source=mail&fbclid=abc",
    "  http://example.com/page  ",
    "example.com/page",
    "http://%65xample.com/page",
]

C = CaseState


def normalised(session, url, *, at, **fields):
    """A report as the normalise stage leaves it."""
    facts = canonicalise(url)
    return make_report(session, at=at, url=url, state=ReportState.NORMALISED,
                       canonical_url=facts.canonical, dedup_key=facts.dedup_key,
                       host=facts.host, host_unicode=facts.host_unicode,
                       registered_domain=facts.registered_domain, url_kind=facts.kind,
                       host_confusable=facts.confusable, **fields)


def add_reports(runtime, urls, **fields) -> list[int]:
    with runtime.session_factory.begin() as session:
        return [normalised(session, u, at=runtime.clock.now(), **fields).id for u in urls]


def dedupe(runtime, ids, **options) -> list[int]:
    with runtime.session_factory.begin() as session:
        return dedupe_reports(session, ids, clock=runtime.clock, **options)


def cases(runtime) -> list[Case]:
    with runtime.session_factory() as session:
        return list(session.execute(select(Case).order_by(Case.id)).scalars())


def report_states(runtime) -> dict[str, int]:
    with runtime.session_factory() as session:
        rows = session.execute(select(Report.state, func.count()).group_by(Report.state))
        return dict(rows.all())


def finish_case(runtime, case_id, *, removed: bool) -> None:
    """Walk a case through the lifecycle to removed (then closed) or to closed."""
    path = [C.TRACED, C.AWAITING_ASSESSMENT, C.ASSESSED]
    path += [C.ROUTED, C.NOTIFIED, C.REMOVED, C.CLOSED] if removed else [C.CLOSED]
    with runtime.session_factory.begin() as session:
        case = session.get(Case, case_id)
        for state in path:
            runtime.clock.advance(minutes=10)
            transition(session, case, state, at=runtime.clock.now())


def claims_for(redis_client, namespace) -> DedupClaims:
    return DedupClaims(redis_client, namespace, ttl_seconds=3600)


# --- one open case per URL ------------------------------------------------------------

def test_variants_of_one_url_in_one_batch_make_one_case_that_counts_them(runtime):
    ids = add_reports(runtime, VARIANTS)
    new = dedupe(runtime, ids)
    [case] = cases(runtime)
    assert new == [case.id]
    assert case.report_count == len(VARIANTS)
    assert case.open_key == case.dedup_key
    assert case.canonical_url == "http://example.com/page"
    assert report_states(runtime) == {"new_case": 1, "duplicate": len(VARIANTS) - 1}
    with runtime.session_factory() as session:
        attached = session.execute(select(Report.case_id)).scalars().all()
    assert set(attached) == {case.id}


def test_a_duplicate_report_joins_the_open_case(runtime):
    [first] = add_reports(runtime, ["http://example.com/a"])
    [case_id] = dedupe(runtime, [first])
    later = add_reports(runtime, ["HTTP://example.com:80/a#x", "http://example.com/a?gclid=1"])
    assert dedupe(runtime, later) == []
    [case] = cases(runtime)
    assert case.id == case_id and case.report_count == 3
    with runtime.session_factory() as session:
        joined = session.execute(select(Report).where(Report.id.in_(later))).scalars().all()
        events = session.execute(select(Event).where(Event.report_id.in_(later))).scalars()
        assert {e.action for e in events} == {"report_joined_case"}
    assert {(r.state, r.case_id) for r in joined} == {("duplicate", case_id)}


def test_different_urls_make_different_cases_and_each_report_is_handled_once(runtime):
    ids = add_reports(runtime, ["http://a.example/", "http://b.example/", "http://a.example/"])
    assert len(dedupe(runtime, ids)) == 2
    assert dedupe(runtime, ids) == []  # the stage is idempotent
    assert sorted(c.report_count for c in cases(runtime)) == [1, 2]


def test_the_case_takes_the_derived_facts_of_the_url(runtime):
    ids = add_reports(runtime, ["https://pаypal.blogspot.com/login"], urgent=True)
    dedupe(runtime, ids)
    [case] = cases(runtime)
    assert case.host == "xn--pypal-4ve.blogspot.com"
    assert case.host_unicode == "pаypal.blogspot.com"
    assert case.registered_domain == "xn--pypal-4ve.blogspot.com"
    assert case.url_kind == "domain"
    assert case.host_confusable is True
    assert case.urgent is True
    assert case.reupload is False and case.previous_case_id is None


# --- closed cases and re-uploads --------------------------------------------------------

def test_a_url_reported_again_after_removal_opens_a_new_case_linked_as_a_reupload(runtime):
    [old_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/img"]))
    finish_case(runtime, old_id, removed=True)
    runtime.clock.advance(days=3)
    again = add_reports(runtime, ["http://EXAMPLE.com/img"])
    [new_id] = dedupe(runtime, again)
    old, new = cases(runtime)
    assert (old.id, new.id) == (old_id, new_id)
    assert new.previous_case_id == old_id
    assert new.reupload is True
    assert new.open_key == new.dedup_key and old.open_key is None
    assert old.report_count == 1 and new.report_count == 1
    with runtime.session_factory() as session:
        opened = session.execute(select(Event).where(
            Event.case_id == new_id, Event.action == "case_opened")).scalar_one()
    assert opened.data == {"previous_case_id": old_id, "reupload": True}


def test_a_url_reported_again_soon_after_its_case_was_closed_joins_that_case(runtime):
    [old_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/x"]))
    finish_case(runtime, old_id, removed=False)
    runtime.clock.advance(hours=2)
    again = add_reports(runtime, ["http://example.com/x"])
    assert dedupe(runtime, again, rules=DedupRules(closed_case_window=timedelta(hours=24))) == []
    [old] = cases(runtime)
    assert old.report_count == 2 and old.state == "closed"
    with runtime.session_factory() as session:
        report = session.get(Report, again[0])
        event = session.execute(select(Event).where(
            Event.report_id == report.id, Event.action == "report_joined_case")).scalar_one()
    assert (report.state, report.case_id) == ("duplicate", old_id)
    assert event.data["closed_case"] is True


def test_a_url_reported_again_after_the_window_opens_a_linked_case_that_is_no_reupload(
    runtime
):
    [old_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/x"]))
    finish_case(runtime, old_id, removed=False)
    runtime.clock.advance(hours=25)
    [new_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/x"]),
                      rules=DedupRules(closed_case_window=timedelta(hours=24)))
    new = cases(runtime)[1]
    assert (new.id, new.previous_case_id, new.reupload) == (new_id, old_id, False)


def test_a_report_received_before_the_removal_joins_the_removed_case_not_a_new_one(runtime):
    [old_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/v"]))
    received_before = runtime.clock.now()
    finish_case(runtime, old_id, removed=True)
    runtime.clock.advance(hours=1)
    with runtime.session_factory.begin() as session:
        late = normalised(session, "http://example.com/v", at=received_before).id
    assert dedupe(runtime, [late]) == []
    [old] = cases(runtime)
    assert old.report_count == 2


# --- Redis claims -------------------------------------------------------------------------

def test_the_redis_claim_names_the_open_case_and_later_reports_join_it(
    runtime, redis_client, redis_namespace
):
    claims = claims_for(redis_client, redis_namespace)
    [case_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/r"]), claims=claims)
    key = canonicalise("http://example.com/r").dedup_key
    assert redis_client.get(f"{redis_namespace}:dedup:{key}") == str(case_id).encode()
    won, hints = claims.claim([key])
    assert (won, hints) == (set(), {key: case_id})
    assert dedupe(runtime, add_reports(runtime, ["http://example.com:80/r"]),
                  claims=claims) == []
    assert cases(runtime)[0].report_count == 2


def test_a_stale_redis_claim_never_joins_a_closed_case(runtime, redis_client, redis_namespace):
    claims = claims_for(redis_client, redis_namespace)
    [old_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/s"]), claims=claims)
    finish_case(runtime, old_id, removed=True)  # the claim still names the old case
    runtime.clock.advance(days=1)
    [new_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/s"]), claims=claims)
    assert new_id != old_id
    assert [c.report_count for c in cases(runtime)] == [1, 1]
    key = canonicalise("http://example.com/s").dedup_key
    assert redis_client.get(f"{redis_namespace}:dedup:{key}") == str(new_id).encode()


def test_a_lost_redis_claim_still_joins_the_open_case_the_database_knows(
    runtime, redis_client, redis_namespace
):
    claims = claims_for(redis_client, redis_namespace)
    [case_id] = dedupe(runtime, add_reports(runtime, ["http://example.com/l"]), claims=claims)
    for key in redis_client.scan_iter(match=f"{redis_namespace}:*"):
        redis_client.delete(key)  # Redis restarted empty
    assert dedupe(runtime, add_reports(runtime, ["http://example.com/l"]), claims=claims) == []
    [case] = cases(runtime)
    assert (case.id, case.report_count) == (case_id, 2)


def test_without_a_reachable_redis_the_database_alone_decides(sqlite_runtime):
    import redis

    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    claims = DedupClaims(unreachable, "nowhere")
    ids = add_reports(sqlite_runtime, VARIANTS[:3])
    assert len(dedupe(sqlite_runtime, ids, claims=claims)) == 1
    assert cases(sqlite_runtime)[0].report_count == 3


def test_the_dedupe_actor_uses_the_runtimes_redis_and_configured_rules(
    settings_factory, redis_url, redis_namespace, redis_client
):
    from pipeline.app.runtime import build_runtime
    from pipeline.core.clock import FrozenClock
    from pipeline.store.migrate import upgrade
    from workers import actors, context

    settings = settings_factory(redis={"url": redis_url, "namespace": redis_namespace},
                                urls={"closed_case_window_hours": 0})
    options = dedupe_options(settings, redis_client)
    assert options["rules"].closed_case_window == timedelta(0)
    upgrade(settings.database.url)
    rt = build_runtime(settings, clock=FrozenClock())
    context.set_runtime(rt)
    try:
        ids = add_reports(rt, ["http://example.com/actor"])
        actors.dedupe(ids)
    finally:
        context.set_runtime(None)
        rt.close()
    key = canonicalise("http://example.com/actor").dedup_key
    assert redis_client.get(f"{redis_namespace}:dedup:{key}") is not None
    assert rt.enqueuer.ids("trace") == [cases(rt)[0].id]


# --- concurrency ----------------------------------------------------------------------------

def _race(session_factory, clock, ids, claims, threads):
    """Dedupe each report in its own transaction, all threads starting together;
    RetryLater is retried as the worker would."""
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []
    per_thread = [ids[i::threads] for i in range(threads)]

    def work(mine):
        barrier.wait()
        for report_id in mine:
            for _attempt in range(10):
                try:
                    with session_factory.begin() as session:
                        dedupe_reports(session, [report_id], clock=clock, claims=claims)
                    break
                except RetryLater:
                    continue
                except BaseException as exc:  # reported to the test
                    errors.append(exc)
                    return

    pool = [threading.Thread(target=work, args=(m,)) for m in per_thread]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


def _assert_one_case(runtime, count):
    [case] = cases(runtime)
    assert case.report_count == count
    assert report_states(runtime) == {"new_case": 1, "duplicate": count - 1}
    with runtime.session_factory() as session:
        assert set(session.execute(select(Report.case_id)).scalars()) == {case.id}


@pytest.mark.parametrize("with_redis", [False, True], ids=["database", "redis"])
def test_many_threads_submitting_variants_of_one_url_make_exactly_one_case(
    runtime, with_redis, request
):
    claims = None
    if with_redis:
        claims = claims_for(request.getfixturevalue("redis_client"),
                            request.getfixturevalue("redis_namespace"))
    ids = add_reports(runtime, VARIANTS * 3)
    errors = _race(runtime.session_factory, runtime.clock, ids, claims, threads=12)
    assert errors == []
    _assert_one_case(runtime, len(ids))


def _worker_process(database_url, redis_url, namespace, ids, start):
    """One OS process: its own engine, Redis client and threads."""
    import redis as redis_lib

    from pipeline.core.clock import FrozenClock
    from pipeline.store.db import make_engine, make_session_factory

    engine = make_engine(database_url, pool_size=8)
    client = redis_lib.Redis.from_url(redis_url)
    claims = DedupClaims(client, namespace, ttl_seconds=3600)
    start.wait()
    errors = _race(make_session_factory(engine), FrozenClock(), ids, claims, threads=8)
    engine.dispose()
    if errors:
        raise SystemExit(f"{len(errors)} errors, first: {errors[0]!r}")


def test_two_worker_processes_racing_on_one_url_make_exactly_one_case(
    pg_runtime, redis_url, redis_namespace
):
    ids = add_reports(pg_runtime, VARIANTS * 4)
    spawn = multiprocessing.get_context("spawn")
    start = spawn.Barrier(3)  # both workers ready (imports done), then all go at once
    url = pg_runtime.settings.database.url
    processes = [spawn.Process(target=_worker_process,
                               args=(url, redis_url, redis_namespace, ids[i::2], start))
                 for i in range(2)]
    for p in processes:
        p.start()
    start.wait(timeout=120)
    for p in processes:
        p.join(timeout=240)
    assert [p.exitcode for p in processes] == [0, 0]
    _assert_one_case(pg_runtime, len(ids))


def test_many_urls_racing_in_batches_make_one_case_each(pg_runtime, redis_client,
                                                       redis_namespace):
    urls = [f"http://site{i % 7}.example/{i % 5}" for i in range(70)]
    ids = add_reports(pg_runtime, urls)
    claims = claims_for(redis_client, redis_namespace)
    barrier = threading.Barrier(6)
    errors: list[BaseException] = []

    def work(batch):
        barrier.wait()
        for _attempt in range(10):
            try:
                with pg_runtime.session_factory.begin() as session:
                    dedupe_reports(session, batch, clock=pg_runtime.clock, claims=claims)
                return
            except RetryLater:
                continue
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=work, args=(ids[i::6],)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    distinct = {canonicalise(u).dedup_key for u in urls}
    found = cases(pg_runtime)
    assert sorted(c.dedup_key for c in found) == sorted(distinct)
    assert sum(c.report_count for c in found) == len(urls)


def test_claims_from_two_workers_on_fresh_keys_give_each_key_to_exactly_one(
    redis_client, redis_namespace
):
    keys = [uuid.uuid4().hex for _ in range(50)]
    one = claims_for(redis_client, redis_namespace)
    other = claims_for(redis_client, redis_namespace)
    won_one, _ = one.claim(keys[:30])
    won_other, _ = other.claim(keys[20:])
    assert won_one == set(keys[:30])
    assert won_other == set(keys[30:])
    one.release(keys[:30])
    assert redis_client.exists(f"{redis_namespace}:dedup:{keys[0]}") == 0
    other.release(keys[:30])  # not its claims: nothing happens
    assert redis_client.exists(f"{redis_namespace}:dedup:{keys[40]}") == 1


def _intake(runtime, urls):
    from pipeline.stages.intake import store_reports
    from schemas.intake import ReportIn

    with runtime.session_factory.begin() as session:
        accepted = store_reports(session, [ReportIn(url=u, channel="web") for u in urls],
                                 clock=runtime.clock, limits=runtime.settings.intake)
    return [a.id for a in accepted]


def _outcome(runtime, ids):
    """Per report, in order: state, the case's report count, the actions of the state
    changes its events record (an event may carry several: `audit.steps`)."""
    from pipeline.store.audit import steps

    with runtime.session_factory() as session:
        out = []
        for report_id in ids:
            report = session.get(Report, report_id)
            count = session.get(Case, report.case_id).report_count if report.case_id else None
            events = session.execute(
                select(Event).where(Event.report_id == report_id).order_by(Event.seq)
            ).scalars().all()
            actions = [step.action for event in events for step in steps(event)]
            out.append((report.state, count, actions, report.dedup_key is not None))
        return out


def _event_count(runtime, ids):
    with runtime.session_factory() as session:
        return session.execute(select(func.count()).select_from(Event).where(
            Event.report_id.in_(ids))).scalar_one()


def test_normalise_and_dedupe_in_one_transaction_end_as_the_two_stages_do(runtime):
    """The normalise actor runs both stages at once: every report ends in the same state,
    with the same events, as when the stages run one after the other."""
    from pipeline.stages.dedupe import normalise_and_dedupe
    from pipeline.stages.normalise import normalise_reports
    from pipeline.store.audit import verify

    def batch(host):
        urls = [VARIANTS[i].replace("example.com", host) for i in (0, 2, 3, 4, 6)]
        return [*urls, f"http://{host}/other", "http://[not-an-address/", urls[0]]

    separate = _intake(runtime, batch("example.com"))
    with runtime.session_factory.begin() as session:
        normalised = normalise_reports(session, separate, clock=runtime.clock)
    new_separate = dedupe(runtime, normalised)
    fused = _intake(runtime, batch("example.org"))
    with runtime.session_factory.begin() as session:
        new_fused = normalise_and_dedupe(session, fused, clock=runtime.clock)
        # Running it again changes nothing: the reports have left `received`.
        assert normalise_and_dedupe(session, fused, clock=runtime.clock) == []

    assert len(new_fused) == len(new_separate) == 2
    assert _outcome(runtime, fused) == _outcome(runtime, separate)
    # One event per report and transaction: received, then normalised and placed in
    # one (rejected reports: received, rejected), where the stages apart write three.
    assert _event_count(runtime, fused) == 2 * len(fused)
    assert _event_count(runtime, separate) == 3 * len(separate) - 1
    with runtime.session_factory() as session:  # the case's history finds them
        for report_id in fused:
            report = session.get(Report, report_id)
            last = session.execute(select(Event).where(Event.report_id == report_id)
                                   .order_by(Event.seq.desc()).limit(1)).scalar_one()
            assert last.case_id == report.case_id
    states = [state for state, *_ in _outcome(runtime, fused)]
    assert states.count(ReportState.NEW_CASE) == 2
    assert states.count(ReportState.REJECTED) == 1
    with runtime.session_factory() as session:
        assert verify(session) == []
        case = session.get(Case, new_fused[0])
        assert case.state == CaseState.NORMALISED and case.report_count == 6
