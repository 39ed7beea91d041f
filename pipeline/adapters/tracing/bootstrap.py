"""IANA's RDAP bootstrap data (RFC 9224): which server answers for an address, an ASN,
a top-level domain. Copies of IANA's ipv4.json, ipv6.json, asn.json and dns.json ship in
this folder; `trace.bootstrap_dir` points at fresher ones.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pipeline.core.errors import ConfigError

SHIPPED = Path(__file__).parent / "bootstrap"

# The five regional internet registries, by the host name of their RDAP service.
RIR_BY_HOST = {
    "rdap.db.ripe.net": "ripencc",
    "rdap.arin.net": "arin",
    "rdap.apnic.net": "apnic",
    "rdap.lacnic.net": "lacnic",
    "rdap.afrinic.net": "afrinic",
}

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _best_url(urls: list[str]) -> str:
    """RFC 9224: prefer https when a service lists several URLs."""
    for url in urls:
        if url.startswith("https://"):
            return url if url.endswith("/") else url + "/"
    url = urls[0]
    return url if url.endswith("/") else url + "/"


# RIR names found in a service URL's path (mirrors, test servers: http://host/ripe/).
RIR_BY_PATH = {"ripe": "ripencc", "ripencc": "ripencc", "arin": "arin", "apnic": "apnic",
               "lacnic": "lacnic", "afrinic": "afrinic"}


def registry_name(base_url: str) -> str:
    """A short name for a registry's RDAP service: the RIR name or the host name."""
    parts = urlsplit(base_url)
    host = parts.hostname or base_url
    if host in RIR_BY_HOST:
        return RIR_BY_HOST[host]
    for segment in parts.path.split("/"):
        if segment.lower() in RIR_BY_PATH:
            return RIR_BY_PATH[segment.lower()]
    return host


class Bootstrap:
    """Longest-prefix lookup of RDAP services for addresses, ASNs and domains."""

    def __init__(self, folder: Path | str | None = None):
        path = Path(folder) if folder else SHIPPED
        self.networks: list[tuple[IPNetwork, str]] = []
        self.asn_ranges: list[tuple[int, int, str]] = []
        self.tlds: dict[str, str] = {}
        for name in ("ipv4.json", "ipv6.json"):
            for entries, url in self._services(path / name):
                for entry in entries:
                    self.networks.append((ipaddress.ip_network(entry, strict=False), url))
        self.networks.sort(key=lambda pair: pair[0].prefixlen, reverse=True)
        for entries, url in self._services(path / "asn.json"):
            for entry in entries:
                low, _, high = entry.partition("-")
                self.asn_ranges.append((int(low), int(high or low), url))
        self.asn_ranges.sort()
        self._asn_lows = [low for low, _, _ in self.asn_ranges]
        for entries, url in self._services(path / "dns.json"):
            for entry in entries:
                self.tlds[entry.lower().rstrip(".")] = url

    @staticmethod
    def _services(file: Path) -> list[tuple[list[str], str]]:
        try:
            data: dict[str, Any] = json.loads(file.read_text(encoding="utf-8"))
            return [(list(entries), _best_url(list(urls)))
                    for entries, urls in data["services"]]
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise ConfigError([f"trace.bootstrap_dir: {file}: not an RDAP bootstrap file "
                               f"({exc})"]) from None

    def for_ip(self, address: str) -> str | None:
        ip = ipaddress.ip_address(address)
        for network, url in self.networks:
            if network.version == ip.version and ip in network:
                return url
        return None

    def for_asn(self, asn: int) -> str | None:
        index = bisect.bisect_right(self._asn_lows, asn) - 1
        if index >= 0:
            low, high, url = self.asn_ranges[index]
            if low <= asn <= high:
                return url
        return None

    def for_domain(self, domain: str) -> str | None:
        labels = domain.lower().rstrip(".").split(".")
        for i in range(len(labels)):  # the longest matching label sequence wins
            url = self.tlds.get(".".join(labels[i:]))
            if url:
                return url
        return None
