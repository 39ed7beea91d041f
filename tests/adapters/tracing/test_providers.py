"""CDNs and big providers from rules/providers.yaml; jurisdiction."""

from __future__ import annotations

import pytest

from pipeline.adapters.tracing.providers import Provider, Providers
from pipeline.adapters.tracing.tracer import BEHIND_CDN, TraceTarget
from pipeline.core.errors import ConfigError
from tests.netfakes import records


def test_a_host_behind_a_cdn_is_marked_and_the_cdn_becomes_the_contact(
    make_tracer, fake_dns, fake_rdap
):
    # 104.16.0.0/13 is Cloudflare's in the shipped rules/providers.yaml.
    fake_rdap.add_network("104.16.0.0/12", records.arin_network(
        "104.16.0.0/12", org="Cloudflare, Inc.", abuse_email="abuse@cloudflare.com"))
    fake_dns.add_host("www.example.com", a=["104.16.1.1"], aaaa=["2606:4700::1"])
    target = TraceTarget("www.example.com", "domain", None)
    trace = make_tracer(asn_dns_zone_v4="", rdap_base_url=fake_rdap.url).trace([target])[target]
    assert trace.behind_cdn and trace.cdn_name == "cloudflare"
    assert trace.hosting_org == "Cloudflare"
    assert trace.outcome == BEHIND_CDN and trace.origin_unknown
    assert "origin server is hidden" in (trace.reason or "")
    assert trace.hosting_abuse_email == "abuse@cloudflare.com"
    assert trace.hosting_country == "US" and trace.country_source == "provider"
    assert [a["provider"] for a in trace.addresses] == ["cloudflare", "cloudflare"]


def test_a_provider_found_by_asn_overrides_the_country_and_abuse_contact(
    make_tracer, fake_dns, fake_rdap
):
    providers = Providers([Provider(name="bighost", kind="hosting", asns=[64600],
                                    abuse_email="abuse@bighost.example", country="DE",
                                    display_name="Big Host GmbH")])
    fake_rdap.add_network("185.30.0.0/16", records.ripe_network("185.30.0.0/16",
                                                                country="NL"))
    fake_dns.add_origin("185.30.0.0/16", asn=64600, country="NL")
    fake_dns.add_host("www.example.com", a=["185.30.0.1"])
    target = TraceTarget("www.example.com", "domain", None)
    trace = make_tracer(providers=providers).trace([target])[target]
    assert (trace.hosting_country, trace.country_source) == ("DE", "provider")
    assert trace.hosting_abuse_email == "abuse@bighost.example"
    assert trace.hosting_org == "Big Host GmbH"
    assert not trace.behind_cdn and not trace.origin_unknown
    assert trace.addresses[0]["country"] == "NL"  # the registry's answer is still kept


def test_the_country_comes_from_rdap_then_the_origin_zone_then_geoip(
    make_tracer, fake_dns, fake_rdap
):
    class FakeGeoIP:
        def country(self, address: str) -> str | None:
            return "SE"

        def close(self) -> None:
            pass

    # ARIN gives no country on a network.
    fake_rdap.add_network("23.40.0.0/16", records.arin_network("23.40.0.0/16"))
    fake_dns.add_host("a.example.com", a=["23.40.0.1"])
    fake_dns.add_host("b.example.com", a=["23.40.0.2"])
    fake_dns.add_origin("23.40.0.2/32", asn=64700, country="CA", rir="arin")
    tracer = make_tracer()
    tracer.geoip = FakeGeoIP()  # type: ignore[assignment]
    a = TraceTarget("a.example.com", "domain", None)
    b = TraceTarget("b.example.com", "domain", None)
    traces = tracer.trace([a, b])
    assert (traces[a].hosting_country, traces[a].country_source) == ("SE", "geoip")
    assert (traces[b].hosting_country, traces[b].country_source) == ("CA", "asn")


def test_the_shipped_providers_file_loads():
    providers = Providers.load("rules/providers.yaml")
    match = providers.match("151.101.1.1", None)
    assert match is not None and match.name == "fastly" and match.kind == "cdn"
    assert providers.match("185.1.1.1", 24940).name == "hetzner"  # type: ignore[union-attr]
    assert providers.match("185.1.1.1", None) is None


def test_a_providers_file_error_names_the_file_the_provider_and_the_field(tmp_path):
    file = tmp_path / "providers.yaml"
    file.write_text("providers:\n  - name: badcdn\n    kind: cdn\n    ranges: [not-a-range]\n"
                    "  - name: other\n    kind: teleport\n")
    with pytest.raises(ConfigError) as raised:
        Providers.load(file)
    problems = "\n".join(raised.value.problems)
    assert f"{file}: provider badcdn: ranges" in problems
    assert f"{file}: provider other: kind" in problems


def test_a_configured_geoip_database_that_cannot_be_read_stops_start_up(
    make_tracer, tmp_path
):
    with pytest.raises(ConfigError) as raised:
        make_tracer(geoip_database=str(tmp_path / "missing.mmdb"))
    assert "trace.geoip_database" in str(raised.value)


def test_the_most_specific_range_wins_and_every_address_matches_as_a_scan_would():
    """The lookup by prefix length gives what scanning every range (most specific
    first, then file order) gives, for the shipped file and nested ranges."""
    import ipaddress
    import random
    from pathlib import Path

    shipped = Providers.load(Path(__file__).resolve().parents[3] / "rules" / "providers.yaml")
    nested = Providers([
        Provider(name="wide", kind="hosting", ranges=["10.0.0.0/8", "2001:db8::/32"]),
        Provider(name="narrow", kind="cdn", ranges=["10.1.2.0/24", "2001:db8:1::/48"]),
        Provider(name="same", kind="hosting", ranges=["10.1.2.0/24"]),  # later: loses
    ])
    assert nested.match("10.1.2.3", None).name == "narrow"
    assert nested.match("10.9.9.9", None).name == "wide"
    assert nested.match("2001:db8:1::5", None).name == "narrow"
    assert nested.match("11.0.0.1", None) is None
    rng = random.Random(7)
    for providers in (shipped, nested):
        ranges = [(ipaddress.ip_network(r, strict=False), p) for p in providers.providers
                  for r in p.ranges]
        ranges.sort(key=lambda pair: pair[0].prefixlen, reverse=True)
        samples = [str(n.network_address + rng.randrange(n.num_addresses)) for n, _ in ranges
                   for _ in range(5)]
        samples += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(500)]
        for address in samples:
            ip = ipaddress.ip_address(address)
            expected = next((p for n, p in ranges if n.version == ip.version and ip in n), None)
            assert providers._match(address, None) is expected, address
