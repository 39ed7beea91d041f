"""The statistics export: figures that are right, checked against hand-computed values.

The week of Monday 5 to Sunday 11 January 2026; working time Monday to Friday
09:00-17:00 UTC (one working day = 8 hours). Every expected number below is worked
out by hand in the comment beside it.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from pipeline.app.runtime import Runtime
from pipeline.core.config import Settings
from pipeline.stages.intake import new_reference
from pipeline.stages.stats import csv_cell, export_stats, iccam_rows, to_csv
from pipeline.store.models import Notice, Report
from schemas.stats import StatsExport, Timing
from tests.factories import make_case

START, END = date(2026, 1, 5), date(2026, 1, 11)
NOW = datetime(2026, 1, 20, tzinfo=UTC)


def t(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 1, day, hour, minute, tzinfo=UTC)


def make_report(session: Any, *, at: datetime, state: str, channel: str = "web",
                **fields: Any) -> None:
    session.add(Report(ref=new_reference("R"), submission_ref=new_reference("S"),
                       url="http://secret-report.example/x", channel=channel, received_at=at,
                       state=state, state_changed_at=at, audit_seq=0, **fields))


def notice(session: Any, case_id: int, dest: str, kind: str, sent: datetime | None,
           notice_kind: str = "notice", round_: int = 1) -> None:
    session.add(Notice(case_id=case_id, destination=dest, destination_kind=kind,
                       kind=notice_kind, round=round_, channel="smtp",
                       state="sent" if sent else "planned", token=f"{case_id}-{dest}-"
                       f"{notice_kind}-{round_}", created_at=sent or t(5, 8), sent_at=sent,
                       payload={}))


def build(rt: Runtime, provider_c: str = "HostC") -> None:
    with rt.session_factory.begin() as s:
        # Reports of the week (R6 is the week after: not counted).
        make_report(s, at=t(5, 10), dedup_key="k1", claimed_category="csam", state="new_case",
                    description="awful reporter@example.org")
        make_report(s, at=t(5, 11), dedup_key="k1", claimed_category="csam", state="duplicate")
        make_report(s, at=t(6, 9), dedup_key="k2", claimed_category="hate_speech",
                    state="new_case", channel="api")
        make_report(s, at=t(6, 9, 30), dedup_key="k3", state="new_case", channel="partner")
        make_report(s, at=t(7, 12), state="rejected")
        make_report(s, at=t(12, 9), dedup_key="k9", claimed_category="csam", state="new_case")
        common = {"legality": "illegal_international", "category": "csam"}
        # A: abroad (NL), partner hotline told; removed Wed 10:00.
        a = make_case(s, at=t(5, 10), url="http://secret-a.example/path", state="removed",
                      open_key=None, hosting_country="NL", hosting_org="HostA",
                      assessed_at=t(5, 12), removed_at=t(7, 10), **common)
        notice(s, a.id, "nl-meldpunt", "hotline", t(5, 13))
        # B: domestic; police first (held a day), then the provider; removed Fri 15:30.
        b = make_case(s, at=t(6, 9), url="http://secret-b.example/", state="removed",
                      open_key=None, hosting_country="RS", hosting_org="HostB",
                      legality="illegal_national", category="hate_speech",
                      assessed_at=t(6, 10), police_hold_at=t(6, 11), notified_at=t(7, 11),
                      removed_at=t(9, 15, 30))
        notice(s, b.id, "rs-police", "police", t(6, 11))
        notice(s, b.id, "hosting-provider", "provider", t(7, 11, 30))
        # C: US provider told Friday 17:00, one reminder; removed Sunday 16:00.
        c = make_case(s, at=t(9, 16), url="http://secret-c.example/", state="removed",
                      open_key=None, hosting_country="US", hosting_org=provider_c,
                      assessed_at=t(9, 16, 30), removed_at=t(11, 16), **common)
        notice(s, c.id, "hosting-provider", "provider", t(9, 17))
        notice(s, c.id, "hosting-provider", "provider", t(10, 17), "reminder", 2)
        notice(s, c.id, "registrar", "registrar", None, "escalation", 2)  # never sent
        # D: not illegal, closed at once (no country).
        make_case(s, at=t(6, 9, 30), url="http://secret-d.example/", state="closed",
                  open_key=None, legality="not_illegal", assessed_at=t(6, 9, 45),
                  closed_at=t(6, 10))
        # E: a re-upload of A's URL, waiting for assessment.
        make_case(s, at=t(8, 8), url="http://secret-a.example/path#2",
                  state="awaiting_assessment", previous_case_id=a.id)
        # F: before and after the week: in no figure.
        f = make_case(s, at=datetime(2026, 1, 3, 9, tzinfo=UTC), url="http://f.example/",
                      state="removed", open_key=None, hosting_country="NL",
                      hosting_org="HostA", assessed_at=datetime(2026, 1, 4, tzinfo=UTC),
                      removed_at=datetime(2026, 1, 13, tzinfo=UTC), **common)
        notice(s, f.id, "nl-meldpunt", "hotline", datetime(2026, 1, 4, 1, tzinfo=UTC))


def export(rt: Runtime, settings: Settings, **kw: Any) -> StatsExport:
    with rt.session_factory.begin() as session:
        return export_stats(session, START, END, settings=settings, now=NOW, **kw)


@pytest.fixture
def settings(settings_factory: Any) -> Settings:
    return settings_factory(worktime={"timezone": "UTC"})  # type: ignore[no-any-return]


def counts(items: list[Any]) -> dict[str, int | None]:
    return {c.key: c.count for c in items}


def figures(timing: Timing) -> tuple[Any, ...]:
    cal, work = timing.calendar, timing.working
    return (timing.count, cal.median_hours, cal.p90_hours, cal.share_within_1_day,
            cal.share_within_3_days, cal.share_within_7_days, work.median_hours,
            work.p90_hours, work.share_within_1_day, work.share_within_3_days,
            work.share_within_7_days)


def approx(*values: Any) -> Any:
    return pytest.approx(values, abs=1e-3)


def test_every_count_is_right(runtime: Runtime, settings: Settings) -> None:
    build(runtime)
    out = export(runtime, settings)
    r = out.reports
    assert r.total == 5  # R1-R5; R6 is the week after
    assert counts(r.by_channel) == {"web": 3, "api": 1, "partner": 1}
    assert counts(r.by_claimed_category) == {"csam": 2, "hate_speech": 1, "none": 2}
    assert r.unique_urls == 3  # k1, k2, k3 (the rejected report has no key)
    assert r.duplicates == 1  # R2
    assert r.re_uploads == 1  # E
    a = out.assessments
    assert a.total == 4  # A, B, C, D (F was assessed before the week)
    assert counts(a.by_legality) == {"illegal_international": 2, "illegal_national": 1,
                                     "not_illegal": 1}
    assert counts(a.by_category) == {"csam": 2, "hate_speech": 1, "none": 1}
    assert counts(out.illegal_by_hosting_country) == {"NL": 1, "RS": 1, "US": 1}
    n = out.notices
    assert n.total == 5  # A hotline, B police + provider, C provider + reminder
    assert counts(n.by_destination_kind) == {"provider": 3, "hotline": 1, "police": 1}
    assert counts(n.by_kind) == {"notice": 4, "reminder": 1}
    assert out.working_day_hours == 8


def test_removal_times_are_right(runtime: Runtime, settings: Settings) -> None:
    build(runtime)
    removal = export(runtime, settings).removal
    # Calendar: A 48h, B 78.5h, C 48h. Sorted 48, 48, 78.5: median 48; p90 at rank
    # 1 + 0.9 * 2 = 2.8: 48 + 0.8 * 30.5 = 72.4. Within 1 day none, 3 days A and C.
    # Working: A Mon 10-17 (7) + Tue (8) + Wed 9-10 (1) = 16; B Tue-Thu (24) + Fri 9-15:30
    # (6.5) = 30.5; C Fri 16-17 = 1. Sorted 1, 16, 30.5: median 16; p90 16 + 0.8 * 14.5
    # = 27.6. Within 8h: C; within 24h: C and A; within 56h: all.
    assert figures(removal.overall) == approx(3, 48, 72.4, 0, 2 / 3, 1,
                                              16, 27.6, 1 / 3, 2 / 3, 1)
    by_country = {t.key: figures(t) for t in removal.by_hosting_country}
    assert set(by_country) == {"NL", "RS", "US"}
    assert by_country["RS"] == approx(1, 78.5, 78.5, 0, 0, 1, 30.5, 30.5, 0, 0, 1)
    assert by_country["US"] == approx(1, 48, 48, 0, 1, 1, 1, 1, 1, 1, 1)
    by_provider = {t.key: figures(t) for t in removal.by_provider}
    assert by_provider["HostA"] == approx(1, 48, 48, 0, 1, 1, 16, 16, 0, 1, 1)
    assert set(by_provider) == {"HostA", "HostB", "HostC"}
    assert [t.key for t in removal.by_partner_hotline] == ["nl-meldpunt"]  # not F's
    assert figures(removal.by_partner_hotline[0]) == approx(1, 48, 48, 0, 1, 1, 16, 16, 0, 1,
                                                            1)


def test_stage_durations_are_right(runtime: Runtime, settings: Settings) -> None:
    build(runtime)
    stages = {s.stage: figures(s.timing) for s in export(runtime, settings).stages}
    # Received -> assessed: A 2h, B 1h, C 0.5h, D 0.25h, all within working hours.
    # Sorted 0.25, 0.5, 1, 2: median 0.75; p90 at rank 3.7: 1 + 0.7 * 1 = 1.7.
    assert stages["assessment"] == approx(4, 0.75, 1.7, 1, 1, 1, 0.75, 1.7, 1, 1, 1)
    # B: assessed Tue 10:00, police told 11:00.
    assert stages["police_notice"] == approx(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    # B: held Tue 11:00 -> cleared Wed 11:00: 24h; working Tue 11-17 + Wed 9-11 = 8h.
    assert stages["police_hold"] == approx(1, 24, 24, 1, 1, 1, 8, 8, 1, 1, 1)
    # Assessed -> provider told: B 25.5h (working 7 + 2.5 = 9.5), C 0.5h (0.5).
    # Median (0.5 + 25.5) / 2 = 13, p90 0.5 + 0.9 * 25 = 23; working 5 and 8.6.
    assert stages["provider_notice"] == approx(2, 13, 23, 0.5, 1, 1, 5, 8.6, 0.5, 1, 1)
    # A: assessed Mon 12:00, hotline told 13:00.
    assert stages["hotline_notice"] == approx(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1)
    # Provider told -> removed: B Wed 11:30 -> Fri 15:30 = 52h (working 5.5 + 8 + 6.5
    # = 20); C Fri 17:00 -> Sun 16:00 = 47h (working 0). Median 49.5, p90 47 + 4.5 =
    # 51.5; working median 10, p90 18.
    assert stages["provider_removal"] == approx(2, 49.5, 51.5, 0, 1, 1, 10, 18, 0.5, 1, 1)
    # A: hotline told Mon 13:00 -> removed Wed 10:00 = 45h; working 4 + 8 + 1 = 13.
    assert stages["hotline_removal"] == approx(1, 45, 45, 0, 1, 1, 13, 13, 0, 1, 1)
    assert stages["removal"] == approx(3, 48, 72.4, 0, 2 / 3, 1, 16, 27.6, 1 / 3, 2 / 3, 1)
    # D: received Tue 09:30, closed 10:00.
    assert stages["closing"] == approx(1, 0.5, 0.5, 1, 1, 1, 0.5, 0.5, 1, 1, 1)


def test_an_empty_period_gives_zeros_and_no_durations(runtime: Runtime,
                                                      settings: Settings) -> None:
    with runtime.session_factory.begin() as session:
        out = export_stats(session, date(2025, 1, 1), date(2025, 1, 2), settings=settings,
                           now=NOW)
    assert out.reports.total == 0 and out.removal.overall.count == 0
    assert out.removal.overall.calendar.median_hours is None


def test_small_counts_are_withheld_under_the_threshold(runtime: Runtime,
                                                      settings: Settings) -> None:
    build(runtime)
    out = export(runtime, settings, suppress_below=2)
    assert out.suppressed_below == 2
    assert counts(out.reports.by_channel) == {"web": 3, "api": None, "partner": None}
    assert out.reports.duplicates is None and out.reports.total == 5
    assert all(t.count is None and t.calendar.median_hours is None
               for t in out.removal.by_hosting_country)
    assert out.removal.overall.count == 3


def test_no_url_and_no_personal_data_in_the_export(runtime: Runtime,
                                                    settings: Settings) -> None:
    build(runtime, provider_c="abuse@host-c.example")
    out = export(runtime, settings)
    text = out.model_dump_json() + to_csv(out)
    for secret in ("secret-", "http", "reporter@", "awful", "abuse@host-c"):
        assert secret not in text
    assert "redacted" in counts(out.removal.by_provider)


def test_the_csv_cannot_carry_a_formula(runtime: Runtime, settings: Settings) -> None:
    build(runtime, provider_c="=cmd|' /C calc'!A0")
    rows = list(csv.reader(io.StringIO(to_csv(export(runtime, settings)))))
    assert rows[0] == ["section", "dimension", "key", "metric", "value"]
    assert ["removal", "provider", "'=cmd|' /C calc'!A0", "count", "1"] in rows
    assert not [cell for row in rows for cell in row if cell[:1] in ("=", "+", "@", "\t")
                or (cell[:1] == "-" and not cell[1:2].isdigit())]


@pytest.mark.parametrize("value,cell", [
    ("=1+2", "'=1+2"), ("+1", "'+1"), ("-1+1", "'-1+1"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tx", "'\tx"), ("plain", "plain"), (3, "3"), (-2.5, "-2.5"), (None, ""),
])
def test_csv_cells_are_made_safe(value: Any, cell: str) -> None:
    assert csv_cell(value) == cell


def test_the_published_schema_matches_the_model() -> None:
    path = Path(__file__).parents[2] / "schemas" / "stats.schema.json"
    assert json.loads(path.read_text()) == StatsExport.model_json_schema()


def test_the_per_url_export_lists_the_assessed_cases(runtime: Runtime) -> None:
    build(runtime)
    with runtime.session_factory() as session:
        rows = iccam_rows(session, START, END)
    assert [r.url for r in rows] == ["http://secret-a.example/path", "http://secret-d.example/",
                                     "http://secret-b.example/", "http://secret-c.example/"]




def test_one_connection_or_two_give_the_same_export(pg_runtime: Runtime,
                                                     settings: Settings) -> None:
    """On PostgreSQL parts of the export are computed on two more connections reading
    the caller's snapshot (`stats.parallel`): the figures are those of one connection."""
    build(pg_runtime)
    two = export(pg_runtime, settings)
    alone = settings.model_copy(update={"stats": settings.stats.model_copy(
        update={"parallel": False})})
    one = export(pg_runtime, alone)
    assert two.removal.overall.count == 3 and two.reports.total == 5
    assert two.model_dump() == one.model_dump()


def test_a_case_whose_only_stage_end_in_the_period_is_a_notice_is_counted(
        runtime: Runtime, settings: Settings) -> None:
    """The cases are read by their own times first; one whose only end in the period is
    a notice sent (assessed and its provider told the week before, a partner hotline
    told in the week) is read after the notice times, and counted."""
    build(runtime)
    with runtime.session_factory.begin() as s:
        g = make_case(s, at=datetime(2026, 1, 2, 8, tzinfo=UTC), url="http://secret-g.example/",
                      state="notified", hosting_country="DE", hosting_org="HostG",
                      legality="illegal_international", category="csam",
                      assessed_at=datetime(2026, 1, 2, 9, tzinfo=UTC),
                      notified_at=datetime(2026, 1, 2, 10, tzinfo=UTC))
        notice(s, g.id, "hosting-provider", "provider", datetime(2026, 1, 2, 10, tzinfo=UTC))
        notice(s, g.id, "de-hotline", "hotline", t(8, 9))
    stages = {s.stage: figures(s.timing) for s in export(runtime, settings).stages}
    # Assessed -> hotline told: A 1h (working 1h); G Fri 2nd 09:00 -> Thu 8th 09:00 =
    # 144h, working Fri + Mon + Tue + Wed = 32h. Median 72.5, p90 1 + 0.9 * 143 = 129.7;
    # working median 16.5, p90 1 + 0.9 * 31 = 28.9. Within 1 and 3 days (8h and 24h
    # working): A; within 7 days (56h working): both.
    assert stages["hotline_notice"] == approx(2, 72.5, 129.7, 0.5, 0.5, 1,
                                              16.5, 28.9, 0.5, 0.5, 1)
    # G's provider notice was the week before: that stage is as without G.
    assert stages["provider_notice"] == approx(2, 13, 23, 0.5, 1, 1, 5, 8.6, 0.5, 1, 1)


def test_times_are_postgresqls_epoch_and_working_positions_the_hourly_tables_to_the_bit(
        pg_runtime: Runtime) -> None:
    """The export reads times from PostgreSQL's binary COPY (microseconds since 2000):
    each must be exactly what date_part('epoch') gives; and a time's working position
    exactly cum + clamp(t - hour * 3600 - ws, 0, we - ws) of the hourly table, across
    a change to summer time, on whole hours and at odd microseconds."""
    from datetime import timedelta

    import numpy as np
    from sqlalchemy import text

    from pipeline.core.config import WorktimeSection
    from pipeline.core.worktime import WorkCalendar
    from pipeline.stages.stats import _calendar_arrays, _columns, _working_positions

    calendar = WorkCalendar.from_settings(WorktimeSection(timezone="Europe/Belgrade"))
    start = datetime(2026, 3, 26, 6, 0, tzinfo=UTC)
    times = [start + timedelta(minutes=17 * i, microseconds=(i * 7919) % 1_000_000)
             for i in range(600)] + [start + timedelta(hours=h) for h in range(120)]
    source = "FROM unnest(CAST(:times AS TIMESTAMPTZ[])) WITH ORDINALITY AS x(u, n)"
    with pg_runtime.session_factory() as session:
        conn = session.connection()
        order, read, none = _columns(conn, "itt", ["n", "u", "CAST(NULL AS TIMESTAMPTZ)"],
                                     source, {"times": times}, pg=True)
        expected = conn.execute(text(f"SELECT date_part('epoch', u) {source} ORDER BY n"),
                                {"times": times}).scalars().all()
    assert list(order) == list(range(1, len(times) + 1))
    assert read.tolist() == expected  # to the bit
    assert np.isnan(none).all()
    table = _calendar_arrays({"t": read}, max(times) + timedelta(hours=1), calendar)
    positions = _working_positions(read, table)
    hourly = {h: (cum, ws, we) for h, cum, ws, we in calendar.hourly_table(
        min(times) - timedelta(hours=1), max(times) + timedelta(hours=2))}
    inside = 0
    for t_, position in zip(read.tolist(), positions.tolist(), strict=True):
        hour = int(t_ // 3600)
        cum, ws, we = hourly[hour]
        assert position == cum + min(max(t_ - hour * 3600 - ws, 0), we - ws), t_
        inside += ws < t_ - hour * 3600 < we
    assert 100 < inside < len(times)  # times in working hours and outside them
    outside = _working_positions(np.array([read[0] - 10 * 86_400.0, np.nan]), table)
    assert np.isnan(outside).all()  # before the table, or no time: no position


@pytest.mark.parametrize("ids", [[3, 4, 5, 9, 10], [5, 2_000_000, 9_000_000]],
                         ids=["dense: a table by id", "sparse: binary search"])
def test_case_ids_are_found_where_they_are_and_only_there(ids: list[int]) -> None:
    import numpy as np

    from pipeline.stages.stats import _Index

    index = _Index(np.array(ids, dtype=np.int64))
    wanted = np.array([ids[1], 0, ids[0], ids[-1], ids[-1] + 1, 7, -3], dtype=np.int64)
    found, at = index.find(wanted)
    assert found.tolist() == [True, False, True, True, False, False, False]
    assert at[found].tolist() == [1, 0, len(ids) - 1]
    empty = _Index(np.zeros(0, dtype=np.int64)).find(wanted)[0]
    assert not empty.any()


def test_an_error_on_another_connection_reaches_the_caller(
        pg_runtime: Runtime, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """With `stats.parallel` the removal groups are read on another connection, in a
    thread: its failure is the export's failure, not a silent gap in the figures."""
    import pipeline.stages.stats as stats

    build(pg_runtime)

    def broken(*args: Any) -> Any:
        raise RuntimeError("the groups could not be read")

    monkeypatch.setattr(stats, "_id_lists", broken)
    with pytest.raises(RuntimeError, match="the groups could not be read"):
        export(pg_runtime, settings)
    monkeypatch.undo()
    assert export(pg_runtime, settings).removal.overall.count == 3  # nothing left behind
