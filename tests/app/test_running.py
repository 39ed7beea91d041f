"""The running embedded system as other commands see it (pipeline.app.running): the
run file, finding a live `hotline run`, handing ids over and asking its status, against
a loopback HTTP server standing in for it."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline.app import running
from pipeline.app.running import KEY_HEADER, RunningSystem


class FakeRun(BaseHTTPRequestHandler):
    """/healthz, and the internal endpoints checking the key like pipeline.web.ops."""

    key = "k"
    received: list[dict] = []

    def log_message(self, *args):  # quiet
        pass

    def _answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):  # noqa: N802
        if self.path == "/healthz":
            self._answer(200, {"status": "ok"})
        elif self.headers.get(KEY_HEADER) != self.key:
            self._answer(403, {"error": "key"})
        else:
            self._answer(200, {"queues": {"trace": 2}, "circuits": []})

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.headers.get(KEY_HEADER) != self.key:
            self._answer(403, {"error": "key"})
            return
        self.received.append(body)
        self._answer(200, {"queued": len(body["ids"])})


@pytest.fixture
def server():
    FakeRun.received = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), FakeRun)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _write_run_file(settings, pid, url, key="k"):
    path = running.run_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": pid, "url": url, "key": key}))


def test_the_run_file_is_private_names_loopback_and_is_withdrawn(settings_factory):
    settings = settings_factory(web={"host": "0.0.0.0", "port": 8123})
    announced = running.announce(settings)
    path = running.run_file(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == {"pid": os.getpid(), "url": "http://127.0.0.1:8123",
                                            "key": announced.key}
    assert len(announced.key) >= 32
    other = RunningSystem(pid=announced.pid + 1, url=announced.url, key="x")
    running.withdraw(settings, other)  # not this process's file: left alone
    assert path.exists()
    running.withdraw(settings, announced)
    assert not path.exists()
    running.withdraw(settings, announced)  # gone already: no error


def test_an_ipv6_host_is_written_in_brackets(settings_factory):
    settings = settings_factory(web={"host": "::1", "port": 8124})
    assert running.announce(settings).url == "http://[::1]:8124"


def test_a_live_answering_process_is_found(settings_factory, server):
    settings = settings_factory()
    _write_run_file(settings, os.getpid(), server)
    assert running.find_running(settings) == RunningSystem(os.getpid(), server, "k")


def test_no_file_a_bad_file_a_dead_process_or_no_answer_is_nothing_running(
        settings_factory, server):
    settings = settings_factory()
    assert running.find_running(settings) is None
    running.run_file(settings).parent.mkdir(parents=True, exist_ok=True)
    running.run_file(settings).write_text("{not json")
    assert running.find_running(settings) is None
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_run_file(settings, dead.pid, server)
    assert running.find_running(settings) is None
    _write_run_file(settings, os.getpid(), "http://127.0.0.1:9")  # nothing listens
    assert running.find_running(settings, timeout=1) is None


def test_ids_are_handed_over_with_the_key_and_the_status_asked(server):
    system = RunningSystem(os.getpid(), server, "k")
    handed = running.HandOver(system)
    handed.send("normalise", [1, 2, 3])
    handed.send("normalise", [])  # nothing to hand over: no request
    assert FakeRun.received == [{"stage": "normalise", "ids": [1, 2, 3]}]
    assert (handed.handed, handed.failed) == (3, [])
    assert running.remote_status(system) == {"queues": {"trace": 2}, "circuits": []}


def test_a_failed_hand_over_is_reported_not_raised(server):
    handed = running.HandOver(RunningSystem(os.getpid(), server, "wrong"))
    handed.send("trace", [7])
    assert handed.handed == 0 and len(handed.failed) == 1
    assert handed.failed[0].startswith("trace: HTTPStatusError")
    assert FakeRun.received == []


def test_a_vacant_run_file_is_claimed_a_live_one_left_alone(settings_factory):
    settings = settings_factory()
    first = running.announce(settings)
    other = RunningSystem(os.getpid(), "http://127.0.0.1:8125", "other-key")
    assert running.claim_if_vacant(settings, other) is False  # a live process is named
    assert json.loads(running.run_file(settings).read_text())["key"] == first.key
    running.withdraw(settings, first)  # the first web process stops
    keeper = running.KeepAnnounced(settings, other, every=0.05).start()
    try:
        deadline = time.monotonic() + 10
        while not running.run_file(settings).exists():
            assert time.monotonic() < deadline, "the vacant run file was not claimed"
            time.sleep(0.05)
    finally:
        keeper.stop()
    assert json.loads(running.run_file(settings).read_text())["key"] == "other-key"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _write_run_file(settings, dead.pid, "http://127.0.0.1:9")  # named, but dead
    assert running.claim_if_vacant(settings, other) is True
