"""The statistics export: aggregates computed in SQL, on PostgreSQL and SQLite alike.

Steps of `export_stats`:
1. count reports, assessments and notices of the period with GROUP BY queries,
2. build a temporary table of the cases whose stages ended in the period, with each
   INHOPE stage time as seconds since the epoch (`pipeline.takedown` says where each
   comes from),
3. build the working-time calendar of the span those times cover (one row per UTC
   hour, `pipeline.worktime`), and add each time's working position by a join,
4. unfold the durations into one table (series, dimension, group, calendar seconds,
   working seconds): each stage, and removal by hosting country, provider and partner
   hotline,
5. aggregate it: count, median and 90th percentile (PostgreSQL's `percentile_cont`;
   on SQLite the same interpolation from window-function ranks), and the shares done
   within 1, 3 and 7 days,
6. withhold counts under the suppression threshold, and hand back `StatsExport`.

Nothing here reads a URL, a reporter's contact or a case reference; group keys that
look like an address or a URL are replaced by "redacted".
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pipeline.config import Settings
from pipeline.db import UTCDateTime
from pipeline.models import Case, Notice, Report
from pipeline.worktime import WorkCalendar
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
        conn.execute(text("SELECT set_config('work_mem', :v, true)"),
                     {"v": settings.stats.work_mem})
        # Compiling these wide expressions costs more than it saves.
        conn.execute(text("SELECT set_config('jit', 'off', true)"))

    reports = _report_figures(session, t0, t1, suppress)
    assessments, illegal = _assessment_figures(session, t0, t1, suppress,
                                               settings.stats.illegal_legalities)
    notices = _notice_figures(session, t0, t1, suppress)
    timings = (_durations_pg(conn, t0, t1, calendar) if dialect.pg
               else _durations(conn, dialect, t0, t1, calendar))

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


def _report_figures(session: Session, t0: datetime, t1: datetime, suppress: _Suppressor
                    ) -> ReportFigures:
    in_period = (Report.received_at >= t0) & (Report.received_at < t1)
    total, duplicates = session.execute(
        select(func.count(), func.count().filter(Report.state == "duplicate")).where(in_period)
    ).one()
    # GROUP BY (a hash aggregate) rather than count(DISTINCT ...) (a sort).
    keys = select(Report.dedup_key).where(in_period, Report.dedup_key.is_not(None)).group_by(
        Report.dedup_key).subquery()
    unique_urls = session.execute(select(func.count()).select_from(keys)).scalar_one()
    by_channel = session.execute(
        select(Report.channel, func.count()).where(in_period).group_by(Report.channel)).all()
    by_category = session.execute(
        select(Report.claimed_category, func.count()).where(in_period)
        .group_by(Report.claimed_category)).all()
    re_uploads = session.execute(
        select(func.count()).where(Case.received_at >= t0, Case.received_at < t1,
                                   Case.previous_case_id.is_not(None))).scalar_one()
    return ReportFigures(
        total=suppress(total), by_channel=suppress.counts(by_channel),
        by_claimed_category=suppress.counts(by_category, missing="none"),
        unique_urls=suppress(unique_urls), duplicates=suppress(duplicates),
        re_uploads=suppress(re_uploads),
    )


def _assessment_figures(session: Session, t0: datetime, t1: datetime, suppress: _Suppressor,
                        illegal: list[str]) -> tuple[AssessmentFigures, list[Count]]:
    in_period = (Case.assessed_at >= t0) & (Case.assessed_at < t1)
    by_legality = session.execute(
        select(Case.legality, func.count()).where(in_period).group_by(Case.legality)).all()
    by_category = session.execute(
        select(Case.category, func.count()).where(in_period).group_by(Case.category)).all()
    by_country = session.execute(
        select(Case.hosting_country, func.count())
        .where(in_period, Case.legality.in_(illegal)).group_by(Case.hosting_country)).all()
    total = sum(int(n) for _, n in by_legality)
    figures = AssessmentFigures(total=suppress(total), by_legality=suppress.counts(by_legality),
                                by_category=suppress.counts(by_category, missing="none"))
    return figures, suppress.counts(by_country)


def _notice_figures(session: Session, t0: datetime, t1: datetime, suppress: _Suppressor
                    ) -> NoticeFigures:
    in_period = (Notice.sent_at >= t0) & (Notice.sent_at < t1)
    rows = session.execute(
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


def _pg_calendar(conn: Connection, t1: datetime, calendar: WorkCalendar) -> None:
    """The hourly working-time table as a temporary table (PostgreSQL), from the first
    case ever received to the end of the period, filled in one statement."""
    first = conn.execute(text("SELECT min(received_at) FROM cases")).scalar()
    first = first if isinstance(first, datetime) else t1
    rows = calendar.hourly_table(min(first, t1) - timedelta(hours=1), t1 + timedelta(hours=1))
    conn.execute(text("DROP TABLE IF EXISTS _stats_cal"))
    conn.execute(text("CREATE TEMP TABLE _stats_cal (h INTEGER PRIMARY KEY, "
                      "cum DOUBLE PRECISION, ws INTEGER, we INTEGER) ON COMMIT DROP"))
    conn.execute(text(
        "INSERT INTO _stats_cal SELECT * FROM unnest(CAST(:h AS INTEGER[]), "
        "CAST(:cum AS DOUBLE PRECISION[]), CAST(:ws AS INTEGER[]), CAST(:we AS INTEGER[]))"),
        {"h": [r[0] for r in rows], "cum": [r[1] for r in rows],
         "ws": [r[2] for r in rows], "we": [r[3] for r in rows]})
    conn.execute(text("ANALYZE _stats_cal"))


def _pg_positions(source: str, columns: Sequence[str]) -> tuple[str, str]:
    """(select list of working positions `w<col>`, joins) of epoch columns of `source`."""
    d = _Dialect("postgresql")
    joins, positions = [], []
    for i, column in enumerate(columns):
        joins.append(f"LEFT JOIN _stats_cal k{i} ON k{i}.h = {d.hour(source + '.' + column)}")
        clamp = d.clamp(f"{source}.{column} - k{i}.h * 3600 - k{i}.ws", f"k{i}.we - k{i}.ws")
        positions.append(f"k{i}.cum + {clamp} AS w{column}")
    return ", ".join(positions), " ".join(joins)


def _durations_pg(conn: Connection, t0: datetime, t1: datetime, calendar: WorkCalendar
                  ) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """The same figures as `_durations`, in two single-pass queries: ordered-set
    aggregates with FILTER, one per stage, and GROUPING of the removals."""
    d = _Dialect("postgresql")
    _pg_calendar(conn, t1, calendar)
    params: dict[str, Any] = {"t0": t0, "t1": t1, "e0": t0.timestamp(), "e1": t1.timestamp()}
    wd = calendar.working_day_seconds or DAY
    positions, joins = _pg_positions("e", list(COLUMN.values()))
    aggregates: list[str] = []
    durations: list[str] = []
    for i, (_name, start, end) in enumerate(STAGES):
        a, b = COLUMN[start], COLUMN[end]
        # NULL outside the period: aggregates skip NULLs, so no FILTER is needed.
        inside = f"{b} >= :e0 AND {b} < :e1 AND {a} IS NOT NULL"
        durations += [f"CASE WHEN {inside} THEN {b} - {a} END AS c{i}",
                      f"CASE WHEN {inside} THEN w{b} - w{a} END AS k{i}"]
        aggregates += [
            f"count(c{i})",
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY c{i})",
            f"percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY k{i})",
            *_within(f"c{i}", f"k{i}", wd),
        ]
    ends = ("c.assessed_at", "c.notified_at", "c.removed_at", "c.closed_at", "nt.pn",
            "nt.prn", "nt.hn")
    row = conn.execute(text(f"""
        WITH nt AS (
          SELECT case_id,
            min(sent_at) FILTER (WHERE destination_kind = 'police') AS pn,
            min(sent_at) FILTER (WHERE destination_kind = 'provider') AS prn,
            min(sent_at) FILTER (WHERE destination_kind = 'hotline') AS hn
          FROM notices WHERE kind = 'notice' AND sent_at < :t1
          GROUP BY case_id),
        e AS (
          SELECT {d.epoch('c.received_at')} AS r, {d.epoch('c.assessed_at')} AS a,
            {d.epoch('nt.pn')} AS pn,
            {d.epoch('CASE WHEN c.police_hold_at IS NOT NULL THEN c.notified_at END')} AS pc,
            {d.epoch('nt.prn')} AS prn, {d.epoch('nt.hn')} AS hn,
            {d.epoch('c.removed_at')} AS rm, {d.epoch('c.closed_at')} AS cl
          FROM cases c LEFT JOIN nt ON nt.case_id = c.id
          WHERE c.received_at < :t1 AND ({' OR '.join(f'{x} >= :t0' for x in ends)})
          OFFSET 0),
        w AS (SELECT e.*, {positions} FROM e {joins} OFFSET 0),
        d AS (SELECT {', '.join(durations)} FROM w OFFSET 0)
        SELECT {', '.join(aggregates)} FROM d
    """).bindparams(bindparam("t0", type_=UTCDateTime()), bindparam("t1", type_=UTCDateTime())),
        params).one()
    result: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    width = 9
    for i, (name, _a, _b) in enumerate(STAGES):
        n, cal, work, *within = row[i * width:(i + 1) * width]
        if n:
            result[(name, "overall", "")] = (n, cal[0], cal[1], work[0], work[1],
                                             *(c / n for c in within))
    group_aggregates = ", ".join([
        "count(*)",
        "percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY c)",
        "percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY k)",
        *_within("c", "k", wd)])
    removal_positions, removal_joins = _pg_positions("x", ["r", "rm"])
    rows = conn.execute(text(f"""
        WITH x AS (
          SELECT c.id, COALESCE(c.hosting_country, 'unknown') COLLATE "C" AS country,
            COALESCE(c.hosting_org, 'unknown') COLLATE "C" AS provider,
            {d.epoch('c.received_at')} AS r, {d.epoch('c.removed_at')} AS rm
          FROM cases c WHERE c.removed_at >= :t0 AND c.removed_at < :t1),
        y AS (SELECT x.*, {removal_positions} FROM x {removal_joins} OFFSET 0),
        w AS MATERIALIZED (SELECT id, country, provider, rm - r AS c, wrm - wr AS k FROM y)
        SELECT 'hosting_country', country, {group_aggregates} FROM w GROUP BY country
        UNION ALL
        SELECT 'provider', provider, {group_aggregates} FROM w GROUP BY provider
        UNION ALL
        SELECT 'partner_hotline', destination, {group_aggregates} FROM (
          SELECT DISTINCT w.id, n.destination COLLATE "C" AS destination, w.c, w.k
          FROM w JOIN notices n ON n.case_id = w.id AND n.kind = 'notice'
            AND n.destination_kind = 'hotline' AND n.sent_at IS NOT NULL) h
        GROUP BY destination
    """).bindparams(bindparam("t0", type_=UTCDateTime()), bindparam("t1", type_=UTCDateTime())),
        params).all()
    for dim, grp, n, cal, work, *within in rows:
        result[("removal", dim, grp)] = (n, cal[0], cal[1], work[0], work[1],
                                         *(c / n for c in within))
    return result


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
