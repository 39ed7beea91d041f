"""The `cli` fixture: `hotline` commands run in this process (click's CliRunner)
against the test's SQLite runtime, in English."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from pipeline.cli import main


@pytest.fixture
def cli(sqlite_runtime, tmp_path, monkeypatch):
    settings = sqlite_runtime.settings
    config = tmp_path / "cli-config.yaml"
    config.write_text(f"app:\n  data_dir: {settings.app.data_dir}\n"
                      f"database:\n  url: {settings.database.url}\n")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    monkeypatch.setenv("LANG", "en_GB.UTF-8")
    monkeypatch.delenv("LANGUAGE", raising=False)
    runner = CliRunner()

    def run(*args, ok=True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    return run
