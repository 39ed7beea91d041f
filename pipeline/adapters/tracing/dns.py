"""DNS questions with dnspython against the configured resolvers.

Every A and AAAA answer is kept (not just one), with the CNAME chain, the name servers
of the registered domain, the resolver that answered and the answers as received.
Failures are outcomes, not exceptions: NXDOMAIN, SERVFAIL, timeout, no answer, and a
CNAME chain longer than configured each have their own name.
"""

from __future__ import annotations

import ipaddress
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import dns.exception
import dns.message
import dns.name
import dns.nameserver
import dns.query
import dns.rcode
import dns.rdatatype
import dns.resolver
import dns.reversename
import dns.rrset

from pipeline.adapters.tracing.breaker import (
    Breakers,
    RegistryUnreachable,
    ServerDown,
)
from pipeline.core.counters import DNS_QUERIES

# DNS outcomes (also trace outcomes when DNS is where tracing stopped).
OK = "ok"
NXDOMAIN = "nxdomain"
SERVFAIL = "servfail"
TIMEOUT = "dns_timeout"
NO_ANSWER = "no_answer"
CHAIN_TOO_LONG = "cname_chain_too_long"
DNS_ERROR = "dns_error"
# Every resolver's circuit is open: not a fact about the host.
UNREACHABLE = "registries_unreachable"

REASONS = {
    NXDOMAIN: "the host name does not exist (NXDOMAIN)",
    SERVFAIL: "the resolvers could not answer for the host (SERVFAIL)",
    TIMEOUT: "no resolver answered in time",
    NO_ANSWER: "the host name exists but has no A or AAAA address",
    CHAIN_TOO_LONG: "the CNAME chain is longer than trace.max_cname_chain",
    DNS_ERROR: "the host name cannot be asked about in DNS",
    UNREACHABLE: "origin unknown: registries unreachable (no DNS resolver answers)",
}


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass
class DnsResult:
    """What the resolvers said about one host name."""

    host: str
    outcome: str
    addresses: list[str] = field(default_factory=list)  # every A, then every AAAA
    cname_chain: list[str] = field(default_factory=list)
    nameservers: list[str] = field(default_factory=list)
    resolver: str | None = None  # "address:port" that answered
    ttl: int = 0
    raw: dict[str, Any] = field(default_factory=dict)  # per question: resolver, time, text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DnsResult:
        return cls(**data)


@dataclass(frozen=True)
class Answer:
    """One resolver's answer to one question: what is read of dnspython's
    `dns.resolver.Answer` (which `Resolver.resolve` gives without breakers)."""

    response: dns.message.Message
    chaining_result: dns.message.ChainingResult
    nameserver: str
    port: int

    @property
    def rrset(self) -> dns.rrset.RRset | None:
        return self.chaining_result.answer


class DnsClient:
    """Asks the configured resolvers; one instance is shared by every thread."""

    def __init__(
        self,
        resolvers: list[tuple[str, int]],
        *,
        timeout: float = 2.0,
        lifetime: float = 5.0,
        max_chain: int = 8,
        breakers: Breakers | None = None,
    ):
        self.resolver = _resolver(resolvers, timeout, lifetime)
        # With breakers, each resolver is asked on its own through its own breaker.
        self.breakers = breakers
        self.each = [(f"dns {_server(address, port)}", address, port)
                     for address, port in resolvers]
        self.timeout = timeout
        self.lifetime = lifetime
        self.max_chain = max_chain
        self.queries = 0  # questions asked (statistics; not exact under threads)

    def _ask(self, name: str, rdtype: str) -> Answer | dns.resolver.Answer:
        self.queries += 1
        try:
            answer = (self._ask_each(name, rdtype) if self.breakers is not None else
                      self.resolver.resolve(name, rdtype, search=False,
                                            raise_on_no_answer=False))
        except BaseException as exc:
            DNS_QUERIES.labels(rdtype, _query_outcome(exc)).inc()
            raise
        DNS_QUERIES.labels(rdtype, "ok" if answer.rrset is not None else "no_answer").inc()
        return answer

    def _ask_each(self, name: str, rdtype: str) -> Answer:
        """Ask the resolvers in order, each through its breaker, within the lifetime.
        Raises `RegistryUnreachable` when no resolver answered at all (each silent or
        with its circuit open): the case goes on and is traced again later."""
        assert self.breakers is not None
        deadline = time.monotonic() + self.lifetime
        failure: BaseException | None = None  # an answer that is a failure (SERVFAIL)
        silent: list[str] = []
        for server, address, port in self.each:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                return self.breakers.call(server, _ask_one, address, port, name, rdtype,
                                          min(left, self.timeout))
            except (RegistryUnreachable, ServerDown) as exc:
                silent.append(f"{server}: {exc}")
            except dns.resolver.NoNameservers as exc:  # it answered SERVFAIL: next one
                failure = exc
        if failure is not None:
            raise failure
        if silent:
            raise RegistryUnreachable(
                "dns", "registries unreachable: no DNS resolver answered ("
                + "; ".join(silent) + ")", int(self.breakers.reset_seconds * 1000))
        raise dns.exception.Timeout(timeout=self.lifetime)

    def resolve_host(self, host: str) -> DnsResult:
        """A and AAAA of `host`, following CNAMEs."""
        result = DnsResult(host=host, outcome=OK)
        ttls: list[int] = []
        for rdtype in ("A", "AAAA"):
            try:
                answer = self._ask(host, rdtype)
            except dns.resolver.NXDOMAIN as exc:
                result.raw[rdtype] = {"at": now_iso(), "error": "NXDOMAIN",
                                      "text": _responses_text(exc)}
                result.outcome = NXDOMAIN
                return result
            except dns.message.ChainTooLong:
                result.raw[rdtype] = {"at": now_iso(), "error": "chain too long"}
                result.outcome = CHAIN_TOO_LONG
                return result
            except dns.resolver.NoNameservers as exc:
                result.raw[rdtype] = {"at": now_iso(), "error": "SERVFAIL", "text": str(exc)}
                result.outcome = SERVFAIL
                return result
            except dns.exception.Timeout as exc:
                result.raw[rdtype] = {"at": now_iso(), "error": "timeout", "text": str(exc)}
                result.outcome = TIMEOUT
                return result
            except RegistryUnreachable as exc:
                result.raw[rdtype] = {"at": now_iso(), "error": "unreachable", "text": str(exc)}
                result.outcome = UNREACHABLE
                return result
            except (dns.exception.DNSException, ValueError) as exc:  # e.g. a label too long
                result.raw[rdtype] = {"at": now_iso(), "error": type(exc).__name__,
                                      "text": str(exc)}
                result.outcome = DNS_ERROR
                return result
            chain = answer.chaining_result.cnames
            result.raw[rdtype] = {
                "at": now_iso(),
                "resolver": f"{answer.nameserver}:{answer.port}",
                "text": answer.response.to_text(),
            }
            result.resolver = f"{answer.nameserver}:{answer.port}"
            if len(chain) > self.max_chain:
                result.outcome = CHAIN_TOO_LONG
                result.cname_chain = [rr[0].target.to_text() for rr in chain]
                return result
            if chain and not result.cname_chain:
                result.cname_chain = [rr[0].target.to_text().rstrip(".") for rr in chain]
            ttls.append(answer.chaining_result.minimum_ttl)
            if answer.rrset is not None:
                result.addresses.extend(rdata.address for rdata in answer.rrset)
        if not result.addresses:
            result.outcome = NO_ANSWER
        result.ttl = min(ttls) if ttls else 0
        return result

    def nameservers(self, domain: str) -> tuple[list[str], dict[str, Any], int]:
        """(name servers, raw answer, ttl) of a registered domain."""
        try:
            answer = self._ask(domain, "NS")
        except (dns.exception.DNSException, RegistryUnreachable) as exc:
            return [], {"at": now_iso(), "error": type(exc).__name__}, 0
        raw = {"at": now_iso(), "resolver": f"{answer.nameserver}:{answer.port}",
               "text": answer.response.to_text()}
        if answer.rrset is None:
            return [], raw, answer.chaining_result.minimum_ttl
        return (sorted(rdata.target.to_text().rstrip(".") for rdata in answer.rrset), raw,
                answer.chaining_result.minimum_ttl)

    def origin_asn(self, address: str, zone_v4: str, zone_v6: str) -> dict[str, Any] | None:
        """The Team Cymru style origin answer for `address`, or None if unknown.

        Raises `dns.exception.Timeout` when the resolvers do not answer in time.
        """
        ip = ipaddress.ip_address(address)
        zone = zone_v4 if ip.version == 4 else zone_v6
        if not zone:
            return None
        arpa = dns.reversename.from_address(address).to_text()
        suffix = ".in-addr.arpa." if ip.version == 4 else ".ip6.arpa."
        name = arpa[: -len(suffix)] + "." + zone.strip(".")
        try:
            answer = self._ask(name, "TXT")
        except (dns.resolver.NXDOMAIN, dns.resolver.NoNameservers):
            return None
        if answer.rrset is None:
            return None
        for rdata in answer.rrset:
            text = b"".join(rdata.strings).decode("ascii", "replace")
            parsed = parse_origin_txt(text)
            if parsed:
                parsed["raw"] = {"at": now_iso(), "question": name, "text": text,
                                 "resolver": f"{answer.nameserver}:{answer.port}"}
                return parsed
        return None


def _resolver(servers: list[tuple[str, int]], timeout: float,
              lifetime: float) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [dns.nameserver.Do53Nameserver(address, port)
                            for address, port in servers]
    resolver.timeout = timeout
    resolver.lifetime = lifetime
    resolver.retry_servfail = False
    resolver.cache = None
    return resolver


def _server(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def _ask_one(address: str, port: int, name: str, rdtype: str, timeout: float) -> Answer:
    """One resolver's answer, asked with dnspython's `dns.query` (UDP, then TCP when the
    answer is truncated) rather than its stub resolver: profiled against the loopback
    resolver, `Resolver.resolve` spent about as much CPU on its own bookkeeping as on
    the question, for one server asked once. The outcomes are the resolver's: an answer
    (its CNAME chain resolved; `dns.message.ChainTooLong` past dnspython's limit),
    `NXDOMAIN`, `YXDOMAIN`, and `NoNameservers` for any other rcode (SERVFAIL,
    REFUSED...) or a malformed answer. Silence (a timeout, a refused or failed
    connection) is `ServerDown`, which counts against the resolver's circuit."""
    qname = dns.name.from_text(name)
    request = dns.message.make_query(qname, rdtype)
    tcp = False
    try:
        response, tcp = dns.query.udp_with_fallback(
            request, address, timeout=timeout, port=port, ignore_unexpected=True,
            ignore_errors=True)
    except dns.exception.Timeout as exc:
        raise ServerDown(f"DNS resolver timed out: {exc}", cause=exc) from exc
    except (OSError, EOFError) as exc:
        raise ServerDown(f"DNS resolver unreachable: {exc}", cause=exc) from exc
    except dns.exception.FormError as exc:  # a malformed answer over TCP
        raise dns.resolver.NoNameservers(request=request,
                                         errors=[(address, True, port, exc, None)]) from exc
    rcode = response.rcode()
    if rcode == dns.rcode.NOERROR:
        assert isinstance(response, dns.message.QueryMessage)
        return Answer(response, response.resolve_chaining(), address, port)
    if rcode == dns.rcode.NXDOMAIN:
        raise dns.resolver.NXDOMAIN(qnames=[qname], responses={qname: response})
    if rcode == dns.rcode.YXDOMAIN:
        raise dns.resolver.YXDOMAIN()
    raise dns.resolver.NoNameservers(
        request=request, errors=[(address, tcp, port, dns.rcode.to_text(rcode), response)])


def _query_outcome(exc: BaseException) -> str:
    """The `hotline_dns_queries_total` outcome of a question that raised."""
    if isinstance(exc, dns.resolver.NXDOMAIN):
        return "nxdomain"
    if isinstance(exc, dns.resolver.NoNameservers):
        return "servfail"
    if isinstance(exc, dns.exception.Timeout):
        return "timeout"
    if isinstance(exc, RegistryUnreachable):
        return "unreachable"
    return "error"


def parse_origin_txt(text: str) -> dict[str, Any] | None:
    """'13335 | 104.16.0.0/13 | US | arin | 2014-03-28' -> fields (first ASN if several)."""
    parts = [p.strip() for p in text.split("|")]
    if len(parts) < 4:
        return None
    try:
        asn = int(parts[0].split()[0])
        prefix = str(ipaddress.ip_network(parts[1], strict=False))
    except (ValueError, IndexError):
        return None
    return {"asn": asn, "prefix": prefix, "country": (parts[2] or "").upper() or None,
            "rir": parts[3].lower() or None}


def _responses_text(exc: dns.resolver.NXDOMAIN) -> str:
    try:
        return "\n".join(r.to_text() for r in exc.responses().values())
    except Exception:  # older dnspython without responses()
        return str(exc)
