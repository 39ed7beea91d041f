"""The benchmark's synthetic reports: reproducible from a seed, skewed like real intake.

What a hotline sees, roughly: a few hosting networks and a few sites carry most of the
reports (Zipf-like), about 30% of reports repeat a URL already reported, usually
spelled differently (case, default port, fragment, IDN written in Unicode or
punycode, stray whitespace), a share of hosts are internationalised names, some URLs
are bare IP literals, and some input cannot be a URL at all.

`generate(n, seed)` returns the reports (as `ReportIn` field dicts) together with the
DNS answers and the RDAP networks the loopback servers need to answer for them, so the
trace stage sees realistic sharing of networks between hosts.
"""

from __future__ import annotations

import ipaddress
import itertools
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

DUPLICATE_SHARE = 0.30
REJECTED_SHARE = 0.04
IP_LITERAL_SHARE = 0.04
IDN_HOST_SHARE = 0.08

_TLDS = ["com", "net", "org", "rs", "de", "nl", "ru", "info", "xyz", "io"]
_IDN_LABELS = ["пример", "bücher", "straße", "ñandú", "zürich", "δοκιμή", "日本語", "çarşı"]
_IDN_TLDS = ["com", "de", "рф", "срб"]
_WORDS = ["gallery", "album", "photos", "view", "post", "thread", "img", "video", "forum",
          "u", "p", "files", "share", "board", "page"]
_COUNTRIES = ["US", "NL", "DE", "RU", "FR", "RS", "GB", "SE", "UA", "SG", "HK", "CA"]
_CHANNELS = (["web"] * 60 + ["api"] * 15 + ["partner"] * 15 + ["email"] * 5 + ["phone"] * 2
             + ["app"] * 3)
_CATEGORIES = (["csam"] * 55 + ["self_generated_csam"] * 8 + ["child_erotica"] * 7
               + ["hate_speech"] * 10 + ["racism_xenophobia"] * 4 + ["sextortion"] * 3
               + ["phishing"] * 3 + ["other"] * 5 + [None] * 5)
_REJECTED = [
    "ftp://files.example.com/a.zip", "javascript:alert(1)", "mailto:abuse@example.com",
    "not a url at all", "http://", "https://:80/x", "file:///etc/passwd", "data:text/html,hi",
    "http:///path-without-host", "gopher://old.example.org/1",
]


@dataclass(frozen=True)
class Network:
    """One RDAP network: a prefix of one organisation."""

    prefix: str
    asn: int
    org: str
    country: str
    abuse_email: str

    def address(self, index: int) -> str:
        net = ipaddress.ip_network(self.prefix)
        return str(net.network_address + 1 + index % (net.num_addresses - 2))


@dataclass
class Workload:
    seed: int
    reports: list[dict[str, Any]]
    # DNS: ASCII (punycode) host name -> IPv4 addresses.
    hosts: dict[str, list[str]]
    networks: list[Network]
    # What kind each report was generated as (unique, exact, variant, rejected...).
    kinds: list[str] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return dict(Counter(self.kinds))

    def summary(self) -> dict[str, Any]:
        kinds = self.counts()
        n = len(self.reports) or 1
        return {
            "reports": len(self.reports),
            "seed": self.seed,
            "kinds": kinds,
            "duplicate_share": round((kinds.get("exact", 0) + kinds.get("variant", 0)) / n, 3),
            "hosts": len(self.hosts),
            "networks": len(self.networks),
        }


def _zipf_weights(count: int, exponent: float) -> list[float]:
    weights = [1.0 / (rank**exponent) for rank in range(1, count + 1)]
    return list(itertools.accumulate(weights))


def _networks(rng: random.Random, count: int) -> list[Network]:
    """Networks in public-looking ranges (answered only by the loopback RDAP server)."""
    asns = [64_500 + i for i in range(max(4, count // 3))]
    asn_weights = _zipf_weights(len(asns), 1.1)
    out = []
    for index in range(count):
        first = 45 + (index // 256) % 150
        second = index % 256
        size = rng.choice([24, 24, 24, 22, 20])
        prefix = ipaddress.ip_network(f"{first}.{second}.0.0/{size}", strict=False)
        asn = rng.choices(asns, cum_weights=asn_weights)[0]
        out.append(Network(
            prefix=str(prefix), asn=asn, org=f"Hosting Provider {asn}",
            country=_COUNTRIES[asn % len(_COUNTRIES)],
            abuse_email=f"abuse@as{asn}.example.net",
        ))
    return out


def _host_name(rng: random.Random, index: int) -> tuple[str, str]:
    """(name as reported, ASCII name the DNS answers for)."""
    if rng.random() < IDN_HOST_SHARE:
        label = f"{rng.choice(_IDN_LABELS)}{index}"
        tld = rng.choice(_IDN_TLDS)
        unicode_name = f"{label}.{tld}"
        return unicode_name, unicode_name.encode("idna").decode("ascii")
    prefix = rng.choice(["", "", "www.", "img.", "cdn.", "m."])
    name = f"{prefix}site-{index}.{rng.choice(_TLDS)}"
    return name, name


def _path(rng: random.Random) -> str:
    parts = [rng.choice(_WORDS) for _ in range(rng.randint(1, 3))]
    path = "/" + "/".join(parts) + f"/{rng.randrange(10**7)}"
    if rng.random() < 0.4:
        path += rng.choice([".html", ".jpg", ".php", "/"])
    if rng.random() < 0.3:
        path += f"?id={rng.randrange(10**6)}"
        if rng.random() < 0.3:
            path += f"&page={rng.randint(1, 40)}"
    return path


def _variant(rng: random.Random, url: str, host: str, ascii_host: str) -> str:
    """The same URL spelled differently, as different reporters write it."""
    scheme, rest = url.split("://", 1)
    path = rest[len(host):]
    choice = rng.randrange(7)
    if choice == 0:
        return f"{scheme.upper()}://{host.upper()}{path}"
    if choice == 1:
        port = ":443" if scheme == "https" else ":80"
        return f"{scheme}://{host}{port}{path}"
    if choice == 2:
        return f"{url}#{rng.choice(['top', 'comments', 'img-3', 'x'])}"
    if choice == 3:
        return f"  {url}\t"
    if choice == 4 and ascii_host != host:
        return f"{scheme}://{ascii_host}{path}"
    if choice == 5 and "?" not in path:
        return f"{scheme}://{host}{path}?"
    return f"{scheme}://{host.capitalize()}{path}"


def generate(n: int, seed: int = 20_260_105) -> Workload:
    """`n` synthetic reports with the skew described in the module docstring."""
    rng = random.Random(seed)
    networks = _networks(rng, max(16, n // 1000))
    net_weights = _zipf_weights(len(networks), 1.2)
    host_count = max(40, n // 8)
    hosts: list[tuple[str, str]] = []
    dns: dict[str, list[str]] = {}
    for index in range(host_count):
        name, ascii_name = _host_name(rng, index)
        if ascii_name in dns:
            continue
        net = rng.choices(networks, cum_weights=net_weights)[0]
        addresses = [net.address(rng.randrange(1 << 16))]
        if rng.random() < 0.2:  # some hosts answer with two addresses in the same network
            addresses.append(net.address(rng.randrange(1 << 16)))
        hosts.append((name, ascii_name))
        dns[ascii_name] = addresses
    host_weights = _zipf_weights(len(hosts), 1.05)

    reports: list[dict[str, Any]] = []
    kinds: list[str] = []
    seen: list[tuple[str, str, str]] = []  # (url, host as written, ascii host)
    for _ in range(n):
        roll = rng.random()
        if roll < REJECTED_SHARE:
            url, kind = rng.choice(_REJECTED), "rejected"
        elif roll < REJECTED_SHARE + DUPLICATE_SHARE and seen:
            # Popular URLs are reported again more often: bias towards the first ones.
            original, host, ascii_host = seen[min(int(rng.paretovariate(1.0)) - 1 +
                                                  rng.randrange(len(seen)) // 4,
                                                  len(seen) - 1)]
            if rng.random() < 0.35:
                url, kind = original, "exact"
            else:
                url, kind = _variant(rng, original, host, ascii_host), "variant"
        elif roll < REJECTED_SHARE + DUPLICATE_SHARE + IP_LITERAL_SHARE:
            net = rng.choices(networks, cum_weights=net_weights)[0]
            host = net.address(rng.randrange(1 << 16))
            url, kind = f"http://{host}{_path(rng)}", "ip_literal"
            seen.append((url, host, host))
        else:
            host, ascii_host = rng.choices(hosts, cum_weights=host_weights)[0]
            scheme = "https" if rng.random() < 0.7 else "http"
            url = f"{scheme}://{host}{_path(rng)}"
            kind = "idn" if host != ascii_host else "unique"
            seen.append((url, host, ascii_host))
        report: dict[str, Any] = {
            "url": url,
            "channel": rng.choice(_CHANNELS),
            "claimed_category": rng.choice(_CATEGORIES),
        }
        if rng.random() < 0.3:
            report["description"] = f"Seen in a forum thread, page {rng.randint(1, 99)}."
        if rng.random() < 0.01:
            report["urgent"] = True
        reports.append(report)
        kinds.append(kind)
    return Workload(seed=seed, reports=reports, hosts=dns, networks=networks, kinds=kinds)
