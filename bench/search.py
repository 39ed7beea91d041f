"""Benchmark of the console's case search (`pipeline.web.console.search`) on PostgreSQL
with a large case table.

Steps of `run`:
1. migrate the (empty) database at `pg_url` to the latest schema (with the search
   indexes of migration 0018),
2. fill `cases` with `size` cases in one INSERT ... SELECT (5,000 sites, states,
   categories and hosting countries mixed, received times spread over two years),
   one report per 10 cases, and notices to four destinations for one case in 20;
   ANALYZE,
3. time each kind of search a number of times, a whole page (50 rows and the check
   for a next page) through `search.search` as the console runs it: by case
   reference, report reference, URL, host, registered domain, state, category,
   hosting country, destination, a date range, and state + country + date range
   sorted oldest first,
4. return p50 and p99 in milliseconds over all searches and for each kind.

Run alone: `python -m bench.search postgresql://postgres@127.0.0.1:5432/somedb [size]`
(the database must exist and be empty). `make bench` runs it with
`BENCH_SEARCH_CASES` (1,000,000 by default; 2,000 in the quick smoke run).
"""

from __future__ import annotations

import json
import random
import statistics
import sys
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import text

from pipeline.domain.urls import canonicalise
from pipeline.store.db import make_engine, make_session_factory
from pipeline.store.migrate import upgrade
from pipeline.web.console import search

REPEATS = 40

FILL_CASES = text("""
INSERT INTO cases (ref, canonical_url, dedup_key, open_key, host, registered_domain,
                   urgent, report_count, behind_cdn, origin_unknown, priority, state,
                   state_changed_at, received_at, audit_seq, audit_hash, category,
                   legality, hosting_country)
SELECT 'C-SEARCH-' || g, 'http://www.site' || (g % 5000) || '.example/' || g,
       encode(sha256(convert_to('http://www.site' || (g % 5000) || '.example/' || g,
                                'UTF8')), 'hex'),
       CASE WHEN g % 3 = 0 THEN NULL ELSE
         encode(sha256(convert_to('http://www.site' || (g % 5000) || '.example/' || g,
                                  'UTF8')), 'hex') END,
       'www.site' || (g % 5000) || '.example', 'site' || (g % 5000) || '.example',
       false, 1, false, false, 0,
       (ARRAY['awaiting_assessment', 'notified', 'monitoring', 'removed', 'closed',
              'police_hold'])[1 + g % 6],
       :now, :now - ((g % 730) * interval '1 day') - ((g % 1440) * interval '1 minute'),
       0, repeat('0', 64),
       (ARRAY['csam', 'self_generated_csam', 'hate_speech', 'phishing', NULL])[1 + g % 5],
       'illegal_international',
       (ARRAY['RS', 'DE', 'NL', 'US', 'FR', 'HR', 'BA', 'ME'])[1 + g % 8]
FROM generate_series(1, :size) AS g
""")

FILL_REPORTS = text("""
INSERT INTO reports (ref, submission_ref, channel, url, claimed_category, urgent, state,
                     state_changed_at, received_at, case_id, audit_seq, audit_hash,
                     host_confusable)
SELECT 'R-SEARCH-' || c.id, 'S-SEARCH-' || c.id, 'web', c.canonical_url, 'csam', false,
       'new_case', :now, c.received_at, c.id, 0, repeat('0', 64), false
FROM cases c WHERE c.id % 10 = 0
""")

FILL_NOTICES = text("""
INSERT INTO notices (case_id, destination, destination_kind, kind, round, channel,
                     language, state, token, payload, attempts, created_at)
SELECT c.id, (ARRAY['rs_police', 'provider_a', 'provider_b', 'inhope_de'])[1 + c.id % 4],
       'provider', 'notice', 1, 'file', 'en', 'sent', md5('n' || c.id), '{}', 0,
       c.received_at
FROM cases c WHERE c.id % 20 = 0
""")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _queries(size: int, today: date, rng: random.Random) -> dict[str, Any]:
    """Each kind of search, a function of the repetition giving its parameters."""

    def number() -> int:
        return rng.randint(1, size)

    def url(g: int) -> str:
        return f"HTTP://WWW.SITE{g % 5000}.EXAMPLE:80/{g}#fragment"

    def day() -> date:
        return today - timedelta(days=rng.randint(0, 720))

    return {
        "case_ref": lambda: {"q": f"C-SEARCH-{number()}"},
        "report_ref": lambda: {"q": f"R-SEARCH-{max(10, number() // 10 * 10)}"},
        "url": lambda: {"q": url(number())},
        "host": lambda: {"q": f"www.site{number() % 5000}.example"},
        "registered_domain": lambda: {"q": f"site{number() % 5000}.example"},
        "state": lambda: {"state": rng.choice(["notified", "removed", "police_hold"])},
        "category": lambda: {"category": rng.choice(["csam", "phishing"])},
        "country": lambda: {"country": rng.choice(["RS", "ME", "US"])},
        "destination": lambda: {"destination": rng.choice(["rs_police", "inhope_de"])},
        "date_range": lambda: (lambda d: {"start": (d - timedelta(days=7)).isoformat(),
                                          "end": d.isoformat()})(day()),
        "combined_oldest": lambda: (lambda d: {
            "state": "monitoring", "country": "DE", "start": (d - timedelta(days=30))
            .isoformat(), "end": d.isoformat(), "sort": "oldest"})(day()),
    }


def run(pg_url: str, size: int = 1_000_000, repeats: int = REPEATS) -> dict[str, Any]:
    """Search latency percentiles (ms) over `size` cases (see the steps)."""
    upgrade(pg_url)
    engine = make_engine(pg_url, pool_size=2)
    factory = make_session_factory(engine)
    now = datetime.now(UTC)
    rng = random.Random(20_261_207)
    try:
        with factory.begin() as session:
            session.execute(FILL_CASES, {"now": now, "size": size})
            session.execute(FILL_REPORTS, {"now": now})
            session.execute(FILL_NOTICES)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE cases"))
            conn.execute(text("ANALYZE reports"))
            conn.execute(text("ANALYZE notices"))
        # The benchmark's URLs must be matched the way the console matches them.
        assert canonicalise("HTTP://WWW.SITE1.EXAMPLE:80/1#x").canonical == (
            "http://www.site1.example/1")
        kinds = _queries(size, now.date(), rng)
        times: dict[str, list[float]] = {name: [] for name in kinds}
        found = 0
        with factory() as session:
            for params in kinds.values():  # warm-up: one of each
                search.search(session, search.parse(params()))
            for _ in range(repeats):
                for name, params in kinds.items():
                    query = search.parse(params())
                    started = time.perf_counter()
                    result = search.search(session, query)
                    times[name].append((time.perf_counter() - started) * 1000)
                    found += len(result.rows)
                session.rollback()
        every = [t for series in times.values() for t in series]
        out: dict[str, Any] = {
            "cases": float(size),
            "searches_measured": len(every),
            "rows_found": found,
            "search_p50_ms": round(statistics.median(every), 3),
            "search_p99_ms": round(_percentile(every, 99), 3),
        }
        for name, series in times.items():
            out[f"{name}_p50_ms"] = round(statistics.median(series), 3)
            out[f"{name}_p99_ms"] = round(_percentile(series, 99), 3)
        return out
    finally:
        engine.dispose()


if __name__ == "__main__":
    figures = run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000)
    print(json.dumps(figures, indent=2))
