"""Takedown verdicts that hold, on SQLite and PostgreSQL, with hand-computed figures:

- content unreachable before the first notice (NXDOMAIN at tracing, never seen by a
  check) is closed as "gone before notice": no `removed_at`, in no removal time of
  the NTD figures, counted apart in the statistics export;
- a host answering with non-global addresses only is "inconclusive": never a miss,
  and after `inconclusive_to_analyst` such checks in a row the case goes to an analyst.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from pipeline.core.config import MonitoringSection
from pipeline.core.messaging import RecordingEnqueuer
from pipeline.stages.monitoring import (
    INCONCLUSIVE,
    MISS,
    PRESENT,
    Resolution,
    check_url,
    run_monitoring,
)
from pipeline.stages.stats import export_rows, export_stats
from pipeline.store.models import Case, Event
from pipeline.store.takedown_models import TakedownCheck
from tests.factories import make_case
from tests.stages.test_monitoring import http_server, resolver  # noqa: F401

SETTINGS = MonitoringSection(allow_loopback=True, timeout_seconds=5, misses_to_remove=3,
                             miss_spacing_minutes=3, recheck_minutes=3,
                             inconclusive_to_analyst=3)


def test_a_host_with_only_non_global_addresses_is_inconclusive_never_a_miss():
    resolve = resolver({"private.example": Resolution(["10.0.0.5", "192.168.1.9"])})
    result = check_url("http://private.example/x", SETTINGS, resolve=resolve)
    assert (result.outcome, result.reason) == (INCONCLUSIVE, "no_global_address")


def test_gone_before_notice_and_inconclusive_hosts_never_count_as_removed(
        runtime, http_server):  # noqa: F811
    server = http_server({"/r": (200, {}, 10)})
    t0 = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        common = dict(state="notified", legality="illegal_international", category="csam",
                      hosting_country="NL", hosting_org="HostA", notified_at=t0
                      - timedelta(hours=1), assessed_at=t0 - timedelta(hours=2))
        gone = make_case(session, at=t0 - timedelta(hours=2), url="http://gone.example/x",
                         trace_outcome="nxdomain", **common).id
        removed = make_case(session, at=t0 - timedelta(hours=5), url=server.url("/r"),
                            trace_outcome="traced", **common).id
        unclear = make_case(session, at=t0 - timedelta(hours=3),
                            url="http://private.example/y", trace_outcome="traced",
                            **common).id
    resolve = resolver({"private.example": Resolution(["10.0.0.5"])})
    enqueuer = RecordingEnqueuer()

    def run() -> dict[str, int]:
        return run_monitoring(runtime.session_factory, enqueuer, SETTINGS,
                              clock=runtime.clock, resolve=resolve)

    first = run()  # T0: gone miss 1, removed present, unclear inconclusive 1
    assert (first["started"], first["checked"]) == (3, 3)
    server.routes["/r"] = (404, {}, 10)
    runtime.clock.advance(minutes=3)
    run()  # T0+3: gone miss 2, removed miss 1 (the streak starts), unclear 2
    runtime.clock.advance(minutes=3)
    third = run()  # T0+6: gone miss 3 -> gone before notice; unclear 3 -> analyst
    assert (third["gone_before_notice"], third["inconclusive"], third["removed"]) == (1, 1, 0)
    runtime.clock.advance(minutes=3)
    fourth = run()  # T0+9: removed miss 3 -> removed at its first miss, T0+3
    assert fourth["removed"] == 1

    with runtime.session_factory() as session:
        g, r, u = (session.get(Case, i) for i in (gone, removed, unclear))
        assert (g.state, g.removed_at, g.gone_before_notice_at) == ("closed", None, t0)
        assert (r.state, r.removed_at, r.gone_before_notice_at) == (
            "removed", t0 + timedelta(minutes=3), None)
        assert (u.state, u.removed_at) == ("awaiting_assessment", None)
        outcomes = session.execute(select(TakedownCheck.outcome).where(
            TakedownCheck.case_id == unclear).order_by(TakedownCheck.id)).scalars().all()
        assert outcomes == [INCONCLUSIVE] * 3
        assert session.execute(select(TakedownCheck.outcome).where(
            TakedownCheck.case_id == removed).order_by(TakedownCheck.id)
        ).scalars().all() == [PRESENT, MISS, MISS, MISS]
        actions = {i: session.execute(select(Event.action).where(
            Event.case_id == i).order_by(Event.seq)).scalars().all()[-1]
            for i in (gone, removed, unclear)}
        assert actions == {gone: "case_gone_before_notice", removed: "case_removed",
                           unclear: "case_takedown_inconclusive"}

        # Hand-computed figures: one removal, received T0-5h, removed T0+3min: 5.05 h.
        export = export_stats(session, (t0 - timedelta(days=1)).date(),
                              (t0 + timedelta(days=1)).date(), settings=runtime.settings,
                              now=runtime.clock.now(), suppress_below=0)
    overall = export.removal.overall
    assert overall.count == 1
    assert overall.calendar.median_hours == 5.05
    assert overall.calendar.p90_hours == 5.05
    assert export.removal.gone_before_notice == 1
    assert ("removal", "", "", "gone_before_notice", 1) in export_rows(export)
    removal_stage = next(s for s in export.stages if s.stage == "removal")
    assert removal_stage.timing.count == 1
