"""Configuration: YAML, environment overrides, one clear line per bad key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.core.config import Settings, load_settings
from pipeline.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_config_file_is_valid_and_documents_every_key(monkeypatch):
    monkeypatch.setenv("HOTLINE_CONFIG", str(ROOT / "config.yaml"))
    settings = load_settings()
    assert settings.database.url.startswith("sqlite")
    text = (ROOT / "config.yaml").read_text()
    shipped = yaml.safe_load(text)
    lines = text.splitlines()
    for section, keys in shipped.items():
        assert section in Settings.model_fields, f"unknown section {section}"
        start = lines.index(f"{section}:")
        for key in keys or {}:
            index = next(i for i, line in enumerate(lines) if i > start
                         and line.startswith(f"  {key}:"))
            # A comment on the line, or in the block of lines just above (a comment may
            # describe a small group of keys, such as the days of the working week).
            block = []
            for line in reversed(lines[start + 1:index]):
                if not line.strip():
                    break
                block.append(line.strip())
            assert "#" in lines[index] or any(b.startswith("#") for b in block), (
                f"{section}.{key} has no comment in config.yaml")
    # Every key the model knows is in the shipped file.
    for name, field in Settings.model_fields.items():
        assert name in shipped, f"section {name} missing from config.yaml"
        section_model = field.annotation
        for key in section_model.model_fields:  # type: ignore[union-attr]
            assert key in (shipped[name] or {}), f"{name}.{key} missing from config.yaml"


def test_environment_variables_override_the_file(monkeypatch, tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("database:\n  url: sqlite:///from-file.db\nworker:\n  threads: 3\n")
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    monkeypatch.setenv("HOTLINE_DATABASE__URL", "postgresql://db.example/hotline")
    settings = load_settings()
    assert settings.database.url == "postgresql://db.example/hotline"
    assert settings.worker.threads == 3


@pytest.mark.parametrize(("yaml_text", "env", "expected"), [
    ("worker:\n  threads: lots\n", {}, "worker.threads: Input should be a valid integer"),
    ("", {"HOTLINE_BROKER__URL": "amqp://x"}, "broker.url: Value error, must be memory://"),
    ("app:\n  country: Serbia\n", {}, "app.country: Value error, must be a two-letter"),
    ("databse:\n  url: x\n", {}, "databse: unknown key"),
    ("web:\n  port: 70000\n", {}, "web.port: Input should be less than or equal to 65535"),
])
def test_a_bad_value_names_the_key_and_the_problem(monkeypatch, tmp_path, yaml_text, env,
                                                   expected):
    config = tmp_path / "c.yaml"
    config.write_text(yaml_text)
    monkeypatch.setenv("HOTLINE_CONFIG", str(config))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert any(p.startswith(expected) for p in info.value.problems), info.value.problems


def test_start_up_stops_with_one_line_per_problem(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("worker:\n  threads: 0\n")
    result = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "config", "check"],
        env={"HOTLINE_CONFIG": str(config), "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, cwd=tmp_path,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hotline: configuration error: worker.threads: Input should be greater than or "
        "equal to 1 (got 0)"]


def test_a_missing_config_file_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("HOTLINE_CONFIG", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="HOTLINE_CONFIG: no such file"):
        load_settings()
