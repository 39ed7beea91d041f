"""The statistics export: counts in SQL, durations with numpy, on PostgreSQL and SQLite.

Steps of `export_stats`:
1. count the cases in one scan (assessments by legality, category and hosting
   country, and re-uploads), the reports in two (by channel and claimed category;
   distinct URLs) and the notices in one,
2. read the INHOPE stage times (`pipeline.store.takedown_models` says where each comes from) of
   the cases that may have a stage ending in the period, as arrays of seconds since
   the epoch: the cases' own times in one scan, the first notice of each kind per
   case in another, then the few cases told in the period that the first left out;
   and the ids of the removed cases per hosting country, provider and partner
   hotline (`_stage_times`, `_id_lists`),
3. give each time its working position from the working-time calendar of the span
   they cover (one entry per UTC hour, `pipeline.core.worktime`),
4. aggregate the durations of each stage, and of removal by hosting country, provider
   and partner hotline: count, median and 90th percentile (`percentile_cont`'s
   interpolation), and the shares done within 1, 3 and 7 days,
5. withhold counts under the suppression threshold, and hand back `StatsExport`.

On PostgreSQL the times travel as bigint and timestamptz arrays in the binary result
format, read into numpy without a Python object per value; with `stats.parallel` the
counts of step 1, the notice times and the removal groups are read on three more
connections that read the caller's snapshot, at the same time as the cases' times.
Steps 2-4 are one code path for both databases.

Nothing here reads a URL, a reporter's contact or a case reference; group keys that
look like an address or a URL are replaced by "redacted".
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import numpy as np
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from pipeline.core.config import Settings
from pipeline.core.worktime import HOUR, WorkCalendar
from pipeline.store.db import UTCDateTime
from pipeline.store.helpline_models import HelplineCase, HelplineContact, HelplineReferral
from pipeline.store.models import Case, Notice, Report
from schemas.stats import (
    AssessmentFigures,
    Count,
    Durations,
    HelplineFigures,
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
    illegal = settings.stats.illegal_legalities

    def counts(on: Connection) -> tuple[Any, ReportFigures, NoticeFigures]:
        return (_case_figures(on, t0, t1, suppress, illegal),
                _report_figures(on, t0, t1, suppress), _notice_figures(on, t0, t1, suppress))

    pg = conn.dialect.name == "postgresql"
    if pg:
        _pg_settings(conn, settings)

    def groups(on: Connection) -> list[tuple[str, str, Any]]:
        return _id_lists(on, t0, t1, pg)

    def notice_times(on: Connection) -> list[Any]:
        return _notice_times(on, t1)

    if pg and settings.stats.parallel:
        # The notice times, the counts and the removal groups on three more
        # connections, while this one reads the cases' times and computes.
        answers = _alongside(conn, settings, [notice_times, counts, groups])
        try:
            timings = _durations(conn, t0, t1, calendar, answers[0], answers[2])
            case_figures, reports, notices = answers[1]()
        finally:  # every thread ended before the snapshot's transaction may end
            for answer in answers:
                with contextlib.suppress(BaseException):
                    answer()
    else:
        case_figures, reports, notices = counts(conn)
        timings = _durations(conn, t0, t1, calendar, lambda: notice_times(conn),
                             lambda: groups(conn))
    assessments, illegal_by_country, re_uploads, gone_before_notice = case_figures
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
        gone_before_notice=suppress(gone_before_notice),
    )
    stages = [StageTiming(stage=name, start=a, end=b, timing=timing(name, "overall", ""))
              for name, a, b in STAGES]
    return StatsExport(
        hotline=settings.app.name, country=settings.app.country,
        period=Period(start=start, end=end), generated_at=now,
        suppressed_below=suppress.below,
        working_day_hours=round(calendar.working_day_seconds / 3600, 4),
        reports=reports, assessments=assessments,
        illegal_by_hosting_country=illegal_by_country,
        notices=notices, removal=removal, stages=stages,
        helpline=_helpline_figures(conn, t0, t1, suppress),
    )


def _report_figures(conn: Connection, t0: datetime, t1: datetime, suppress: _Suppressor
                    ) -> ReportFigures:
    """The period's reports by channel and claimed category (summed here), and their
    distinct URLs: one scan on PostgreSQL, two on SQLite."""
    in_period = (Report.received_at >= t0) & (Report.received_at < t1)
    if conn.dialect.name == "postgresql":
        # The keys' 64-bit hashes counted by numpy: PostgreSQL took 1.2 s to hash or
        # sort a million 64-character keys, 0.4 s to hash and send them. Exact unless
        # two of the period's distinct keys (SHA-256 digests) share a hash: for a
        # million keys a chance of about 3 in 100 million, of counting one URL less.
        rows = _pg_arrays(conn, """
            SELECT channel, claimed_category, count(*),
              count(*) FILTER (WHERE state = 'duplicate'),
              array_agg(hashtextextended(dedup_key, 0)) FILTER (WHERE dedup_key IS NOT NULL)
            FROM reports WHERE received_at >= :t0 AND received_at < :t1
            GROUP BY channel, claimed_category""", {"t0": t0, "t1": t1})
        hashes = np.sort(np.concatenate([np.zeros(0, dtype=np.int64)] + [r[4] for r in rows]))
        # (np.unique: three times slower here)
        unique_urls = int(np.count_nonzero(np.diff(hashes))) + 1 if len(hashes) else 0
    else:
        rows = [list(r) for r in conn.execute(
            select(Report.channel, Report.claimed_category, func.count(),
                   func.count().filter(Report.state == "duplicate"))
            .where(in_period).group_by(Report.channel, Report.claimed_category))]
        keys = select(Report.dedup_key).where(in_period, Report.dedup_key.is_not(None)
                                              ).group_by(Report.dedup_key).subquery()
        unique_urls = conn.execute(select(func.count()).select_from(keys)).scalar_one()
    by_channel: dict[Any, int] = {}
    by_category: dict[Any, int] = {}
    for channel, category, n, *_rest in rows:
        by_channel[channel] = by_channel.get(channel, 0) + int(n)
        by_category[category] = by_category.get(category, 0) + int(n)
    total = sum(int(r[2]) for r in rows)
    duplicates = sum(int(r[3]) for r in rows)
    return ReportFigures(
        total=suppress(total), by_channel=suppress.counts(by_channel.items()),
        by_claimed_category=suppress.counts(by_category.items(), missing="none"),
        unique_urls=suppress(unique_urls), duplicates=suppress(duplicates),
        re_uploads=None,  # counted with the cases (`_case_figures`)
    )


def _case_figures(conn: Connection, t0: datetime, t1: datetime, suppress: _Suppressor,
                  illegal: list[str]) -> tuple[AssessmentFigures, list[Count], int, int]:
    """One scan of the cases: assessments of the period by legality, category and
    hosting country (summed here), re-uploads received in the period, and cases closed
    in the period as gone before notice."""
    assessed = (Case.assessed_at >= t0) & (Case.assessed_at < t1)
    reupload = ((Case.received_at >= t0) & (Case.received_at < t1)
                & Case.previous_case_id.is_not(None))
    gone = (Case.gone_before_notice_at >= t0) & (Case.gone_before_notice_at < t1)
    rows = conn.execute(
        select(Case.legality, Case.category, Case.hosting_country,
               func.count().filter(assessed), func.count().filter(reupload),
               func.count().filter(gone))
        .group_by(Case.legality, Case.category, Case.hosting_country)).all()
    by_legality: dict[Any, int] = {}
    by_category: dict[Any, int] = {}
    by_country: dict[Any, int] = {}
    re_uploads = gone_before_notice = 0
    for legality, category, country, n, reuploads, gone_n in rows:
        re_uploads += int(reuploads)
        gone_before_notice += int(gone_n)
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
    return figures, suppress.counts(by_country.items()), re_uploads, gone_before_notice


def _notice_figures(conn: Connection, t0: datetime, t1: datetime, suppress: _Suppressor
                    ) -> NoticeFigures:
    # Only URL cases' notices: a helpline referral is counted in the helpline figures.
    in_period = (Notice.sent_at >= t0) & (Notice.sent_at < t1) & Notice.case_id.is_not(None)
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


def _helpline_figures(conn: Connection, t0: datetime, t1: datetime, suppress: _Suppressor
                      ) -> HelplineFigures:
    """Contacts by their received time, cases by the time they were formed, outcomes
    by the time they were reached, referrals by their time. Never a personal field."""
    def grouped(column: Any, time_column: Any, *where: Any) -> list[tuple[Any, int]]:
        return [(k, int(n)) for k, n in conn.execute(
            select(column, func.count()).where(time_column >= t0, time_column < t1, *where)
            .group_by(column)).all()]

    by_channel = grouped(HelplineContact.channel, HelplineContact.received_at)
    by_caller = grouped(HelplineContact.caller_type, HelplineContact.received_at)
    by_type = grouped(HelplineCase.case_type, HelplineCase.open_at)
    advisory = sum(n for _, n in grouped(HelplineCase.outcome, HelplineCase.advisory_at,
                                         HelplineCase.outcome == "advisory"))
    referred = sum(n for _, n in grouped(HelplineCase.outcome, HelplineCase.referred_at,
                                         HelplineCase.outcome == "referred"))
    outcomes = [(k, n) for k, n in (("advisory", advisory), ("referred", referred)) if n]
    return HelplineFigures(
        communications=suppress(sum(n for _, n in by_channel)),
        communications_by_channel=suppress.counts(by_channel),
        communications_by_caller=suppress.counts(by_caller),
        cases=suppress(sum(n for _, n in by_type)),
        cases_by_type=suppress.counts(by_type),
        by_outcome=suppress.counts(outcomes),
        referred_by_institution=suppress.counts(grouped(
            HelplineReferral.destination, HelplineReferral.referred_at)),
    )


# --- durations ---------------------------------------------------------------------
#
# The stage times of the period's cases are read once, as numbers (PostgreSQL: binary
# arrays read straight into numpy; SQLite: rows), and every duration, working
# position, percentile and share is computed with numpy: the same for both databases.
# Profiled on a million cases, PostgreSQL spent most of the former SQL aggregation
# evaluating per-row expressions and sorting through its generic tuplesort (about 10
# CPU seconds, 6 s with three connections); reading the times takes about 1.5 s and
# numpy about 1 s.

# timestamptz '-infinity' in PostgreSQL's binary format: what NULL times are sent as
# (an array of fixed-width values without NULLs is read in one piece).
_NO_TIME = -(2**63)
_PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00Z, PostgreSQL's zero, in µs
_BINDS = (bindparam("t0", type_=UTCDateTime()), bindparam("t1", type_=UTCDateTime()))


def _query(sql: str) -> Any:
    """`sql` with the period's bounds typed (the times SQLite stores are text)."""
    return text(sql).bindparams(*[b for b in _BINDS if f":{b.key}" in sql])


# The columns read per case (see `pipeline.store.takedown_models` for where each comes from).
_CASE_TIMES = {
    "r": "c.received_at", "a": "c.assessed_at",
    "pc": "CASE WHEN c.police_hold_at IS NOT NULL THEN c.notified_at END",
    "rm": "c.removed_at", "cl": "c.closed_at",
}
_NOTICE_TIMES = {
    name: f"min(CASE WHEN destination_kind = '{kind}' THEN sent_at END)"
    for name, kind in (("pn", "police"), ("prn", "provider"), ("hn", "hotline"))
}
# A case is read when one of its own stage ends may fall in the period; the cases
# whose only such end is a notice are read after the notice times (`_stage_times`).
_CASES_OF_PERIOD = """FROM cases c WHERE c.received_at < :t1 AND (c.assessed_at >= :t0
    OR c.notified_at >= :t0 OR c.removed_at >= :t0 OR c.closed_at >= :t0)"""
_REMOVED_IN_PERIOD = "c.removed_at >= :t0 AND c.removed_at < :t1"


def _columns(conn: Connection, kinds: str, select_list: Sequence[str], rest: str,
             params: dict[str, Any], pg: bool) -> list[Any]:
    """The columns of `SELECT <select_list> <rest>` as numpy arrays, one per item of
    `kinds`: "i" an integer column (int64), "t" a time (float64 seconds since the
    epoch, NaN where NULL)."""

    if not pg:
        exprs = [e if k == "i" else f"((julianday({e}) - 2440587.5) * 86400.0)"
                 for k, e in zip(kinds, select_list, strict=True)]
        rows = conn.execute(_query(f"SELECT {', '.join(exprs)} {rest}"), params).all()
        return [np.array([r[i] for r in rows], dtype=np.int64 if k == "i" else np.float64)
                for i, k in enumerate(kinds)]
    exprs = [f"{e} AS x{i}" if k == "i" else f"COALESCE({e}, '-infinity') AS x{i}"
             for i, (k, e) in enumerate(zip(kinds, select_list, strict=True))]
    (row,) = _pg_arrays(conn, f"SELECT {', '.join(f'array_agg(x{i})' for i in range(len(kinds)))} "
                              f"FROM (SELECT {', '.join(exprs)} {rest}) s", params)
    out = []
    for kind, column in zip(kinds, row, strict=True):
        if kind == "i":
            out.append(column)
        else:  # microseconds since 2000 -> seconds since 1970, as date_part('epoch') does
            seconds = (column + _PG_EPOCH_US).astype(np.float64) / 1_000_000.0
            out.append(np.where(column == _NO_TIME, np.nan, seconds))
    return out


class _RawArray:
    """A psycopg loader that hands over a binary bigint[] or timestamptz[] untouched."""

    format = 1  # binary

    def __init__(self, oid: int, context: Any = None):
        pass

    def load(self, data: Any) -> bytes:
        return bytes(data)


_BIGINT_ARRAY, _TIMESTAMPTZ_ARRAY = 1016, 1185  # the types' fixed PostgreSQL OIDs


def _pg_arrays(conn: Connection, sql: str, params: dict[str, Any]) -> list[list[Any]]:
    """The rows of `sql` (PostgreSQL), each bigint[] and timestamptz[] column as an
    int64 numpy array (times as microseconds since 2000), read from the binary
    result without a Python object per element: a million cases' times arrive in
    about a second (a COPY sends a message per row, which psycopg reads one by
    one: 3 s for the same times). The arrays must hold no NULL."""

    driver = conn.connection.driver_connection
    assert driver is not None
    statement = re.sub(r"(?<!:):(\w+)", r"%(\1)s", sql)
    with driver.cursor(binary=True) as cursor:
        for oid in (_BIGINT_ARRAY, _TIMESTAMPTZ_ARRAY):
            cursor.adapters.register_loader(oid, _RawArray)  # type: ignore[arg-type]
        cursor.execute(statement, params)
        rows = cursor.fetchall()
        arrays = [c.type_code in (_BIGINT_ARRAY, _TIMESTAMPTZ_ARRAY)
                  for c in cursor.description or ()]
    element = np.dtype([("length", ">i4"), ("value", ">i8")])

    def parse(raw: bytes) -> Any:
        ndim, nulls = np.frombuffer(raw, ">i4", 2)
        if nulls:
            raise RuntimeError("a statistics array holds a NULL")
        values = np.frombuffer(raw, element, offset=12 + 8 * int(ndim))
        if (values["length"] != 8).any():
            raise RuntimeError("a statistics array holds a value of another width")
        return values["value"].astype(np.int64)

    empty = np.zeros(0, dtype=np.int64)  # array_agg over no rows gives NULL
    return [[(empty if v is None else parse(v)) if array else v
             for v, array in zip(row, arrays, strict=True)] for row in rows]


def _id_lists(conn: Connection, t0: datetime, t1: datetime, pg: bool
              ) -> list[tuple[str, str, Any]]:
    """(dimension, group, case ids) of the removal groups: the hosting country and the
    provider of the cases removed in the period, and each partner hotline told."""

    ids = "array_agg({})" if pg else "group_concat({}, ',')"
    country, provider = "COALESCE(hosting_country, 'unknown')", "COALESCE(hosting_org, 'unknown')"
    if pg:  # both groupings in one scan
        groups = f"""SELECT CASE WHEN GROUPING({country}) = 0 THEN 'hosting_country'
              ELSE 'provider' END, COALESCE({country}, {provider}), {ids.format('id')}
            FROM cases c WHERE {_REMOVED_IN_PERIOD}
            GROUP BY GROUPING SETS (({country}), ({provider}))"""
    else:
        groups = " UNION ALL ".join(
            f"SELECT '{dim}', {key}, {ids.format('id')} FROM cases c "
            f"WHERE {_REMOVED_IN_PERIOD} GROUP BY 2"
            for dim, key in (("hosting_country", country), ("provider", provider)))
    # Every hotline told, whether or not its case was removed in the period: the
    # caller keeps the cases that were.
    sql = f"""{groups}
        UNION ALL
        SELECT 'partner_hotline', destination, {ids.format('case_id')} FROM notices
        WHERE kind = 'notice' AND destination_kind = 'hotline' AND sent_at IS NOT NULL
        GROUP BY 2"""
    params = {"t0": t0, "t1": t1}
    if pg:
        return [(dim, key, members) for dim, key, members in _pg_arrays(conn, sql, params)]
    return [(dim, key, np.array(members.split(","), dtype=np.int64))
            for dim, key, members in conn.execute(_query(sql), params).all() if members]


def _notice_times(conn: Connection, t1: datetime) -> list[Any]:
    """Per case told before the end of the period: its id and the first time each kind
    of destination was told (`_NOTICE_TIMES`), as arrays."""
    return _columns(conn, "i" + "t" * len(_NOTICE_TIMES), ["case_id", *_NOTICE_TIMES.values()],
                    "FROM notices WHERE kind = 'notice' AND sent_at < :t1 GROUP BY case_id",
                    {"t1": t1}, conn.dialect.name == "postgresql")


def _stage_times(conn: Connection, t0: datetime, t1: datetime,
                 notice_times: Callable[[], list[Any]]) -> dict[str, Any]:
    """Per case that may have a stage ending in the period, its id and every stage time
    (`COLUMN`), as arrays in id order: the cases' own times in one scan, the first
    notice of each kind (`notice_times`: `_notice_times`' answer; joined here by id),
    then the few cases whose only end in the period is a notice."""

    pg = conn.dialect.name == "postgresql"
    params = {"t0": t0, "t1": t1}
    kinds = "i" + "t" * len(_CASE_TIMES)
    columns = _columns(conn, kinds, ["c.id", *_CASE_TIMES.values()], _CASES_OF_PERIOD,
                       params, pg)
    notices = notice_times()
    # The cases told in the period that the first read left out (their only stage end
    # in the period is a notice): read them too, then put every case in id order.
    e0, e1 = t0.timestamp(), t1.timestamp()
    told = np.zeros(len(notices[0]), dtype=bool)
    for times in notices[1:]:
        told |= (times >= e0) & (times < e1)
    missing = notices[0][told & ~_Index(np.sort(columns[0])).find(notices[0])[0]]
    parts = [columns]
    for start in range(0, len(missing), 10_000):
        chunk = ", ".join(str(int(i)) for i in missing[start:start + 10_000])
        parts.append(_columns(conn, kinds, ["c.id", *_CASE_TIMES.values()],
                              f"FROM cases c WHERE c.received_at < :t1 AND c.id IN ({chunk})",
                              params, pg))
    columns = [np.concatenate(same) for same in zip(*parts, strict=True)]
    order = np.argsort(columns[0])
    out = {name: values[order] for name, values in zip(["id", *_CASE_TIMES], columns,
                                                         strict=True)}
    found, at = _Index(out["id"]).find(notices[0])
    for name, times in zip(_NOTICE_TIMES, notices[1:], strict=True):
        column = np.full(len(out["id"]), np.nan)
        column[at[found]] = times[found]
        out[name] = column
    return out


class _Index:
    """Where each id is among sorted, distinct `ids`: through a table indexed by id when
    they are dense enough (a binary search per id was a tenth of the export's time),
    else by binary search."""

    def __init__(self, ids: Any):

        self.ids = ids
        self.low = int(ids[0]) if len(ids) else 0
        self.span = int(ids[-1]) - self.low + 1 if len(ids) else 0
        self.table = None
        if len(ids) and self.span <= 4 * len(ids) + 1_000_000:
            self.table = np.full(self.span, -1, dtype=np.int64)
            self.table[ids - self.low] = np.arange(len(ids))

    def find(self, wanted: Any) -> tuple[Any, Any]:
        """(whether each of `wanted` is among the ids, and where)."""

        if self.table is None:
            at = np.searchsorted(self.ids, wanted)
            found = at < len(self.ids)
            found[found] = self.ids[at[found]] == wanted[found]
            return found, at
        offset = wanted - self.low
        inside = (offset >= 0) & (offset < self.span)
        at = np.full(len(wanted), -1, dtype=np.int64)
        at[inside] = self.table[offset[inside]]
        return at >= 0, at


def _calendar_arrays(times: dict[str, Any], t1: datetime, calendar: WorkCalendar
                     ) -> tuple[int, Any, Any, Any]:
    """The hourly working-time table (`WorkCalendar.hourly_table`) as arrays, from the
    earliest time read to an hour past the period: the first hour, and per hour the
    working seconds before it (`cum`), when its working window starts (seconds since
    the epoch) and how long it is."""

    lows = [float(np.nanmin(v)) for k, v in times.items() if k != "id" and len(v)
            and not np.isnan(v).all()]
    low = datetime.fromtimestamp(min(lows), UTC) if lows else t1
    rows = calendar.hourly_table(min(low, t1) - timedelta(hours=1), t1 + timedelta(hours=1))
    table = np.array(rows, dtype=np.float64)
    hours = table[:, 0].astype(np.int64)
    return (int(hours[0]), table[:, 1], hours * HOUR + table[:, 2], table[:, 3] - table[:, 2])


def _working_positions(t: Any, calendar: tuple[int, Any, Any, Any]) -> Any:
    """Each time's position in working seconds: for a time t in hour h,
    cum[h] + clamp(t - start[h], 0, length[h]); t - start[h] is exact (two doubles
    less than an hour apart), so it is the hourly table's t - h * 3600 - ws to the
    last bit. NaN for no time, or one outside the table."""

    first, cum, window_start, length = calendar
    out = np.full(len(t), np.nan)
    known = np.flatnonzero(~np.isnan(t))
    index = np.floor(t[known] / HOUR).astype(np.int64) - first
    inside = (index >= 0) & (index < len(cum))
    known, index = known[inside], index[inside]
    out[known] = cum[index] + np.clip(t[known] - window_start[index], 0, length[index])
    return out


def _percentile(ordered: Any, p: float) -> float | None:
    """PostgreSQL's `percentile_cont` of sorted values (linear interpolation between
    the ranks either side of p * (n - 1))."""
    n = len(ordered)
    if not n:
        return None
    position = p * (n - 1)
    low, high = math.floor(position), math.ceil(position)
    first = float(ordered[low])
    if low == high:
        return first
    return first + (float(ordered[high]) - first) * (position - low)


def _summary(cal: Any, work: Any, working_day: float) -> tuple[Any, ...] | None:
    """(n, median and p90 calendar, median and p90 working, shares within 1/3/7 days
    calendar, then working) of durations in seconds; working NaNs are left out of its
    percentiles and count as not within."""

    n = len(cal)
    if not n:
        return None
    by_cal = np.sort(cal)
    by_work = np.sort(work[~np.isnan(work)])
    shares = [int(np.count_nonzero(values <= days * unit)) / n
              for values, unit in ((cal, DAY), (work, working_day)) for days in (1, 3, 7)]
    return (n, _percentile(by_cal, 0.5), _percentile(by_cal, 0.9),
            _percentile(by_work, 0.5), _percentile(by_work, 0.9), *shares)


def _durations(conn: Connection, t0: datetime, t1: datetime, calendar: WorkCalendar,
               notice_times: Callable[[], list[Any]],
               groups: Callable[[], list[tuple[str, str, Any]]]
               ) -> dict[tuple[str, str, str], tuple[Any, ...]]:
    """(series, dimension, group) -> `_summary` of every stage, and of removal by
    hosting country, provider and partner hotline (`notice_times` and `groups`:
    `_notice_times`' and `_id_lists`' answers, asked for when needed)."""

    times = _stage_times(conn, t0, t1, notice_times)
    table = _calendar_arrays(times, t1, calendar)
    working = {name: _working_positions(times[name], table) for name in COLUMN.values()}
    wd = calendar.working_day_seconds or DAY
    e0, e1 = t0.timestamp(), t1.timestamp()
    result: dict[tuple[str, str, str], tuple[Any, ...]] = {}
    removal: tuple[Any, Any, Any] | None = None
    for name, start, end in STAGES:
        a, b = COLUMN[start], COLUMN[end]
        inside = (times[b] >= e0) & (times[b] < e1) & ~np.isnan(times[a])
        cal = times[b] - times[a]
        work = working[b] - working[a]
        figures = _summary(cal[inside], work[inside], wd)
        if figures is not None:
            result[(name, "overall", "")] = figures
        if name == "removal":
            removal = (inside, cal, work)
    assert removal is not None
    inside, cal, work = removal
    index = _Index(times["id"])
    for dim, key, members in groups():
        members = np.sort(members)  # a hotline told twice about a case counts it once
        members = members[np.diff(members, prepend=-1) != 0]
        found, at = index.find(members)
        at = at[found]
        at = at[inside[at]]
        figures = _summary(cal[at], work[at], wd)
        if figures is not None:
            result[("removal", dim, key)] = figures
    return result


def _pg_settings(conn: Connection, settings: Settings) -> None:
    """This transaction's memory for the hash aggregates, and no JIT (compiling the
    queries costs more than it saves)."""
    conn.execute(text("SELECT set_config('work_mem', :v, true), set_config('jit', 'off', true)"),
                 {"v": settings.stats.work_mem})


_SNAPSHOT_ID = re.compile(r"^[0-9A-Fa-f]+-[0-9A-Fa-f]+(-[0-9A-Fa-f]+)?$")


def _alongside(conn: Connection, settings: Settings,
               works: Sequence[Callable[[Connection], Any]]) -> list[Callable[[], Any]]:
    """Start each of `works` on a connection of its own (same engine) that reads the
    caller's snapshot (`pg_export_snapshot`), in a thread; every figure is what one
    connection would find. Returns, per work, a call that waits for its answer (it
    raises what the work raised). The caller joins them all before its transaction
    ends, as the snapshot lives only as long as it."""
    snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
    if not _SNAPSHOT_ID.match(str(snapshot)):
        raise RuntimeError(f"unexpected snapshot id {snapshot!r}")

    def start(work: Callable[[Connection], Any]) -> Callable[[], Any]:
        results: dict[str, Any] = {}

        def run() -> None:
            try:
                with conn.engine.connect() as other:
                    other = other.execution_options(isolation_level="REPEATABLE READ")
                    with other.begin():
                        other.execute(text(f"SET TRANSACTION SNAPSHOT '{snapshot}'"))
                        _pg_settings(other, settings)
                        results["answer"] = work(other)
            except BaseException as exc:  # handed to the caller's thread below
                results["error"] = exc

        thread = threading.Thread(target=run, name="stats-export", daemon=True)
        thread.start()

        def answer() -> Any:
            thread.join()
            if "error" in results:
                raise results["error"]
            return results["answer"]

        return answer

    return [start(work) for work in works]


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
    rows.append(("removal", "", "", "gone_before_notice", export.removal.gone_before_notice))
    for dim in REMOVAL_DIMENSIONS:
        for t in getattr(export.removal, f"by_{dim}"):
            timing_rows("removal", dim, t)
    for stage in export.stages:
        timing_rows("stage", stage.stage, stage.timing)
    h = export.helpline
    rows.append(("helpline", "", "", "communications", h.communications))
    rows += [("helpline", "channel", c.key, "communications", c.count)
             for c in h.communications_by_channel]
    rows += [("helpline", "caller", c.key, "communications", c.count)
             for c in h.communications_by_caller]
    rows.append(("helpline", "", "", "cases", h.cases))
    rows += [("helpline", "case_type", c.key, "cases", c.count) for c in h.cases_by_type]
    rows += [("helpline", "outcome", c.key, "cases", c.count) for c in h.by_outcome]
    rows += [("helpline", "institution", c.key, "referrals", c.count)
             for c in h.referred_by_institution]
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
