"""The cyclic garbage collector of a long-running process (`pipeline.core.collector`),
in a fresh interpreter: the test process's own collector is left as it is."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _in_a_fresh_interpreter(script: str) -> dict:
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_start_up_is_frozen_and_the_thresholds_are_set():
    seen = _in_a_fresh_interpreter("""
import gc, json
import pipeline.cli  # a command's start-up
from pipeline.core.collector import THRESHOLDS, settle_collector
before = gc.get_threshold()
settle_collector()
print(json.dumps({"before": before, "after": gc.get_threshold(), "thresholds": THRESHOLDS,
                  "frozen": gc.get_freeze_count(), "tracked": len(gc.get_objects())}))
""")
    assert seen["before"] == [700, 10, 10]
    assert seen["after"] == seen["thresholds"] == [10_000, 50, 100]
    # What start-up made is out of the collector's scans (tens of thousands of objects).
    assert seen["frozen"] > 10_000 and seen["tracked"] < seen["frozen"] / 10


def test_the_long_running_commands_settle_the_collector_before_their_work():
    # The worker through start_worker, the web app and the scheduler before they serve.
    import inspect

    import pipeline.cli as cli
    from workers import broker

    assert "settle_collector()" in inspect.getsource(broker.start_worker)
    for command in (cli.serve, cli.scheduler):
        source = inspect.getsource(command.callback)
        assert source.index("settle_collector()") < source.index(
            "uvicorn.run(" if command is cli.serve else "run_forever(")
