"""Configuration files that compose: HOTLINE_CONFIG laid over the shipped
config.yaml key by key, relative paths against the file's folder, resolvers written
as text, where each value came from, and web.public_url following host and port."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.core.config import ResolverAddress, Settings, load_settings, provenance
from pipeline.core.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def overlay(monkeypatch, tmp_path):
    """Write an overlay file in its own folder and name it in HOTLINE_CONFIG; the
    working directory is the repository (its config.yaml is the shipped one)."""
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("HOTLINE_CONFIG_DEFAULTS", raising=False)
    folder = tmp_path / "etc"
    folder.mkdir()

    def write(text: str) -> Path:
        path = folder / "hotline.yaml"
        path.write_text(text)
        monkeypatch.setenv("HOTLINE_CONFIG", str(path))
        return path

    return write


def test_an_overlay_changes_one_key_and_keeps_the_section_s_others(overlay):
    overlay("trace:\n  rdap_timeout_seconds: 3\n")
    settings = load_settings()
    assert settings.trace.rdap_timeout_seconds == 3
    # The section's other keys are the shipped file's, not lost.
    assert settings.trace.retry_delay_ms == 30_000
    assert [r.address for r in settings.trace.resolvers] == ["1.1.1.1", "9.9.9.9"]


def test_the_overlay_wins_over_the_shipped_file_and_lists_replace_whole(overlay):
    overlay("urls:\n  schemes: [https]\n")
    assert load_settings().urls.schemes == ["https"]


def test_relative_paths_in_a_file_resolve_against_its_folder(overlay, tmp_path):
    path = overlay("routing:\n  rules_dir: rules\napp:\n  data_dir: ../data\n"
                   "database:\n  url: sqlite:///db/h.db\n"
                   "trace:\n  providers_file: /abs/providers.yaml\n")
    settings = load_settings()
    assert settings.routing.rules_dir == str(path.parent / "rules")
    assert settings.app.data_dir == str(path.parent / "../data")
    assert settings.database.url == f"sqlite:///{path.parent}/db/h.db"
    assert settings.trace.providers_file == "/abs/providers.yaml"


def test_paths_of_the_shipped_file_read_from_the_working_directory_stay_as_written(
        overlay):
    overlay("")
    assert load_settings().routing.rules_dir == "rules"


@pytest.mark.parametrize(("text", "address", "port"), [
    ("192.0.2.53", "192.0.2.53", 53),
    ("192.0.2.53:5353", "192.0.2.53", 5353),
    ("[2001:db8::53]:53", "2001:db8::53", 53),
    ("[2001:db8::53]", "2001:db8::53", 53),
    ("2001:db8::53", "2001:db8::53", 53),
])
def test_a_resolver_may_be_written_as_text(text, address, port):
    resolver = ResolverAddress.model_validate(text)
    assert (resolver.address, resolver.port) == (address, port)


def test_resolvers_as_text_in_a_file(overlay):
    overlay('trace:\n  resolvers: ["192.0.2.53:5353", "[2001:db8::53]:53"]\n')
    resolvers = load_settings().trace.resolvers
    assert [(r.address, r.port) for r in resolvers] == [("192.0.2.53", 5353),
                                                         ("2001:db8::53", 53)]


@pytest.mark.parametrize("text", ["resolver.example", "192.0.2.53:port", "[2001:db8::53]x"])
def test_a_bad_resolver_is_named(overlay, text):
    overlay(f'trace:\n  resolvers: ["{text}"]\n')
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert any(p.startswith("trace.resolvers.0") for p in info.value.problems), \
        info.value.problems


def test_public_url_follows_host_and_port_unless_given(overlay):
    overlay("web:\n  port: 9123\n")
    assert load_settings().web.public_url == "http://127.0.0.1:9123"
    overlay("web:\n  host: '::1'\n  port: 9124\n")
    assert load_settings().web.public_url == "http://[::1]:9124"
    overlay("web:\n  port: 9123\n  public_url: https://hotline.example\n")
    assert load_settings().web.public_url == "https://hotline.example"


def test_provenance_names_default_file_and_environment(overlay, monkeypatch):
    path = overlay("worker:\n  threads: 3\n")
    monkeypatch.setenv("HOTLINE_WEB__PORT", "9001")
    settings = load_settings()
    sources = provenance(settings)
    assert sources["worker.threads"] == str(path)
    assert sources["web.port"] == "environment (HOTLINE_WEB__PORT)"
    assert sources["trace.rdap_timeout_seconds"] == "config.yaml"
    assert settings.web.public_url == "http://127.0.0.1:9001"
    # A key no file sets is the model's default.
    monkeypatch.chdir(overlay("").parent)  # no config.yaml here...
    monkeypatch.setattr("pipeline.core.config_files.SHIPPED_CONFIG_FILE", Path("/nonexistent"))
    assert provenance(Settings())["worker.threads"] == "default"


def test_config_check_prints_each_value_with_its_source(overlay):
    path = overlay("worker:\n  threads: 3\n")
    env = {**os.environ, "HOTLINE_CONFIG": str(path), "HOTLINE_WEB__PORT": "9001",
           "PYTHONPATH": str(ROOT)}
    env.pop("HOTLINE_CONFIG_DEFAULTS", None)
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "check"],
                            env=env, capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert f"worker.threads = 3\t# {path}" in lines
    assert "web.port = 9001\t# environment (HOTLINE_WEB__PORT)" in lines
    assert ('web.public_url = "http://127.0.0.1:9001"\t'
            "# default (from web.host and web.port)") in lines
    assert "files read" in result.stderr
