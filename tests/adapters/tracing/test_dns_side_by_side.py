"""DNS questions of a batch asked side by side from one thread (`DnsClient.ask_many`,
`resolve_hosts`, `nameservers_many`) against loopback resolvers: what they give is
what asking one question at a time gives (`test_dns.py` also runs each of its cases
side by side), and each question goes to the resolvers as one asked alone would."""

from __future__ import annotations

from pipeline.adapters.tracing import dns as tdns
from pipeline.adapters.tracing.breaker import Breakers
from pipeline.adapters.tracing.dns import DnsClient
from tests.netfakes import FakeDNS


def client(*servers: FakeDNS) -> DnsClient:
    return DnsClient([(s.address, s.port) for s in servers], timeout=0.3, lifetime=1.0,
                     breakers=Breakers())


def _facts(result: tdns.DnsResult) -> tuple:
    """A result but its times and the answers' texts (their message ids differ)."""
    return (result.host, result.outcome, result.addresses, result.cname_chain,
            result.resolver, result.ttl,
            {rdtype: (raw.get("error"), raw.get("resolver"), "text" in raw)
             for rdtype, raw in result.raw.items()})


def test_questions_side_by_side_give_what_one_at_a_time_gives(fake_dns):
    hosts = []
    for n in range(8):
        fake_dns.add_host(f"h{n}.example.com", a=[f"185.1.1.{n + 1}"],
                          aaaa=[f"2a00:1::{n + 1}"] if n % 2 else None)
        hosts.append(f"h{n}.example.com")
    fake_dns.add_cname("www.example.com", "h1.example.com")
    fake_dns.add_chain("deep.example.com", 12, a="185.1.1.1")
    fake_dns.add_host("gone.example.com", a=["185.1.1.1"])
    fake_dns.fail("gone.example.com", "nxdomain")
    fake_dns.add_host("broken.example.com", a=["185.1.1.1"])
    fake_dns.fail("broken.example.com", "servfail")
    fake_dns.add_host("v6only.example.com", aaaa=["2a00:1::9"])
    hosts += ["www.example.com", "deep.example.com", "gone.example.com",
              "broken.example.com", "v6only.example.com", "nothing.example.org",
              "a" * 70 + ".example.com"]
    one_by_one = [client(fake_dns).resolve_host(host) for host in hosts]
    asked = dict(fake_dns.by_type)
    fake_dns.by_type.clear()
    side_by_side = client(fake_dns).resolve_hosts([*hosts, "h0.example.com"], window=3)
    assert [_facts(r) for r in side_by_side] == [_facts(r) for r in one_by_one] + [
        _facts(one_by_one[0])]  # a host named twice is asked about once
    assert dict(fake_dns.by_type) == asked  # the same questions, no more
    assert {r.outcome for r in side_by_side} == {
        tdns.OK, tdns.CHAIN_TOO_LONG, tdns.NXDOMAIN, tdns.SERVFAIL, tdns.DNS_ERROR}


def test_name_servers_side_by_side_give_what_one_at_a_time_gives(fake_dns):
    fake_dns.add_ns("example.com", ["ns2.example.net", "ns1.example.net"])
    fake_dns.add_ns("example.org", ["ns.example.org"])
    domains = ["example.com", "example.org", "example.net"]
    dns = client(fake_dns)
    side_by_side = dns.nameservers_many(domains, window=2)
    one_by_one = [DnsClient.nameservers(dns, domain) for domain in domains]
    assert [(servers, ttl) for servers, _, ttl in side_by_side] == [
        (servers, ttl) for servers, _, ttl in one_by_one]
    assert side_by_side[0][0] == ["ns1.example.net", "ns2.example.net"]
    assert side_by_side[0][1]["resolver"] == f"127.0.0.1:{fake_dns.port}"


def _first_silent(first: FakeDNS, second: FakeDNS, hosts: list[str], *, lifetime: float,
                  failures: int) -> DnsClient:
    """A client asking `first`, silent about `hosts`, then `second`, which answers."""
    for host in hosts:
        first.fail(host, "timeout")
        second.add_host(host, a=["185.1.1.1"])
    return DnsClient([(first.address, first.port), (second.address, second.port)],
                     timeout=0.3, lifetime=lifetime,
                     breakers=Breakers(failures=failures, reset_seconds=60))


def test_side_by_side_a_silent_resolver_opens_its_circuit_and_the_next_answers(fake_dns):
    hosts = [f"h{n}.example.com" for n in range(5)]
    with FakeDNS() as second:
        dns = _first_silent(fake_dns, second, hosts, lifetime=2.0, failures=3)
        results = dns.resolve_hosts(hosts, window=2)
        assert [r.outcome for r in results] == [tdns.OK] * 5
        assert {r.resolver for r in results} == {f"127.0.0.1:{second.port}"}
        assert dns.breakers is not None
        circuits = {c.server: c for c in dns.breakers.circuits()}
        assert circuits[f"dns 127.0.0.1:{fake_dns.port}"].state == "open"
        assert circuits[f"dns 127.0.0.1:{second.port}"].state == "closed"
        # Once open, the silent resolver is not asked at all: the next one answers
        # at once, well within one timeout.
        second.add_host("late.example.com", a=["185.1.1.2"])
        (late,) = dns.resolve_hosts(["late.example.com"])
    assert late.outcome == tdns.OK and late.resolver == f"127.0.0.1:{second.port}"


def test_side_by_side_no_resolver_answering_is_registries_unreachable(fake_dns):
    fake_dns.fail("www.example.com", "timeout")
    dns = DnsClient([(fake_dns.address, fake_dns.port)], timeout=0.2, lifetime=1.0,
                    breakers=Breakers(failures=3, reset_seconds=60))
    (result,) = dns.resolve_hosts(["www.example.com"])
    assert result.outcome == tdns.UNREACHABLE
    assert "no DNS resolver answered" in result.raw["A"]["text"]


def test_side_by_side_each_question_goes_to_the_next_resolver_at_once(fake_dns):
    # One in flight at a time: the first resolver's silence costs each question its
    # timeout, longer in all than the lifetime. Each question is still asked of the
    # second resolver as soon as the first failed it, as one host alone is asked, and
    # its lifetime counts from its own first question, not from the batch's.
    hosts = [f"h{n}.example.com" for n in range(4)]
    with FakeDNS() as second:
        dns = _first_silent(fake_dns, second, hosts, lifetime=0.8, failures=100)
        answers = dns.ask_many([(host, "A") for host in hosts], window=1)
    assert [a.nameserver for a in answers] == ["127.0.0.1"] * 4
    assert [a.port for a in answers] == [second.port] * 4


def test_each_answer_is_handed_on_as_soon_as_it_is_settled(fake_dns):
    # A batch's answers are whole DNS messages: each goes to `then` when it comes, not
    # all at the end (held together, a worker's memory grew by 40 MB over 100,000
    # reports). One in flight: the first is handed on before the second is asked.
    hosts = [f"h{n}.example.com" for n in range(3)]
    for host in hosts:
        fake_dns.add_host(host, a=["185.1.1.1"])
    asked_when_handed: list[int] = []

    def then(index, answer):
        asked_when_handed.append(fake_dns.by_type["A"])
        return (index, answer.port)

    kept = client(fake_dns).ask_many([(h, "A") for h in hosts], window=1, then=then)
    assert asked_when_handed == [1, 2, 3]
    assert kept == [(0, fake_dns.port), (1, fake_dns.port), (2, fake_dns.port)]
