"""Why an assessment cannot be saved, in sentences people understand.

The schema (`schemas.assessment`) names problems as `field: required when ...`; the
console and the CLI show instead one sentence per problem naming the field, from
the gettext catalogs (the msgids below; translate with `pipeline.core.i18n`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import ValidationError

from pipeline.core.i18n import N_

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


@dataclass(frozen=True)
class Problem:
    field: str | None  # the form field, None for the decision as a whole
    message: str  # a msgid


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
