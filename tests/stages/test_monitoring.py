"""Monitoring after notice: checks against loopback servers speaking real HTTP."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from pipeline.app.runtime import Runtime
from pipeline.core.config import MonitoringSection
from pipeline.core.messaging import TRACE
from pipeline.stages.monitoring import (
    MISS,
    PRESENT,
    UNKNOWN,
    Resolution,
    address_allowed,
    check_url,
    record_partner_status,
    run_monitoring,
)
from pipeline.store.models import Case, Notice
from pipeline.store.takedown_models import TakedownCheck, TakedownWatch
from tests.factories import make_case

BIG_BODY = 64 * 1024 * 1024


class LoopbackHTTP:
    """A real HTTP/1.1 server on 127.0.0.1 answering each path as `routes` says:
    (status, extra headers, body size). It records connections and how many body
    bytes the kernel accepted before the client went away."""

    def __init__(self, routes: dict[str, tuple[int, dict[str, str], int]],
                 address: tuple[str, int] = ("127.0.0.1", 0)):
        self.routes = routes
        self.connections = 0
        self.paths: list[str] = []
        self.body_bytes_sent: list[int] = []
        self.sock = socket.create_server(address)
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _serve(self) -> None:
        while not self.stopped:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        self.connections += 1
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                request += chunk
            path = request.split(b" ")[1].decode()
            self.paths.append(path)
            status, headers, size = self.routes.get(path, (404, {}, 10))
            head = f"HTTP/1.1 {status} X\r\nContent-Length: {size}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            conn.sendall(head.encode())
            sent = 0
            block = b"x" * 65536
            conn.settimeout(5)
            try:
                while sent < size:
                    sent += conn.send(block[: min(len(block), size - sent)])
            except OSError:
                pass
            self.body_bytes_sent.append(sent)

    def close(self) -> None:
        self.stopped = True
        self.sock.close()


@pytest.fixture
def http_server() -> Iterator[Callable[..., LoopbackHTTP]]:
    servers: list[LoopbackHTTP] = []

    def start(routes: dict[str, tuple[int, dict[str, str], int]],
              address: tuple[str, int] = ("127.0.0.1", 0)) -> LoopbackHTTP:
        server = LoopbackHTTP(routes, address)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def settings(**values: Any) -> MonitoringSection:
    return MonitoringSection(**{"timeout_seconds": 5, **values})


TEST = settings(allow_loopback=True)


def resolver(answers: dict[str, Resolution]) -> Callable[[str], Resolution]:
    calls: list[str] = []

    def resolve(name: str) -> Resolution:
        calls.append(name)
        return answers.get(name, Resolution([], "nxdomain"))

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


# --- addresses -------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "255.255.255.255", "192.0.2.1", "::1", "::", "fe80::1",
    "fc00::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::7f00:1", "64:ff9b::a00:1", "64:ff9b:1::a9fe:a9fe", "2002:7f00:1::1",
    "2002:a00:1::1", "not-an-address",
])
def test_non_global_addresses_in_every_form_are_refused(address: str) -> None:
    assert not address_allowed(address)
    assert not address_allowed(address, allow_loopback=address not in (
        "127.0.0.1", "::1", "::ffff:127.0.0.1"))


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700::1111", "64:ff9b::808:808",
                                     "::ffff:8.8.8.8"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert address_allowed(address)


def test_loopback_is_allowed_only_when_the_configuration_says_so() -> None:
    assert address_allowed("127.0.0.1", allow_loopback=True)
    assert address_allowed("::ffff:127.0.0.1", allow_loopback=True)
    assert not address_allowed("10.0.0.1", allow_loopback=True)


# --- one check -------------------------------------------------------------------------


def test_a_loopback_server_is_never_contacted_in_the_default_configuration(
    http_server: Callable[..., LoopbackHTTP],
) -> None:
    server = http_server({"/a": (200, {}, 10)})
    by_ip = check_url(server.url("/a"), settings())
    by_name = check_url(f"http://content.test:{server.port}/a", settings(),
                        resolve=resolver({"content.test": Resolution(["127.0.0.1"])}))
    assert (by_ip.reason, by_name.reason) == ("no_global_address", "no_global_address")
    assert server.connections == 0


def test_the_body_is_never_read(http_server: Callable[..., LoopbackHTTP]) -> None:
    server = http_server({"/big": (200, {"X-Pad": "y" * 100}, BIG_BODY)})
    result = check_url(server.url("/big"), TEST)
    assert result.outcome == PRESENT and result.http_status == 200
    head = f"HTTP/1.1 200 X\r\nContent-Length: {BIG_BODY}\r\nX-Pad: {'y' * 100}\r\n\r\n"
    assert result.bytes_read == len(head)
    server.thread.join(0)  # the server thread notices the closed connection on its own
    for _ in range(100):
        if server.body_bytes_sent:
            break
        threading.Event().wait(0.05)
    assert server.body_bytes_sent and server.body_bytes_sent[0] < BIG_BODY


@pytest.mark.parametrize("status,outcome", [(200, PRESENT), (404, MISS), (410, MISS),
                                            (451, MISS), (500, UNKNOWN), (403, UNKNOWN)])
def test_the_status_decides_whether_the_content_is_there(
    http_server: Callable[..., LoopbackHTTP], status: int, outcome: str,
) -> None:
    server = http_server({"/a": (status, {}, 5)})
    result = check_url(server.url("/a"), TEST)
    assert (result.outcome, result.reason) == (outcome, f"http_{status}")


def test_a_redirect_is_followed_to_its_end(http_server: Callable[..., LoopbackHTTP]) -> None:
    server = http_server({"/a": (301, {"Location": "/b"}, 0), "/b": (302, {"Location": "/c"}, 0),
                          "/c": (410, {}, 0)})
    result = check_url(server.url("/a"), TEST)
    assert (result.outcome, result.redirects, server.paths) == (MISS, 2, ["/a", "/b", "/c"])


@pytest.mark.parametrize("target", ["http://10.0.0.7/x", "http://[::ffff:192.168.0.1]/x",
                                    "http://internal.test/x", "http://[64:ff9b::a00:1]/"])
def test_a_redirect_to_a_non_global_address_is_not_followed(
    http_server: Callable[..., LoopbackHTTP], target: str,
) -> None:
    server = http_server({"/a": (302, {"Location": target}, 0)})
    resolve = resolver({"internal.test": Resolution(["192.168.7.7"])})
    result = check_url(server.url("/a"), TEST, resolve=resolve)
    assert (result.outcome, result.reason) == (UNKNOWN, "redirect_refused")
    assert server.connections == 1


def test_the_name_is_resolved_once_and_the_checked_address_is_asked(
    http_server: Callable[..., LoopbackHTTP],
) -> None:
    server = http_server({"/a": (200, {}, 1)})
    resolve = resolver({"content.test": Resolution(["127.0.0.1"])})
    result = check_url(f"http://content.test:{server.port}/a", TEST, resolve=resolve)
    assert result.outcome == PRESENT and result.address == "127.0.0.1"
    assert resolve.calls == ["content.test"]  # type: ignore[attr-defined]


@pytest.mark.parametrize("dns,outcome", [("nxdomain", MISS), ("no_address", MISS),
                                         ("error", UNKNOWN)])
def test_a_name_that_is_gone_is_a_miss(dns: str, outcome: str) -> None:
    result = check_url("http://gone.test/a", TEST,
                       resolve=resolver({"gone.test": Resolution([], dns)}))
    assert (result.outcome, result.reason) == (outcome, f"dns_{dns}")


def test_a_closed_port_is_a_miss() -> None:
    sock = socket.create_server(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    result = check_url(f"http://127.0.0.1:{port}/a", TEST)
    assert (result.outcome, result.reason) == (MISS, "connection_refused")


def test_real_dns_is_asked_through_the_configured_resolver() -> None:
    dnslib = pytest.importorskip("dnslib")
    from dnslib.server import BaseResolver, DNSServer

    class Zone(BaseResolver):  # type: ignore[misc]
        def resolve(self, request: Any, handler: Any) -> Any:
            reply = request.reply()
            name = str(request.q.qname)
            if name == "here.test." and request.q.qtype == dnslib.QTYPE.A:
                reply.add_answer(*dnslib.RR.fromZone("here.test. 60 A 127.0.0.1"))
            elif name != "here.test.":
                reply.header.rcode = dnslib.RCODE.NXDOMAIN
            return reply

    server = DNSServer(Zone(), port=0, address="127.0.0.1")
    server.start_thread()
    try:
        port = server.server.server_address[1]
        config = settings(allow_loopback=True, resolver=f"127.0.0.1:{port}")
        from pipeline.stages.monitoring import make_resolver

        resolve = make_resolver(config)
        assert resolve("here.test").addresses == ["127.0.0.1"]
        assert resolve("gone.test").outcome == "nxdomain"
    finally:
        server.stop()


# --- the schedule ----------------------------------------------------------------------


def notified_case(rt: Runtime, url: str, **fields: Any) -> int:
    now = rt.clock.now()
    with rt.session_factory.begin() as session:
        case = make_case(session, at=now - timedelta(days=1), url=url, state="notified",
                         notified_at=now, **fields)
        return case.id


def run(rt: Runtime, config: MonitoringSection = TEST) -> dict[str, int]:
    return run_monitoring(rt.session_factory, rt.enqueuer, config, clock=rt.clock)


def case_state(rt: Runtime, case_id: int) -> Case:
    with rt.session_factory() as session:
        case = session.get(Case, case_id)
        assert case is not None
        return case


def test_content_is_removed_after_three_misses_three_minutes_apart(
    runtime: Runtime, http_server: Callable[..., LoopbackHTTP],
) -> None:
    server = http_server({"/a": (404, {}, 0)})
    case_id = notified_case(runtime, server.url("/a"))
    first = runtime.clock.now()
    assert run(runtime)["checked"] == 1
    assert case_state(runtime, case_id).state == "monitoring"
    assert run(runtime)["checked"] == 0  # the next check is not due yet
    runtime.clock.advance(minutes=3)  # type: ignore[attr-defined]
    run(runtime)
    assert case_state(runtime, case_id).state == "monitoring"
    runtime.clock.advance(minutes=3)  # type: ignore[attr-defined]
    assert run(runtime)["removed"] == 1
    case = case_state(runtime, case_id)
    assert case.state == "removed" and case.removed_at == first
    with runtime.session_factory() as session:
        checks = session.execute(select(TakedownCheck.misses).where(
            TakedownCheck.case_id == case_id).order_by(TakedownCheck.id)).scalars().all()
    assert checks == [1, 2, 3]


def test_content_seen_again_breaks_the_streak(
    runtime: Runtime, http_server: Callable[..., LoopbackHTTP],
) -> None:
    server = http_server({"/a": (404, {}, 0)})
    case_id = notified_case(runtime, server.url("/a"))
    run(runtime)
    runtime.clock.advance(minutes=3)  # type: ignore[attr-defined]
    run(runtime)
    server.routes["/a"] = (200, {}, 0)
    runtime.clock.advance(minutes=3)  # type: ignore[attr-defined]
    run(runtime)
    server.routes["/a"] = (404, {}, 0)
    runtime.clock.advance(minutes=60)  # type: ignore[attr-defined]
    run(runtime)
    with runtime.session_factory() as session:
        watch = session.get(TakedownWatch, case_id)
        assert watch is not None and watch.misses == 1
    assert case_state(runtime, case_id).state == "monitoring"


def test_a_providers_confirmation_is_recorded_and_verified_by_a_check(
    runtime: Runtime, http_server: Callable[..., LoopbackHTTP],
) -> None:
    server = http_server({"/a": (200, {}, 0)})
    case_id = notified_case(runtime, server.url("/a"))
    run(runtime)
    now = runtime.clock.advance(minutes=10)  # type: ignore[attr-defined]
    with runtime.session_factory.begin() as session:
        session.add(Notice(case_id=case_id, destination="host-a", destination_kind="provider",
                           kind="notice", round=1, channel="smtp", state="sent",
                           token="t1", created_at=now, sent_at=now, confirmed_at=now,
                           payload={}))
    counts = run(runtime)
    assert counts["claims"] == 1 and counts["checked"] == 1  # brought forward, not at +60
    with runtime.session_factory() as session:
        watch = session.get(TakedownWatch, case_id)
        assert watch is not None and watch.claimed_by == "notice:host-a"
    assert case_state(runtime, case_id).state == "monitoring"  # still there: not believed


def test_a_partner_hotline_saying_moved_gets_the_case_traced_again(
    runtime: Runtime, http_server: Callable[..., LoopbackHTTP],
) -> None:
    server = http_server({"/a": (200, {}, 0)})
    case_id = notified_case(runtime, server.url("/a"))
    run(runtime)
    with runtime.session_factory.begin() as session:
        assert record_partner_status(session, case_id, "moved", hotline="cz-stoponline",
                                     at=runtime.clock.now())
    counts = run(runtime)
    assert counts["moved"] == 1
    assert case_state(runtime, case_id).state == "traced"
    assert runtime.enqueuer.ids(TRACE) == [case_id]  # type: ignore[attr-defined]


def test_a_host_whose_addresses_all_changed_has_moved(runtime: Runtime,
                                                     http_server: Callable[..., LoopbackHTTP]
                                                     ) -> None:
    server = http_server({"/a": (200, {}, 0)})
    http_server({"/a": (200, {}, 0)}, ("127.0.0.2", server.port))  # the new hosting
    case_id = notified_case(runtime, f"http://content.test:{server.port}/a")
    answers = {"content.test": Resolution(["127.0.0.1"])}
    run_monitoring(runtime.session_factory, runtime.enqueuer, TEST, clock=runtime.clock,
                   resolve=resolver(answers))
    answers["content.test"] = Resolution(["127.0.0.2"])
    runtime.clock.advance(minutes=60)  # type: ignore[attr-defined]
    counts = run_monitoring(runtime.session_factory, runtime.enqueuer, TEST,
                            clock=runtime.clock, resolve=resolver(answers))
    assert counts["moved"] == 1 and case_state(runtime, case_id).state == "traced"


def test_an_https_url_is_checked_without_reading_the_body(tmp_path: Any) -> None:
    import datetime as dt
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "content.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "c.pem", tmp_path / "k.pem")
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000000\r\n\r\n"

    def serve() -> None:
        conn, _ = listener.accept()
        with context.wrap_socket(conn, server_side=True) as tls:
            request = b""
            while b"\r\n\r\n" not in request:
                request += tls.recv(4096)
            with contextlib.suppress(OSError):
                tls.sendall(head + b"x" * 10_000_000)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = check_url(f"https://content.test:{port}/a", TEST,
                           resolve=resolver({"content.test": Resolution(["127.0.0.1"])}))
    finally:
        listener.close()
    assert (result.outcome, result.http_status) == (PRESENT, 200)
    assert result.bytes_read == len(head)
