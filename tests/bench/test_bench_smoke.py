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
                          capture_output=True, text=True, timeout=280)
    assert done.stdout.strip(), done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    result["exit_status"] = done.returncode
    result["stderr"] = done.stderr
    return result


def test_the_quick_benchmark_accounts_for_every_report_in_both_modes(
    quick_bench: dict[str, Any],
) -> None:
    assert quick_bench["exit_status"] == 0, quick_bench["stderr"][-3000:]
    assert quick_bench["accounted"] is True
    for mode in ("scaled_out", "embedded"):
        figures = quick_bench[mode]
        books = figures["accounting"]
        assert books["ok"], (mode, books)
        assert books["stored"] == books["submitted"] >= 2_000
        assert books["rejected"] + books["duplicate"] + books["new_case"] == books["submitted"]
        assert books["cases_awaiting_assessment"] == books["new_case"] == books["cases"]
        assert figures["throughput"]["settled"] is True
        assert figures["throughput"]["reports"] == 2_000


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
    for stage in ("urls", "claim", "stats", "search"):
        assert stage in quick_bench["stages"]  # a figure, or null with a note
    assert set(quick_bench["targets"]) >= {
        "scaled_out_reports_per_second", "scaled_out_p99_ms_at_half_load",
        "rdap_network_queries_per_1000_reports", "claim_next_p99_ms_at_100000_waiting",
        "stats_seconds_over_1000000_cases_postgresql", "worker_peak_rss_mb",
        "search_p99_ms_at_1000000_cases_postgresql"}
