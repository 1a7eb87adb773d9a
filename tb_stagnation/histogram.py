"""Bucketed histograms as distributions: cleaning, moments, quantiles, Wasserstein-1.

Every loader hands a histogram over as a ``[k, 3]`` array of
``(left_edge, right_edge, count)`` rows, with quirks per writer and loader:
float32 or float64, empty outer buckets whose left edge exceeds the right one,
zero-width buckets for an all-equal tensor, zero rows for empty input. This
module turns them into one padded batch representation and computes on it
with the single model used throughout: mass is uniform within a bucket of
positive width and a point mass in a zero-width bucket. Under that model the
CDF is piecewise linear between bucket edges (with jumps at point masses), so
histograms with different bucket layouts compare exactly.

Pure numpy; no TensorBoard import, so it can be tested and reused on its own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

# Basis points of the bands drawn by TensorBoard's Distributions view:
# min, -2σ, -1σ, -0.5σ, median, +0.5σ, +1σ, +2σ, max for a normal distribution.
DISTRIBUTION_BPS = (0, 668, 1587, 3085, 5000, 6915, 8413, 9332, 10000)

# Elements per temporary (pairs x knots x buckets) array in `wasserstein`;
# bounds memory whatever the bucket count.
_CHUNK_ELEMENTS = 1 << 22


@dataclasses.dataclass(frozen=True)
class Batch:
    """``n`` histograms padded to a common bucket count ``K``.

    Padding rows have zero count and so carry no mass. ``count`` is the raw
    count per bucket; ``total`` its sum per histogram.
    """

    left: np.ndarray  # (n, K) float64
    right: np.ndarray  # (n, K) float64
    count: np.ndarray  # (n, K) float64

    @property
    def total(self) -> np.ndarray:
        return self.count.sum(axis=1)

    def __len__(self) -> int:
        return self.left.shape[0]

    def take(self, index: np.ndarray) -> Batch:
        """The histograms at ``index`` (an integer array), as a new batch."""
        return Batch(self.left[index], self.right[index], self.count[index])


def stack(histograms: Sequence[np.ndarray]) -> np.ndarray:
    """Raw ``[k, 3]`` histograms as one ``(n, K, 3)`` float64 array, zero rows padding."""
    n = len(histograms)
    k = max((len(h) for h in histograms), default=0)
    raw = np.zeros((n, max(k, 1), 3))
    for i, h in enumerate(histograms):
        raw[i, : len(h)] = np.asarray(h, dtype=np.float64).reshape(-1, 3)
    return raw


def finite(raw: np.ndarray) -> np.ndarray:
    """Per histogram of a stacked array: whether it holds only finite numbers."""
    return np.isfinite(raw).all(axis=(1, 2))


def clean(raw: np.ndarray) -> Batch:
    """Stacked raw histograms (see :func:`stack`) as a :class:`Batch`.

    Keeps the rows that carry mass (count > 0: the Rust data server's empty
    outer buckets, whose left edge exceeds the right one, go too), orders
    them by left edge and makes ``left <= right``. Padding rows sit at the
    histogram's right end with zero count, so every row's edges stay in
    order. Callers zero out the histograms that are not :func:`finite`.
    """
    mass = raw[:, :, 2] > 0
    lo = np.minimum(raw[:, :, 0], raw[:, :, 1])
    hi = np.maximum(raw[:, :, 0], raw[:, :, 1])
    order = np.argsort(np.where(mass, lo, np.inf), axis=1, kind="stable")  # massless rows last
    kept = mass.sum(axis=1)
    width = max(int(kept.max(initial=0)), 1)
    order = order[:, :width]
    real = np.arange(width)[None, :] < kept[:, None]
    left = np.take_along_axis(lo, order, axis=1)
    right = np.take_along_axis(hi, order, axis=1)
    count = np.take_along_axis(raw[:, :, 2], order, axis=1)
    end = np.take_along_axis(right, np.maximum(kept - 1, 0)[:, None], axis=1)
    end[kept == 0] = 0.0
    return Batch(np.where(real, left, end), np.where(real, right, end), np.where(real, count, 0.0))


def batch(histograms: Sequence[np.ndarray]) -> Batch:
    """Finite raw ``[k, 3]`` histograms as one cleaned :class:`Batch`."""
    return clean(stack(histograms))


def _probabilities(b: Batch) -> np.ndarray:
    """Bucket masses normalised per histogram; all-zero rows stay zero."""
    total = b.total[:, None]
    return np.divide(b.count, total, out=np.zeros_like(b.count), where=total > 0)


def moments(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Mean and root-mean-square of each histogram (NaN where it is empty).

    Under the uniform-in-bucket model a bucket [l, r] contributes
    E[x] = (l + r) / 2 and E[x^2] = (l^2 + l r + r^2) / 3, exact for point
    masses too. The RMS is the scale drift is normalised by: unlike the
    standard deviation it is never 0 for a parameter that is not all zeros,
    so a batch-norm gamma at 1 or a bias at a constant still has a scale.
    """
    p = _probabilities(b)
    empty = b.total <= 0
    l, r = b.left, b.right
    mean = (p * (l + r) / 2).sum(axis=1)
    mean_sq = (p * (l * l + l * r + r * r) / 3).sum(axis=1)
    rms = np.sqrt(np.maximum(mean_sq, 0.0))
    mean[empty] = np.nan
    rms[empty] = np.nan
    return mean, rms


def mean_bucket_width(b: Batch) -> np.ndarray:
    """Mass-weighted mean bucket width: how coarsely a histogram sees its values."""
    return (_probabilities(b) * (b.right - b.left)).sum(axis=1)


def quantiles(b: Batch, bps: Sequence[int] = DISTRIBUTION_BPS) -> np.ndarray:
    """Values at the given basis points, shape ``(n, len(bps))``; NaN where empty.

    Interpolates uniformly inside the bucket holding the quantile, as the
    Distributions view does, so the bands drawn from these match it.
    """
    q = np.asarray(bps, dtype=np.float64) / 10000.0
    cum = np.cumsum(b.count, axis=1)  # (n, K)
    target = q[None, :] * b.total[:, None]  # (n, Q)
    # First bucket whose cumulative count reaches the target; padding rows
    # have zero count and sort last because the cumulative count plateaus.
    reached = cum[:, None, :] >= target[:, :, None]  # (n, Q, K)
    has_mass = (b.count > 0)[:, None, :]
    j = np.argmax(reached & has_mass, axis=2)  # (n, Q)
    rows = np.arange(len(b))[:, None]
    c = b.count[rows, j]
    before = cum[rows, j] - c
    frac = np.divide(target - before, c, out=np.zeros_like(target), where=c > 0)
    left, right = b.left[rows, j], b.right[rows, j]
    values = left + np.clip(frac, 0.0, 1.0) * (right - left)
    values[b.total <= 0] = np.nan
    return values


def _cdf_at(b: Batch, p: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Left and right limits of each histogram's CDF at points ``x`` (n, M).

    Buckets of positive width contribute continuously; point masses jump, so
    the right limit counts a point mass at x and the left limit does not.
    """
    width = b.right - b.left
    xs = x[:, :, None]
    lo = b.left[:, None, :]
    wide = (width > 0)[:, None, :]
    safe_width = np.where(width > 0, width, 1.0)[:, None, :]
    frac = np.where(wide, np.clip((xs - lo) / safe_width, 0.0, 1.0), 0.0)
    pm = p[:, None, :]
    continuous = (frac * pm).sum(axis=2)
    point = np.where(wide, 0.0, pm)
    at_or_after = (point * (xs >= lo)).sum(axis=2)
    after = (point * (xs > lo)).sum(axis=2)
    return continuous + after, continuous + at_or_after


def wasserstein(a: Batch, b: Batch) -> np.ndarray:
    """Wasserstein-1 distance between ``a[i]`` and ``b[i]`` for every ``i``.

    W1 is the integral of |F_a - F_b|. Between consecutive edges of either
    histogram both CDFs are linear, so each piece integrates in closed form:
    for a difference going linearly from d0 to d1 over a width h, the
    integral of its absolute value is h (|d0| + |d1|) / 2 without a sign
    change and h (d0^2 + d1^2) / (2 (|d0| + |d1|)) with one. The result is
    exact under the uniform-in-bucket model, for any two bucket layouts.
    Empty histograms give NaN.

    Histograms whose buckets do not overlap (every writer's) take a merge of
    the two edge lists, O(K log K); overlapping buckets, which no writer
    produces, take the general evaluation of every bucket at every edge,
    O(K^2), in bounded chunks.
    """
    xa, ya = _knots(a)
    xb, yb = _knots(b)
    ordered = (np.diff(xa, axis=1) >= 0).all(axis=1) & (np.diff(xb, axis=1) >= 0).all(axis=1)
    out = np.empty(len(a))
    if ordered.any():
        out[ordered] = _wasserstein_merged(xa[ordered], ya[ordered], xb[ordered], yb[ordered])
    rest = np.flatnonzero(~ordered)
    k = a.left.shape[1] + b.left.shape[1]
    step = max(1, _CHUNK_ELEMENTS // max(1, 2 * k * k))
    for start in range(0, len(rest), step):
        idx = rest[start : start + step]
        out[idx] = _wasserstein_general(a.take(idx), b.take(idx))
    out[(a.total <= 0) | (b.total <= 0)] = np.nan
    return out


def _knots(b: Batch) -> tuple[np.ndarray, np.ndarray]:
    """Each CDF as a polyline: x = l0, r0, l1, r1, ...; y = the CDF there.

    Gaps between buckets come out flat and point masses vertical, so linear
    interpolation between consecutive knots is the CDF wherever it is
    continuous.
    """
    p = _probabilities(b)
    cum = np.cumsum(p, axis=1)
    x = np.stack([b.left, b.right], axis=2).reshape(len(b), -1)
    y = np.stack([cum - p, cum], axis=2).reshape(len(b), -1)
    return x, y


def _interpolate(
    x: np.ndarray, y: np.ndarray, below: np.ndarray, qs: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, ...]:
    """Polylines (x, y) at points ``qs``, given the index of the last knot at or before them.

    Every point lies strictly inside an interval between consecutive knots
    of the merged edge lists, so the segment holding it is known without a
    search, and the points of one interval share it.
    """
    last = x.shape[1] - 1
    i0 = np.clip(below, 0, last)
    i1 = np.clip(below + 1, 0, last)
    x0, x1 = np.take_along_axis(x, i0, 1), np.take_along_axis(x, i1, 1)
    y0, y1 = np.take_along_axis(y, i0, 1), np.take_along_axis(y, i1, 1)
    width = x1 - x0
    before = below < 0
    out = []
    for q in qs:
        t = np.divide(q - x0, width, out=np.zeros_like(q), where=width > 0)
        f = y0 + np.clip(t, 0.0, 1.0) * (y1 - y0)
        f[before] = 0.0
        out.append(f)
    return tuple(out)


def _wasserstein_merged(xa, ya, xb, yb) -> np.ndarray:
    merged = np.concatenate([xa, xb], axis=1)
    order = np.argsort(merged, axis=1, kind="stable")
    z = np.take_along_axis(merged, order, axis=1)
    from_a = order < xa.shape[1]
    below_a = np.cumsum(from_a, axis=1)[:, :-1] - 1
    below_b = np.cumsum(~from_a, axis=1)[:, :-1] - 1
    lo, h = z[:, :-1], np.diff(z, axis=1)
    # Both CDFs are linear inside each interval: two interior points fix the
    # difference, and extrapolating it to the ends avoids the jumps there.
    q = (lo + h / 3, lo + 2 * h / 3)
    fa1, fa2 = _interpolate(xa, ya, below_a, q)
    fb1, fb2 = _interpolate(xb, yb, below_b, q)
    d1, d2 = fa1 - fb1, fa2 - fb2
    return (h * _abs_integral(2 * d1 - d2, 2 * d2 - d1)).sum(axis=1)


def _abs_integral(d0: np.ndarray, d1: np.ndarray) -> np.ndarray:
    """Mean of |d| over an interval where d goes linearly from d0 to d1."""
    abs0, abs1 = np.abs(d0), np.abs(d1)
    same_sign = d0 * d1 >= 0
    denom = np.where(same_sign, 1.0, abs0 + abs1)
    crossing = np.divide(d0 * d0 + d1 * d1, 2 * denom, out=np.zeros_like(d0), where=denom > 0)
    return np.where(same_sign, (abs0 + abs1) / 2, crossing)


def _wasserstein_general(a: Batch, b: Batch) -> np.ndarray:
    knots = np.sort(np.concatenate([a.left, a.right, b.left, b.right], axis=1), axis=1)
    pa, pb = _probabilities(a), _probabilities(b)
    fa_left, fa_right = _cdf_at(a, pa, knots)
    fb_left, fb_right = _cdf_at(b, pb, knots)
    d0 = (fa_right - fb_right)[:, :-1]  # just right of each knot
    d1 = (fa_left - fb_left)[:, 1:]  # just left of the next knot
    return (np.diff(knots, axis=1) * _abs_integral(d0, d1)).sum(axis=1)


def identical(a: Batch, b: Batch) -> np.ndarray:
    """Whether ``a[i]`` and ``b[i]`` are the same histogram, bucket for bucket."""
    return (
        (a.left == b.left).all(axis=1)
        & (a.right == b.right).all(axis=1)
        & (a.count == b.count).all(axis=1)
    )
