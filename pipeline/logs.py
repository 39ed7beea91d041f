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
  automatically whenever a `Report` is loaded or given one) with `[redacted]`.
Both filters sit on the handler `configure` installs, so they apply to every logger.
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

from pipeline.config import LoggingSection

REDACTED = "[redacted]"
ID_FIELDS = ("case_id", "report_id", "notice_id", "stage", "message_id", "ids")
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


def redact(text: str) -> str:
    global _ordered
    with _lock:
        if _ordered is None:
            _ordered = sorted([*_secrets, *_personal], key=len, reverse=True)
        values = _ordered
    for value in values:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


class ContextFilter(logging.Filter):
    """Copies the bound ids onto the record (explicit `extra` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_context.get() or {}).items():
            if not hasattr(record, key):
                setattr(record, key, value)
        shown = [f"{k}={getattr(record, k)}" for k in ID_FIELDS if hasattr(record, k)]
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
            if hasattr(record, key):
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
    watch_reports()
    register_environment_secrets()
    handler = make_handler(section, stream)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(section.level)
    return handler


_watching = False


def watch_reports() -> None:
    """Register every reporter contact and description this process loads or sets."""
    global _watching
    if _watching:
        return
    from sqlalchemy import event

    from pipeline.models import Report

    def _loaded(target: Report, *_: Any) -> None:
        state = target.__dict__
        register_personal(state.get("reporter_contact"))
        register_personal(state.get("description"))

    def _set(_target: Any, value: Any, *_: Any) -> Any:
        if isinstance(value, str):
            register_personal(value)
        return value

    event.listen(Report, "load", _loaded)
    event.listen(Report, "refresh", _loaded)
    event.listen(Report.reporter_contact, "set", _set, retval=True)
    event.listen(Report.description, "set", _set, retval=True)
    _watching = True
