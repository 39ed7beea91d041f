"""Networks and domains via RDAP from a loopback server answering like the five RIRs."""

from __future__ import annotations

import pytest

from pipeline.adapters.tracing.tracer import NETWORK_UNKNOWN, RDAP_MALFORMED, TRACED, TraceTarget
from tests.netfakes import records


def host(fake_dns, name, *addresses):
    fake_dns.add_host(name, a=[a for a in addresses if ":" not in a],
                      aaaa=[a for a in addresses if ":" in a])
    return TraceTarget(name, "domain", None)


@pytest.mark.parametrize(("registry", "prefix", "body", "rir", "country", "org", "abuse"), [
    ("ripe", "185.10.0.0/22", records.ripe_network("185.10.0.0/22"), "ripencc", "NL",
     "Example Hosting B.V.", "abuse@example.nl"),
    ("arin", "23.10.0.0/16", records.arin_network("23.10.0.0/16", origin_asns=[64496]),
     "arin", None, "Example Cloud Inc.", "abuse@example.com"),
    ("apnic", "203.10.0.0/24", records.apnic_network("203.10.0.0/24"), "apnic", "AU",
     "Example Pty Ltd", "abuse@example.au"),
    ("lacnic", "200.10.0.0/20", records.lacnic_network("200.10.0.0/20"), "lacnic", "BR",
     "Exemplo Ltda", "abuse@exemplo.com.br"),
])
def test_networks_of_each_registry_give_prefix_country_org_and_abuse_contact(
    make_tracer, fake_dns, fake_rdap, registry, prefix, body, rir, country, org, abuse
):
    fake_rdap.add_network(prefix, body)
    address = prefix.split("/")[0][:-1] + "7"
    target = host(fake_dns, "www.example.com", address)
    trace = make_tracer(asn_dns_zone_v4="").trace([target])[target]
    entry = trace.addresses[0]
    assert (entry["prefix"], entry["rir"], entry["country"], entry["org"],
            entry["abuse_email"]) == (prefix, rir, country, org, abuse)
    assert trace.outcome == TRACED and not trace.origin_unknown
    assert fake_rdap.queries_by_registry == {registry: 1}
    if registry == "arin":
        assert trace.hosting_asn == 64496  # from arin_originas0


def test_an_abuse_contact_named_only_by_handle_is_followed(make_tracer, fake_dns, fake_rdap):
    fake_rdap.add_network("41.10.0.0/16", records.afrinic_network("41.10.0.0/16"))
    fake_rdap.add_entity("AFRINIC-ABUSE-1", records.entity("AFRINIC-ABUSE-1",
                                                           email="abuse@example.za"))
    target = host(fake_dns, "www.example.com", "41.10.0.1")
    trace = make_tracer(asn_dns_zone_v4="").trace([target])[target]
    assert trace.hosting_abuse_email == "abuse@example.za"
    assert trace.hosting_country == "ZA"
    assert fake_rdap.queries_by_kind == {"ip": 1, "entity": 1}
    assert {a["url"].split("/")[-2] for a in trace.rdap_answers} == {"ip", "entity"}


def test_a_network_without_an_abuse_contact_is_traced_with_the_contact_missing(
    make_tracer, fake_dns, fake_rdap
):
    fake_rdap.add_network("185.11.0.0/24", records.ripe_network("185.11.0.0/24",
                                                                abuse_email=None))
    target = host(fake_dns, "www.example.com", "185.11.0.5")
    trace = make_tracer(asn_dns_zone_v4="").trace([target])[target]
    assert trace.outcome == TRACED and trace.hosting_country == "NL"
    assert trace.hosting_abuse_email is None
    assert trace.reason == "the registry names no abuse contact for the network"


def test_addresses_inside_a_known_prefix_cost_no_rdap_query(make_tracer, fake_dns, fake_rdap):
    fake_rdap.add_network("185.12.0.0/16", records.ripe_network("185.12.0.0/16"))
    fake_rdap.add_network("23.12.0.0/24", records.arin_network("23.12.0.0/24"))
    targets = [host(fake_dns, f"h{i}.example.com", f"185.12.{i}.{i + 1}") for i in range(40)]
    targets += [host(fake_dns, f"a{i}.example.com", f"23.12.0.{i + 1}") for i in range(40)]
    tracer = make_tracer(asn_dns_zone_v4="")
    traces = tracer.trace(targets)
    assert fake_rdap.queries == 2
    assert {t.addresses[0]["prefix"] for t in traces.values()} == {"185.12.0.0/16",
                                                                   "23.12.0.0/24"}
    late = host(fake_dns, "late.example.com", "185.12.200.1")
    assert tracer.trace([late])[late].hosting_country == "NL"
    assert fake_rdap.queries == 2


def test_a_batch_asks_for_each_network_once_even_when_its_addresses_span_many_24s(
    make_tracer, fake_dns, fake_rdap
):
    fake_rdap.add_network("185.13.0.0/16", records.ripe_network("185.13.0.0/16"))
    targets = [host(fake_dns, f"h{i}.example.com", f"185.13.{i}.1") for i in range(30)]
    traces = make_tracer(asn_dns_zone_v4="").trace(targets)
    # One question for the /16 group; its answer covers every /24 of it.
    assert fake_rdap.queries == 1
    assert all(t.hosting_country == "NL" for t in traces.values())


@pytest.mark.parametrize("shared", ["redis", "one process"])
def test_workers_meeting_a_new_network_at_once_ask_the_registry_once(
    make_tracer, fake_dns, fake_rdap, redis_client, redis_namespace, shared
):
    """While one worker asks a registry for a network, the others wait for its answer
    in the cache instead of asking the same question (single flight)."""
    import threading

    fake_rdap.add_network("185.15.0.0/16", records.ripe_network("185.15.0.0/16"))
    fake_rdap.latency_seconds = 0.3
    redis = redis_client if shared == "redis" else None
    one = make_tracer(redis=redis, namespace=redis_namespace, asn_dns_zone_v4="")
    tracers = [make_tracer(redis=redis, namespace=redis_namespace, asn_dns_zone_v4="")
               for _ in range(3)] if redis else [one] * 3
    targets = [host(fake_dns, f"h{i}.example.com", f"185.15.{i}.1") for i in range(3)]
    start = threading.Barrier(3)
    results = {}

    def work(i):
        start.wait()
        results[i] = tracers[i].trace([targets[i]])[targets[i]]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert fake_rdap.queries_by_kind["ip"] == 1
    assert {r.addresses[0]["prefix"] for r in results.values()} == {"185.15.0.0/16"}
    assert all(r.outcome == TRACED for r in results.values())


def test_the_network_cache_is_shared_between_workers_through_redis(
    make_tracer, fake_dns, fake_rdap, redis_client, redis_namespace
):
    fake_rdap.add_network("185.14.0.0/16", records.ripe_network("185.14.0.0/16"))
    fake_dns.add_origin("185.14.0.0/16", asn=64500, country="NL")
    first = make_tracer(redis=redis_client, namespace=redis_namespace)
    second = make_tracer(redis=redis_client, namespace=redis_namespace)
    a = host(fake_dns, "a.example.com", "185.14.1.1")
    b = host(fake_dns, "b.example.com", "185.14.2.2")
    first.trace([a])
    dns_before = fake_dns.queries
    trace = second.trace([b])[b]
    assert fake_rdap.queries == 1
    assert trace.hosting_asn == 64500 and trace.hosting_country == "NL"
    assert fake_dns.queries - dns_before == 2  # A and AAAA of the new host only


def test_rdap_base_url_sends_every_query_to_that_one_server(make_tracer, fake_dns, fake_rdap):
    fake_rdap.add_network("185.15.0.0/16", records.ripe_network("185.15.0.0/16"))
    fake_rdap.add_domain("example.com", records.domain("example.com"))
    target = TraceTarget("www.example.com", "domain", "example.com")
    fake_dns.add_host("www.example.com", a=["185.15.0.1"])
    trace = make_tracer(asn_dns_zone_v4="", rdap_base_url=fake_rdap.url,
                        bootstrap_dir=None).trace([target])[target]
    assert fake_rdap.queries_by_registry == {"-": 2}
    assert sorted(fake_rdap.paths) == ["/domain/example.com", "/ip/185.15.0.1"]
    assert trace.addresses[0]["rir"] == "ripencc"  # still named from IANA's bootstrap
    assert trace.registrar == "Example Registrar, Inc."


def test_the_registrar_and_its_abuse_contact_come_from_domain_rdap(
    make_tracer, fake_dns, fake_rdap
):
    fake_rdap.add_network("185.16.0.0/16", records.ripe_network("185.16.0.0/16"))
    fake_rdap.add_domain("example.com", records.domain(
        "example.com", registrar="Registrar d.o.o.", registrar_abuse_email="abuse@reg.rs"))
    fake_dns.add_host("www.example.com", a=["185.16.0.1"])
    fake_dns.add_host("img.example.com", a=["185.16.0.2"])
    targets = [TraceTarget("www.example.com", "domain", "example.com"),
               TraceTarget("img.example.com", "domain", "example.com")]
    traces = make_tracer(asn_dns_zone_v4="").trace(targets)
    assert {(t.registrar, t.registrar_abuse_email) for t in traces.values()} == {
        ("Registrar d.o.o.", "abuse@reg.rs")}
    assert fake_rdap.queries_by_kind["domain"] == 1


def test_a_network_not_found_is_cached_briefly(make_tracer, fake_dns, fake_rdap):
    target = host(fake_dns, "www.example.com", "185.17.0.1")
    tracer = make_tracer(asn_dns_zone_v4="", negative_cache_seconds=300)
    first = tracer.trace([target])[target]
    assert first.origin_unknown and first.outcome == NETWORK_UNKNOWN
    assert "404" in (first.reason or "")
    tracer.trace([target])
    assert fake_rdap.queries == 1
    uncached = make_tracer(asn_dns_zone_v4="", negative_cache_seconds=0)
    uncached.trace([target])
    uncached.trace([target])
    assert fake_rdap.queries == 3


def test_malformed_json_marks_the_origin_unknown_with_the_reason(
    make_tracer, fake_dns, fake_rdap
):
    fake_rdap.add_network("185.18.0.0/16", records.ripe_network("185.18.0.0/16"))
    fake_rdap.fail("185.18.0.0/16", "malformed")
    target = host(fake_dns, "www.example.com", "185.18.0.1")
    trace = make_tracer(asn_dns_zone_v4="").trace([target])[target]
    assert trace.origin_unknown and trace.outcome == RDAP_MALFORMED
    assert "malformed JSON" in (trace.reason or "")


@pytest.mark.parametrize("retry_after", [None, "42"])
def test_rdap_429_is_a_passing_failure_with_the_servers_delay(
    make_tracer, fake_dns, fake_rdap, retry_after
):
    fake_rdap.add_network("185.19.0.0/16", records.ripe_network("185.19.0.0/16"))
    fake_rdap.fail("185.19.0.0/16", "429")
    fake_rdap.retry_after = retry_after
    target = host(fake_dns, "www.example.com", "185.19.0.1")
    tracer = make_tracer(asn_dns_zone_v4="")
    trace = tracer.trace([target])[target]
    assert trace.transient and "429" in trace.transient
    assert trace.retry_delay_ms == (42_000 if retry_after else 7_000)
    fake_rdap.heal("185.19.0.0/16")
    assert tracer.trace([target])[target].transient is None  # a 429 is never cached


def test_an_rdap_timeout_is_a_passing_failure(make_tracer, fake_dns, fake_rdap):
    fake_rdap.add_network("185.20.0.0/16", records.ripe_network("185.20.0.0/16"))
    fake_rdap.fail("185.20.0.0/16", "timeout")
    target = host(fake_dns, "www.example.com", "185.20.0.1")
    trace = make_tracer(asn_dns_zone_v4="", rdap_timeout_seconds=0.3).trace([target])[target]
    assert trace.transient and "timed out" in trace.transient


def test_registrars_are_asked_for_only_as_a_fallback_when_so_configured(
    make_tracer, fake_dns, fake_rdap
):
    fake_rdap.add_network("185.21.0.0/16", records.ripe_network("185.21.0.0/16"))
    fake_rdap.add_domain("hosted.com", records.domain("hosted.com"))
    fake_rdap.add_domain("gone.com", records.domain("gone.com"))
    fake_dns.add_host("www.hosted.com", a=["185.21.0.1"])
    fake_dns.fail("www.gone.com", "nxdomain")
    hosted = TraceTarget("www.hosted.com", "domain", "hosted.com")
    gone = TraceTarget("www.gone.com", "domain", "gone.com")
    traces = make_tracer(asn_dns_zone_v4="", registrar_lookup="fallback").trace([hosted, gone])
    assert traces[hosted].registrar is None  # the hosting provider can be told
    assert traces[gone].registrar == "Example Registrar, Inc."
    assert fake_rdap.paths.count("/verisign/domain/gone.com") == 1
    assert not any("hosted.com" in path for path in fake_rdap.paths)
    never = make_tracer(asn_dns_zone_v4="", registrar_lookup="never")
    assert never.trace([gone])[gone].registrar is None


@pytest.fixture
def redirector(fake_rdap):
    """A loopback RDAP redirector (as rdap.org is): 302 to the registry's server."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Redirect(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(302)
            self.send_header("Location", fake_rdap.url.rstrip("/") + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def test_a_redirector_as_rdap_base_url_is_followed_to_the_registry(
    make_tracer, fake_dns, fake_rdap, redirector
):
    fake_rdap.add_network("185.21.0.0/16", records.ripe_network("185.21.0.0/16"))
    fake_rdap.add_domain("example.com", records.domain("example.com"))
    target = TraceTarget("www.example.com", "domain", "example.com")
    fake_dns.add_host("www.example.com", a=["185.21.0.1"])
    trace = make_tracer(asn_dns_zone_v4="", rdap_base_url=redirector,
                        bootstrap_dir=None).trace([target])[target]
    assert sorted(fake_rdap.paths) == ["/domain/example.com", "/ip/185.21.0.1"]
    assert (trace.outcome, trace.addresses[0]["org"]) == (TRACED, "Example Hosting B.V.")
    assert trace.registrar == "Example Registrar, Inc."
    # The evidence names the URL asked, as before the redirect.
    assert all(a["url"].startswith(redirector) for a in trace.rdap_answers)


def test_an_unreachable_rdap_server_is_a_passing_failure(make_tracer, fake_dns):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = host(fake_dns, "www.example.com", "185.22.0.1")
    trace = make_tracer(asn_dns_zone_v4="", rdap_base_url=f"http://127.0.0.1:{port}/",
                        bootstrap_dir=None).trace([target])[target]
    assert trace.transient and "unreachable" in trace.transient
