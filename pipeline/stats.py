"""The statistics export: aggregates computed in SQL, on PostgreSQL and SQLite alike.

Steps of `export_stats`:
1. count the cases in one scan (assessments by legality, category and hosting
   country, re-uploads, and the first case ever received), the reports in two (by
   channel and claimed category; distinct URLs) and the notices in one,
2. take each INHOPE stage time of the cases whose stages ended in the period as
   seconds since the epoch (`pipeline.takedown` says where each comes from),
3. add each time's working position from the working-time calendar of the span they
   cover (one entry per UTC hour, `pipeline.worktime`),
4. aggregate the durations of each stage, and of removal by hosting country, provider
   and partner hotline: count, median and 90th percentile, and the shares done within
   1, 3 and 7 days,
5. withhold counts under the suppression threshold, and hand back `StatsExport`.

On PostgreSQL steps 2-4 are two single-pass queries (`_stages_pg`, `_removal_pg`):
the calendar goes in as arrays read by index (no join per time column), the
percentiles are `percentile_cont` ordered-set aggregates over the NULL-filtered
durations, and with `stats.parallel` the removal query and the report and notice
counts run on a second connection that reads the caller's snapshot, at the same time
as the stage query. On SQLite they go through temporary tables and window-function
ranks (the same interpolation).

Nothing here reads a URL, a reporter's contact or a case reference; group keys that
look like an address or a URL are replaced by "redacted".
"""

from __future__ import annotations

import csv
import io
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pipeline.clock import as_utc
from pipeline.config import Settings
from pipeline.db import UTCDateTime
from pipeline.models import Case, Notice, Report
from pipeline.worktime import HOUR, WorkCalendar
from schemas.stats import (
    AssessmentFigures,
    Count,
    Durations,
    IccamRow,
    NoticeFigures,
    Period,
    RemovalFigures,
    ReportFigures,
    StageTiming,
    StatsExport,
    Timing,
)

log = logging.getLogger(__name__)

DAY = 86_400.0

# (stage, start time, end time): the durations of the export. Columns of the case
# table: r received, a assessed, pn police notified, pc police cleared, prn provider
# notified, hn partner hotline notified, rm removed, cl closed.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("assessment", "received", "assessed"),
    ("police_notice", "assessed", "police_notified"),
    ("police_hold", "police_notified", "police_cleared"),
    ("provider_notice", "assessed", "provider_notified"),
    ("hotline_notice", "assessed", "hotline_notified"),
    ("provider_removal", "provider_notified", "removed"),
    ("hotline_removal", "hotline_notified", "removed"),
    ("removal", "received", "removed"),
    ("closing", "received", "closed"),
)
COLUMN = {"received": "r", "assessed": "a", "police_notified": "pn", "police_cleared": "pc",
          "provider_notified": "prn", "hotline_notified": "hn", "removed": "rm",
          "closed": "cl"}
REMOVAL_DIMENSIONS = ("hosting_country", "provider", "partner_hotline")


# --- SQL that differs between the two databases ----------------------------------------


class _Dialect:
    def __init__(self, name: str):
        self.pg = name == "postgresql"

    def epoch(self, column: str) -> str:
        if self.pg:  # date_part gives double precision; EXTRACT's numeric is slow
            return f"date_part('epoch', {column})"
        return f"((julianday({column}) - 2440587.5) * 86400.0)"

    def hour(self, expr: str) -> str:
        if self.pg:
            return f"CAST(floor({expr} / 3600) AS BIGINT)"
        return f"CAST({expr} / 3600 AS INTEGER)"

    def clamp(self, expr: str, high: str) -> str:
        if self.pg:
            return f"LEAST(GREATEST({expr}, 0), {high})"
        return f"MIN(MAX({expr}, 0), {high})"

    def temp(self, name: str) -> str:
        return f"CREATE TEMP TABLE {name} ON COMMIT DROP AS" if self.pg else (
            f"CREATE TEMP TABLE {name} AS")


# --- helpers -------------------------------------------------------------------------


def period_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00 UTC, the day after end 00:00 UTC)."""
    if end < start:
        raise ValueError("the period ends before it starts")
    return (datetime.combine(start, time(0), UTC),
            datetime.combine(end + timedelta(days=1), time(0), UTC))


def safe_key(value: Any, missing: str = "unknown") -> str:
    """A group key fit for an aggregate export: never an address or a URL."""
    if value is None or value == "":
        return missing
    text_value = str(value)
    if "@" in text_value or "://" in text_value or text_value.lower().startswith("www."):
        return "redacted"
    return text_value


class _Suppressor:
    def __init__(self, below: int):
        self.below = below

    def __call__(self, n: int | None) -> int | None:
        if n is None:
            return None
        return None if 0 < n < self.below else int(n)

    def counts(self, rows: Iterable[Sequence[Any]], missing: str = "unknown") -> list[Count]:
        merged: dict[str, int] = {}
        for key, n in rows:
            merged[safe_key(key, missing)] = merged.get(safe_key(key, missing), 0) + int(n)
        return [Count(key=k, count=self(n)) for k, n in
                sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))]


# --- the export ------------------------------------------------------------------------


def export_stats(
    session: Session, start: date, end: date, *, settings: Settings, now: datetime,
    suppress_below: int | None = None,
) -> StatsExport:
    """Every figure of the issue for the period [start, end] (whole UTC days)."""
    t0, t1 = period_bounds(start, end)
    suppress = _Suppressor(settings.stats.suppress_below if suppress_below is None
                           else suppress_below)
    calendar = WorkCalendar.from_settings(settings.worktime)
    conn = session.connection()
    dialect = _Dialect(conn.dialect.name)
    if dialect.pg:
        _pg_settings(conn, settings)
    assessments, illegal, re_uploads, first = _case_figures(
        conn, t0, t1, suppress, settings.stats.illegal_legalities)
    reports: ReportFigures | None = None
    notices: NoticeFigures | None = None
    if dialect.pg:
        reports, notices, timings = _export_pg(conn, settings, t0, t1, suppress, calendar,
                                               first)
    else:
        timings = _durations(conn, dialect, t0, t1, calendar)
    if reports is None:
        reports = _report_figures(conn, t0, t1, suppress)
    if notices is None:
        notices = _notice_figures(conn, t0, t1, suppress)
    reports = reports.model_copy(update={"re_uploads": suppress(re_uploads)})

    def timing(series: str, dim: str, key: str) -> Timing:
        row = timings.get((series, dim, key))
        return _timing(row, key, suppress, calendar.working_day_seconds)

    def grouped(dim: str) -> list[Timing]:
        keys = sorted({k for (s, d, k) in timings if s == "removal" and d == dim},
                      key=lambda k: (-timings[("removal", dim, k)][0], k))
        return [timing("removal", dim, k) for k in keys]

    removal = RemovalFigures(
        overall=timing("removal", "overall", ""),
        by_hosting_country=grouped("hosting_country"),
        by_provider=grouped("provider"),
        by_partner_hotline=grouped("partner_hotline"),
    )
    stages = [StageTiming(stage=name, start=a, end=b, timing=timing(name, "overall", ""))
              for name, a, b in STAGES]
    return StatsExport(
        hotline=settings.app.name, country=settings.app.country,
        period=Period(start=start, end=end), generated_at=now,
        suppressed_below=suppress.below,
        working_day_hours=round(calendar.working_day_seconds / 3600, 4),
        reports=reports, assessments=assessments, illegal_by_hosting_country=illegal,
        notices=notices, removal=removal, stages=stages,
    )


def _report_figures(conn: Connection, t0: datetime, t1: datetime, suppress: _Suppressor
                    ) -> ReportFigures:
    """Two scans of the period's reports: the counts by channel and claimed category
    together (summed here), and the distinct URLs."""
    in_period = (Report.received_at >= t0) & (Report.received_at < t1)
    rows = conn.execute(
        select(Report.channel, Report.claimed_category, func.count(),
               func.count().filter(Report.state == "duplicate"))
        .where(in_period).group_by(Report.channel, Report.claimed_category)).all()
    by_channel: dict[Any, int] = {}
    by_category: dict[Any, int] = {}
    for channel, category, n, _dup in rows:
        by_channel[channel] = by_channel.get(channel, 0) + int(n)
        by_category[category] = by_category.get(category, 0) + int(n)
    total = sum(int(r[2]) for r in rows)
    duplicates = sum(int(r[3]) for r in rows)
    # GROUP BY (a hash aggregate) rather than count(DISTINCT ...) (a sort).
    keys = select(Report.dedup_key).where(in_period, Report.dedup_key.is_not(None)).group_by(
        Report.dedup_key).subquery()
    unique_urls = conn.execute(select(func.count()).select_from(keys)).scalar_one()
    return ReportFigures(
        total=suppress(total), by_channel=suppress.counts(by_channel.items()),
        by_claimed_category=suppress.counts(by_category.items(), missing="none"),
        unique_urls=suppress(unique_urls), duplicates=suppress(duplicates),
        re_uploads=None,  # counted with the cases (`_case_figures`)
    )


def _case_figures(conn: Connection, t0: datetime, t1: datetime, suppress: _Suppressor,
                  illegal: list[str]
                  ) -> tuple[AssessmentFigures, list[Count], int, datetime | None]:
    """One scan of the cases: assessments of the period by legality, category and
    hosting country (summed here), re-uploads received in the period, and the time of
    the first case ever received (where the working-time calendar must start)."""
    assessed = (Case.assessed_at >= t0) & (Case.assessed_at < t1)
    reupload = ((Case.received_at >= t0) & (Case.received_at < t1)
                & Case.previous_case_id.is_not(None))
    rows = conn.execute(
        select(Case.legality, Case.category, Case.hosting_country,
               func.count().filter(assessed), func.count().filter(reupload),
               func.min(Case.received_at))
        .group_by(Case.legality, Case.category, Case.hosting_country)).all()
    by_legality: dict[Any, int] = {}
    by_category: dict[Any, int] = {}
    by_country: dict[Any, int] = {}
    re_uploads = 0
    firsts = []
    for legality, category, country, n, reuploads, first in rows:
        re_uploads += int(reuploads)
        if first is not None:
            firsts.append(as_utc(first) if isinstance(first, datetime) else first)
        if not n:
            continue
        by_legality[legality] = by_legality.get(legality, 0) + int(n)
        by_category[category] = by_category.get(category, 0) + int(n)
        if legality in illegal:
            by_country[country] = by_country.get(country, 0) + int(n)
    total = sum(by_legality.values())
    figures = AssessmentFigures(total=suppress(total),
                                by_legality=suppress.counts(by_legality.items()),
                                by_category=suppress.counts(by_category.items(),
                                                            missing="none"))
    return (figures, suppress.counts(by_country.items()), re_uploads,
            min(firsts) if firsts else None)


def _notice_figures(conn: Connection, t0: datetime, t1: datetime, suppress: _Suppressor
                    ) -> NoticeFigures:
    in_period = (Notice.sent_at >= t0) & (Notice.sent_at < t1)
    rows = conn.execute(
        select(Notice.destination_kind, Notice.kind, func.count()).where(in_period)
        .group_by(Notice.destination_kind, Notice.kind)).all()
    by_dest: dict[str, int] = {}
    by_kind: dict[str, int] = {}
    for dest, kind, n in rows:
        by_dest[dest] = by_dest.get(dest, 0) + int(n)
        by_kind[kind] = by_kind.get(kind, 0) + int(n)
    return NoticeFigures(total=suppress(sum(by_dest.values())),
                         by_destination_kind=suppress.counts(by_dest.items()),
                         by_kind=suppress.counts(by_kind.items()))


# --- durations -----------------------------------------------------------------------

_TEMP_TABLES = ("_stats_dur", "_stats_w", "_stats_cal", "_stats_case")


def _drop_temp(conn: Connection) -> None:
    for name in _TEMP_TABLES:
        conn.execute(text(f"DROP TABLE IF EXISTS {name}"))


def _within(cal: str, work: str, working_day: float, where: str = "") -> list[str]:
    """Counts done within 1, 3 and 7 days, calendar then working (counts, not averages:
    PostgreSQL's avg over numeric is far slower than count)."""
    also = f"{where} AND " if where else ""
    return [f"count(*) FILTER (WHERE {also}{col} <= {days * unit!r})"
            for col, unit in ((cal, DAY), (work, working_day)) for days in (1, 3, 7)]


def _pg_calendar(first: datetime | None, t1: datetime, calendar: WorkCalendar
                 ) -> dict[str, Any]:
    """The hourly working-time table as arrays (PostgreSQL), from the first case ever
    received to the end of the period; hour `h` is element `h - hb`. Per hour: the
    working seconds before it (`cum`), when its working window starts (`s`, seconds
    since the epoch) and how long it is (`len`)."""
    first = first if isinstance(first, datetime) else t1
    rows = calendar.hourly_table(min(first, t1) - timedelta(hours=1), t1 + timedelta(hours=1))
    return {"hb": rows[0][0] - 1, "cum": [r[1] for r in rows],
            "s": [float(h * HOUR + ws) for h, _c, ws, _we in rows],
            "len": [we - ws for _h, _c, ws, we in rows]}


# The calendar arrays, once per statement: one row joined to every case row, so each
# working position is three O(1) array reads instead of a hash join per time column.
_PG_CAL = ("cal AS MATERIALIZED (SELECT CAST(:cum AS DOUBLE PRECISION[]) AS cum, "
           "CAST(:s AS DOUBLE PRECISION[]) AS s, CAST(:len AS INTEGER[]) AS len)")


def _pg_positions(source: str, columns: Sequence[str]) -> tuple[str, str]:
    """(hour indexes `i<col>`, working positions `w<col>`) of epoch columns of `source`,
    two select lists for two query levels (the first joined to `cal`). The position
    of a time t in hour h: cum[h] + clamp(t - s[h], 0, len[h]); t - s[h] is exact (two
    doubles less than an hour apart), so it equals the hourly table's
    t - h * 3600 - ws, and every figure is the same to the last bit."""
    d = _Dialect("postgresql")
    hours = [f"CAST({d.hour(source + '.' + c)} AS INTEGER) - CAST(:hb AS INTEGER) AS i{c}"
             for c in columns]
    positions = [f"cum[i{c}] + {d.clamp(f'{c} - s[i{c}]', f'len[i{c}]')} AS w{c}"
                 for c in columns]
    return ", ".join(hours), ", ".join(positions)


def _pg_settings(conn: Connection, settings: Settings) -> None:
    """This transaction's memory for the sorts, and no JIT (compiling these wide
    expressions costs more than it saves)."""
    conn.execute(text("SELECT set_config('work_mem', :v, true), set_config('jit', 'off', true)"),
                 {"v": settings.stats.work_mem})


_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)?$")


def _export_pg(conn: Connection, settings: Settings, t0: datetime, t1: datetime,
               suppress: _Suppressor, calendar: WorkCalendar, first: datetime | None
               ) -> tuple[ReportFigures | None, NoticeFigures | None,
                          dict[tuple[str, str, str], tuple[Any, ...]]]:
    """The report and notice counts and every duration, on PostgreSQL, in three parts
    of about the same work: the stages that end with a notice (on the caller's
    connection), the stages of the case alone with the report and notice counts, and
    the removals. With `stats.parallel` the last two run on two more connections of
    the same engine that read the caller's snapshot (`pg_export_snapshot`), all three
    at once, so the cores share the work; every figure is what one connection would
    find. Reports and notices are None when `stats.parallel` is off: the caller
    counts them."""
    params: dict[str, Any] = {"t0": t0, "t1": t1, "e0": t0.timestamp(), "e1": t1.timestamp(),
                              **_pg_calendar(first, t1, calendar)}
    wd = calendar.working_day_seconds or DAY
    if not settings.stats.parallel:
        timings = _stages_pg(conn, params, wd, _NOTICE_STAGES)
        timings.update(_stages_pg(conn, params, wd, _CASE_STAGES))
        timings.update(_removal_pg(conn, params, wd))
        return None, None, timings
    snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    if not _SNAPSHOT_ID.match(str(snapshot)):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")
    results: dict[str, Any] = {}

    def on_snapshot(name: str, work: Callable[[Connection], Any]) -> threading.Thread:
        def run() -> None:
            try:
                with conn.engine.connect() as other:
                    other = other.execution_options(isolation_level="REPEATABLE READ")
                    with other.begin():
                        other.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
                        _pg_settings(other, settings)
                        results[name] = work(other)
            except BaseException as exc:  # handed to the caller's thread below
                results.setdefault("error", exc)

        thread = threading.Thread(target=run, name=f"stats-export-{name}", daemon=True)
        thread.start()
        return thread

    def case_stages(other: Connection) -> Any:
        return (_report_figures(other, t0, t1, suppress), _notice_figures(other, t0, t1, suppress),
                _stages_pg(other, params, wd, _CASE_STAGES))

    threads = [on_snapshot("removal", lambda other: _removal_pg(other, params, wd)),
               on_snapshot("cases", case_stages)]
    try:
        timings = _stages_pg(conn, params, wd, _NOTICE_STAGES)
    finally:
        for thread in threads:
            thread.join()
    if "error" in results:
        raise results["error"]
    reports, notices, by_case = results["cases"]
    timings.update(by_case)
    timings.update(results["removal"])
    return reports, notices, timings


def _aggregates(c: str, k: str, wd: float) -> list[str]:
    """count, [median, p90] calendar, [median, p90] working, counts within 1/3/7 days."""
    return [f"count({c})",
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {c})",
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY {k})",
            *_within(c, k, wd)]


def _figures(n: Any, cal: Any, work: Any, within: Sequence[Any]) -> tuple[Any, ...]:
    return (n, cal[0], cal[1], work[0], work[1], *(c / n for c in within))


_PG_BINDS = (bindparam("t0", type_=UTCDateTime()), bindparam("t1", type_=UTCDateTime()))
# The stages computed with the removals (`_removal_pg`), those that need the case row
# alone, and those that need the times notices were sent (a join of the notices).
_NOTICE_TIMES = {"pn", "prn", "hn"}
_CASE_STAGES = tuple(s[0] for s in STAGES if s[0] != "removal"
                     and not {COLUMN[s[1]], COLUMN[s[2]]} & _NOTICE_TIMES)
_NOTICE_STAGES = tuple(s[0] for s in STAGES if s[0] != "removal"
                       and {COLUMN[s[1]], COLUMN[s[2]]} & _NOTICE_TIMES)
# Each stage time: its SQL, and the condition that it falls in the period (a row of
# the cases with none of its stage ends in the period is in no figure).
_TIMES = {
    "r": ("c.received_at", None), "a": ("c.assessed_at", "c.assessed_at >= :t0"),
    "pn": ("nt.pn", "nt.pn >= :t0"),
    "pc": ("CASE WHEN c.police_hold_at IS NOT NULL THEN c.notified_at END",
           "c.notified_at >= :t0"),
    "prn": ("nt.prn", "nt.prn >= :t0"), "hn": ("nt.hn", "nt.hn >= :t0"),
    "rm": ("c.removed_at", "c.removed_at >= :t0"), "cl": ("c.closed_at", "c.closed_at >= :t0"),
}


def _stages_pg(conn: Connection, params: dict[str, Any], wd: float, names: Sequence[str]
               ) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """The stages `names` in one pass over the cases (joined to the first notice of each
    kind when a stage needs one): one row per case with each stage time, its working
    position, and each stage's durations (NULL outside the period); ordered-set
    aggregates skip the NULLs."""
    d = _Dialect("postgresql")
    stages = [s for s in STAGES if s[0] in names]
    columns = [c for c in COLUMN.values()
               if any(c in (COLUMN[a], COLUMN[b]) for _n, a, b in stages)]
    ends = [_TIMES[COLUMN[b]][1] for _n, _a, b in stages]
    hours, positions = _pg_positions("e", columns)
    aggregates: list[str] = []
    durations: list[str] = []
    for i, (_name, start, end) in enumerate(stages):
        a, b = COLUMN[start], COLUMN[end]
        inside = f"{b} >= :e0 AND {b} < :e1 AND {a} IS NOT NULL"
        durations += [f"CASE WHEN {inside} THEN {b} - {a} END AS c{i}",
                      f"CASE WHEN {inside} THEN w{b} - w{a} END AS k{i}"]
        aggregates += _aggregates(f"c{i}", f"k{i}", wd)
    # Every stage needing a notice time starts or ends with it: the cases without
    # notices are in none of them (an inner join).
    join = """JOIN (
          SELECT case_id,
            min(sent_at) FILTER (WHERE destination_kind = 'police') AS pn,
            min(sent_at) FILTER (WHERE destination_kind = 'provider') AS prn,
            min(sent_at) FILTER (WHERE destination_kind = 'hotline') AS hn
          FROM notices WHERE kind = 'notice' AND sent_at < :t1
          GROUP BY case_id) nt ON nt.case_id = c.id""" if _NOTICE_TIMES & set(columns) else ""
    times = ", ".join(f"{d.epoch(_TIMES[c][0])} AS {c}" for c in columns)
    row = conn.execute(text(f"""
        WITH {_PG_CAL},
        e AS (
          SELECT {times} FROM cases c {join}
          WHERE c.received_at < :t1 AND ({' OR '.join(dict.fromkeys(e for e in ends if e))})
          OFFSET 0),
        h AS (SELECT e.*, cal.*, {hours} FROM e CROSS JOIN cal OFFSET 0),
        w AS (SELECT {', '.join(columns)}, {positions} FROM h OFFSET 0),
        d AS (SELECT {', '.join(durations)} FROM w OFFSET 0)
        SELECT {', '.join(aggregates)} FROM d
    """).bindparams(*_PG_BINDS), params).one()
    result: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    width = 9
    for i, (name, _a, _b) in enumerate(stages):
        n, cal, work, *within = row[i * width:(i + 1) * width]
        if n:
            result[(name, "overall", "")] = _figures(n, cal, work, within)
    return result


def _removal_pg(conn: Connection, params: dict[str, Any], wd: float
                ) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """Removal times (received to removed) of the cases removed in the period: overall
    (the `removal` stage), by hosting country and provider (one sort each, GROUPING
    SETS), and by partner hotline told."""
    d = _Dialect("postgresql")
    hours, positions = _pg_positions("x", ["r", "rm"])
    aggregates = ", ".join(_aggregates("c", "k", wd))
    rows = conn.execute(text(f"""
        WITH {_PG_CAL},
        x AS (
          SELECT c.id, COALESCE(c.hosting_country, 'unknown') COLLATE "C" AS country,
            COALESCE(c.hosting_org, 'unknown') COLLATE "C" AS provider,
            {d.epoch('c.received_at')} AS r, {d.epoch('c.removed_at')} AS rm
          FROM cases c
          WHERE c.removed_at >= :t0 AND c.removed_at < :t1 AND c.received_at < :t1),
        h AS (SELECT x.*, cal.*, {hours} FROM x CROSS JOIN cal OFFSET 0),
        y AS (SELECT id, country, provider, r, rm, {positions} FROM h OFFSET 0),
        w AS MATERIALIZED (SELECT id, country, provider, rm - r AS c, wrm - wr AS k FROM y)
        SELECT CASE GROUPING(country, provider) WHEN 3 THEN 'overall'
                 WHEN 1 THEN 'hosting_country' ELSE 'provider' END,
               COALESCE(country, provider, ''), {aggregates}
        FROM w GROUP BY GROUPING SETS ((), (country), (provider))
        UNION ALL
        SELECT 'partner_hotline', hp.destination, {aggregates} FROM w JOIN (
          SELECT DISTINCT case_id, destination COLLATE "C" AS destination FROM notices
          WHERE kind = 'notice' AND destination_kind = 'hotline' AND sent_at IS NOT NULL
        ) hp ON hp.case_id = w.id
        GROUP BY hp.destination
    """).bindparams(*_PG_BINDS), params).all()
    return {("removal", dim, grp): _figures(n, cal, work, within)
            for dim, grp, n, cal, work, *within in rows if n}


def _durations(conn: Connection, d: _Dialect, t0: datetime, t1: datetime,
               calendar: WorkCalendar) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """(series, dimension, group) -> (n, median and p90 calendar, median and p90
    working, shares within 1/3/7 days calendar, shares within 1/3/7 days working)."""
    _drop_temp(conn)
    e0, e1 = t0.timestamp(), t1.timestamp()
    ends = ("a", "pn", "pc", "prn", "hn", "rm", "cl")
    in_period = " OR ".join(f"({c} >= :e0 AND {c} < :e1)" for c in ends)
    conn.execute(text(f"""
        {d.temp('_stats_case')}
        SELECT * FROM (
          SELECT c.id AS id, c.hosting_country AS country, c.hosting_org AS provider,
            {d.epoch('c.received_at')} AS r, {d.epoch('c.assessed_at')} AS a,
            {d.epoch('nt.pn')} AS pn,
            {d.epoch('CASE WHEN c.police_hold_at IS NOT NULL THEN c.notified_at END')} AS pc,
            {d.epoch('nt.prn')} AS prn, {d.epoch('nt.hn')} AS hn,
            {d.epoch('c.removed_at')} AS rm, {d.epoch('c.closed_at')} AS cl
          FROM cases c LEFT JOIN (
            SELECT case_id,
              min(sent_at) FILTER (WHERE destination_kind = 'police') AS pn,
              min(sent_at) FILTER (WHERE destination_kind = 'provider') AS prn,
              min(sent_at) FILTER (WHERE destination_kind = 'hotline') AS hn
            FROM notices WHERE kind = 'notice' AND sent_at IS NOT NULL
            GROUP BY case_id
          ) nt ON nt.case_id = c.id
        ) s WHERE {in_period}
    """), {"e0": e0, "e1": e1})
    if d.pg:
        conn.execute(text("ANALYZE _stats_case"))
    span = conn.execute(text(
        "SELECT " + ", ".join(f"min({c}), max({c})" for c in COLUMN.values())
        + " FROM _stats_case")).one()
    values = [v for v in span if v is not None]
    conn.execute(text(
        "CREATE TEMP TABLE _stats_cal (h BIGINT PRIMARY KEY, cum DOUBLE PRECISION, "
        "ws INTEGER, we INTEGER)" + (" ON COMMIT DROP" if d.pg else "")))
    if values:
        lo = datetime.fromtimestamp(min(values) - 3600, UTC)
        hi = datetime.fromtimestamp(max(values) + 3600, UTC)
        rows = calendar.hourly_table(lo, hi)
        insert = text("INSERT INTO _stats_cal (h, cum, ws, we) VALUES (:h, :cum, :ws, :we)")
        for i in range(0, len(rows), 10_000):
            conn.execute(insert, [{"h": h, "cum": c, "ws": ws, "we": we}
                                  for h, c, ws, we in rows[i:i + 10_000]])
    if d.pg:
        conn.execute(text("ANALYZE _stats_cal"))
    joins, positions = [], []
    for i, column in enumerate(COLUMN.values()):
        joins.append(f"LEFT JOIN _stats_cal k{i} ON k{i}.h = {d.hour('s.' + column)}")
        clamp = d.clamp(f"s.{column} - k{i}.h * 3600 - k{i}.ws", f"k{i}.we - k{i}.ws")
        positions.append(f"k{i}.cum + {clamp} AS w{column}")
    conn.execute(text(f"""
        {d.temp('_stats_w')}
        SELECT s.*, {', '.join(positions)} FROM _stats_case s {' '.join(joins)}
    """))
    parts = []
    for name, start, end in STAGES:
        a, b = COLUMN[start], COLUMN[end]
        where = f"{b} >= :e0 AND {b} < :e1 AND {a} IS NOT NULL"
        parts.append(f"SELECT '{name}' AS series, 'overall' AS dim, '' AS grp, "
                     f"{b} - {a} AS cal, w{b} - w{a} AS work FROM _stats_w WHERE {where}")
    removal = "rm >= :e0 AND rm < :e1 AND r IS NOT NULL"
    parts.append("SELECT 'removal', 'hosting_country', COALESCE(country, 'unknown'), "
                 f"rm - r, wrm - wr FROM _stats_w WHERE {removal}")
    parts.append("SELECT 'removal', 'provider', COALESCE(provider, 'unknown'), "
                 f"rm - r, wrm - wr FROM _stats_w WHERE {removal}")
    parts.append(
        "SELECT 'removal', 'partner_hotline', h.destination, w.rm - w.r, w.wrm - w.wr "
        "FROM _stats_w w JOIN (SELECT DISTINCT case_id, destination FROM notices "
        "WHERE kind = 'notice' AND destination_kind = 'hotline' AND sent_at IS NOT NULL) h "
        "ON h.case_id = w.id WHERE w.rm >= :e0 AND w.rm < :e1 AND w.r IS NOT NULL")
    conn.execute(text(f"{d.temp('_stats_dur')} " + " UNION ALL ".join(parts)),
                 {"e0": e0, "e1": e1})
    if d.pg:
        conn.execute(text("ANALYZE _stats_dur"))
    wd = calendar.working_day_seconds or DAY
    shares = ", ".join(
        f"avg(CASE WHEN {col} <= {days * unit!r} THEN 1.0 ELSE 0.0 END)"
        for col, unit in (("cal", DAY), ("work", wd)) for days in (1, 3, 7))
    result: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    if d.pg:
        pct = ", ".join(f"percentile_cont({p}) WITHIN GROUP (ORDER BY {col})"
                        for col in ("cal", "work") for p in (0.5, 0.9))
        for row in conn.execute(text(
                f"SELECT series, dim, grp, count(*), {pct}, {shares} FROM _stats_dur "
                "GROUP BY series, dim, grp")):
            result[(row[0], row[1], row[2])] = tuple(row[3:])
    else:
        picks = []
        for col, rank in (("cal", "rc"), ("work", "rw")):
            for p in (0.5, 0.9):
                low_rank = f"CAST({p} * (n - 1) AS INTEGER)"
                picks.append(f"max(CASE WHEN {rank} = 1 + {low_rank} THEN {col} END)")
                picks.append(f"max(CASE WHEN {rank} = 2 + {low_rank} THEN {col} END)")
        for row in conn.execute(text(f"""
                WITH ranked AS (
                  SELECT series, dim, grp, cal, work,
                    row_number() OVER (PARTITION BY series, dim, grp ORDER BY cal) AS rc,
                    row_number() OVER (PARTITION BY series, dim, grp ORDER BY work) AS rw,
                    count(*) OVER (PARTITION BY series, dim, grp) AS n
                  FROM _stats_dur)
                SELECT series, dim, grp, max(n), {', '.join(picks)}, {shares}
                FROM ranked GROUP BY series, dim, grp""")):
            n = int(row[3])
            values = list(row[4:12])
            quantiles = []
            for i, p in enumerate((0.5, 0.9, 0.5, 0.9)):
                low, high = values[2 * i], values[2 * i + 1]
                pos = p * (n - 1)
                frac = pos - math.floor(pos)
                quantiles.append(low if high is None or low is None
                                 else low + frac * (high - low))
            result[(row[0], row[1], row[2])] = (n, *quantiles, *row[12:])
    _drop_temp(conn)
    return result


def _timing(row: tuple[Any, ...] | None, key: str, suppress: _Suppressor,
            working_day: float) -> Timing:
    empty = Durations(median_hours=None, p90_hours=None, share_within_1_day=None,
                      share_within_3_days=None, share_within_7_days=None)
    if row is None:
        return Timing(key=safe_key(key, "") if key else "", count=0, calendar=empty,
                      working=empty)
    n = int(row[0])
    shown = suppress(n)
    if shown is None:
        return Timing(key=safe_key(key), count=None, calendar=empty, working=empty)

    def hours(v: Any) -> float | None:
        return None if v is None else round(float(v) / 3600, 4)

    def share(v: Any) -> float | None:
        return None if v is None else round(float(v), 4)

    return Timing(
        key=safe_key(key) if key else "", count=n,
        calendar=Durations(median_hours=hours(row[1]), p90_hours=hours(row[2]),
                           share_within_1_day=share(row[5]), share_within_3_days=share(row[6]),
                           share_within_7_days=share(row[7])),
        working=Durations(median_hours=hours(row[3]), p90_hours=hours(row[4]),
                          share_within_1_day=share(row[8]), share_within_3_days=share(row[9]),
                          share_within_7_days=share(row[10])),
    )


# --- CSV -----------------------------------------------------------------------------

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d",
                  "\uff20")


def csv_cell(value: Any) -> str:
    """A cell a spreadsheet will not run as a formula: text starting with = + - @, a
    tab or a line break gets a leading apostrophe (OWASP's advice). Numbers stay."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text_value = str(value)
    if text_value.startswith(_FORMULA_START):
        return "'" + text_value
    return text_value


def export_rows(export: StatsExport) -> list[tuple[str, str, str, str, Any]]:
    """The export as long rows: (section, dimension, key, metric, value)."""
    rows: list[tuple[str, str, str, str, Any]] = []
    meta = export.model_dump(mode="json")
    for name in ("schema_version", "hotline", "country", "generated_at", "suppressed_below",
                 "working_day_hours"):
        rows.append(("export", "", "", name, meta[name]))
    rows.append(("export", "", "", "period_start", meta["period"]["start"]))
    rows.append(("export", "", "", "period_end", meta["period"]["end"]))
    r = export.reports
    for metric in ("total", "unique_urls", "duplicates", "re_uploads"):
        rows.append(("reports", "", "", metric, getattr(r, metric)))
    rows += [("reports", "channel", c.key, "count", c.count) for c in r.by_channel]
    rows += [("reports", "claimed_category", c.key, "count", c.count)
             for c in r.by_claimed_category]
    a = export.assessments
    rows.append(("assessments", "", "", "total", a.total))
    rows += [("assessments", "legality", c.key, "count", c.count) for c in a.by_legality]
    rows += [("assessments", "category", c.key, "count", c.count) for c in a.by_category]
    rows += [("illegal", "hosting_country", c.key, "count", c.count)
             for c in export.illegal_by_hosting_country]
    n = export.notices
    rows.append(("notices", "", "", "total", n.total))
    rows += [("notices", "destination_kind", c.key, "count", c.count)
             for c in n.by_destination_kind]
    rows += [("notices", "kind", c.key, "count", c.count) for c in n.by_kind]

    def timing_rows(section: str, dim: str, t: Timing) -> None:
        rows.append((section, dim, t.key, "count", t.count))
        for basis in ("calendar", "working"):
            durations = getattr(t, basis)
            for metric, value in durations.model_dump().items():
                rows.append((section, dim, t.key, f"{basis}_{metric}", value))

    timing_rows("removal", "overall", export.removal.overall)
    for dim in REMOVAL_DIMENSIONS:
        for t in getattr(export.removal, f"by_{dim}"):
            timing_rows("removal", dim, t)
    for stage in export.stages:
        timing_rows("stage", stage.stage, stage.timing)
    return rows


def to_csv(export: StatsExport) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["section", "dimension", "key", "metric", "value"])
    for row in export_rows(export):
        writer.writerow([csv_cell(v) for v in row])
    return out.getvalue()


# --- the per-URL export (admins only) --------------------------------------------------


def iccam_rows(session: Session, start: date, end: date, *, limit: int | None = None
               ) -> list[IccamRow]:
    """Cases assessed in the period, one row per URL, for ICCAM-style exchange. It
    carries URLs: callers must restrict it to admins. No reporter data."""
    t0, t1 = period_bounds(start, end)
    query = (
        select(Case.ref, Case.canonical_url, Case.received_at, Case.assessed_at,
               Case.legality, Case.category, Case.hosting_country, Case.hosting_asn,
               Case.hosting_org, Case.state, Case.removed_at)
        .where(Case.assessed_at >= bindparam("t0", t0, type_=UTCDateTime()),
               Case.assessed_at < bindparam("t1", t1, type_=UTCDateTime()))
        .order_by(Case.assessed_at, Case.id)
    )
    if limit is not None:
        query = query.limit(limit)
    return [
        IccamRow(reference=r[0], url=r[1], received_at=r[2], assessed_at=r[3], legality=r[4],
                 category=r[5], hosting_country=r[6], hosting_asn=r[7], hosting_org=r[8],
                 state=r[9], removed_at=r[10])
        for r in session.execute(query)
    ]


def iccam_csv(rows: Sequence[IccamRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    fields = list(IccamRow.model_fields)
    writer.writerow(fields)
    for row in rows:
        data = row.model_dump(mode="json")
        writer.writerow([csv_cell(data[f]) for f in fields])
    return out.getvalue()
