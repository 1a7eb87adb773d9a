"""The tab's unit tests (frontend/test/*.test.ts) under node's built-in test runner.

`npm test` compiles them and the frontend/src modules they import with esbuild, then runs
`node --test` on the result: the store (filtering, sorting, scales, findings, the layer axis,
keeping unchanged data's identity across reloads), the view state's URL form, and the JSON
parsing. A failing node test fails this test, its report shown. The sources and the tests
are type-checked too. node_modules (gitignored) is installed with `npm ci` when missing or
older than the lock file. Skipped with a reason when node or npm is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

FRONTEND = Path(__file__).resolve().parents[1] / "frontend"


@pytest.fixture(scope="module")
def npm() -> str:
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: cannot run the frontend's unit tests (CI has node 20 and npm)")
    installed = FRONTEND / "node_modules" / ".package-lock.json"
    if not installed.exists() or installed.stat().st_mtime < (FRONTEND / "package-lock.json").stat().st_mtime:
        _run(npm, "ci", "--no-audit", "--no-fund", "--loglevel=error")
    return npm


def _run(npm: str, *args: str) -> str:
    proc = subprocess.run([npm, *args], cwd=FRONTEND, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"npm {' '.join(args)} failed:\n{out[-6000:]}"
    return out


def test_node_unit_tests_pass(npm):
    out = _run(npm, "test", "--silent")
    assert "# fail 0" in out and "# pass 0" not in out, out[-3000:]


def test_sources_and_tests_typecheck(npm):
    _run(npm, "run", "typecheck", "--silent")
