"""Verdicts on real PyTorch training: drift far below the threshold is ``stagnant``, not ``unresolved``.

The logs are written by ``torch.utils.tensorboard.SummaryWriter.add_histogram``
(TF1 ``HistogramProto`` layout: fixed bucket limits, exact min and max as
outer edges) from small real models trained with torch optimizers, in a
subprocess (``python tests/test_verdicts.py LOGDIR``) so torch and the
TensorFlow that TensorBoard may import stay out of the test process. They
are ranked through ``engine.analyse_logdir`` (ranking and findings), as the CLI does.

- ``slow_bias``: a 3-layer tanh MLP trained with SGD, one 16-value bias in an
  optimizer group at 1e-8 x the learning rate. The model is float64: in
  float32 an update of 1e-8 x the learning rate is below the bias' unit in
  the last place and the bias would not change at all (``frozen``, rightly).
- ``sigmoid10``: a 10-layer sigmoid MLP trained with plain SGD; movement
  vanishes towards the input.
- ``healthy``: the ``slow_bias`` model with every parameter at the full rate.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tb_stagnation import engine
from tb_stagnation.verdict import findings, ranking
from tb_stagnation.verdict.vocabulary import Source, Status

REPO = Path(__file__).resolve().parents[1]
SLOW_FACTOR = 1e-8


def _mlp(torch, sizes, activation, dtype):
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(torch.nn.Linear(a, b, dtype=dtype))
        if i < len(sizes) - 2:
            layers.append(activation())
    return torch.nn.Sequential(*layers)


def _train(torch, logdir, model, names, optimizer, steps, every, x, y) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(logdir)
    for step in range(steps + 1):
        if step % every == 0:
            for param, name in names.items():
                writer.add_histogram(name, param.detach(), step)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
    writer.close()


def write_slow_bias(logdir: str, factor: float) -> None:
    import torch

    torch.manual_seed(0)
    model = _mlp(torch, [8, 32, 16, 4], torch.nn.Tanh, torch.float64)
    slow = model[2].bias  # 16 values
    lr = 0.05
    optimizer = torch.optim.SGD(
        [{"params": [p for p in model.parameters() if p is not slow], "lr": lr}, {"params": [slow], "lr": lr * factor}]
    )
    x = torch.randn(256, 8, dtype=torch.float64)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    names = {p: n for n, p in model.named_parameters()}
    _train(torch, logdir, model, names, optimizer, steps=80, every=4, x=x, y=y)


def write_sigmoid10(logdir: str) -> None:
    import torch

    torch.manual_seed(0)
    model = _mlp(torch, [16] + [32] * 9 + [4], torch.nn.Sigmoid, torch.float32)
    linear = [m for m in model if isinstance(m, torch.nn.Linear)]
    names = {}
    for i, m in enumerate(linear, start=1):
        names[m.weight], names[m.bias] = f"dense{i}/kernel", f"dense{i}/bias"
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 16, generator=g)
    y = (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()
    _train(torch, logdir, model, names, optimizer, steps=80, every=5, x=x, y=y)


def write_all(root: str) -> None:
    write_slow_bias(os.path.join(root, "slow_bias", "train"), SLOW_FACTOR)
    write_sigmoid10(os.path.join(root, "sigmoid10", "train"))
    write_slow_bias(os.path.join(root, "healthy", "train"), 1.0)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("verdicts")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run(
        [sys.executable, __file__, str(root)], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def _load(path: Path) -> tuple[dict[str, ranking.Row], list[findings.Finding]]:
    outcome = engine.analyse_logdir(str(path))
    result = outcome.ranking
    assert not outcome.skipped
    return {r.tag: r for r in result.rows}, findings.find(result)


def _floors_are_resolved_w1(rows: dict[str, ranking.Row]) -> None:
    """Every histogram row shows its floor, and it is finer than the threshold (the samples resolve it)."""
    for row in rows.values():
        assert row.source == Source.HISTOGRAM
        assert 0 < row.floor < row.threshold, row


def test_a_bias_at_1e8_of_the_learning_rate_is_stagnant_the_rest_moving(logs: Path) -> None:
    rows, found = _load(logs / "slow_bias")
    statuses = {tag: r.status for tag, r in rows.items()}
    assert statuses == {"0.weight": "moving", "0.bias": "moving", "2.weight": "moving", "2.bias": "stagnant",
                        "4.weight": "moving", "4.bias": "moving"}
    slow = rows["2.bias"]
    assert 0 < slow.score < slow.threshold / 1000  # measured, and thousands of times below the threshold
    assert slow.floor <= slow.score  # ... and above what the histograms resolve
    _floors_are_resolved_w1(rows)
    [finding] = found
    assert (finding.kind, finding.tags) == ("stagnant", ("2.bias",))


def test_a_deep_sigmoid_mlp_is_stuck_near_the_input_and_a_vanishing_gradient(logs: Path) -> None:
    rows, found = _load(logs / "sigmoid10")
    for i in range(1, 5):
        assert rows[f"dense{i}/kernel"].status in (Status.FROZEN, Status.STAGNANT), rows[f"dense{i}/kernel"]
    assert not [r for r in rows.values() if r.status == Status.UNRESOLVED]
    fourth = rows["dense4/kernel"]
    assert 0 < fourth.score < fourth.threshold and fourth.floor < fourth.threshold
    assert rows["dense10/kernel"].status == Status.MOVING
    assert rows["dense10/kernel"].score > 1e4 * fourth.score
    [vanishing] = [f for f in found if f.kind == "vanishing_gradient"]
    assert "dense4" in vanishing.layers and vanishing.layers[-1] in ("dense9", "dense10")
    assert not [f for f in found if f.kind == "histogram_blind"]


def test_a_run_where_every_layer_moves_has_no_finding(logs: Path) -> None:
    rows, found = _load(logs / "healthy")
    assert {r.status for r in rows.values()} == {Status.MOVING}
    assert found == []
    _floors_are_resolved_w1(rows)


def test_the_floor_is_the_drift_between_samples_identical_but_for_rounding() -> None:
    from oracles import batch

    from tb_stagnation.measure import drift, histogram

    rng = np.random.default_rng(0)
    values = rng.normal(0, 0.1, 1000).astype(np.float32)
    limits = np.array([-np.inf, *np.linspace(-0.3, 0.3, 31)[1:-1], np.inf])
    counts, _ = np.histogram(values, [values.min(), *limits[1:-1], values.max()])
    edges = np.array([values.min(), *limits[1:-1], values.max()], dtype=np.float64)
    h = np.stack([edges[:-1], edges[1:], counts], axis=1)
    nudged = h.copy()
    nudged[0, 0] = np.nextafter(np.float32(h[0, 0]), np.float32(-np.inf))  # the minimum one float32 ulp down
    nudged[-1, 1] = np.nextafter(np.float32(h[-1, 1]), np.float32(np.inf))  # the maximum one float32 ulp up
    b = batch([h, nudged])
    w1 = histogram.wasserstein_pairs(b, np.array([0]), np.array([1]))[0]
    assert w1 > 0 and histogram.rounding_floor(b)[0] == pytest.approx(w1, rel=1e-6)
    assert histogram.rounding_floor(batch([h.astype(np.float64) + 1e-12]))[0] < w1 / 1e6  # float64 edges
    series = drift.analyse([0, 10], [0.0, 1.0], [h, nudged])
    _, rms = histogram.moments(b)
    assert series.floor[1] == pytest.approx(histogram.rounding_floor(b)[1] / rms.max() / 10)
    assert series.rate[1] == pytest.approx(w1 / rms.max() / 10)


if __name__ == "__main__":
    write_all(sys.argv[1])
