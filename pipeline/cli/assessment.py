"""The analysts' work from a terminal: `hotline queue`, `claim`, `release`, `assess`,
`case show`, `welfare`. Each acts as the user named by `--as` (or HOTLINE_USER), with
that user's role, and is audited like the API."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipeline.app import casework
from pipeline.app.auth import Principal, audit_denials, principal_for_user
from pipeline.app.casework import decide
from pipeline.app.runtime import Runtime
from pipeline.cli import main, runtime_with_broker, settings_or_exit, shell_language
from pipeline.cli.users import shared_group
from pipeline.core.errors import BadInput, NotFound, PermissionDenied
from pipeline.store.models import User
from schemas.assessment import AgeGroup, AssessmentIn, ContentType, Gender, Legality, SiteType
from schemas.intake import Category

T = TypeVar("T")

as_option = click.option("--as", "as_user", required=True, envvar="HOTLINE_USER",
                         help="The user acting (default: $HOTLINE_USER).")


def principal_named(runtime: Runtime, name: str) -> Principal:
    """The active user `name` as the principal of a command (`--as`)."""
    with runtime.session_factory() as session:
        user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
        if user is None or not user.active:
            raise click.ClickException(f"no active user named {name}")
        return principal_for_user(user, via="cli")


def act(name: str, work: Callable[[Session, Principal, Runtime], T],
        after: Callable[[Runtime, T], None] | None = None) -> T:
    """Run `work` as user `name` in one transaction; denials are audited."""
    runtime, _ = runtime_with_broker(settings_or_exit())
    try:
        principal = principal_named(runtime, name)
        with audit_denials(runtime.session_factory, principal, runtime.clock), (
            runtime.session_factory.begin()
        ) as session:
            result = work(session, principal, runtime)
        if after is not None:
            after(runtime, result)
        return result
    except PermissionDenied as exc:
        raise click.ClickException(f"denied: {exc}") from None
    except (BadInput, NotFound) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runtime.close()


def as_principal(name: str, use_case: Callable[[Runtime, Principal], T]) -> T:
    """Run a use case of `pipeline.app.casework` as user `name`; its errors as messages."""
    runtime, _ = runtime_with_broker(settings_or_exit())
    try:
        return use_case(runtime, principal_named(runtime, name))
    except PermissionDenied as exc:
        raise click.ClickException(f"denied: {exc}") from None
    except (BadInput, NotFound) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runtime.close()


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


@main.command("queue")
@as_option
@click.option("--state", default="awaiting_assessment", show_default=True,
              type=click.Choice(["awaiting_assessment", "awaiting_second_assessment",
                                 "awaiting_supervisor"]))
@click.option("--limit", default=20, show_default=True, type=int)
def queue_cmd(as_user: str, state: str, limit: int) -> None:
    """Show the queue: priority first, then oldest."""
    from pipeline.stages.assessment import list_queue

    out = act(as_user, lambda s, p, rt: list_queue(s, p, state=state, limit=limit))
    click.echo(f"{out.waiting} awaiting assessment, {out.awaiting_second} awaiting a second "
               f"assessment, {out.awaiting_supervisor} awaiting a supervisor.")
    for item in out.items:
        flag = " URGENT" if item.urgent else ""
        held = f" (held by {item.held_by})" if item.held_by else ""
        click.echo(f"{item.ref}\tp{item.priority}{flag}\t{item.received_at:%Y-%m-%d %H:%M}\t"
                   f"{item.claimed_category or '-'}\t{item.canonical_url}{held}")


@main.command("claim")
@as_option
@click.option("--kind", default="any", show_default=True,
              type=click.Choice(["any", "first", "second"]),
              help="first: a new case; second: a four-eyes second assessment.")
@click.option("--host", default=None, help="Claim the open cases of this host together.")
@click.option("--domain", default=None,
              help="Claim the open cases of this registered domain together.")
def claim_cmd(as_user: str, kind: str, host: str | None, domain: str | None) -> None:
    """Take the next case with a lease (or every open case of one site)."""
    if host or domain:
        site, leases, skipped = as_principal(as_user, lambda rt, p: casework.claim_site(
            rt, p, host=host, registered_domain=domain))
        click.echo(f"Claimed {len(leases)} cases of {site}; {skipped} held by others.")
        for taken in leases:
            click.echo(f"{taken.case_ref}\tuntil {taken.expires_at:%Y-%m-%d %H:%M:%S}")
        return

    lease = as_principal(as_user, lambda rt, p: casework.claim(rt, p, kind=kind))
    if lease is None:
        click.echo("The queue holds no case for you now.")
        return
    click.echo(f"Claimed case {lease.case_ref} (id {lease.case_id}) for a {lease.kind} "
               f"assessment until {lease.expires_at:%Y-%m-%d %H:%M:%S} UTC.")


@main.command("release")
@as_option
@click.argument("case")
def release_cmd(as_user: str, case: str) -> None:
    """Give a claimed case back to the queue."""
    ref, _ = as_principal(as_user, lambda rt, p: casework.release(rt, p, case))
    click.echo(f"Case {ref} is back in the queue.")


def _choice(enum: Any) -> click.Choice:
    return click.Choice([e.value for e in enum])


@main.command("assess")
@as_option
@click.argument("cases", nargs=-1, required=True)
@click.option("--legality", required=True, type=_choice(Legality))
@click.option("--category", type=_choice(Category), default=None)
@click.option("--age-group", type=_choice(AgeGroup), default=None)
@click.option("--gender", type=_choice(Gender), default=None)
@click.option("--site-type", type=_choice(SiteType), default=None)
@click.option("--content-type", type=_choice(ContentType), default=None)
@click.option("--commercial/--not-commercial", default=None)
@click.option("--notes", default=None)
def assess_cmd(as_user: str, cases: tuple[str, ...], legality: str, category: str | None,
               age_group: str | None, gender: str | None, site_type: str | None,
               content_type: str | None, commercial: bool | None, notes: str | None) -> None:
    """Record an assessment of CASES (several: one decision on each, all or none)."""
    from pipeline.core import i18n
    from pipeline.domain.problems import assessment_problems

    try:
        item = AssessmentIn(legality=legality, category=category, age_group=age_group,
                            gender=gender, site_type=site_type, content_type=content_type,
                            commercial=commercial, notes=notes)  # type: ignore[arg-type]
    except ValidationError as exc:
        # The console's sentences, in the language of the shell (LANGUAGE or LANG,
        # English by default), one per line, without a framework's "Error:" prefix.
        lang = shell_language()
        for problem in assessment_problems(exc):
            click.echo(f"hotline: {i18n.gettext(lang, problem.message)}", err=True)
        sys.exit(1)

    for d in as_principal(as_user, lambda rt, p: decide(rt, p, list(cases), item)).decisions:
        click.echo(f"Case {d.case_ref}: {d.outcome.replace('_', ' ')} (now {d.state}).")


@shared_group("case", "One case.").command("show")
@as_option
@click.argument("case")
@click.option("--json", "as_json", is_flag=True,
              help="JSON (the only format; accepted for scripts that ask for it).")
def case_show(as_user: str, case: str, as_json: bool) -> None:
    """Everything about one case, as JSON: reports, trace, assessments, history, the
    notices (destination, kind, state, planned/sent/confirmed times) and the takedown
    timeline by INHOPE stage."""
    from pipeline.stages.assessment import case_view

    view = act(as_user, lambda s, p, rt: case_view(s, p, case, now=rt.clock.now(),
                                                   settings=rt.settings.assessment))
    _echo(view.model_dump(mode="json"))


@main.command("welfare")
@as_option
@click.option("--all", "everyone", is_flag=True, help="Every analyst (supervisors).")
def welfare_cmd(as_user: str, everyone: bool) -> None:
    """Today's assessment counts against the soft limits."""
    from pipeline.app.auth import require
    from pipeline.stages.assessment import welfare_all

    def work(s: Session, p: Principal, rt: Runtime) -> Any:
        require(p, "welfare.view_all" if everyone else "welfare.view_own")
        return welfare_all(s, now=rt.clock.now(), settings=rt.settings.assessment,
                           user_ids=None if everyone else [p.user_id or 0])

    for w in act(as_user, work):
        hint = "  -> time for a break" if w.take_a_break else ""
        click.echo(f"{w.user}\t{w.day}\t{w.csam_assessments}/{w.csam_soft_limit} CSAM\t"
                   f"{w.assessments} in all\t{w.minutes_in_queue:.0f}/{w.minutes_soft_limit} "
                   f"min{hint}")
