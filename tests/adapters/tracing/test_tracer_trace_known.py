"""The cache-only trace (deduplication's `Tracer.trace_known`) records only what the
caches hold in full: a network another worker is still asking the registry about, or
one the caches do not hold, is left for the trace stage, never recorded as unknown."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from pipeline.adapters.tracing.tracer import NETWORK_UNKNOWN, TRACED, TraceTarget, _group
from tests.netfakes import records


def _network(fake_dns, fake_rdap, n: int) -> str:
    prefix = f"185.{70 + n}.{n}.0/24"
    fake_rdap.add_network(prefix, records.ripe_network(
        prefix, name=f"NET-{n}", country="NL", org=f"Org {n} B.V.",
        abuse_email=f"abuse@org{n}.test"))
    fake_dns.add_origin(prefix, asn=64_600 + n, country="NL")
    return prefix


def _expected(n: int) -> tuple[str, int, str, str, bool]:
    return TRACED, 64_600 + n, f"Org {n} B.V.", f"abuse@org{n}.test", False


def _facts(result) -> tuple[str, int | None, str | None, str | None, bool]:
    return (result.outcome, result.hosting_asn, result.hosting_org,
            result.hosting_abuse_email, result.origin_unknown)


def test_a_network_another_worker_is_asking_about_is_left_for_the_stage(
        make_tracer, fake_dns, fake_rdap, redis_client, redis_namespace):
    """The interleaving seen in production, made deterministic: worker A traced a host
    of the domain before (its registrar is cached) and is now asking the registry for
    the network of a second host (holding the single-flight claim, the host's DNS
    answer already cached); worker B's deduplication meets the second host."""
    fake_rdap.add_domain("example.com", records.domain("example.com"))
    fake_dns.add_ns("example.com", ["ns1.example.com"])
    _network(fake_dns, fake_rdap, 1)
    _network(fake_dns, fake_rdap, 2)
    fake_dns.add_host("a.example.com", a=["185.71.1.10"])
    fake_dns.add_host("b.example.com", a=["185.72.2.10"])
    first, second = (TraceTarget(h, "domain", "example.com") for h in ("a.example.com",
                                                                    "b.example.com"))
    a = make_tracer(redis=redis_client, namespace=redis_namespace)
    b = make_tracer(redis=redis_client, namespace=redis_namespace)
    assert _facts(a.trace([first])[first]) == _expected(1)

    asking, answer = threading.Event(), threading.Event()
    fetch = a._fetch_network

    def held_fetch(address: str):
        asking.set()  # the claim for the network's group is held now
        assert answer.wait(10)
        return fetch(address)

    a._fetch_network = held_fetch  # type: ignore[method-assign]
    worker_a = threading.Thread(target=a.trace, args=([second],))
    worker_a.start()
    try:
        assert asking.wait(10)
        assert redis_client.exists(
            f"{redis_namespace}:trace:inflight:net:{_group('185.72.2.10', 0)}")
        known = b.trace_known([first, second])
        assert second not in known  # goes to the trace stage
        assert _facts(known[first]) == _expected(1)
    finally:
        answer.set()
        worker_a.join()
    # Once A's answer is in the caches, B traces the host from them, in full.
    assert _facts(b.trace_known([second])[second]) == _expected(2)


def test_a_negative_network_answer_in_the_caches_is_never_recorded_by_the_cache_path(
        make_tracer, fake_dns, fake_rdap, redis_client, redis_namespace):
    """The registry's "no such network" is the stage's to record (with its reason)."""
    fake_rdap.add_domain("example.com", records.domain("example.com"))
    fake_dns.add_host("lost.example.com", a=["185.99.0.1"])  # no network served: 404
    target = TraceTarget("lost.example.com", "domain", "example.com")
    tracer = make_tracer(redis=redis_client, namespace=redis_namespace)
    traced = tracer.trace([target])[target]
    assert traced.outcome == NETWORK_UNKNOWN and "404" in (traced.reason or "")
    other = make_tracer(redis=redis_client, namespace=redis_namespace)
    assert other.trace_known([target]) == {}  # neither from the shared caches
    assert tracer.trace_known([target]) == {}  # nor from the process's recent traces


@pytest.mark.parametrize("seed", [1, 2])
def test_two_workers_over_many_hosts_on_few_networks_record_what_the_registry_serves(
        make_tracer, fake_dns, fake_rdap, redis_client, redis_namespace, seed):
    """Two workers, each deduplicating (cache-only trace) then tracing the rest, over
    the same hosts in different orders: every host's facts are the registry's."""
    networks, hosts = 40, 240
    fake_rdap.latency_seconds = 0.03  # questions overlap the other worker's looks
    fake_rdap.add_domain("zipf.test", records.domain("zipf.test"))
    fake_dns.add_ns("zipf.test", ["ns1.zipf.test"])
    for n in range(networks):
        _network(fake_dns, fake_rdap, n)
    network_of: dict[TraceTarget, int] = {}
    for h in range(hosts):
        n = h % networks
        name = f"h{h}.zipf.test"
        fake_dns.add_host(name, a=[f"185.{70 + n}.{n}.{1 + h // networks}"])
        network_of[TraceTarget(name, "domain", "zipf.test")] = n
    targets = list(network_of)
    results: list[tuple[TraceTarget, tuple]] = []
    failures: list[str] = []
    lock = threading.Lock()

    def worker(order: list[TraceTarget]) -> None:
        tracer = make_tracer(redis=redis_client, namespace=redis_namespace,
                             rdap_timeout_seconds=3.0)
        try:
            for start in range(0, len(order), 12):
                batch = order[start:start + 12]
                known = tracer.trace_known(batch)
                rest = [t for t in batch if t not in known]
                traced: dict[TraceTarget, Any] = {}
                for _ in range(20):  # a passing failure: the stage tries the batch again
                    traced.update(tracer.trace(rest) if rest else {})
                    rest = [t for t in rest if traced[t].transient is not None]
                    if not rest:
                        break
                with lock:
                    results.extend((t, _facts(r)) for t, r in {**known, **traced}.items())
        except Exception as exc:  # noqa: BLE001 - asserted below
            failures.append(repr(exc))

    # The same hosts, the second worker half a batch behind the first: each meets
    # hosts whose DNS answers the other has just cached while it asks the registry
    # about their (new) networks.
    order = random.Random(seed).sample(targets, len(targets))
    orders = [order, order[6:] + order[:6]]
    threads = [threading.Thread(target=worker, args=(order,)) for order in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert len(results) == 2 * hosts
    wrong = [(t.host, facts) for t, facts in results if facts != _expected(network_of[t])]
    assert wrong == []
