"""bench/claim.py runs on PostgreSQL and reports the figures the harness reads."""

from __future__ import annotations

import uuid

from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL


def test_the_claim_benchmark_reports_percentiles_and_never_double_claims(pg_database_url):
    from bench.claim import run

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"hotline_test_claim_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        figures = run(PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name, backlog=400)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    assert figures["backlog"] == 400
    for series in ("claim", "claim_any", "claim_no_pre_ping", "claim_concurrent"):
        assert 0 < figures[f"{series}_p50_ms"] <= figures[f"{series}_p99_ms"], series
    # 100 sequential first claims, 50 of kind any, 50 without pre-ping, 4 x 25 at once.
    assert figures["claims_measured"] == 100 + 50 + 50 + 4 * 25
