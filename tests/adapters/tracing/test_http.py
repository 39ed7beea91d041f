"""The RDAP client's HTTP GET (`pipeline.adapters.tracing.http`) against a loopback
HTTP/1.1 server: kept connections, a kept connection the server dropped, redirects,
timeouts, refusals and threads asking at once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.adapters.tracing.http import HttpGetter, HttpTimeout, HttpUnreachable


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0  # TCP connections accepted
        self.paths: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.drop_after_answer = False  # close each connection after one answer
        self.delay = 0.0
        self.lock = threading.Lock()

    def get_request(self):  # type: ignore[no-untyped-def]
        request = super().get_request()
        with self.lock:
            self.connections += 1
        return request

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise
    server: Server

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        with self.server.lock:
            self.server.paths.append(self.path)
            self.server.headers_seen.append(dict(self.headers))
        if self.server.delay:
            time.sleep(self.server.delay)
        if self.path.startswith("/hop/"):
            left = int(self.path.rsplit("/", 1)[1])
            self.send_response(302)
            self.send_header("Location", f"/hop/{left - 1}" if left > 1 else "/end")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f'{{"path": "{self.path}"}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/rdap+json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if self.server.drop_after_answer:
            # Gone without saying so ("Connection: close" not sent): the client learns
            # it when it next uses the connection.
            self.close_connection = True


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_answers_come_back_with_status_headers_and_body_and_the_headers_go_out(server):
    getter = HttpGetter(timeout=2, headers={"Accept": "application/rdap+json"})
    answer = getter.get(f"{server.base}/ip/185.1.2.3?x=1")
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "application/rdap+json"
    assert answer.data == b'{"path": "/ip/185.1.2.3?x=1"}'
    assert server.headers_seen[0]["Accept"] == "application/rdap+json"
    getter.close()


def test_one_connection_serves_question_after_question(server):
    getter = HttpGetter(timeout=2)
    for index in range(5):
        assert getter.get(f"{server.base}/domain/d{index}.example").status == 200
    assert server.connections == 1
    getter.close()


def test_a_kept_connection_the_server_dropped_is_replaced_once(server):
    server.drop_after_answer = True
    getter = HttpGetter(timeout=2)
    for index in range(3):  # each kept connection is dead by the next question
        assert getter.get(f"{server.base}/domain/d{index}.example").status == 200
    assert server.connections == 3
    assert server.paths == [f"/domain/d{i}.example" for i in range(3)]
    getter.close()


def test_redirects_are_followed_up_to_the_limit(server):
    getter = HttpGetter(timeout=2, max_redirects=3)
    answer = getter.get(f"{server.base}/hop/3")
    assert (answer.status, answer.url, answer.data) == (200, f"{server.base}/end",
                                                         b'{"path": "/end"}')
    with pytest.raises(HttpUnreachable, match="more than 3 redirects"):
        getter.get(f"{server.base}/hop/4")
    getter.close()


def test_a_server_that_does_not_answer_in_time_is_a_timeout(server):
    server.delay = 1.0
    getter = HttpGetter(timeout=0.2)
    started = time.monotonic()
    with pytest.raises(HttpTimeout, match="timed out"):
        getter.get(f"{server.base}/slow")
    assert time.monotonic() - started < 0.9
    server.delay = 0
    assert getter.get(f"{server.base}/fast").status == 200  # the next one is fine
    getter.close()


def test_a_port_nobody_listens_on_is_unreachable():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HttpUnreachable):
        HttpGetter(timeout=1).get(f"http://127.0.0.1:{port}/ip/1.2.3.4")


def test_something_that_is_not_http_is_unreachable():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def babble() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(1024)
                conn.sendall(b"SSH-2.0-OpenSSH_9.2\r\n")

        thread = threading.Thread(target=babble, daemon=True)
        thread.start()
        with pytest.raises(HttpUnreachable):
            HttpGetter(timeout=1).get(f"http://127.0.0.1:{port}/ip/1.2.3.4")
        thread.join(5)


def test_only_http_urls_are_asked():
    with pytest.raises(HttpUnreachable, match="not an http"):
        HttpGetter(timeout=1).get("file:///etc/passwd")


def test_threads_ask_side_by_side_and_at_most_keep_connections_stay(server):
    server.delay = 0.05
    getter = HttpGetter(timeout=5, keep=2)
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda i: getter.get(f"{server.base}/d/{i}").status,
                                 range(32)))
    assert statuses == [200] * 32
    assert sorted(server.paths) == sorted(f"/d/{i}" for i in range(32))
    # Eight at once needed eight connections; two were kept, the rest closed.
    assert 2 <= server.connections <= 32
    assert sum(len(idle) for idle in getter._idle.values()) == 2
    getter.close()
    assert not getter._idle
