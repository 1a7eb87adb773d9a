"""Step-to-step drift of one parameter's histograms, and its summary.

A series is the kept samples of one (run, tag): steps and raw ``[k, 3]``
histograms. Drift between consecutive kept samples is their Wasserstein-1
distance divided by the parameter's scale (the larger RMS of the two), so
layers of different magnitude compare and a bias that starts at 0 still has
a scale once it moves. Dividing by the step gap gives a rate per step,
because TensorBoard keeps an uneven sample of steps.

What the number means, honestly: W1 between the distributions of a tensor
before and after an update is at most the mean absolute change of its
entries (pairing each entry with itself is one transport plan). So drift is
a lower bound on movement: entries that swap places leave it at 0, and
updates of random sign move it only at second order in the step size.

Pure numpy; no TensorBoard import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tb_stagnation import histogram

SPARKLINE_POINTS = 48


@dataclasses.dataclass(frozen=True)
class Series:
    """Drift of one (run, tag) over its kept samples, oldest first.

    Arrays have one entry per kept sample; pair quantities (``drift``,
    ``rate``, ``floor``) sit at the later sample of the pair and are NaN at
    the first sample and wherever a pair could not be measured (an empty or
    non-finite histogram on either side).
    """

    steps: np.ndarray  # int64
    wall_times: np.ndarray
    histograms: histogram.Batch  # cleaned; non-finite samples are empty here
    finite: np.ndarray  # bool: the raw sample held only finite numbers
    rms: np.ndarray
    drift: np.ndarray  # W1 / scale between the previous sample and this one
    rate: np.ndarray  # drift per step of the gap
    floor: np.ndarray  # per-step rate of one value moving one bucket
    same: np.ndarray  # bool: bucket-for-bucket equal to the previous sample

    @property
    def valid(self) -> np.ndarray:
        """Samples that hold a usable distribution (finite, non-empty)."""
        return self.finite & (self.histograms.total > 0)


@dataclasses.dataclass(frozen=True)
class Summary:
    """What the ranking needs of one series, independent of the other tags."""

    samples: int  # kept samples with a usable distribution
    first_step: int | None
    first_wall_time: float  # with first_step, places the tag in model order
    last_step: int | None
    score: float  # median drift rate per step; NaN when unmeasurable
    net: float  # drift between the first and the last usable sample
    floor: float  # median per-step resolution floor
    frozen: bool  # every usable sample identical (and at least 2 of them)
    nonfinite: bool  # some sample held NaN or Inf
    sparkline: tuple[float, ...]  # the rates, condensed for a small chart


def _order(steps: np.ndarray, wall_times: np.ndarray) -> np.ndarray:
    """Indices sorted by step, keeping only the newest sample of a repeated step.

    A restarted run writes steps again; the newest write is what the run
    now says about that step.
    """
    order = np.lexsort((wall_times, steps))
    s = steps[order]
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = s[:-1] != s[1:]
    return order[keep]


def analyse(
    steps: Sequence[int], wall_times: Sequence[float], raw: Sequence[np.ndarray]
) -> Series:
    """Drift of one series from its raw samples (any order, any bucket layouts)."""
    steps_arr = np.asarray(steps, dtype=np.int64)
    walls = np.asarray(wall_times, dtype=np.float64)
    order = _order(steps_arr, walls)
    stacked = histogram.stack([raw[i] for i in order])
    finite = histogram.finite(stacked)
    stacked[~finite] = 0.0  # an unusable sample holds no distribution
    hists = histogram.clean(stacked)
    _, rms = histogram.moments(hists)
    n = len(order)
    drift = np.full(n, np.nan)
    rate = np.full(n, np.nan)
    floor = np.full(n, np.nan)
    same = np.zeros(n, dtype=bool)
    if n >= 2:
        prev, cur = hists.take(np.arange(n - 1)), hists.take(np.arange(1, n))
        scale = np.fmax(rms[:-1], rms[1:])
        w1 = histogram.wasserstein(prev, cur)
        gap = np.diff(steps_arr[order]).astype(np.float64)
        pair_drift = _normalise(w1, scale)
        drift[1:] = pair_drift
        rate[1:] = pair_drift / gap
        quantum = histogram.mean_bucket_width(cur) / np.where(cur.total > 0, cur.total, np.nan)
        floor[1:] = _normalise(quantum, scale) / gap
        same[1:] = histogram.identical(prev, cur) & finite[:-1] & finite[1:]
    return Series(
        steps=steps_arr[order],
        wall_times=walls[order],
        histograms=hists,
        finite=finite,
        rms=rms,
        drift=drift,
        rate=rate,
        floor=floor,
        same=same,
    )


def _normalise(distance: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Distance relative to scale; 0 where both are 0 (an all-zero tensor that stays so)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = distance / scale
    out[(distance == 0) & (scale == 0)] = 0.0
    return out


def summarise(series: Series) -> Summary:
    """The per-tag figures the ranking uses.

    The score is the median over measured pairs, so a single outlier step
    (a learning-rate warm-up spike, a restart) does not decide the rank.
    """
    valid = series.valid
    idx = np.flatnonzero(valid)
    rates = series.rate[np.isfinite(series.rate)]
    floors = series.floor[np.isfinite(series.floor)]
    net = float("nan")
    if len(idx) >= 2:
        first, last = series.histograms.take(idx[[0]]), series.histograms.take(idx[[-1]])
        scale = np.fmax(series.rms[idx[0]], series.rms[idx[-1]])
        net = float(_normalise(histogram.wasserstein(first, last), np.array([scale]))[0])
    pairs_valid = valid[1:] & valid[:-1]
    return Summary(
        samples=int(len(idx)),
        first_step=int(series.steps[idx[0]]) if len(idx) else None,
        first_wall_time=float(series.wall_times[idx[0]]) if len(idx) else float("inf"),
        last_step=int(series.steps[idx[-1]]) if len(idx) else None,
        score=float(np.median(rates)) if len(rates) else float("nan"),
        net=net,
        floor=float(np.median(floors)) if len(floors) else float("nan"),
        frozen=bool(len(idx) >= 2 and pairs_valid.all() and series.same[1:].all()),
        nonfinite=bool((~series.finite).any()),
        sparkline=sparkline(series.rate),
    )


def sparkline(values: np.ndarray, points: int = SPARKLINE_POINTS) -> tuple[float, ...]:
    """At most ``points`` means of consecutive, near-equal chunks of the finite values."""
    finite = values[np.isfinite(values)]
    n = len(finite)
    if n <= points:
        return tuple(finite.tolist())
    starts = (np.arange(points) * n) // points
    sums = np.add.reduceat(finite, starts)
    return tuple((sums / np.diff(np.append(starts, n))).tolist())


def stagnant_since(series: Series, threshold: float) -> int | None:
    """First step from which every later measured rate stays below ``threshold``."""
    measured = np.flatnonzero(np.isfinite(series.rate))
    if len(measured) == 0 or not np.isfinite(threshold):
        return None
    above = measured[series.rate[measured] >= threshold]
    if len(above) == 0:
        return int(series.steps[measured[0] - 1])
    if not (measured > above[-1]).any():
        return None
    return int(series.steps[above[-1]])
