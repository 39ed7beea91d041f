"""What GET /metrics shows: the process's counters plus gauges read from the database
and the broker at scrape time (reports and cases by state, the assessment backlog,
notices, dead letters, legal holds, queue depths)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from pipeline.app.health import backlog, queue_depths, stage_backlog, unreachable_cases
from pipeline.core.counters import process_registry

log = logging.getLogger(__name__)


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
        # What waits for each automatic stage, and cases traced while the registries
        # were unreachable (their circuits: hotline_registry_circuit_open).
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


def registry_for(runtime: Any) -> CollectorRegistry:
    """What GET /metrics shows: the counters plus the database gauges."""
    registry = process_registry()
    registry.register(DatabaseCollector(runtime))
    return registry
