"""Routing rules as data: the shipped files are valid and implement INHOPE practice for
a Serbian hotline; broken files are refused with file, rule and field named; the
evaluator records hits and misses."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipeline.domain.rules import RulesInvalid, evaluate, load_ruleset, placeholders
from pipeline.stages.routing import case_facts, plan
from pipeline.store.models import Case

SHIPPED = Path(__file__).resolve().parents[2] / "rules"


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset(SHIPPED)


def rules_dir_with(tmp_path: Path, routing: str | None = None,
                   destinations: str | None = None) -> Path:
    folder = tmp_path / "rules"
    folder.mkdir(parents=True)
    shutil.copy(SHIPPED / "routing.yaml", folder / "routing.yaml")
    shutil.copy(SHIPPED / "destinations.yaml", folder / "destinations.yaml")
    if routing is not None:
        (folder / "routing.yaml").write_text(routing)
    if destinations is not None:
        (folder / "destinations.yaml").write_text(destinations)
    return folder


def problems_of(folder: Path) -> list[str]:
    with pytest.raises(RulesInvalid) as caught:
        load_ruleset(folder)
    return caught.value.problems


def decide(ruleset, **fields):
    values = dict(ref="C-1", canonical_url="http://example.com/a", host="example.com",
                  legality="illegal_international", behind_cdn=False, urgent=False,
                  origin_unknown=False)
    values.update(fields)
    case = Case(**values)
    facts = case_facts(case, home_country="RS", ruleset=ruleset)
    decision = evaluate(ruleset.rules, facts)
    return decision, plan(decision, case, ruleset, "RS")


def test_the_shipped_rules_and_directory_are_valid(ruleset):
    assert ruleset.rules[-1].when == {}
    assert ruleset.directory.home_police == "rs-mup-vtk"
    police = ruleset.directory.get("rs-mup-vtk")
    assert police.kind == "police" and "visokotehnološkog kriminala" in police.name
    prosecutor = ruleset.directory.get("rs-vtk-prosecutor")
    assert "Posebno tužilaštvo za visokotehnološki kriminal" in prosecutor.name
    assert "rs-mup-vtk" in placeholders(ruleset)  # not public: the operator fills it in


def test_illegal_content_hosted_at_home_goes_to_the_police_first_and_the_provider_after_the_hold(
    ruleset,
):
    decision, result = decide(ruleset, hosting_country="RS",
                              hosting_abuse_email="abuse@host.rs")
    assert decision.hits == ["domestic-illegal"]
    assert [(t.destination.key, after) for t, after, _ in result.notices] == [
        ("rs-mup-vtk", False), ("hosting-provider", True)]
    assert result.hold
    assert result.notices[1][0].address == "abuse@host.rs"


def test_illegal_content_at_home_behind_a_cdn_also_goes_to_the_cdn_after_the_hold(ruleset):
    _, result = decide(ruleset, hosting_country="RS", hosting_abuse_email="abuse@host.rs",
                       behind_cdn=True, cdn_name="Cloudflare")
    assert [(t.destination.key, after) for t, after, _ in result.notices] == [
        ("rs-mup-vtk", False), ("hosting-provider", True), ("cdn-cloudflare", True)]


def test_illegal_content_abroad_goes_to_the_member_hotline_of_that_country(ruleset):
    decision, result = decide(ruleset, hosting_country="DE")
    assert decision.hits == ["abroad-member-hotline"]
    assert [t.destination.key for t, _, _ in result.notices] == ["hotline-de"]
    assert not result.hold


def test_illegal_content_in_a_country_without_a_hotline_goes_to_the_police_for_interpol(
    ruleset,
):
    decision, result = decide(ruleset, hosting_country="KZ")
    assert decision.hits == ["abroad-no-hotline"]
    assert [t.destination.key for t, _, _ in result.notices] == ["rs-mup-vtk"]


def test_onion_services_go_to_the_police(ruleset):
    decision, result = decide(ruleset, url_kind="onion", hosting_country=None)
    assert decision.hits == ["onion-service-to-police"]
    assert [t.destination.key for t, _, _ in result.notices] == ["rs-mup-vtk"]


def test_content_illegal_under_national_law_only_goes_to_the_domestic_police_only(ruleset):
    decision, result = decide(ruleset, legality="illegal_national", hosting_country="DE",
                              category="hate_speech", hosting_abuse_email="abuse@de.example")
    assert decision.hits == ["national-law-only-to-police"]
    assert [t.destination.key for t, _, _ in result.notices] == ["rs-mup-vtk"]


@pytest.mark.parametrize("legality", ["not_illegal", "out_of_remit", "content_not_available"])
def test_content_that_is_not_illegal_closes_without_notices(ruleset, legality):
    decision, result = decide(ruleset, legality=legality, hosting_country="RS")
    assert decision.hits == ["nothing-to-act-on"]
    assert result.notices == [] and result.close_reason


def test_a_domestic_case_without_a_provider_contact_still_goes_to_the_police_and_says_why(
    ruleset,
):
    _, result = decide(ruleset, hosting_country="RS", hosting_abuse_email=None)
    assert [t.destination.key for t, _, _ in result.notices] == ["rs-mup-vtk"]
    assert not result.hold  # nothing is left to wait for the police
    assert result.unresolved == [{"rule": "domestic-illegal", "target": "@hosting_provider",
                                  "why": "tracing found no hosting_abuse_email"}]


def test_the_evaluator_records_every_miss_before_the_hit_and_stops_there(ruleset):
    decision, _ = decide(ruleset, hosting_country="DE")
    assert decision.misses == ["nothing-to-act-on", "onion-service-to-police",
                               "national-law-only-to-police", "domestic-behind-cdn",
                               "domestic-illegal"]
    assert decision.steps[0].why.startswith("legality is illegal_international, wanted one of")
    assert len(decision.steps) == 6


def test_a_rule_with_continue_lets_later_rules_add_their_actions(tmp_path):
    folder = rules_dir_with(tmp_path, routing="""
rules:
  - name: tell-the-prosecutor-too
    description: urgent cases also go to the prosecutor
    when: {urgent: true}
    continue: true
    then:
      - notify: rs-vtk-prosecutor
  - name: everything
    description: catch-all
    then:
      - notify: "@police"
""")
    rs = load_ruleset(folder)
    decision, result = decide(rs, urgent=True)
    assert decision.hits == ["tell-the-prosecutor-too", "everything"]
    assert [t.destination.key for t, _, _ in result.notices] == [
        "rs-vtk-prosecutor", "rs-mup-vtk"]
    decision, _ = decide(rs, urgent=False)
    assert decision.hits == ["everything"]
    assert decision.steps[0].why == "urgent is false, wanted true"


def test_errors_in_rules_name_the_file_the_rule_and_the_field(tmp_path):
    folder = rules_dir_with(tmp_path, routing="""
rules:
  - name: fine
    description: ok
    when: {legality: not_illegal}
    then: [{close: fine}]
  - name: bad-legality
    description: a typo
    when: {legality: illegl, hosting_country: Serbia, colour: red}
    then: [{notify: rs-nowhere}, {notify: "@hosting_provider", after_police_hold: true}]
  - name: fine
    then: [{notify: "@moon"}]
  - name: last
    description: catch-all
    then: [{notify: "@police"}]
""")
    problems = problems_of(folder)
    path = folder / "routing.yaml"
    assert f"{path}: rule 'bad-legality' (#2).when.legality: unknown value 'illegl' " \
        "(known: illegal_international, illegal_national, not_illegal, " \
        "content_not_available, out_of_remit)" in problems
    assert any(p.startswith(f"{path}: rule 'bad-legality' (#2).when.hosting_country: 'Serbia'")
               for p in problems)
    assert any(p.startswith(f"{path}: rule 'bad-legality' (#2).when.colour: unknown fact")
               for p in problems)
    assert f"{path}: rule 'bad-legality' (#2).then.0.notify: no destination 'rs-nowhere' in " \
        "destinations.yaml" in problems
    assert f"{path}: rule 'bad-legality' (#2).then.1.after_police_hold: the rule has no " \
        "hold_for_police action" in problems
    assert f"{path}: rule 'fine' (#3): description: Field required" in problems


def test_a_last_rule_with_conditions_is_refused_so_every_case_gets_a_decision(tmp_path):
    folder = rules_dir_with(tmp_path, routing="""
rules:
  - name: only
    description: only domestic
    when: {domestic: true}
    then: [{notify: "@police"}]
""")
    assert problems_of(folder) == [
        f"{folder / 'routing.yaml'}: rule 'only' (#1): the last rule must have no conditions, "
        "so that every case gets a decision"]


def test_errors_in_the_directory_name_the_file_the_destination_and_the_field(tmp_path):
    folder = rules_dir_with(tmp_path, destinations="""
home_police: rs-mup-vtk
destinations:
  rs-mup-vtk: {kind: police, name: Police, channel: smtp, address: "not an address"}
  hotline-xx: {kind: hotline, name: Nowhere, channel: smtp, inhope_member: true}
  hook: {kind: provider, name: Hook, channel: webhook, address: "https://hook.example/x"}
  odd: {kind: provider, name: Odd, colour: red}
""", routing="""
rules:
  - name: all
    description: all
    then: [{notify: "@police"}]
""")
    problems = problems_of(folder)
    path = folder / "destinations.yaml"
    assert f"{path}: destination 'odd': colour: unknown key" in problems
    # The other entries are checked once the file parses.
    folder2 = rules_dir_with(tmp_path / "2", destinations="""
home_police: rs-mup-vtk
destinations:
  rs-mup-vtk: {kind: police, name: Police, channel: smtp, address: "not an address"}
  hotline-xx: {kind: hotline, name: Nowhere, channel: smtp, inhope_member: true}
  hook: {kind: provider, name: Hook, channel: webhook, address: "https://hook.example/x"}
""", routing="""
rules:
  - name: all
    description: all
    then: [{notify: "@police"}]
""")
    problems = problems_of(folder2)
    path = folder2 / "destinations.yaml"
    assert any(p.startswith(f"{path}: destination 'rs-mup-vtk'.address: not an e-mail address")
               for p in problems)
    assert f"{path}: destination 'hotline-xx'.country: a hotline needs its country" in problems
    assert f"{path}: destination 'hook'.secret_env: a webhook needs the name of the " \
        "environment variable holding its HMAC key" in problems


def test_a_yaml_syntax_error_names_the_file_and_the_line(tmp_path):
    folder = rules_dir_with(tmp_path, routing="rules:\n  - name: x\n    then: [\n")
    (problem,) = problems_of(folder)
    assert problem.startswith(f"{folder / 'routing.yaml'}: line ")
    assert "not valid YAML" in problem




