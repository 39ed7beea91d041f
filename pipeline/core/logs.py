"""Logging: sentences with ids, as text or JSON lines, with personal data and secrets
redacted.

- `log_context(case_id=..., report_id=...)` binds the ids a piece of work concerns;
  every line logged inside it carries them (`ContextFilter`), as do lines given
  `extra={"case_id": ...}`. The workers bind the stage, message and ids of each
  message they process.
- `RedactionFilter` replaces, in the message and in any traceback, every registered
  secret (`register_secret`: keys, passwords; `configure` also registers every
  environment variable named like a secret) and every personal value this process
  has seen (`register_personal`: reporter contacts and descriptions, registered
  automatically whenever a `Report` is loaded or given one) with `[redacted]`; and,
  whether or not this process ever loaded them, everything shaped like an e-mail
  address (other than a role mailbox such as abuse@, which notices go to) or a phone
  number (`redact_patterns`).
Both filters sit on the handler `configure` installs, so they apply to every logger.
The first defence is not logging such values at all: `tests/test_log_calls.py` reads
every logging call and refuses reporter contacts, descriptions, passwords, tokens and
keys among its arguments, and asks a line about one case, report or notice to carry
its id as a field (`extra={"case_id": case.id}` or inside `log_context(case_id=...)`).
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import IO, Any

from pipeline.core.config import LoggingSection

REDACTED = "[redacted]"
ID_FIELDS = ("case_id", "report_id", "notice_id", "stage", "message_id", "ids", "request_id")
_MIN_LENGTH = 4  # shorter values would redact ordinary words
_PREFIX_LENGTH = 32  # a truncated description is still caught by its beginning
_MAX_PERSONAL = 4_096

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "hotline_log_context", default=None
)
_lock = threading.Lock()
_secrets: set[str] = set()
_personal: OrderedDict[str, None] = OrderedDict()
_ordered: list[str] | None = None  # every value, longest first; rebuilt after a change


@contextlib.contextmanager
def log_context(**ids: Any) -> Iterator[None]:
    """Every line logged inside carries these ids (case_id, report_id, ...)."""
    token = bind(**ids)
    try:
        yield
    finally:
        unbind(token)


def bind(**ids: Any) -> contextvars.Token[dict[str, Any] | None]:
    values = {**(_context.get() or {}), **{k: v for k, v in ids.items() if v is not None}}
    return _context.set(values)


def unbind(token: contextvars.Token[dict[str, Any] | None]) -> None:
    _context.reset(token)


def register_secret(value: str | None) -> None:
    """Never show `value` in a log line."""
    global _ordered
    if value and len(value) >= _MIN_LENGTH:
        with _lock:
            if value not in _secrets:
                _secrets.add(value)
                _ordered = None


_SECRET_NAME = re.compile(r"PASSWORD|PASSPHRASE|SECRET|TOKEN|CREDENTIAL|(^|_)KEY($|_)",
                          re.IGNORECASE)


def register_environment_secrets(environ: Mapping[str, str] | None = None) -> int:
    """Register the value of every environment variable whose name says it is a secret
    (HOTLINE_SMTP_PASSWORD, HOTLINE_PRIVACY__ENCRYPTION_KEY, a webhook's *_KEY...)."""
    count = 0
    for name, value in (os.environ if environ is None else environ).items():
        if _SECRET_NAME.search(name) and value and len(value) >= _MIN_LENGTH:
            register_secret(value)
            count += 1
    return count


def register_personal(value: str | None) -> None:
    """Never show this personal value (a reporter's contact or words) in a log line."""
    if not value:
        return
    value = value.strip()
    candidates = [value]
    if len(value) > _PREFIX_LENGTH:
        candidates.append(value[:_PREFIX_LENGTH])
    global _ordered
    with _lock:
        for candidate in candidates:
            if len(candidate) < _MIN_LENGTH:
                continue
            if candidate in _personal:
                _personal.move_to_end(candidate)
                continue
            _personal[candidate] = None
            _ordered = None
        while len(_personal) > _MAX_PERSONAL:
            _personal.popitem(last=False)


# Mailboxes of organisations, not of persons: the abuse desks notices are sent to.
ROLE_MAILBOXES = frozenset({"abuse", "postmaster", "hostmaster", "noc", "security", "cert",
                            "csirt"})
_EMAIL = re.compile(r"(?<![\w.%+-])([\w.%+-]+)@[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}(?![\w-])")
# A phone number: an international (+, 00) or national (0) prefix, then digits that may
# be grouped by spaces, hyphens, slashes or brackets; 8 to 15 digits in all. Not inside a
# word, an id, a time or a path, so timestamps, IP addresses and UUIDs stay readable.
_PHONE = re.compile(r"(?<![\w+:/.\-])(?:\+|00|\(0|0)[\d(][\d \-/()]*\d(?![\w:\-])")


def _email(match: re.Match[str]) -> str:
    return match.group(0) if match.group(1).lower() in ROLE_MAILBOXES else REDACTED


def _phone(match: re.Match[str]) -> str:
    digits = sum(c.isdigit() for c in match.group(0))
    return REDACTED if 8 <= digits <= 15 else match.group(0)


def redact_patterns(text: str) -> str:
    """E-mail addresses and phone numbers, whoever they belong to, as `[redacted]`."""
    if "@" in text:
        text = _EMAIL.sub(_email, text)
    return _PHONE.sub(_phone, text)


def redact(text: str) -> str:
    global _ordered
    with _lock:
        if _ordered is None:
            _ordered = sorted([*_secrets, *_personal], key=len, reverse=True)
        values = _ordered
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return redact_patterns(text)


class ContextFilter(logging.Filter):
    """Copies the bound ids onto the record (an explicit `extra` wins unless it is None,
    so `extra={"case_id": case_id}` may be written where the id is sometimes unknown)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        shown = [f"{k}={getattr(record, k)}" for k in ID_FIELDS
                 if getattr(record, k, None) is not None]
        record.ids_text = f" [{' '.join(shown)}]" if shown else ""
        return True


class RedactionFilter(logging.Filter):
    """Replaces secrets and personal values in the message and the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ID_FIELDS:
            if getattr(record, key, None) is not None:
                entry[key] = getattr(record, key)
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s%(ids_text)s: %(message)s"


def make_handler(section: LoggingSection, stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if section.format == "json" else
                         logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactionFilter())
    return handler


def configure(section: LoggingSection, stream: IO[str] | None = None) -> logging.Handler:
    """Send every logger's lines to `stream` (stderr) through the filters above."""
    register_environment_secrets()
    handler = make_handler(section, stream)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(section.level)
    return handler
