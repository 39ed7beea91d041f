"""An assessment says what is missing, all at once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.assessment import AssessmentIn


def problems(**fields) -> str:
    with pytest.raises(ValidationError) as caught:
        AssessmentIn.model_validate(fields)
    return str(caught.value)


def test_csam_needs_every_iccam_detail_and_each_missing_one_is_named():
    text = problems(legality="illegal_international", category="csam", gender="female")
    for name in ("age_group", "site_type", "content_type", "commercial"):
        assert f"{name}: required when category is csam" in text
    assert "gender:" not in text


def test_an_illegal_decision_needs_a_category():
    assert "category: required when legality is illegal_national" in problems(
        legality="illegal_national")


def test_the_international_baseline_is_only_for_csam():
    assert "use illegal_national for hate_speech" in problems(
        legality="illegal_international", category="hate_speech")


def test_an_unknown_legality_or_field_is_refused():
    assert "legality" in problems(legality="probably_bad")
    assert "colour" in problems(legality="not_illegal", colour="red")


def test_a_decision_without_action_needs_nothing_else():
    item = AssessmentIn.model_validate({"legality": "content_not_available"})
    assert item.category is None
