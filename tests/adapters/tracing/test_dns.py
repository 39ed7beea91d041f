"""DNS with dnspython against a loopback resolver (dnslib) serving test zones.

Each test of `client` runs three times: through the circuit breakers one question at
a time (`dns._ask_one`), through them with the questions side by side from one thread
as the tracer asks (`DnsClient.resolve_hosts`, `nameservers_many`), and without them
(`trace.breaker_failures: 0`, dnspython's stub resolver over all of them)."""

from __future__ import annotations

import pytest

from pipeline.adapters.tracing import dns as tdns
from pipeline.adapters.tracing.breaker import Breakers
from pipeline.adapters.tracing.dns import DnsClient
from pipeline.adapters.tracing.tracer import TraceTarget
from tests.netfakes import FakeDNS

_breakers: list[Breakers | None] = [None]
_side_by_side = [False]


@pytest.fixture(autouse=True, params=["breakers", "side by side", "no breakers"])
def _paths(request):
    _breakers[0] = None if request.param == "no breakers" else Breakers()
    _side_by_side[0] = request.param == "side by side"
    yield
    _breakers[0], _side_by_side[0] = None, False


class _SideBySide(DnsClient):
    """Asks one host or domain as the tracer asks a batch of them."""

    def resolve_host(self, host: str) -> tdns.DnsResult:
        (result,) = self.resolve_hosts([host], window=2)
        return result

    def nameservers(self, domain: str):
        (result,) = self.nameservers_many([domain], window=2)
        return result


def client(*servers: FakeDNS, max_chain: int = 8) -> DnsClient:
    kind = _SideBySide if _side_by_side[0] else DnsClient
    return kind([(s.address, s.port) for s in servers], timeout=0.3, lifetime=1.0,
                max_chain=max_chain, breakers=_breakers[0])


def test_every_a_and_aaaa_answer_is_kept_with_the_resolver_that_answered(fake_dns):
    fake_dns.add_host("www.example.com", a=["185.1.1.1", "185.1.1.2"],
                      aaaa=["2a00:1::1", "2a00:1::2"])
    result = client(fake_dns).resolve_host("www.example.com")
    assert result.outcome == tdns.OK
    assert result.addresses == ["185.1.1.1", "185.1.1.2", "2a00:1::1", "2a00:1::2"]
    assert result.resolver == f"127.0.0.1:{fake_dns.port}"
    assert "185.1.1.2" in result.raw["A"]["text"] and "2a00:1::2" in result.raw["AAAA"]["text"]


def test_a_cname_chain_is_recorded_hop_by_hop(fake_dns):
    fake_dns.add_cname("www.example.com", "edge.example.net")
    fake_dns.add_cname("edge.example.net", "origin.example.org")
    fake_dns.add_host("origin.example.org", a=["185.1.1.9"])
    result = client(fake_dns).resolve_host("www.example.com")
    assert result.cname_chain == ["edge.example.net", "origin.example.org"]
    assert result.addresses == ["185.1.1.9"]


def test_a_cname_chain_longer_than_allowed_is_its_own_outcome(fake_dns):
    fake_dns.add_chain("deep.example.com", 12, a="185.1.1.1")
    fake_dns.add_chain("short.example.com", 3, a="185.1.1.1")
    dns = client(fake_dns, max_chain=8)
    assert dns.resolve_host("deep.example.com").outcome == tdns.CHAIN_TOO_LONG
    assert dns.resolve_host("short.example.com").outcome == tdns.OK


@pytest.mark.parametrize(("fault", "outcome"), [
    ("nxdomain", tdns.NXDOMAIN),
    ("servfail", tdns.SERVFAIL),
    ("timeout", tdns.TIMEOUT),
])
def test_nxdomain_servfail_and_timeout_are_distinct_outcomes(fake_dns, fault, outcome):
    fake_dns.add_host("gone.example.com", a=["185.1.1.1"])
    fake_dns.fail("gone.example.com", fault)
    result = client(fake_dns).resolve_host("gone.example.com")
    if fault == "timeout" and _breakers[0] is not None:
        outcome = tdns.UNREACHABLE  # through breakers, silence is no fact about the host
    assert result.outcome == outcome
    assert result.addresses == []


def test_an_answer_too_long_for_udp_is_asked_again_over_tcp():
    addresses = [f"185.1.2.{n}" for n in range(1, 61)]  # about 1 KB of answer
    with FakeDNS(udp_limit=512) as small:
        small.add_host("many.example.com", a=addresses)
        result = client(small).resolve_host("many.example.com")
    assert result.outcome == tdns.OK
    assert result.addresses == addresses


def test_a_name_without_addresses_is_no_answer(fake_dns):
    fake_dns.add_ns("example.com", ["ns1.example.net"])
    assert client(fake_dns).resolve_host("example.com").outcome == tdns.NO_ANSWER


def test_a_name_above_a_host_exists_without_addresses(fake_dns):
    fake_dns.add_host("www.example.com", a=["185.1.1.1"])
    assert client(fake_dns).resolve_host("example.com").outcome == tdns.NO_ANSWER


def test_an_unknown_name_is_nxdomain(fake_dns):
    fake_dns.add_host("www.example.com", a=["185.1.1.1"])
    assert client(fake_dns).resolve_host("nothing.example.org").outcome == tdns.NXDOMAIN


@pytest.mark.parametrize("fault", ["timeout", "refused"])
def test_the_second_resolver_answers_when_the_first_fails_and_is_recorded(fake_dns, fault):
    with FakeDNS() as second:
        fake_dns.fail("www.example.com", fault)
        second.add_host("www.example.com", a=["185.1.1.1"])
        result = client(fake_dns, second).resolve_host("www.example.com")
    assert result.outcome == tdns.OK
    assert result.resolver == f"127.0.0.1:{second.port}"


def test_name_servers_of_the_registered_domain_are_recorded(make_tracer, fake_dns):
    fake_dns.add_host("www.example.com", a=["185.1.1.1"])
    fake_dns.add_ns("example.com", ["ns2.example.net", "ns1.example.net"])
    tracer = make_tracer(asn_dns_zone_v4="")
    target = TraceTarget("www.example.com", "domain", "example.com")
    trace = tracer.trace([target])[target]
    assert trace.nameservers == ["ns1.example.net", "ns2.example.net"]
    assert "NS" in trace.dns_raw


def test_dns_answers_are_cached_for_their_ttl(make_tracer, fake_dns):
    fake_dns.add_host("www.example.com", a=["185.1.1.1"])
    tracer = make_tracer(asn_dns_zone_v4="")
    target = TraceTarget("www.example.com", "domain", None)
    tracer.trace([target])
    asked = fake_dns.by_type["A"]
    tracer.trace([target])
    assert asked == 1 and fake_dns.by_type["A"] == 1


def test_a_worker_keeps_a_bounded_number_of_recent_traces_the_most_recently_used(
        make_tracer, fake_dns):
    for i in range(4):
        fake_dns.add_host(f"h{i}.example.com", a=[f"185.1.1.{i + 1}"])
    tracer = make_tracer(asn_dns_zone_v4="")
    tracer._recent.max_items = 3
    h0, h1, h2, h3 = (TraceTarget(f"h{i}.example.com", "domain", None) for i in range(4))
    tracer.trace([h0, h1])
    tracer.trace([h0])  # used again: h1 is now the least recently used
    tracer.trace([h2, h3])
    assert list(tracer._recent) == [h0, h2, h3]
    tracer.trace([h1])
    assert list(tracer._recent) == [h2, h3, h1]
    # What left the recent traces is still in the caches: no second question.
    assert fake_dns.by_type["A"] == 4


def test_the_origin_asn_comes_from_the_cymru_style_zone(fake_dns):
    fake_dns.add_origin("185.1.0.0/16", asn=64501, country="nl", rir="ripencc")
    fake_dns.add_origin("2a00:1::/32", asn=64502, country="DE", rir="ripencc")
    dns = client(fake_dns)
    v4 = dns.origin_asn("185.1.2.3", "origin.asn.cymru.com", "origin6.asn.cymru.com")
    v6 = dns.origin_asn("2a00:1::5", "origin.asn.cymru.com", "origin6.asn.cymru.com")
    assert v4 is not None and (v4["asn"], v4["prefix"], v4["country"]) == (
        64501, "185.1.0.0/16", "NL")
    assert v6 is not None and v6["asn"] == 64502
    assert dns.origin_asn("8.8.8.8", "origin.asn.cymru.com", "") is None


def test_a_failing_origin_zone_never_holds_a_case_back(make_tracer, fake_dns, fake_rdap):
    from tests.netfakes import records

    fake_rdap.add_network("23.60.0.0/16", records.arin_network("23.60.0.0/16",
                                                               origin_asns=[64900]))
    fake_dns.add_host("www.example.com", a=["23.60.0.1"])
    fake_dns.fail("1.0.60.23.origin.asn.cymru.com", "timeout")
    target = TraceTarget("www.example.com", "domain", None)
    trace = make_tracer().trace([target])[target]
    assert trace.transient is None and trace.outcome == "traced"
    assert trace.hosting_asn == 64900  # from ARIN's answer instead


def test_a_host_name_dns_cannot_carry_is_an_outcome_not_a_crash(fake_dns):
    result = client(fake_dns).resolve_host("a" * 70 + ".example.com")
    assert result.outcome == tdns.DNS_ERROR
