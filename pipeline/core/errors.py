"""One error tree for the whole pipeline.

Three kinds of failure are kept apart, as in dramatiq:
- `RetryLater`: a passing condition (a registry answered 429, a timeout); the message
  is retried after `delay_ms`.
- `PermanentError`: retrying cannot help (listed in the actors' `throws=`); the
  message is dead-lettered at once.
- `BadInput` and its children: the data is wrong; it is refused with a message that
  names the problem, or recorded on the item and set aside.
"""

from __future__ import annotations

from typing import Any


class HotlineError(Exception):
    """Base of every error this project raises on purpose."""


class ConfigError(HotlineError):
    """The configuration is invalid; `problems` holds one line per bad key."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems))


class BadInput(HotlineError):
    """Input that cannot be accepted, with a reason a person can read."""


class FieldError(BadInput):
    """Bad input in one field, as a sentence naming it: `message` is a msgid (marked
    with `N_`, translated where it is shown), `params` its values (a `field` value is
    a label's msgid, translated too). `str()` is the English sentence, for the CLI
    and the API."""

    def __init__(self, field: str | None, message: str, /, **params: Any):
        self.field, self.message, self.params = field, message, params
        super().__init__(message % params if params else message)


class RejectedURL(BadInput):
    """A reported URL that cannot be processed (not a URL, wrong scheme, no host, ...)."""


class IllegalTransition(HotlineError):
    """A state change the lifecycle table does not allow."""

    def __init__(self, kind: str, ref: str, from_state: str | None, to_state: str):
        self.kind, self.ref, self.from_state, self.to_state = kind, ref, from_state, to_state
        super().__init__(
            f"{kind} {ref} cannot go from {from_state or 'nothing'} to {to_state}"
        )


class NotFound(HotlineError):
    """The named object does not exist (or the caller may not know that it does).

    Like `FieldError`, `message` may be a msgid (marked with `N_`) with `params` its
    values, translated where it is shown (the console's error page and forms), and
    `field` the form field that named the object; `str()` is the English sentence,
    for the CLI and the API."""

    def __init__(self, message: str = "", *, field: str | None = None, **params: Any):
        self.field, self.message, self.params = field, message, params
        super().__init__(message % params if params else message)


class PermissionDenied(HotlineError):
    """The caller's role does not allow this."""


class RetryLater(HotlineError):
    """A passing failure: retry the message after `delay_ms`."""

    def __init__(self, message: str, delay_ms: int = 5_000):
        self.delay_ms = delay_ms
        super().__init__(message)


class PermanentError(HotlineError):
    """A failure retrying cannot fix: dead-letter the message at once."""


def describe_validation_errors(errors: list[Any]) -> list[str]:
    """One readable line per problem: `reports.3.url: Field required`."""
    lines = []
    for error in errors:
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body",)]
        lines.append(f"{'.'.join(loc) or 'body'}: {error.get('msg')}")
    return lines
