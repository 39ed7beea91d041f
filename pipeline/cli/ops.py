"""Operations and data protection commands.

`hotline status`, `hotline retention run [--dry-run]`, `hotline case evidence CASE`,
`hotline case hold CASE` / `hotline case lift-hold CASE`, `hotline privacy new-key`,
`hotline privacy reencrypt [--dry-run]`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from pipeline.app import auth
from pipeline.app.auth import Principal
from pipeline.app.runtime import Runtime, build_runtime
from pipeline.cli import main, settings_or_exit
from pipeline.cli.users import shared_group
from pipeline.core.errors import BadInput, HotlineError, NotFound, PermissionDenied
from pipeline.store.states import NoticeState


def _runtime() -> Runtime:
    settings = settings_or_exit()
    try:
        return build_runtime(settings)
    except HotlineError as exc:
        raise click.ClickException(str(exc)) from None


def system_status(runtime: Runtime) -> dict[str, Any]:
    """What `hotline status` says, as one object: the checks; backlogs per stage with
    the oldest waiting age; queues (a running `hotline run`'s in embedded mode, the
    Redis broker's otherwise); circuit breakers; dead letters; unconfirmed notices;
    and whether the automatic stages are idle."""
    from pipeline.app.health import (
        backlog,
        queue_depths,
        readiness,
        stage_backlog,
        unreachable_cases,
    )
    from pipeline.app.running import find_running, remote_status

    settings = runtime.settings
    checks = readiness(runtime)
    out: dict[str, Any] = {"ready": all(c.ok for c in checks),
                           "checks": [c.as_dict() for c in checks]}
    running = None if settings.broker.is_redis else find_running(settings)
    out["running"] = {"pid": running.pid, "url": running.url} if running else None
    queues: dict[str, int] | None = None
    circuits: list[dict[str, Any]] | None = None
    if running is not None:
        with contextlib.suppress(Exception):  # it may be stopping: said as unknown
            remote = remote_status(running)
            queues, circuits = remote["queues"], remote["circuits"]
    elif settings.broker.is_redis:
        with contextlib.suppress(Exception):  # the broker check already says why
            queues = queue_depths(runtime) or None
    out["queues"], out["circuits"] = queues, circuits
    if checks[0].ok:
        now = runtime.clock.now()
        with runtime.session_factory() as session:
            out.update(backlog(session, now))
            out["stages"] = stage_backlog(session, now)
            out["registries_unreachable_cases"] = unreachable_cases(session)
        out["unconfirmed_notices"] = sum(row["count"] for row in out["notices"]
                                         if row["state"] == NoticeState.UNCONFIRMED)
        out["idle"] = (all(s["waiting"] == 0 for s in out["stages"].values())
                       and not any((queues or {}).values()))
    return out


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def status(as_json: bool) -> None:
    """Database, broker and scheduler reachable; backlogs per stage, queues, circuit
    breakers, dead letters, unconfirmed notices."""
    runtime = _runtime()
    info = system_status(runtime)
    runtime.close()
    if as_json:
        click.echo(json.dumps(info, default=str))
        if not info["ready"]:
            sys.exit(1)
        return
    for check in info["checks"]:
        click.echo(f"{check['name']:<10} {'ok' if check['ok'] else 'DOWN':<5} "
                   f"{check['detail']}")
    running = info["running"]
    if running:
        click.echo(f"running:  hotline run, pid {running['pid']}, {running['url']}")
    elif not runtime.settings.broker.is_redis:
        click.echo("running:  no `hotline run` for this data folder (embedded mode)")
    if "stages" in info:
        click.echo("")
        click.echo("stages:   " + ", ".join(
            f"{name} {s['waiting']}" + (f" (oldest {_duration(s['oldest_age_seconds'])})"
                                        if s["waiting"] else "")
            for name, s in info["stages"].items())
            + ("  [idle]" if info["idle"] else ""))
        click.echo("reports:  " + _pairs(info["reports_by_state"]))
        click.echo("cases:    " + _pairs(info["cases_by_state"]))
        age = info["assessment_oldest_age_seconds"]
        click.echo(f"assessment backlog: {info['assessment_backlog']} cases, oldest "
                   f"waiting {_duration(age)}")
        notices: dict[str, int] = {}
        for row in info["notices"]:
            key = f"{row['destination_kind']}/{row['state']}"
            notices[key] = notices.get(key, 0) + row["count"]
        click.echo("notices:  " + _pairs(notices))
        if info["unconfirmed_notices"]:
            click.echo(f"UNCONFIRMED notices: {info['unconfirmed_notices']} (an operator "
                       "must resolve them: `hotline notices list`)")
        if info["registries_unreachable_cases"]:
            click.echo(f"REGISTRIES UNREACHABLE: {info['registries_unreachable_cases']} "
                       "cases traced without the registries (origin unknown); traced "
                       "again once they answer")
        click.echo(f"dead letters: {info['dead_letters']} (see `hotline deadletters`)")
        click.echo(f"legal holds: {info['legal_holds']}")
    queues = info["queues"]
    click.echo("queues:   " + (_pairs(queues) if queues is not None else "(unknown)"))
    circuits = info["circuits"]
    if circuits is not None:
        down = [c for c in circuits if c["state"] != "closed"]
        click.echo("registries: " + ("all answering" if not down else "; ".join(
            f"{c['server']} {c['state'].upper()} (retried after {c['retry_at']})"
            for c in down)))
    if not info["ready"]:
        sys.exit(1)


@main.command("wait")
@click.option("--idle", is_flag=True, required=True,
              help="Wait until nothing is left in the automatic stages (normalise, "
                   "dedupe, trace, route, dispatch) and their queues.")
@click.option("--timeout", type=float, default=None,
              help="Give up after this many seconds (exit status 1).")
@click.option("--interval", type=float, default=0.5, show_default=True,
              help="Seconds between two looks.")
def wait(idle: bool, timeout: float | None, interval: float) -> None:
    """Return when the system is idle: for scripts (`hotline wait --idle --timeout 60`)."""
    import time

    runtime = _runtime()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            info = system_status(runtime)
            if info.get("idle"):
                click.echo("idle", err=True)
                return
            if deadline is not None and time.monotonic() >= deadline:
                left = {name: s["waiting"] for name, s in info.get("stages", {}).items()
                        if s["waiting"]}
                left.update({f"queue {q}": n for q, n in (info["queues"] or {}).items() if n})
                click.echo(f"hotline: not idle after {timeout:g} s: "
                           + (_pairs(left) if left else "the database is not reachable"),
                           err=True)
                sys.exit(1)
            time.sleep(interval)
    finally:
        runtime.close()


def _pairs(values: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(values.items())) or "none"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@main.group()
def retention() -> None:
    """Purging personal data and URLs after cases close."""


@retention.command("run")
@click.option("--dry-run", is_flag=True, help="Say what would be removed; change nothing.")
def retention_run(dry_run: bool) -> None:
    """Purge what is due now (or, with --dry-run, say what that would be)."""
    from pipeline.stages.retention import days_for, plan, purge

    runtime = _runtime()
    section = runtime.settings.retention
    now = runtime.clock.now()
    if dry_run:
        with runtime.session_factory() as session:
            todo = plan(session, section, now=now)
    else:
        todo = purge(runtime.session_factory, section, now=now)
    verb = "would purge" if dry_run else "purged"
    summary = todo.summary()
    for kind, counts in summary.items():
        if kind == "held_cases":
            continue
        days = days_for(section, kind)
        kept = "kept for ever" if days is None else f"{days} days after closing"
        click.echo(f"{kind:<17} {verb} {counts['cases']} cases, {counts['reports']} reports "
                   f"({kept})")
    click.echo(f"legal holds: {summary['held_cases']} due cases skipped")
    runtime.close()


case_group = shared_group("case", "One case: evidence for the police, legal holds.")


@case_group.command("evidence")
@click.argument("case_ref")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
              show_default=True, help="Folder in which the bundle is written.")
@click.option("--zip", "as_zip", is_flag=True, help="Write one .zip instead of a folder.")
@click.option("--by", "user", default="operator", show_default=True,
              help="Who makes the bundle (recorded in the audit trail).")
def case_evidence(case_ref: str, out: Path, as_zip: bool, user: str) -> None:
    """Write the evidence bundle of CASE for a police referral."""
    from pipeline.stages.evidence import export_evidence

    runtime = _runtime()
    try:
        path, bundle = export_evidence(
            runtime.session_factory, case_ref, out, settings=runtime.settings,
            now=runtime.clock.now(), actor=f"user:{user}", as_zip=as_zip)
    except (NotFound, FileExistsError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Evidence of case {case_ref} written to {path} "
               f"({len(bundle.files)} files; check with `sha256sum -c SHA256SUMS`).")
    runtime.close()


def _principal(runtime: Runtime, name: str, action: str, what: str) -> Principal:
    """The active user `name` as a principal allowed `action` (a refusal is audited)."""
    from pipeline.store.models import User

    with runtime.session_factory() as session:
        user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None or not user.active:
        raise click.ClickException(f"no active user {name!r}")
    principal = auth.principal_for_user(user, via="cli")
    try:
        with auth.audit_denials(runtime.session_factory, principal, runtime.clock):
            auth.require(principal, action, what=what)
    except PermissionDenied as exc:
        raise click.ClickException(str(exc)) from None
    return principal


@case_group.command("hold")
@click.argument("case_ref")
@click.option("--by", "user", required=True, help="The supervisor setting the hold.")
@click.option("--requested-by", required=True, help="The police unit and its reference.")
@click.option("--reason", required=True, help="Why the data must be kept.")
def case_hold(case_ref: str, user: str, requested_by: str, reason: str) -> None:
    """Put CASE under a legal hold: nothing of it is purged until the hold is lifted."""
    from pipeline.stages.retention import set_legal_hold

    runtime = _runtime()
    principal = _principal(runtime, user, "case.legal_hold",
                           "set a legal hold; a supervisor sets it")
    try:
        with runtime.session_factory.begin() as session:
            hold = set_legal_hold(session, case_ref, principal=principal,
                                  requested_by=requested_by, reason=reason,
                                  at=runtime.clock.now())
            hold_id = hold.id
    except (NotFound, BadInput, PermissionDenied) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Case {case_ref} is under legal hold {hold_id}.")
    runtime.close()


@case_group.command("lift-hold")
@click.argument("case_ref")
@click.option("--by", "user", required=True, help="The supervisor lifting the hold.")
@click.option("--reason", required=True, help="Why the hold ends.")
def case_lift_hold(case_ref: str, user: str, reason: str) -> None:
    """Lift the legal hold(s) of CASE; retention applies again."""
    from pipeline.stages.retention import lift_legal_hold

    runtime = _runtime()
    principal = _principal(runtime, user, "case.legal_hold",
                           "lift a legal hold; a supervisor lifts it")
    try:
        with runtime.session_factory.begin() as session:
            holds = lift_legal_hold(session, case_ref, principal=principal, reason=reason,
                                    at=runtime.clock.now())
    except (NotFound, BadInput, PermissionDenied) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"Lifted {len(holds)} legal hold(s) of case {case_ref}.")
    runtime.close()


@main.group()
def privacy() -> None:
    """Reporter privacy: the encryption key and re-encryption after a rotation."""


@privacy.command("reencrypt")
@click.option("--dry-run", is_flag=True, help="Count what would change; change nothing.")
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=500, show_default=True,
              help="Reports per transaction.")
@click.option("--by", "user", default="operator", show_default=True,
              help="Who runs it (recorded in the audit trail).")
def privacy_reencrypt(dry_run: bool, batch_size: int, user: str) -> None:
    """Encrypt reporter contacts stored in clear and re-encrypt those under an older key
    with the first configured key (after a rotation). Safe to run again."""
    from pipeline.app.privacy import reencrypt

    runtime = _runtime()
    done = reencrypt(runtime.session_factory, at=runtime.clock.now(), actor=f"user:{user}",
                     batch_size=batch_size, dry_run=dry_run)
    verb = "would be" if dry_run else "were"
    click.echo(f"{done.clear} contacts stored in clear {verb} encrypted; {done.rotated} "
               f"under an older key {verb} re-encrypted; {done.current} already under the "
               f"first key.")
    if done.changed_meanwhile:
        click.echo(f"{done.changed_meanwhile} changed while this ran; run it again.")
    runtime.close()
    if done.undecryptable:
        raise click.ClickException(
            f"{done.undecryptable} contacts are under none of the configured keys: add the "
            "key they were written with to the list.")


@privacy.command("new-key")
def privacy_new_key() -> None:
    """Print a new encryption key (put it in HOTLINE_PRIVACY__ENCRYPTION_KEY or a file)."""
    from pipeline.core.crypto import new_key

    click.echo(new_key())
