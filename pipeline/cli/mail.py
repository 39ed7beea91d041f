"""`hotline mail serve|poll|look-at|done`: the hotline's mailbox (docs/operators/mailbox.md)."""

from __future__ import annotations

import json
import signal
import threading

import click

from pipeline.adapters.mail.imap import password_from_environment, poll_once
from pipeline.app.mailbox import AckSender, deliverer, lmtp_listener
from pipeline.cli import (
    drain_if_embedded,
    main,
    runtime_with_broker,
    settings_or_exit,
    setup_logging,
)
from pipeline.core.errors import ConfigError, RetryLater
from pipeline.stages.mailbox import look_at_queue, mark_looked_at
from pipeline.store.migrate import upgrade


@main.group()
def mail() -> None:
    """The mailbox: LMTP listener, IMAP poller, messages waiting for a person."""


@mail.command("serve")
def mail_serve() -> None:
    """Listen for LMTP deliveries on mail.lmtp_host:mail.lmtp_port until stopped."""
    settings = settings_or_exit()
    setup_logging(settings)
    upgrade(settings.database.url)
    runtime, broker = runtime_with_broker(settings)
    worker = None
    if not settings.broker.is_redis:  # nobody else consumes an in-process broker
        from workers.broker import start_worker

        worker = start_worker(broker, settings.worker.threads)
    listener = lmtp_listener(runtime)
    listener.start()
    acks = AckSender(runtime).start()
    click.echo(f"LMTP listener on {settings.mail.lmtp_host}:{settings.mail.lmtp_port}. "
               "Ctrl-C stops it.")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        listener.stop()
        acks.stop()
        if worker is not None:
            worker.stop()
        runtime.close()


@mail.command("poll")
@click.option("--once", is_flag=True, help="Read the folder once, then stop.")
def mail_poll(once: bool) -> None:
    """Read the IMAP folder (IMAPS; the password from the environment)."""
    settings = settings_or_exit()
    setup_logging(settings)
    try:
        password = password_from_environment(settings)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    upgrade(settings.database.url)
    runtime, broker = runtime_with_broker(settings)
    deliver = deliverer(runtime, "imap")
    acks = AckSender(runtime)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while True:
            try:
                result = poll_once(settings, password, deliver)
                click.echo(f"Took {result.taken} message(s); {result.left} left for the "
                           "next poll.")
            except RetryLater as exc:
                click.echo(f"IMAP poll failed, tried again later: {exc}", err=True)
            except ConfigError as exc:
                raise click.UsageError(str(exc)) from None
            drain_if_embedded(settings, broker)
            acks.send_now()
            if once or stop.wait(settings.mail.imap_interval_seconds):
                break
    finally:
        runtime.close()


@mail.command("look-at")
@click.option("--limit", default=100, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def mail_look_at(limit: int, as_json: bool) -> None:
    """Messages that made no report and wait for a person, oldest first."""
    settings = settings_or_exit()
    runtime, _ = runtime_with_broker(settings)
    with runtime.session_factory() as session:
        for row in look_at_queue(session, limit):
            item = {"id": row.id, "received_at": row.received_at.isoformat(),
                    "via": row.via, "subject": row.subject, "reason": row.reason,
                    "attachments": len(row.attachments or [])}
            click.echo(json.dumps(item, ensure_ascii=False) if as_json else
                       f"{row.id}\t{item['received_at']}\t{row.subject or ''}\t{row.reason}")
    runtime.close()


@mail.command("done")
@click.argument("message_id", type=int)
@click.option("--by", required=True, help="Who looked at it (shown later).")
def mail_done(message_id: int, by: str) -> None:
    """Mark a waiting message as looked at."""
    settings = settings_or_exit()
    runtime, _ = runtime_with_broker(settings)
    with runtime.session_factory.begin() as session:
        done = mark_looked_at(session, message_id, by=by, clock=runtime.clock)
    runtime.close()
    if not done:
        raise click.ClickException(f"no message {message_id} waits for a person")
    click.echo(f"Message {message_id} marked as looked at.")


@mail.command("acks")
def mail_acks() -> None:
    """Send the acknowledgements that are due, once (the listener and poller do it too)."""
    settings = settings_or_exit()
    setup_logging(settings)
    runtime, _ = runtime_with_broker(settings)
    try:
        click.echo(f"Sent {AckSender(runtime).send_now()} acknowledgement(s).")
    finally:
        runtime.close()
