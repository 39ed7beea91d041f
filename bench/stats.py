"""Benchmark of the statistics export (`pipeline.stages.stats.export_stats`) over a million
cases, on PostgreSQL and on SQLite.

Steps of `run`:
1. make a database of its own on each side: a new PostgreSQL database on the server
   `pg_url` points at, a new SQLite file beside `sqlite_url`; migrate both,
2. bulk-load `n_cases` synthetic cases spread over 2025, with their reports (5 %
   duplicates) and notices (police, provider, partner hotline; reminders), the same
   rows on both sides from one seeded generator: COPY on PostgreSQL, executemany in
   chunks on SQLite,
3. time one export of the whole year on each (a warm-up on a small period first); on
   PostgreSQL also with `stats.parallel` off (everything on one connection), to show
   what the second connection brings,
4. drop both databases, and return the seconds.

Run alone: `python -m bench.stats postgresql://postgres@127.0.0.1:5432/postgres
sqlite:///var/bench.db [n_cases]`.
"""

from __future__ import annotations

import json
import logging
import random
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from pipeline.core.config import Settings
from pipeline.stages.stats import export_stats
from pipeline.store.db import make_engine, make_session_factory, normalise_database_url
from pipeline.store.migrate import upgrade

log = logging.getLogger(__name__)

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
COUNTRIES = ["NL", "US", "DE", "RS", "FR", "RU", "UA", "CZ", "SK", "BG", "RO", "HU", "GB",
             "CA", "SE", "FI", "PL", "IT", "ES", "PT", "SG", "HK", "JP", "BR", "PA", "SC",
             "MD", "LT", "LV", "EE"]
CHANNELS = ["web", "api", "partner", "email"]
CATEGORIES = ["csam", "hate_speech", "grooming", "sextortion", None]
GENESIS = "0" * 64

CASE_COLUMNS = [
    "id", "ref", "canonical_url", "dedup_key", "open_key", "host", "claimed_category",
    "source_channel", "urgent", "report_count", "hosting_country", "hosting_asn",
    "hosting_org", "behind_cdn", "origin_unknown", "legality", "category",
    "previous_case_id", "priority", "state", "state_changed_at", "received_at",
    "assessed_at", "police_hold_at", "notified_at", "removed_at", "closed_at", "audit_seq",
    "audit_hash",
]
REPORT_COLUMNS = [
    "id", "ref", "submission_ref", "url", "channel", "claimed_category", "urgent", "state",
    "state_changed_at", "received_at", "dedup_key", "case_id", "audit_seq", "audit_hash",
]
NOTICE_COLUMNS = [
    "id", "case_id", "destination", "destination_kind", "kind", "round", "channel",
    "language", "state", "token", "payload", "attempts", "created_at", "sent_at",
]


def _generate(n_cases: int, seed: int = 7) -> Iterator[tuple[str, tuple[Any, ...]]]:
    """("cases" | "reports" | "notices", row) for every synthetic row, deterministically."""
    rng = random.Random(seed)
    report_id = notice_id = 0
    for case_id in range(1, n_cases + 1):
        received = YEAR_START + timedelta(seconds=rng.uniform(0, 364 * 86_400))
        country = rng.choice(COUNTRIES)
        org = f"Host-{rng.randrange(2_000)}"
        claimed = rng.choice(CATEGORIES)
        channel = rng.choice(CHANNELS)
        key = f"{case_id:064x}"
        roll = rng.random()
        legality = ("illegal_international" if roll < 0.7 else "illegal_national"
                    if roll < 0.8 else "not_illegal" if roll < 0.95 else "out_of_remit")
        assessed = received + timedelta(hours=rng.uniform(0.2, 48)) if rng.random() < 0.96 \
            else None
        police_hold = notified = removed = closed = None
        state = "awaiting_assessment" if assessed is None else "closed"
        notices: list[tuple[str, str, datetime]] = []
        if assessed is not None and legality.startswith("illegal"):
            state = "monitoring"
            if country == "RS":
                police_at = assessed + timedelta(minutes=rng.uniform(5, 120))
                notices.append(("rs-police", "police", police_at))
                police_hold = police_at
                notified = police_at + timedelta(hours=rng.uniform(1, 72))
                notices.append(("hosting-provider", "provider", notified))
            else:
                notified = assessed + timedelta(minutes=rng.uniform(5, 180))
                if rng.random() < 0.6:
                    notices.append((f"hotline-{country.lower()}", "hotline", notified))
                else:
                    notices.append(("hosting-provider", "provider", notified))
            if rng.random() < 0.85:
                removed = notified + timedelta(hours=rng.expovariate(1 / 60))
                state = "removed"
        elif assessed is not None:
            closed = assessed + timedelta(minutes=rng.uniform(1, 30))
        last = max(t for t in (received, assessed, notified, removed, closed) if t)
        yield "cases", (
            case_id, f"C-B{case_id}", f"http://site{case_id % 50_000}.example/{case_id}", key,
            key if state not in ("removed", "closed") else None,
            f"site{case_id % 50_000}.example", claimed, channel, False, 1, country,
            64_500 + rng.randrange(2_000), org, False, False,
            legality if assessed else None,
            (claimed or "csam") if assessed and legality.startswith("illegal") else None,
            case_id - 1 if case_id > 1 and rng.random() < 0.01 else None, 0, state, last,
            received, assessed, police_hold, notified, removed, closed, 0, GENESIS)
        for dup in range(2 if rng.random() < 0.05 else 1):
            report_id += 1
            at = received + timedelta(minutes=dup * rng.uniform(1, 600))
            yield "reports", (
                report_id, f"R-B{report_id}", f"S-B{report_id}",
                f"http://site{case_id % 50_000}.example/{case_id}", channel, claimed, False,
                "duplicate" if dup else "new_case", at, at, key, case_id, 0, GENESIS)
        for destination, kind, sent in notices:
            notice_id += 1
            yield "notices", (notice_id, case_id, destination, kind, "notice", 1, "smtp", "en",
                              "sent", f"t{notice_id}", "{}", 1, sent, sent)
            if kind == "provider" and (removed is None or removed - sent > timedelta(days=1)):
                notice_id += 1
                at = sent + timedelta(days=1)
                yield "notices", (notice_id, case_id, destination, kind, "reminder", 2,
                                  "smtp", "en", "sent", f"t{notice_id}", "{}", 1, at, at)


def _required_extras(engine: Any, table: str, given: list[str]) -> dict[str, Any]:
    """NOT NULL columns other parts of the pipeline added without a default: a value
    of their type, so the bulk load keeps working as the schema grows."""
    extras: dict[str, Any] = {}
    for column in inspect(engine).get_columns(table):
        if column["name"] in given or column["nullable"] or column.get("default") is not None:
            continue
        if column.get("autoincrement") is True:
            continue
        kind = str(column["type"]).upper()
        extras[column["name"]] = (
            0 if "INT" in kind else False if "BOOL" in kind else "{}" if "JSON" in kind
            else YEAR_START if "TIME" in kind or "DATE" in kind else "")
    return extras


TABLES = {"cases": CASE_COLUMNS, "reports": REPORT_COLUMNS, "notices": NOTICE_COLUMNS}


def load_postgresql(url: str, n_cases: int) -> None:
    import psycopg

    engine = make_engine(url)
    extras = {t: _required_extras(engine, t, cols) for t, cols in TABLES.items()}
    engine.dispose()
    dsn = make_url(normalise_database_url(url)).set(drivername="postgresql")
    with psycopg.connect(dsn.render_as_string(hide_password=False)) as conn:
        with conn.cursor() as cur:
            # One COPY at a time per connection: each table in its own pass over the
            # (seeded, so identical) generator.
            for table, cols in TABLES.items():
                tail = tuple(extras[table].values())
                statement = f"COPY {table} ({', '.join(cols + list(extras[table]))}) FROM STDIN"
                with cur.copy(statement) as copy:
                    for name, row in _generate(n_cases):
                        if name == table:
                            copy.write_row(row + tail)
            for table in TABLES:
                cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                            f"(SELECT max(id) FROM {table}))")
        conn.commit()
        conn.autocommit = True
        for table in TABLES:
            conn.execute(f"VACUUM ANALYZE {table}")


def load_sqlite(url: str, n_cases: int, chunk: int = 50_000) -> None:
    engine = make_engine(url)
    extras = {t: _required_extras(engine, t, cols) for t, cols in TABLES.items()}
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("BEGIN")
        statements = {
            t: f"INSERT INTO {t} ({', '.join(cols + list(extras[t]))}) VALUES "
               f"({', '.join('?' * (len(cols) + len(extras[t])))})"
            for t, cols in TABLES.items()}
        pending: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}

        def value(v: Any) -> Any:
            if isinstance(v, datetime):
                return v.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
            return v

        for name, row in _generate(n_cases):
            pending[name].append(tuple(value(v) for v in row)
                                 + tuple(value(v) for v in extras[name].values()))
            if len(pending[name]) >= chunk:
                cur.executemany(statements[name], pending[name])
                pending[name] = []
        for name, rows in pending.items():
            if rows:
                cur.executemany(statements[name], rows)
        cur.execute("COMMIT")
        cur.execute("ANALYZE")
        cur.close()
    finally:
        raw.close()
        engine.dispose()


def time_export(url: str, *, parallel: bool = True) -> float:
    settings = Settings(database={"url": url}, worktime={"timezone": "Europe/Belgrade"},
                        stats={"parallel": parallel})
    engine = make_engine(url)
    factory = make_session_factory(engine)
    try:
        with factory.begin() as session:  # warm-up: connection, caches
            export_stats(session, date(2025, 1, 1), date(2025, 1, 7), settings=settings,
                         now=datetime.now(UTC))
        started = time.perf_counter()
        with factory.begin() as session:
            result = export_stats(session, date(2025, 1, 1), date(2025, 12, 31),
                                  settings=settings, now=datetime.now(UTC))
        elapsed = time.perf_counter() - started
        log.info("Stats export over %s cases took %.2f s.", result.removal.overall.count,
                 elapsed)
        return elapsed
    finally:
        engine.dispose()


def run(pg_url: str, sqlite_url: str, n_cases: int = 1_000_000) -> dict[str, float]:
    """Load `n_cases` on both databases and time the export; see the module's steps."""
    # PostgreSQL: a database of our own on the same server, dropped afterwards.
    server = make_url(normalise_database_url(pg_url))
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    name = f"hotline_stats_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    own_pg = server.set(database=name).render_as_string(hide_password=False)
    # SQLite: a file of our own beside the one named, removed afterwards.
    sqlite_path = Path(sqlite_url.removeprefix("sqlite:///") or "stats.db")
    own_sqlite = sqlite_path.with_name(f"{sqlite_path.stem}-{uuid.uuid4().hex[:8]}.db")
    own_sqlite.parent.mkdir(parents=True, exist_ok=True)
    own_sqlite_url = f"sqlite:///{own_sqlite}"
    try:
        upgrade(own_pg)
        started = time.perf_counter()
        load_postgresql(own_pg, n_cases)
        pg_load = time.perf_counter() - started
        pg_seconds = time_export(own_pg)
        pg_one_connection = time_export(own_pg, parallel=False)
        upgrade(own_sqlite_url)
        started = time.perf_counter()
        load_sqlite(own_sqlite_url, n_cases)
        sqlite_load = time.perf_counter() - started
        sqlite_seconds = time_export(own_sqlite_url)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(f"{own_sqlite}{suffix}").unlink(missing_ok=True)
    return {
        "stats_export_s_postgresql": round(pg_seconds, 3),
        "stats_export_s_sqlite": round(sqlite_seconds, 3),
        "stats_export_s_postgresql_one_connection": round(pg_one_connection, 3),
        # The names the benchmark harness looks for.
        "postgresql_seconds": round(pg_seconds, 3),
        "sqlite_seconds": round(sqlite_seconds, 3),
        "load_s_postgresql": round(pg_load, 3),
        "load_s_sqlite": round(sqlite_load, 3),
        "cases": float(n_cases),
    }


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = int(sys.argv[3]) if len(sys.argv) > 3 else 1_000_000
    print(json.dumps(run(sys.argv[1], sys.argv[2], count), indent=2))
