"""Findings: what a ranking means, one plain sentence per problem, and never a false alarm.

Synthetic runs (histograms of a tensor shifted by a known rate per step) pin
each kind down; the demo's runs and real imported PyTorch checkpoints show
them on real training.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tb_stagnation
from tb_stagnation import cli, wire
from oracles import stagnant_since

from tb_stagnation.measure import drift
from tb_stagnation.measure.summaries import Summary, Tail, summarise
from tb_stagnation.measure.exact_series import ExactSeries
from tb_stagnation.verdict import findings, ranking, vocabulary
from tb_stagnation.verdict.vocabulary import Kind, Status

REPO = Path(__file__).resolve().parents[1]
STEPS = np.arange(0, 1001, 100)  # 11 samples, 10 intervals of 100 steps
# 20,000 values in 30 buckets: the buckets resolve ~1e-7 per step, below every threshold used here.
BASE = np.random.default_rng(0).normal(size=20_000)
_WRITTEN = itertools.count()  # tags are in model order: the order they are made in here
TYPICAL = 1e-4  # per step: shifts of at most 0.1 RMS over the run, which leave the RMS as it is


def _histogram(values: np.ndarray, k: int = 30) -> np.ndarray:
    edges = np.linspace(values.min(), values.max(), k + 1)
    counts, _ = np.histogram(values, edges)
    return np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)


def _summary(rates, nan_at: int | None = None) -> Summary:
    """A tensor whose histogram drifts by ``rates[i]`` per step over interval ``i`` (one rate: all)."""
    rates = np.broadcast_to(np.asarray(rates, dtype=np.float64), (len(STEPS) - 1,))
    shifts = np.concatenate([[0.0], np.cumsum(rates * np.diff(STEPS))])
    hists = [_histogram(BASE + s) for s in shifts]
    if nan_at is not None:
        hists[list(STEPS).index(nan_at)][3, 2] = np.nan
    return summarise(drift.analyse(STEPS, STEPS + next(_WRITTEN) * 1e-3, hists))


FROZEN = "frozen"


def _frozen_summary() -> Summary:
    return _summary(0.0)


def _network(rates: dict[str, object], gradients: bool = True) -> dict[str, Summary]:
    """Tags ``<layer>/kernel``, ``<layer>/bias`` (and a still ``.../gradient``) moving at each layer's rate.

    A rate is per step (or per interval, an array), or ``FROZEN``. A layer far slower than
    TYPICAL keeps a bias moving at TYPICAL, as biases started at 0 do in the demo's ``vanishing``.
    """
    out = {}
    for layer, rate in rates.items():
        for role in ("kernel", "bias"):
            slow = isinstance(rate, float) and rate < TYPICAL / 10
            out[f"{layer}/{role}"] = _summary(TYPICAL if role == "bias" and slow else 0.0 if rate is FROZEN else rate)
        if gradients:
            out[f"{layer}/kernel/gradient"] = _frozen_summary()  # gradients never make stuck findings
    return out


def _find(summaries, exact=None) -> list[findings.Finding]:
    return findings.find(ranking.rank(summaries, exact))


def _kinds(found) -> dict[str, list[findings.Finding]]:
    out: dict[str, list[findings.Finding]] = {}
    for f in found:
        out.setdefault(f.kind, []).append(f)
    return out


# ------------------------------------------------------------------ no false alarms


def test_a_run_where_every_layer_moves_has_no_finding() -> None:
    rates = {f"dense{i}": TYPICAL * f for i, f in enumerate([0.5, 2.0, 1.0, 3.0, 0.7, 1.5], start=1)}
    assert _find({"run": _network(rates)}) == []


def test_gradients_and_activations_never_make_stuck_findings() -> None:
    tags = _network({"dense1": TYPICAL, "dense2": 2 * TYPICAL, "dense3": TYPICAL}, gradients=False)
    tags["dense2/kernel/gradient"] = _frozen_summary()
    tags["dense3/activations"] = _summary(1e-9)
    assert _find({"run": tags}) == []


# ------------------------------------------------------------------ frozen, stagnant, stalled


def test_a_frozen_layer_is_one_finding_naming_its_tags_and_the_evidence() -> None:
    tags = _network({"conv1": TYPICAL, "conv2": TYPICAL, "conv3": FROZEN, "conv4": TYPICAL})
    [finding] = _find({"run": tags})
    assert finding == findings.Finding(
        run="run",
        kind="frozen",
        tags=("conv3/kernel", "conv3/bias"),
        layers=("conv3",),
        since_step=0,
        message="conv3/kernel and conv3/bias never changed over 11 samples (steps 0-1000)",
    )


def test_a_frozen_finding_spans_the_evidence_of_every_source_that_saw_it() -> None:
    # Histograms to step 1000, exact ratios (scoring) and checkpoints further: each says how far it saw.
    tags = _network({"conv1": TYPICAL, "conv2": TYPICAL, "conv3": FROZEN}, gradients=False)
    exact_steps, checkpoint_steps = np.arange(0, 1101, 100), np.arange(0, 1201, 200)
    exact = {"run": {
        "exact": {t: _exact(0.0 if t.startswith("conv3") else TYPICAL, exact_steps) for t in tags},
        "checkpoint": {t: _exact(0.0 if t.startswith("conv3") else TYPICAL, checkpoint_steps, "checkpoint") for t in tags},
    }}
    [finding] = _find({"run": tags}, exact)
    assert finding.message == (
        "conv3/kernel and conv3/bias never changed over 12 snapshots (steps 0-1100)"
        " and 7 checkpoints (steps 0-1200)"
    )


def test_a_stagnant_parameter_is_named_with_its_figures() -> None:
    tags = _network({"a": TYPICAL, "b": TYPICAL, "c": TYPICAL, "slow": 1e-7})
    [finding] = _find({"run": tags})
    assert (finding.kind, finding.tags, finding.since_step) == ("stagnant", ("slow/kernel",), None)
    assert finding.message == (
        "slow/kernel barely moves: 1e-7 per step, 1/1000 of the run's typical 1e-4 (stagnant below 1e-6)"
    )


def test_a_parameter_that_stops_moving_is_stalled_since_that_step() -> None:
    stops = np.where(STEPS[1:] <= 500, TYPICAL, 1e-8)  # moves until step 500, then barely
    tags = _network({"a": TYPICAL, "b": TYPICAL, "c": TYPICAL})
    tags["late/kernel"] = _summary(stops)
    [finding] = _find({"run": tags})
    assert (finding.kind, finding.tags, finding.since_step) == ("stalled", ("late/kernel",), 500)
    assert finding.message == (
        "late/kernel moved, then stayed below the stagnant threshold (1e-6 per step) from step 500 to 1000 "
        "(5 of 10 measured intervals); its median over the run is 5e-5 per step"
    )


def test_a_dip_of_two_intervals_at_the_end_is_not_a_stall() -> None:
    dips = np.where(STEPS[1:] <= 800, TYPICAL, 1e-8)
    tags = _network({"a": TYPICAL, "b": TYPICAL, "c": TYPICAL})
    tags["late/kernel"] = _summary(dips)
    assert _find({"run": tags}) == []


def test_tail_answers_stagnant_since_for_every_threshold() -> None:
    rng = np.random.default_rng(1)
    for _ in range(300):
        n = int(rng.integers(1, 12))
        steps = np.cumsum(rng.integers(1, 5, n))
        rates = rng.choice([np.nan, 1e-3, 1e-4, 1e-5, 2e-4], n) * rng.random(n)
        rates[0] = np.nan
        tail = Tail.of(steps, rates)
        for threshold in (1e-7, 3e-5, 1e-4, 5e-4, np.nan):
            since, after = tail.since(threshold)
            assert since == stagnant_since(steps, rates, threshold)
            if since is not None:
                measured = np.flatnonzero(np.isfinite(rates))
                assert after == int((steps[measured] > since).sum()) or since == tail.start


# ------------------------------------------------------------------ vanishing gradient


def test_movement_falling_4x_per_layer_towards_the_input_is_a_vanishing_gradient() -> None:
    rates = {f"dense{i}": TYPICAL / 4 ** (6 - i) for i in range(1, 7)}  # 1e-4 at dense6 ... 1e-7 at dense1
    found = _kinds(_find({"run": _network(rates)}))
    [finding] = found.pop("vanishing_gradient")
    assert not found  # the stagnant kernels are in the profile's finding, not findings of their own
    assert finding.layers == ("dense1", "dense2", "dense3", "dense4", "dense5", "dense6")
    assert finding.tags[0] == "dense1/kernel"
    assert finding.message.startswith("dense1 and dense2 barely move: movement falls about 4.0x per layer")
    assert "over 6 layers (1e-4 per step at dense6, 9." in finding.message  # 1e-4 / 4 ** 5
    assert finding.message.endswith("e-8 at dense1, 1000x in all)")


def test_a_gentle_slope_is_no_vanishing_gradient() -> None:
    rates = {f"dense{i}": TYPICAL / 1.5 ** (6 - i) for i in range(1, 7)}  # 7.6x over 6 layers
    assert _find({"run": _network(rates)}) == []


# ------------------------------------------------------------------ nonfinite, histogram_blind


def test_nonfinite_names_the_first_step_and_its_tags() -> None:
    tags = _network({"a": TYPICAL, "b": TYPICAL, "c": TYPICAL})
    tags["b/kernel/gradient"] = _summary(TYPICAL, nan_at=300)
    tags["c/kernel"] = _summary(TYPICAL, nan_at=700)
    [finding] = _find({"run": tags})
    assert (finding.kind, finding.since_step, finding.tags) == ("nonfinite", 300, ("b/kernel/gradient", "c/kernel"))
    assert finding.message == "NaN or Inf first at step 300, in b/kernel/gradient; 2 tags hold NaN or Inf in all"


def _exact(ratio: float, steps: np.ndarray = STEPS, source: str = "exact") -> ExactSeries:
    """An exact series of ``ratio`` per step at every interval of ``steps``."""
    ratios = np.full(len(steps), ratio)
    ratios[0] = np.nan
    return ExactSeries(
        source, "step", steps.copy(), ratios, np.ones(len(steps)), np.empty(0), np.empty(0), np.empty(0),
        nonfinite_at=np.zeros(len(steps), dtype=bool), written=len(steps),
    )


def test_histograms_that_see_nothing_of_exact_movement_are_blind() -> None:
    # Weights that trade places: the exact ratio moves, the histogram stays the same.
    tags = {f"dense{i}/kernel": _frozen_summary() for i in range(1, 4)}
    exact = {"run": {"exact": {tag: _exact(TYPICAL) for tag in tags}}}
    [finding] = _find({"run": tags}, exact)
    assert finding.kind == "histogram_blind"
    assert finding.message.startswith("the histograms show none of the exact movement (median over 3 parameters)")
    assert "tb_stagnation.summary" in finding.message and "tb-stagnation checkpoints SRC" in finding.message


def test_every_threshold_comes_from_the_runs_parameters_whichever_source_scores_them() -> None:
    # Every parameter is scored by exact ratios; the histograms hold the parameters at TYPICAL
    # and gradients 100x livelier. The histogram threshold is 1% of the parameters' drift,
    # never of the gradients', so no parameter is stagnant by its histogram either.
    tags = _network({f"dense{i}": TYPICAL for i in range(1, 5)}, gradients=False)
    for i in range(1, 5):
        tags[f"dense{i}/kernel/gradient"] = _summary(100 * TYPICAL)
    exact = {"run": {"exact": {t: _exact(1e-3) for t in tags if not t.endswith("gradient")}}}
    result = ranking.rank({"run": tags}, exact)
    assert result.thresholds["run"]["histogram"] == pytest.approx(0.01 * TYPICAL, rel=0.05)
    assert result.thresholds["run"]["exact"] == pytest.approx(1e-5)
    params = [r for r in result.rows if r.role in vocabulary.PARAMETER_ROLES]
    assert {r.source for r in params} == {"exact"} and len(params) == 8
    assert all(r.status == "moving" and r.stagnant_since is None for r in params)


def test_a_source_that_scores_no_parameter_still_has_a_threshold_for_its_chart() -> None:
    # Checkpoints are outranked by the writers' exact ratios, yet their chart needs its line.
    tags = _network({f"dense{i}": TYPICAL for i in range(1, 4)}, gradients=False)
    exact = {"run": {"exact": {t: _exact(1e-3) for t in tags}, "checkpoint": {t: _exact(2e-3) for t in tags}}}
    thresholds = ranking.rank({"run": tags}, exact).thresholds["run"]
    assert thresholds["checkpoint"] == pytest.approx(2e-5) and thresholds["exact"] == pytest.approx(1e-5)


def test_a_run_of_gradients_only_has_no_stagnant_threshold() -> None:
    tags = {f"dense{i}/kernel/gradient": _summary(TYPICAL) for i in range(1, 4)}
    assert np.isnan(ranking.rank({"run": tags}).thresholds["run"]["histogram"])


def _measured(score: float, floor: float) -> Summary:
    """A histogram-scored tag of 11 samples, steps 0-1000, with these figures."""
    return Summary(11, 0, 0.0, 1000, score, score * 1000, floor, False, False, ())


def test_histograms_too_coarse_for_the_threshold_are_blind() -> None:
    tags = {"a/kernel": _measured(1e-3, 1e-8), "b/kernel": _measured(1e-3, 1e-8),
            "c/kernel": _measured(1e-7, 1e-4), "d/kernel": _measured(1e-7, 1e-4)}
    [finding] = _find({"run": tags})
    assert (finding.kind, finding.tags) == ("histogram_blind", ("c/kernel", "d/kernel"))
    assert "2 of 4 parameter tags are unresolved" in finding.message


def test_coarse_buckets_leave_a_tag_unresolved_only_near_the_threshold() -> None:
    # Typical 1e-3 per step, threshold 1e-5; the buckets of the slow tags resolve 1e-4 per step.
    tags = {f"{name}/kernel": _measured(1e-3, 1e-8) for name in "abcde"}
    tags["near/kernel"] = _measured(1e-6, 1e-4)  # 10x below the threshold: could be either
    tags["far/kernel"] = _measured(1e-8, 1e-4)  # 1000x below: slow, whatever the buckets
    statuses = {r.tag: r.status for r in ranking.rank({"run": tags}).rows}
    assert (statuses["near/kernel"], statuses["far/kernel"]) == ("unresolved", "stagnant")


# ------------------------------------------------------------------ definitions and JSON


def test_definitions_cover_every_status_role_source_and_kind() -> None:
    body = wire.definitions_json()
    assert [s["name"] for s in body["statuses"]] == list(vocabulary.STATUSES)
    assert [r["name"] for r in body["roles"]] == list(vocabulary.ROLES)
    assert [s["name"] for s in body["sources"]] == list(vocabulary.SOURCE_PREFERENCE)
    assert [k["name"] for k in body["finding_kinds"]] == list(vocabulary.FINDING_KINDS)
    assert set(body["parameter_roles"]) == vocabulary.PARAMETER_ROLES
    assert set(body["stuck_statuses"]) == vocabulary.STUCK_STATUSES
    assert body["default_ratio"] == vocabulary.DEFAULT_RATIO
    for group in ("statuses", "roles", "sources", "finding_kinds"):
        assert all(entry["meaning"] for entry in body[group])


def test_meanings_state_the_thresholds_the_code_uses() -> None:
    meaning = {entry["name"]: entry["meaning"] for entry in wire.definitions_json()["finding_kinds"]}
    vanishing = meaning["vanishing_gradient"]
    assert f"at least {vocabulary.VANISHING_MIN_LAYERS} consecutive parameter layers" in vanishing
    assert f"by at least {vocabulary.VANISHING_MIN_FALL:g}x" in vanishing
    unresolved = {entry["name"]: entry["meaning"] for entry in wire.definitions_json()["statuses"]}["unresolved"]
    assert f"within {vocabulary.UNRESOLVED_MARGIN:g}x of it" in unresolved


def test_a_status_and_a_finding_kind_are_different_words_with_the_same_string() -> None:
    # A finding of kind frozen is not a status, yet JSON, the CLI and the tab see the same "frozen".
    assert Status.FROZEN is not Kind.FROZEN and type(Status.FROZEN) is not type(Kind.FROZEN)
    assert json.dumps({Status.FROZEN: [Kind.FROZEN, Status.STAGNANT]}) == '{"frozen": ["frozen", "stagnant"]}'
    assert f"{Kind.VANISHING_GRADIENT} {Status.UNRESOLVED!r}" == "vanishing_gradient 'unresolved'"


def test_an_unknown_role_is_refused_with_the_roles_as_plain_words(capsys) -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main([".", "--role", "kernel"])
    assert exit.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'kernel' (choose from 'weight', 'bias', 'norm_scale'," in err


def test_ranking_json_carries_findings_and_definitions() -> None:
    tags = _network({"conv1": TYPICAL, "conv2": TYPICAL, "conv3": FROZEN})
    result = ranking.rank({"run": tags})
    body = json.loads(json.dumps(wire.ranking_json(result, findings.find(result), result.rows, ["run"]), allow_nan=False))
    assert list(body) == [
        "ratio", "runs", "findings", "rows", "layers", "thresholds", "thinned", "definitions", "as_of", "refreshing"
    ]
    assert body["thinned"] == {}  # every record kept
    assert body["findings"] == [{
        "run": "run", "kind": "frozen", "tags": ["conv3/kernel", "conv3/bias"], "layers": ["conv3"],
        "since_step": 0, "message": "conv3/kernel and conv3/bias never changed over 11 samples (steps 0-1000)",
        "units": [], "unit_count": 0,  # dead_units findings only fill them
    }]


# ------------------------------------------------------------------ real training

QUIET = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")


def _python(args: list[str], timeout: float) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env=QUIET, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{args[:2]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    from conftest import DEMO_ARGS  # the demo test's reduced size, where its stories hold

    path = tmp_path_factory.mktemp("demo")
    runs = ("tiny_lr", "vanishing", "frozen_layer", "healthy")
    _python(["demo/train.py", "--logdir", str(path), *DEMO_ARGS, "--runs", *runs], timeout=600)
    return path


@pytest.fixture(scope="module")
def demo_findings(demo: Path) -> dict[str, list[findings.Finding]]:
    analysis = tb_stagnation.analyse(demo)
    found: dict[str, list[findings.Finding]] = {run: [] for run in analysis.runs}
    for f in analysis.findings:
        found[f.run].append(f)
    return found


def test_demo_vanishing_names_the_input_layers(demo_findings) -> None:
    [finding] = demo_findings["vanishing"]
    assert finding.kind == "vanishing_gradient"
    assert finding.layers[:5] == ("dense1", "dense2", "dense3", "dense4", "dense5")
    assert finding.message.startswith("dense1-dense")


def test_demo_frozen_layer_names_conv3_and_only_it(demo_findings) -> None:
    [finding] = demo_findings["frozen_layer"]
    assert (finding.kind, finding.layers, finding.tags) == ("frozen", ("conv3",), ("conv3/kernel", "conv3/bias"))


def test_demo_healthy_has_no_finding_and_tiny_lr_no_stuck_one(demo_findings) -> None:
    assert demo_findings["healthy"] == []
    assert not [f for f in demo_findings["tiny_lr"] if f.kind in vocabulary.STUCK_KINDS]


def test_cli_prints_findings_by_run_above_the_table_and_the_route_object_as_json(demo: Path, demo_findings) -> None:
    text = _python(["-m", "tb_stagnation.cli", str(demo)], timeout=300)
    head, _, table = text.partition("\n\n")
    assert "== run frozen_layer\n  frozen: conv3/kernel and conv3/bias never changed over" in head
    assert "== run healthy\n  no findings" in head
    assert table.startswith("#")
    body = json.loads(_python(["-m", "tb_stagnation.cli", str(demo), "--json", "--run", "vanishing"], timeout=300))
    assert list(body) == [
        "ratio", "runs", "findings", "rows", "layers", "thresholds", "thinned", "definitions", "as_of", "refreshing"
    ]
    assert body["thinned"] == {}  # every record kept
    assert body["findings"] == [wire.finding_json(f) for f in demo_findings["vanishing"]]
    assert {r["run"] for r in body["rows"]} == {"vanishing"} and set(body["thresholds"]) == {"vanishing"}


def test_imported_checkpoints_give_frozen_and_stagnant_findings(tmp_path: Path) -> None:
    _python([str(REPO / "tests" / "checkpoint_writers.py"), "torch", str(tmp_path)], timeout=600)
    _python(["-m", "tb_stagnation.cli", "checkpoints", str(tmp_path), "--quiet"], timeout=300)
    analysis = tb_stagnation.analyse(tmp_path)
    result, found = analysis.ranking, _kinds(analysis.findings)
    [frozen], [stagnant] = found.pop("frozen"), found.pop("stagnant")
    assert not found
    assert set(frozen.tags) == {"frozen.weight", "frozen.bias"}
    assert frozen.message == "frozen.weight and frozen.bias never changed over 4 checkpoints (steps 0-30)"
    assert set(stagnant.tags) == {"slow.weight", "slow.bias"}
    assert {r.source for r in result.rows if r.tag in frozen.tags + stagnant.tags} == {"checkpoint"}
