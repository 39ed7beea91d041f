"""The configuration files, found and merged with the standard library and PyYAML only
(no validation: that is `pipeline.core.config`'s model), so that the fast
`hotline import` (`pipeline.launcher`) can find the data folder, and with it a running
hotline's run file, without loading pydantic.

The files read, lowest first: the shipped `config.yaml` (the working directory's, else
the one beside the package; `HOTLINE_CONFIG_DEFAULTS` names another, or none when
empty), then the file `HOTLINE_CONFIG` names, laid over it key by key. Relative paths
in a file resolve against that file's folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

TYPE_CHECKING = False  # not typing's: the fast `hotline import` loads this module first
if TYPE_CHECKING:
    from typing import Any

DEFAULT_CONFIG_FILE = "config.yaml"
# The config.yaml shipped beside the package (the repository's root), read when the
# working directory has none.
SHIPPED_CONFIG_FILE = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG_FILE

# Keys holding a file or folder: relative values in a config file resolve against
# that file's folder (sqlite:/// database URLs too).
PATH_KEYS = frozenset({
    "app.data_dir", "dispatch.outbox_dir", "dispatch.smtp_ca_file", "trace.bootstrap_dir",
    "trace.providers_file", "trace.geoip_database", "assessment.priority_rules",
    "escalation.rules_file", "routing.rules_dir", "privacy.encryption_key_file",
})


def config_files() -> list[Path]:
    """The files read, lowest first: the shipped `config.yaml` (the working
    directory's, else the one beside the package; `HOTLINE_CONFIG_DEFAULTS` names
    another, or none when empty), then the file `HOTLINE_CONFIG` names."""
    files: list[Path] = []
    named = os.environ.get("HOTLINE_CONFIG_DEFAULTS")
    base = Path(named or DEFAULT_CONFIG_FILE)
    if named == "":
        pass
    elif base.is_file():
        files.append(base)
    elif named is None and SHIPPED_CONFIG_FILE.is_file():
        files.append(SHIPPED_CONFIG_FILE)
    overlay = os.environ.get("HOTLINE_CONFIG")
    if overlay and Path(overlay).is_file() and not any(
            Path(overlay).resolve() == f.resolve() for f in files):
        files.append(Path(overlay))
    return files


def load_yaml(text: str) -> Any:
    """A YAML document read safely: by libyaml when PyYAML was built with it, as its
    wheels are. Measured on the 2-core machine: the shipped config.yaml in 9 ms
    against 161 with PyYAML's own parser, rules/destinations.yaml in 12 against 134;
    every process reads them as it starts, and every `hotline` command."""
    return yaml.load(text, Loader=_yaml_loader())  # noqa: S506 - a safe loader


def read_config_files() -> tuple[dict[str, Any], dict[str, str]]:
    """The config files deep-merged, and which file gave each leaf key ("a.b")."""
    merged: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for path in config_files():
        data = load_yaml(path.read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: the top level must be a mapping of sections")
        _resolve_paths(data, path.resolve().parent)
        _deep_merge(merged, data, origin, str(path), "")
    return merged, origin


def _deep_merge(into: dict[str, Any], data: dict[str, Any], origin: dict[str, str],
                source: str, prefix: str) -> None:
    """Lay `data` over `into` key by key; mappings merge, anything else (lists too)
    replaces."""
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _deep_merge(into[key], value, origin, source, f"{dotted}.")
            continue
        into[key] = value
        for known in [k for k in origin if k.startswith(f"{dotted}.")]:
            del origin[known]
        if isinstance(value, dict):
            for leaf in leaves(value, f"{dotted}."):
                origin[leaf] = source
        else:
            origin[dotted] = source


def leaves(data: dict[str, Any], prefix: str) -> list[str]:
    out: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out += leaves(value, f"{prefix}{key}.")
        else:
            out.append(f"{prefix}{key}")
    return out


def _resolve_paths(data: dict[str, Any], folder: Path) -> None:
    """Relative paths in a file read from `folder` made relative to `folder` (left
    as written when that folder is the working directory)."""
    if folder == Path.cwd().resolve():
        return
    for section, values in data.items():
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if not isinstance(value, str) or not value:
                continue
            if f"{section}.{key}" in PATH_KEYS and not Path(value).is_absolute():
                values[key] = str(folder / value)
            elif (section, key) == ("database", "url") and value.startswith("sqlite:///"):
                path = value.removeprefix("sqlite:///")
                if path and path != ":memory:" and not Path(path).is_absolute():
                    values[key] = f"sqlite:///{folder / path}"


def _yaml_loader() -> type[Any]:
    """libyaml's safe loader when PyYAML was built with it (the same documents, read
    ten times faster), else PyYAML's own."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def data_dir_setting() -> Path | None:
    """`app.data_dir` as the validated settings would have it, read from the
    environment and the files alone; None when that is not certain (the `app`
    section given as JSON in HOTLINE_APP, a file that does not parse, a value that is
    not a plain path): the caller then loads the settings whole."""
    env = {k.upper(): v for k, v in os.environ.items() if k.upper().startswith("HOTLINE_APP")}
    if "HOTLINE_APP" in env:
        return None
    if "HOTLINE_APP__DATA_DIR" in env:
        value: Any = env["HOTLINE_APP__DATA_DIR"]
    else:
        overlay = os.environ.get("HOTLINE_CONFIG")
        if overlay and not Path(overlay).is_file():
            return None
        try:
            merged, _ = read_config_files()
        except (OSError, ValueError, yaml.YAMLError):
            return None
        app = merged.get("app", {})
        if not isinstance(app, dict):
            return None
        value = app.get("data_dir", "var")
    if not isinstance(value, str) or not value:
        return None
    return Path(value)
