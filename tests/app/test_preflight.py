"""`pipeline.app.preflight`: the rules files checked as a long-running process starts;
every problem named with its file and the command that checks it, said as an ERROR."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from pipeline.app.preflight import rules_problems, say_rules_problems

RULES = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture
def rules_copy(tmp_path):
    folder = tmp_path / "rules"
    shutil.copytree(RULES, folder)
    return folder


def _settings(settings_factory, folder: Path):
    return settings_factory(
        routing={"rules_dir": str(folder)},
        escalation={"rules_file": str(folder / "escalation.yaml")},
        helpline={"rules_file": str(folder / "helpline.yaml")},
        assessment={"priority_rules": str(folder / "priority.yaml")})


def test_the_shipped_rules_have_no_problem(settings_factory, rules_copy):
    assert rules_problems(_settings(settings_factory, rules_copy)) == []


def test_a_routing_rule_naming_no_destination_is_named_with_its_check(
        settings_factory, rules_copy):
    routing = rules_copy / "routing.yaml"
    routing.write_text(routing.read_text().replace('notify: "@police"',
                                                   "notify: nobody-we-know", 1))
    problems = rules_problems(_settings(settings_factory, rules_copy))
    assert problems, "a rule naming an unknown destination went unnoticed"
    assert all(p.startswith(f"routing rules ({rules_copy})") for p in problems), problems
    assert "nobody-we-know" in " ".join(problems)
    assert all("`hotline rules check`" in p for p in problems)


def test_each_broken_file_is_named_and_the_others_still_checked(
        settings_factory, rules_copy):
    (rules_copy / "escalation.yaml").write_text("reminder: [not, a, mapping\n")
    (rules_copy / "priority.yaml").unlink()
    problems = rules_problems(_settings(settings_factory, rules_copy))
    assert any(p.startswith("escalation rules") and "`hotline escalation check`" in p
               for p in problems), problems
    assert any(p.startswith("priority rules") for p in problems), problems
    assert not any(p.startswith(("routing rules", "helpline rules")) for p in problems)


def test_a_broken_helpline_file_is_named(settings_factory, rules_copy):
    (rules_copy / "helpline.yaml").write_text("rules:\n  - when: {no_such_fact: 1}\n")
    problems = rules_problems(_settings(settings_factory, rules_copy))
    assert problems and all(p.startswith("helpline rules") for p in problems), problems
    assert "`hotline helpline-cases check-rules`" in problems[0]


def test_the_problems_are_said_as_errors(settings_factory, rules_copy, caplog):
    (rules_copy / "priority.yaml").unlink()
    with caplog.at_level(logging.ERROR, logger="pipeline.app.preflight"):
        said = say_rules_problems(_settings(settings_factory, rules_copy))
    assert said and [r.levelno for r in caplog.records] == [logging.ERROR] * len(said)
    assert "priority rules" in caplog.records[0].getMessage()
