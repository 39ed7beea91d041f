"""DNS questions with dnspython against the configured resolvers.

Every A and AAAA answer is kept (not just one), with the CNAME chain, the name servers
of the registered domain, the resolver that answered and the answers as received.
Failures are outcomes, not exceptions: NXDOMAIN, SERVFAIL, timeout, no answer, and a
CNAME chain longer than configured each have their own name.
"""

from __future__ import annotations

import collections
import ipaddress
import selectors
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import dns.exception
import dns.inet
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


# What a failed question makes of a host's resolution, first match: (exception, the
# outcome, what its answer records as the error; None: the exception's name).
_FAILURES: list[tuple[type[BaseException], str, str | None]] = [
    (dns.resolver.NXDOMAIN, NXDOMAIN, "NXDOMAIN"),
    (dns.message.ChainTooLong, CHAIN_TOO_LONG, "chain too long"),
    (dns.resolver.NoNameservers, SERVFAIL, "SERVFAIL"),
    (dns.exception.Timeout, TIMEOUT, "timeout"),
    (RegistryUnreachable, UNREACHABLE, "unreachable"),
    (dns.exception.DNSException, DNS_ERROR, None),  # e.g. a label too long
    (ValueError, DNS_ERROR, None),
]


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
        raise self._unanswered(failure, silent)

    def _unanswered(self, failure: BaseException | None, silent: list[str]) -> BaseException:
        """Why no resolver gave an answer: the last one's failure (SERVFAIL), or that
        none answered at all, or that the lifetime ran out before any was asked."""
        assert self.breakers is not None
        if failure is not None:
            return failure
        if silent:
            return RegistryUnreachable(
                "dns", "registries unreachable: no DNS resolver answered ("
                + "; ".join(silent) + ")", int(self.breakers.reset_seconds * 1000))
        return dns.exception.Timeout(timeout=self.lifetime)

    def ask_many(self, questions: Sequence[tuple[str, str]], *, window: int = 16,
                 then: Callable[[int, Answer | BaseException], Any] | None = None,
                 ) -> list[Any]:
        """What `_ask` gives each (name, type) question, the answer or the exception
        it raises, the questions asked side by side from this thread
        (`_ask_side_by_side`) rather than each from a thread of its own: profiled on the
        benchmark, a thread pool's hand-offs cost a worker as much CPU as the
        questions did. Each question goes to the resolvers in turn, through their
        breakers, within the lifetime, as `_ask_each` asks one. Needs the breakers.

        With `then`, what `then(index, outcome)` makes of each question's outcome, as
        soon as it is settled: the answers (whole DNS messages) are not all held until
        the last one comes."""
        assert self.breakers is not None
        keep = then if then is not None else (lambda _index, outcome: outcome)
        out: list[Any] = [None] * len(questions)

        def settled(question: _Question) -> None:
            outcome = (question.outcome if question.outcome is not None
                       else self._unanswered(question.failure, question.silent))
            question.outcome, question.done = None, True
            self.queries += 1
            DNS_QUERIES.labels(question.rdtype, _query_outcome(outcome)
                               if isinstance(outcome, BaseException) else
                               "ok" if outcome.rrset is not None else "no_answer").inc()
            out[question.index] = keep(question.index, outcome)

        asked = [_Question(index, name, rdtype)
                 for index, (name, rdtype) in enumerate(questions)]
        _ask_side_by_side(self.breakers, self.each, self.timeout, self.lifetime, asked,
                          window, settled)
        for question in asked:
            if not question.done:
                settled(question)
        return out

    def resolve_host(self, host: str) -> DnsResult:
        """A and AAAA of `host`, following CNAMEs."""
        result, ttls = DnsResult(host=host, outcome=OK), list[int]()
        for rdtype in ("A", "AAAA"):
            if not self._take(result, rdtype, self._outcome(host, rdtype), ttls):
                return result
        return self._finish(result, ttls)

    def resolve_hosts(self, hosts: Sequence[str], *, window: int = 16) -> list[DnsResult]:
        """`resolve_host` of each of `hosts`, asked side by side on this thread
        (`ask_many`): every A question, then AAAA for the hosts whose A did not end
        them, as `resolve_host` asks one host. Needs the breakers (without them the
        tracer asks one host per thread of its pool)."""
        results = {host: DnsResult(host=host, outcome=OK) for host in hosts}
        ttls: dict[str, list[int]] = {host: [] for host in hosts}
        going = list(results)
        for rdtype in ("A", "AAAA"):

            def take(i: int, answer: Answer | BaseException, asked: list[str] = going,
                     rdtype: str = rdtype) -> bool:
                return self._take(results[asked[i]], rdtype, answer, ttls[asked[i]])

            went_on = self.ask_many([(host, rdtype) for host in going], window=window,
                                    then=take)
            going = [host for host, on in zip(going, went_on, strict=True) if on]
        for host in going:
            self._finish(results[host], ttls[host])
        return [results[host] for host in hosts]

    def _outcome(self, name: str, rdtype: str) -> Answer | dns.resolver.Answer | Exception:
        """`_ask`'s answer, or the exception it raised."""
        try:
            return self._ask(name, rdtype)
        except Exception as exc:
            return exc

    def _take(self, result: DnsResult, rdtype: str,
              answer: Answer | dns.resolver.Answer | BaseException, ttls: list[int]) -> bool:
        """Record the answer to `rdtype` in `result`; False when it ends the host's
        resolution (a failure, or a CNAME chain too long)."""
        if isinstance(answer, BaseException):
            outcome, label = next(((outcome, label) for kind, outcome, label in _FAILURES
                                   if isinstance(answer, kind)), (None, None))
            if outcome is None:
                raise answer
            result.outcome = outcome
            result.raw[rdtype] = {"at": now_iso(), "error": label or type(answer).__name__}
            if isinstance(answer, dns.resolver.NXDOMAIN):
                result.raw[rdtype]["text"] = _responses_text(answer)
            elif outcome != CHAIN_TOO_LONG:
                result.raw[rdtype]["text"] = str(answer)
            return False
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
            return False
        if chain and not result.cname_chain:
            result.cname_chain = [rr[0].target.to_text().rstrip(".") for rr in chain]
        ttls.append(answer.chaining_result.minimum_ttl)
        if answer.rrset is not None:
            result.addresses.extend(rdata.address for rdata in answer.rrset)
        return True

    @staticmethod
    def _finish(result: DnsResult, ttls: list[int]) -> DnsResult:
        if not result.addresses:
            result.outcome = NO_ANSWER
        result.ttl = min(ttls) if ttls else 0
        return result

    def nameservers(self, domain: str) -> tuple[list[str], dict[str, Any], int]:
        """(name servers, raw answer, ttl) of a registered domain."""
        return self._nameservers_of(self._outcome(domain, "NS"))

    def nameservers_many(self, domains: Sequence[str], *, window: int = 16,
                         ) -> list[tuple[list[str], dict[str, Any], int]]:
        """`nameservers` of each of `domains`, asked side by side (`ask_many`). Needs
        the breakers."""
        return self.ask_many([(domain, "NS") for domain in domains], window=window,
                             then=lambda _index, answer: self._nameservers_of(answer))

    @staticmethod
    def _nameservers_of(answer: Answer | dns.resolver.Answer | BaseException,
                        ) -> tuple[list[str], dict[str, Any], int]:
        if isinstance(answer, (dns.exception.DNSException, RegistryUnreachable)):
            return [], {"at": now_iso(), "error": type(answer).__name__}, 0
        if isinstance(answer, BaseException):
            raise answer
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
    request = dns.message.make_query(dns.name.from_text(name), rdtype)
    try:
        response, tcp = dns.query.udp_with_fallback(
            request, address, timeout=timeout, port=port, ignore_unexpected=True,
            ignore_errors=True)
    except (dns.exception.Timeout, OSError, EOFError, dns.exception.FormError) as exc:
        raise _network_failure(exc, request, address, port) from exc
    return _answer(request, response, address, port, tcp)


def _network_failure(exc: BaseException, request: dns.message.Message, address: str,
                     port: int) -> BaseException:
    """What a failure to get an answer means: silence (`ServerDown`) or, for a
    malformed answer over TCP, the resolver's failure (`NoNameservers`)."""
    if isinstance(exc, dns.exception.Timeout):
        return ServerDown(f"DNS resolver timed out: {exc}", cause=exc)
    if isinstance(exc, (OSError, EOFError)):
        return ServerDown(f"DNS resolver unreachable: {exc}", cause=exc)
    return dns.resolver.NoNameservers(request=request, errors=[(address, True, port, exc, None)])


def _answer(request: dns.message.Message, response: dns.message.Message, address: str,
            port: int, tcp: bool) -> Answer:
    """The answer in `response`, or the exception its rcode means."""
    rcode = response.rcode()
    if rcode == dns.rcode.NOERROR:
        assert isinstance(response, dns.message.QueryMessage)
        return Answer(response, response.resolve_chaining(), address, port)
    if rcode == dns.rcode.NXDOMAIN:
        qname = request.question[0].name
        raise dns.resolver.NXDOMAIN(qnames=[qname], responses={qname: response})
    if rcode == dns.rcode.YXDOMAIN:
        raise dns.resolver.YXDOMAIN()
    raise dns.resolver.NoNameservers(
        request=request, errors=[(address, tcp, port, dns.rcode.to_text(rcode), response)])


@dataclass
class _Question:
    """One question of `DnsClient.ask_many`, as the resolvers are asked in turn."""

    index: int  # in the batch
    name: str
    rdtype: str
    resolver: int = 0  # the index of the resolver to ask next
    deadline: float | None = None  # set when first asked: then + the lifetime
    outcome: Answer | BaseException | None = None  # settled: what `_ask` gives
    failure: BaseException | None = None  # a resolver's SERVFAIL: the next one is asked
    silent: list[str] = field(default_factory=list)  # resolvers that did not answer
    done: bool = False  # its outcome handed on (`DnsClient.ask_many`)


@dataclass
class _InFlight:
    question: _Question
    request: dns.message.Message
    server: str
    address: str
    port: int
    family: int
    destination: Any  # the socket address the answer must come from
    expires: float


def _ask_side_by_side(breakers: Breakers, resolvers: list[tuple[str, str, int]],
                      timeout: float, lifetime: float, questions: list[_Question],
                      window: int, settled: Callable[[_Question], None]) -> None:
    """Ask `questions` over UDP from this thread, at most `window` in flight, each on
    a socket of its own (a source port of its own, as `dns.query.udp` gives), and
    settle each as `DnsClient._ask_each` would: the resolvers (server name, address,
    port) in order, each through its breaker, the next one asked as soon as one is
    silent or answers SERVFAIL, all within the lifetime from the question's first
    asking. An answer from another address, not answering the question, or malformed
    is ignored while the question waits; a truncated answer is asked again over TCP.
    `settled` gets each question as soon as its outcome is known; one left unsettled
    had no resolver left in its lifetime."""
    ready = collections.deque(questions)
    # Per resolver, once: its address family and socket address.
    sockaddrs = [(family := dns.inet.af_for_address(address),
                  dns.inet.low_level_address_tuple((address, port), family))
                 for _, address, port in resolvers]
    with selectors.DefaultSelector() as selector:

        def attempted(question: _Question, server: str,
                      outcome: Answer | BaseException) -> None:
            _settle(breakers, server, question, outcome)
            if question.outcome is None:  # silent or SERVFAIL: the next resolver, now
                question.resolver += 1
                ready.appendleft(question)
            else:
                settled(question)

        def settle(key: selectors.SelectorKey, outcome: Answer | BaseException) -> None:
            selector.unregister(key.fileobj)
            key.fileobj.close()  # type: ignore[union-attr]
            attempted(key.data.question, key.data.server, outcome)

        def launch() -> None:
            while ready and len(selector.get_map()) < window:
                question = ready.popleft()
                now = time.monotonic()
                if question.deadline is None:
                    question.deadline = now + lifetime
                left = question.deadline - now
                if question.resolver >= len(resolvers) or left <= 0:
                    continue
                server, address, port = resolvers[question.resolver]
                try:
                    breakers.admit(server)
                except RegistryUnreachable as exc:
                    question.silent.append(f"{server}: {exc}")
                    question.resolver += 1
                    ready.appendleft(question)
                    continue
                try:
                    request = dns.message.make_query(dns.name.from_text(question.name),
                                                     question.rdtype)
                    wire = request.to_wire()
                except Exception as exc:  # e.g. a label too long
                    attempted(question, server, exc)
                    continue
                family, destination = sockaddrs[question.resolver]
                sock = socket.socket(family, socket.SOCK_DGRAM)
                try:
                    sock.setblocking(False)
                    sock.sendto(wire, destination)
                except OSError as exc:
                    sock.close()
                    attempted(question, server, _network_failure(exc, request, address, port))
                    continue
                selector.register(sock, selectors.EVENT_READ, _InFlight(
                    question, request, server, address, port, family, destination,
                    now + min(left, timeout)))

        try:
            launch()
            while selector.get_map():
                due = min(key.data.expires for key in selector.get_map().values())
                for key, _ in selector.select(max(0.0, due - time.monotonic())):
                    try:
                        wire, source = key.fileobj.recvfrom(65535)  # type: ignore[union-attr]
                    except BlockingIOError:
                        continue
                    except OSError as exc:
                        sent = key.data
                        settle(key, _network_failure(exc, sent.request, sent.address,
                                                     sent.port))
                        continue
                    outcome = _received(key.data, wire, source)
                    if outcome is not None:
                        settle(key, outcome)
                now = time.monotonic()
                for key in [k for k in selector.get_map().values() if k.data.expires <= now]:
                    settle(key, _network_failure(dns.exception.Timeout(), key.data.request,
                                                 key.data.address, key.data.port))
                launch()
        except BaseException:  # interrupted: what is in flight is abandoned
            for key in list(selector.get_map().values()):
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
                breakers.abandon(key.data.server)
            raise


def _received(sent: _InFlight, wire: bytes, source: Any) -> Answer | BaseException | None:
    """The outcome `wire` gives the question sent, or None when it is to be ignored
    (as `dns.query.udp` ignores, with `ignore_unexpected` and `ignore_errors`)."""
    if (dns.inet.inet_pton(sent.family, source[0])
            != dns.inet.inet_pton(sent.family, sent.address) or source[1] != sent.port):
        return None
    try:
        response = dns.message.from_wire(wire, raise_on_truncation=True)
    except dns.message.Truncated as exc:
        if not sent.request.is_response(exc.message()):
            return None
        try:
            response = dns.query.tcp(sent.request, sent.address, port=sent.port,
                                     timeout=max(sent.expires - time.monotonic(), 0.001))
        except (dns.exception.Timeout, OSError, EOFError, dns.exception.FormError) as failed:
            return _network_failure(failed, sent.request, sent.address, sent.port)
        return _answer_or_exception(sent.request, response, sent.address, sent.port, True)
    except Exception:
        return None
    if not sent.request.is_response(response):
        return None
    return _answer_or_exception(sent.request, response, sent.address, sent.port, False)


def _answer_or_exception(request: dns.message.Message, response: dns.message.Message,
                         address: str, port: int, tcp: bool) -> Answer | BaseException:
    try:
        return _answer(request, response, address, port, tcp)
    except Exception as exc:
        return exc


def _settle(breakers: Breakers, server: str, question: _Question,
            outcome: Answer | BaseException) -> None:
    """Count the outcome against the resolver's breaker and keep what it means for
    the question, as `DnsClient._ask_each` does with what `Breakers.call` raises."""
    meant = breakers.settle(server, None if isinstance(outcome, Answer) else outcome)
    if meant is None:
        question.outcome = outcome
    elif isinstance(meant, (RegistryUnreachable, ServerDown)):
        question.silent.append(f"{server}: {meant}")
    elif isinstance(meant, dns.resolver.NoNameservers):
        question.failure = meant
    else:
        question.outcome = meant


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
