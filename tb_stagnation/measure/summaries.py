"""A series condensed to what the ranking needs: :class:`Summary`, and the reductions of any rate series.

:func:`summarise` condenses the per-sample figures of one histogram series
(a whole :class:`~tb_stagnation.measure.drift.Series`, or the
:class:`~tb_stagnation.measure.incremental.Kept` figures a reload carries
over) into a :class:`Summary`: a few numbers and short tuples, whatever the
series' length, so the ranking and the caches hold summaries, not samples.
:meth:`Tail.of` and :func:`sparkline` reduce a rate series of either source
(histogram drift here, exact update ratios in the ranking) the same way.

Pure numpy; no TensorBoard import.
"""

from __future__ import annotations

import dataclasses
from typing import Protocol

import numpy as np

from tb_stagnation.measure.zeros import ZeroShares

SPARKLINE_POINTS = 48


@dataclasses.dataclass(frozen=True)
class Tail:
    """Enough of a rate series to say, for any threshold, since when it stayed below it.

    ``peaks`` are the right-to-left maxima of the measured rates, latest
    first: ``(step, rate, measured rates after it)``. The last rate at or
    above a threshold is the first peak at or above it, so :meth:`since`
    answers, from a few numbers (about the logarithm of the series' length
    for noisy rates), what a scan of the whole series would (the scan is
    ``tests/oracles.py``'s ``stagnant_since``).
    """

    start: int | None = None  # the step the first measured rate starts from
    intervals: int = 0  # measured rates
    peaks: tuple[tuple[int, float, int], ...] = ()

    @classmethod
    def of(cls, steps: np.ndarray, rates: np.ndarray) -> Tail:
        """The tail of ``rates`` (NaN: not measured), each at the later step of its interval."""
        measured = np.flatnonzero(np.isfinite(rates))
        if len(measured) == 0:
            return cls()
        values = rates[measured]
        # Right-to-left maxima: a rate above every later one.
        later_max = np.maximum.accumulate(values[::-1])[::-1]
        is_peak = np.ones(len(values), dtype=bool)
        is_peak[:-1] = values[:-1] > later_max[1:]
        idx = np.flatnonzero(is_peak)[::-1]
        peaks = tuple(
            (int(steps[measured[k]]), float(values[k]), int(len(values) - 1 - k)) for k in idx.tolist()
        )
        first = measured[0]
        return cls(start=int(steps[first - 1] if first > 0 else steps[first]), intervals=int(len(values)), peaks=peaks)

    def since(self, threshold: float) -> tuple[int | None, int]:
        """``(step, rates since)``: the first step from which every later rate stays below ``threshold``.

        ``(None, 0)`` when the last measured rate reaches it, nothing was
        measured or the threshold is not finite; the start step and every
        rate when no rate ever reached it.
        """
        if not self.intervals or not np.isfinite(threshold):
            return None, 0
        for step, rate, after in self.peaks:
            if rate >= threshold:
                return (step, after) if after else (None, 0)
        return self.start, self.intervals


def sparkline(values: np.ndarray, points: int = SPARKLINE_POINTS) -> tuple[float, ...]:
    """At most ``points`` means of consecutive, near-equal chunks of the finite values."""
    finite = values[np.isfinite(values)]
    n = len(finite)
    if n <= points:
        return tuple(finite.tolist())
    starts = (np.arange(points) * n) // points
    sums = np.add.reduceat(finite, starts)
    return tuple((sums / np.diff(np.append(starts, n))).tolist())


@dataclasses.dataclass(frozen=True)
class Summary:
    """What the ranking needs of one histogram series, independent of the other tags."""

    samples: int  # kept samples with a usable distribution
    first_step: int | None
    first_wall_time: float  # with first_step, places the tag in model order
    last_step: int | None
    score: float  # median drift rate per step; NaN when unmeasurable
    net: float  # drift between the first and the last usable sample
    floor: float  # median per-step resolution floor (drift's module docstring)
    frozen: bool  # every usable sample identical (and at least 2 of them)
    nonfinite: bool  # some sample held NaN or Inf
    sparkline: tuple[float, ...]  # the rates, condensed for a small chart
    first_nonfinite_step: int | None = None  # the first kept sample holding NaN or Inf
    # The rates' Tail, field by field (plain numbers compare and pickle like the other figures).
    tail_start: int | None = None
    tail_intervals: int = 0
    tail_peaks: tuple[tuple[int, float, int], ...] = ()
    zeros: ZeroShares | None = None  # the samples' shares of exact zeros, where the buckets tell (measure.zeros)

    @property
    def tail(self) -> Tail:
        """Since when the rates stay below a threshold, for any threshold."""
        return Tail(self.tail_start, self.tail_intervals, self.tail_peaks)


class Figures(Protocol):
    """Per-sample figures of one series, in step order: what a :class:`Summary` is made from.

    Both a :class:`~tb_stagnation.measure.drift.Series` and a
    :class:`~tb_stagnation.measure.incremental.Kept` have them, so a
    summary from a whole analysis and one from a reload are made by one
    function and cannot differ.
    """

    @property
    def steps(self) -> np.ndarray: ...
    @property
    def wall_times(self) -> np.ndarray: ...
    @property
    def finite(self) -> np.ndarray: ...  # the raw sample held only finite numbers
    @property
    def valid(self) -> np.ndarray: ...  # finite and non-empty
    @property
    def rate(self) -> np.ndarray: ...  # drift per step of the pair a sample closes; NaN unmeasured
    @property
    def floor(self) -> np.ndarray: ...
    @property
    def same(self) -> np.ndarray: ...  # bucket-for-bucket equal to the previous sample
    @property
    def zero_share(self) -> np.ndarray: ...  # share of exact zeros per sample, NaN where unknown
    @property
    def net(self) -> float: ...


def summarise(figures: Figures) -> Summary:
    """The per-tag figures the ranking uses.

    The score is the median over measured pairs, so a single outlier step
    (a learning-rate warm-up spike, a restart) does not decide the rank.
    """
    steps, valid, finite, rate, same = figures.steps, figures.valid, figures.finite, figures.rate, figures.same
    idx = np.flatnonzero(valid)
    floor = figures.floor
    pairs_valid = valid[1:] & valid[:-1]
    t = Tail.of(steps, rate)
    return Summary(
        samples=int(len(idx)),
        first_step=int(steps[idx[0]]) if len(idx) else None,
        first_wall_time=float(figures.wall_times[idx[0]]) if len(idx) else float("inf"),
        last_step=int(steps[idx[-1]]) if len(idx) else None,
        score=_median(rate[np.isfinite(rate)]),
        net=figures.net,
        floor=_median(floor[np.isfinite(floor)]),
        frozen=bool(len(idx) >= 2 and pairs_valid.all() and same[1:].all()),
        nonfinite=bool((~finite).any()),
        sparkline=sparkline(rate),
        first_nonfinite_step=int(steps[~finite][0]) if (~finite).any() else None,
        tail_start=t.start,
        tail_intervals=t.intervals,
        tail_peaks=t.peaks,
        zeros=ZeroShares.of(steps, np.where(valid, figures.zero_share, np.nan)),
    )


def _median(values: np.ndarray) -> float:
    """``np.median`` of finite values (NaN for none), by one sort: np.median's checks cost more than it."""
    n = len(values)
    if not n:
        return float("nan")
    ordered = np.sort(values)
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)
