"""Counters: this process's metrics, summed across processes in multiprocess mode, and
served on a worker's own port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipeline.core import counters as metrics

REPO = Path(__file__).resolve().parents[2]


def _value(registry_text: str, name: str, **labels: str) -> float:
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(registry_text)
               for s in family.samples}
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_the_exposition_of_this_process_shows_what_it_counted(monkeypatch):
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    before = _value(metrics.exposition(metrics.process_registry())[0].decode(),
                    "hotline_dns_queries_total", rdtype="MX", outcome="timeout")
    metrics.DNS_QUERIES.labels("MX", "timeout").inc(3)
    body, content_type = metrics.exposition(metrics.process_registry())
    assert content_type.startswith("text/plain")
    assert _value(body.decode(), "hotline_dns_queries_total", rdtype="MX",
                  outcome="timeout") == before + 3
    assert "_created" not in body.decode()  # the *_created series are switched off


_CHILD = """
import sys
from pipeline.core import counters as metrics
metrics.REPORTS_RECEIVED.labels("web").inc(int(sys.argv[1]))
metrics.STAGE_SECONDS.labels("trace").observe(0.2)
"""

_READER = """
from prometheus_client import generate_latest
from pipeline.core.counters import process_registry
print(generate_latest(process_registry()).decode())
"""


def test_counters_of_several_processes_are_summed_in_multiprocess_mode(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           "PYTHONPATH": str(REPO)}
    for n in ("2", "5"):
        subprocess.run([sys.executable, "-c", _CHILD, n], env=env, check=True, cwd=REPO)
    out = subprocess.run([sys.executable, "-c", _READER], env=env, check=True, cwd=REPO,
                         capture_output=True, text=True).stdout
    assert _value(out, "hotline_reports_received_total", channel="web") == 7
    assert _value(out, "hotline_stage_duration_seconds_count", stage="trace") == 2


def test_a_worker_serves_its_own_counters_on_the_metrics_port():
    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    metrics.serve_process_metrics(port)
    metrics.STAGE_MESSAGES.labels("dispatch", "ok").inc()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    assert _value(text, "hotline_stage_messages_total", stage="dispatch", outcome="ok") >= 1


