"""The committed tab bundle is exactly what `npm ci && npm run build` produces from frontend/.

`pip install` never runs Node, so tb_stagnation/static/index.js is committed; this test
keeps it honest. It rebuilds in a temporary copy (the working tree is never touched) and
compares bytes. Needs node and npm and the npm registry (CI has all three); skipped with
a reason when npm is absent.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FRONTEND = ROOT / "frontend"
BUNDLE = ROOT / "tb_stagnation" / "static" / "index.js"


def test_bundle_is_one_self_contained_es_module():
    """One file, exporting render(), importing nothing (no CDN, no second chunk)."""
    text = BUNDLE.read_text(encoding="utf-8")
    assert re.search(r"export\s*\{[^}]*\bas render\b[^}]*\}|export\s*\{[^}]*\brender\b[^}]*\}", text), "no render() export"
    code = re.sub(r"^//.*$", "", text, flags=re.M)  # the banner comment names uPlot's home page
    assert not re.search(r"""\bimport\s*\(\s*["'`]|\bimport\s*["'`{*]|\bfrom\s*["'`]""", code), "bundle imports something"
    assert "http://" not in code and "https://" not in code, "bundle references a remote URL"
    assert "sourceMappingURL" not in code


def test_lock_pins_exact_versions():
    pkg = (FRONTEND / "package.json").read_text(encoding="utf-8")
    assert (FRONTEND / "package-lock.json").is_file(), "package-lock.json must be committed"
    for spec in re.findall(r'"[^"]+":\s*"([^"]+)"', pkg.split('"dependencies"', 1)[1]):
        if re.match(r"^[\^~><=*]|latest", spec):
            pytest.fail(f"unpinned version {spec!r} in frontend/package.json")


def test_rebuild_matches_committed_bundle(tmp_path):
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.skip("npm/node not installed: cannot rebuild the bundle (CI has node 20 and npm)")
    work = tmp_path / "frontend"
    shutil.copytree(FRONTEND, work, ignore=shutil.ignore_patterns("node_modules"))
    # Same relative layout as the repository: the build writes ../tb_stagnation/static/index.js.
    (tmp_path / "tb_stagnation" / "static").mkdir(parents=True)

    def run(*args: str) -> None:
        proc = subprocess.run(
            [npm, *args], cwd=work, capture_output=True, text=True, timeout=900
        )
        assert proc.returncode == 0, f"npm {' '.join(args)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"

    run("ci", "--no-audit", "--no-fund", "--loglevel=error")
    run("run", "build", "--silent")
    rebuilt = (tmp_path / "tb_stagnation" / "static" / "index.js").read_bytes()
    committed = BUNDLE.read_bytes()
    assert rebuilt == committed, (
        "tb_stagnation/static/index.js differs from a fresh build of frontend/ "
        f"({len(committed)} vs {len(rebuilt)} bytes): run `make frontend` and commit the result"
    )
