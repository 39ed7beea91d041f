"""`hotline users ...` and `hotline tokens ...`: people, roles and API tokens."""

from __future__ import annotations

import click

from pipeline.app.auth import ROLES
from pipeline.app.runtime import build_runtime
from pipeline.cli import main, refuse, settings_or_exit
from pipeline.core.errors import BadInput, NotFound


def shared_group(name: str, help_text: str) -> click.Group:
    """The `main` subgroup called `name`, made if no other module made it yet (several
    parts of the pipeline add commands to `hotline case`, for instance)."""
    existing = main.commands.get(name)
    if isinstance(existing, click.Group):
        return existing
    group = click.Group(name=name, help=help_text)
    main.add_command(group)
    return group


@main.group()
def users() -> None:
    """People who work in the system, and their roles."""


@users.command("add")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES), help="The user's role.")
@click.option("--token", "with_token", is_flag=True,
              help="Print an API token (scope analyst) instead of a one-time password.")
@click.option("--expires-days", type=int, default=None, help="Lifetime of the token in days.")
def users_add(name: str, role: str, with_token: bool, expires_days: int | None) -> None:
    """Add a user; print a one-time password (or, with --token, an API token)."""
    from pipeline.app.users import add_token, add_user

    runtime = build_runtime(settings_or_exit())
    now = runtime.clock.now()
    try:
        with runtime.session_factory.begin() as session:
            _, password = add_user(session, name, role, at=now, actor="cli")
            token = None
            if with_token:
                token, _ = add_token(session, scope="analyst", label=name, at=now,
                                     user_name=name, expires_days=expires_days, actor="cli")
    except BadInput as exc:
        refuse(exc)
    finally:
        runtime.close()
    # The secret alone on standard output (PASSWORD=$(hotline users add ...) works);
    # what it is on standard error.
    click.echo(f"Added {role} {name}.", err=True)
    if token:
        click.echo("API token below (shown once, keep it safe; stored only hashed).", err=True)
        click.echo(token)
    else:
        click.echo("One-time password below (shown once; to be changed at first login).",
                   err=True)
        click.echo(password)


@users.command("list")
def users_list() -> None:
    """List users and their roles."""
    from pipeline.app.users import list_users

    runtime = build_runtime(settings_or_exit())
    with runtime.session_factory() as session:
        for user in list_users(session):
            status = "active" if user.active else "inactive"
            click.echo(f"{user.name}\t{user.role}\t{status}\t{user.created_at:%Y-%m-%d}")
    runtime.close()


@users.command("password")
@click.argument("name")
def users_password(name: str) -> None:
    """Give a user a new one-time password (printed once)."""
    from pipeline.app.auth import new_password, set_password
    from pipeline.app.users import get_user
    from pipeline.store import audit

    runtime = build_runtime(settings_or_exit())
    password = new_password()
    try:
        with runtime.session_factory.begin() as session:
            user = get_user(session, name)
            set_password(user, password, must_change=True)
            audit.record(session, f"user:{name}", actor="cli", action="password_reset",
                         at=runtime.clock.now())
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runtime.close()
    click.echo(f"One-time password for {name} below (shown once; to be changed at the "
               "next login).", err=True)
    click.echo(password)


@users.command("deactivate")
@click.argument("name")
def users_deactivate(name: str) -> None:
    """Stop a user from signing in (their tokens stop working too)."""
    from pipeline.app.users import set_active

    runtime = build_runtime(settings_or_exit())
    try:
        with runtime.session_factory.begin() as session:
            set_active(session, name, False, at=runtime.clock.now(), actor="cli")
    except NotFound as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        runtime.close()
    click.echo(f"User {name} deactivated.")


@main.group()
def tokens() -> None:
    """API tokens of outside parties (partner hotlines, police, providers)."""


@tokens.command("add")
@click.argument("label")
@click.option("--scope", required=True, type=click.Choice(["partner", "police", "provider"]),
              help="Who the token is for.")
@click.option("--expires-days", type=int, default=None, help="Lifetime in days.")
@click.option("--destination", default=None, help="The destination key (rules/destinations"
              ".yaml) the token acts for: it may act only on cases notified to it.")
def tokens_add(label: str, scope: str, expires_days: int | None,
               destination: str | None) -> None:
    """Issue a token; it is printed once and stored only hashed."""
    from pipeline.app.users import add_token

    runtime = build_runtime(settings_or_exit())
    try:
        with runtime.session_factory.begin() as session:
            token, row = add_token(session, scope=scope, label=label, at=runtime.clock.now(),
                                   expires_days=expires_days, actor="cli",
                                   destination=destination)
            prefix = row.prefix
    except BadInput as exc:
        refuse(exc)
    finally:
        runtime.close()
    click.echo(f"Token {prefix}... for {scope} {label} below (shown once; stored only "
               "hashed).", err=True)
    click.echo(token)


@tokens.command("revoke")
@click.argument("prefix")
def tokens_revoke(prefix: str) -> None:
    """Revoke the tokens whose prefix is PREFIX."""
    from pipeline.app.users import revoke

    runtime = build_runtime(settings_or_exit())
    with runtime.session_factory.begin() as session:
        count = revoke(session, prefix, at=runtime.clock.now(), actor="cli")
    runtime.close()
    if not count:
        raise click.ClickException(f"no live token with prefix {prefix}")
    click.echo(f"Revoked {count} token(s).")
