"""Benchmark of claiming the next case (`pipeline.stages.assessment.claim_next`) on PostgreSQL
with a large queue waiting.

Steps of `run`:
1. migrate the (empty) database at `pg_url` to the latest schema,
2. fill the queue with `backlog` cases awaiting assessment in one INSERT ... SELECT
   (priorities 0, 100 and 1000 mixed, received times spread over 30 days), ANALYZE,
3. time sequential claims by one analyst, each a whole committed transaction (the
   lease row, the state change and its audit event), after a short warm-up: of kind
   `first` (the figure of the target), of kind `any` (what the API's claim button
   does: a look for a second assessment first), and of kind `first` through an
   engine without the pool's pre-ping (the round trip `pipeline.store.db.make_engine`
   spends on every checkout, to show what the pool costs),
4. time claims by 4 analysts at once (threads of this process, each with its own
   connection: the figures include waiting for Python's GIL, not only the database),
5. return the percentiles in milliseconds.

Run alone: `python -m bench.claim postgresql://postgres@127.0.0.1:5432/somedb [backlog]`
(the database must exist and be empty).
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from pipeline.app.auth import Principal, principal_for_user
from pipeline.core.config import AssessmentSection
from pipeline.stages.assessment import claim_next
from pipeline.store.db import make_engine, make_session_factory, normalise_database_url
from pipeline.store.migrate import upgrade
from pipeline.store.models import User

SEQUENTIAL_CLAIMS = 1_000
WARM_UP_CLAIMS = 50
THREADS = 4
CLAIMS_PER_THREAD = 250
LEASE_SECONDS = 1_800

FILL = text("""
INSERT INTO cases (ref, canonical_url, dedup_key, open_key, host, registered_domain,
                   urgent, report_count, behind_cdn, origin_unknown, priority, state,
                   state_changed_at, received_at, awaiting_assessment_at, audit_seq,
                   audit_hash)
SELECT 'C-BENCH-' || g, 'http://site' || (g % 5000) || '.example/' || g,
       md5(g::text) || md5((g + 1)::text), md5(g::text) || md5((g + 1)::text),
       'site' || (g % 5000) || '.example', 'site' || (g % 5000) || '.example',
       g % 997 = 0, 1, false, false,
       CASE WHEN g % 997 = 0 THEN 1000 WHEN g % 10 = 0 THEN 100 ELSE 0 END,
       'awaiting_assessment', :now, :now - (random() * interval '30 days'), :now, 0,
       repeat('0', 64)
FROM generate_series(1, :backlog) AS g
""")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def run(pg_url: str, backlog: int = 100_000) -> dict[str, float]:
    """Claim latency percentiles (ms) with `backlog` cases waiting (see the steps)."""
    settings = AssessmentSection()  # the shipped defaults
    upgrade(pg_url)
    engine = make_engine(pg_url, pool_size=THREADS + 2)
    factory = make_session_factory(engine)
    now = datetime.now(UTC)
    try:
        with factory.begin() as session:
            session.execute(FILL, {"now": now, "backlog": backlog})
            users = [User(name=f"bench-analyst-{i}", role="analyst", created_at=now,
                          must_change_password=False, active=True)
                     for i in range(THREADS + 1)]
            session.add_all(users)
            session.flush()
            principals = [principal_for_user(u, via="bench") for u in users]
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("ANALYZE cases"))

        def one_claim(principal: Principal, kind: str = "first",
                      sessions: sessionmaker[Session] = factory) -> float:
            started = time.perf_counter()
            with sessions.begin() as session:
                lease = claim_next(session, principal, now=datetime.now(UTC),
                                   lease_seconds=LEASE_SECONDS, kind=kind,
                                   wait_for_disk=settings.claim_waits_for_disk)
            elapsed = (time.perf_counter() - started) * 1000
            if lease is None:
                raise RuntimeError("the benchmark queue ran dry")
            return elapsed

        # At most about half the backlog is claimed, so the queue stays long.
        per_thread = max(1, min(CLAIMS_PER_THREAD, backlog // (4 * THREADS)))
        for _ in range(min(WARM_UP_CLAIMS, backlog // 20)):
            one_claim(principals[0])
        sequential = [one_claim(principals[0])
                      for _ in range(max(1, min(SEQUENTIAL_CLAIMS, backlog // 4)))]
        extra = max(1, min(SEQUENTIAL_CLAIMS, backlog // 8))
        of_kind_any = [one_claim(principals[0], "any") for _ in range(extra)]
        bare = create_engine(normalise_database_url(pg_url), pool_size=1, pool_pre_ping=False)
        try:
            unpinged = make_session_factory(bare)
            one_claim(principals[0], sessions=unpinged)  # the connection
            no_pre_ping = [one_claim(principals[0], sessions=unpinged) for _ in range(extra)]
        finally:
            bare.dispose()

        concurrent: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(THREADS)

        def analyst(principal: Principal) -> None:
            barrier.wait()
            times = [one_claim(principal) for _ in range(per_thread)]
            with lock:
                concurrent.extend(times)

        threads = [threading.Thread(target=analyst, args=(p,)) for p in principals[1:]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if len(concurrent) != THREADS * per_thread:
            raise RuntimeError("a concurrent claimer failed")
        with factory() as session:
            taken = session.execute(text(
                "SELECT count(*), count(DISTINCT case_id) FROM case_leases")).one()
        if taken[0] != taken[1]:
            raise RuntimeError("a case was claimed twice")
        return {
            "backlog": float(backlog),
            "claim_p50_ms": round(statistics.median(sequential), 3),
            "claim_p99_ms": round(_percentile(sequential, 99), 3),
            "claim_any_p50_ms": round(statistics.median(of_kind_any), 3),
            "claim_any_p99_ms": round(_percentile(of_kind_any, 99), 3),
            "claim_no_pre_ping_p50_ms": round(statistics.median(no_pre_ping), 3),
            "claim_no_pre_ping_p99_ms": round(_percentile(no_pre_ping, 99), 3),
            "claim_concurrent_p50_ms": round(statistics.median(concurrent), 3),
            "claim_concurrent_p99_ms": round(_percentile(concurrent, 99), 3),
            "claims_measured": float(len(sequential) + len(of_kind_any) + len(no_pre_ping)
                                     + len(concurrent)),
        }
    finally:
        engine.dispose()


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)))
