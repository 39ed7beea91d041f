"""The `hotline` entry point (pipeline.launcher): `hotline import` beside a running
hotline streams the file to it and prints what the full command prints; with no
running hotline, a stale run file, or any other command, the full command runs.

Real processes on loopback ports: a `hotline run` on SQLite, a `hotline serve` on
PostgreSQL and Redis; a loopback HTTP server standing in for a running process where
the test needs it to misbehave."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from pipeline import launcher
from pipeline.core.runfile import KEY_HEADER, RunningSystem, write_run_file
from tests.loopback import free_port
from tests.netfakes.fixtures import fake_dns, fake_rdap  # noqa: F401
from tests.ops import fixtures as running
from tests.ops.support import ROOT, operator_env

# A `hotline run` beside loopback DNS and RDAP (tests/ops/fixtures.py).
internet, system = running.internet, running.system

CSV = ("url,claimed_category\nhttp://h1.example.com/a,csam\nhttp://h2.example.com/b,spam\n"
       "http://h3.example.com/c,csam\nnot a url\n")
SUBMISSION = re.compile(r"S-[A-Z0-9-]+")
HEAVY = ("click", "pydantic", "pydantic_settings", "sqlalchemy", "psycopg", "httpx",
         "fastapi", "pipeline.cli", "pipeline.stages", "typing", "http.client", "ssl")


def fast(env, *args, timeout=60):
    """`hotline ARGS` through the entry point, as the console script runs it."""
    return subprocess.run([sys.executable, "-m", "pipeline.launcher", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def full(env, *args, timeout=120):
    """The full command line, never the fast path."""
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


def _same(a: str, b: str) -> bool:
    return SUBMISSION.sub("S-…", a) == SUBMISSION.sub("S-…", b)


def test_only_import_with_a_file_and_a_source_takes_the_fast_path():
    assert launcher.import_arguments(["import", "f.csv"]) == ("f.csv", None)
    assert launcher.import_arguments(["import", "--source", "p", "f.csv"]) == ("f.csv", "p")
    assert launcher.import_arguments(["import", "f.csv", "--source=p"]) == ("f.csv", "p")
    for argv in ([], ["--help"], ["submit", "http://a/"], ["import"], ["import", "--help"],
                 ["import", "f.csv", "--help"], ["import", "a.csv", "b.csv"],
                 ["import", "f.csv", "--source"], ["import", "-", "--source", "p"],
                 ["import", "f.csv", "--source", "--help"], ["--debug", "import", "f.csv"]):
        assert launcher.import_arguments(argv) is None, argv


def test_beside_hotline_run_the_file_is_imported_there_and_said_as_the_full_command_says(
        system, tmp_path):
    env, run = system
    path = tmp_path / "reports.csv"
    path.write_text(CSV)
    ours = fast(env, "import", str(path), "--source", "partner")
    theirs = full(env, "import", str(path), "--source", "partner")
    assert ours.returncode == theirs.returncode == 1
    assert _same(ours.stdout, theirs.stdout), (ours.stdout, theirs.stdout)
    assert ours.stdout.startswith("Imported 3 reports (submission S-")
    assert ours.stderr == theirs.stderr, (ours.stderr, theirs.stderr)
    assert f"{path}:3: claimed_category" in ours.stderr
    assert f"Handed to the running hotline (pid {run.process.pid}): 3 reports" in ours.stderr

    # Read from a pipe (sent chunked), and JSON Lines; nothing heavy loaded on the way.
    pipe = tmp_path / "reports.jsonl"
    os.mkfifo(pipe)

    def write() -> None:
        with pipe.open("w") as out:
            out.write('{"url": "http://h1.example.com/p"}\n')
            out.flush()
            time.sleep(0.2)
            out.write('{"url": 5}\n{"url": "http://h2.example.com/p"}\n')

    writer = threading.Thread(target=write)
    writer.start()
    probe = subprocess.run(
        [sys.executable, "-c", "import json, sys\nfrom pipeline import launcher\n"
         f"code = launcher.fast_import(['import', {str(pipe)!r}])\n"
         f"print(json.dumps([code, sorted(m for m in {HEAVY!r} if m in sys.modules)]))"],
        env=env, capture_output=True, text=True, timeout=60, cwd=ROOT)
    writer.join()
    code, loaded = json.loads(probe.stdout.splitlines()[-1])
    assert code == 1 and loaded == [], probe.stderr
    assert "Imported 2 reports" in probe.stdout
    assert f"{pipe}:2: url: Input should be a valid string" in probe.stderr

    waited = full(env, "wait", "--idle", "--timeout", "60", timeout=90)
    assert waited.returncode == 0, waited.stderr
    status = json.loads(full(env, "status", "--json").stdout)
    # h1/a and h3/c from the file (h2/b refused), h1/p and h2/p from the pipe
    assert status["cases_by_state"]["awaiting_assessment"] == 4


def test_a_refused_file_is_said_as_the_full_command_says_it(system, tmp_path):
    env, _ = system
    path = tmp_path / "bad.csv"
    path.write_text("uri,x\nhttp://a.example/,1\n")
    ours, theirs = fast(env, "import", str(path)), full(env, "import", str(path))
    assert ours.returncode == theirs.returncode == 1
    assert ours.stderr == theirs.stderr
    assert ours.stderr.startswith("Error: bad.csv: the CSV header must name url")
    assert ours.stdout == theirs.stdout == ""
    # Refused at its header while most of a large file is still on its way.
    path.write_text("uri,x\n" + "http://a.example/,1\n" * 200_000)
    large = fast(env, "import", str(path))
    assert (large.returncode, large.stderr) == (1, ours.stderr)
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    ours, theirs = fast(env, "import", str(empty)), full(env, "import", str(empty))
    assert ours.returncode == theirs.returncode == 0
    assert _same(ours.stdout, theirs.stdout) and ours.stdout.startswith("Imported 0 reports")
    assert ours.stderr == theirs.stderr


def test_submit_beside_hotline_run_says_what_the_full_command_says(system):
    env, run = system
    args = ("submit", "http://h1.example.com/s", "http://h2.example.com/s", "--category",
            "csam", "--description=seen twice")
    ours, theirs = fast(env, *args), full(env, *args)
    assert ours.returncode == theirs.returncode == 0, ours.stderr
    assert ours.stderr == theirs.stderr
    assert f"Handed to the running hotline (pid {run.process.pid}): 2 reports" in ours.stderr
    ours_lines = [json.loads(line) for line in ours.stdout.splitlines()]
    theirs_lines = [json.loads(line) for line in theirs.stdout.splitlines()]
    assert [(r["url"], set(r)) for r in ours_lines] == [(r["url"], set(r))
                                                         for r in theirs_lines]
    assert len({r["submission"] for r in ours_lines}) == 1
    for lang in ("en_GB.UTF-8", "sr_RS.UTF-8"):
        bad = ("submit", "http://h1.example.com/t", "--category", "spam")
        ours = fast({**env, "LANG": lang}, *bad)
        theirs = full({**env, "LANG": lang}, *bad)
        assert ours.returncode == theirs.returncode == 1
        assert ours.stderr == theirs.stderr and ours.stderr.startswith("hotline: ")
    assert launcher.submit_arguments(["submit", "http://a/?x=1", "--channel", "email"]) == {
        "urls": ["http://a/?x=1"], "channel": "email", "claimed_category": None,
        "description": None}
    for argv in (["submit"], ["submit", "--help"], ["submit", "u", "--category"],
                 ["submit", "u", "--description", "-x"], ["submit", "u", "--other", "x"]):
        assert launcher.submit_arguments(argv) is None, argv


class Impostor(BaseHTTPRequestHandler):
    """A process at the run file's address that is not the hotline that wrote it (or
    one that fails half-way): the answers each test sets."""

    ask = (200, b'{"formats": ["csv", "jsonl"]}')
    answer = (200, b"")
    posted: list[bytes] = []

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status, body):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802
        self._send(*self.ask)

    def do_POST(self):  # noqa: N802
        assert self.headers[KEY_HEADER] == "k"
        self.posted.append(self.rfile.read(int(self.headers["Content-Length"])))
        self._send(*self.answer)


@pytest.fixture
def impostor(tmp_path, monkeypatch):
    Impostor.ask = (200, b'{"formats": ["csv", "jsonl"]}')
    Impostor.answer = (200, b"")
    Impostor.posted = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Impostor)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    config = tmp_path / "config.yaml"
    config.write_text(f"app:\n  data_dir: {tmp_path}/var\n")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    write_run_file(tmp_path / "var" / "run.json", RunningSystem(os.getpid(), url, "k"))
    path = tmp_path / "r.jsonl"
    path.write_text('{"url": "http://a.example/"}\n')
    yield path
    httpd.shutdown()
    httpd.server_close()


def test_a_stale_run_file_means_nothing_is_running(impostor, tmp_path):
    run_file = tmp_path / "var" / "run.json"
    for status in (403, 404, 500):  # another key, an older hotline, a failing one
        Impostor.ask = (status, b'{"error": "no"}')
        assert launcher.fast_import(["import", str(impostor)]) is None
    Impostor.ask = (200, b'{"formats": ["csv", "jsonl"]}')
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    url = json.loads(run_file.read_text())["url"]
    write_run_file(run_file, RunningSystem(dead.pid, url, "k"))  # its process is gone
    assert launcher.fast_import(["import", str(impostor)]) is None
    write_run_file(run_file, RunningSystem(os.getpid(), f"http://127.0.0.1:{free_port()}",
                                           "k"))  # nothing answers there
    assert launcher.fast_import(["import", str(impostor)]) is None
    run_file.unlink()
    assert launcher.fast_import(["import", str(impostor)]) is None
    assert Impostor.posted == []  # nothing was sent anywhere


def test_a_stale_run_file_falls_back_to_the_full_command(tmp_path):
    env = operator_env(tmp_path)
    assert full(env, "migrate").returncode == 0
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_run_file(tmp_path / "var" / "run.json",
                   RunningSystem(dead.pid, f"http://127.0.0.1:{free_port()}", "k"))
    path = tmp_path / "r.csv"
    path.write_text("url\nhttp://a.example/\n")
    result = fast(env, "import", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Imported 1 reports (submission S-")
    assert "Handed to the running hotline" not in result.stderr  # imported here


def test_an_import_the_running_process_could_not_finish_is_said_never_sent_again(
        impostor, capsys):
    Impostor.answer = (500, b'{"error": "internal error"}')
    assert launcher.fast_import(["import", str(impostor)]) == 1
    assert Impostor.posted == [b'{"url": "http://a.example/"}\n']
    assert "did not finish the import (HTTP 500)" in capsys.readouterr().err
    Impostor.answer = (200, b'{"line": 1, "error": "x"}\n')  # cut before its summary
    assert launcher.fast_import(["import", str(impostor)]) == 1
    assert "the answer ended before its summary" in capsys.readouterr().err


def test_beside_hotline_serve_on_postgresql_and_redis(tmp_path, monkeypatch, pg_runtime,
                                                      redis_url, redis_namespace,
                                                      redis_client):
    import httpx
    from sqlalchemy import select

    from pipeline.store.models import Report

    env = operator_env(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text(f"app:\n  data_dir: {tmp_path}/var\n"
                      f"database:\n  url: {pg_runtime.settings.database.url}\n"
                      f"broker:\n  url: {redis_url}\n  namespace: {redis_namespace}\n"
                      f"redis:\n  namespace: {redis_namespace}-own\n")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))  # for launcher.running_system here
    run_file = tmp_path / "var" / "run.json"
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--host", "127.0.0.1", "--port",
         str(port)], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.stdout.read()
            assert time.monotonic() < deadline, "hotline serve did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).is_success:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        running = launcher.running_system()
        assert running is not None and running.pid == process.pid
        assert running.url == f"http://127.0.0.1:{port}"
        path = tmp_path / "reports.csv"
        path.write_text(CSV)
        result = fast(env, "import", str(path), "--source", "partner")
        assert result.returncode == 1
        assert f"Handed to the running hotline (pid {process.pid}): 3 reports" in result.stderr
        assert f"{path}:3: claimed_category" in result.stderr
        submission = SUBMISSION.search(result.stdout).group(0)
        with pg_runtime.session_factory() as session:
            rows = session.execute(select(Report.source).where(
                Report.submission_ref == submission)).scalars().all()
        assert rows == ["partner"] * 3
        # Settled as it was imported (three lines: batches of one and two), their three
        # new cases queued for tracing by the workers.
        assert redis_client.hlen(f"{redis_namespace}:trace.msgs") >= 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    assert not run_file.exists()  # withdrawn on exit
