"""Why a form cannot be saved: one sentence per problem, naming the field by its label."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import pytest
from pydantic import BaseModel, Field, ValidationError

from pipeline.core.errors import FieldError, NotFound
from pipeline.domain.problems import Problem, assessment_problems, form_problems
from schemas.assessment import AssessmentIn


class _Form(BaseModel):
    summary: str = Field(..., min_length=1, max_length=20)
    channel: Literal["phone", "chat"] = "phone"
    minutes: int = Field(0, ge=0)
    due_at: datetime | None = None
    shoe_size: int = 0


def _problems(labels=None, **values) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        _Form(**values)
    return form_problems(caught.value, labels)


def test_a_missing_field_is_named_by_the_label_the_form_shows():
    [problem] = _problems(channel="chat")
    assert problem.field == "summary"
    assert problem.text("en") == "Fill in “Short summary”: it is required."
    assert problem.text("sr_Latn") == "Popunite polje „Kratak opis“: obavezno je."


def test_each_kind_of_schema_error_gets_its_own_sentence():
    problems = {p.field: p.text("en") for p in _problems(
        summary="x" * 21, channel="fax", minutes=-1, due_at="soon", shoe_size="big")}
    assert problems["summary"] == ("Shorten “Short summary”: it takes at most 20 "
                                   "characters.")
    assert problems["channel"] == "Choose “Channel” from the options offered."
    assert problems["minutes"].startswith("Write “Duration (minutes)” as a number")
    assert problems["due_at"].startswith("Write “Due” as a date and time")
    # A field without a label is named by its name, spaces for underscores.
    assert problems["shoe_size"].startswith("Write “shoe size” as a number")


def test_labels_given_by_the_caller_win():
    [problem] = _problems(labels={"summary": "--summary"})
    assert problem.text("en") == "Fill in “--summary”: it is required."


def test_a_field_error_keeps_its_own_sentence():
    error = FieldError("notes", "Notes are too long: %(count)d characters", count=12_000)
    [problem] = form_problems(error)
    assert problem == Problem("notes", "Notes are too long: %(count)d characters",
                              {"count": 12_000})
    assert problem.text("en") == "Notes are too long: 12000 characters"


def test_a_lower_layers_field_sentence_is_named_by_its_label():
    [problem] = form_problems(ValueError("summary: contains a URL."))
    assert problem.field == "summary"
    assert problem.text("en") == "Check “Short summary”: contains a URL."
    [other] = form_problems(ValueError("something broke: badly"))
    assert other == Problem(None, "something broke: badly")


def test_an_incomplete_csam_assessment_names_each_missing_detail():
    with pytest.raises(ValidationError) as caught:
        AssessmentIn(legality="illegal_international", category="csam")
    fields = [p.field for p in assessment_problems(caught.value)]
    assert set(fields) == {"age_group", "gender", "site_type", "content_type", "commercial"}
    assert all(p.message.endswith("required for child sexual abuse material.")
               for p in assessment_problems(caught.value))


def test_an_assessment_without_legality_or_with_a_bad_option_is_explained():
    with pytest.raises(ValidationError) as caught:
        AssessmentIn(category="not-a-category")
    by_field = {p.field: p.text("en") for p in assessment_problems(caught.value)}
    assert by_field["legality"] == "Choose the legality: every decision needs one."
    assert by_field["category"] == "Choose one of the options offered for this field."


def test_assessment_problems_from_text_are_split_per_field():
    problems = assessment_problems(ValueError(
        "category: required when legality is illegal_national; legality: the "
        "international baseline applies only to CSAM categories; something else"))
    assert [p.field for p in problems] == ["category", "legality", None]
    assert problems[2].message == "something else"


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


def test_a_validators_own_reason_is_kept_in_the_sentence():
    from pydantic import field_validator

    class _Guarded(BaseModel):
        url: str

        @field_validator("url")
        @classmethod
        def _no_nul(cls, value: str) -> str:
            if "\x00" in value:
                raise ValueError("contains a NUL character (U+0000), which cannot be stored")
            return value

    with pytest.raises(ValidationError) as caught:
        _Guarded(url="http://a.example/\x00")
    [problem] = form_problems(caught.value, {"url": "URL"})
    assert problem.field == "url"
    assert problem.text("en") == ("Check “URL”: contains a NUL character (U+0000), which "
                                  "cannot be stored.")


def test_a_state_in_a_sentence_is_in_words_of_the_pages_language():
    from pipeline.stages.helpline import STATE_WORDS
    from pipeline.store.states import HelplineCaseState

    refused = FieldError(None, "Helpline case %(ref)s is %(state)s: it cannot be referred.",
                         ref="H-1", state=STATE_WORDS[HelplineCaseState.ADVISORY])
    assert str(refused) == "Helpline case H-1 is closed as advisory: it cannot be referred."
    serbian = form_problems(refused)[0].text("sr-Latn")
    assert "advisory" not in serbian and "zatvoreno kao savetodavno" in serbian
    assert set(STATE_WORDS) == set(HelplineCaseState)
