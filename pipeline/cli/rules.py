"""`hotline rules check` and `hotline rules explain CASE`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from pipeline.cli import main, settings_or_exit


@main.group()
def rules() -> None:
    """Routing rules and the directory of destinations (rules/*.yaml)."""


@rules.command("check")
@click.option("--dir", "rules_dir", default=None, type=click.Path(path_type=Path),
              help="Folder of the rule files (default: routing.rules_dir).")
def rules_check(rules_dir: Path | None) -> None:
    """Validate the rule files; name file, rule and field of every problem."""
    from pipeline.domain.rules import RulesInvalid, load_ruleset, placeholders

    folder = rules_dir or Path(settings_or_exit().routing.rules_dir)
    try:
        ruleset = load_ruleset(folder)
    except RulesInvalid as exc:
        for problem in exc.problems:
            click.echo(f"ERROR {problem}", err=True)
        click.echo(f"{len(exc.problems)} problems in {folder}.", err=True)
        sys.exit(1)
    waiting = placeholders(ruleset)
    if waiting:
        click.echo(f"NOTE {len(waiting)} destinations have placeholder addresses to fill in "
                   f"before going live: {', '.join(waiting)}")
    click.echo(f"{len(ruleset.rules)} rules and {len(ruleset.directory.destinations)} "
               f"destinations in {folder} are valid (version {ruleset.digest}).")


def _facts_line(facts: dict[str, Any]) -> str:
    def show(v: Any) -> str:
        return "null" if v is None else ("true" if v is True else "false" if v is False
                                         else str(v))
    return ", ".join(f"{k}={show(v)}" for k, v in facts.items())


def explain_lines(case: Any, notices: list[Any], ruleset: Any, settings: Any) -> list[str]:
    """What `rules explain` prints (also used by tests)."""
    from pipeline.domain.rules import evaluate
    from pipeline.stages.routing import case_facts, plan

    lines = [f"Case {case.ref} (id {case.id}), state {case.state}."]
    routing = case.routing
    if routing is None:
        facts = case_facts(case, home_country=settings.app.country, ruleset=ruleset)
        decision = evaluate(ruleset.rules, facts)
        result = plan(decision, case, ruleset, settings.app.country)
        lines.append(f"Not routed yet. With the current rules (version {ruleset.digest}) "
                     "it would go:")
        routing = {
            "facts": facts, "steps": [s.as_dict() for s in decision.steps],
            "notices": [{"destination": t.destination.key, "kind": t.destination.kind,
                         "after_police_hold": after, "rule": rule}
                        for t, after, rule in result.notices],
            "unresolved": result.unresolved, "closed": result.close_reason,
            "hold_until": None,
        }
    else:
        lines.append(f"Routed at {routing.get('at')} by rules version {routing.get('rules')} "
                     f"(round {routing.get('round')}).")
    lines.append(f"Facts: {_facts_line(routing.get('facts', {}))}")
    lines.append("Rules, in order:")
    for step in routing.get("steps", []):
        lines.append(f"  {'HIT ' if step['hit'] else 'miss'} {step['rule']}: {step['why']}")
    lines.append("Decision:")
    if routing.get("closed") and not routing.get("notices"):
        lines.append(f"  closed: {routing['closed']}")
    for item in routing.get("notices", []):
        after = " after the police hold" if item.get("after_police_hold") else ""
        lines.append(f"  notify {item['destination']} ({item['kind']}){after} "
                     f"[rule {item['rule']}]")
    for item in routing.get("unresolved", []):
        fallback = f"; fell back to {item['fallback']}" if item.get("fallback") else ""
        lines.append(f"  could not notify {item['target']}: {item['why']}{fallback} "
                     f"[rule {item['rule']}]")
    if routing.get("hold_until"):
        lines.append(f"  held for the police until {routing['hold_until']}")
    if case.police_hold_reason:
        lines.append(f"  police: {case.police_hold_reason}")
    if notices:
        lines.append("Notices:")
        for n in notices:
            when = n.sent_at.isoformat() if n.sent_at else (n.due_at.isoformat()
                                                            if n.due_at else "")
            lines.append(f"  #{n.id} {n.destination} via {n.channel}, round {n.round}: "
                         f"{n.state} {when}".rstrip())
    return lines


@rules.command("explain")
@click.argument("case")
def rules_explain(case: str) -> None:
    """Why a case went where it went (CASE is its reference or id)."""
    from pipeline.app.runtime import build_runtime
    from pipeline.domain.rules import RulesInvalid, load_ruleset
    from pipeline.store.models import Case, Notice

    settings = settings_or_exit()
    runtime = build_runtime(settings)
    try:
        ruleset = load_ruleset(settings.routing.rules_dir)
    except RulesInvalid as exc:
        raise click.ClickException("the rules are invalid: run `hotline rules check`; "
                                   + exc.problems[0]) from None
    with runtime.session_factory() as session:
        query = select(Case).where(Case.ref == case)
        if case.isdigit():
            query = select(Case).where(Case.id == int(case))
        row = session.execute(query).scalar_one_or_none()
        if row is None:
            raise click.ClickException(f"no case {case}")
        notices = list(session.execute(select(Notice).where(Notice.case_id == row.id)
                                       .order_by(Notice.id)).scalars())
        for line in explain_lines(row, notices, ruleset, settings):
            click.echo(line)
    runtime.close()
