"""`hotline police reply`: the police's reply on a case held for them, when it came by
telephone or letter rather than through the API. The same use case as the API's
(`pipeline.app.casework.police_reply`), recorded as the supervisor named by `--as`."""

from __future__ import annotations

from datetime import UTC, datetime

import click

from pipeline.app import casework
from pipeline.cli import drain_if_embedded, runtime_for_sending, settings_or_exit
from pipeline.cli.assessment import as_option, principal_named
from pipeline.cli.users import shared_group
from pipeline.core.errors import BadInput, NotFound, PermissionDenied
from pipeline.stages.police import NotHeld, PoliceDecision

police = shared_group("police", "Cases held for the police.")


@police.command("reply")
@as_option
@click.argument("case")
@click.argument("decision", type=click.Choice([d.value for d in PoliceDecision]))
@click.option("--reason", default=None,
              help="What the police said (required to keep holding or take over; audited).")
@click.option("--until", "hold_until", default=None,
              type=click.DateTime(formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S",
                                           "%Y-%m-%d"]),
              help="keep_holding: the new deadline (UTC if no offset; default: "
                   "routing.police_hold_hours from now).")
def police_reply_cmd(as_user: str, case: str, decision: str, reason: str | None,
                     hold_until: datetime | None) -> None:
    """Record the police's reply on held CASE: proceed (the held notices go out),
    keep_holding or take_over (the held notices are cancelled, the case closes)."""
    if hold_until is not None and hold_until.tzinfo is None:
        hold_until = hold_until.replace(tzinfo=UTC)
    settings = settings_or_exit()
    runtime, broker = runtime_for_sending(settings)
    try:
        principal = principal_named(runtime, as_user)
        done = casework.police_reply(runtime, principal, case, PoliceDecision(decision),
                                     reason=reason, hold_until=hold_until)
        drain_if_embedded(settings, broker)
    except PermissionDenied as exc:
        raise click.ClickException(f"denied: {exc}") from None
    except (BadInput, NotFound, NotHeld) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runtime.close()
    if done.hold_until is not None:
        click.echo(f"Case {done.case_ref} stays held for the police until "
                   f"{done.hold_until:%Y-%m-%d %H:%M} UTC.")
    else:
        click.echo(f"Case {done.case_ref} is {done.state}; {len(done.released)} notices "
                   "released for sending.")
