"""Secrets: from the environment or from files outside the repository, never logged.

Every secret setting comes as a pair, `<name>` and `<name>_file`: the value itself
(a `SecretStr`, given through a `HOTLINE_<SECTION>__<NAME>` variable) or the path of
a file holding it (Docker and systemd credentials, a mounted Kubernetes secret).
`read_secret` returns the value and registers it with the log redaction filter, so
no log line can show it even by accident.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr

from pipeline.core.errors import ConfigError
from pipeline.core.logs import register_secret

log = logging.getLogger(__name__)

# The repository (or installed package) root: secret files must not live under it.
_PROJECT_ROOT = Path(__file__).resolve().parents[2]


def read_secret(
    value: SecretStr | None, file: str | None, *, key: str
) -> str | None:
    """The secret named `key` (e.g. "privacy.encryption_key"), or None if not given."""

    secret: str | None = None
    if value is not None and value.get_secret_value().strip():
        secret = value.get_secret_value().strip()
    elif file:
        path = Path(file).expanduser()
        try:
            secret = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError([f"{key}_file: cannot read {file!r}: {exc.strerror}"]) from None
        if not secret:
            raise ConfigError([f"{key}_file: {file!r} is empty"])
        if _inside_project(path):
            log.warning("Secret %s is read from a file inside the project folder; keep secret "
                        "files outside the repository.", key)
    if secret:
        register_secret(secret)
    return secret


def _inside_project(path: Path) -> bool:
    try:
        path.resolve().relative_to(_PROJECT_ROOT)
    except ValueError:
        return False
    return (_PROJECT_ROOT / ".git").exists()


def register_settings_secrets(settings: Any) -> None:
    """Never log the passwords inside the configured service URLs (database, broker,
    Redis) nor any `SecretStr` setting."""



    for url in (settings.database.url, settings.broker.url, settings.redis.url):
        if url:
            try:
                register_secret(urlsplit(url).password)
            except ValueError:
                continue
    for section in settings.__dict__.values():
        if isinstance(section, BaseModel):
            for value in section.__dict__.values():
                if isinstance(value, SecretStr):
                    register_secret(value.get_secret_value())
