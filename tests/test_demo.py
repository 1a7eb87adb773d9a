"""The demo's runs tell the stories its docstring promises, as the plugin's own ranking sees them.

Ranks the log directory of every run of ``demo/train.py``, trained at a reduced
size once per session (conftest's ``demo_logdir``, which the browser tests share),
with the ``tb-stagnation --json`` CLI, the stable interface, and checks each story
on its rows.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
RUNS = ("tiny_lr", "vanishing", "batchnorm", "bn_frozen", "frozen_layer", "healthy")
PARAMETER_ROLES = {"weight", "bias", "norm_scale", "norm_offset", "moving_stat"}


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO))
    result = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, f"{args[:2]} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def answer(demo_logdir: Path) -> dict:
    """The CLI's JSON answer on the whole demo."""
    return json.loads(_run(["-m", "tb_stagnation.cli", str(demo_logdir), "--json"], timeout=300).stdout)


@pytest.fixture(scope="module")
def rows(answer: dict) -> dict[str, dict[str, dict]]:
    """run -> tag -> CLI row."""
    by_run: dict[str, dict[str, dict]] = {}
    for row in answer["rows"]:
        by_run.setdefault(row["run"], {})[row["tag"]] = row
    return by_run


def test_every_run_is_written_with_the_tag_scheme(rows: dict[str, dict[str, dict]]) -> None:
    assert set(rows) == set(RUNS)
    for run, tags in rows.items():
        for tag, row in tags.items():
            if row["role"] == "gradient":
                assert tag.endswith("/gradient") and tag.removesuffix("/gradient") in tags, tag
            else:
                assert row["source"] == "exact", f"{run} {tag}: exact ratio not matched"
    assert {"conv1/kernel", "conv1/bias", "conv1/kernel/gradient"} <= set(rows["healthy"])


def test_frozen_layer_is_frozen_and_only_it(rows: dict[str, dict[str, dict]]) -> None:
    run = rows["frozen_layer"]
    assert run["conv3/kernel"]["status"] == "frozen"
    assert run["conv3/bias"]["status"] == "frozen"
    assert "conv3/kernel/gradient" not in run  # not trainable: no gradient
    others = [r for r in run.values() if r["role"] in PARAMETER_ROLES and r["layer"] != "conv3"]
    assert others and all(r["status"] == "moving" for r in others)


def test_vanishing_first_layer_moves_orders_of_magnitude_less(
    rows: dict[str, dict[str, dict]],
) -> None:
    run = rows["vanishing"]
    first, last = run["dense1/kernel"], run["logits/kernel"]
    assert first["score"] * 100 < last["score"]
    assert first["status"] == "stagnant"
    kernels = [run[f"dense{i}/kernel"]["score"] for i in range(1, 9)] + [last["score"]]
    # Depth profile: scores grow towards the output (allowing a little noise between neighbours).
    assert kernels[0] < kernels[3] < kernels[6] < kernels[-1]


def test_tiny_lr_bias_histograms_move_while_kernels_hide_real_movement(
    rows: dict[str, dict[str, dict]],
) -> None:
    run = rows["tiny_lr"]
    layers = [f"conv{i}" for i in range(1, 6)]
    biases = [run[f"{layer}/bias"] for layer in layers]
    kernels = [run[f"{layer}/kernel"] for layer in layers]

    def median(rows: list[dict], quantity: Callable[[dict], float]) -> float:
        return statistics.median(quantity(r) for r in rows)

    def drift(row: dict) -> float:
        return row["histogram_score"]

    def seen(row: dict) -> float:
        """The share of the real movement that the histograms show."""
        return row["histogram_score"] / row["exact_score"]

    assert median(biases, drift) > median(kernels, drift)
    assert all(k["exact_score"] > 0 and k["status"] == "moving" for k in kernels)
    # Why: the histograms catch most of the biases' real movement, less of the kernels'.
    assert median(kernels, seen) < median(biases, seen)


def test_batchnorm_parameters_move_at_their_own_pace(rows: dict[str, dict[str, dict]]) -> None:
    run = rows["batchnorm"]
    roles = {
        "gamma": "norm_scale",
        "beta": "norm_offset",
        "moving_mean": "moving_stat",
        "moving_variance": "moving_stat",
    }
    for layer in ("bn1", "bn2", "bn3"):
        bn = {name: run[f"{layer}/{name}"] for name in roles}
        assert {name: r["role"] for name, r in bn.items()} == roles
        scores = {name: r["score"] for name, r in bn.items()}
        assert all(s > 0 for s in scores.values()) and len(set(scores.values())) == 4, scores
        assert min(scores, key=scores.get) == "gamma", scores


def test_bn_frozen_names_the_cause_before_the_symptom(answer: dict) -> None:
    """bn2.trainable = False: its statistics get the cause-naming finding, its gamma and beta the frozen one."""
    found = [f for f in answer["findings"] if f["run"] == "bn_frozen"]
    assert [(f["kind"], f["tags"]) for f in found] == [
        ("norm_stats_frozen", ["bn2/moving_mean", "bn2/moving_variance"]),
        ("frozen", ["bn2/gamma", "bn2/beta"]),
    ]
    cause = found[0]["message"]
    assert cause.startswith("bn2/moving_mean and bn2/moving_variance never changed over ")
    assert "while conv2 and conv3 around it trained" in cause and "trainable=False" in cause
    assert not [f for f in answer["findings"] if f["run"] == "batchnorm"], "bn1-bn3 all update there"


def test_healthy_has_no_stuck_parameter(rows: dict[str, dict[str, dict]]) -> None:
    statuses = {t: r["status"] for t, r in rows["healthy"].items() if r["role"] in PARAMETER_ROLES}
    assert statuses and set(statuses.values()) == {"moving"}, statuses


def test_no_moving_row_is_stagnant_since_a_step(rows: dict[str, dict[str, dict]]) -> None:
    """A row's "stagnant since" is measured on the source that scored it, against that source's
    threshold: no demo row that moves carries one (healthy's conv2/kernel once read "stagnant
    since step 560" from its histograms while its exact ratio stayed far above the threshold)."""
    moving = [r for run in rows.values() for r in run.values() if r["status"] == "moving"]
    assert len(moving) > 100
    assert [(r["run"], r["tag"], r["stagnant_since"]) for r in moving if r["stagnant_since"] is not None] == []
    stuck = [r for run in rows.values() for r in run.values() if r["status"] == "stagnant"]
    assert stuck and all(r["stagnant_since"] is not None for r in stuck)  # the field is filled where it applies


def test_frozen_layer_keeps_checkpoints_whose_exact_movement_agrees(demo_logdir: Path) -> None:
    """The demo imports frozen_layer's TF2 checkpoints: its parameters get checkpoint series too."""
    from tb_stagnation.measure import exact_series
    from tb_stagnation.sources import eventfile

    series = exact_series.collect_exact(eventfile.read_logdir(str(demo_logdir)).exact)["frozen_layer"]["checkpoint"]
    assert series["conv3/kernel"].frozen and series["conv3/bias"].frozen
    assert series["conv3/kernel"].steps.tolist() == [0, 100, 180]  # every 100 steps and the last
    moving = [s for p, s in series.items() if p.endswith("/kernel") and not p.startswith("conv3")]
    assert moving and all(np.nanmedian(s.update_ratio) > 1e-5 for s in moving)
