"""A DNS server on loopback (dnslib) answering like a recursive resolver for test zones.

    with FakeDNS() as dns:
        dns.add_host("www.example.com", a=["192.0.2.1"], aaaa=["2001:db8::1"])
        dns.add_cname("alias.example.com", "www.example.com")
        dns.add_origin("192.0.2.0/24", asn=64500, country="NL", rir="ripencc")
        dns.fail("broken.example.com", "servfail")   # or nxdomain, timeout
        ... resolvers = [("127.0.0.1", dns.port)]
        dns.queries   # questions answered (timeouts not counted)

CNAME chains are followed in the answer as a recursive resolver does. TXT questions
under the origin zone (Team Cymru style) are answered from `add_origin`.
"""

from __future__ import annotations

import errno
import ipaddress
import socketserver
import threading
from collections import Counter
from typing import Any

from dnslib import AAAA, CNAME, NS, QTYPE, RCODE, RR, TXT, A, DNSRecord
from dnslib.server import BaseResolver, DNSError, DNSServer

ORIGIN_ZONE_V4 = "origin.asn.cymru.com"
ORIGIN_ZONE_V6 = "origin6.asn.cymru.com"


class _SerialUDPServer(socketserver.UDPServer):
    allow_reuse_address = True


class _QuietLogger:
    def __getattr__(self, name: str) -> Any:
        return lambda *args, **kwargs: None


class _Resolver(BaseResolver):
    def __init__(self, fake: FakeDNS):
        self.fake = fake

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        reply = self.fake._answer(request)
        limit = self.fake.udp_limit
        if limit and handler.protocol == "udp" and len(reply.pack()) > limit:
            reply = request.reply()  # the question kept, no answers, TC set
            reply.header.tc = 1
        return reply


class FakeDNS:
    """`udp_limit`: answers over UDP longer than this many bytes are truncated (TC set)
    and the same port answers over TCP too, as a resolver does for large answers."""

    def __init__(self, address: str = "127.0.0.1", port: int = 0, ttl: int = 300,
                 udp_limit: int = 0):
        self.address = address
        self.ttl = ttl
        self.records: dict[str, dict[str, list[str]]] = {}
        # Every name that exists: the records' owners and their parents (a parent
        # without records of its own answers NOERROR with no data, not NXDOMAIN).
        self._existing: set[str] = set()
        self.cnames: dict[str, str] = {}
        self.faults: dict[str, str] = {}
        self.origins: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        self.queries = 0
        self.by_type: Counter[str] = Counter()
        self._lock = threading.Lock()
        # One thread answers every question: cheaper than a thread per packet.
        self.udp_limit = udp_limit
        # TCP on the UDP port the system chose: that port may be taken for TCP (another
        # test process's connection), so a new pair is tried then.
        for attempt in range(20):
            self._server = DNSServer(_Resolver(self), port=port, address=address,
                                     logger=_QuietLogger(), server=_SerialUDPServer)
            self.port: int = self._server.server.server_address[1]
            try:
                self._tcp = (DNSServer(_Resolver(self), port=self.port, address=address,
                                       logger=_QuietLogger(), tcp=True)
                             if udp_limit else None)
                break
            except OSError as exc:
                self._server.server.server_close()
                if exc.errno != errno.EADDRINUSE or port or attempt == 19:
                    raise

    # -- zones -----------------------------------------------------------------------

    def add_host(self, name: str, *, a: list[str] | None = None,
                 aaaa: list[str] | None = None) -> None:
        entry = self._entry(name)
        if a:
            entry["A"] = list(a)
        if aaaa:
            entry["AAAA"] = list(aaaa)

    def add_ns(self, domain: str, servers: list[str]) -> None:
        self._entry(domain)["NS"] = list(servers)

    def _entry(self, name: str) -> dict[str, list[str]]:
        labels = _n(name).split(".")
        self._existing.update(".".join(labels[i:]) for i in range(len(labels)))
        return self.records.setdefault(_n(name), {})

    def add_cname(self, name: str, target: str) -> None:
        self.cnames[_n(name)] = _n(target)

    def add_chain(self, name: str, length: int, *, a: str = "192.0.2.1") -> str:
        """A CNAME chain of `length` links from `name` to a host with address `a`."""
        current = _n(name)
        for i in range(length):
            nxt = f"link{i}.{current}" if i == 0 else f"link{i}.{_n(name)}"
            self.cnames[current] = nxt
            current = nxt
        self.add_host(current, a=[a])
        return current

    def add_origin(self, prefix: str, *, asn: int, country: str = "", rir: str = "ripencc",
                   date: str = "2010-01-01") -> None:
        text = f"{asn} | {ipaddress.ip_network(prefix)} | {country} | {rir} | {date}"
        self.origins.append((ipaddress.ip_network(prefix), text))
        self.origins.sort(key=lambda pair: pair[0].prefixlen, reverse=True)

    def fail(self, name: str, how: str) -> None:
        """Make questions about `name` fail: 'nxdomain', 'servfail', 'refused' or
        'timeout'."""
        assert how in ("nxdomain", "servfail", "refused", "timeout"), how
        self.faults[_n(name)] = how

    # -- serving ---------------------------------------------------------------------

    def _answer(self, request: DNSRecord) -> DNSRecord:
        qname = _n(str(request.q.qname))
        qtype = QTYPE[request.q.qtype]
        fault = self.faults.get(qname)
        if fault == "timeout":
            raise DNSError("injected timeout")  # dnslib then sends nothing
        with self._lock:
            self.queries += 1
            self.by_type[qtype] += 1
        reply = request.reply()
        if fault in ("servfail", "refused"):
            reply.header.rcode = RCODE.SERVFAIL if fault == "servfail" else RCODE.REFUSED
            return reply
        if fault == "nxdomain":
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        if qtype == "TXT" and (qname.endswith("." + ORIGIN_ZONE_V4)
                               or qname.endswith("." + ORIGIN_ZONE_V6)):
            return self._origin(reply, qname)
        name = qname
        seen = 0
        while name in self.cnames and seen < 64:
            target = self.cnames[name]
            reply.add_answer(RR(name + ".", QTYPE.CNAME, rdata=CNAME(target + "."),
                                ttl=self.ttl))
            name = target
            seen += 1
            if self.faults.get(name) == "nxdomain":
                reply.header.rcode = RCODE.NXDOMAIN
                return reply
        entry = self.records.get(name)
        if entry is None and not seen:
            if name not in self._existing:
                reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for value in (entry or {}).get(qtype, []):
            rdata: Any = {"A": A, "AAAA": AAAA}.get(qtype)
            if qtype == "NS":
                rdata = NS(value + ".")
            elif rdata is not None:
                rdata = rdata(value)
            else:
                continue
            reply.add_answer(RR(name + ".", getattr(QTYPE, qtype), rdata=rdata, ttl=self.ttl))
        return reply

    def _origin(self, reply: DNSRecord, qname: str) -> DNSRecord:
        zone = ORIGIN_ZONE_V4 if qname.endswith(ORIGIN_ZONE_V4) else ORIGIN_ZONE_V6
        labels = qname[: -len(zone) - 1].split(".")
        try:
            if zone == ORIGIN_ZONE_V4:
                address = ipaddress.ip_address(".".join(reversed(labels)))
            else:
                nibbles = "".join(reversed(labels))
                address = ipaddress.ip_address(
                    ":".join(nibbles[i:i + 4] for i in range(0, 32, 4)))
        except ValueError:
            reply.header.rcode = RCODE.NXDOMAIN
            return reply
        for network, text in self.origins:
            if network.version == address.version and address in network:
                reply.add_answer(RR(qname + ".", QTYPE.TXT, rdata=TXT(text), ttl=self.ttl))
                return reply
        reply.header.rcode = RCODE.NXDOMAIN
        return reply

    # -- life ------------------------------------------------------------------------

    def start(self) -> FakeDNS:
        self._server.start_thread()
        if self._tcp is not None:
            self._tcp.start_thread()
        return self

    def stop(self) -> None:
        for server in (self._server, self._tcp):
            if server is not None:
                server.stop()
                server.server.server_close()

    def __enter__(self) -> FakeDNS:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def resolver(self) -> dict[str, Any]:
        """This server as an entry of `trace.resolvers`."""
        return {"address": self.address, "port": self.port}


def _n(name: str) -> str:
    return name.lower().rstrip(".")
