"""Stage benchmark of URL normalisation and deduplication.

`run(redis_url, n)` returns:
- `canonicalise_urls_per_s`: `pipeline.domain.urls.canonicalise` over n varied URLs (IDN,
  IPv4 forms, IPv6, tracking parameters, user info, percent-encoding, rejects),
- `dedup_decisions_per_s`: dedup decisions made by the atomic Redis claim
  (`DedupClaims.claim`, then `settle` of the keys won), in batches of 250 keys as the
  stage sends them, half of the keys seen before, against the given Redis,
- `dedup_stage_reports_per_s`: the whole dedupe stage (Redis claim, database join or
  insert, report transitions and audit events) on a temporary SQLite database, over
  min(n, 20,000) reports, a third of them duplicates.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
import uuid
from pathlib import Path

BATCH = 250

_HOSTS = ["example.com", "WWW.Example.org", "bücher.example", "пример.рф", "0x7f.0.0.1",
          "3232235777", "[2001:db8::1]", "evil.blogspot.com", "bit.ly", "abc.onion",
          "sub.domain.example.co.uk", "xn--mnchen-3ya.de", "example.com."]
_DOMAINS = ["example.com", "bücher.example", "пример.рф", "blogspot.com", "example.co.uk"]
_QUERIES = ["", "?id=7", "?utm_source=mail&utm_medium=x&id=3", "?q=a%20b&fbclid=z",
            "?a=1&&b=%7e"]


def sample_urls(n: int, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    urls = []
    for i in range(n):
        if i % 50 == 49:
            urls.append(rng.choice(["javascript:alert(1)", "not a url", "http://1.2.3.4.5/"]))
            continue
        scheme = rng.choice(["http", "https", "HTTP"])
        user = "user:pw@" if i % 17 == 0 else ""
        port = rng.choice(["", "", ":80", ":8080"])
        path = f"/{rng.randrange(10_000)}/a/../p%7e{i % 97}/caf%c3%a9"
        # Half the hosts repeat (as real reports do), half are one of 50,000 sites.
        host = rng.choice(_HOSTS) if i % 2 else (
            f"s{rng.randrange(50_000)}.{rng.choice(_DOMAINS)}")
        urls.append(f"{scheme}://{user}{host}{port}{path}"
                    f"{rng.choice(_QUERIES)}#frag")
    return urls


def bench_canonicalise(n: int) -> float:
    from pipeline.core.errors import RejectedURL
    from pipeline.domain.urls import canonicalise

    urls = sample_urls(n)
    canonicalise(urls[0])  # warm the suffix list
    started = time.perf_counter()
    for url in urls:
        with contextlib.suppress(RejectedURL):
            canonicalise(url)
    return n / (time.perf_counter() - started)


def _delete_namespace(client, namespace: str) -> None:
    for key in client.scan_iter(match=f"{namespace}:*", count=1000):
        client.delete(key)


def bench_claims(redis_url: str, n: int) -> float:
    import redis

    from pipeline.stages.dedupe import DedupClaims

    client = redis.Redis.from_url(redis_url)
    namespace = f"hotline-bench-{uuid.uuid4().hex[:8]}"
    claims = DedupClaims(client, namespace, ttl_seconds=600)
    keys = [uuid.uuid4().hex + uuid.uuid4().hex for _ in range(n // 2 + 1)]
    stream = [keys[i // 2] if i % 2 else keys[random.Random(i).randrange(i // 2 + 1)]
              for i in range(n)]
    try:
        started = time.perf_counter()
        for i in range(0, n, BATCH):
            batch = sorted(set(stream[i:i + BATCH]))
            won, _ = claims.claim(batch)
            claims.settle({k: j for j, k in enumerate(won, start=1)})
        return n / (time.perf_counter() - started)
    finally:
        _delete_namespace(client, namespace)
        client.close()


def bench_stage(redis_url: str, n: int) -> float:
    import redis

    from pipeline.core.clock import SystemClock
    from pipeline.domain.urls import canonicalise
    from pipeline.stages.dedupe import DedupClaims, dedupe_reports
    from pipeline.stages.intake import new_reference
    from pipeline.store.db import make_engine, make_session_factory
    from pipeline.store.migrate import upgrade
    from pipeline.store.models import Report

    client = redis.Redis.from_url(redis_url)
    namespace = f"hotline-bench-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'dedupe.db'}"
        upgrade(url)
        engine = make_engine(url)
        sessions = make_session_factory(engine)
        clock = SystemClock()
        now = clock.now()
        distinct = max(1, (2 * n) // 3)
        facts = [canonicalise(f"http://site{i % 997}.example/{i}") for i in range(distinct)]
        rng = random.Random(5)
        ids: list[int] = []
        with sessions.begin() as session:
            reports = []
            for i in range(n):
                f = facts[i] if i < distinct else facts[rng.randrange(distinct)]
                reports.append(Report(
                    ref=new_reference("R"), submission_ref="S-BENCH", url=f.canonical,
                    channel="api", received_at=now, state="normalised",
                    state_changed_at=now, audit_seq=0, canonical_url=f.canonical,
                    dedup_key=f.dedup_key, host=f.host, host_unicode=f.host_unicode,
                    registered_domain=f.registered_domain, url_kind=f.kind))
            rng.shuffle(reports)
            session.add_all(reports)
            session.flush()
            ids = [r.id for r in reports]
        claims = DedupClaims(client, namespace, ttl_seconds=600)
        try:
            started = time.perf_counter()
            for i in range(0, n, BATCH):
                with sessions.begin() as session:
                    dedupe_reports(session, ids[i:i + BATCH], clock=clock, claims=claims)
            elapsed = time.perf_counter() - started
        finally:
            _delete_namespace(client, namespace)
            client.close()
            engine.dispose()
    return n / elapsed


def run(redis_url: str, n: int = 100_000) -> dict[str, float]:
    return {
        "canonicalise_urls_per_s": round(bench_canonicalise(n), 1),
        "dedup_decisions_per_s": round(bench_claims(redis_url, n), 1),
        "dedup_stage_reports_per_s": round(bench_stage(redis_url, min(n, 20_000)), 1),
    }


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(run(sys.argv[1] if len(sys.argv) > 1 else "redis://127.0.0.1:6379/0",
                         int(sys.argv[2]) if len(sys.argv) > 2 else 100_000)))
