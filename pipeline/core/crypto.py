"""Reporter contacts encrypted at rest (Fernet: AES-128-CBC with HMAC-SHA256).

`install_keys(settings)` (called by `build_runtime`) loads the key(s) for this
process: from `privacy.encryption_key` (the environment) or `privacy.encryption_key_file`.
Production mode refuses to start without one; embedded mode creates a key file under
the data folder and warns. Several keys, comma-separated and newest first, let an
operator rotate: new values are encrypted with the first, old ones still decrypt.

`EncryptedText` is the column type of `Report.reporter_contact`: values are stored
as `fernet:<token>`; a value without that prefix (written before encryption was
introduced) is read as it is and encrypted when next written.

`reencrypt` (`hotline privacy reencrypt [--dry-run]`) brings every stored contact under
the first key: it encrypts those written in clear and re-encrypts those under an older
key (`MultiFernet.rotate`), in batches that each commit, so an interrupted run is simply
started again. It is audited with counts only.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text
from sqlalchemy.types import TypeDecorator

from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError, PermanentError
from pipeline.core.logs import register_secret
from pipeline.core.secrets import read_secret

log = logging.getLogger(__name__)

PREFIX = "fernet:"
KEY_FILE = Path("secrets") / "encryption.key"

_cipher: Keys | None = None


def new_key() -> str:
    return Fernet.generate_key().decode()


class Keys:
    """The configured keys, newest first: the first encrypts, every one decrypts.

    Holds a `MultiFernet` rather than subclassing it: since cryptography 51 it is a
    Rust type that cannot be a base class."""

    def __init__(self, fernets: list[Fernet]):
        self._all = MultiFernet(fernets)
        self.primary = fernets[0]

    def encrypt(self, data: bytes) -> bytes:
        return self._all.encrypt(data)

    def decrypt(self, token: bytes) -> bytes:
        return self._all.decrypt(token)

    def rotate(self, token: bytes) -> bytes:
        return self._all.rotate(token)


def _parse(keys: str, where: str) -> Keys:
    parts = [k.strip() for k in keys.replace("\n", ",").split(",") if k.strip()]
    for part in parts:
        register_secret(part)
    try:
        return Keys([Fernet(k) for k in parts])
    except (ValueError, TypeError):
        raise ConfigError([
            f"{where}: not a Fernet key (32 url-safe base64-encoded bytes; make one with "
            "`hotline privacy new-key`)"
        ]) from None


def load_cipher(settings: Settings) -> Keys:
    """The cipher this configuration asks for; may create the embedded key file."""
    privacy = settings.privacy
    keys = read_secret(privacy.encryption_key, privacy.encryption_key_file,
                       key="privacy.encryption_key")
    if keys:
        where = "privacy.encryption_key_file" if privacy.encryption_key is None else (
            "privacy.encryption_key")
        return _parse(keys, where)
    if settings.app.mode == "production":
        raise ConfigError([
            "privacy.encryption_key: production mode needs a key to encrypt reporter "
            "contacts (HOTLINE_PRIVACY__ENCRYPTION_KEY or privacy.encryption_key_file)"
        ])
    path = settings.data_path / KEY_FILE
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(path.parent, 0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(new_key() + "\n")
        log.warning("No encryption key configured: created %s for reporter contacts. Back it "
                    "up; without it they cannot be read.", path)
    # The embedded key lives under the data folder (./var by default, git-ignored), so it
    # is read directly, without read_secret's warning about files inside the project.
    keys = path.read_text(encoding="utf-8").strip()
    register_secret(keys)
    return _parse(keys, str(path))


def install_keys(settings: Settings) -> None:
    """Make this configuration's key(s) the ones `EncryptedText` uses in this process."""
    global _cipher
    _cipher = load_cipher(settings)


def cipher() -> Keys:
    if _cipher is None:
        raise PermanentError("no encryption key is installed in this process "
                             "(pipeline.core.crypto.install_keys was not called)")
    return _cipher


def encrypt(value: str) -> str:
    return PREFIX + cipher().encrypt(value.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # written before encryption was introduced
    try:
        return cipher().decrypt(stored[len(PREFIX):].encode()).decode()
    except InvalidToken:
        raise PermanentError("a reporter contact cannot be decrypted with the configured "
                             "key(s); was the encryption key replaced without rotation?") from None


class EncryptedText(TypeDecorator[str]):
    """Text encrypted with the process's key before it reaches the database."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else encrypt(value)

    def process_result_value(self, value: str | None, dialect: Any) -> str | None:
        return None if value is None else decrypt(value)


# --- bringing stored contacts under the first key ------------------------------------
