"""Every audit action that can be written has words in the catalogs, and a case's
history shows those words, never the internal action name."""

from __future__ import annotations

import ast
import re

from pipeline.core import i18n
from pipeline.store.states import (
    CASE_TRANSITIONS,
    HELPLINE_CASE_TRANSITIONS,
    NOTICE_TRANSITIONS,
    REPORT_TRANSITIONS,
)
from pipeline.web.console.labels import ACTIONS
from tests.web.console.conftest import ROOT, add_person, queued_case
from tests.web.console.test_casework import Person


def _strings(node: ast.AST) -> set[str]:
    """The string constants an expression can give (not those it compares with)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.IfExp):
        return _strings(node.body) | _strings(node.orelse)
    return set()


def written_actions() -> dict[str, str]:
    """Each audit action the code can write, with a file that writes it: the state
    tables' actions, `action="..."` arguments, `action = ...` assignments, and the
    helpline stage's `_event(session, item, "...")`."""
    tables: tuple[dict, ...] = (REPORT_TRANSITIONS, CASE_TRANSITIONS,
                                HELPLINE_CASE_TRANSITIONS, NOTICE_TRANSITIONS)
    found = {action: "pipeline/store/states.py" for table in tables
             for action in table.values() if action is not None}
    for path in [*(ROOT / "pipeline").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]:
        if "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            strings: set[str] = set()
            is_keyword = isinstance(node, ast.keyword) and node.arg == "action"
            is_assignment = isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "action" for t in node.targets)
            if is_keyword or is_assignment:
                strings = _strings(node.value)  # type: ignore[attr-defined]
            elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                  and node.func.id == "_event" and len(node.args) >= 3):
                strings = _strings(node.args[2])
            for action in strings:
                found.setdefault(action, str(path.relative_to(ROOT)))
    return found


def test_the_scan_finds_the_actions_of_every_kind_of_writer():
    found = written_actions()
    assert {"case_claimed", "case_lease_expired", "notice_send_again", "case_escalated",
            "case_escalation_unresolved", "helpline_task_added", "user_added"} <= set(found)


def test_every_audit_action_that_can_be_written_has_words_in_both_languages():
    missing = {a: where for a, where in written_actions().items() if a not in ACTIONS}
    assert missing == {}, "give these actions words in pipeline/web/console/labels.py"
    for action, words in ACTIONS.items():
        serbian = i18n.gettext("sr-Latn", words)
        assert serbian != words, (action, words)
        assert "_" not in words


def test_a_cases_history_shows_the_actions_in_words(sqlite_runtime):
    add_person(sqlite_runtime, "ana", "analyst")
    ref = queued_case(sqlite_runtime, "http://pics.example.rs/1.html")
    ana = Person(sqlite_runtime, "ana")
    assert ana.post("/console/claim").status_code == 303
    page = ana.client.get(f"/console/cases/{ref}").text
    history = page[page.index('<h2>History</h2>'):page.index('id="timeline"')]
    assert "claimed for assessment" in history
    assert not re.search(r"\b[a-z]+_[a-z_]+\b", history)
    serbian = ana.client.get(f"/console/cases/{ref}", headers={"Accept-Language": "sr"}).text
    assert i18n.gettext("sr-Latn", ACTIONS["case_claimed"]) in serbian
