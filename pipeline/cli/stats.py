"""`hotline stats export|schema|urls`, `hotline escalation check|run`,
`hotline monitoring run`."""

from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

from pipeline.app.runtime import build_runtime
from pipeline.cli import main, settings_or_exit


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2026-01-31") from None


def _write(text: str, output: Path | None) -> None:
    if output is None:
        click.echo(text, nl=not text.endswith("\n"))
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"Wrote {output}.", err=True)


@main.group()
def stats() -> None:
    """The statistics export (aggregates: no URLs, no personal data)."""


@stats.command("export")
@click.option("--from", "start", required=True, help="First day (UTC), YYYY-MM-DD.")
@click.option("--to", "end", required=True, help="Last day (UTC), YYYY-MM-DD, included.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json",
              show_default=True)
@click.option("--suppress-below", type=click.IntRange(min=0), default=None,
              help="Withhold counts from 1 to N-1 (default: stats.suppress_below).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write to this file instead of standard output.")
def stats_export(start: str, end: str, fmt: str, suppress_below: int | None,
                 output: Path | None) -> None:
    """Export the figures of a period as JSON (schemas/stats.schema.json) or CSV."""
    from pipeline.stages.stats import export_stats, to_csv

    first, last = _date(start), _date(end)
    if last < first:
        raise click.BadParameter("--to is before --from")
    settings = settings_or_exit()
    runtime = build_runtime(settings)
    try:
        with runtime.session_factory.begin() as session:
            result = export_stats(session, first, last, settings=settings,
                                  now=runtime.clock.now(), suppress_below=suppress_below)
    finally:
        runtime.close()
    _write(to_csv(result) if fmt == "csv" else result.model_dump_json(indent=2) + "\n",
           output)


@stats.command("schema")
def stats_schema() -> None:
    """Print the JSON Schema of the JSON export."""
    from schemas.stats import StatsExport

    click.echo(json.dumps(StatsExport.model_json_schema(), indent=2))


@stats.command("urls")
@click.option("--from", "start", required=True, help="First day (UTC), YYYY-MM-DD.")
@click.option("--to", "end", required=True, help="Last day (UTC), YYYY-MM-DD, included.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="json",
              show_default=True)
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None)
def stats_urls(start: str, end: str, fmt: str, output: Path | None) -> None:
    """The per-URL export for ICCAM-style exchange (carries URLs; audited)."""
    from pipeline.stages.stats import iccam_csv, iccam_rows
    from pipeline.store.audit import record

    first, last = _date(start), _date(end)
    settings = settings_or_exit()
    runtime = build_runtime(settings)
    try:
        with runtime.session_factory.begin() as session:
            rows = iccam_rows(session, first, last)
            record(session, "system:cli", actor="cli", action="url_export",
                   at=runtime.clock.now(), data={"from": start, "to": end, "rows": len(rows)})
    finally:
        runtime.close()
    if fmt == "csv":
        _write(iccam_csv(rows), output)
    else:
        _write(json.dumps([r.model_dump(mode="json") for r in rows], indent=2) + "\n", output)


@main.group()
def escalation() -> None:
    """Reminders and the escalation ladder (rules/escalation.yaml)."""


@escalation.command("check")
@click.option("--file", "path", default=None, type=click.Path(path_type=Path),
              help="The rules file (default: escalation.rules_file).")
def escalation_check(path: Path | None) -> None:
    """Validate the escalation rules against the directory of destinations."""
    from pipeline.core.errors import ConfigError
    from pipeline.stages.escalation import load_directory_for, load_rules

    settings = settings_or_exit()
    path = path or Path(settings.escalation.rules_file)
    try:
        rules = load_rules(path, directory=load_directory_for(settings))
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(f"ERROR {problem}", err=True)
        sys.exit(1)
    click.echo(f"{path} is valid: reminders after {rules.reminder.first_after_hours:g} h "
               f"(at most {rules.reminder.max_reminders}), ladder "
               + (", ".join(f"{s.step} at {s.after_hours:g} h" for s in rules.ladder)
                  or "empty") + ".")


@escalation.command("run")
def escalation_run() -> None:
    """Send the reminders and escalations that are due (once)."""
    from pipeline.cli import runtime_with_broker
    from pipeline.stages.escalation import run_escalation

    settings = settings_or_exit()
    runtime, _ = runtime_with_broker(settings)
    click.echo(json.dumps(run_escalation(runtime.session_factory, runtime.enqueuer, settings,
                                         clock=runtime.clock)))


@main.group()
def monitoring() -> None:
    """Checks after notice: is the content still there?"""


@monitoring.command("run")
def monitoring_run() -> None:
    """Run the checks that are due (once)."""
    from pipeline.cli import runtime_with_broker
    from pipeline.stages.monitoring import run_monitoring

    settings = settings_or_exit()
    runtime, _ = runtime_with_broker(settings)
    click.echo(json.dumps(run_monitoring(runtime.session_factory, runtime.enqueuer,
                                         settings.monitoring, clock=runtime.clock)))
