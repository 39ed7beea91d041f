"""The `hotline` command. Each concern adds its commands in a module beside this one.

Start-up is kept cheap for the commands that take reports in (`hotline import`,
`hotline submit`): the modules beside this one are imported only when a command of
theirs is looked up (or the commands are listed), and the heavy parts of the
application only inside the commands that need them. Measured with
`python -X importtime -m pipeline.cli import ...`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from pipeline.core.collector import settle_collector
from pipeline.core.config import Settings, load_settings
from pipeline.core.errors import BadInput, ConfigError

if TYPE_CHECKING:
    from pipeline.app.runtime import Runtime


def build_runtime(settings: Settings) -> Runtime:
    """`pipeline.app.runtime.build_runtime`, imported when a command first needs it."""
    from pipeline.app.runtime import build_runtime as build

    return build(settings)


def shell_language() -> str:
    """The language of the shell (LANGUAGE or LANG), English by default."""
    from pipeline.core import i18n

    wanted = (os.environ.get("LANGUAGE") or os.environ.get("LANG") or "").split(".")[0]
    return i18n.canonical(wanted.split(":")[0]) or i18n.ENGLISH


def refuse(exc: Exception, options: dict[str, str] | None = None) -> NoReturn:
    """Say why input was refused, one sentence per problem naming the field (by
    `options`: the command's option for a schema field) in the shell's language (the
    console's sentences), without a framework's "Error:" prefix; exit 1."""
    from pipeline.domain.problems import form_problems

    lang = shell_language()
    for problem in form_problems(exc, options):
        click.echo(f"hotline: {problem.text(lang)}", err=True)
    sys.exit(1)


def settings_or_exit() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"hotline: configuration error: {problem}", err=True)
        sys.exit(2)


def setup_logging(settings: Settings) -> None:
    from pipeline.core.logs import configure

    configure(settings.logging)


def runtime_with_broker(settings: Settings) -> tuple[Runtime, Any]:
    """A runtime whose enqueuer sends through the configured broker."""
    from workers.broker import install

    runtime = build_runtime(settings)
    broker = install(runtime)
    return runtime, broker


def runtime_for_sending(settings: Settings) -> tuple[Runtime, Any]:
    """The runtime of a command that stores work and queues it (reports, dead letters
    sent again, a notice to send again). Beside a running `hotline run` (embedded mode)
    its enqueuer hands the stored ids to that process (and the broker returned is
    None: nothing to drain here); otherwise the configured broker's."""
    if not settings.broker.is_redis:
        from pipeline.app.running import HandOver, find_running

        running = find_running(settings)
        if running is not None:
            runtime = build_runtime(settings)
            runtime.enqueuer = HandOver(running)
            return runtime, None
    return runtime_with_broker(settings)


def runtime_for_intake(settings: Settings) -> tuple[Runtime, Any]:
    """The runtime of a command that only takes reports in (`import`, `submit`). With a
    Redis broker its enqueuer puts the messages on the queues without loading the
    stages (`workers.sending`; a cheaper start-up, so the first reports flow sooner);
    otherwise as `runtime_for_sending`."""
    if not settings.broker.is_redis:
        return runtime_for_sending(settings)
    from workers.sending import MessageSender

    runtime = build_runtime(settings)
    runtime.enqueuer = MessageSender(settings)
    return runtime, None


def report_hand_over(runtime: Runtime) -> None:
    """Say where the reports went (standard error)."""
    if runtime.settings.broker.is_redis:  # nothing is handed over beside a Redis broker
        return
    from pipeline.app.running import HandOver

    enqueuer = runtime.enqueuer
    if not isinstance(enqueuer, HandOver):
        return
    if enqueuer.failed:
        click.echo(f"hotline: stored, but the running hotline (pid {enqueuer.running.pid}) "
                   f"did not take them ({'; '.join(enqueuer.failed)}); its reconciler will "
                   "find them.", err=True)
    else:
        click.echo(f"Handed to the running hotline (pid {enqueuer.running.pid}): "
                   f"{enqueuer.handed} reports queued there.", err=True)


def drain_if_embedded(settings: Settings, broker: Any) -> None:
    """With the in-process broker nobody else will consume what this command queued:
    run the stages here until the queues are empty (not when a running `hotline run`
    took them: `runtime_for_sending`)."""
    if settings.broker.is_redis or broker is None:
        return
    from workers.broker import drain, start_worker

    worker = start_worker(broker, settings.worker.threads)
    try:
        drain(broker, worker)
    finally:
        worker.stop()


class _Commands(click.Group):
    """The `hotline` group: the commands of the modules in PLUGINS are registered when
    first needed. A plain command defined here (import, submit...) is found without
    them; a group defined here may gain subcommands from them, so it loads them."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None or isinstance(command, click.Group):
            _register_plugins()
            command = super().get_command(ctx, cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register_plugins()
        return super().list_commands(ctx)


@click.group(cls=_Commands)
@click.version_option(package_name="hotline")
def main() -> None:
    """hotline: the case-processing pipeline of an internet hotline."""


@main.command()
def migrate() -> None:
    """Bring the database to the latest schema."""
    from pipeline.store.migrate import upgrade

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

    from pipeline.app.liveness import ProcessHeartbeat
    from pipeline.app.preflight import say_rules_problems
    from pipeline.app.scheduler import run_forever
    from pipeline.app.tracers import ready_to_settle
    from pipeline.store.migrate import upgrade
    from pipeline.web.app import create_app
    from workers.broker import start_worker

    settings = settings_or_exit()
    setup_logging(settings)
    say_rules_problems(settings)
    upgrade(settings.database.url)
    runtime, broker = runtime_with_broker(settings)
    ready_to_settle(runtime)  # intake settles reports: ready before the first request
    liveness = ProcessHeartbeat(runtime).start()
    first = first_start(runtime)
    from pipeline.app.running import announce, withdraw

    running = announce(settings)  # for the other commands: see pipeline.app.running
    worker = start_worker(broker, settings.worker.threads)
    stop = threading.Event()
    scheduler = threading.Thread(target=run_forever, args=(runtime, stop), daemon=True,
                                 name="scheduler")
    scheduler.start()
    listener = acks = None
    if settings.mail.lmtp_enabled:  # the mailbox's LMTP listener
        from pipeline.app.mailbox import AckSender, lmtp_listener

        listener = lmtp_listener(runtime)
        listener.start()
        acks = AckSender(runtime).start()
    url = f"http://{settings.web.host}:{settings.web.port}/"
    click.echo(f"hotline is running in {settings.app.mode} mode.")
    click.echo(f"  web app and API: {url}  (API docs: {url}docs)")
    click.echo(f"  analysts' console: {url}console/")
    click.echo(f"  database: {_safe_url(settings.database.url)}; broker: {settings.broker.url}")
    if listener is not None:
        click.echo(f"  mailbox (LMTP): {settings.mail.lmtp_host}:{settings.mail.lmtp_port}")
    click.echo(f"  other commands, in another terminal: {cli_path()} --help "
               "(e.g. status, submit, users add)")
    if first is not None:
        name, password = first
        click.echo("")
        click.echo("  FIRST START: an administrator was created. Log in once with")
        click.echo(f"    user name:          {name}")
        click.echo(f"    one-time password:  {password}")
        click.echo(f"  at {url}console/login ; you choose your own password there.")
        click.echo("  This password is shown only now. Lost it? "
                   f"{cli_path()} users password {name}")
        click.echo("")
    click.echo("  Press Ctrl-C to stop.", nl=True)
    sys.stdout.flush()
    app = create_app(runtime)
    app.state.run_key = running.key
    try:
        uvicorn.run(app, host=settings.web.host, port=settings.web.port,
                    log_level="warning", log_config=None)
    finally:
        if listener is not None:
            listener.stop()
        if acks is not None:
            acks.stop()
        withdraw(settings, running)
        stop.set()
        worker.stop()
        liveness.stop()
        scheduler.join(timeout=5)
        runtime.close()


def first_start(runtime: Runtime) -> tuple[str, str] | None:
    """On a database without users, the first administrator (name, one-time password)."""
    from pipeline.app.users import add_first_admin

    with runtime.session_factory.begin() as session:
        return add_first_admin(session, at=runtime.clock.now())


def cli_path() -> str:
    """How to call this command again, as the operator started it (`.venv/bin/hotline`
    under `make run`)."""
    argv0 = Path(sys.argv[0])
    if argv0.name != "hotline":
        return "hotline"
    try:
        return str(argv0.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(argv0)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: web.host).")
@click.option("--port", default=None, type=int, help="Port (default: web.port).")
def serve(host: str | None, port: int | None) -> None:
    """Run the web app only (scaled-out deployment).

    With a Redis broker it also announces itself in the run file, as `hotline run`
    does, so that a `hotline import` on this machine streams its file here (the
    resident process imports it: no start-up of the command's own) and the other
    commands find it (`pipeline.app.running`)."""
    import uvicorn

    from pipeline.app.running import KeepAnnounced, announce, withdraw
    from pipeline.app.tracers import ready_to_settle
    from pipeline.web.app import create_app
    from workers.broker import connect_ahead

    settings = settings_or_exit()
    setup_logging(settings)
    runtime, broker = runtime_with_broker(settings)
    ready_to_settle(runtime)  # intake settles reports: ready before the first request
    connect_ahead(broker)
    app = create_app(runtime)
    settle_collector()
    host, port = host or settings.web.host, port or settings.web.port
    # Without a shared broker nothing consumes what this process would queue: the
    # commands then store and work the reports themselves.
    running = announce(settings, host=host, port=port) if settings.broker.is_redis else None
    keeper = None
    if running is not None:
        app.state.run_key = running.key
        keeper = KeepAnnounced(settings, running).start()  # several on one machine
        # uvicorn stops on SIGTERM and then raises it again, to the handler it found:
        # the default one would end the process before the run file is withdrawn.
        signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", log_config=None)
    finally:
        if keeper is not None and running is not None:
            keeper.stop()
            withdraw(settings, running)


def _stop_on_sigterm(signum: int, frame: Any) -> None:
    raise SystemExit(0)


@main.command()
@click.option("--threads", default=None, type=int, help="Worker threads (default: worker.threads).")
def worker(threads: int | None) -> None:
    """Run one worker process that consumes every stage's queue."""
    from pipeline.app.liveness import ProcessHeartbeat
    from pipeline.app.preflight import say_rules_problems
    from pipeline.app.tracers import ready_to_work
    from workers.broker import check_broker_safe, connect_ahead, start_worker

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
    say_rules_problems(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from pipeline.core.counters import serve_process_metrics

    serve_process_metrics(settings.metrics.port)  # this worker's counters
    # The scheduler releases what this process claimed once it stops beating.
    liveness = ProcessHeartbeat(runtime).start()
    ready_to_work(runtime)
    connect_ahead(broker)
    worker = start_worker(broker, threads or settings.worker.threads)
    logging.getLogger(__name__).info("Worker started with %d threads.", worker.worker_threads)
    stop.wait()
    worker.stop()
    liveness.stop()
    runtime.close()


@main.command()
def scheduler() -> None:
    """Run the scheduler (reconciler and periodic jobs); a second one is a standby."""
    from pipeline.app.preflight import say_rules_problems
    from pipeline.app.scheduler import run_forever

    settings = settings_or_exit()
    setup_logging(settings)
    say_rules_problems(settings)
    runtime, _ = runtime_with_broker(settings)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    from pipeline.core.counters import serve_process_metrics

    serve_process_metrics(settings.metrics.port)  # the scheduler's counters
    settle_collector()
    run_forever(runtime, stop)
    runtime.close()


@main.command()
@click.argument("urls", nargs=-1, required=True)
@click.option("--channel", default="api", show_default=True, help="How the report came in.")
@click.option("--category", default=None, help="Claimed category (e.g. csam).")
@click.option("--description", default=None, help="The reporter's words.")
def submit(urls: tuple[str, ...], channel: str, category: str | None,
           description: str | None) -> None:
    """Report one or more URLs; prints a tracking reference per URL.

    Beside a running hotline on this machine (`hotline run`, or `hotline serve` with a
    Redis broker) that process takes the reports in, with the same rules and the same
    output; otherwise this command stores them itself."""
    from pydantic import ValidationError

    from pipeline.stages.intake import accept_reports
    from schemas.intake import ReportIn
    from schemas.ops import SUBMIT_OPTIONS

    settings = settings_or_exit()
    runtime, broker = runtime_for_intake(settings)
    try:
        items = [ReportIn.model_validate({"url": u, "channel": channel,
                                          "claimed_category": category,
                                          "description": description}) for u in urls]
        submission, accepted = accept_reports(
            runtime.session_factory, items, clock=runtime.clock, limits=settings.intake,
            enqueuer=runtime.enqueuer,
        )
    except (ValidationError, BadInput) as exc:
        refuse(exc, SUBMIT_OPTIONS)
    for item in accepted:
        click.echo(json.dumps({"reference": item.ref, "url": item.url,
                               "submission": submission}))
    report_hand_over(runtime)
    drain_if_embedded(settings, broker)


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Who sent the file (a partner hotline...).")
def import_(file: Path, source: str | None) -> None:
    """Import reports from a JSON Lines (.jsonl) or CSV (.csv) file.

    Beside a running hotline on this machine (`hotline run`, or `hotline serve` with a
    Redis broker) the file is streamed to that process and imported there, with the
    same rules and the same output; otherwise this command imports it itself."""
    from pipeline.stages.importer import import_file

    settings = settings_or_exit()
    runtime, broker = runtime_for_intake(settings)
    try:
        result = import_file(file, runtime.session_factory, clock=runtime.clock,
                             limits=settings.intake, enqueuer=runtime.enqueuer, source=source)
    except BadInput as exc:
        raise click.ClickException(str(exc)) from None
    for line, error in result.errors:
        click.echo(f"{file}:{line}: {error}", err=True)
    click.echo(f"Imported {result.imported} reports (submission {result.submission}); "
               f"{len(result.errors)} lines refused.")
    report_hand_over(runtime)
    drain_if_embedded(settings, broker)
    if result.errors:
        sys.exit(1)


@main.group()
def audit() -> None:
    """The audit trail."""


@audit.command("verify")
def audit_verify() -> None:
    """Check every hash chain; name each edited, deleted or reordered event."""
    from pipeline.store.audit import verify

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
    from pipeline.app.deadletters import list_dead_letters

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
    from pipeline.app.deadletters import retry_dead_letters

    settings = settings_or_exit()
    runtime, broker = runtime_for_sending(settings)
    if not ids and not retry_all:
        raise click.UsageError("name dead letter ids or use --all")
    count = retry_dead_letters(runtime, list(ids) or None)
    click.echo(f"Sent {count} dead letters again.")
    drain_if_embedded(settings, broker)


@main.command()
def reconcile() -> None:
    """Enqueue again every report and case stuck past the deadline (once)."""
    from pipeline.app.scheduler import JOBS

    settings = settings_or_exit()
    runtime, broker = runtime_for_sending(settings)
    job = next(j for j in JOBS if j.name == "reconcile")
    click.echo(json.dumps(job.run(runtime)))
    drain_if_embedded(settings, broker)


@main.group()
def config() -> None:
    """The configuration."""


@config.command("check")
@click.option("--json", "as_json", is_flag=True,
              help="Print the values as one JSON object (no sources).")
def config_check(as_json: bool) -> None:
    """Validate the configuration and print each value with where it came from
    (default, a file, the environment); secrets hidden."""
    from pipeline.core.config import provenance
    from pipeline.core.config_files import config_files

    settings = settings_or_exit()
    values = _hide_url_passwords(settings.model_dump(mode="json"))
    if as_json:
        click.echo(json.dumps(values, indent=2))
        return
    sources = provenance(settings)
    click.echo("# files read, later over earlier: "
               + (", ".join(str(f) for f in config_files()) or "none"), err=True)
    for section, keys in values.items():
        for key, value in keys.items():
            shown = "***" if key in _SECRET_KEYS and value else json.dumps(value)
            click.echo(f"{section}.{key} = {shown}\t# {sources.get(f'{section}.{key}')}")


# Keys whose values are never printed (they are SecretStr already; belt and braces).
_SECRET_KEYS = frozenset({"encryption_key", "password"})


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
    """Commands of the other parts of the pipeline (each module adds to `main`);
    called by `main` when it looks a command up (see `_Commands`)."""
    import importlib

    for name in PLUGINS:
        importlib.import_module(f"pipeline.cli.{name}")


# Modules in pipeline/cli/ that add commands to `main`.
PLUGINS: list[str] = ["urls", "users", "assessment", "ops", "rules", "stats", "trace",
                      "notices", "mail", "helpline", "police"]
