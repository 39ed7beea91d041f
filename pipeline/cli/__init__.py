"""The `hotline` command. Each concern adds its commands in a module beside this one."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from pipeline.config import Settings, load_settings
from pipeline.errors import BadInput, ConfigError
from pipeline.runtime import Runtime, build_runtime


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"hotline: configuration error: {problem}", err=True)
        sys.exit(2)


def setup_logging(settings: Settings) -> None:
    from pipeline.logs import configure

    configure(settings.logging)


def runtime_with_broker(settings: Settings) -> tuple[Runtime, Any]:
    """A runtime whose enqueuer sends through the configured broker."""
    from workers.broker import install

    runtime = build_runtime(settings)
    broker = install(runtime)
    return runtime, broker


def drain_if_embedded(settings: Settings, broker: Any) -> None:
    """With the in-process broker nobody else will consume what this command queued:
    run the stages here until the queues are empty."""
    if settings.broker.is_redis:
        return
    from workers.broker import drain, start_worker

    worker = start_worker(broker, settings.worker.threads)
    try:
        drain(broker, worker)
    finally:
        worker.stop()


@click.group()
@click.version_option(package_name="hotline")
def main() -> None:
    """hotline: the case-processing pipeline of an internet hotline."""


@main.command()
def migrate() -> None:
    """Bring the database to the latest schema."""
    from pipeline.migrate import upgrade

    settings = settings_or_exit()
    upgrade(settings.database.url)
    click.echo(f"Database at {_safe_url(settings.database.url)} is at the latest schema.")


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command()
def run() -> None:
    """Run the whole system in one process (embedded mode)."""
    import uvicorn

    from pipeline.migrate import upgrade
    from pipeline.scheduler import run_forever
    from pipeline.web.app import create_app
    from workers.broker import start_worker

    settings = settings_or_exit()
    setup_logging(settings)
    upgrade(settings.database.url)
    runtime, broker = runtime_with_broker(settings)
    worker = start_worker(broker, settings.worker.threads)
    stop = threading.Event()
    scheduler = threading.Thread(target=run_forever, args=(runtime, stop), daemon=True,
                                 name="scheduler")
    scheduler.start()
    url = f"http://{settings.web.host}:{settings.web.port}/"
    click.echo(f"hotline is running in {settings.app.mode} mode.")
    click.echo(f"  web app and API: {url}  (API docs: {url}docs)")
    click.echo(f"  database: {_safe_url(settings.database.url)}; broker: {settings.broker.url}")
    click.echo("  Press Ctrl-C to stop.")
    try:
        uvicorn.run(create_app(runtime), host=settings.web.host, port=settings.web.port,
                    log_level="warning", log_config=None)
    finally:
        stop.set()
        worker.stop()
        scheduler.join(timeout=5)
        runtime.close()


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host).")
@click.option("--port", default=None, type=int, help="Port (default: web.port).")
def serve(host: str | None, port: int | None) -> None:
    """Run the web app only (scaled-out deployment)."""
    import uvicorn

    from pipeline.web.app import create_app

    settings = settings_or_exit()
    setup_logging(settings)
    runtime, _ = runtime_with_broker(settings)
    uvicorn.run(create_app(runtime), host=host or settings.web.host,
                port=port or settings.web.port, log_level="warning", log_config=None)


@main.command()
@click.option("--threads", default=None, type=int, help="Worker threads (default: worker.threads).")
def worker(threads: int | None) -> None:
    """Run one worker process that consumes every stage's queue."""
    from workers.broker import check_broker_safe, start_worker

    settings = settings_or_exit()
    setup_logging(settings)
    if not settings.broker.is_redis:
        raise click.UsageError("hotline worker needs a Redis broker (broker.url); "
                               "use `hotline run` for the embedded mode")
    runtime, broker = runtime_with_broker(settings)
    try:
        check_broker_safe(settings)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from pipeline.metrics import serve_process_metrics

    serve_process_metrics(settings.metrics.port)  # this worker's counters (issue 10)
    worker = start_worker(broker, threads or settings.worker.threads)
    logging.getLogger(__name__).info("Worker started with %d threads.", worker.worker_threads)
    stop.wait()
    worker.stop()
    runtime.close()


@main.command()
def scheduler() -> None:
    """Run the scheduler (reconciler and periodic jobs). Run exactly one."""
    from pipeline.scheduler import run_forever

    settings = settings_or_exit()
    setup_logging(settings)
    runtime, _ = runtime_with_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from pipeline.metrics import serve_process_metrics

    serve_process_metrics(settings.metrics.port)  # the scheduler's counters (issue 10)
    run_forever(runtime, stop)
    runtime.close()


@main.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--channel", default="api", show_default=True, help="How the report came in.")
@click.option("--category", default=None, help="Claimed category (e.g. csam).")
@click.option("--description", default=None, help="The reporter's words.")
def submit(urls: tuple[str, ...], channel: str, category: str | None,
           description: str | None) -> None:
    """Report one or more URLs; prints a tracking reference per URL."""
    from pydantic import ValidationError

    from pipeline.intake import accept_reports
    from schemas.intake import ReportIn

    settings = settings_or_exit()
    runtime, broker = runtime_with_broker(settings)
    try:
        items = [ReportIn.model_validate({"url": u, "channel": channel,
                                          "claimed_category": category,
                                          "description": description}) for u in urls]
        submission, accepted = accept_reports(
            runtime.session_factory, items, clock=runtime.clock, limits=settings.intake,
            enqueuer=runtime.enqueuer,
        )
    except ValidationError as exc:
        from pipeline.web.app import describe_validation_errors

        raise click.ClickException("; ".join(describe_validation_errors(exc.errors()))) from None
    except BadInput as exc:
        raise click.ClickException(str(exc)) from None
    for item in accepted:
        click.echo(json.dumps({"reference": item.ref, "url": item.url,
                               "submission": submission}))
    drain_if_embedded(settings, broker)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Who sent the file (a partner hotline...).")
def import_(file: Path, source: str | None) -> None:
    """Import reports from a JSON Lines (.jsonl) or CSV (.csv) file."""
    from pipeline.importer import import_file

    settings = settings_or_exit()
    runtime, broker = runtime_with_broker(settings)
    try:
        result = import_file(file, runtime.session_factory, clock=runtime.clock,
                             limits=settings.intake, enqueuer=runtime.enqueuer, source=source)
    except BadInput as exc:
        raise click.ClickException(str(exc)) from None
    for line, error in result.errors:
        click.echo(f"{file}:{line}: {error}", err=True)
    click.echo(f"Imported {result.imported} reports (submission {result.submission}); "
               f"{len(result.errors)} lines refused.")
    drain_if_embedded(settings, broker)
    if result.errors:
        sys.exit(1)


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Check every hash chain; name each edited, deleted or reordered event."""
    from pipeline.audit import verify

    settings = settings_or_exit()
    runtime = build_runtime(settings)
    with runtime.session_factory() as session:
        problems = verify(session)
    for problem in problems:
        click.echo(f"TAMPERED {problem}")
    if problems:
        sys.exit(1)
    click.echo("Audit trail intact.")


@main.group(invoke_without_command=True)
@click.pass_context
def deadletters(ctx: click.Context) -> None:
    """Messages that failed past their retries."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(deadletters_list)


@deadletters.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include those already retried.")
def deadletters_list(show_all: bool) -> None:
    from pipeline.deadletters import list_dead_letters

    settings = settings_or_exit()
    runtime = build_runtime(settings)
    with runtime.session_factory() as session:
        rows = list_dead_letters(session, include_retried=show_all)
    if not rows:
        click.echo("No dead letters.")
    for row in rows:
        click.echo(f"{row.id}\t{row.failed_at:%Y-%m-%d %H:%M:%S}\t{row.actor}\t"
                   f"{len(row.args[0]) if row.args and isinstance(row.args[0], list) else ''}"
                   f" ids\t{row.error}")


@deadletters.command("retry")
@click.argument("ids", nargs=-1, type=int)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead letter not yet retried.")
def deadletters_retry(ids: tuple[int, ...], retry_all: bool) -> None:
    """Send dead-lettered messages again."""
    from pipeline.deadletters import retry_dead_letters

    settings = settings_or_exit()
    runtime, _ = runtime_with_broker(settings)
    if not ids and not retry_all:
        raise click.UsageError("name dead letter ids or use --all")
    count = retry_dead_letters(runtime, list(ids) or None)
    click.echo(f"Sent {count} dead letters again.")


@main.command()
def reconcile() -> None:
    """Enqueue again every report and case stuck past the deadline (once)."""
    from pipeline.scheduler import JOBS

    settings = settings_or_exit()
    runtime, _ = runtime_with_broker(settings)
    job = next(j for j in JOBS if j.name == "reconcile")
    click.echo(json.dumps(job.run(runtime)))


@main.group()
def config() -> None:
    """The configuration."""


@config.command("check")
def config_check() -> None:
    """Validate the configuration and print it (secrets hidden)."""
    settings = settings_or_exit()
    click.echo(json.dumps(_hide_url_passwords(settings.model_dump(mode="json")), indent=2))


def _hide_url_passwords(value: Any) -> Any:
    """Database, broker and Redis URLs may carry a password: print them without it."""
    if isinstance(value, dict):
        return {k: _hide_url_passwords(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hide_url_passwords(v) for v in value]
    if isinstance(value, str) and "://" in value and "@" in value:
        try:
            return _safe_url(value)
        except Exception:  # not a URL SQLAlchemy can read: hide the user part whole
            scheme, rest = value.split("://", 1)
            return f"{scheme}://***@{rest.rsplit('@', 1)[1]}"
    return value


def _register_plugins() -> None:
    """Commands of the other parts of the pipeline (each module adds to `main`)."""
    import importlib

    for name in PLUGINS:
        importlib.import_module(f"pipeline.cli.{name}")


# Modules in pipeline/cli/ that add commands to `main`.
PLUGINS: list[str] = ["urls", "users", "assessment", "ops", "rules", "stats", "trace",
                      "notices"]
_register_plugins()
