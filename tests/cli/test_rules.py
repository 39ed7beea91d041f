"""`hotline rules` (pipeline.cli.rules): checking the rule files and explaining a case's
routing, on the shipped rules and on broken ones."""

from __future__ import annotations

from click.testing import CliRunner

from pipeline.cli.rules import explain_lines
from pipeline.store.models import Case
from tests.domain.test_rules import rules_dir_with
from tests.routing_support import RULES, SHIPPED, assessed, case_of, notices_of, route


def test_rules_explain_shows_why_a_case_went_where_it_went(runtime):
    case_id = assessed(runtime, hosting_abuse_email=None)
    with runtime.session_factory() as session:
        before = explain_lines(session.get(Case, case_id), [], RULES, runtime.settings)
    assert "Not routed yet. With the current rules" in before[1]
    route(runtime, case_id)
    notices = notices_of(runtime, case_id)
    with runtime.session_factory() as session:
        case = session.get(Case, case_id)
        lines = explain_lines(case, notices, RULES, runtime.settings)
    text = "\n".join(lines)
    assert "  HIT  domestic-illegal: legality is illegal_international; domestic is true" in text
    assert "  miss nothing-to-act-on: legality is illegal_international, wanted one of " \
        "not_illegal, out_of_remit, content_not_available" in text
    assert "  notify rs-mup-vtk (police) [rule domestic-illegal]" in text
    assert "  could not notify @hosting_provider: tracing found no hosting_abuse_email " \
        "[rule domestic-illegal]" in text


def test_hotline_rules_explain_prints_the_record_from_the_command_line(
    sqlite_runtime, monkeypatch
):
    from pipeline.cli import main

    case_id = assessed(sqlite_runtime, hosting_country="DE")
    route(sqlite_runtime, case_id)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", sqlite_runtime.settings.database.url)
    monkeypatch.setenv("HOTLINE_ROUTING__RULES_DIR", str(SHIPPED))
    result = CliRunner().invoke(main, ["rules", "explain", case_of(sqlite_runtime,
                                                                    case_id).ref])
    assert result.exit_code == 0, result.output
    assert "HIT  abroad-member-hotline" in result.output
    assert "notify hotline-de (hotline)" in result.output
    missing = CliRunner().invoke(main, ["rules", "explain", "C-NOPE"])
    assert missing.exit_code == 1 and "no case C-NOPE" in missing.output


def test_hotline_rules_check_passes_the_shipped_files_and_lists_placeholders():
    from pipeline.cli import main

    result = CliRunner().invoke(main, ["rules", "check", "--dir", str(SHIPPED)])
    assert result.exit_code == 0, result.output
    assert "8 rules and" in result.output
    assert "placeholder addresses" in result.output and "rs-mup-vtk" in result.output


def test_hotline_rules_check_fails_naming_each_problem(tmp_path):
    from pipeline.cli import main

    folder = rules_dir_with(tmp_path, routing="""
rules:
  - name: all
    description: all
    then: [{notify: "@nobody"}]
""")
    result = CliRunner().invoke(main, ["rules", "check", "--dir", str(folder)])
    assert result.exit_code == 1
    assert (f"ERROR {folder / 'routing.yaml'}: rule 'all' (#1).then.0.notify: unknown "
            "selector '@nobody'") in result.output
