"""Why a form cannot be saved, in sentences people understand.

The schemas name problems as `field: required when ...` (pydantic); the console and
the CLI show instead one sentence per problem naming the field, from the gettext
catalogs (the msgids below; translate with `pipeline.core.i18n`). `assessment_problems`
knows the assessment's rules; `form_problems` serves every other form: a `FieldError`
carries its own sentence, a schema's error becomes a sentence naming the field by
the label the form shows (`FIELD_LABELS`); a `NotFound` carries its sentence too.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from pipeline.core.errors import FieldError, NotFound
from pipeline.core.i18n import N_, gettext

_CSAM_REQUIRED = {
    "age_group": N_("Choose an age group: it is required for child sexual abuse material."),
    "gender": N_("Choose a gender: it is required for child sexual abuse material."),
    "site_type": N_("Choose a site type: it is required for child sexual abuse material."),
    "content_type": N_("Choose a content type: it is required for child sexual abuse "
                       "material."),
    "commercial": N_("Say whether the site is commercial: it is required for child sexual "
                     "abuse material."),
}
_CATEGORY_REQUIRED = N_("Choose a category: illegal content must say what it is.")
_BASELINE = N_("Choose “illegal under national law” for this category: the international "
               "baseline applies only to child sexual abuse material.")
_LEGALITY_REQUIRED = N_("Choose the legality: every decision needs one.")
_NOT_AN_OPTION = N_("Choose one of the options offered for this field.")
_NOTES_TOO_LONG = N_("Shorten the notes: they are at most 10,000 characters.")


# Values of these parameters are msgids (a field's label, a state's words), translated
# with the sentence; every other value (a reference, a number) is shown as it is.
WORD_PARAMS = frozenset({"field", "state", "to"})


@dataclass(frozen=True)
class Problem:
    field: str | None  # the form field, None for the decision as a whole
    message: str  # a msgid
    params: dict[str, Any] = dataclasses.field(default_factory=dict)  # `field`: a label's msgid

    def text(self, lang: str) -> str:
        """The sentence in `lang`."""
        words = gettext(lang, self.message)
        if not self.params:
            return words
        return words % {k: gettext(lang, v) if k in WORD_PARAMS and v else v
                        for k, v in self.params.items()}


# Form fields by the label the console shows them with (msgids of the forms' labels).
FIELD_LABELS: dict[str, str] = {
    # helpline contacts and cases
    "channel": N_("Channel"), "caller_type": N_("Who got in touch"), "topic": N_("Topic"),
    "duration_minutes": N_("Duration (minutes)"), "minutes": N_("Duration (minutes)"),
    "language": N_("Language"), "caller_contact": N_("Caller's contact (optional)"),
    "summary": N_("Short summary"), "join_case": N_("About an existing case"),
    "case_type": N_("Case type"), "child_age_group": N_("Child's age group"),
    "relation": N_("Caller's relation to the child"), "accounts": N_("Accounts and platforms "
                                                                      "involved (one per line)"),
    "notes": N_("Notes"), "urls": N_("URLs involved (one per line): each goes to the URL "
                                     "pipeline"),
    "title": N_("Task"), "due_at": N_("Due"), "destination": N_("Institution"),
    "destinations": N_("Refer to institutions"), "reference": N_("Their reference"),
    "text": N_("What they said"), "reason": N_("Close the case: why"),
    # users
    "name": N_("Name"), "role": N_("Role"),
}
_REQUIRED = N_("Fill in “%(field)s”: it is required.")
_TOO_LONG = N_("Shorten “%(field)s”: it takes at most %(max)s characters.")
_CHOOSE = N_("Choose “%(field)s” from the options offered.")
_NUMBER = N_("Write “%(field)s” as a number within the range the form allows.")
_DATE = N_("Write “%(field)s” as a date and time, for example 2026-12-31 14:00.")
_CHECK = N_("Check “%(field)s”: this value cannot be used.")
_CHECK_WHY = N_("Check “%(field)s”: %(why)s.")


def _schema_problem(error: Any, labels: dict[str, str]) -> Problem:
    loc = [str(p) for p in error.get("loc", ()) if not str(p).isdigit()]
    name = loc[-1] if loc else None
    kind = str(error.get("type", ""))
    if name is None:
        message = re.sub(r"^Value error, ", "", str(error.get("msg", "")))
        return Problem(None, message)
    label = labels.get(name) or FIELD_LABELS.get(name, name.replace("_", " "))
    if kind == "missing" or kind == "string_too_short" or kind == "too_short":
        return Problem(name, _REQUIRED, {"field": label})
    if kind in ("string_too_long", "too_long"):
        limit = (error.get("ctx") or {}).get("max_length", "")
        return Problem(name, _TOO_LONG, {"field": label, "max": limit})
    if kind in ("enum", "literal_error"):
        return Problem(name, _CHOOSE, {"field": label})
    if kind.startswith(("int_", "float_", "greater_", "less_")):
        return Problem(name, _NUMBER, {"field": label})
    if kind.startswith(("datetime_", "date_")):
        return Problem(name, _DATE, {"field": label})
    if kind == "value_error":  # a validator's own reason (e.g. "contains a NUL character")
        why = re.sub(r"^Value error, ", "", str(error.get("msg", ""))).strip().rstrip(".")
        if why:
            return Problem(name, _CHECK_WHY, {"field": label, "why": why})
    return Problem(name, _CHECK, {"field": label})


def form_problems(exc: Exception, labels: dict[str, str] | None = None) -> list[Problem]:
    """One sentence (msgid with its values) per problem, naming the field (by
    `labels`, e.g. the CLI's option names, else `FIELD_LABELS`)."""
    if isinstance(exc, (FieldError, NotFound)):
        return [Problem(exc.field, exc.message, dict(exc.params))]
    if isinstance(exc, ValidationError):
        return [_schema_problem(error, labels or {}) for error in exc.errors()]
    # A lower layer's "field: what is wrong" (English): the field named by its label.
    text = str(exc).strip()
    name, sep, rest = text.partition(":")
    if sep and name.strip() in FIELD_LABELS:
        return [Problem(name.strip(), _CHECK_WHY, {"field": FIELD_LABELS[name.strip()],
                                                   "why": rest.strip().rstrip(".")})]
    return [Problem(None, text)]


def _from_text(text: str) -> Problem:
    field, _, rest = text.partition(":")
    field = field.strip()
    if field in _CSAM_REQUIRED and "required" in rest:
        return Problem(field, _CSAM_REQUIRED[field])
    if field == "category" and "required" in rest:
        return Problem("category", _CATEGORY_REQUIRED)
    if field == "legality" and "baseline" in rest:
        return Problem("legality", _BASELINE)
    return Problem(None, text.strip())


def assessment_problems(exc: Exception) -> list[Problem]:
    """One problem per field, each a sentence (msgid) naming the field."""
    if not isinstance(exc, ValidationError):
        return [_from_text(part) for part in str(exc).split(";") if part.strip()]
    out: list[Problem] = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ())]
        field = loc[0] if loc else None
        kind = str(error.get("type", ""))
        if field is None:
            message = re.sub(r"^Value error, ", "", str(error.get("msg", "")))
            out.extend(_from_text(part) for part in message.split(";") if part.strip())
        elif kind == "missing" and field == "legality":
            out.append(Problem("legality", _LEGALITY_REQUIRED))
        elif field == "notes":
            out.append(Problem("notes", _NOTES_TOO_LONG))
        else:
            out.append(Problem(field, _NOT_AN_OPTION))
    return out
