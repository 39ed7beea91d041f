"""The IMAP poller, for hotlines whose mail lives on a server hotline does not run.

`poll_once(settings, password, deliver)` logs in over IMAPS (TLS from the first byte;
`mail.imap_ca_file` to trust a private CA), reads every message in `mail.imap_folder`
and, once `deliver` has taken it (committed), moves it to `mail.imap_done_folder`
(created if missing). Messages are read with BODY.PEEK, so a message that could not
be taken stays unread where it was and is read again at the next poll; a message
taken but not moved (a crash in between) is read again too, and the stage's
Message-ID check makes its reports once. A passing fault (`RetryLater`) ends the poll
early, leaving the rest for the next one. Messages over four times
`mail.max_message_bytes` are not fetched whole: their headers are, for a person.
The password comes only from the environment variable `mail.imap_password_env`.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import os
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.core.config import Settings
from pipeline.core.errors import ConfigError, RetryLater

log = logging.getLogger(__name__)

MAX_PER_POLL = 500


@dataclass
class PollResult:
    taken: int = 0
    left: int = 0  # left in the folder for the next poll


def password_from_environment(settings: Settings) -> str:
    name = settings.mail.imap_password_env
    value = os.environ.get(name)
    if not value:
        raise ConfigError([f"mail.imap_password_env: the environment variable {name} "
                           "holding the IMAP password is not set"])
    return value


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def connect(settings: Settings) -> imaplib.IMAP4_SSL:
    mail = settings.mail
    context = ssl.create_default_context(cafile=mail.imap_ca_file or None)
    if not mail.imap_host:
        raise ConfigError(["mail.imap_host: no IMAP server configured"])
    try:
        return imaplib.IMAP4_SSL(mail.imap_host, mail.imap_port, ssl_context=context,
                                 timeout=mail.imap_timeout_seconds)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise RetryLater(f"IMAP: cannot connect to {mail.imap_host}:{mail.imap_port}: "
                         f"{type(exc).__name__}: {exc}") from None


def poll_once(settings: Settings, password: str, deliver: Callable[..., Any],
              *, limit: int = MAX_PER_POLL) -> PollResult:
    """Read the folder once (see the module's docstring)."""
    mail = settings.mail
    result = PollResult()
    imap = connect(settings)
    try:
        try:
            imap.login(mail.imap_user or "", password)
        except imaplib.IMAP4.error as exc:
            raise ConfigError([f"mail.imap_user: the IMAP server refused the login ({exc})"]
                              ) from None
        imap.create(_quote(mail.imap_done_folder))  # "already exists" is fine
        status, _ = imap.select(_quote(mail.imap_folder))
        if status != "OK":
            raise ConfigError([f"mail.imap_folder: no folder {mail.imap_folder!r}"])
        status, data = imap.uid("SEARCH", "ALL")
        uids = [u.decode() for u in data[0].split()] if status == "OK" and data and data[0] \
            else []
        can_move = b"MOVE" in b" ".join(c.encode() if isinstance(c, str) else c
                                        for c in imap.capabilities)
        hard_limit = 4 * mail.max_message_bytes
        for position, uid in enumerate(uids):
            if position >= limit:
                result.left = len(uids) - position
                break
            raw, size = _fetch(imap, uid, hard_limit)
            if raw is None:
                continue  # vanished meanwhile
            try:
                deliver(raw, size) if size else deliver(raw)
            except RetryLater as exc:
                log.warning("The IMAP poll stopped early; the rest waits for the next: %s",
                            exc)
                result.left = len(uids) - position
                break
            result.taken += 1
            _move(imap, uid, mail.imap_done_folder, can_move)
        if not can_move:
            imap.expunge()
    except (OSError, imaplib.IMAP4.abort) as exc:
        raise RetryLater(f"IMAP: the connection failed: {type(exc).__name__}: {exc}"
                         ) from None
    finally:
        with contextlib.suppress(Exception):  # closing a connection that may be broken
            imap.logout()
    log.info("IMAP poll of %s took %d message(s), left %d.", mail.imap_folder, result.taken,
             result.left)
    return result


_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


def _fetch(imap: imaplib.IMAP4_SSL, uid: str, hard_limit: int
           ) -> tuple[bytes | None, int | None]:
    status, data = imap.uid("FETCH", uid, "(RFC822.SIZE)")
    match = _SIZE.search(data[0] if status == "OK" and data and isinstance(data[0], bytes)
                         else b"")
    size = int(match.group(1)) if match else 0
    part = "BODY.PEEK[HEADER]" if size > hard_limit else "BODY.PEEK[]"
    status, data = imap.uid("FETCH", uid, f"({part})")
    if status != "OK":
        return None, None
    for item in data:
        if isinstance(item, tuple) and len(item) == 2:
            return bytes(item[1]), (size if size > hard_limit else None)
    return None, None


def _move(imap: imaplib.IMAP4_SSL, uid: str, folder: str, can_move: bool) -> None:
    if can_move:
        status, _ = imap.uid("MOVE", uid, _quote(folder))
        if status == "OK":
            return
    imap.uid("COPY", uid, _quote(folder))
    imap.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
