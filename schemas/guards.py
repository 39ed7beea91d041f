"""The rules every input from outside meets before anything stores it, in one place.

Whatever the door (the intake and partner APIs, the other JSON routes, `hotline
submit`, `hotline import`), the same rules hold, and a value that breaks one is
refused naming the field and the reason, never left to fail in the database:

- text holds no character a database refuses: NUL (PostgreSQL's text and JSON refuse
  U+0000) and lone UTF-16 surrogates (U+D800..U+DFFF: no UTF-8 encoding exists, so
  neither psycopg nor sqlite3 can send them);
- a time carries a zone and converts to UTC within the calendar
  ("9999-12-31T23:59:59-12:00" does not: the conversion overflows);
- an integer fits 64 bits (the database's BIGINT) and a number is finite;
- a JSON body is UTF-8, and nests at most `MAX_DEPTH` levels (`load_json`).

Every input model derives from `InputModel`, so the first three rules need no route
of their own; `load_json` is for the routes and lines that parse JSON themselves.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ValidationInfo, field_validator

# Nesting deeper than any input format of the hotline needs (the deepest, the exchange
# format, nests four levels); the JSON decoder's own limit (Python's recursion limit)
# would otherwise end in a RecursionError.
MAX_DEPTH = 32
_BIGINT = 2**63


class BodyRefused(ValueError):
    """A body that cannot be read as JSON: `status` 400 (not JSON, not UTF-8, too
    deep); the message says why."""

    status = 400


# A lone UTF-16 surrogate (the JSON escape "\ud800" decodes to one).
_SURROGATE = re.compile("[\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None. (Searched by `re`, not a loop
    over the characters in Python: validating a request of 1,000 reports took 17 ms
    with that loop, 10 without.)"""
    if "\x00" in value:
        return "contains a NUL character (U+0000), which cannot be stored"
    found = _SURROGATE.search(value)
    if found is not None:
        return (f"contains a lone surrogate (U+{ord(found.group()):04X} at position "
                f"{found.start()}), which is not text")
    return None


def utc_problem(value: datetime) -> str | None:
    """Why the time `value` cannot be stored, or None."""
    if value.tzinfo is None:
        return "must carry a time zone (e.g. 2026-01-05T09:00:00Z)"
    try:
        value.astimezone(UTC)
    except OverflowError:
        return "is out of range: it falls outside years 1 to 9999 in UTC"
    return None


def storable(value: Any) -> Any:
    """`value` unchanged, or ValueError saying which rule it breaks (lists, tuples and
    dicts are looked into; models are checked by their own `InputModel` rules)."""
    problem: str | None = None
    if isinstance(value, str):
        problem = text_problem(value)
    elif isinstance(value, datetime):
        problem = utc_problem(value)
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int):
        if not -_BIGINT <= value < _BIGINT:
            problem = "is out of range: integers are at most 64 bits"
    elif isinstance(value, float):
        if not math.isfinite(value):
            problem = "must be a finite number"
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            storable(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key)
            storable(item)
    if problem is not None:
        raise ValueError(problem)
    return value


class InputModel(BaseModel):
    """The base of every model that takes input from outside: each field meets the
    rules of this module (pydantic names the field in the error)."""

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any, _info: ValidationInfo) -> Any:
        return storable(value)


def _depth_problem(payload: Any, max_depth: int) -> bool:
    """True when `payload` nests deeper than `max_depth` (walked without recursion)."""
    stack: list[tuple[Any, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Any = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > max_depth:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def load_json(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of `body`, or `BodyRefused` saying why not."""
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BodyRefused(f"the body is not valid UTF-8 (byte {exc.start})") from None
    else:
        text = body
    try:
        payload = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BodyRefused(f"the body nests deeper than {max_depth} levels") from None
    except ValueError as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else str(exc)
        raise BodyRefused(f"the body is not valid JSON ({reason})") from None
    if _depth_problem(payload, max_depth):
        raise BodyRefused(f"the body nests deeper than {max_depth} levels")
    return payload


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
