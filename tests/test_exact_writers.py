"""Exact-movement writers, checked on real (tiny, CPU) training and read back through TensorBoard.

Every logged ratio is compared with one computed here, independently, from
weights the test saves itself at the snapshot steps.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import copy
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
from tensorboard.backend.event_processing.data_provider import MultiplexerDataProvider
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from tensorboard.context import RequestContext
from tensorboardX import SummaryWriter as TBXSummaryWriter
from torch.utils.tensorboard import SummaryWriter as TorchSummaryWriter

from tb_stagnation import records, summary
from tb_stagnation.measure.exact_series import ExactSeries, collect_exact
from tb_stagnation.sources.provider import ProviderSource

EVERY = 5
RTOL = 1e-5

# ----------------------------------------------------------------------------- helpers


def _provider(logdir: Path, tensor_size_guidance: dict | None = None) -> MultiplexerDataProvider:
    mux = EventMultiplexer(tensor_size_guidance=tensor_size_guidance)
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    return MultiplexerDataProvider(mux, str(logdir))


def read_exact(logdir: Path) -> dict[str, dict[str, ExactSeries]]:
    """What the backend will do: list + read the `stagnation` records, then collect them.

    run -> parameter -> series, of the training-time writers (source ``exact``).
    """
    source, ctx = ProviderSource(_provider(logdir), downsample=1000), RequestContext()
    points = source.exact_points(ctx, "", source.exact_tags(ctx, ""))
    return {run: sources[records.EXACT] for run, sources in collect_exact(points).items()}


def expected_ratio(before: np.ndarray, after: np.ndarray, steps: int) -> float:
    """||after - before|| / ||before|| / steps, against max(norms) when ||before|| == 0."""
    before, after = before.astype(np.float64), after.astype(np.float64)
    base = np.linalg.norm(before) or np.linalg.norm(after)
    return 0.0 if base == 0 else np.linalg.norm(after - before) / base / steps


def assert_matches_saved(series: dict[str, ExactSeries], saved: dict[int, dict[str, np.ndarray]]) -> None:
    """Logged ratio and RMS equal the ones computed from the weights saved at each snapshot."""
    steps = sorted(saved)
    assert set(series) == set(saved[steps[0]])
    for name, s in series.items():
        np.testing.assert_array_equal(s.steps, steps[1:], err_msg=name)
        ratios = [expected_ratio(saved[a][name], saved[b][name], b - a) for a, b in zip(steps, steps[1:])]
        np.testing.assert_allclose(s.update_ratio, ratios, rtol=RTOL, atol=1e-12, err_msg=name)
        rms = [np.sqrt(np.mean(saved[b][name].astype(np.float64) ** 2)) for b in steps[1:]]
        np.testing.assert_allclose(s.rms, rms, rtol=RTOL, err_msg=name)


def tf_weights(variables) -> dict[str, np.ndarray]:
    return {v.path: v.numpy() for v in variables}


def small_data(n: int = 64, dim: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x, np.sin(x.sum(axis=1, keepdims=True)).astype(np.float32)


def dense_model(frozen: str | None = None) -> keras.Model:
    """8 -> hidden(16) -> middle(16) -> out(1); `frozen` names a layer made non-trainable."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation="tanh", name="hidden"),
            keras.layers.Dense(16, activation="tanh", name="middle"),
            keras.layers.Dense(1, name="out"),
        ],
        name="net",
    )
    if frozen:
        model.get_layer(frozen).trainable = False
    return model


# --------------------------------------------------------------------------- Keras fit


class _SaveAtSnapshots(keras.callbacks.Callback):
    """Saves every weight when optimizer.iterations is a multiple of `every`."""

    def __init__(self, every: int) -> None:
        super().__init__()
        self.every, self.saved = every, {}

    def _save(self) -> None:
        step = int(self.model.optimizer.iterations.numpy())
        if step % self.every == 0:
            self.saved[step] = tf_weights(self.model.weights)

    def on_train_begin(self, logs=None) -> None:
        self._save()

    def on_train_batch_end(self, batch, logs=None) -> None:
        self._save()


def test_keras_fit_logs_exact_ratio_in_the_tensorboard_callbacks_run(tmp_path: Path) -> None:
    model = dense_model(frozen="middle")
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    saver = _SaveAtSnapshots(EVERY)
    exact_cb = summary.KerasUpdateRatioCallback(str(tmp_path), every=EVERY)
    assert isinstance(exact_cb, keras.callbacks.Callback)
    x, y = small_data()
    board = keras.callbacks.TensorBoard(str(tmp_path), histogram_freq=1)
    model.fit(x, y, batch_size=8, epochs=3, verbose=0, callbacks=[saver, exact_cb, board])  # 24 steps

    assert sorted(saver.saved) == [0, 5, 10, 15, 20]
    series = read_exact(tmp_path)["train"]
    assert_matches_saved(series, saver.saved)
    for name in ("net/middle/kernel", "net/middle/bias"):  # frozen
        assert series[name].update_ratio.tolist() == [0.0] * 4
    assert series["net/out/bias"].update_ratio[0] > 0  # zero-initialised: ratio against ||W_t||
    assert all(s.grad_norm.size == 0 for s in series.values())

    provider, ctx = _provider(tmp_path), RequestContext()
    histograms = provider.list_tensors(ctx, experiment_id="", plugin_name="histograms")["train"]
    assert {f"{name}/histogram" for name in series} <= set(histograms)  # same run, matching names
    scalars_tab = provider.list_scalars(ctx, experiment_id="", plugin_name="scalars")
    assert not any(tag.startswith("stagnation/") for tags in scalars_tab.values() for tag in tags)


# ---------------------------------------------------------------------- TF2 custom loop


def _tf_train_step(model: keras.Model, variables: list, lr: float = 0.05):
    optimizer = keras.optimizers.SGD(lr)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((model(x) - y) ** 2)
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return grads

    return train_step


def test_tf2_loop_logs_exact_ratio_and_gradient_norm(tmp_path: Path) -> None:
    model = dense_model(frozen="middle")
    scale = tf.Variable([1.5], name="scale")  # a plain tf.Variable: named without ":0"
    variables = [*model.weights, scale]
    trainable = [*model.trainable_variables, scale]
    optimizer = keras.optimizers.SGD(0.05)

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean((scale * model(x) - y) ** 2)
        grads = tape.gradient(loss, trainable)
        optimizer.apply_gradients(zip(grads, trainable))
        return grads

    def aligned(grads) -> list:  # one entry per tracked variable, None for frozen ones
        by_id = {id(v): g for v, g in zip(trainable, grads)}
        return [by_id.get(id(v)) for v in variables]

    tracker = summary.TF2UpdateRatioTracker(variables, every=EVERY)
    x, y = small_data()
    saved, grad_norms = {}, {}
    with tf.summary.create_file_writer(str(tmp_path / "loop")).as_default():
        assert tracker.maybe_log(0)
        saved[0] = {**tf_weights(model.weights), "scale": scale.numpy()}
        for step in range(1, 21):
            grads = aligned(train_step(x[step % 8 :: 8], y[step % 8 :: 8]))
            assert tracker.maybe_log(step, gradients=grads) == (step % EVERY == 0)
            if step % EVERY == 0:
                saved[step] = {**tf_weights(model.weights), "scale": scale.numpy()}
                names = [*saved[0]]
                grad_norms[step] = {
                    n: np.linalg.norm(g.numpy().astype(np.float64)) for n, g in zip(names, grads) if g is not None
                }

    series = read_exact(tmp_path)["loop"]
    assert_matches_saved(series, saved)
    for name, s in series.items():
        if name.startswith("net/middle/"):
            assert s.update_ratio.tolist() == [0.0] * 4 and s.grad_norm.size == 0
        else:
            np.testing.assert_allclose(s.grad_norm, [grad_norms[t][name] for t in s.steps], rtol=RTOL)


def test_tf2_permuted_layer_moves_while_its_histograms_stay_identical(tmp_path: Path) -> None:
    model = dense_model(frozen="middle")  # "middle" is not trained, only permuted
    train_step = _tf_train_step(model, model.trainable_variables)
    kernel = model.get_layer("middle").kernel
    tracker = summary.TF2UpdateRatioTracker(model.weights, every=EVERY)
    x, y = small_data()
    saved = {}
    with tf.summary.create_file_writer(str(tmp_path / "perm")).as_default():
        for step in range(0, 21):
            if step:
                train_step(x, y)
                kernel.assign(tf.reshape(tf.random.shuffle(tf.reshape(kernel, [-1])), kernel.shape))
            if tracker.maybe_log(step):
                saved[step] = tf_weights(model.weights)
                for v in model.weights:
                    tf.summary.histogram(v.path, v, step=step)

    series = read_exact(tmp_path)["perm"]
    assert_matches_saved(series, saved)
    assert np.all(series["net/middle/kernel"].update_ratio > 0.5 / EVERY)  # ~sqrt(2)/k for a shuffle

    provider = _provider(tmp_path)
    hist = provider.read_tensors(RequestContext(), experiment_id="", plugin_name="histograms", downsample=1000)
    hist = hist["perm"]
    permuted = [d.numpy for d in hist["net/middle/kernel"]]
    trained = [d.numpy for d in hist["net/hidden/kernel"]]
    assert len(permuted) == 5
    assert all(np.array_equal(h, permuted[0]) for h in permuted)
    assert not np.array_equal(trained[0], trained[-1])

    # The ranking prefers the exact measure: moving, although its histogram drift is 0.
    from tb_stagnation import engine
    from tb_stagnation.verdict.vocabulary import Source, Status

    rows = {row.tag: row for row in engine.analyse_logdir(str(tmp_path)).ranking.rows}
    middle = rows["net/middle/kernel"]
    assert (middle.source, middle.status, middle.histogram_score) == (Source.EXACT, Status.MOVING, 0.0)
    assert rows["net/hidden/kernel"].source == Source.EXACT


# ---------------------------------------------------------------------------- PyTorch


def _torch_weights(net: torch.nn.Module) -> dict[str, np.ndarray]:
    return {n: p.detach().numpy().copy() for n, p in net.named_parameters()}


@pytest.mark.parametrize(
    "writer_class", [TorchSummaryWriter, TBXSummaryWriter], ids=["torch", "tensorboardX"]
)
def test_torch_logs_exact_ratio_and_gradient_norm(tmp_path: Path, writer_class) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(8, 16), torch.nn.Tanh(),
        torch.nn.Linear(16, 16), torch.nn.Tanh(),
        torch.nn.Linear(16, 1),
    )
    net[2].requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=0.01)
    writer = writer_class(str(tmp_path / "torch"))
    tracker = summary.TorchUpdateRatioTracker(net.named_parameters(), writer, every=EVERY)
    x, y = map(torch.from_numpy, small_data())
    saved, grad_norms = {0: _torch_weights(net)}, {}
    assert tracker.step(0)
    for step in range(1, 21):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
        assert tracker.step(step, log_gradients=True) == (step % EVERY == 0)
        if step % EVERY == 0:
            saved[step] = _torch_weights(net)
            grad_norms[step] = {
                n: p.grad.double().norm().item() for n, p in net.named_parameters() if p.grad is not None
            }
    writer.close()

    series = read_exact(tmp_path)["torch"]
    assert_matches_saved(series, saved)
    for name, s in series.items():
        if name.startswith("2."):  # frozen
            assert s.update_ratio.tolist() == [0.0] * 4 and s.grad_norm.size == 0
        else:
            np.testing.assert_allclose(s.grad_norm, [grad_norms[t][name] for t in s.steps], rtol=RTOL)


class _TwoBranches(torch.nn.Module):
    """Two identical branches summed: their gradients agree, so only the learning rate differs."""

    def __init__(self) -> None:
        super().__init__()
        self.fast = torch.nn.Linear(8, 32)
        self.slow = copy.deepcopy(self.fast)
        self.head = torch.nn.Linear(32, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.tanh(self.fast(x)) + torch.tanh(self.slow(x)))


def test_torch_layer_at_1e_5_learning_rate_logs_1e_5_ratio(tmp_path: Path) -> None:
    # float64: in float32 an update 1e-5 x a healthy one is about one ulp of the weight, so about
    # half the entries never change and the rest jump by whole ulps: the float32 ratio is right
    # only to an order of magnitude (measured: 0.87e-5 x instead of 1e-5 x).
    torch.manual_seed(0)
    net = _TwoBranches().double()
    lr = 0.05
    optimizer = torch.optim.SGD(
        [
            {"params": [*net.fast.parameters(), *net.head.parameters()], "lr": lr},
            {"params": net.slow.parameters(), "lr": lr * 1e-5},
        ]
    )
    writer = TorchSummaryWriter(str(tmp_path / "slow"))
    tracker = summary.TorchUpdateRatioTracker(net.named_parameters(), writer, every=EVERY)
    x, y = (t.double() for t in map(torch.from_numpy, small_data()))
    saved = {0: _torch_weights(net)}
    tracker.step(0)
    for step in range(1, 21):
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(net(x), y).backward()
        optimizer.step()
        if tracker.step(step):
            saved[step] = _torch_weights(net)
    writer.close()

    series = read_exact(tmp_path)["slow"]
    assert_matches_saved(series, saved)
    for param in ("weight", "bias"):
        fast, slow = series[f"fast.{param}"].update_ratio, series[f"slow.{param}"].update_ratio
        assert np.all(fast > 1e-4)
        np.testing.assert_allclose(slow / fast, 1e-5, rtol=0.3)

    from tb_stagnation.verdict import ranking  # the backend's; imported here so its changes fail only this test
    from tb_stagnation.verdict.vocabulary import Status

    status = {row.tag: row.status for row in ranking.rank({}, {"slow": {records.EXACT: series}}).rows}
    assert status["slow.weight"] == status["slow.bias"] == Status.STAGNANT
    assert status["fast.weight"] == status["fast.bias"] == Status.MOVING


# ------------------------------------------------------- core, reader, TensorBoard facts


def test_core_first_snapshot_stores_and_ratio_is_per_step() -> None:
    core = summary.UpdateRatioCore(every=10)
    assert core.due(0)
    zeros = ("z", np.zeros(2), None)
    assert core.snapshot(0, [("w", np.array([3.0, 4.0]), None), ("b", np.zeros(2), None), zeros]) == []
    assert not core.due(9)
    assert core.due(13)  # crossed 10: loops that skip steps still snapshot
    out = core.snapshot(
        13, [("w", np.array([3.0, 9.0]), np.array([0.0, 2.0])), ("b", np.array([0.0, 2.0]), None), zeros]
    )
    values = {(r.param, quantity): value for r in out for quantity, value in r.values.items()}
    assert [r.seq for r in out] == [0, 0, 0]  # each parameter's first record
    assert values[("w", records.UPDATE_RATIO)] == pytest.approx(5 / 5 / 13)
    assert values[("w", records.PARAM_RMS)] == pytest.approx(np.sqrt(45))
    assert values[("w", records.GRAD_NORM)] == pytest.approx(2.0)
    # ||W_{t-k}|| == 0: against ||W_t||
    assert values[("b", records.UPDATE_RATIO)] == pytest.approx(2 / 2 / 13)
    assert values[("z", records.UPDATE_RATIO)] == 0.0  # both norms 0
    assert ("b", records.GRAD_NORM) not in values
    assert core.due(5) and core.snapshot(5, [("w", np.ones(2), None)]) == []  # step went back: start afresh


def test_core_keeps_its_own_copy() -> None:
    core, w = summary.UpdateRatioCore(every=1), np.ones(3)
    core.snapshot(0, [("w", w, None)])
    w += 1.0  # in place, as an optimizer does to a shared-memory numpy view
    (record,) = core.snapshot(1, [("w", w, None)])
    assert record.values[records.UPDATE_RATIO] == pytest.approx(1.0)


def test_importing_summary_imports_no_framework() -> None:
    code = (
        "import sys, tb_stagnation.summary, tb_stagnation.measure.exact_series\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'torch', 'tensorboardX') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_tf2_tracker_refuses_graph_mode_and_duplicate_names() -> None:
    with pytest.raises(ValueError, match="unique"):
        summary.TF2UpdateRatioTracker([tf.Variable(1.0, name="v"), tf.Variable(2.0, name="v")])
    tracker = summary.TF2UpdateRatioTracker([tf.Variable(1.0, name="w")], every=1)
    with pytest.raises(RuntimeError, match="eagerly"):
        tf.function(lambda: tracker.maybe_log(0))()
