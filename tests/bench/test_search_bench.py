"""bench/search.py runs on PostgreSQL at a tiny size and reports the figures the
harness reads (`make bench` runs it at 1,000,000 cases)."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from bench.search import run
from tests.conftest import PG_ADMIN_URL


def test_the_search_benchmark_reports_percentiles_for_every_kind(pg_database_url):
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"hotline_test_search_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        figures = run(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, size=500, repeats=3)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert figures["cases"] == 500
    assert figures["searches_measured"] == 3 * 11
    assert figures["rows_found"] > 0
    assert 0 < figures["search_p50_ms"] <= figures["search_p99_ms"]
    for kind in ("case_ref", "report_ref", "url", "host", "registered_domain", "state",
                 "category", "country", "destination", "date_range", "combined_oldest"):
        assert figures[f"{kind}_p99_ms"] > 0, kind
