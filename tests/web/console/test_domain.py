"""What the console pages ask of the domain (pipeline.web.console.domain), on its own:
the statistics period, the one-key presets checked against the assessment schema, the
assessment form's options, and what the rules page says about the rule files."""

from __future__ import annotations

from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest

from pipeline.core.config import AssessmentPreset
from pipeline.core.errors import BadInput, FieldError
from pipeline.web.console import domain
from schemas.assessment import Legality
from schemas.intake import Category
from tests.domain.test_rules import rules_dir_with
from tests.routing_support import SHIPPED


def _runtime(**settings):
    clock = SimpleNamespace(now=lambda: datetime(2026, 12, 7, 23, 30, tzinfo=UTC))
    return SimpleNamespace(clock=clock, settings=SimpleNamespace(**settings))


def test_the_period_is_the_last_90_days_unless_asked():
    rt = _runtime()
    assert domain.period(rt, None, None) == domain.Period(date(2026, 9, 9), date(2026, 12, 7))
    assert domain.period(rt, "2026-01-01", "2026-01-31") == domain.Period(
        date(2026, 1, 1), date(2026, 1, 31))
    assert domain.period(rt, None, "2026-03-31").start == date(2026, 1, 1)


@pytest.mark.parametrize(("start", "end", "words"), [
    ("yesterday", None, "Write the dates as year-month-day"),
    ("2026-02-30", None, "Write the dates as year-month-day"),
    ("2026-02-01", "2026-01-01", "start date on or before the end date"),
    ("2010-01-01", "2026-01-01", "at most ten years"),
])
def test_a_period_that_cannot_be_is_refused_in_words(start, end, words):
    with pytest.raises(FieldError) as refused:
        domain.period(_runtime(), start, end)
    assert words in str(refused.value)


def test_the_shipped_presets_fill_in_whole_decisions():
    rt = _runtime(console=SimpleNamespace(presets=[
        AssessmentPreset(shortcut="1", legality="illegal_international", category="csam",
                         age_group="pre_pubescent", gender="female", site_type="image_host",
                         content_type="image", commercial=True),
        AssessmentPreset(shortcut="9", legality="not_illegal"),
    ]))
    first, second = domain.presets(rt)
    assert first.key == "1" and first.values["commercial"] == "yes"
    assert first.values["category"] == "csam" and "legality" in first.values
    assert "illegal_international" not in first.words and first.words[-1] == "commercial"
    assert (second.key, second.values, second.words) == (
        "9", {"legality": "not_illegal"}, ["not_illegal"])


def test_a_preset_that_could_never_be_saved_is_a_configuration_error():
    rt = _runtime(console=SimpleNamespace(presets=[
        AssessmentPreset(shortcut="3", legality="illegal_international", category="csam")]))
    with pytest.raises(BadInput, match="console.presets: key 3"):
        domain.presets(rt)


def test_the_form_offers_every_value_of_the_schema():
    choices = domain.assessment_choices()
    assert [value for value, _ in choices["legality"]] == [m.value for m in Legality]
    assert [value for value, _ in choices["category"]] == [m.value for m in Category]
    assert set(choices) == {"legality", "category", "age_group", "gender", "site_type",
                            "content_type"}


def test_the_rules_page_names_placeholders_and_broken_files(tmp_path):
    shipped = _runtime(routing=SimpleNamespace(rules_dir=str(SHIPPED)))
    ruleset, problems, waiting = domain.rules_table(shipped)
    assert ruleset is not None and problems == []
    assert "rs-mup-vtk" in [key for key, _ in waiting]
    assert any("rs-mup-vtk: the address is a placeholder" in p
               for p in domain.rules_problems(shipped))
    broken = _runtime(routing=SimpleNamespace(rules_dir=str(rules_dir_with(
        tmp_path, routing="rules:\n  - name: x\n    then: [\n"))))
    ruleset, problems, waiting = domain.rules_table(broken)
    assert ruleset is None and waiting == [] and "not valid YAML" in problems[0]
    assert domain.rules_problems(broken) == problems
    missing = _runtime(routing=SimpleNamespace(rules_dir=str(tmp_path / "nowhere")))
    assert domain.rules_table(missing)[0] is None
    assert domain.rules_problems(missing)
