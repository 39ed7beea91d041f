"""The benchmark harness in quick mode (BENCH_N=2000): it runs end to end against the
real servers and every report is accounted for. No timing is asserted: the figures
are printed by `make bench`, not judged here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.workload import generate

ROOT = Path(__file__).resolve().parents[2]
# The quick benchmark starts three scaled-out deployments (in-process intake,
# `hotline import`, the HTTP API) and the embedded one: more than the default 300 s
# on a busy machine.
pytestmark = pytest.mark.timeout(600)


def test_the_workload_is_the_same_for_the_same_seed_and_skewed_as_asked() -> None:
    first, again = generate(3_000, seed=7), generate(3_000, seed=7)
    assert first.reports == again.reports
    assert generate(3_000, seed=8).reports != first.reports
    kinds = first.counts()
    duplicates = (kinds["exact"] + kinds["variant"]) / len(first.reports)
    assert 0.25 < duplicates < 0.35
    assert kinds["rejected"] and kinds["ip_literal"] and kinds["idn"]
    # Hosts share networks: far fewer networks than hosts, and every host resolves.
    assert len(first.networks) * 10 < len(first.hosts)
    assert all(first.hosts.values())


@pytest.fixture(scope="module")
def quick_bench(pg_database_url: str, redis_url: str,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import PG_ADMIN_URL

    env = {k: v for k, v in os.environ.items() if not k.startswith("HOTLINE_")}
    env.update({
        "BENCH_N": "2000", "BENCH_LATENCY_SECONDS": "1", "BENCH_PG": PG_ADMIN_URL,
        "BENCH_CLAIM_BACKLOG": "500", "BENCH_STATS_CASES": "500",
        "BENCH_LOG_DIR": str(tmp_path_factory.mktemp("bench-logs")),
    })
    done = subprocess.run([sys.executable, "-m", "bench"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=560)
    assert done.stdout.strip(), done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    result["exit_status"] = done.returncode
    result["stderr"] = done.stderr
    return result


def test_the_quick_benchmark_accounts_for_every_report_in_every_phase(
    quick_bench: dict[str, Any],
) -> None:
    assert quick_bench["exit_status"] == 0, quick_bench["stderr"][-3000:]
    assert quick_bench["accounted"] is True
    for mode in ("scaled_out", "embedded"):
        figures = quick_bench[mode]
        assert figures["throughput"]["settled"] is True
        assert figures["throughput"]["reports"] == 2_000
    for mode in ("scaled_out", "embedded", "scaled_out_import", "scaled_out_api"):
        figures = quick_bench[mode]
        books = figures["accounting"]
        assert books["ok"], (mode, books)
        assert books["stored"] == books["submitted"] >= 2_000
        assert books["rejected"] + books["duplicate"] + books["new_case"] == books["submitted"]
        assert books["cases_awaiting_assessment"] == books["new_case"] == books["cases"]


def test_the_quick_benchmark_prints_every_figure_the_issue_asks_for(
    quick_bench: dict[str, Any],
) -> None:
    scaled = quick_bench["scaled_out"]
    for key in ("cpu_seconds_per_1000_reports", "redis_commands_per_report",
                "rdap_queries_per_1000_reports", "latency_at_half_load",
                "peak_rss_mb_per_process"):
        assert key in scaled, key
    assert scaled["throughput"]["reports_per_second"] > 0
    assert scaled["redis_commands_per_report"] > 0
    assert len(scaled["peak_rss_mb_per_process"]) == 2  # two worker processes
    latency = scaled["latency_at_half_load"]["intake_to_awaiting_assessment"]
    assert latency["count"] > 0 and latency["p99_ms"] >= latency["p50_ms"]
    assert scaled["latency_at_half_load"]["settled"] is True  # every report seen settled
    for stage in ("urls", "claim", "stats", "search"):
        assert stage in quick_bench["stages"]  # a figure, or null with a note
    assert set(quick_bench["targets"]) >= {
        "scaled_out_reports_per_second", "scaled_out_p99_ms_at_half_load",
        "rdap_network_queries_per_1000_reports", "claim_next_p99_ms_at_100000_waiting",
        "stats_seconds_over_1000000_cases_postgresql", "worker_peak_rss_mb",
        "search_p99_ms_at_1000000_cases_postgresql"}


def test_the_quick_benchmark_feeds_the_workload_through_hotline_import_and_the_api(
    quick_bench: dict[str, Any],
) -> None:
    """Both real intake paths print every figure of issue 23 (no timing judged)."""
    for path in ("scaled_out_import", "scaled_out_api"):
        figures = quick_bench[path]
        assert figures["settled"] is True, (path, figures.get("stalled_at"))
        assert "problems" not in figures, figures.get("problems")
        assert figures["reports"] == figures["accounting"]["submitted"] == 2_000
        assert figures["reports_per_second"] > 0
        assert 0 < figures["first_report_stored_ms"] <= figures["first_report_settled_ms"]
        cpu = figures["cpu_ms_per_report"]
        assert set(cpu) >= {"intake", "workers", "postgresql", "redis", "every_process",
                            "hotline_processes"}
        assert all(cpu[k] > 0 for k in ("intake", "workers", "postgresql", "every_process"))
        # The loopback DNS and RDAP servers are the test world, not hotline.
        assert cpu["hotline_processes"] == pytest.approx(
            cpu["every_process"] - cpu.get("loopback_dns_rdap", 0), abs=0.002)
        # Every report and the case it opened leave audit events behind; the database
        # wrote its log for them.
        assert figures["audit_events_per_report"] >= 1
        assert figures["wal_bytes_per_report"] > 0 and figures["wal_records_per_report"] > 0
    assert set(quick_bench["scaled_out"]["cpu_ms_per_report"]) >= {
        "intake", "workers", "postgresql", "every_process"}
