"""A tracing workload for the benchmark: many hosts sharing a few networks.

    with FakeDNS() as dns, FakeRDAP() as rdap:
        hosts = shared_networks(dns, rdap, hosts=5_000, networks=50)
        settings: {"trace": trace_config(dns, rdap)}
        ... report URLs such as f"http://{hosts[i % len(hosts)]}/page{i}"
        rdap.queries  -> RDAP questions answered (print per 1,000 reports)
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tests.netfakes import records
from tests.netfakes.dns_server import FakeDNS
from tests.netfakes.rdap_server import FakeRDAP

_SHAPES = [records.ripe_network, records.arin_network, records.apnic_network,
           records.lacnic_network]


def shared_networks(dns: FakeDNS, rdap: FakeRDAP, *, hosts: int = 1_000,
                    networks: int = 20, domain: str = "bench.test") -> list[str]:
    """Populate both servers: `networks` /24s (one RDAP answer and one origin each),
    `hosts` host names spread over them, all under `domain` (with its registrar answer).
    Returns the host names. Tracing them costs `networks` + 1 RDAP questions."""
    names: list[str] = []
    dns.add_ns(domain, ["ns1.bench.test", "ns2.bench.test"])
    rdap.add_domain(domain, records.domain(domain))
    for n in range(networks):
        prefix = f"185.{n // 250}.{n % 250}.0/24"
        shape = _SHAPES[n % len(_SHAPES)]
        rdap.add_network(prefix, shape(prefix))
        dns.add_origin(prefix, asn=64_512 + n, country="NL", rir="ripencc")
    for h in range(hosts):
        n = h % networks
        network = ipaddress.ip_network(f"185.{n // 250}.{n % 250}.0/24")
        address = str(network.network_address + 1 + (h // networks) % 250)
        name = f"h{h}.{domain}"
        dns.add_host(name, a=[address])
        names.append(name)
    return names


def trace_config(dns: FakeDNS, rdap: FakeRDAP, **overrides: Any) -> dict[str, Any]:
    """A `trace` configuration section pointing at the two servers."""
    return {"resolvers": [dns.resolver], "rdap_base_url": rdap.url,
            "dns_timeout_seconds": 1.0, "dns_lifetime_seconds": 2.0,
            "rdap_timeout_seconds": 2.0, "rdap_rate_per_second": 1_000,
            "rdap_burst": 100, **overrides}
