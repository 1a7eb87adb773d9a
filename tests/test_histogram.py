"""The numeric core against exact computations on raw values."""

from __future__ import annotations

import numpy as np
import pytest

from oracles import batch, wasserstein

from tb_stagnation.measure import drift, histogram, incremental
from tb_stagnation.measure.summaries import summarise


def buckets_uniform(values: np.ndarray, k: int = 30) -> np.ndarray:
    """TF2's layout: k equal buckets over [min, max]."""
    lo, hi = float(values.min()), float(values.max())
    edges = np.linspace(lo, hi, k + 1)
    counts, _ = np.histogram(values, bins=edges)
    return np.column_stack([edges[:-1], edges[1:], counts])


def buckets_at(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(values, bins=edges)
    return np.column_stack([edges[:-1], edges[1:], counts])


def tf1_edges(values: np.ndarray) -> np.ndarray:
    """TF1's default bucket limits (+-1e-12 * 1.1^k), clipped to [min, max] as the loader does."""
    pos = 1e-12 * 1.1 ** np.arange(0, 400)
    limits = np.concatenate([-pos[::-1], [0.0], pos])
    inner = limits[(limits > values.min()) & (limits < values.max())]
    return np.concatenate([[values.min()], inner, [values.max()]])


def w1(a: np.ndarray, b: np.ndarray) -> float:
    """W1 of two raw histograms through the kernel the drift uses."""
    return float(histogram.wasserstein_pairs(batch([a, b]), np.array([0]), np.array([1]))[0])


def exact_w1(x: np.ndarray, y: np.ndarray) -> float:
    """W1 between two empirical distributions of equal size: sorted pairing."""
    return float(np.mean(np.abs(np.sort(x) - np.sort(y))))


RNG = np.random.default_rng(42)
VALUES = RNG.normal(0.0, 0.05, 20_000)


@pytest.mark.parametrize("shift", [1e-6, 1e-3, 0.02, 0.5])
def test_known_shift_gives_exact_w1(shift: float) -> None:
    a, b = buckets_uniform(VALUES), buckets_uniform(VALUES + shift)
    assert w1(a, b) == pytest.approx(exact_w1(VALUES, VALUES + shift), rel=1e-6)


def test_different_layouts_of_same_values_are_near_zero() -> None:
    layouts = [
        buckets_uniform(VALUES, 30),
        buckets_uniform(VALUES, 200),
        buckets_at(VALUES, tf1_edges(VALUES)),
    ]
    scale = float(np.sqrt(np.mean(VALUES**2)))
    for a in layouts:
        for b in layouts:
            assert w1(a, b) / scale < 0.01


def test_w1_close_to_raw_values_for_a_change_of_shape() -> None:
    after = VALUES * 1.1 + 0.003
    got = w1(buckets_uniform(VALUES, 100), buckets_uniform(after, 100))
    assert got == pytest.approx(exact_w1(VALUES, after), rel=0.02)


def test_point_masses_and_empty_histograms() -> None:
    point = np.array([[0.5, 0.5, 10.0]] + [[0.5, 0.5, 0.0]] * 29)
    other = np.array([[1.5, 1.5, 4.0]])
    assert w1(point, other) == pytest.approx(1.0)
    assert w1(point, point) == 0.0
    spread = np.array([[0.0, 1.0, 1.0]])
    assert w1(point, spread) == pytest.approx(0.25)  # E|U(0,1) - 0.5|
    assert np.isnan(w1(np.zeros((30, 3)), spread))
    assert np.isnan(w1(np.zeros((0, 3)), spread))


def test_rust_loader_empty_outer_buckets_are_ignored() -> None:
    core = buckets_uniform(VALUES)
    with_backwards = np.vstack([[[1.0, -1.0, 0.0]], core, [[5.0, 2.0, 0.0]]])
    assert w1(core, with_backwards) == 0.0


def test_moments_and_quantiles_match_raw_values() -> None:
    b = batch([buckets_uniform(VALUES, 200)])
    mean, rms = histogram.moments(b)
    assert mean[0] == pytest.approx(VALUES.mean(), abs=1e-4)
    assert rms[0] == pytest.approx(np.sqrt(np.mean(VALUES**2)), rel=1e-3)
    q = histogram.quantiles(b)[0]
    expected = np.quantile(VALUES, np.array(histogram.DISTRIBUTION_BPS) / 10000)
    assert q == pytest.approx(expected, abs=2e-3)


def test_series_rate_divides_by_gap_and_detects_frozen() -> None:
    hists = [buckets_uniform(VALUES + 0.001 * s) for s in (0, 10, 30)]
    series = drift.analyse([0, 10, 30], [0.0, 1.0, 2.0], hists)
    scale = np.fmax(series.rms[:-1], series.rms[1:])  # the larger RMS of each pair
    assert series.rate[1] == pytest.approx(0.01 / scale[0] / 10, rel=1e-6)
    assert series.rate[2] == pytest.approx(0.02 / scale[1] / 20, rel=1e-6)
    summary = summarise(series)
    assert not summary.frozen and summary.samples == 3
    frozen = summarise(drift.analyse([0, 1, 2], [0, 1, 2], [hists[0]] * 3))
    assert frozen.frozen and frozen.score == 0.0


def test_restarted_run_keeps_newest_write_of_a_step() -> None:
    a, b = buckets_uniform(VALUES), buckets_uniform(VALUES + 1)
    series = drift.analyse([0, 5, 5], [0.0, 1.0, 2.0], [a, a, b])
    assert list(series.steps) == [0, 5]
    assert series.drift[1] > 0


def test_zero_initialised_bias_has_a_scale() -> None:
    zeros = np.array([[0.0, 0.0, 64.0]])
    moved = buckets_uniform(RNG.normal(0, 1e-3, 64))
    series = drift.analyse([0, 1, 2], [0, 1, 2], [zeros, zeros, moved])
    assert series.drift[1] == 0.0 and np.isfinite(series.drift[2]) and series.drift[2] > 0


def test_nonfinite_sample_is_flagged_not_propagated() -> None:
    bad = buckets_uniform(VALUES)
    bad[3, 2] = np.nan
    series = drift.analyse([0, 1, 2, 3], [0, 1, 2, 3], [buckets_uniform(VALUES), bad, buckets_uniform(VALUES), buckets_uniform(VALUES + 0.01)])
    summary = summarise(series)
    assert summary.nonfinite
    assert np.isnan(series.rate[1]) and np.isnan(series.rate[2]) and np.isfinite(series.rate[3])


def test_w1_equals_the_reference_on_gaps_point_masses_and_overlaps() -> None:
    """The kernel (merged knots; every edge for overlapping buckets) agrees with W1 by its definition."""
    rng = np.random.default_rng(7)

    def random_histogram(overlapping: bool) -> np.ndarray:
        k = int(rng.integers(1, 40))
        if overlapping:  # no writer's layout, but a damaged file's: buckets cover each other
            edges = np.sort(rng.normal(0, 1, (k, 2)), axis=1)
        else:
            edges = np.sort(rng.normal(0, 1, 2 * k)).reshape(k, 2)  # gaps between buckets
        points = rng.random(k) < 0.2
        edges[points, 1] = edges[points, 0]  # and point masses
        return np.column_stack([edges, rng.integers(0, 5, k)])

    for overlapping in (False, True):
        pairs = [(random_histogram(overlapping), random_histogram(overlapping)) for _ in range(150)]
        h = batch([x for pair in pairs for x in pair])
        got = histogram.wasserstein_pairs(h, np.arange(0, 300, 2), np.arange(1, 300, 2))
        want = np.array([wasserstein(a, b) for a, b in pairs])
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12, equal_nan=True)
        assert np.isfinite(want).sum() > 100  # most pairs hold mass on both sides
    assert w1(np.array([[0.0, 2.0, 1.0], [1.0, 3.0, 1.0]]), np.array([[1.0, 3.0, 1.0], [2.0, 4.0, 1.0]])) == pytest.approx(1.0)


def empirical_w1(u: np.ndarray, u_weights: np.ndarray, v: np.ndarray, v_weights: np.ndarray) -> float:
    """W1 of two weighted point sets by its definition, as ``scipy.stats.wasserstein_distance`` computes it.

    The integral of |U - V| over the sorted union of the points, both CDFs
    being steps there (scipy is not a dependency; this is its algorithm).
    """
    points = np.sort(np.concatenate([u, v]))
    deltas = np.diff(points)
    u_cdf = np.cumsum(u_weights[np.argsort(u)])[np.searchsorted(np.sort(u), points[:-1], "right") - 1] / u_weights.sum()
    v_cdf = np.cumsum(v_weights[np.argsort(v)])[np.searchsorted(np.sort(v), points[:-1], "right") - 1] / v_weights.sum()
    return float(np.sum(np.abs(np.where(points[:-1] < u.min(), 0, u_cdf) - np.where(points[:-1] < v.min(), 0, v_cdf)) * deltas))


def test_w1_of_many_pairs_of_one_bucket_layout_at_once_equals_the_definition(monkeypatch) -> None:
    """The batched kernel, over many chunks of pairs sharing a bucket count, equals W1 pair by pair.

    A tag's TF2 histograms share their bucket count: the drift measures all
    its consecutive pairs (and all tags') at once. Here 30-bucket series
    with empty buckets inside (gaps), a constant tensor (one zero-width
    bucket) and random walks of the edges, in chunks of a few pairs so that
    chunk boundaries fall everywhere, against the reference pair by pair;
    and histograms of point masses (zero-width buckets, which every writer
    makes for a tensor of one value) against W1 of the points themselves.
    """
    monkeypatch.setattr(histogram, "_CHUNK_ELEMENTS", 7 * 2 * 32)  # 7 pairs a chunk
    rng = np.random.default_rng(11)
    raws = []
    for series in range(12):
        values = rng.normal(0, 0.1, 1000) * (series + 1)
        for step in range(25):
            values = values + rng.normal(0, 1e-3, values.size) * (step % 5)
            if series == 3:
                raws.append(buckets_uniform(np.full(1000, 0.25 + step // 2 % 2), 30))  # 0.25, 0.25, 1.25, 1.25, ...
                continue
            moved = np.where(rng.random(values.size) < 0.2, values * 3, values) if series % 4 == 1 else values
            raws.append(buckets_uniform(moved, 30))  # series 1, 5, 9: long tails, so empty buckets
    assert sum((r[:, 2] == 0).any() for r in raws) > 20  # gaps are exercised
    h = batch(raws)
    i = np.arange(len(raws) - 1)
    i = i[(i % 25) != 24]  # consecutive pairs within each series, as the drift pairs them
    got = histogram.wasserstein_pairs(h, i, i + 1)
    want = np.array([wasserstein(raws[a], raws[a + 1]) for a in i.tolist()])
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)
    constant = got[(i // 25) == 3]
    assert (constant[0::2] == 0).all() and (constant[1::2] == 1).all()  # exactly, for a tensor of one value

    points = [rng.normal(0, 1, int(rng.integers(1, 30))) for _ in range(40)]
    weights = [rng.integers(1, 9, len(p)).astype(float) for p in points]
    masses = [np.column_stack([p, p, w]) for p, w in zip(points, weights)]
    got = histogram.wasserstein_pairs(batch(masses), np.arange(0, 40, 2), np.arange(1, 40, 2))
    want = [empirical_w1(points[a], weights[a], points[a + 1], weights[a + 1]) for a in range(0, 40, 2)]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("idle_cores", [0, 2])
def test_many_series_at_once_equal_one_at_a_time(monkeypatch, idle_cores: int) -> None:
    """Grouping (any widths, lengths, damage, sample order) changes no figure, on one thread or several.

    Small groups force series of different widths and lengths to be split
    and padded in every way `summarise_all` does on a large log; they are
    measured on the calling thread alone (busy cores) or with helpers.
    """
    monkeypatch.setattr(incremental, "_cores", lambda: 2)
    monkeypatch.setattr(incremental, "_idle_cores", lambda: idle_cores)
    rng = np.random.default_rng(7)
    samples = [([], [], [])]  # an empty series sorts first into the first group
    for s in range(40):
        n = int(rng.integers(0, 12))
        k = int(rng.choice([1, 5, 30, 31, 200]))
        values = rng.normal(0, 0.1 * (s + 1), 500)
        hists = [buckets_uniform(values + 1e-3 * rng.normal() * t, k) for t in range(n)]
        if n > 3 and s % 5 == 0:
            hists[2] = hists[2].copy()
            hists[2][0, 2] = np.inf
        steps = rng.permutation(np.arange(n) * int(rng.integers(1, 50)))
        as_array = s % 2 == 0 and n > 0
        samples.append((steps, np.zeros(n), np.stack(hists) if as_array else hists))
    one_by_one = [summarise(drift.analyse(*sample)) for sample in samples]
    monkeypatch.setattr(incremental, "_GROUP_BUCKETS", 37 * 30)
    together = incremental.summarise_all(samples)
    assert len(together) == len(one_by_one)
    for a, b in zip(one_by_one, together):
        for field in a.__dataclass_fields__:
            x, y = getattr(a, field), getattr(b, field)
            if x is None or y is None:
                assert x is y, field
            else:
                assert np.allclose(x, y, rtol=1e-12, atol=0, equal_nan=True), field
