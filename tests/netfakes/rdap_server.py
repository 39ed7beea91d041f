"""An RDAP server on loopback serving recorded-shape JSON, with faults.

    with FakeRDAP() as rdap:
        rdap.add_network("193.0.0.0/21", records.ripe_network("193.0.0.0/21"))
        rdap.add_domain("example.com", records.domain("example.com"))
        rdap.add_entity("AFRINIC-ABUSE-1", records.entity("AFRINIC-ABUSE-1"))
        rdap.fail("193.0.0.0/21", "429")     # or 404, malformed, timeout, 500
        rdap.url                 # http://127.0.0.1:<port>/  (use as trace.rdap_base_url)
        rdap.url_for("ripe")     # http://127.0.0.1:<port>/ripe/ (for bootstrap files)
        rdap.queries             # questions answered; also GET /_stats as JSON

Paths: [/<registry>]/ip/<address>, /domain/<name>, /entity/<handle>, /autnum/<n>.
The optional first segment names a registry so that bootstrap files can point each RIR
at its own base URL on this one server; `queries_by_registry` counts them apart.
"""

from __future__ import annotations

import ipaddress
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

KINDS = ("ip", "domain", "entity", "autnum")
FAULTS = ("429", "404", "500", "malformed", "timeout")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):  # a client that gave up
            super().handle_error(request, client_address)


class FakeRDAP:
    def __init__(self, address: str = "127.0.0.1", port: int = 0, *,
                 timeout_seconds: float = 3.0):
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network,
                                  dict[str, Any]]] = []
        self.domains: dict[str, dict[str, Any]] = {}
        self.entities: dict[str, dict[str, Any]] = {}
        self.autnums: dict[int, dict[str, Any]] = {}
        self.faults: dict[str, str] = {}  # network prefix, domain or handle -> fault
        self.retry_after: str | None = None
        self.timeout_seconds = timeout_seconds  # how long a "timeout" answer stalls
        self.latency_seconds = 0.0  # every answer waits this long (overlapping askers)
        self.queries = 0
        self.queries_by_registry: Counter[str] = Counter()
        self.queries_by_kind: Counter[str] = Counter()
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._server = _Server((address, port), self._handler())
        self.address = address
        self.port: int = self._server.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}/"

    def url_for(self, registry: str) -> str:
        return f"{self.url}{registry}/"

    # -- content -----------------------------------------------------------------------

    def add_network(self, prefix: str, body: dict[str, Any]) -> None:
        self.networks.append((ipaddress.ip_network(prefix), body))
        self.networks.sort(key=lambda pair: pair[0].prefixlen, reverse=True)

    def add_domain(self, name: str, body: dict[str, Any]) -> None:
        self.domains[name.lower()] = body

    def add_entity(self, handle: str, body: dict[str, Any]) -> None:
        self.entities[handle] = body

    def add_autnum(self, asn: int, body: dict[str, Any]) -> None:
        self.autnums[asn] = body

    def fail(self, key: str, fault: str) -> None:
        """Fault for a network (its prefix as added), a domain, or an entity handle."""
        assert fault in FAULTS, fault
        self.faults[key.lower()] = fault

    def heal(self, key: str) -> None:
        self.faults.pop(key.lower(), None)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"queries": self.queries,
                    "by_registry": dict(self.queries_by_registry),
                    "by_kind": dict(self.queries_by_kind)}

    def reset_counts(self) -> None:
        with self._lock:
            self.queries = 0
            self.queries_by_registry.clear()
            self.queries_by_kind.clear()
            self.paths.clear()

    # -- serving -----------------------------------------------------------------------

    def _lookup(self, kind: str, value: str) -> tuple[str | None, dict[str, Any] | None]:
        """(fault key, body) for a question."""
        if kind == "ip":
            try:
                address = ipaddress.ip_address(value)
            except ValueError:
                return None, None
            for network, body in self.networks:
                if network.version == address.version and address in network:
                    return str(network), body
            return str(address), None
        if kind == "domain":
            return value.lower(), self.domains.get(value.lower())
        if kind == "entity":
            return value.lower(), self.entities.get(value)
        try:
            return value, self.autnums.get(int(value))
        except ValueError:
            return value, None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # The headers and the body go out in two writes: with Nagle's algorithm
            # the body waits for the client's delayed ACK, 40 ms a request on Linux
            # loopback. A real RDAP server does not stall so; neither does this one.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None
                      ) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/rdap+json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:  # noqa: N802
                parts = [p for p in self.path.split("?")[0].split("/") if p]
                if parts == ["_stats"]:
                    self._send(200, json.dumps(fake.stats()).encode())
                    return
                registry = "-"
                if len(parts) == 3 and parts[1] in KINDS:
                    registry, parts = parts[0], parts[1:]
                if len(parts) != 2 or parts[0] not in KINDS:
                    self._send(400, b'{"errorCode":400,"title":"bad request"}')
                    return
                kind, value = parts
                with fake._lock:
                    fake.queries += 1
                    fake.queries_by_registry[registry] += 1
                    fake.queries_by_kind[kind] += 1
                    fake.paths.append(self.path)
                if fake.latency_seconds:
                    time.sleep(fake.latency_seconds)
                key, body = fake._lookup(kind, value)
                fault = fake.faults.get(key or "")
                if fault == "timeout":
                    time.sleep(fake.timeout_seconds)
                    self._send(504, b"{}")
                    return
                if fault == "429":
                    headers = {"Retry-After": fake.retry_after} if fake.retry_after else {}
                    self._send(429, b'{"errorCode":429,"title":"Too Many Requests"}',
                               headers)
                    return
                if fault == "500":
                    self._send(500, b'{"errorCode":500}')
                    return
                if fault == "404" or body is None:
                    self._send(404, b'{"errorCode":404,"title":"Not Found"}')
                    return
                if fault == "malformed":
                    self._send(200, b'{"handle": "broken", "entities": [')
                    return
                self._send(200, json.dumps(body).encode())

        return Handler

    # -- life --------------------------------------------------------------------------

    def start(self) -> FakeRDAP:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fake-rdap")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeRDAP:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_bootstrap(self, folder: Any, registries: dict[str, list[str]] | None = None,
                        tlds: dict[str, str] | None = None) -> None:
        """Write IANA-format bootstrap files into `folder` that send each RIR's space to
        this server under its own path (`registries`: name -> IPv4/IPv6 prefixes)."""
        from pathlib import Path

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        registries = registries or {}
        v4, v6 = [], []
        for name, prefixes in registries.items():
            four = [p for p in prefixes if ipaddress.ip_network(p).version == 4]
            six = [p for p in prefixes if ipaddress.ip_network(p).version == 6]
            if four:
                v4.append([four, [self.url_for(name)]])
            if six:
                v6.append([six, [self.url_for(name)]])
        dns = [[[tld], [self.url_for(name)]] for tld, name in (tlds or {}).items()]
        for file, services in (("ipv4.json", v4), ("ipv6.json", v6), ("dns.json", dns),
                               ("asn.json", [[["1-4199999999"], [self.url_for("asn")]]])):
            (folder / file).write_text(json.dumps({
                "description": "test bootstrap", "publication": "2026-01-01T00:00:00Z",
                "services": services, "version": "1.0"}))
