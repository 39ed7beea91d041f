"""The configuration files read without the settings model (pipeline.core.config_files):
`data_dir_setting` finds the data folder the validated settings would, or says it
cannot be sure (None), for the fast `hotline import`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.core.config import load_settings
from pipeline.core.config_files import _yaml_loader, data_dir_setting, load_yaml


def _same_as_the_settings() -> Path | None:
    found = data_dir_setting()
    assert found is not None
    assert found == load_settings().data_path
    return found


def test_the_data_folder_is_the_one_the_settings_have(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("HOTLINE_CONFIG", raising=False)
    monkeypatch.setenv("HOTLINE_CONFIG_DEFAULTS", "")
    assert _same_as_the_settings() == Path("var")  # no file: the default
    (tmp_path / "config.yaml").write_text("app:\n  data_dir: here\n")
    monkeypatch.delenv("HOTLINE_CONFIG_DEFAULTS")
    assert _same_as_the_settings() == Path("here")  # the working directory's, as written
    other = tmp_path / "etc"
    other.mkdir()
    (other / "overlay.yaml").write_text("app:\n  name: X\n  data_dir: ../srv/var\n")
    monkeypatch.setenv("HOTLINE_CONFIG", str(other / "overlay.yaml"))
    assert _same_as_the_settings() == other / "../srv/var"  # relative to its file
    (other / "overlay.yaml").write_text("app:\n  name: X\n")
    assert _same_as_the_settings() == Path("here")  # merged key by key
    (other / "defaults.yaml").write_text("app:\n  data_dir: /srv/defaults\n")
    monkeypatch.setenv("HOTLINE_CONFIG_DEFAULTS", str(other / "defaults.yaml"))
    assert _same_as_the_settings() == Path("/srv/defaults")
    monkeypatch.setenv("hotline_app__data_dir", "/from/env")  # any case, as pydantic
    assert _same_as_the_settings() == Path("/from/env")


@pytest.mark.parametrize("env, config", [
    ({"HOTLINE_APP": '{"data_dir": "/x"}'}, "app:\n  data_dir: y\n"),
    ({}, "app: [1, 2]\n"),
    ({}, "app:\n  data_dir: 3\n"),
    ({}, "app:\n  data_dir: ''\n"),
    ({}, "app: {data_dir: [unclosed\n"),
    ({}, "- a list\n"),
])
def test_when_unsure_it_says_so(tmp_path, monkeypatch, env, config):
    path = tmp_path / "c.yaml"
    path.write_text(config)
    monkeypatch.setenv("HOTLINE_CONFIG", str(path))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert data_dir_setting() is None


def test_a_named_file_that_is_not_there_is_left_to_the_settings(tmp_path, monkeypatch):
    monkeypatch.setenv("HOTLINE_CONFIG", str(tmp_path / "missing.yaml"))
    assert data_dir_setting() is None


def test_load_yaml_reads_the_shipped_files_as_pyyaml_does_with_libyaml():
    """Every YAML file the project ships is read by libyaml (PyYAML's wheels carry it)
    to the same values as PyYAML's own safe loader; a broken document is a YAMLError
    naming its line, as the callers' messages need."""
    assert yaml.__with_libyaml__ and _yaml_loader() is yaml.CSafeLoader
    root = Path(__file__).resolve().parents[2]
    shipped = [root / "config.yaml", *sorted((root / "rules").glob("*.yaml"))]
    assert len(shipped) >= 7
    for path in shipped:
        text = path.read_text(encoding="utf-8")
        assert load_yaml(text) == yaml.load(text, Loader=yaml.SafeLoader), path  # noqa: S506
    with pytest.raises(yaml.YAMLError) as broken:
        load_yaml("rules:\n  - name: a\n  when: [\n")
    assert broken.value.problem_mark.line >= 2
    with pytest.raises(yaml.YAMLError):
        load_yaml("!!python/object/apply:os.system ['true']")  # safe: no Python objects
