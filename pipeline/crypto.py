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
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy import Text, text
from sqlalchemy.orm import Session
from sqlalchemy.types import TypeDecorator

from pipeline.config import Settings
from pipeline.errors import ConfigError, PermanentError
from pipeline.logs import register_secret
from pipeline.secrets import read_secret

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
                             "(pipeline.crypto.install_keys was not called)")
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

STREAM = "system:privacy"


@dataclass
class Reencryption:
    """What a re-encryption run did (or, dry, would do): counts only, never values."""

    clear: int = 0  # written in clear before a key was set: encrypted
    rotated: int = 0  # under an older key: re-encrypted under the first
    current: int = 0  # already under the first key: left alone
    undecryptable: int = 0  # under no configured key: left alone, reported
    changed_meanwhile: int = 0  # written by someone else during the run: left for next run
    batches: int = 0
    last_report_id: int = 0

    @property
    def changed(self) -> int:
        return self.clear + self.rotated

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _is_current(keys: Keys, token: str) -> bool:
    try:
        keys.primary.extract_timestamp(token.encode())  # checks the HMAC, decrypts nothing
    except InvalidToken:
        return False
    return True


def _renewed(keys: Keys, stored: str, done: Reencryption) -> str | None:
    """The value to store instead of `stored`, or None to leave it."""
    if not stored.startswith(PREFIX):
        done.clear += 1
        return PREFIX + keys.encrypt(stored.encode()).decode()
    token = stored[len(PREFIX):]
    if _is_current(keys, token):
        done.current += 1
        return None
    try:
        renewed = keys.rotate(token.encode()).decode()
    except InvalidToken:
        done.undecryptable += 1
        return None
    done.rotated += 1
    return PREFIX + renewed


def renewed(stored: str, done: Reencryption) -> str | None:
    """The value to store instead of `stored` under the first key (None: leave it),
    counted in `done`: for other encrypted columns (the helpline's, issue 22)."""
    return _renewed(cipher(), stored, done)


def reencrypt(
    session_factory: Callable[[], Session],
    *,
    at: datetime,
    actor: str,
    batch_size: int = 500,
    dry_run: bool = False,
    after_id: int = 0,
) -> Reencryption:
    """Bring every stored reporter contact under the first configured key.

    1. Read the next `batch_size` reports with a contact (id above the last one seen),
       as stored: no decryption through the column type.
    2. Contact in clear: encrypt it. Under an older key: `MultiFernet.rotate` (decrypt
       with whichever key fits, encrypt with the first). Under the first key: leave it.
       Under no configured key: leave it and count it (`undecryptable`).
    3. Write each new value only where the row still holds the value read (a worker or
       a purge may have changed it meanwhile; those are counted and left) and commit
       the batch. An interrupted run loses at most one batch: run it again.
    4. Record one `contacts_reencrypted` event with the counts in the `system:privacy`
       audit stream (not for a dry run).
    """
    keys = cipher()
    done = Reencryption(last_report_id=after_id)
    while True:
        with session_factory() as session, session.begin():
            rows = session.execute(text(
                "SELECT id, reporter_contact FROM reports WHERE reporter_contact IS NOT NULL "
                "AND id > :after ORDER BY id LIMIT :size"),
                {"after": done.last_report_id, "size": batch_size}).all()
            if not rows:
                break
            for report_id, stored in rows:
                renewed = _renewed(keys, stored, done)
                if renewed is None or dry_run:
                    continue
                written = session.execute(text(
                    "UPDATE reports SET reporter_contact = :new WHERE id = :id AND "
                    "reporter_contact = :old"), {"new": renewed, "id": report_id, "old": stored})
                if written.rowcount != 1:  # type: ignore[attr-defined]
                    done.changed_meanwhile += 1
            done.batches += 1
            done.last_report_id = rows[-1][0]
        log.info("Re-encryption%s: batch %d done, %d contacts to encrypt, %d to re-encrypt "
                 "so far.", " (dry run)" if dry_run else "", done.batches, done.clear,
                 done.rotated)
    if not dry_run:
        from pipeline import audit

        with session_factory() as session, session.begin():
            audit.record(session, STREAM, actor=actor, action="contacts_reencrypted", at=at,
                         data=done.as_dict())
    if done.undecryptable:
        log.warning("%d reporter contacts are under none of the configured keys; they were "
                    "left as they are.", done.undecryptable)
    return done
