"""The tracer counts RDAP cache hits and misses and rate-limit waits for /metrics."""

from __future__ import annotations

import pytest

from pipeline.adapters.tracing.cache import Cache, PrefixCache
from pipeline.adapters.tracing.ratelimit import RateLimiter
from pipeline.core.counters import RDAP_CACHE, RDAP_RATE_LIMIT_WAITS
from pipeline.core.errors import RetryLater


def _value(counter, *labels):
    return counter.labels(*labels)._value.get()


def test_network_cache_look_ups_count_hits_and_misses():
    cache = PrefixCache(Cache(), "net")
    cache.store(["192.0.2.0/24"], {"asn": 64500}, ttl=60)
    hits, misses = _value(RDAP_CACHE, "hit"), _value(RDAP_CACHE, "miss")
    found = cache.lookup_many(["192.0.2.10", "192.0.2.11", "198.51.100.1"])
    assert found["192.0.2.10"] == {"asn": 64500} and found["198.51.100.1"] is None
    assert _value(RDAP_CACHE, "hit") - hits == 2
    assert _value(RDAP_CACHE, "miss") - misses == 1


def test_a_rate_limit_wait_is_counted_even_when_it_becomes_a_retry():
    limiter = RateLimiter(rate_per_second=0.01, burst=1, max_wait_ms=10)
    before = _value(RDAP_RATE_LIMIT_WAITS, "test-rir")
    limiter.acquire("test-rir")  # the burst allows one at once
    with pytest.raises(RetryLater):
        limiter.acquire("test-rir")
    assert _value(RDAP_RATE_LIMIT_WAITS, "test-rir") - before == 1


def _by_label(counter, label: str) -> dict[str, float]:
    """The counter's samples summed by one label (every other label added up)."""
    totals: dict[str, float] = {}
    for metric in counter.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total"):
                key = sample.labels[label]
                totals[key] = totals.get(key, 0.0) + sample.value
    return totals


def _moved(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0.0) for k, v in after.items() if v != before.get(k, 0.0)}


def test_every_rdap_request_the_registries_saw_is_counted_with_its_outcome(
    make_tracer, fake_dns, fake_rdap
):
    from pipeline.core.counters import RDAP_REQUESTS
    from tests.adapters.tracing.test_rdap import host
    from tests.netfakes import records

    fake_rdap.add_network("185.30.0.0/16", records.ripe_network("185.30.0.0/16"))
    fake_rdap.add_network("23.30.0.0/16", records.arin_network("23.30.0.0/16"))
    fake_rdap.add_network("185.31.0.0/16", records.ripe_network("185.31.0.0/16"))
    fake_rdap.fail("185.31.0.0/16", "429")
    fake_rdap.add_network("185.32.0.0/16", records.ripe_network("185.32.0.0/16"))
    fake_rdap.fail("185.32.0.0/16", "500")
    targets = [host(fake_dns, "ok.example.com", "185.30.0.1"),
               host(fake_dns, "arin.example.com", "23.30.0.1"),
               host(fake_dns, "missing.example.com", "185.33.0.1"),  # 404
               host(fake_dns, "busy.example.com", "185.31.0.1"),
               host(fake_dns, "down.example.com", "185.32.0.1")]
    registries, outcomes = _by_label(RDAP_REQUESTS, "registry"), _by_label(RDAP_REQUESTS,
                                                                           "outcome")
    make_tracer(asn_dns_zone_v4="").trace(targets)
    assert fake_rdap.queries_by_registry == {"ripe": 4, "arin": 1}
    assert _moved(registries, _by_label(RDAP_REQUESTS, "registry")) == {"ripencc": 4,
                                                                         "arin": 1}
    assert _moved(outcomes, _by_label(RDAP_REQUESTS, "outcome")) == {
        "ok": 2, "not_found": 1, "rate_limited": 1, "server_error": 1}


def test_every_dns_question_the_resolver_saw_is_counted_by_type_and_outcome(fake_dns):
    from pipeline.adapters.tracing.dns import DnsClient
    from pipeline.core.counters import DNS_QUERIES

    fake_dns.add_host("www.example.com", a=["185.1.1.1"], aaaa=["2a00:1::1"])
    fake_dns.add_host("v4only.example.com", a=["185.1.1.2"])
    fake_dns.add_ns("example.com", ["ns1.example.net"])
    fake_dns.fail("gone.example.com", "nxdomain")
    fake_dns.fail("broken.example.com", "servfail")
    fake_dns.add_origin("185.1.1.0/24", asn=64500, country="NL")
    client = DnsClient([(fake_dns.address, fake_dns.port)], timeout=0.5, lifetime=1.0)
    types, outcomes = _by_label(DNS_QUERIES, "rdtype"), _by_label(DNS_QUERIES, "outcome")
    seen_before = fake_dns.queries
    client.resolve_host("www.example.com")      # A, AAAA
    client.resolve_host("v4only.example.com")   # A, AAAA (empty)
    client.resolve_host("gone.example.com")     # A: NXDOMAIN, stops
    client.resolve_host("broken.example.com")   # A: SERVFAIL, stops
    client.nameservers("example.com")           # NS
    client.origin_asn("185.1.1.1", "origin.asn.cymru.com", "")  # TXT
    assert fake_dns.queries - seen_before == 8
    assert _moved(types, _by_label(DNS_QUERIES, "rdtype")) == dict(fake_dns.by_type) == {
        "A": 4, "AAAA": 2, "NS": 1, "TXT": 1}
    assert _moved(outcomes, _by_label(DNS_QUERIES, "outcome")) == {
        "ok": 5, "no_answer": 1, "nxdomain": 1, "servfail": 1}
