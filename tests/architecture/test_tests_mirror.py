"""Tests mirror the tree: every module of `pipeline/` and `workers/` has a test file
named after it in the same folder under `tests/` (`test_<module>.py` or
`test_<module>_<aspect>.py`), so a reader finds a module's tests without searching."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SKIP = {"__init__.py", "__main__.py"}


def modules() -> list[Path]:
    found = []
    for package in ("pipeline", "workers"):
        for path in (ROOT / package).rglob("*.py"):
            if path.name in SKIP or "migrations" in path.parts:
                continue
            found.append(path.relative_to(ROOT))
    return sorted(found)


def mirror(module: Path) -> Path:
    parts = module.parts[1:-1] if module.parts[0] == "pipeline" else module.parts[:-1]
    return ROOT.joinpath("tests", *parts)


def test_every_module_has_its_test_file():
    missing = []
    for module in modules():
        folder, stem = mirror(module), module.stem
        names = {p.name for p in folder.glob(f"test_{stem}*.py")} if folder.is_dir() else set()
        if not any(n == f"test_{stem}.py" or n.startswith(f"test_{stem}_") for n in names):
            missing.append(f"{module} -> {folder.relative_to(ROOT)}/test_{stem}.py")
    assert missing == [], "modules without their test file:\n" + "\n".join(missing)


def test_the_rule_sees_modules_of_every_layer():
    layers = {m.parts[1] if m.parts[0] == "pipeline" else m.parts[0] for m in modules()}
    assert {"core", "store", "domain", "adapters", "stages", "app", "web", "cli",
            "workers"} <= layers
