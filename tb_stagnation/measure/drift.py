"""Step-to-step drift of one parameter's histograms: a series' pairs measured.

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

The resolution floor (``Series.floor``, ``summaries.Summary.floor``) is the drift
rate of the finest change a sample's histogram can show, normalised and
divided by the gap like the drift itself. Every writer records a tensor's
exact minimum and maximum as the outer edges, so W1 registers any movement
of the extremes; the smallest is one unit in the last place of the
precision the edges are stored in (float32 where both are float32 numbers,
else float64), worth half the outer bucket's mass times that ulp in W1
(:func:`histogram.rounding_floor`): the drift between two samples identical
but for rounding. Interior values show only by crossing a bucket edge (one
value crossing one bucket: mass-weighted mean bucket width / number of
values), which the floor takes instead should it be finer. The floor used
to be that crossing quantum alone; but that is far coarser than what W1 on
the moving outer edges resolves (a 16-value bias trained at 1e-8 x the
learning rate measured thousands of times below the stagnant threshold yet
sat "below the floor"), so verdicts called resolved drift unresolved.
:func:`ranking._status` calls a tag ``unresolved`` only where this floor
is at or above the stagnant threshold (the samples could not have shown a
change at its rate) and the measured drift is within
``vocabulary.UNRESOLVED_MARGIN`` (100x) of it; drift farther below is
``stagnant``. With the floor from rounding, that takes a threshold near
float precision: in practice histogram-scored tags are ``stagnant`` or
``moving`` on their measured drift.

Both :func:`analyse` (a whole series, for the detail view) and
:mod:`tb_stagnation.measure.incremental` (only the pairs a reload added)
measure pairs with the helpers here (:func:`step_order`, :func:`prepare`,
:func:`pair_figures`, :func:`gather`), so a pair measured alone equals the
same pair measured in a whole series. :mod:`~tb_stagnation.measure.summaries`
condenses a series into the figures the ranking uses.

Pure numpy; no TensorBoard import.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from tb_stagnation.measure import histogram, zeros
from tb_stagnation.samples import Sample


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
    floor: np.ndarray  # per-step drift of the finest change the later sample can show (module docstring)
    same: np.ndarray  # bool: bucket-for-bucket equal to the previous sample
    zero_share: np.ndarray  # share of exact zeros per sample, NaN where the buckets cannot tell (zeros.shares)
    net: float  # W1 / scale between the first and the last usable sample

    @property
    def valid(self) -> np.ndarray:
        """Samples that hold a usable distribution (finite, non-empty)."""
        return self.finite & (self.histograms.total > 0)

    @property
    def nbytes(self) -> int:
        """What its arrays hold, for cache budgets (its histograms are most of it)."""
        h = self.histograms
        arrays = (self.steps, self.wall_times, h.left, h.right, h.count, self.finite, self.rms,
                  self.drift, self.rate, self.floor, self.same, self.zero_share)
        return sum(a.nbytes for a in arrays)


def analyse(steps: Sequence[int], wall_times: Sequence[float], raw: Sequence[np.ndarray]) -> Series:
    """Drift of one series from its raw samples (any order, any bucket layouts)."""
    return analyse_many([(steps, wall_times, raw)])[0]


def analyse_many(samples: Sequence[Sample]) -> list[Series]:
    """Drift of many series in one vectorised pass over all their samples.

    The samples of every series are stacked into one batch; pairs are
    consecutive samples of the same series, plus each series' first and
    last usable sample for the net drift.
    """
    orders, steps, walls = [], [], []
    for s, w, _ in samples:
        s, w = np.asarray(s, dtype=np.int64), np.asarray(w, dtype=np.float64)
        order = step_order(s, w)
        orders.append(order)
        steps.append(s[order])
        walls.append(w[order])
    sizes = np.array([len(o) for o in orders], dtype=np.int64)
    ends = np.cumsum(sizes)
    starts = ends - sizes
    hists, finite, rms, quantum = prepare(
        histogram.concatenate([gather(raw, order) for (_, _, raw), order in zip(samples, orders)])
    )
    step = np.concatenate(steps) if steps else np.zeros(0, dtype=np.int64)

    # Consecutive pairs within a series, then (first, last) usable per series.
    follows = np.ones(max(len(step) - 1, 0), dtype=bool)
    follows[ends[(ends > 0) & (ends < len(step))] - 1] = False
    i = np.flatnonzero(follows)
    with_net, firsts, lasts = _first_last(finite & (hists.total > 0), starts, ends)
    w1 = histogram.wasserstein_pairs(hists, np.concatenate([i, firsts]), np.concatenate([i + 1, lasts]))
    drift = np.full(len(step), np.nan)
    rate = np.full(len(step), np.nan)
    floor = np.full(len(step), np.nan)
    same = np.zeros(len(step), dtype=bool)
    drift[i + 1], rate[i + 1], floor[i + 1], same[i + 1] = pair_figures(
        hists, finite, rms, quantum, step, i, i + 1, w1[: len(i)]
    )
    net = np.full(len(samples), np.nan)
    net[with_net] = _normalise(w1[len(i) :], np.fmax(rms[firsts], rms[lasts]))
    zero_share = zeros.shares(hists)
    return [
        Series(
            steps=steps[k],
            wall_times=walls[k],
            histograms=hists.take(slice(a, b)),
            finite=finite[a:b],
            rms=rms[a:b],
            drift=drift[a:b],
            rate=rate[a:b],
            floor=floor[a:b],
            same=same[a:b],
            zero_share=zero_share[a:b],
            net=float(net[k]),
        )
        for k, (a, b) in enumerate(zip(starts.tolist(), ends.tolist()))
    ]


def step_order(steps: np.ndarray, wall_times: np.ndarray) -> np.ndarray:
    """Indices sorted by step, keeping only the newest sample of a repeated step.

    A restarted run writes steps again; the newest write is what the run
    now says about that step.
    """
    order = np.lexsort((wall_times, steps))
    s = steps[order]
    keep = np.ones(len(order), dtype=bool)
    keep[:-1] = s[:-1] != s[1:]
    return order[keep]


def prepare(stacked: np.ndarray) -> tuple[histogram.Batch, np.ndarray, np.ndarray, np.ndarray]:
    """Stacked raw histograms as (cleaned batch, finite, RMS, resolution quantum) per sample.

    A non-finite sample holds no distribution: it is emptied (in place)
    before cleaning. The quantum is the finest change a sample can show (see
    the module docstring): its extremes moving by one ulp, or, should that
    ever be coarser, one value crossing one bucket.
    """
    finite = histogram.finite(stacked)
    stacked[~finite] = 0.0
    hists = histogram.clean(stacked)
    _, rms = histogram.moments(hists)
    crossing = histogram.mean_bucket_width(hists) / np.where(hists.total > 0, hists.total, np.nan)
    return hists, finite, rms, np.fmin(histogram.rounding_floor(hists), crossing)


def pair_figures(hists, finite, rms, quantum, step, i, j, w1) -> tuple[np.ndarray, ...]:
    """Drift, rate, floor and sameness of the pairs ``(i[k], j[k])`` of a batch, given their W1.

    The one formula both :func:`analyse_many` and :func:`incremental.update_all` use,
    so a pair measured alone equals the same pair measured in a whole series.
    """
    scale = np.fmax(rms[i], rms[j])
    drift = _normalise(w1, scale)
    with np.errstate(over="ignore"):
        gap = (step[j] - step[i]).astype(np.float64)  # exact, unless steps 2^63 apart wrap it below 0
    gap = np.where(gap > 0, gap, step[j].astype(np.float64) - step[i].astype(np.float64))
    same = histogram.identical(hists.take(i), hists.take(j)) & finite[i] & finite[j]
    return drift, drift / gap, _normalise(quantum[j], scale) / gap, same


def gather(raw, order: np.ndarray) -> np.ndarray:
    """One series' raw samples in ``order`` as an ``(n, k, 3)`` array (maybe ``raw`` itself: callers copy)."""
    if isinstance(raw, np.ndarray) and raw.ndim == 3:
        if len(order) == len(raw) and (order == np.arange(len(raw))).all():  # read in order: no gather
            return raw
        return raw[order]
    return histogram.stack([raw[j] for j in order])


def _first_last(valid: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, ...]:
    """Series with two or more usable samples, and the indices of their first and last."""
    usable = np.flatnonzero(valid)
    lo, hi = np.searchsorted(usable, starts), np.searchsorted(usable, ends)
    enough = np.flatnonzero(hi - lo >= 2)
    return enough, usable[lo[enough]], usable[hi[enough] - 1]


def _normalise(distance: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Distance relative to scale; 0 where both are 0 (an all-zero tensor that stays so)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        out = distance / scale
    out[(distance == 0) & (scale == 0)] = 0.0
    return out
