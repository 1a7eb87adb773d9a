"""Reference implementations the tests check the measures against, and the one constructor they share.

Each oracle computes a figure the plain way, by its definition, where
:mod:`tb_stagnation.measure` computes it fast: none is used by the package,
so they live here rather than ship as code no user runs.

- :func:`wasserstein`: W1 of two raw histograms by integrating
  ``|F_a - F_b|`` between every pair of consecutive edges, bucket by bucket,
  against ``histogram.wasserstein_pairs`` (merged knot polylines, chunked,
  with an O(K^2) path for overlapping buckets).
- :func:`stagnant_since`: a scan of the whole rate series, against
  ``summaries.Tail.since`` (which answers from the right-to-left maxima).

:func:`batch` builds a cleaned ``histogram.Batch`` from literal ``[k, 3]``
arrays, as tests need and the pipeline never does (it prepares its samples
in ``drift.prepare``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tb_stagnation.measure import histogram


def batch(histograms: Sequence[np.ndarray]) -> histogram.Batch:
    """Finite raw ``[k, 3]`` histograms as one cleaned :class:`histogram.Batch`."""
    return histogram.clean(histogram.stack(histograms))


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """W1 between two finite raw ``[k, 3]`` histograms (NaN if either holds no mass).

    The model the package uses, stated directly: a bucket's mass is uniform
    over ``[min(edges), max(edges)]``, a point mass where that is a single
    point; rows without a positive count carry nothing. Between consecutive
    edges of either histogram both CDFs are linear, so ``|F_a - F_b|``
    integrates exactly from its values just inside each piece.
    """
    pa, pb = _buckets(a), _buckets(b)
    if pa is None or pb is None:
        return float("nan")
    knots = np.unique(np.concatenate([pa[0], pa[1], pb[0], pb[1]]))
    d0 = _cdf(*pa, knots[:-1], right=True) - _cdf(*pb, knots[:-1], right=True)  # just right of each knot
    d1 = _cdf(*pa, knots[1:], right=False) - _cdf(*pb, knots[1:], right=False)  # just left of the next
    width = np.diff(knots)
    a0, a1 = np.abs(d0), np.abs(d1)
    crossing = d0 * d1 < 0
    area = np.where(
        crossing,
        width * (d0 * d0 + d1 * d1) / (2 * np.where(crossing, a0 + a1, 1.0)),
        width * (a0 + a1) / 2,
    )
    return float(area.sum())


def _buckets(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``(lo, hi, probability)`` of the buckets holding mass; None if none does."""
    raw = np.asarray(raw, dtype=np.float64).reshape(-1, 3)
    raw = raw[raw[:, 2] > 0]
    if not len(raw):
        return None
    lo, hi = np.minimum(raw[:, 0], raw[:, 1]), np.maximum(raw[:, 0], raw[:, 1])
    return lo, hi, raw[:, 2] / raw[:, 2].sum()


def _cdf(lo: np.ndarray, hi: np.ndarray, p: np.ndarray, x: np.ndarray, right: bool) -> np.ndarray:
    """The CDF's right (``F(x+)``) or left (``F(x-)``) limit at each ``x``."""
    wide = hi > lo
    inside = np.clip((x[:, None] - lo) / np.where(wide, hi - lo, 1.0), 0.0, 1.0)
    jumped = x[:, None] >= lo if right else x[:, None] > lo
    return (np.where(wide, inside, jumped) * p).sum(axis=1)


def stagnant_since(steps: np.ndarray, rates: np.ndarray, threshold: float) -> int | None:
    """First step from which every later measured rate (finite entry of ``rates``) stays below ``threshold``.

    Each rate sits at the later step of its interval, so a series whose
    every rate is below starts from the step before its first measured rate.
    """
    measured = np.flatnonzero(np.isfinite(rates))
    if len(measured) == 0 or not np.isfinite(threshold):
        return None
    above = measured[rates[measured] >= threshold]
    if len(above) == 0:
        return int(steps[measured[0] - 1])
    if not (measured > above[-1]).any():
        return None
    return int(steps[above[-1]])
