"""The Python API: ``tb_stagnation.analyse`` on real logs, its JSON equal to the CLI's, its DataFrame."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import tb_stagnation
from tb_stagnation import wire


@pytest.fixture(scope="module")
def demo_analysis(demo_logdir: Path) -> tb_stagnation.api.Analysis:
    return tb_stagnation.analyse(demo_logdir)


def test_analyse_names_the_demos_frozen_layer_and_ranks_every_tensor(demo_analysis) -> None:
    assert demo_analysis.runs == ["batchnorm", "bn_frozen", "frozen_layer", "healthy", "tiny_lr", "vanishing"]
    [frozen] = [f for f in demo_analysis.findings if f.run == "frozen_layer"]
    assert (frozen.kind, frozen.tags) == ("frozen", ("conv3/kernel", "conv3/bias"))
    statuses = {(r.run, r.tag): r.status for r in demo_analysis.rows}
    assert statuses[("frozen_layer", "conv3/kernel")] == "frozen"
    assert statuses[("healthy", "conv2/kernel")] == "moving"
    assert [layer.layer for layer in demo_analysis.layers if layer.run == "vanishing"][:3] == [
        "dense1", "dense2", "dense3"]


def test_to_json_is_the_clis_json(demo_analysis, demo_logdir: Path) -> None:
    cli = subprocess.run(
        [sys.executable, "-m", "tb_stagnation.cli", str(demo_logdir), "--json"],
        capture_output=True, text=True, timeout=300, check=True,
    )
    assert json.loads(json.dumps(demo_analysis.to_json(), allow_nan=False)) == json.loads(cli.stdout)


def test_to_pandas_has_a_column_per_row_field_and_a_row_per_tensor(demo_analysis) -> None:
    frame = demo_analysis.to_pandas()
    assert list(frame.columns) == list(wire.ROW_FIELDS) and len(frame) == len(demo_analysis.rows)
    frozen = frame.query("status == 'frozen'")
    assert set(frozen["tag"]) >= {"conv3/kernel", "conv3/bias"}
    assert frame["score"].isna().sum() == sum(r.score != r.score for r in demo_analysis.rows)  # NaN stays missing


def test_runs_narrow_the_analysis_and_an_unknown_one_names_those_there_are(demo_logdir: Path) -> None:
    only = tb_stagnation.analyse(demo_logdir, runs=["healthy"])
    assert {r.run for r in only.rows} == {"healthy"} and only.findings == []
    with pytest.raises(LookupError, match="batchnorm, bn_frozen, frozen_layer, healthy, tiny_lr, vanishing"):
        tb_stagnation.analyse(demo_logdir, runs=["nope"])


def test_a_run_at_the_top_is_named_by_its_directory(demo_logdir: Path) -> None:
    analysis = tb_stagnation.analyse(demo_logdir / "healthy")
    assert analysis.runs == ["healthy"] and analysis.root_run == "healthy"
    assert tb_stagnation.analyse(demo_logdir / "healthy", runs=["."]).runs == ["healthy"]


def test_a_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such directory"):
        tb_stagnation.analyse(tmp_path / "nope")


def test_to_pandas_without_pandas_names_the_extra(demo_analysis, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pandas", None)  # what Python does when pandas is not installed
    with pytest.raises(ImportError, match=r"pip install 'tb-stagnation\[pandas\]'"):
        demo_analysis.to_pandas()


def test_importing_the_package_imports_no_pipeline() -> None:
    code = "import sys, tb_stagnation; print(sorted(m for m in sys.modules if m.startswith('tb_stagnation')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['tb_stagnation']"
