"""Prometheus metrics (prometheus-client).

Two kinds:
- counters and histograms kept in the process that counts (reports taken in per
  channel, state changes, stage messages with their duration and failures, takedown
  times, RDAP cache and rate limits). With `PROMETHEUS_MULTIPROC_DIR` set in the
  environment of every process on a machine, prometheus-client keeps them in files
  there and any process's /metrics sums them (its multiprocess mode);
- gauges read from the database (and the broker) at scrape time by
  `DatabaseCollector`: reports and cases by state, the assessment backlog and the age
  of its oldest case, notices by state and destination kind, dead letters, legal
  holds and broker queue depths. Every web process answers the same for these.

State changes and takedown times are counted from the audit events a session
commits (`pipeline.store.listeners.watch_sessions`), so no stage has to remember to
count; the database gauges are `pipeline.app.metrics.DatabaseCollector`. The tracing code
counts what only it sees with the counters `RDAP_CACHE`, `RDAP_RATE_LIMIT_WAITS`,
`RDAP_RATE_LIMIT_WAIT_SECONDS`, `RDAP_REQUESTS` and `DNS_QUERIES` below.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
    start_http_server,
)
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
disable_created_metrics()  # the *_created series only double what Prometheus knows

HOUR, DAY = 3600.0, 86400.0
TAKEDOWN_BUCKETS = (HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 3 * DAY, 5 * DAY, 7 * DAY,
                    14 * DAY, 30 * DAY, 90 * DAY)
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

# --- counted in the process ------------------------------------------------------------

REPORTS_RECEIVED = Counter(
    "hotline_reports_received", "Reports taken in, by channel.", ["channel"])
TRANSITIONS = Counter(
    "hotline_transitions", "State changes committed, by kind of item and action.",
    ["kind", "action"])
STAGE_MESSAGES = Counter(
    "hotline_stage_messages", "Stage messages processed, by stage and outcome "
    "(ok, failed, skipped).", ["stage", "outcome"])
STAGE_ITEMS = Counter(
    "hotline_stage_items", "Ids carried by processed stage messages (throughput).", ["stage"])
STAGE_SECONDS = Histogram(
    "hotline_stage_duration_seconds", "Time one stage message took.", ["stage"],
    buckets=STAGE_BUCKETS)
STAGE_FAILURES = Counter(
    "hotline_stage_failures", "Stage messages that raised, by stage and error type.",
    ["stage", "error"])
TAKEDOWN_SECONDS = Histogram(
    "hotline_takedown_seconds", "Time until content was confirmed removed, from the first "
    "report (since=report) and from the first notice (since=notice).", ["since"],
    buckets=TAKEDOWN_BUCKETS)

# For the tracer: increment these where the cache and the rate limits are.
RDAP_CACHE = Counter(
    "hotline_rdap_cache", "RDAP lookups answered from the cache (hit) or not (miss).",
    ["result"])
RDAP_REQUESTS = Counter(
    "hotline_rdap_requests", "RDAP requests sent, by registry and outcome (ok, not_found, "
    "rate_limited, server_error, error, timeout, unreachable).", ["registry", "outcome"])
RDAP_RATE_LIMIT_WAITS = Counter(
    "hotline_rdap_rate_limit_waits", "Times an RDAP lookup waited for a registry's rate "
    "limit.", ["registry"])
RDAP_RATE_LIMIT_WAIT_SECONDS = Counter(
    "hotline_rdap_rate_limit_wait_seconds", "Seconds spent waiting for registries' rate "
    "limits.", ["registry"])
DNS_QUERIES = Counter(
    "hotline_dns_queries", "DNS questions asked, by record type and outcome (ok, no_answer, "
    "nxdomain, servfail, timeout, error).", ["rdtype", "outcome"])



class _ProcessMetrics(Collector):
    """This process's own counters (the default registry), for a registry of our own."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def process_registry() -> CollectorRegistry:
    """The counters and histograms: this process's, or every process's on this machine
    when PROMETHEUS_MULTIPROC_DIR is set."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_process_metrics(port: int) -> None:
    """Serve this process's counters on `port` (workers, the scheduler); 0: do nothing."""
    if not port:
        return
    start_http_server(port, registry=process_registry())
    log.info("Metrics served on port %d.", port)
