"""Incremental drift: each series' figures carried over between reloads, only new pairs measured.

TensorBoard reloads a growing log every few seconds, and its loaders keep a
reservoir sample of each tag, so between two reloads a series gains samples
at its end and loses some in the middle. :func:`update_all` keeps each
series' per-sample figures without its histograms (:class:`Kept`), plans
which samples to read again (:func:`_plan`: new samples, the ends of pairs a
dropped sample opened, the first and last usable one for the net drift) and
measures only those pairs, with :mod:`~tb_stagnation.measure.drift`'s one
pair formula. :func:`summarise_all` is the same from nothing kept: the CLI
and the plugin share one engine.

Pure numpy; no TensorBoard import.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import os
from collections.abc import Sequence

import numpy as np

from tb_stagnation.measure import drift, histogram, summaries, zeros
from tb_stagnation.measure.summaries import Summary
from tb_stagnation.samples import Sample

# Buckets (samples x bucket count) analysed together in `update_all`:
# enough to amortise numpy's per-call cost over many small series, few
# enough to bound memory whatever the bucket count.
_GROUP_BUCKETS = 1 << 18
# Series share a group only if their bucket counts are within this factor,
# so padding to the widest wastes little.
_GROUP_WIDTH_RATIO = 1.25
# Buckets per core below which a batch is not split between cores: about 2,200
# TF2 histograms, ~15 ms of work. Below it, a helper thread cost more than the
# second core gave: bench/run.py's small (30,000 buckets) ranked cold in a
# median 45.5 ms split in two against 34.7 ms not (read 20.2 ms; load 5.5 on 2 cores).
_LEAST_SPLIT_BUCKETS = 1 << 16


@dataclasses.dataclass(frozen=True)
class Kept:
    """What incremental analysis keeps of one series between reloads: no histograms.

    Per kept sample (by step, as :func:`drift.analyse` orders them) its identity
    (step, wall time), whether it was finite and usable, and the figures of
    the pair it closes (NaN / False at the first sample), as in a
    :class:`drift.Series`; plus the net drift and the two samples it was measured
    between. About 43 bytes a sample: 17 KB for the Python loader's 500.
    """

    steps: np.ndarray  # int64
    wall_times: np.ndarray
    finite: np.ndarray
    valid: np.ndarray
    rate: np.ndarray
    floor: np.ndarray
    same: np.ndarray
    zero_share: np.ndarray  # per sample, measured when the sample was new (zeros.shares)
    net: float
    net_between: tuple = ()  # ((step, wall time), (step, wall time)) of the net drift's samples
    pairs_analysed: int = 0  # consecutive pairs this update measured (W1 computed)

    @property
    def nbytes(self) -> int:
        """About what keeping it and its summary costs, for cache budgets.

        Its arrays, plus the Python objects around them and its
        :class:`Summary` (sparkline, tail): ~4 KB, measured with tracemalloc.
        """
        arrays = (self.steps, self.wall_times, self.finite, self.valid, self.rate, self.floor, self.same, self.zero_share)
        return sum(a.nbytes for a in arrays) + 4096

    def summary(self) -> Summary:
        """The :class:`Summary` of the series; equal to that of :func:`drift.analyse` on its samples."""
        return summaries.summarise(self)


_NOTHING_KEPT = Kept(*(np.zeros(0, dtype=t) for t in (np.int64, float, bool, bool, float, float, bool, float)), net=np.nan)


@dataclasses.dataclass(frozen=True)
class _Plan:
    """One series' update before measuring: which kept samples and pairs carry over, what to read."""

    old: Kept  # _NOTHING_KEPT for a series seen the first time
    steps: np.ndarray  # ordered as drift.analyse orders them
    wall_times: np.ndarray
    pos: np.ndarray  # index of each sample in old, where found
    found: np.ndarray  # bool: the sample is in old (same step and wall time)
    kept_pair: np.ndarray  # bool per sample: the pair it closes was measured in old
    needed: np.ndarray  # samples to clean: new ones, ends of new pairs, old first/last usable
    raw: Sequence[np.ndarray] | np.ndarray  # the series' raw samples, as given
    reads: np.ndarray  # which of them to clean and measure: the needed ones, in step order

    def block(self) -> np.ndarray:
        """The needed samples as an ``(len(needed), k, 3)`` array; gathered on the group's worker thread."""
        return drift.gather(self.raw, self.reads)


def _plan(old: Kept | None, sample: Sample) -> _Plan:
    """Match ``sample``'s samples (by step and wall time) with ``old``'s, and list the ones to read."""
    s, w, raw = sample
    s, w = np.asarray(s, dtype=np.int64), np.asarray(w, dtype=np.float64)
    order = drift.step_order(s, w)
    steps, walls = s[order], w[order]
    if old is None:  # nothing kept: every sample and pair is new
        n = len(steps)
        nothing = np.zeros(n, dtype=bool)
        return _Plan(_NOTHING_KEPT, steps, walls, np.zeros(n, dtype=np.int64), nothing, nothing,
                     np.arange(n), raw, order)
    pos = np.minimum(np.searchsorted(old.steps, steps), max(len(old.steps) - 1, 0))
    found = np.zeros(len(steps), dtype=bool)
    if len(old.steps):
        found = (old.steps[pos] == steps) & (old.wall_times[pos] == walls)
    kept_pair = np.zeros(len(steps), dtype=bool)
    kept_pair[1:] = found[1:] & found[:-1] & (pos[1:] == pos[:-1] + 1)
    new_pair = np.flatnonzero(~kept_pair[1:]) + 1
    old_usable = np.flatnonzero(found)[old.valid[pos[found]]]
    needed = np.unique(np.concatenate([
        np.flatnonzero(~found), new_pair - 1, new_pair, old_usable[:1], old_usable[-1:],
    ]))
    return _Plan(old, steps, walls, pos, found, kept_pair, needed, raw, order[needed])


def update_all(kept: Sequence[Kept | None], samples: Sequence[Sample]) -> list[Kept]:
    """Each series' :class:`Kept` from its previous one (None: none) and its current samples.

    Only pairs that involve a new sample, or that close a gap left by a
    sample the loader's reservoir dropped, are measured; every other pair's
    figures are carried over, and the summary is recomputed from the kept
    figures, equal to the summary of :func:`drift.analyse` on the same samples
    (to rounding: a batch padded to another width sums in another order). A
    sample is known by its step and wall time, which a restart that rewrites a
    step changes. Series are measured in vectorised groups of similar width
    (a log with a thousand small series would otherwise pay numpy's per-call
    overhead a thousand times), on a thread per core: numpy releases the GIL
    inside its array operations, where nearly all the time goes.
    """
    plans = [_plan(old, sample) for old, sample in zip(kept, samples)]
    groups = _groups([len(p.needed) for p in plans], [_width(p.raw) for p in plans])
    return _in_parallel(lambda g: _update_group([plans[i] for i in g]), groups, len(plans))


def _update_group(plans: list[_Plan]) -> list[Kept]:
    """Measure the new pairs (and net drifts) of a group of plans in one batch."""
    hists, finite_b, rms, quantum = drift.prepare(histogram.concatenate([p.block() for p in plans]))
    usable_b = finite_b & (hists.total > 0)
    zero_b = zeros.shares(hists)
    starts = np.cumsum([0] + [len(p.needed) for p in plans])
    step_b = np.concatenate([p.steps[p.needed] for p in plans] + [np.zeros(0, dtype=np.int64)])
    drafts, i, j = [], [], []
    for p, start in zip(plans, starts[:-1].tolist()):
        at = np.full(len(p.steps), -1)
        at[p.needed] = start + np.arange(len(p.needed))
        old, new = p.old, ~p.found
        finite, valid = np.zeros(len(p.steps), dtype=bool), np.zeros(len(p.steps), dtype=bool)
        finite[p.found], valid[p.found] = old.finite[p.pos[p.found]], old.valid[p.pos[p.found]]
        finite[new], valid[new] = finite_b[at[new]], usable_b[at[new]]
        zero_share = np.full(len(p.steps), np.nan)
        zero_share[p.found], zero_share[new] = old.zero_share[p.pos[p.found]], zero_b[at[new]]
        figures = [np.full(len(p.steps), np.nan), np.full(len(p.steps), np.nan), np.zeros(len(p.steps), dtype=bool)]
        for mine, theirs in zip(figures, (old.rate, old.floor, old.same)):
            mine[p.kept_pair] = theirs[p.pos[p.kept_pair]]
        new_pair = np.flatnonzero(~p.kept_pair[1:]) + 1
        usable = np.flatnonzero(valid)
        between = tuple((int(p.steps[k]), float(p.wall_times[k])) for k in usable[[0, -1]]) if len(usable) >= 2 else ()
        net_pair = bool(between) and between != old.net_between
        i += [at[new_pair - 1], at[usable[:1]] if net_pair else []]
        j += [at[new_pair], at[usable[-1:]] if net_pair else []]
        drafts.append((p, finite, valid, zero_share, figures, new_pair, between, net_pair))
    i, j = (np.concatenate(x).astype(np.int64) for x in (i, j))
    pair_drift, pair_rate, pair_floor, pair_same = drift.pair_figures(
        hists, finite_b, rms, quantum, step_b, i, j, histogram.wasserstein_pairs(hists, i, j)
    )
    out, k = [], 0
    for p, finite, valid, zero_share, (rate, floor, same), new_pair, between, net_pair in drafts:
        n = len(new_pair)
        rate[new_pair], floor[new_pair], same[new_pair] = pair_rate[k : k + n], pair_floor[k : k + n], pair_same[k : k + n]
        k += n
        if net_pair:
            net = float(pair_drift[k])
            k += 1
        else:
            net = p.old.net if between else float("nan")
        out.append(Kept(p.steps, p.wall_times, finite, valid, rate, floor, same, zero_share, net, between, n))
    return out


def summarise_all(samples: Sequence[Sample]) -> list[Summary]:
    """Summaries of many series from scratch: :func:`update_all` with nothing kept.

    One engine for every source, so the CLI's figures and the plugin's
    (which keeps pairs between reloads) cannot drift apart; it equals
    the summary of :func:`drift.analyse` on each series, the per-series
    reference (tested).
    """
    return [kept.summary() for kept in update_all([None] * len(samples), samples)]


def _groups(lengths: Sequence[int], widths: Sequence[int]) -> list[list[int]]:
    """Indices of series (samples, buckets per sample) in groups of bounded size and similar bucket count.

    Work enough for every core is cut into a whole number of groups per
    core, of about equal size, so that no core is left with one group while
    the other idles (three groups on two cores take as long as four); less
    is one group, measured on the calling thread.
    """
    total = sum(n * w for n, w in zip(lengths, widths))
    cores = _cores()
    count = -(-total // _GROUP_BUCKETS)
    if total >= cores * _LEAST_SPLIT_BUCKETS:
        count = -(-count // cores) * cores
    limit = -(-total // max(count, 1))
    groups: list[list[int]] = []
    size = 0
    for i in sorted(range(len(widths)), key=widths.__getitem__):
        n = lengths[i] * widths[i]
        if not groups or size + n > limit or widths[i] > _GROUP_WIDTH_RATIO * widths[groups[-1][0]]:
            groups.append([])
            size = 0
        groups[-1].append(i)
        size += n
    return groups


def _width(raw) -> int:
    """Buckets per sample, for grouping (a flat sample over-counts, which only costs padding)."""
    if isinstance(raw, np.ndarray) and raw.ndim == 3:
        return raw.shape[1]
    return max(map(len, raw), default=1)


def _in_parallel(work, groups: list[list[int]], n: int) -> list:
    """``work(group)`` for every group on a thread per idle core, its results placed at the group's indices.

    The calling thread takes groups too, and runs them alone when there is
    one group or no idle core (:func:`_idle_cores`): on cores other jobs keep
    busy, a second thread made drift slower, not faster (tf2_medium's 20,000
    histograms at load 6-10 on 2 cores: a median 286 ms on one thread, 351-379
    ms on two), as each waits for the interpreter lock the other holds while
    descheduled.
    """
    done: list = [None] * len(groups)
    todo = iter(range(len(groups)))  # shared: each next() hands a group to one thread only

    def drain() -> None:
        for g in todo:
            done[g] = work(groups[g])

    helpers = min(len(groups) - 1, _cores() - 1, _idle_cores())
    if helpers > 0:
        with concurrent.futures.ThreadPoolExecutor(helpers) as pool:
            started = [pool.submit(drain) for _ in range(helpers)]
            drain()
            for future in started:
                future.result()  # raises what the helper raised
    else:
        drain()
    out: list = [None] * n
    for group, results in zip(groups, done):
        for i, result in zip(group, results):
            out[i] = result
    return out


def _idle_cores() -> int:
    """Cores no other job keeps busy, about: the cores less the last minute's load average, rounded."""
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not available on this platform
        return _cores()
    return max(0, round(_cores() - load))


def _cores() -> int:
    """Cores this process may run on: its affinity, where the platform tells it."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1
