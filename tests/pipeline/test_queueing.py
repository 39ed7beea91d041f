"""Priority rules of the assessment queue: data in rules/priority.yaml, validated at load,
and the rules that hit recorded on the case."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.errors import ConfigError
from pipeline.models import Case, Event
from pipeline.queueing import evaluate, load_rules, parse_rules, queue_for_assessment
from tests.factories import make_case, make_report

RULES = """
rules:
  - name: urgent
    when: {urgent: true}
    points: 1000
  - name: claimed_csam
    when: {claimed_category: [csam, self_generated_csam]}
    points: 100
  - name: trusted_partner
    when: {source: [Stoponline]}
    points: 20
"""


def test_the_shipped_rules_put_an_urgent_report_before_a_claim_of_csam():
    rules = load_rules("rules/priority.yaml")
    urgent = evaluate(rules, Case(urgent=True, claimed_category="phishing"))
    csam = evaluate(rules, Case(urgent=False, claimed_category="csam"))
    plain = evaluate(rules, Case(urgent=False, claimed_category="phishing"))
    assert urgent.value > csam.value > plain.value == 0
    assert urgent.hits == ["child_in_immediate_danger"]


def test_points_of_every_matching_rule_add_up():
    rules = parse_rules(RULES, "test")
    case = Case(urgent=True, claimed_category="csam", source_channel="partner")
    priority = evaluate(rules, case, {"Stoponline"})
    assert priority.value == 1120
    assert priority.hits == ["urgent", "claimed_csam", "trusted_partner"]


@pytest.mark.parametrize(("text", "message"), [
    ("rules:\n  - name: r1\n    when: {claimed_category: [cssam]}\n    points: 1\n",
     "rule 'r1' (rules[0]) when.claimed_category.0"),
    ("rules:\n  - name: r1\n    when: {}\n    points: 1\n",
     "rule 'r1' (rules[0]) when: Value error, a rule needs at least one condition"),
    ("rules:\n  - name: r1\n    when: {urgent: true}\n    points: 1\n    colour: red\n",
     "rule 'r1' (rules[0]) colour: unknown key"),
    ("rules:\n  - {name: a, when: {urgent: true}, points: 1}\n"
     "  - {name: a, when: {urgent: false}, points: 1}\n", "rule names must be unique: a"),
    ("rules: [", "not valid YAML"),
])
def test_a_mistake_in_the_rules_names_the_file_the_rule_and_the_field(text, message):
    with pytest.raises(ConfigError) as caught:
        parse_rules(text, "rules/priority.yaml")
    assert any(p.startswith("rules/priority.yaml: ") and message in p
               for p in caught.value.problems), caught.value.problems


def test_a_missing_rules_file_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_rules(tmp_path / "nowhere.yaml")


def test_queued_cases_carry_their_priority_and_the_rules_that_hit(runtime):
    rules = parse_rules(RULES, "test")
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        case = make_case(session, at=now, state="traced", urgent=False,
                         claimed_category="csam", source_channel="partner")
        make_report(session, at=now, state="new_case", case_id=case.id, source="Stoponline")
        queue_for_assessment(session, [case], at=now, rules=rules)
    with runtime.session_factory() as session:
        case = session.get(Case, case.id)
        event = session.execute(select(Event).where(Event.case_id == case.id)).scalar_one()
    assert case.state == "awaiting_assessment" and case.priority == 120
    assert event.data == {"priority": 120, "priority_rules": ["claimed_csam", "trusted_partner"]}
