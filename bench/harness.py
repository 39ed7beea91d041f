"""`python -m bench` (`make bench`): run the workload, print ONE JSON object of figures.

Steps:
1. generate the workload (`BENCH_N` reports, default 100,000; `BENCH_SEED`),
2. start the loopback DNS and RDAP servers for its hosts and networks (tests/netfakes),
3. scaled out: a fresh PostgreSQL database, a Redis (private `redis-server` when
   installed, else the shared one) with a fresh namespace, two `hotline worker` OS
   processes and one `hotline scheduler`; the harness takes the reports in through the
   intake function (`pipeline.stages.intake.accept_reports`, batches of `intake.max_batch`,
   in this process; not over HTTP) and measures:
   - throughput: all N reports offered at once, reports per second from the first
     intake call to the last report settled (its case awaiting assessment, or joined
     to a case, or rejected), from the timestamps the workers wrote;
   - latency: a further stream of reports offered open-loop at half that rate, p50/p99
     from the intake call to a reader seeing each report settled;
   - RDAP queries and DNS questions per 1,000 reports (counted by the loopback
     servers), Redis commands per report (INFO commandstats delta), the workers' CPU
     seconds per 1,000 reports (/proc rusage) and their peak resident memory;
   - that every report is accounted for (see `bench.measure.accounting`);
4. embedded: the same workload on SQLite with the in-process broker and workers,
5. the stage figures of bench/urls.py, bench/claim.py, bench/stats.py, bench/search.py,
   bench/recovery.py and bench/front_door.py (mail messages parsed, form submissions
   per second) when present.
Progress goes to stderr; stdout carries only the JSON. The exit status is 1 when a
report is missing or counted twice.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import intake_paths, measure, services
from bench.netfakes import LoopbackNet, loopback_net
from bench.workload import Workload, generate
from pipeline.core.collector import settle_collector

log = logging.getLogger("bench")

DEFAULT_N = 100_000
QUICK_N = 5_000  # at or below this, stage benchmarks run small (CI smoke test)
TARGETS = {
    "scaled_out_reports_per_second": (">=", 3_000),
    "scaled_out_p99_ms_at_half_load": ("<=", 250),
    "rdap_network_queries_per_1000_reports": ("<=", 2),
    "claim_next_p99_ms_at_100000_waiting": ("<=", 10),
    "stats_seconds_over_1000000_cases_postgresql": ("<=", 5),
    "search_p99_ms_at_1000000_cases_postgresql": ("<=", 200),
    "worker_peak_rss_mb": ("<=", 250),
}


@dataclass
class Options:
    n: int
    seed: int
    latency_seconds: float
    latency_ticks_per_second: float
    workers: int
    worker_threads: int | None
    stages: bool
    embedded: bool
    claim_backlog: int
    stats_cases: int
    recovery: bool = True  # bench/recovery.py: killed processes, about two minutes
    # bench/intake_paths.py: `hotline import` and the HTTP API, each on its own deployment
    intake_paths: tuple[str, ...] = ("import", "api")
    scaled_out: bool = True  # the in-process intake phase (BENCH_SCALED_OUT=0: left out)
    search_cases: int = 1_000_000

    @classmethod
    def from_env(cls, **overrides: Any) -> Options:
        n = int(os.environ.get("BENCH_N", DEFAULT_N))
        quick = n <= QUICK_N
        values: dict[str, Any] = dict(
            n=n,
            seed=int(os.environ.get("BENCH_SEED", 20_260_105)),
            latency_seconds=float(os.environ.get("BENCH_LATENCY_SECONDS", 3 if quick else 20)),
            latency_ticks_per_second=float(os.environ.get("BENCH_TICKS_PER_SECOND", 20)),
            workers=int(os.environ.get("BENCH_WORKERS", 2)),
            worker_threads=int(os.environ["BENCH_WORKER_THREADS"])
            if "BENCH_WORKER_THREADS" in os.environ else None,
            stages=os.environ.get("BENCH_STAGES", "1") != "0",
            embedded=os.environ.get("BENCH_EMBEDDED", "1") != "0",
            scaled_out=os.environ.get("BENCH_SCALED_OUT", "1") != "0",
            claim_backlog=int(os.environ.get("BENCH_CLAIM_BACKLOG", 2_000 if quick else 100_000)),
            stats_cases=int(os.environ.get("BENCH_STATS_CASES", 2_000 if quick else 1_000_000)),
            recovery=os.environ.get("BENCH_RECOVERY", "0" if quick else "1") != "0",
            search_cases=int(os.environ.get("BENCH_SEARCH_CASES",
                                            2_000 if quick else 1_000_000)),
            intake_paths=tuple(p for p in os.environ.get(
                "BENCH_INTAKE_PATHS", "import,api").split(",") if p.strip()),
        )
        values.update(overrides)
        return cls(**values)


@dataclass
class Deployment:
    """What the phases need from either mode."""

    name: str
    runtime: Any
    measured_pids: Callable[[], list[int]]  # processes whose CPU/RSS we report
    redis_url: str | None = None
    notes: list[str] = field(default_factory=list)
    config: Path | None = None  # scaled out: the processes' configuration file
    other_pids: dict[str, list[int]] = field(default_factory=dict)  # e.g. the scheduler


# -- taking reports in -----------------------------------------------------------


def validate(reports: Sequence[dict[str, Any]]) -> list[Any]:
    from schemas.intake import ReportIn

    return [ReportIn.model_validate(r) for r in reports]


def submit(runtime: Any, items: Sequence[Any]) -> list[int]:
    """Take `items` in as the web app does (settling at intake what it would); the
    reports' ids."""
    from pipeline.app.tracers import settler_for
    from pipeline.stages.intake import accept_reports

    _, accepted = accept_reports(
        runtime.session_factory, items, clock=runtime.clock, limits=runtime.settings.intake,
        enqueuer=runtime.enqueuer, source="bench", settle=settler_for(runtime))
    return [a.id for a in accepted]


def submit_all(runtime: Any, reports: Sequence[dict[str, Any]]) -> None:
    """Offer everything at once: validate and take in batches of `intake.max_batch`."""
    size = runtime.settings.intake.max_batch
    for start in range(0, len(reports), size):
        submit(runtime, validate(reports[start:start + size]))


def submit_at_rate(runtime: Any, reports: Sequence[dict[str, Any]], rate: float,
                   ticks_per_second: float,
                   watcher: measure.SettleWatcher | None = None) -> dict[str, Any]:
    """Open loop: every tick, take in the reports due by then (never waits for the
    pipeline). Returns the rate actually offered; `watcher` is told of each report as
    its intake call began."""
    per_tick = max(1, round(rate / ticks_per_second))
    tick = per_tick / rate
    started = time.monotonic()
    sent = 0
    late_ticks = 0
    while sent < len(reports):
        due = started + (sent // per_tick) * tick
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -tick:
            late_ticks += 1
        batch = reports[sent:sent + per_tick]
        began = time.monotonic()
        ids = submit(runtime, validate(batch))
        if watcher is not None:
            watcher.handed_in(ids, began)
        sent += len(batch)
    elapsed = time.monotonic() - started
    return {"offered": sent, "offered_per_second": round(sent / elapsed, 1) if elapsed else None,
            "reports_per_tick": per_tick, "late_ticks": late_ticks}


# -- one deployment ----------------------------------------------------------------


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        if pid == os.getpid():
            total += services.own_cpu_seconds()
        else:
            with contextlib.suppress(FileNotFoundError):
                total += services.process_stats(pid).cpu_seconds
    return total


def _per(value: float, n: int, scale: int = 1) -> float | None:
    return round(value * scale / n, 3) if n else None


def run_phases(dep: Deployment, workload: Workload, opts: Options,
               net: LoopbackNet | None) -> dict[str, Any]:
    rt = dep.runtime
    main = workload.reports[:opts.n]
    extra = workload.reports[opts.n:]
    out: dict[str, Any] = {"notes": dep.notes}
    # This process takes the reports in, as the web app does (`hotline serve`, which in
    # embedded mode also runs the workers): it settles its collector as the web app
    # does once started. Without it, full collections of the harness's own heap (the
    # workload: about 200,000 objects) paused intake for 120-180 ms twice in the
    # latency phase (measured with `gc.callbacks`): the two slowest of 175 ticks, the
    # whole of the p99.
    settle_collector()

    # Throughput: everything offered at once.
    redis_before = services.redis_command_calls(dep.redis_url) if dep.redis_url else None
    cpu_before = _cpu(dep.measured_pids())
    every = every_process_sampler(dep)
    net_before = net.counts() if net else None
    log.info("%s: taking in %d reports as fast as possible.", dep.name, len(main))
    started = datetime.now(UTC)
    t0 = time.monotonic()
    submit_all(rt, main)
    intake_seconds = time.monotonic() - t0
    settled, counts = measure.wait_until_settled(rt.session_factory, len(main))
    with rt.session_factory() as session:
        finished = measure.finish_time(session, 0)
        times = measure.settle_times(session, 0)
    p99_done = times[min(len(times) - 1, int(len(times) * 0.99))] if times else None
    cpu_after = _cpu(dep.measured_pids())
    if every is not None:
        out["cpu_ms_per_report"] = measure.cpu_ms_per_report(every.stop(), len(main))
    redis_after = services.redis_command_calls(dep.redis_url) if dep.redis_url else None
    net_after = net.counts() if net else None
    seconds = (finished - started).total_seconds() if finished else None
    rate = len(main) / seconds if seconds and settled else None
    out["throughput"] = {
        "reports": len(main),
        "settled": settled,
        "intake_seconds": round(intake_seconds, 2),
        "intake_reports_per_second": round(len(main) / intake_seconds, 1),
        "seconds_to_awaiting_assessment": round(seconds, 2) if seconds else None,
        "reports_per_second": round(rate, 1) if rate else None,
        # The slowest 1% (e.g. traces retried later) apart:
        "seconds_to_99_percent_settled": round((p99_done - started).total_seconds(), 2)
        if p99_done else None,
        "reports_per_second_first_99_percent": round(
            0.99 * len(main) / (p99_done - started).total_seconds(), 1) if p99_done else None,
    }
    out["cpu_seconds_per_1000_reports"] = _per(cpu_after - cpu_before, len(main), 1000)
    out["redis_commands_per_report"] = (
        _per(redis_after - redis_before, len(main)) if redis_after is not None
        and redis_before is not None else None
    )
    if net_before is not None and net_after is not None:
        delta = {k: net_after.get(k, 0) - net_before.get(k, 0) for k in net_after}
        out["loopback_queries"] = delta
        out["rdap_queries_per_1000_reports"] = _per(delta.get("rdap", 0), len(main), 1000)
        # Network (/ip) and ASN questions: what hosts sharing networks should save.
        # Domain (registrar) questions scale with distinct registered domains instead.
        out["rdap_network_queries_per_1000_reports"] = _per(
            delta.get("rdap_ip", 0) + delta.get("rdap_autnum", 0), len(main), 1000)
        out["rdap_domain_queries_per_1000_reports"] = _per(
            delta.get("rdap_domain", 0), len(main), 1000)
        out["dns_queries_per_1000_reports"] = _per(delta.get("dns", 0), len(main), 1000)
    else:
        out["rdap_queries_per_1000_reports"] = None
        out["dns_queries_per_1000_reports"] = None
    if not settled:
        out["throughput"]["stalled_at"] = counts
        out["latency_at_half_load"] = None
    else:
        out["latency_at_half_load"] = run_latency(dep, extra, rate or 0, opts)
    latency = out.get("latency_at_half_load")
    with rt.session_factory() as session:
        out["accounting"] = measure.accounting(
            session, len(main) + (latency["offered"] if latency else 0))
    rss = []
    for pid in dep.measured_pids():
        with contextlib.suppress(FileNotFoundError):
            rss.append(services.process_stats(pid).peak_rss_bytes)
    out["peak_rss_mb_per_process"] = [round(r / 2**20, 1) for r in rss]
    return out


def every_process_sampler(dep: Deployment) -> measure.CpuSampler | None:
    """Scaled out: the CPU of every process over the throughput phase (this process's
    intake, the workers, the scheduler, the database's backends, Redis, the loopback
    servers)."""
    if dep.config is None:
        return None

    def groups() -> dict[str, list[int]]:
        with dep.runtime.session_factory() as session:
            backends = measure.postgres_backend_pids(session, set())
        return {"intake": [os.getpid()], "workers": dep.measured_pids(),
                "postgresql": backends, **dep.other_pids}

    return measure.CpuSampler(groups).start()


def run_latency(dep: Deployment, reports: Sequence[dict[str, Any]], max_rate: float,
                opts: Options) -> dict[str, Any] | None:
    rt = dep.runtime
    rate = max_rate / 2
    count = min(len(reports), max(1, int(rate * opts.latency_seconds)))
    if rate <= 0 or count < 10:
        return None
    with rt.session_factory() as session:
        floor = measure.max_report_id(session)
    log.info("%s: offering %d reports at %.0f/s (half the measured maximum).",
             dep.name, count, rate)
    watcher = measure.SettleWatcher(rt.session_factory).start()
    offered = submit_at_rate(rt, reports[:count], rate, opts.latency_ticks_per_second,
                             watcher)
    settled, _ = measure.wait_until_settled(rt.session_factory, count, min_report_id=floor)
    unseen = watcher.stop()
    return {
        "target_rate_per_second": round(rate, 1),
        **offered,
        "settled": settled and not unseen,
        "intake_to_awaiting_assessment": measure.latency_summary(watcher.opened_case),
        "intake_to_settled_all_reports": measure.latency_summary(watcher.all_reports),
        "note": "from the intake call that handed each report in to the report seen "
                "settled by a reader (polled every 5 ms)",
    }


# -- the two modes -----------------------------------------------------------------


def _base_values(tmp: Path, net: LoopbackNet | None) -> dict[str, Any]:
    key_file = tmp / "encryption.key"
    if not key_file.exists():
        from cryptography.fernet import Fernet

        key_file.write_text(Fernet.generate_key().decode() + "\n")
        key_file.chmod(0o600)
    values: dict[str, Any] = {
        "app": {"data_dir": str(tmp / "var")},
        "logging": {"level": "WARNING"},
        "privacy": {"encryption_key_file": str(key_file)},
    }
    if net is not None:
        values["trace"] = net.trace_settings()
    return values


def _overridden(values: dict[str, Any]) -> dict[str, Any]:
    """`values` with the sections of `BENCH_CONFIG` (JSON, e.g.
    '{"worker": {"batch_size": 500}}') laid over it, key by key: to try a setting."""
    extra = json.loads(os.environ.get("BENCH_CONFIG") or "{}")
    for section, settings in extra.items():
        values[section] = {**values.get(section, {}), **settings}
    return values


@contextlib.contextmanager
def scaled_out(tmp: Path, redis: services.RedisServer, net: LoopbackNet | None,
               opts: Options) -> Iterator[Deployment]:
    from pipeline.app.runtime import build_runtime
    from pipeline.core.config import Settings
    from pipeline.store.migrate import upgrade
    from workers.broker import install

    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    with services.fresh_pg_database() as pg_url:
        upgrade(pg_url)
        values = _base_values(tmp, net)
        values.update({
            "app": {**values["app"], "mode": "production"},
            "database": {"url": pg_url, "pool_size": 10},
            "broker": {"url": redis.url, "namespace": namespace},
            "redis": {"url": redis.url, "namespace": namespace},
        })
        config = services.write_config(tmp / "scaled-out.yaml", _overridden(values))
        workers = [services.start_worker(config, tmp / f"worker-{i}.log",
                                         threads=opts.worker_threads)
                   for i in range(opts.workers)]
        scheduler = services.start_process(config, tmp / "scheduler.log", "scheduler")
        runtime = None
        try:
            services.wait_for_consumers(redis.url, namespace, len(workers), workers=workers)
            runtime = build_runtime(Settings(**values))
            install(runtime)
            notes = [f"{len(workers)} `hotline worker` processes, one `hotline scheduler`; "
                     "intake through pipeline.stages.intake.accept_reports in the harness process"]
            if not redis.private:
                notes.append("shared Redis: command counts include other clients")
            yield Deployment("scaled_out", runtime, lambda: [w.pid for w in workers],
                             redis_url=redis.url, notes=notes, config=config,
                             other_pids={"scheduler": [scheduler.pid],
                                         **_service_pids(redis, net)})
        finally:
            for worker in workers:
                worker.stop()
            scheduler.stop()
            if runtime is not None:
                runtime.close()
            if os.environ.get("BENCH_LOG_DIR"):  # keep the processes' logs for a look
                import shutil

                for worker in [*workers, scheduler]:
                    shutil.copy(worker.log, os.environ["BENCH_LOG_DIR"])


@contextlib.contextmanager
def embedded(tmp: Path, net: LoopbackNet | None, opts: Options) -> Iterator[Deployment]:
    from pipeline.app.runtime import build_runtime
    from pipeline.app.scheduler import run_forever
    from pipeline.core.config import Settings
    from pipeline.store.migrate import upgrade
    from workers.broker import install, start_worker

    values = _base_values(tmp, net)
    values["database"] = {"url": f"sqlite:///{tmp}/embedded.db"}
    values["broker"] = {"url": "memory://"}
    upgrade(values["database"]["url"])
    settings = Settings(**_overridden(values))
    runtime = build_runtime(settings)
    broker = install(runtime)
    worker = start_worker(broker, opts.worker_threads or settings.worker.threads)
    stop = threading.Event()
    scheduler = threading.Thread(target=run_forever, args=(runtime, stop), daemon=True)
    scheduler.start()
    try:
        yield Deployment("embedded", runtime, lambda: [os.getpid()], notes=[
            "one process: SQLite, in-process broker and worker threads, scheduler thread; "
            "CPU and memory include the harness's own intake work"])
    finally:
        stop.set()
        worker.stop()
        scheduler.join(5)
        runtime.close()


# -- stage benchmarks ------------------------------------------------------------


def stage_figures(tmp: Path, redis: services.RedisServer, opts: Options) -> dict[str, Any]:
    """Figures of bench/urls.py, claim.py, stats.py, search.py, recovery.py and
    front_door.py (null when absent)."""
    out: dict[str, Any] = {}

    def guarded(name: str, call: Callable[[Any], dict[str, Any]]) -> None:
        try:
            module = importlib.import_module(f"bench.{name}")
        except ImportError as exc:
            out[name] = None
            out[f"{name}_note"] = f"bench/{name}.py is not available: {exc}"
            return
        log.info("Stage benchmark %s.", name)
        try:
            out[name] = call(module)
        except Exception as exc:
            out[name] = None
            out[f"{name}_note"] = f"failed: {exc!r}"
            log.error("Stage benchmark %s failed:\n%s", name, traceback.format_exc())

    guarded("urls", lambda m: m.run(redis.url, opts.n))

    def claim(module: Any) -> dict[str, Any]:
        with services.fresh_pg_database("hotline_bench_claim") as url:
            return dict(module.run(url, opts.claim_backlog))

    guarded("claim", claim)

    def stats(module: Any) -> dict[str, Any]:
        with services.fresh_pg_database("hotline_bench_stats") as url:
            return dict(module.run(url, f"sqlite:///{tmp}/stats.db", opts.stats_cases))

    guarded("stats", stats)

    def recovery(module: Any) -> dict[str, Any]:
        # Standby scheduler takeover and dead dispatch workers' notices back.
        workdir = tmp / "recovery"
        workdir.mkdir(exist_ok=True)
        with services.fresh_pg_database("hotline_bench_recovery") as url:
            figures = dict(module.run(redis.url, url, workdir))
        log.info("Recovery: scheduler takeover %.1f s after SIGKILL (lease %s s); a killed "
                 "worker's notices back in %s s at most.", figures["scheduler_takeover_s"],
                 figures["scheduler_lease_s"], figures["dead_worker_recovery_s"])
        return figures

    if opts.recovery:
        guarded("recovery", recovery)
    else:
        out["recovery"] = None
        out["recovery_note"] = "not run in quick mode (BENCH_RECOVERY=1 runs it)"
    # The mailbox's parser and the public form.
    guarded("front_door", lambda m: m.run(tmp, opts.n))
    def search(module: Any) -> dict[str, Any]:
        with services.fresh_pg_database("hotline_bench_search") as url:
            return dict(module.run(url, opts.search_cases))

    guarded("search", search)
    return out


# -- targets -----------------------------------------------------------------------


def _find(figures: Any, *names: str) -> Any:
    """The first value under any of `names`, searched depth-first."""
    if isinstance(figures, dict):
        for name in names:
            if name in figures and not isinstance(figures[name], dict):
                return figures[name]
        for value in figures.values():
            found = _find(value, *names)
            if found is not None:
                return found
    return None


def targets(result: dict[str, Any], opts: Options) -> dict[str, Any]:
    scaled = result.get("scaled_out") or {}
    stages = result.get("stages") or {}
    rss = scaled.get("peak_rss_mb_per_process") or []
    measured: dict[str, Any] = {
        "scaled_out_reports_per_second": (scaled.get("throughput") or {}).get(
            "reports_per_second"),
        "scaled_out_p99_ms_at_half_load": ((scaled.get("latency_at_half_load") or {}).get(
            "intake_to_awaiting_assessment") or {}).get("p99_ms"),
        "rdap_network_queries_per_1000_reports": scaled.get(
            "rdap_network_queries_per_1000_reports"),
        "claim_next_p99_ms_at_100000_waiting": _find(stages.get("claim"), "p99_ms",
                                                     "claim_p99_ms"),
        "stats_seconds_over_1000000_cases_postgresql": _find(
            stages.get("stats"), "postgresql_seconds", "pg_seconds", "postgresql"),
        "search_p99_ms_at_1000000_cases_postgresql": _find(stages.get("search"),
                                                           "search_p99_ms"),
        "worker_peak_rss_mb": max(rss) if rss else None,
    }
    out = {}
    for name, (op, bound) in TARGETS.items():
        value = measured[name]
        met = None if not isinstance(value, int | float) else (
            value >= bound if op == ">=" else value <= bound)
        out[name] = {"target": f"{op} {bound}", "measured": value, "met": met}
    out["rdap_network_queries_per_1000_reports"]["note"] = (
        "RDAP /ip and /autnum questions (hosts sharing networks); /domain questions for "
        "registrars are counted apart (rdap_domain_queries_per_1000_reports): one per "
        "distinct registered domain")
    if opts.claim_backlog != 100_000:
        out["claim_next_p99_ms_at_100000_waiting"]["note"] = (
            f"measured at a backlog of {opts.claim_backlog}")
    if opts.stats_cases != 1_000_000:
        out["stats_seconds_over_1000000_cases_postgresql"]["note"] = (
            f"measured over {opts.stats_cases} cases")
    return out


# -- main --------------------------------------------------------------------------


def run(opts: Options) -> dict[str, Any]:
    extra = max(opts.n // 2, 1_000)
    workload = generate(opts.n + extra, opts.seed)
    result: dict[str, Any] = {
        "benchmark": "hotline intake to awaiting assessment",
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "n": opts.n,
        "seed": opts.seed,
        "intake": "pipeline.stages.intake.accept_reports called in the harness process in batches "
                  "of intake.max_batch (1,000), not over HTTP",
        "workload": {**generate_summary(workload, opts.n), "latency_pool": extra},
    }
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="hotline-bench-") as name:
        tmp = Path(name)
        # Only the settings the harness writes count, not ./config.yaml or HOTLINE_*.
        for key in [k for k in os.environ if k.startswith("HOTLINE_")]:
            del os.environ[key]
        os.environ["HOTLINE_CONFIG"] = str(services.write_config(tmp / "empty.yaml", {}))
        with loopback_net(workload, tmp) as net, services.redis_server(tmp) as redis:
            if net is None:
                notes.append("tests/netfakes is not available: no loopback DNS/RDAP; the "
                             "trace stage runs with its defaults (pass-through until it lands)")
            if opts.scaled_out:
                with scaled_out(tmp, redis, net, opts) as dep:
                    result["scaled_out"] = run_phases(dep, workload, opts, net)
                log.info("scaled_out figures: %s", json.dumps(result["scaled_out"], default=str))
            for path in opts.intake_paths:  # the real intake paths, each on a fresh deployment
                with scaled_out(tmp, redis, net, opts) as dep:
                    result[f"scaled_out_{path}"] = intake_paths.run(
                        path, dep, workload.reports[:opts.n], tmp)
                log.info("scaled_out_%s figures: %s", path,
                         json.dumps(result[f"scaled_out_{path}"], default=str))
            if opts.embedded:
                with embedded(tmp, net, opts) as dep:
                    result["embedded"] = run_phases(dep, workload, opts, net)
                log.info("embedded figures: %s", json.dumps(result["embedded"], default=str))
            result["stages"] = stage_figures(tmp, redis, opts) if opts.stages else None
    result["targets"] = targets(result, opts)
    result["accounted"] = all(
        (result.get(mode) or {}).get("accounting", {}).get("ok", False)
        for mode in ("scaled_out", "embedded", *(f"scaled_out_{p}" for p in opts.intake_paths))
        if mode in result)
    result["notes"] = notes
    return result


def _service_pids(redis: services.RedisServer, net: LoopbackNet | None) -> dict[str, list[int]]:
    """Redis (when private) and the loopback DNS/RDAP servers: their CPU counts too."""
    out = {}
    if redis.process is not None:
        out["redis"] = [redis.process.pid]
    if net is not None:
        out["loopback_dns_rdap"] = [net.process.pid]
    return out


def generate_summary(workload: Workload, n: int) -> dict[str, Any]:
    head = Workload(workload.seed, workload.reports[:n], workload.hosts, workload.networks,
                    workload.kinds[:n])
    return head.summary()


def compile_sources() -> None:
    """Byte-compile hotline's own packages, as installing a wheel does, so that the
    processes the phases start (`hotline import` above all: its start is part of the
    first report's time) load them instead of compiling every module on each start.
    An editable install compiles nothing, and with PYTHONDONTWRITEBYTECODE set (this
    machine's environment) Python never writes what it compiles: measured, the first
    report of an import was seen stored 294–300 ms after the launch, 173 ms once
    compiled."""
    import compileall

    root = Path(__file__).resolve().parents[1]
    for package in ("pipeline", "workers", "schemas"):
        compileall.compile_dir(root / package, quiet=1)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO)
    compile_sources()
    result = run(Options.from_env())
    json.dump(result, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
    return 0 if result["accounted"] else 1
