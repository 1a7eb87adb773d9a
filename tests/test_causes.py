"""Findings that name a cause and its fix, on runs the real frameworks trained with a known cause.

``cause_writers.py`` trains each run (its docstring tells what each is); every
framework writes in a process of its own, all at once, once per session. The
findings are read through the public :func:`tb_stagnation.analyse`.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tb_stagnation
from conftest import HERE, QUIET_ENV, write_in_processes
from tb_stagnation import api, records
from tb_stagnation.measure import histogram, zeros
from tb_stagnation.verdict import findings, vocabulary
from tb_stagnation.verdict.vocabulary import Kind
from tb_stagnation.writers import units

FRAMEWORKS = ("torch", "tf1", "keras")


@pytest.fixture(scope="session")
def cause_logs(tmp_path_factory) -> dict[str, Path]:
    """framework -> log directory of its runs (see tests/cause_writers.py)."""
    return write_in_processes(HERE / "cause_writers.py", FRAMEWORKS, tmp_path_factory.mktemp("causes"))


@pytest.fixture(scope="module")
def found(cause_logs: dict[str, Path]) -> dict[str, list[findings.Finding]]:
    """run -> its findings, for every framework's runs (Keras' runs are ``<run>/train``)."""
    out: dict[str, list[findings.Finding]] = {}
    for logdir in cause_logs.values():
        analysis = tb_stagnation.analyse(str(logdir))
        runs = {row.run for row in analysis.rows}
        for run in runs:
            out[run.removesuffix("/train")] = [f for f in analysis.findings if f.run == run]
    return out


def _of(found: dict[str, list[findings.Finding]], run: str, kind: Kind) -> list[findings.Finding]:
    return [f for f in found[run] if f.kind == kind]


# ------------------------------------------------------------------ norm_stats_frozen


def test_a_pytorch_batch_norm_left_in_eval_names_exactly_its_statistics_and_the_fix(found) -> None:
    [finding] = _of(found, "bn_eval", Kind.NORM_STATS_FROZEN)
    assert finding.tags == ("bn2.running_mean", "bn2.running_var", "bn2.num_batches_tracked")
    assert finding.layers == ("bn2",)
    assert finding.message.startswith(
        "bn2.running_mean, bn2.running_var and bn2.num_batches_tracked never changed over 13 samples "
        "(steps 0-60) while bn2.weight and bn2.bias trained: bn2 ran in eval() mode"
    )
    assert "train() mode" in finding.message
    assert not _of(found, "bn_eval", Kind.FROZEN), "the cause replaces the generic finding"


def test_a_tf1_batch_norm_whose_update_ops_never_run_names_its_moving_statistics(found) -> None:
    [finding] = _of(found, "update_ops_skipped", Kind.NORM_STATS_FROZEN)
    assert finding.tags == ("batch_normalization/moving_mean_1", "batch_normalization/moving_variance_1")
    assert finding.message.startswith(
        "batch_normalization/moving_mean and batch_normalization/moving_variance never changed over 13 samples"
    ), "shown without TF1's summary suffix _1"
    assert "tf.GraphKeys.UPDATE_OPS" in finding.message and "tf.control_dependencies" in finding.message
    assert not _of(found, "update_ops_skipped", Kind.FROZEN)


def test_a_keras_batch_norm_set_untrainable_names_keras_fix(found) -> None:
    [finding] = _of(found, "bn_frozen", Kind.NORM_STATS_FROZEN)
    assert [t.rsplit("/", 2)[-2] for t in finding.tags] == ["moving_mean", "moving_variance"]
    assert "trainable=False" in finding.message and "UPDATE_OPS" not in finding.message
    assert "/histogram" not in finding.message


@pytest.mark.parametrize("run", ["bn_train", "update_ops_run", "dense_bn"])
def test_statistics_that_update_make_no_norm_stats_finding(found, run: str) -> None:
    assert not _of(found, run, Kind.NORM_STATS_FROZEN)
    assert not _of(found, run, Kind.FROZEN)


# ------------------------------------------------------------------ bias_before_norm


def test_a_keras_dense_bias_before_batch_norm_is_named_with_its_fix(found) -> None:
    [finding] = _of(found, "dense_bn", Kind.BIAS_BEFORE_NORM)
    assert finding.tags == ("sequential/dense1/bias/histogram",)
    assert finding.message.startswith("sequential/dense1/bias barely moves: ")
    assert "while sequential/dense1/kernel moves " in finding.message
    assert "the batch norm sequential/bn right after it subtracts the mean, which cancels the bias" in finding.message
    assert "use_bias=False" in finding.message
    assert not _of(found, "dense_bn", Kind.STAGNANT), "the cause replaces the generic finding"


def test_a_tf1_bias_before_batch_norm_is_named_though_one_event_hides_the_order(found) -> None:
    """TF1's merged summary writes every tag in one event: the finding says the order is not known."""
    for run in ("update_ops_skipped", "update_ops_run"):
        [finding] = _of(found, run, Kind.BIAS_BEFORE_NORM)
        assert finding.tags == ("dense1/bias_1",)
        assert finding.message.startswith("dense1/bias barely moves: ")
        assert "if the batch norm batch_normalization follows it (one event wrote both, in no known order)" in (
            finding.message
        )
        assert not _of(found, run, Kind.STAGNANT)


def test_biases_that_move_make_no_bias_finding(found) -> None:
    """The torch CNN's fc bias, the TF1 logits bias: moving, no finding, batch norm in the run or not."""
    for run in ("bn_train", "bn_eval", "relu_healthy", "relu_dying"):
        assert not _of(found, run, Kind.BIAS_BEFORE_NORM)


# ------------------------------------------------------------------ dying_relu


def test_relu_units_dying_at_a_learning_rate_far_too_high_are_seen_in_activation_histograms(found) -> None:
    [finding] = _of(found, "relu_dying", Kind.DYING_RELU)
    assert finding.tags == ("fc2.output",)
    assert finding.layers == ("fc2",)
    assert finding.message.startswith("fc2.output is exactly 0 for ")
    assert "the ReLU units of fc2 died" in finding.message and "lower the learning rate" in finding.message
    assert finding.since_step is not None and finding.since_step > 0


def test_a_healthy_relu_network_half_zeros_makes_no_dying_relu(found, cause_logs) -> None:
    assert not _of(found, "relu_healthy", Kind.DYING_RELU)
    analysis = tb_stagnation.analyse(str(cause_logs["torch"]), runs=["relu_healthy"])
    shares = {r.tag: r.zeros for r in analysis.rows if r.role == vocabulary.Role.ACTIVATION}
    assert set(shares) == {"fc1.output", "fc2.output"}
    for share in shares.values():  # about half, as ever with ReLU
        assert 0.4 < share.first[1] < 0.6 and 0.4 < share.last[1] < 0.6


def test_zero_share_is_measured_where_buckets_resolve_zeros_and_unknown_where_they_do_not() -> None:
    """TF1 / PyTorch layout: zeros alone in [0, 1e-12]; TF2's even buckets mix them with small values."""
    values = np.maximum(np.random.default_rng(0).normal(size=1000), 0.0)
    exact_zeros = float((values == 0).mean())
    limits = np.concatenate([[0.0], 1e-12 * 1.1 ** np.arange(400)])
    counts, _ = np.histogram(values, np.append(limits, np.inf))
    tf1 = np.stack([limits[:-1], limits[1:], counts[:-1]], axis=1)
    edges = np.linspace(values.min(), values.max(), 31)
    tf2 = np.stack([edges[:-1], edges[1:], np.histogram(values, edges)[0]], axis=1)
    positive = np.array([[0.5, 1.0, 10.0]])
    got = zeros.shares(histogram.clean(histogram.stack([tf1, tf2, positive])))
    assert got[0] == pytest.approx(exact_zeros) and 0.4 < exact_zeros < 0.6
    assert np.isnan(got[1]), "TF2's first bucket holds zeros and small values alike"
    assert got[2] == 0.0


def test_zero_shares_say_since_when_every_share_reached_a_level() -> None:
    steps = np.arange(0, 70, 10)
    shares = zeros.ZeroShares.of(steps, np.array([0.5, 0.6, 0.95, np.nan, 0.85, 0.97, 0.99]))
    assert shares.above_since(0.9) == (50, 2)
    assert shares.above_since(0.8) == (20, 4)
    assert shares.above_since(0.4) == (0, 6)
    assert shares.above_since(0.995) == (None, 0)
    assert (shares.first, shares.last) == ((0, 0.5), (60, 0.99))


@pytest.mark.parametrize("load_fast", [False, True])
def test_the_series_answer_carries_the_zero_share_and_its_line(cause_logs, start_tensorboard, load_fast) -> None:
    """Through a real TensorBoard on both loaders: ``zero_share`` per kept step, the 90% line in ``thresholds``."""
    tb = start_tensorboard(cause_logs["torch"], load_fast=load_fast)
    status, dying, _ = tb.plugin("series?run=relu_dying&tag=fc2.output")
    assert status == 200
    assert dying["thresholds"]["zero_share"] == vocabulary.DYING_RELU_SHARE
    assert len(dying["zero_share"]) == len(dying["steps"]) == 13
    assert dying["zero_share"][0] < 0.6 and min(dying["zero_share"][-3:]) >= vocabulary.DYING_RELU_SHARE
    _, weight, _ = tb.plugin("series?run=relu_dying&tag=fc2.weight")
    assert weight["zero_share"] == [0.0] * len(weight["steps"]), "no weight is exactly 0"


def test_the_meanings_state_the_causes_thresholds_and_come_before_the_symptoms() -> None:
    kinds = list(vocabulary.FINDING_KINDS)
    causes = [Kind.NORM_STATS_FROZEN, Kind.BIAS_BEFORE_NORM, Kind.DYING_RELU, Kind.INIT_SCALE]
    assert max(kinds.index(k) for k in causes) < kinds.index(Kind.FROZEN)
    dying = vocabulary.FINDING_MEANINGS[Kind.DYING_RELU]
    assert f"at least {vocabulary.DYING_RELU_SHARE:.0%}" in dying
    assert f"last {vocabulary.DYING_RELU_MIN_SAMPLES} or more kept samples" in dying
    assert f"at least {vocabulary.INIT_SCALE_FACTOR:g}x" in vocabulary.FINDING_MEANINGS[Kind.INIT_SCALE]


# ------------------------------------------------------------------ init_scale


@pytest.fixture(scope="session")
def init_logs(tmp_path_factory) -> Path:
    """The ``init`` runs' checkpoints (tests/cause_writers.py), each imported by the real CLI."""
    logdir = write_in_processes(HERE / "cause_writers.py", ["init"], tmp_path_factory.mktemp("init"))["init"]
    for run in ("unit_normal", "default"):
        subprocess.run([str(Path(sys.executable).parent / "tb-stagnation"), "checkpoints", str(logdir / run)],
                       env=QUIET_ENV, check=True, capture_output=True, timeout=300)
    return logdir


@pytest.fixture(scope="module")
def init_analysis(init_logs: Path) -> api.Analysis:
    return tb_stagnation.analyse(str(init_logs))


def test_unit_normal_weights_in_a_cnn_are_named_with_he_glorot_and_their_slow_movement(init_analysis) -> None:
    """conv2 (32 x 16 x 3 x 3: fan-in 144) and fc1 (32 x 2048) re-initialised unit-normal, trained with Adam:
    one finding per tensor, as each has its own fan-in and figures; conv1 and fc2 (torch's default) none."""
    found = [f for f in init_analysis.findings if f.run == "unit_normal" and f.kind == Kind.INIT_SCALE]
    assert [f.tags for f in found] == [("conv2.weight",), ("fc1.weight",)]
    conv2, fc1 = found
    assert conv2.message.startswith(
        "conv2.weight started at RMS 1 (step 0), 8.6x He's 0.12 for its fan-in 144 (Glorot 0.068): "
        "unit-normal initialisation, so its relative movement ("
    )
    assert fc1.message.startswith("fc1.weight started at RMS 1 (step 0), 32x He's 0.031 for its fan-in 2048 ")
    rows = {r.tag: r for r in init_analysis.rows if r.run == "unit_normal"}
    for finding in found:
        row = rows[finding.tags[0]]
        typical = row.threshold / init_analysis.ranking.ratio
        assert row.score < typical / 4, "Adam's steps are the same size everywhere: 1.0 moves slowly"
        assert f"per step) is {row.score / typical:.0%} of the run's typical " in finding.message
        assert finding.message.endswith("use the framework's default initialiser")
    assert not any(f.kind in (Kind.STAGNANT, Kind.STALLED) and set(f.tags) & {"conv2.weight", "fc1.weight"}
                   for f in init_analysis.findings), "the cause is told, not the symptom again"


def test_the_writers_records_carry_the_shape_too_so_a_writer_run_names_the_same_weights(init_analysis) -> None:
    """TorchUpdateRatioTracker's first record of each tensor carries (layout, shape): its first RMS is at step 4."""
    found = [f for f in init_analysis.findings if f.run == "unit_normal_writer"]
    assert [(f.kind, f.tags) for f in found] == [(Kind.INIT_SCALE, ("conv2.weight",)), (Kind.INIT_SCALE, ("fc1.weight",))]
    assert found[1].message.startswith("fc1.weight started at RMS 1 (step 4), 32x He's 0.031 for its fan-in 2048 ")
    series = init_analysis.ranking.exact[("unit_normal_writer", "conv2.weight")][vocabulary.Source.EXACT]
    assert series.shape == ("torch", (32, 16, 3, 3))


def test_default_initialised_weights_make_no_init_scale_finding(init_analysis) -> None:
    assert {r.run for r in init_analysis.rows} == {"unit_normal", "default", "unit_normal_writer"}
    assert not [f for f in init_analysis.findings if f.run == "default"]


def test_the_checkpoint_import_records_carry_each_tensors_layout_and_shape(init_analysis) -> None:
    shapes = {tag: sources[vocabulary.Source.CHECKPOINT].shape
              for (run, tag), sources in init_analysis.ranking.exact.items() if run == "default"}
    assert shapes["conv2.weight"] == ("torch", (32, 16, 3, 3))
    assert shapes["fc1.weight"] == ("torch", (32, 2048))
    assert shapes["fc2.bias"] == ("torch", (4,))


def test_records_written_without_a_shape_are_read_alike() -> None:
    """Files of earlier imports and writers carry no shape: no fan-in, so no init_scale, nothing else lost."""
    old = records.parse_plugin_metadata(records.create_summary_metadata("w", records.CHECKPOINT).plugin_data.content)
    assert old is not None and (old.shape, old.layout) == (None, None)
    new = records.parse_plugin_metadata(records.create_summary_metadata(
        "w", records.CHECKPOINT, shape=(records.TF_LAYOUT, (3, 3, 16, 32))).plugin_data.content)
    assert (new.layout, new.shape) == (records.TF_LAYOUT, (3, 3, 16, 32))
    with pytest.raises(ValueError, match="layout"):
        records.create_summary_metadata("w", records.CHECKPOINT, shape=("jax", (3, 3)))


@pytest.mark.parametrize(("name", "shape", "layout", "expected"), [
    ("conv2.weight", (32, 16, 3, 3), units.TORCH_LAYOUT, (144, 288)),  # torch Conv: (out, in, *k)
    ("fc1.weight", (32, 2048), units.TORCH_LAYOUT, (2048, 32)),  # torch Linear: (out, in)
    ("conv2d/kernel", (3, 3, 16, 32), units.TF_LAYOUT, (144, 288)),  # Keras Conv: (*k, in, out)
    ("dense/kernel", (2048, 32), units.TF_LAYOUT, (2048, 32)),  # Keras Dense: (in, out)
    ("fc1.bias", (32,), units.TORCH_LAYOUT, None),  # biases and norm vectors have no fan-in
    ("model.embed_tokens.weight", (1000, 64), units.TORCH_LAYOUT, None),  # embeddings are unit-normal on purpose
])
def test_fan_in_and_fan_out_follow_each_frameworks_layout(name, shape, layout, expected) -> None:
    assert units.fans(name, shape, layout) == expected


def test_a_batch_norm_frozen_with_the_layers_around_it_is_only_frozen(found, cause_logs) -> None:
    """A backbone frozen for fine-tuning: its statistics are meant to stay, no cause is claimed.

    bn_eval's frozen statistics, with bn2's own weight and bias and the layers around it (conv2,
    fc) frozen too, are told as ``frozen``, not ``norm_stats_frozen``.
    """
    analysis = tb_stagnation.analyse(str(cause_logs["torch"]), runs=["bn_eval"])
    rows = [
        dataclasses.replace(r, status=vocabulary.Status.FROZEN) if r.layer in ("conv2", "bn2", "fc") else r
        for r in analysis.rows
    ]
    result = dataclasses.replace(analysis.ranking, rows=rows)
    kinds = {f.kind for f in findings.find(result)}
    assert Kind.NORM_STATS_FROZEN not in kinds and Kind.FROZEN in kinds
