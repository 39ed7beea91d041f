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
commits (`watch_sessions`), so no stage has to remember to count. The tracing code
counts what only it sees with the counters `RDAP_CACHE`, `RDAP_RATE_LIMIT_WAITS`,
`RDAP_RATE_LIMIT_WAIT_SECONDS`, `RDAP_REQUESTS` and `DNS_QUERIES` below.
"""

from __future__ import annotations

import collections
import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
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

# For the tracer (issue 4): increment these where the cache and the rate limits are.
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


# --- counted from committed audit events -----------------------------------------------

_watching = False
_PENDING = "hotline_metrics_pending"


def watch_sessions() -> None:
    """Count every committed state change and takedown from the session's events."""
    global _watching
    if _watching:
        return
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    # Before the flush, and before any other listener: pipeline.audit takes the pending
    # events out of the session to insert them in one statement.
    event.listen(Session, "before_flush", _before_flush, insert=True)
    event.listen(Session, "after_commit", _after_commit)
    event.listen(Session, "after_rollback", _after_rollback)
    _watching = True


def _before_flush(session: Any, _context: Any, _instances: Any) -> None:
    from sqlalchemy.orm.util import identity_key

    from pipeline.models import Case, Event

    pending = session.info.setdefault(_PENDING, [])
    for obj in session.new:
        if not isinstance(obj, Event) or obj.to_state is None:
            continue
        item = _item(obj.stream, obj.action, obj.data)
        kind = item["kind"]
        if kind == "case" and obj.to_state == "removed" and obj.case_id is not None:
            case = session.identity_map.get(identity_key(Case, obj.case_id))
            if case is not None:
                item["removed"] = (obj.at, case.received_at, case.notified_at)
        pending.append(item)


def _item(stream: str, action: str, data: dict[str, Any] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"kind": stream.split(":", 1)[0], "action": action}
    if action == "report_received":
        item["channel"] = (data or {}).get("channel", "unknown")
    return item


def note_events(session: Any, rows: list[dict[str, Any]]) -> None:
    """Count state changes inserted as rows, not ORM objects (the stages' batch path,
    `pipeline.audit.insert_events`), when the session commits: one item per kind of
    change with its count (profiled: a `labels()` call per event was a twentieth of a
    worker's time)."""
    if not _watching:
        return
    counts: collections.Counter[tuple[tuple[str, Any], ...]] = collections.Counter(
        tuple(_item(row["stream"], row["action"], row.get("data")).items())
        for row in rows if row.get("to_state") is not None)
    session.info.setdefault(_PENDING, []).extend(
        {**dict(item), "count": count} for item, count in counts.items())


def _after_commit(session: Any) -> None:
    for item in session.info.pop(_PENDING, []):
        count = item.get("count", 1)
        TRANSITIONS.labels(item["kind"], item["action"]).inc(count)
        if "channel" in item:
            REPORTS_RECEIVED.labels(str(item["channel"])).inc(count)
        if "removed" in item:
            at, received, notified = item["removed"]
            if received is not None:
                TAKEDOWN_SECONDS.labels("report").observe(max(0.0, (at - received)
                                                              .total_seconds()))
            if notified is not None:
                TAKEDOWN_SECONDS.labels("notice").observe(max(0.0, (at - notified)
                                                              .total_seconds()))


def _after_rollback(session: Any) -> None:
    session.info.pop(_PENDING, None)


# --- read from the database at scrape time ---------------------------------------------


class DatabaseCollector(Collector):
    """Gauges computed from the database and the broker, cached `refresh_seconds`."""

    def __init__(self, runtime: Any):
        self.runtime = runtime
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._at = -1.0

    def collect(self) -> Iterator[Metric]:
        refresh = self.runtime.settings.metrics.refresh_seconds
        with self._lock:
            if self._at < 0 or time.monotonic() - self._at >= refresh:
                self._cached = self._read()
                self._at = time.monotonic()
            cached = list(self._cached)
        yield from cached

    def _read(self) -> list[Metric]:
        from pipeline.health import backlog, queue_depths, stage_backlog, unreachable_cases

        metrics: list[Metric] = []
        up = GaugeMetricFamily("hotline_database_up", "1 when the database answered the "
                               "metrics queries.")
        try:
            with self.runtime.session_factory() as session:
                counts = backlog(session, self.runtime.clock.now())
                stages = stage_backlog(session, self.runtime.clock.now())
                unreachable = unreachable_cases(session)
        except Exception as exc:
            log.warning("Metrics could not read the database: %s.", type(exc).__name__)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        metrics.append(up)
        by_state = GaugeMetricFamily("hotline_reports", "Reports stored, by state.",
                                     labels=["state"])
        for state, n in sorted(counts["reports_by_state"].items()):
            by_state.add_metric([state], n)
        by_channel = GaugeMetricFamily("hotline_reports_stored", "Reports stored, by channel.",
                                       labels=["channel"])
        for channel, n in sorted(counts["reports_by_channel"].items()):
            by_channel.add_metric([channel], n)
        cases = GaugeMetricFamily("hotline_cases", "Cases, by state.", labels=["state"])
        for state, n in sorted(counts["cases_by_state"].items()):
            cases.add_metric([state], n)
        backlog_gauge = GaugeMetricFamily("hotline_assessment_backlog",
                                          "Cases waiting for or in assessment.",
                                          value=counts["assessment_backlog"])
        oldest = GaugeMetricFamily("hotline_assessment_oldest_age_seconds",
                                   "Age of the case that has waited longest for assessment.",
                                   value=counts["assessment_oldest_age_seconds"])
        notices = GaugeMetricFamily("hotline_notices", "Notices, by state and destination "
                                    "kind.", labels=["state", "destination_kind"])
        for row in counts["notices"]:
            notices.add_metric([row["state"], row["destination_kind"]], row["count"])
        dead = GaugeMetricFamily("hotline_dead_letters", "Dead-lettered messages not yet "
                                 "retried.", value=counts["dead_letters"])
        holds = GaugeMetricFamily("hotline_legal_holds", "Cases under an active legal hold.",
                                  value=counts["legal_holds"])
        # Issue 19: what waits for each automatic stage, and cases traced while the
        # registries were unreachable (their circuits: hotline_registry_circuit_open).
        waiting = GaugeMetricFamily("hotline_stage_backlog", "Items waiting for an "
                                    "automatic stage.", labels=["stage"])
        waited = GaugeMetricFamily("hotline_stage_oldest_age_seconds", "Age of the item "
                                   "that has waited longest for an automatic stage.",
                                   labels=["stage"])
        for stage, row in stages.items():
            waiting.add_metric([stage], row["waiting"])
            waited.add_metric([stage], row["oldest_age_seconds"])
        unreachable_gauge = GaugeMetricFamily(
            "hotline_cases_registries_unreachable", "Cases traced while the registries "
            "were unreachable (origin unknown), waiting to be traced again.",
            value=unreachable)
        metrics += [by_state, by_channel, cases, backlog_gauge, oldest, notices, dead, holds,
                    waiting, waited, unreachable_gauge]
        depth = GaugeMetricFamily("hotline_broker_queue_depth", "Messages enqueued, delayed "
                                  "or in progress, by queue.", labels=["queue"])
        try:
            depths = queue_depths(self.runtime)
        except Exception as exc:
            log.warning("Metrics could not read the broker's queues: %s.", type(exc).__name__)
            depths = {}
        for queue, n in sorted(depths.items()):
            depth.add_metric([queue], n)
        metrics.append(depth)
        return metrics


class _ProcessMetrics(Collector):
    """This process's own counters (the default registry), for a registry of our own."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def process_registry() -> CollectorRegistry:
    """The counters and histograms: this process's, or every process's on this machine
    when PROMETHEUS_MULTIPROC_DIR is set."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_ProcessMetrics())
    return registry


def registry_for(runtime: Any) -> CollectorRegistry:
    """What GET /metrics shows: the counters plus the database gauges."""
    registry = process_registry()
    registry.register(DatabaseCollector(runtime))
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    return generate_latest(registry), CONTENT_TYPE_LATEST


def serve_process_metrics(port: int) -> None:
    """Serve this process's counters on `port` (workers, the scheduler); 0: do nothing."""
    if not port:
        return
    from prometheus_client import start_http_server

    start_http_server(port, registry=process_registry())
    log.info("Metrics served on port %d.", port)
