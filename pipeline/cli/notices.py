"""`hotline notices list` and `hotline notices resolve ID`: the notices an operator
must look at, above all `unconfirmed` ones (an SMTP hand-over whose outcome nobody
saw; see pipeline/stages/dispatch.py). They are never sent again by themselves: check with
the receiver (the Message-ID is `<token@sender-domain>`), then resolve.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime

import click

from pipeline.app.runtime import build_runtime
from pipeline.cli import (
    drain_if_embedded,
    main,
    refuse,
    runtime_for_sending,
    settings_or_exit,
)
from pipeline.core.clock import as_utc
from pipeline.core.errors import BadInput, NotFound
from pipeline.store.states import NoticeState


@main.group()
def notices() -> None:
    """Notices by state; resolving unconfirmed ones."""


@notices.command("list")
@click.option("--state", "states", multiple=True, default=(NoticeState.UNCONFIRMED.value,),
              show_default=True, help="State to list (repeat for several).")
@click.option("--limit", default=1000, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--show-tokens", is_flag=True,
              help="Also print each notice's confirmation token (a secret: whoever holds "
                   "it can confirm the notice).")
def notices_list(states: tuple[str, ...], limit: int, as_json: bool,
                 show_tokens: bool) -> None:
    """Notices in the given states (default: unconfirmed), oldest first. Confirmation
    tokens are left out unless --show-tokens."""
    from pipeline.stages.dispatch import list_notices

    runtime = build_runtime(settings_or_exit())
    try:
        with runtime.session_factory() as session:
            rows = list_notices(session, states, limit=limit)
    except BadInput as exc:
        refuse(exc)
    finally:
        runtime.close()
    if not rows and not as_json:
        click.echo(f"No notices in state {', '.join(states)}.")
    for notice, ref in rows:
        if as_json:
            row = {
                "id": notice.id, "case": ref, "state": notice.state,
                "destination": notice.destination, "kind": notice.destination_kind,
                "channel": notice.channel, "attempts": notice.attempts,
                "planned_at": _iso(notice.created_at), "sent_at": _iso(notice.sent_at),
                "confirmed_at": _iso(notice.confirmed_at),
                "last_error": notice.last_error}
            if show_tokens:
                row["token"] = notice.token
            click.echo(json.dumps(row))
        else:
            token = f"token {notice.token}\t" if show_tokens else ""
            sent = f"sent {notice.sent_at:%Y-%m-%d %H:%M:%S}" if notice.sent_at else "not sent"
            click.echo(f"{notice.id}\t{ref}\t{notice.state}\t{notice.destination}\t"
                       f"{notice.channel}\t{sent}\t{token}{notice.last_error or ''}")


def _iso(value: datetime | None) -> str | None:
    return as_utc(value).isoformat() if value is not None else None


@notices.command("resolve")
@click.argument("notice_id", type=int)
@click.option("--sent", "outcome", flag_value="sent",
              help="The receiver has it: mark the notice sent.")
@click.option("--send-again", "outcome", flag_value="send_again",
              help="The receiver does not have it: send it again (same Message-ID).")
@click.option("--reason", required=True, help="What the receiver said (audited).")
@click.option("--by", "user", default="operator", show_default=True,
              help="Who decides (recorded in the audit trail).")
@click.option("--sent-at", type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z",
                                                         "%Y-%m-%dT%H:%M:%S"]),
              default=None, help="With --sent: when it arrived (UTC if no offset; "
                                 "default: when it was handed over, as recorded when it "
                                 "became unconfirmed).")
def notices_resolve(notice_id: int, outcome: str | None, reason: str, user: str,
                    sent_at: datetime | None) -> None:
    """Resolve an unconfirmed notice after checking with its receiver."""
    from datetime import UTC

    from pipeline.core.messaging import DISPATCH
    from pipeline.stages.dispatch import resolve_unconfirmed

    if outcome is None:
        raise click.UsageError("say --sent or --send-again")
    if sent_at is not None and sent_at.tzinfo is None:
        sent_at = sent_at.replace(tzinfo=UTC)
    settings = settings_or_exit()
    runtime, broker = runtime_for_sending(settings)
    try:
        with runtime.session_factory.begin() as session:
            notice = resolve_unconfirmed(
                session, notice_id, outcome="sent" if outcome == "sent" else "send_again",
                by=f"operator:{user}", reason=reason, now=runtime.clock.now(),
                sent_at=sent_at)
            state = notice.state
        if state == NoticeState.PLANNED:
            runtime.enqueuer.send(DISPATCH, [notice_id])
            drain_if_embedded(settings, broker)
    except (BadInput, NotFound) as exc:
        click.echo(f"hotline: {exc}", err=True)
        sys.exit(1)
    finally:
        runtime.close()
    click.echo(f"Notice {notice_id}: "
               + ("marked sent." if state == NoticeState.SENT else "planned again and queued."))
