"""`hotline stats` (pipeline.cli.stats): the statistics export as JSON and CSV, and its
schema."""

from __future__ import annotations

import csv
import io
import json

import pytest

from pipeline.app.runtime import Runtime
from pipeline.core.config import Settings
from schemas.stats import StatsExport
from tests.stages.test_stats import build, settings  # noqa: F401 - the builder and the fixture


def test_the_command_exports_csv_and_json(sqlite_runtime: Runtime, settings: Settings,  # noqa: F811
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    build(sqlite_runtime)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", sqlite_runtime.settings.database.url)
    monkeypatch.setenv("HOTLINE_WORKTIME__TIMEZONE", "UTC")
    runner = CliRunner()
    as_json = runner.invoke(main, ["stats", "export", "--from", "2026-01-05", "--to",
                                   "2026-01-11", "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    assert StatsExport.model_validate_json(as_json.output).reports.total == 5
    as_csv = runner.invoke(main, ["stats", "export", "--from", "2026-01-05", "--to",
                                  "2026-01-11", "--format", "csv"])
    assert ["reports", "", "", "total", "5"] in list(csv.reader(io.StringIO(as_csv.output)))
    backwards = runner.invoke(main, ["stats", "export", "--from", "2026-01-11", "--to",
                                     "2026-01-05"])
    assert backwards.exit_code != 0
    schema = runner.invoke(main, ["stats", "schema"])
    assert json.loads(schema.output) == StatsExport.model_json_schema()
