"""The house's layout: data flows one way, and no module imports a stage above its own.

sources -> samples -> measure -> verdict -> engine, wire -> api -> cli, plugin;
the writers, the integrations and the checkpoint import produce the plugin's
records beside that flow. Every import is checked, function-level ones too,
by reading the source (nothing is imported to check it).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tb_stagnation"

# Stage of each top-level module or package of tb_stagnation: a module may import
# its own package and lower stages only.
STAGES = {
    "records": 0, "samples": 0, "caches": 0, "tagfilter": 0, "storage": 0,
    "sources": 1, "writers": 1,
    "measure": 2, "checkpoints": 2, "integrations": 2, "summary": 2,
    "verdict": 3,
    "engine": 4, "wire": 4,
    "api": 5,
    "cli": 6, "plugin": 6,
}


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py"))


def _unit(path: Path) -> str:
    """The top-level module or package a file belongs to (``__init__`` of the package itself: ``""``)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return "" if parts == ("__init__",) else parts[0]


def _imported_units(path: Path) -> set[str]:
    """The tb_stagnation units a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "tb_stagnation":
                continue
            if len(parts) > 1:
                found.add(parts[1])
            else:  # from tb_stagnation import a, b
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "tb_stagnation" and len(parts) > 1:
                    found.add(parts[1])
    return found


def test_every_unit_has_a_stage() -> None:
    units = {_unit(p) for p in _modules()} - {"", "static"}
    assert units == set(STAGES), "a new module needs a place in STAGES"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_stage_above_its_own(path: Path) -> None:
    unit = _unit(path)
    if not unit:  # the package's __init__ hands out the API lazily
        return
    above = sorted(
        other for other in _imported_units(path) if other != unit and STAGES[other] >= STAGES[unit]
    )
    assert not above, f"{path.relative_to(PACKAGE)} ({unit}, stage {STAGES[unit]}) imports {above}"


def test_each_stage_package_says_what_flows_in_and_out() -> None:
    for package in ("sources", "measure", "verdict", "writers", "checkpoints", "integrations"):
        doc = ast.get_docstring(ast.parse((PACKAGE / package / "__init__.py").read_text(encoding="utf-8")))
        words = set(re.findall(r"[a-z]+", (doc or "").lower()))
        assert {"in", "out"} <= words, f"{package}/__init__.py should say what flows in and out"
