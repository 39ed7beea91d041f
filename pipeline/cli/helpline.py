"""The helpline from a terminal: `hotline contacts add|list|show|take-up|from-mail` and
`hotline helpline-cases list|show|urls|task|advisory|refer|reply|close|institutions|
remind|purge`. Each acts as the user named by `--as` (or HOTLINE_USER), with that
user's role (counsellor or supervisor), and is audited like the API. Writes commit
before anything is enqueued; in embedded mode the queued stages run here."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy.orm import Session

from pipeline.app.auth import Principal, audit_denials, require
from pipeline.app.runtime import Runtime
from pipeline.cli import (
    drain_if_embedded,
    main,
    refuse,
    runtime_with_broker,
    settings_or_exit,
)
from pipeline.cli.assessment import as_option, principal_named
from pipeline.core.errors import BadInput, NotFound, PermissionDenied
from pipeline.stages import helpline
from schemas.helpline import (
    AgeGroup,
    CallerType,
    CaseType,
    ContactChannel,
    ContactIn,
    Relation,
    ReplyIn,
    TakeUpIn,
    TaskIn,
    Topic,
)

T = TypeVar("T")

def _act(name: str, action: str, work: Callable[[Session, Principal, Runtime], T]) -> T:
    """Run `work` as `name` (who must be allowed `action`): commit, then enqueue what an
    `Outcome` asks for, and in embedded mode run those stages here."""
    runtime, broker = runtime_with_broker(settings_or_exit())
    try:
        principal = principal_named(runtime, name)
        with audit_denials(runtime.session_factory, principal, runtime.clock):
            require(principal, action)
            result: Any = None

            def run(session: Session) -> helpline.Outcome:
                nonlocal result
                result = work(session, principal, runtime)
                return result if isinstance(result, helpline.Outcome) else helpline.Outcome()

            outcome = helpline.commit_then_enqueue(runtime.session_factory, runtime.enqueuer,
                                                   run)
        if outcome.report_ids or outcome.notice_ids:
            drain_if_embedded(runtime.settings, broker)
        return result  # type: ignore[no-any-return]
    except PermissionDenied as exc:
        raise click.ClickException(f"denied: {exc}") from None
    except (BadInput, NotFound, ValidationError) as exc:
        refuse(exc)
    finally:
        runtime.close()


def _echo(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _choices(enum: Any) -> click.Choice:
    return click.Choice([e.value for e in enum])


# ------------------------------------------------------------------------ contacts


@main.group()
def contacts() -> None:
    """Helpline contacts: calls, e-mails, chats... as counsellors record them."""


@contacts.command("add")
@as_option
@click.option("--channel", type=_choices(ContactChannel), default="phone", show_default=True)
@click.option("--caller", "caller_type", type=_choices(CallerType), required=True,
              help="Who got in touch.")
@click.option("--topic", type=_choices(Topic), required=True)
@click.option("--minutes", type=float, help="How long it lasted.")
@click.option("--language", default="sr", show_default=True)
@click.option("--contact", "caller_contact", help="How to reach the caller (not anonymous).")
@click.option("--summary", help="A short summary.")
@click.option("--received-at", type=click.DateTime(), help="When (default: now; UTC).")
@click.option("--case-type", type=_choices(CaseType), help="Form a case of this type.")
@click.option("--urgent", is_flag=True, help="The case: a child in danger now.")
@click.option("--age", "child_age_group", type=_choices(AgeGroup), help="The child's age group.")
@click.option("--relation", type=_choices(Relation), help="The caller to the child.")
@click.option("--accounts", help="Accounts and platforms involved.")
@click.option("--url", "urls", multiple=True, help="A URL involved (repeat).")
@click.option("--join", "join_case", help="Join the helpline case with this reference.")
def contacts_add(as_user: str, channel: str, caller_type: str, topic: str,
                 minutes: float | None, language: str, caller_contact: str | None,
                 summary: str | None, received_at: datetime | None, case_type: str | None,
                 urgent: bool, child_age_group: str | None, relation: str | None,
                 accounts: str | None, urls: tuple[str, ...], join_case: str | None) -> None:
    """Record a contact; with --case-type it forms a case, with --join it joins one."""
    def work(session: Session, principal: Principal, runtime: Runtime) -> helpline.Outcome:
        case = None
        if case_type:
            case = {"case_type": case_type, "urgent": urgent, "child_age_group": child_age_group,
                    "relation": relation, "accounts": accounts, "urls": list(urls)}
        item = ContactIn.model_validate({
            "channel": channel, "caller_type": caller_type, "topic": topic,
            "duration_minutes": minutes, "language": language,
            "anonymous": caller_contact is None, "caller_contact": caller_contact,
            "summary": summary, "received_at": received_at, "case": case,
            "join_case": join_case})
        return helpline.record_contact(session, item, counsellor=principal.name,
                                       now=runtime.clock.now(), settings=runtime.settings,
                                       source="cli")

    outcome = _act(as_user, "helpline.record", work)
    assert outcome.contact is not None
    click.echo(f"Contact {outcome.contact.ref} recorded"
               + (f"; helpline case {outcome.case.ref}" if outcome.case else "")
               + (f"; paged {', '.join(outcome.paged)}" if outcome.paged else "")
               + (f"; URL reports {', '.join(outcome.report_refs)}" if outcome.report_refs
                  else "") + ".")


@contacts.command("list")
@as_option
@click.option("--limit", default=50, show_default=True)
def contacts_list(as_user: str, limit: int) -> None:
    """The latest contacts (with the caller's data: counsellors and supervisors only)."""
    rows = _act(as_user, "helpline.view", lambda s, _p, _r: [
        helpline.contact_out(c, ref).model_dump(mode="json")
        for c, ref in helpline.list_contacts(s, limit=limit)])
    _echo(rows)


@contacts.command("show")
@as_option
@click.argument("ref")
def contacts_show(as_user: str, ref: str) -> None:
    """One contact, with what came in (counsellors and supervisors only)."""
    _echo(_act(as_user, "helpline.view", lambda s, _p, _r: helpline.contact_out(
        *helpline.find_contact(s, ref)).model_dump(mode="json")))


@contacts.command("take-up")
@as_option
@click.argument("ref")
@click.option("--caller", "caller_type", type=_choices(CallerType), required=True,
              help="Who got in touch.")
@click.option("--topic", type=_choices(Topic), required=True)
@click.option("--case-type", type=_choices(CaseType), help="Form a case of this type.")
@click.option("--urgent", is_flag=True, help="The case: a child in danger now.")
@click.option("--age", "child_age_group", type=_choices(AgeGroup), help="The child's age group.")
@click.option("--relation", type=_choices(Relation), help="The caller to the child.")
@click.option("--accounts", help="Accounts and platforms involved.")
@click.option("--url", "urls", multiple=True, help="A URL involved (repeat); e.g. one "
              "written in the message. Reported now, linked to the case.")
@click.option("--join", "join_case", help="Join the helpline case with this reference.")
def contacts_take_up(as_user: str, ref: str, caller_type: str, topic: str,
                     case_type: str | None, urgent: bool, child_age_group: str | None,
                     relation: str | None, accounts: str | None, urls: tuple[str, ...],
                     join_case: str | None) -> None:
    """Take up a contact from the public form or the mailbox: who, what about, and a
    case formed (--case-type) or joined (--join)."""
    def work(session: Session, principal: Principal, runtime: Runtime) -> helpline.Outcome:
        item = TakeUpIn.model_validate({
            "caller_type": caller_type, "topic": topic, "join_case": join_case,
            "case": {"case_type": case_type, "urgent": urgent,
                     "child_age_group": child_age_group, "relation": relation,
                     "accounts": accounts, "urls": list(urls)} if case_type else None})
        return helpline.take_up(session, ref, caller_type=item.caller_type.value,
                                topic=item.topic.value, case=item.case, join=item.join_case,
                                counsellor=principal.name, now=runtime.clock.now(),
                                settings=runtime.settings)

    outcome = _act(as_user, "helpline.record", work)
    assert outcome.contact is not None
    click.echo(f"Contact {outcome.contact.ref} taken up"
               + (f"; helpline case {outcome.case.ref}" if outcome.case else "")
               + (f"; URL reports {', '.join(outcome.report_refs)}" if outcome.report_refs
                  else "") + ".")


@contacts.command("from-mail")
@as_option
@click.argument("message_id", type=int)
def contacts_from_mail(as_user: str, message_id: int) -> None:
    """Turn a message of the mailbox's look-at queue (`hotline mail look-at`) into a
    helpline contact, once (as the console's button does)."""
    done = _act(as_user, "mailbox.to_helpline", lambda s, p, r: helpline.contact_from_mail(
        s, message_id, counsellor=p.name, now=r.clock.now(), settings=r.settings))
    if done.created:
        click.echo(f"Mail message {message_id} is now helpline contact {done.contact_ref}.")
    else:
        click.echo(f"Mail message {message_id} was already helpline contact "
                   f"{done.contact_ref}; nothing more done.")


# ---------------------------------------------------------------------- cases


@main.group("helpline-cases")
def helpline_cases() -> None:
    """Helpline cases: advisory or referred to institutions."""


@helpline_cases.command("list")
@as_option
@click.option("--state", "states", multiple=True, help="Only this state (repeat).")
def cases_list(as_user: str, states: tuple[str, ...]) -> None:
    rows = _act(as_user, "helpline.view", lambda s, _p, _r: [
        (c.ref, c.state, c.case_type, "urgent" if c.urgent else "", c.counsellor)
        for c in helpline.list_cases(s, states=list(states) or None)])
    for row in rows:
        click.echo("\t".join(row))


@helpline_cases.command("show")
@as_option
@click.argument("ref")
def cases_show(as_user: str, ref: str) -> None:
    """Everything about one case, with the state of its URL reports."""
    _echo(_act(as_user, "helpline.view", lambda s, _p, r: helpline.case_view(
        s, ref, now=r.clock.now(), settings=r.settings).model_dump(mode="json")))


@helpline_cases.command("urls")
@as_option
@click.argument("ref")
@click.argument("urls", nargs=-1, required=True)
def cases_urls(as_user: str, ref: str, urls: tuple[str, ...]) -> None:
    """Report URLs of the case into the URL pipeline (linked to the case)."""
    outcome = _act(as_user, "helpline.record", lambda s, p, r: helpline.add_urls(
        s, ref, list(urls), actor=p.actor, now=r.clock.now(), settings=r.settings))
    click.echo(f"URL reports {', '.join(outcome.report_refs)} linked to {ref}.")


@helpline_cases.command("task")
@as_option
@click.argument("ref")
@click.argument("title")
@click.option("--due", type=click.DateTime(), required=True, help="Due (UTC).")
def cases_task(as_user: str, ref: str, title: str, due: datetime) -> None:
    task = _act(as_user, "helpline.record", lambda s, p, r: helpline.add_task(
        s, ref, TaskIn(title=title, due_at=due), actor=p.actor, now=r.clock.now()))
    click.echo(f"Task {task.id} added to {ref}.")


@helpline_cases.command("advisory")
@as_option
@click.argument("ref")
def cases_advisory(as_user: str, ref: str) -> None:
    """Close the case as advisory: advice given, nothing to refer."""
    _act(as_user, "helpline.refer", lambda s, p, r: helpline.close_advisory(
        s, ref, actor=p.actor, now=r.clock.now()))
    click.echo(f"Helpline case {ref} closed as advisory.")


@helpline_cases.command("refer")
@as_option
@click.argument("ref")
@click.argument("destinations", nargs=-1, required=True)
def cases_refer(as_user: str, ref: str, destinations: tuple[str, ...]) -> None:
    """Refer the case to institutions (keys from `hotline helpline-cases institutions`)."""
    outcome = _act(as_user, "helpline.refer", lambda s, p, r: helpline.refer(
        s, ref, list(destinations), actor=p.actor, now=r.clock.now(), settings=r.settings))
    click.echo(f"Helpline case {ref}: {len(outcome.notice_ids)} referral(s) planned"
               + (f" (notices {', '.join(map(str, outcome.notice_ids))})."
                  if outcome.notice_ids else "; it was referred there already."))


@helpline_cases.command("reply")
@as_option
@click.argument("ref")
@click.argument("destination")
@click.option("--reference", help="The institution's own reference.")
@click.option("--text", help="What it said.")
def cases_reply(as_user: str, ref: str, destination: str, reference: str | None,
                text: str | None) -> None:
    """Record an institution's reply or reference."""
    _act(as_user, "helpline.refer", lambda s, p, r: helpline.record_reply(
        s, ref, ReplyIn(destination=destination, reference=reference, text=text),
        actor=p.actor, now=r.clock.now(), settings=r.settings))
    click.echo(f"Reply of {destination} recorded on {ref}.")


@helpline_cases.command("close")
@as_option
@click.argument("ref")
@click.option("--reason", required=True)
def cases_close(as_user: str, ref: str, reason: str) -> None:
    _act(as_user, "helpline.refer", lambda s, p, r: helpline.close_case(
        s, ref, actor=p.actor, now=r.clock.now(), reason=reason))
    click.echo(f"Helpline case {ref} closed.")


@helpline_cases.command("institutions")
def cases_institutions() -> None:
    """The referral directory (rules/destinations.yaml, helpline_referral: true)."""
    settings = settings_or_exit()
    for dest in helpline.referral_directory(helpline.directory_of(settings)):
        flags = ["personal data" if dest.receives_personal_data else "no personal data"]
        if dest.is_placeholder:
            flags.append("ADDRESS NOT SET")
        click.echo(f"{dest.key}\t{dest.kind}\t{', '.join(flags)}\t{dest.name}")


@helpline_cases.command("check-rules")
def cases_check_rules() -> None:
    """Validate rules/helpline.yaml against the directory; name every problem."""
    from pipeline.domain.rules import RulesInvalid

    settings = settings_or_exit()
    try:
        rules = helpline.load_helpline_rules(settings.helpline.rules_file,
                                             helpline.directory_of(settings))
    except RulesInvalid as exc:
        for problem in exc.problems:
            click.echo(f"ERROR {problem}", err=True)
        raise SystemExit(1) from None
    click.echo(f"{len(rules)} helpline rules in {settings.helpline.rules_file} are valid.")


@helpline_cases.command("evidence")
@as_option
@click.argument("ref")
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="Folder to write <ref>-evidence/ into.")
@click.option("--with-personal-data", is_flag=True,
              help="Include the caller's and child's data (supervisors only).")
def cases_evidence(as_user: str, ref: str, out: Path, with_personal_data: bool) -> None:
    """Write the case's evidence bundle (SHA-256 manifest and SHA256SUMS) to a folder."""
    from pipeline.stages.evidence import write_bundle

    def work(session: Session, principal: Principal, runtime: Runtime) -> Path:
        if with_personal_data:
            require(principal, "helpline.legal_hold", what="export personal data")
        path, _ = helpline.export_bundle(session, ref, out, personal=with_personal_data,
                                         actor=principal.actor, now=runtime.clock.now(),
                                         settings=runtime.settings, write=write_bundle)
        return path

    click.echo(f"Evidence bundle written to {_act(as_user, 'helpline.view', work)}.")


@helpline_cases.command("remind")
def cases_remind() -> None:
    """Plan reminders to institutions that have not replied (the scheduler does this)."""
    runtime, broker = runtime_with_broker(settings_or_exit())
    try:
        ids = helpline.plan_reminders(runtime.session_factory, settings=runtime.settings,
                                      clock=runtime.clock, enqueuer=runtime.enqueuer)
        if ids:
            drain_if_embedded(runtime.settings, broker)
    finally:
        runtime.close()
    click.echo(f"{len(ids)} reminder(s) planned.")


@helpline_cases.command("reencrypt")
@click.option("--dry-run", is_flag=True, help="Count only; change nothing.")
@click.option("--by", "user", required=True, envvar="HOTLINE_USER", help="Who runs it.")
def cases_reencrypt(dry_run: bool, user: str) -> None:
    """After a key rotation: the helpline's encrypted data under the first key."""
    runtime, _ = runtime_with_broker(settings_or_exit())
    try:
        from pipeline.app.privacy import reencrypt_helpline

        done = reencrypt_helpline(runtime.session_factory, at=runtime.clock.now(),
                                  actor=f"user:{user}", dry_run=dry_run)
    finally:
        runtime.close()
    _echo(done.as_dict())


@helpline_cases.command("purge")
def cases_purge() -> None:
    """Purge callers' and children's data past helpline.personal_data_days (retention)."""
    runtime, _ = runtime_with_broker(settings_or_exit())
    try:
        counts = helpline.purge_personal_data(runtime.session_factory,
                                              settings=runtime.settings,
                                              now=runtime.clock.now())
    finally:
        runtime.close()
    _echo(counts)
