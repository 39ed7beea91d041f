"""Every logging call in the code, read (AST), not run:

- a line about one case, report or notice carries its id as a field
  (`extra={"case_id": case.id}`, or inside `with log_context(case_id=...)`), so the
  JSON formatter writes `case_id` / `report_id` / `notice_id` and a log search by id
  finds it. "About one" means: its message names one ("Case %s ...", "notice %s") or
  an argument is a case, report or notice (`case.ref`, `notice.id`, `report_id`);
- no argument of a logging call is a reporter contact, a description, a password,
  a token or a key: redaction is the second defence, not the first.

Lines that concern no single item pass. `ALLOWED` names the few exceptions, and
`PENDING` the lines in modules other engineers own that still need their field; an
entry that no longer matches a call fails too, so both lists stay true.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LEVELS = {"debug", "info", "warning", "warn", "error", "exception", "critical", "log"}
ID_KEYS = {"case_id", "report_id", "notice_id"}
# Names that stand for one case, report or notice (or its id).
ITEM_NAMES = {"case", "report", "notice", "case_id", "report_id", "notice_id", "case_ref",
              "report_ref", "notice_ref"}
# A message naming one item: "Case %s", "for case %s", "notice %d".
NAMES_ONE = re.compile(r"\b(case|report|notice)\s+%[-#0 +]*\d*[sdri]", re.IGNORECASE)
# Identifiers that must never reach a logging call.
FORBIDDEN = re.compile(
    r"^(reporter_contact|contact|description|\w*password\w*|\w*passphrase\w*|\w*secret\w*|"
    r"token|\w+_token|\w*api_key|\w*encryption_key|\w*webhook_key|\w*private_key|"
    r"\w*secret_key|key_material|fernet|cipher)$")

# (file, start of the message) -> why it carries no id.
ALLOWED: dict[tuple[str, str], str] = {
    ("pipeline/stages/helpline.py", "Helpline case formed"):
        "a helpline case is not a URL case: it has no case_id, its reference names it",
}
# (file, start of the message) -> who adds the field. Remove an entry once it is done.
PENDING: dict[tuple[str, str], str] = {}


@dataclass
class LogCall:
    path: str
    line: int
    message: str
    names_one_item: bool
    carries_id: bool
    forbidden: list[str]

    def where(self) -> str:
        return f"{self.path}:{self.line} {self.message[:60]!r}"

    def key_in(self, table: dict[tuple[str, str], str]) -> tuple[str, str] | None:
        for path, start in table:
            if path == self.path and self.message.startswith(start):
                return path, start
        return None


def _modules() -> list[Path]:
    found = [p for p in (ROOT / "pipeline").rglob("*.py") if "migrations" not in p.parts]
    return sorted(found + list((ROOT / "workers").glob("*.py")))


def _logger_names(tree: ast.Module) -> set[str]:
    """Names bound to `logging.getLogger(...)` anywhere in the module."""
    names = {"logging"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and _is_get_logger(node.value):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def _is_get_logger(node: ast.AST) -> bool:
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr == "getLogger")


def _is_logging_call(node: ast.AST, loggers: set[str]) -> bool:
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in LEVELS):
        return False
    owner = node.func.value
    return (isinstance(owner, ast.Name) and owner.id in loggers) or _is_get_logger(owner)


def _message(call: ast.Call) -> str:
    args = call.args[1:] if isinstance(call.func, ast.Attribute) and (
        call.func.attr == "log") else call.args
    if not args:
        return ""
    first = args[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return first.value
    if isinstance(first, ast.JoinedStr):  # an f-string: its constant parts
        return "".join(v.value for v in first.values
                       if isinstance(v, ast.Constant) and isinstance(v.value, str))
    return ""


def _identifiers(node: ast.AST) -> list[str]:
    found: list[str] = []
    for child in ast.walk(node):
        if isinstance(child, ast.Name):
            found.append(child.id)
        elif isinstance(child, ast.Attribute):
            found.append(child.attr)
        elif isinstance(child, ast.Dict):
            found.extend(k.value for k in child.keys
                         if isinstance(k, ast.Constant) and isinstance(k.value, str))
    return found


def _item_argument(node: ast.AST) -> bool:
    """`case`, `case.ref`, `notice.case_id`, `report_id`...: one item or its id."""
    for child in ast.walk(node):
        if isinstance(child, ast.Name) and child.id in ITEM_NAMES:
            return True
        if isinstance(child, ast.Attribute) and child.attr in ID_KEYS:
            return True
    return False


def _binds_ids(call: ast.AST) -> bool:
    """A `log_context(...)` / `bind(...)` call naming one of the id fields."""
    return (isinstance(call, ast.Call) and (
        (isinstance(call.func, ast.Name) and call.func.id in ("log_context", "bind"))
        or (isinstance(call.func, ast.Attribute) and call.func.attr in ("log_context", "bind"))
    ) and any(k.arg in ID_KEYS for k in call.keywords))


def _extra_ids(call: ast.Call) -> bool:
    for keyword in call.keywords:
        if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
            return any(isinstance(k, ast.Constant) and k.value in ID_KEYS
                       for k in keyword.value.keys)
    return False


def _scan(path: Path) -> list[LogCall]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    loggers = _logger_names(tree)
    relative = path.relative_to(ROOT).as_posix()
    calls: list[LogCall] = []

    def visit(node: ast.AST, bound: bool) -> None:
        if isinstance(node, ast.With | ast.AsyncWith):
            bound = bound or any(_binds_ids(item.context_expr) for item in node.items)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            bound = False  # a context bound outside a function does not reach inside
        if _is_logging_call(node, loggers):
            assert isinstance(node, ast.Call)
            message = _message(node)
            arguments = [*node.args, *(k.value for k in node.keywords)]
            calls.append(LogCall(
                path=relative, line=node.lineno, message=message,
                names_one_item=bool(NAMES_ONE.search(message)) or any(
                    _item_argument(a) for a in (node.args[1:] if message else node.args)),
                carries_id=bound or _extra_ids(node),
                forbidden=sorted({n for a in arguments for n in _identifiers(a)
                                  if FORBIDDEN.match(n)}),
            ))
        for child in ast.iter_child_nodes(node):
            visit(child, bound)

    visit(tree, False)
    return calls


def _all_calls() -> list[LogCall]:
    return [call for path in _modules() for call in _scan(path)]


def test_the_scan_finds_the_logging_calls_of_the_code():
    calls = _all_calls()
    assert len(calls) > 40
    assert any(c.path == "pipeline/stages/retention.py" and c.carries_id for c in calls)


def test_every_line_about_one_case_report_or_notice_carries_its_id():
    missing = [c.where() for c in _all_calls()
               if c.names_one_item and not c.carries_id
               and c.key_in(ALLOWED) is None and c.key_in(PENDING) is None]
    assert missing == [], (
        "these log lines concern one case, report or notice but carry no id field: pass "
        "extra={'case_id': case.id} (report_id, notice_id) or log inside "
        "log_context(case_id=...)")


def test_no_logging_call_is_given_a_contact_a_description_or_a_secret():
    given = [f"{c.where()}: {', '.join(c.forbidden)}" for c in _all_calls() if c.forbidden]
    assert given == []


@pytest.mark.parametrize("table", ["ALLOWED", "PENDING"])
def test_every_exception_listed_still_names_a_line_without_its_id(table):
    entries = ALLOWED if table == "ALLOWED" else PENDING
    calls = _all_calls()
    stale = [entry for entry in entries
             if not any(c.key_in({entry: ""}) and not c.carries_id for c in calls)]
    assert stale == [], f"remove these entries from {table}: the line has its id or is gone"


SAMPLE = '''
import logging
from pipeline.core.logs import log_context

log = logging.getLogger(__name__)

def stage(case, report, notice, rows):
    log.info("Case %s traced.", case.ref)                                   # 8: no id
    log.info("Case %s traced.", case.ref, extra={"case_id": case.id})       # 9
    with log_context(report_id=report.id):
        log.warning("Report %s rejected.", report.ref)                      # 11
    log.info("Sent %s.", notice.id)                                         # 12: no id
    log.info("Traced %d cases.", len(rows))                                 # 13
    log.info("From %s: %s", report.ref, report.reporter_contact,
             extra={"report_id": report.id})                                # 14: contact
    logging.getLogger("x").error("Login %s", settings.smtp_password)        # 16: secret
    log.debug("Words: %s", report.description[:40], extra={"report_id": 1})  # 17: words
'''


def test_the_scan_finds_missing_ids_and_forbidden_arguments(tmp_path, monkeypatch):
    path = tmp_path / "pipeline" / "sample.py"
    path.parent.mkdir()
    path.write_text(SAMPLE)
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    calls = {c.line: c for c in _scan(path)}
    assert sorted(calls) == [8, 9, 11, 12, 13, 14, 16, 17]
    assert [n for n, c in sorted(calls.items()) if c.names_one_item and not c.carries_id] == [
        8, 12]
    assert {n: c.forbidden for n, c in calls.items() if c.forbidden} == {
        14: ["reporter_contact"], 16: ["smtp_password"], 17: ["description"]}
