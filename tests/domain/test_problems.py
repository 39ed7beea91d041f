"""A refusal's sentence: English in `str()` (the API, the CLI), translated where the
console shows it; a `NotFound` carries its sentence and field like a `FieldError`."""

from __future__ import annotations

from pipeline.core.errors import FieldError, NotFound
from pipeline.domain.problems import form_problems


def test_a_missing_case_is_english_in_str_and_serbian_on_the_page():
    missing = NotFound("There is no helpline case %(ref)s.", field="join_case", ref="H-1")
    assert str(missing) == "There is no helpline case H-1."
    [problem] = form_problems(missing)
    assert problem.field == "join_case"
    assert problem.text("sr-Latn") == "Ne postoji slučaj savetovališta H-1."
    assert str(NotFound("no such notice")) == "no such notice"  # plain text still works


def test_a_field_error_may_name_a_label_as_a_param():
    refused = FieldError("summary", "Shorten “%(field)s”: it takes at most %(max)s "
                         "characters.", field="Short summary", max=10)
    assert str(refused) == "Shorten “Short summary”: it takes at most 10 characters."
    assert form_problems(refused)[0].text("sr-Latn") == ("Skratite polje „Kratak opis“: prima "
                                                         "najviše 10 znakova.")
