"""Reporter privacy jobs: bring every stored reporter contact under the current key.

The cipher itself (Fernet keys, the encrypted column type) is `pipeline.core.crypto`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from cryptography.fernet import InvalidToken
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from pipeline.core.crypto import PREFIX, Keys, cipher
from pipeline.store import audit

log = logging.getLogger(__name__)

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
    counted in `done`: for every encrypted column, reporters' and the helpline's."""
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
        with session_factory() as session, session.begin():
            audit.record(session, STREAM, actor=actor, action="contacts_reencrypted", at=at,
                         data=done.as_dict())
    if done.undecryptable:
        log.warning("%d reporter contacts are under none of the configured keys; they were "
                    "left as they are.", done.undecryptable)
    return done


# The encrypted columns of the helpline tables (id column, table, column).
ENCRYPTED = (("helpline_contacts", "caller_contact"), ("helpline_contacts", "summary"),
             ("helpline_cases", "accounts"), ("helpline_cases", "notes"),
             ("helpline_referrals", "reply_text"))


def reencrypt_helpline(session_factory: sessionmaker[Session], *, at: datetime, actor: str,
              dry_run: bool = False, batch_size: int = 500) -> Reencryption:
    """`hotline privacy reencrypt` for the helpline's encrypted columns: each value
    in clear or under an older key is written again under the first key, by
    compare-and-set, one committed batch at a time (run again after an interruption);
    one `helpline_data_reencrypted` event with the counts (never values)."""
    done = Reencryption()
    for table, column in ENCRYPTED:
        after = 0
        while True:
            with session_factory.begin() as session:
                rows = session.execute(text(
                    f"SELECT id, {column} FROM {table} WHERE {column} IS NOT NULL "  # noqa: S608 - fixed names
                    "AND id > :after ORDER BY id LIMIT :size"),
                    {"after": after, "size": batch_size}).all()
                if not rows:
                    break
                for row_id, stored in rows:
                    new = renewed(stored, done)
                    if new is None or dry_run:
                        continue
                    written = session.execute(text(
                        f"UPDATE {table} SET {column} = :new WHERE id = :id "  # noqa: S608
                        f"AND {column} = :old"), {"new": new, "id": row_id, "old": stored})
                    if written.rowcount != 1:  # type: ignore[attr-defined]
                        done.changed_meanwhile += 1
                done.batches += 1
                after = rows[-1][0]
    if not dry_run:
        with session_factory.begin() as session:
            audit.record(session, "system:privacy", actor=actor,
                         action="helpline_data_reencrypted", at=at, data=done.as_dict())
    return done
