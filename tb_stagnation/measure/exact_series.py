"""Turn the plugin's exact-movement points, from any source, into per-parameter series.

Pure functions over :data:`tb_stagnation.samples.ExactPoints` (version-2
records: every quantity of a tensor at a step in one record; version-1
files: one scalar tag per quantity), which the event-file reader and the
data-provider reader both produce. Series are found by their plugin
content (parsed with :func:`tb_stagnation.records.parse_plugin_metadata`),
never by tag name; content this version cannot parse is skipped. Both
sources of exact movement arrive here the same way: the training-time
writers (``source`` ``exact``) and checkpoints imported afterwards
(``checkpoint``); they stay apart, since a run may hold both for one
parameter.

A loader keeps a sample of each tag's points (:mod:`tb_stagnation.records`
says how many). Nothing here depends on which it kept: a quantity is
aligned with the others of its tensor by step where present, a quantity
absent at a step is absent (NaN in the arrays, never taken for a NaN the
weights held), and the records' sequence numbers tell how many were written,
so a thinned series says so (:attr:`ExactSeries.written`).
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np

from tb_stagnation import records, samples

# run -> source -> parameter -> series
ExactData = dict[str, dict[str, dict[str, "ExactSeries"]]]

# Quantities derived from the weights themselves: NaN or Inf in one means the weights hold it.
_WEIGHT_QUANTITIES = (records.PARAM_RMS, records.UPDATE_RATIO, records.CHANGE)


@dataclasses.dataclass(frozen=True, eq=False)
class ExactSeries:
    """The exact-movement series of one parameter in one run, from one source.

    ``steps`` is the sorted union of the steps of the kept records (of all
    logged quantities, for version-1 files); each quantity array is aligned
    with it, NaN where that quantity was not measured at a step (the first
    snapshot has no ratio, a tensor at norm 0 no ratio but a ``change``) or
    not kept by the loader (version 1 only), or empty when the quantity was
    never logged (``grad_norm`` without gradients, ``change`` and
    ``update_cosine`` from the writers). ``nonfinite_at`` marks the steps
    where a measured weight quantity (RMS, ratio, change) is NaN or Inf.
    ``written``: how many records were written for the tensor, as their
    sequence numbers tell; at least ``kept``, and equal to it where the data
    carries no numbers (version 1). ``order``: the tensor's position among
    its writer's (model order), ``None`` where the data does not say
    (version 1). ``units``: each output unit's movement summed over
    ``unit_pairs`` pairs, along the tensor's ``unit_axis`` (the newest sum
    record; empty where none was written); ``unit_steps`` and
    ``unit_quantiles``: the kept pairs' later steps and the
    :data:`records.UNIT_QUANTILES` of their per-step unit movement, one row
    per pair (empty where none was written). ``axis`` says what the steps count (:data:`records.AXES`). Arrays are read-only. Compared by identity
    (``eq=False``): element-wise array equality has no single truth value.
    """

    source: str
    axis: str
    steps: np.ndarray  # int64
    update_ratio: np.ndarray  # float64, per step
    rms: np.ndarray  # float64
    grad_norm: np.ndarray  # float64
    change: np.ndarray  # float64, ||dW|| per step
    cosine: np.ndarray  # float64, between consecutive updates
    nonfinite_at: np.ndarray  # bool, per step
    written: int
    order: int | None = None
    # Per-unit movement summed over ``unit_pairs`` pairs (the newest sum record, see
    # records.units_value), empty where none was written; ``unit_axis`` the axis.
    units: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0))
    unit_pairs: int = 0
    unit_axis: int | None = None
    unit_noun: str | None = None  # what one unit is (records.UNIT_NOUNS), as the producer knew it
    unit_steps: np.ndarray = dataclasses.field(default_factory=lambda: np.empty(0, dtype=np.int64))
    unit_quantiles: np.ndarray = dataclasses.field(default_factory=lambda: np.empty((0, len(records.UNIT_QUANTILES))))
    # the tensor's (layout, shape) where its records carry them (records.create_summary_metadata)
    shape: tuple[str, tuple[int, ...]] | None = None

    @property
    def kept(self) -> int:
        """Records the loader kept (one per step)."""
        return len(self.steps)

    @property
    def thinned(self) -> bool:
        """Whether the loader kept fewer records than were written."""
        return self.written > self.kept

    @property
    def ratios(self) -> np.ndarray:
        """The measured update ratios (NaN marks a snapshot without one)."""
        return self.update_ratio[~np.isnan(self.update_ratio)]

    @property
    def frozen(self) -> bool:
        """Every measured update is exactly zero (and there is at least one)."""
        moves = self.change[~np.isnan(self.change)] if len(self.change) else self.ratios
        return bool(len(moves)) and bool((moves == 0).all())

    @property
    def nonfinite(self) -> bool:
        """Weights gone NaN/Inf show in a measured RMS, ratio or change."""
        return bool(self.nonfinite_at.any())

    @property
    def first_nonfinite_step(self) -> int | None:
        """The first step where :attr:`nonfinite` shows, or ``None``."""
        bad = self.steps[self.nonfinite_at]
        return int(bad[0]) if len(bad) else None


def collect_exact(points: samples.ExactPoints) -> ExactData:
    """``{run: {source: {param: ExactSeries}}}`` from what a source read of the plugin's tags.

    Tags whose content this version cannot parse are skipped. If a step
    appears twice (a restarted run), the later value wins. One parameter's
    version-1 and version-2 tags (an import re-run after an upgrade) are
    merged by step.
    """
    # run -> source -> param -> step -> {quantity: value}; and step -> seq of version-2 records
    values: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
    seqs: dict = defaultdict(dict)
    axes: dict[tuple[str, str, str], str] = {}
    orders: dict[tuple[str, str, str], int] = {}
    shapes: dict[tuple[str, str, str], tuple[str, tuple[int, ...]]] = {}
    units: dict[tuple[str, str, str], tuple] = {}  # key -> (unit axis, noun, pairs, movement)
    quantiles: dict = defaultdict(dict)  # key -> step -> the unit quantiles of the pair ending there
    for run, tags in points.items():
        for tag in tags.values():
            content = records.parse_plugin_metadata(tag.content)
            if content is None or not len(tag.steps):
                continue
            key = (run, content.source, content.param)
            if content.quantiles is not None:
                for step, value in zip(tag.steps, tag.values):
                    pair = records.read_unit_quantiles(content, value)
                    if pair is not None:
                        quantiles[key][int(step)] = pair
                continue
            if content.units is not None:  # the newest record holds the sum over every import
                newest = max(range(len(tag.steps)), key=lambda i: tag.steps[i])
                unit_record = records.read_units(content, tag.values[newest])
                if unit_record is not None:
                    units[key] = (content.unit_axis, content.unit, *unit_record)
                continue
            axes[key] = content.axis
            if content.index is not None:
                orders[key] = content.index
            if content.shape is not None:
                shapes[key] = (content.layout, content.shape)
            by_step = values[run][content.source][content.param]
            if content.version == records.VERSION_1:
                for step, value in zip(tag.steps, tag.values):
                    by_step.setdefault(int(step), {})[content.quantity] = float(np.reshape(value, -1)[0])
                continue
            for step, value in zip(tag.steps, tag.values):
                record = records.read_record(content, value)
                if record is not None:
                    by_step[int(step)] = record[1]
                    seqs[key][int(step)] = record[0]
    return {
        run: {
            source: {
                param: _series(by_step, seqs.get(key, {}), source, axes[key], orders.get(key), units.get(key),
                               quantiles.get(key, {}), shapes.get(key))
                for param, by_step in params.items()
                for key in [(run, source, param)]
                if by_step
            }
            for source, params in sources.items()
        }
        for run, sources in values.items()
    }


def thinned(series: Sequence[ExactSeries]) -> dict[str, int] | None:
    """``{kept, written, series}`` over the thinned ones among ``series``; ``None`` if none is."""
    short = [s for s in series if s.thinned]
    if not short:
        return None
    return {"kept": sum(s.kept for s in short), "written": sum(s.written for s in short), "series": len(short)}


def nbytes(data: ExactData) -> int:
    """About what ``data`` holds, for cache budgets: its arrays plus ~1 KB of objects per series."""
    return sum(
        1024
        + sum(a.nbytes for a in (s.steps, s.update_ratio, s.rms, s.grad_norm, s.change, s.cosine, s.nonfinite_at,
                                 s.units, s.unit_steps, s.unit_quantiles))
        for sources in data.values()
        for params in sources.values()
        for s in params.values()
    )


def _series(
    by_step: Mapping[int, Mapping[str, float]],
    seqs: Mapping[int, int],
    source: str,
    axis: str,
    order: int | None,
    units: tuple[int, str, int, np.ndarray] | None = None,
    quantiles: Mapping[int, np.ndarray] | None = None,
    shape: tuple[str, tuple[int, ...]] | None = None,
) -> ExactSeries:
    """Align each quantity on the steps of the records; count what was written; attach the units."""
    unit_axis, unit_noun, unit_pairs, movement = units if units is not None else (None, None, 0, np.empty(0))
    unit_steps = np.array(sorted(quantiles or {}), dtype=np.int64)
    unit_quantiles = np.array([quantiles[int(s)] for s in unit_steps]).reshape(-1, len(records.UNIT_QUANTILES))
    for array in (unit_steps, unit_quantiles):
        array.setflags(write=False)
    steps = np.array(sorted(by_step), dtype=np.int64)
    points = [by_step[int(s)] for s in steps]
    nonfinite_at = np.array(
        [any(not np.isfinite(r[q]) for q in _WEIGHT_QUANTITIES if q in r) for r in points], dtype=bool
    )
    for array in (steps, nonfinite_at):
        array.setflags(write=False)
    return ExactSeries(
        source=source,
        axis=axis,
        steps=steps,
        update_ratio=_aligned(points, records.UPDATE_RATIO),
        rms=_aligned(points, records.PARAM_RMS),
        grad_norm=_aligned(points, records.GRAD_NORM),
        change=_aligned(points, records.CHANGE),
        cosine=_aligned(points, records.UPDATE_COSINE),
        nonfinite_at=nonfinite_at,
        written=max(len(steps), _written(steps, seqs)),
        order=order,
        units=movement,
        unit_pairs=unit_pairs,
        unit_axis=unit_axis,
        unit_noun=unit_noun,
        unit_steps=unit_steps,
        unit_quantiles=unit_quantiles,
        shape=shape,
    )


def _written(steps: np.ndarray, seqs: Mapping[int, int]) -> int:
    """Records written, from the sequence numbers of those kept (0 without any).

    The newest record of a tag is always kept by both loaders, so its number
    + 1 counts what was written. A writer that started again (a resumed run
    in a new process) numbers from 0 again: each such segment, where the
    numbers stop increasing in step order, counts by its last kept number
    (its own last record may have been dropped: then this is a lower bound).
    """
    numbers = [seqs[int(s)] for s in steps if int(s) in seqs]
    total, last = 0, -1
    for seq in numbers:
        if seq <= last:
            total += last + 1
        last = seq
    return total + last + 1


def _aligned(points: Sequence[Mapping[str, float]], quantity: str) -> np.ndarray:
    """``quantity`` of each point (NaN where not measured); empty if no point has it."""
    if any(quantity in r for r in points):
        out = np.array([r.get(quantity, np.nan) for r in points], dtype=np.float64)
    else:
        out = np.empty(0, dtype=np.float64)
    out.setflags(write=False)
    return out
