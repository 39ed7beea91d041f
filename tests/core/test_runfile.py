"""The run file read and written with the standard library (pipeline.core.runfile):
private, whole, and a file whose process is gone is nothing running."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys

from pipeline.core.runfile import RunningSystem, read_run_file, write_run_file


def test_a_written_run_file_is_private_and_read_back(tmp_path):
    path = tmp_path / "var" / "run.json"
    running = RunningSystem(os.getpid(), "http://127.0.0.1:8123", "k" * 43)
    write_run_file(path, running)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_run_file(path) == running
    assert "k" * 43 not in repr(running)  # the key stays out of tracebacks and logs
    assert not path.with_suffix(".tmp").exists()


def test_no_file_a_bad_file_or_no_such_process_is_nothing_running(tmp_path):
    path = tmp_path / "run.json"
    assert read_run_file(path) is None
    for text in ("{not json", "[]", '{"pid": "x", "url": "u", "key": "k"}',
                 '{"pid": 0, "url": "u", "key": "k"}', '{"pid": -1, "url": "u", "key": "k"}',
                 '{"pid": 99999999999999999999, "url": "u", "key": "k"}', '{"url": "u"}'):
        path.write_text(text)
        assert read_run_file(path) is None, text
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    path.write_text(json.dumps({"pid": dead.pid, "url": "http://127.0.0.1:9", "key": "k"}))
    assert read_run_file(path) is None
