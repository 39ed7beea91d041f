"""Priority rules of the assessment queue: data in rules/priority.yaml, validated at load,
and the rules that hit recorded on the case."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from pipeline.core.errors import ConfigError
from pipeline.stages.queueing import load_rules, parse_rules, priority_of, queue_for_assessment
from pipeline.store.models import Case, Event
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
    urgent = priority_of(rules, Case(urgent=True, claimed_category="phishing"))
    csam = priority_of(rules, Case(urgent=False, claimed_category="csam"))
    plain = priority_of(rules, Case(urgent=False, claimed_category="phishing"))
    assert urgent.value > csam.value > plain.value == 0
    assert urgent.hits == ["child_in_immediate_danger"]


def test_points_of_every_matching_rule_add_up():
    rules = parse_rules(RULES, "test")
    case = Case(urgent=True, claimed_category="csam", source_channel="partner")
    priority = priority_of(rules, case, {"Stoponline"})
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


# --- claiming the next case (pipeline.stages.assessment.claim_next) ----------------------------


def _claim_refs(runtime, principal, n, kind="first"):
    from pipeline.stages.assessment import claim_next

    refs = []
    for _ in range(n):
        with runtime.session_factory.begin() as session:
            lease = claim_next(session, principal, now=runtime.clock.now(), lease_seconds=600,
                               kind=kind)
            refs.append(None if lease is None else lease.case_id)
    return refs


@pytest.mark.parametrize("kind", ["first", "any"])
def test_claims_take_the_top_priority_then_the_oldest_then_the_lowest_id(runtime, kind):
    from tests.assessment_support import people, queue

    who = people(runtime, ("ana", "analyst"))
    low_old, high_new, tie_a, tie_b, high_old = queue(
        runtime,
        {"url": "http://a.example/1", "age_minutes": 300, "priority": 0},
        {"url": "http://a.example/2", "age_minutes": 5, "priority": 100},
        {"url": "http://a.example/3", "age_minutes": 60, "priority": 20},
        {"url": "http://a.example/4", "age_minutes": 60, "priority": 20},  # same time
        {"url": "http://a.example/5", "age_minutes": 90, "priority": 100},
    )
    order = _claim_refs(runtime, who["ana"], 6, kind)
    assert order == [high_old, high_new, tie_a, tie_b, low_old, None]
    with runtime.session_factory() as session:
        states = {c.id: (c.state, c.open_key == c.dedup_key, c.in_assessment_at is not None)
                  for c in session.execute(select(Case)).scalars()}
        events = session.execute(select(Event.case_id, Event.action, Event.from_state,
                                        Event.to_state)).all()
    assert set(states.values()) == {("in_assessment", True, True)}
    assert sorted(e.case_id for e in events) == sorted(states)
    assert {(e.action, e.from_state, e.to_state) for e in events} == {
        ("case_claimed", "awaiting_assessment", "in_assessment")}


def test_a_claim_skips_a_case_another_analyst_still_holds(runtime):
    """A case back in the queue while someone's lease is still live (a stale state) is
    never handed to a second analyst: the claim moves on to the next one."""
    from datetime import timedelta

    from pipeline.store.assessment_models import CaseLease
    from tests.assessment_support import people, queue

    who = people(runtime, ("ana", "analyst"), ("bo", "analyst"))
    held, free = queue(runtime, {"url": "http://b.example/1", "age_minutes": 50},
                       {"url": "http://b.example/2", "age_minutes": 10})
    now = runtime.clock.now()
    with runtime.session_factory.begin() as session:
        session.add(CaseLease(case_id=held, user_id=who["bo"].user_id, kind="first",
                              claimed_at=now, expires_at=now + timedelta(minutes=30)))
    assert _claim_refs(runtime, who["ana"], 2) == [free, None]
    with runtime.session_factory() as session:
        assert session.get(Case, held).state == "awaiting_assessment"
        assert session.get(CaseLease, held).user_id == who["bo"].user_id


def test_the_claim_reads_the_queue_index_in_its_own_order(pg_runtime):
    """ix_cases_claim (migration 0009) matches the claim's ORDER BY exactly: the plan
    stops at the first free entry of the index, with no sort of the queue."""
    from sqlalchemy import text

    from pipeline.stages.assessment import _claim_first_pg

    statement = _claim_first_pg(None).text
    with pg_runtime.session_factory.begin() as session:
        session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(r[0] for r in session.execute(
            text("EXPLAIN " + statement),
            {"tried": [], "user_id": 1, "now": pg_runtime.clock.now(),
             "expires": pg_runtime.clock.now(), "site_batch": None, "relax": False}))
    assert "ix_cases_claim" in plan, plan
    assert "Sort" not in plan, plan
