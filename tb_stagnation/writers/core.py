"""The writers' core: snapshots in, :class:`ExactRecord` values and one ``Summary`` out.

Histogram drift is only a lower bound on how far a layer moved: a permutation
of its weights, or updates of random sign, leave the distribution (almost)
unchanged. The writers log the exact quantity instead, every ``every``
optimizer steps, for each parameter tensor ``W``:

* ``update_ratio``: ``||W_t - W_{t-k}|| / ||W_{t-k}|| / k``, where ``k`` is the
  number of steps since the previous snapshot (so it is a per-step rate,
  comparable across different ``every``). When ``||W_{t-k}|| == 0`` (a
  zero-initialised bias, say) the denominator is ``max(||W_{t-k}||, ||W_t||)``
  instead, and the ratio is 0 when both norms are 0: a parameter that stayed at
  zero did not move.
* ``rms``: ``sqrt(mean(W_t ** 2))``, the scale the ratio is relative to.
* ``grad_norm``: ``||dL/dW||`` at the snapshot step, only where the caller
  passes gradients.

Per output unit (:mod:`tb_stagnation.writers.units`: the import's rule, given the
framework's layout), each pair of snapshots also measures every unit's
movement ``||W_t[u] - W_{t-k}[u]||`` in the same pass that gives
``||W_t - W_{t-k}||`` (their squares sum to it): the writer keeps each
unit's sum over the pairs (one float64 per unit) and writes, per pair, the
quantiles of the units' per-step movement, and the sums when the pair count
reaches a power of two and when training ends (:meth:`UpdateRatioCore.finish`);
:mod:`tb_stagnation.records` says why that bound. A tensor whose unit axis
the layout does not tell is named in one warning and measured whole only.

The first snapshot only stores the values; the first point of every series
comes at the second snapshot, so all quantities of a parameter share their
steps. Norms are computed in float64 from the parameter's own dtype. Cost: one
copy of the logged parameters (made one tensor at a time, every ``every``
steps); between snapshots nothing touches the weights. How a snapshot is
copied and measured is an :class:`ArrayOps`: numpy on the host by default
(:data:`NUMPY_OPS`); :class:`tb_stagnation.writers.torch.TorchArrayOps` keeps
PyTorch snapshots on the parameters' own device.

Storage: one record per parameter and snapshot holding all its quantities
and its sequence number, under the tag :func:`tb_stagnation.records.tag_for`
(:func:`summary_proto`, through :func:`tb_stagnation.records.record_value`:
plugin ``stagnation``, data class TENSOR, metadata on each tag's first
record). A summary carries exactly one plugin name and TensorBoard's Scalars
tab only reads summaries of the ``scalars`` plugin, so these values do not
show in the Scalars tab; the Stagnation tab finds them by their plugin name
and plots them next to the histogram drift.

Framework-free: numpy and TensorBoard's protos only.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
from tensorboard.compat.proto import summary_pb2

from tb_stagnation import records
from tb_stagnation.writers import units

__all__ = [
    "NUMPY_OPS",
    "ArrayOps",
    "ExactRecord",
    "ParamState",
    "UnitPair",
    "UnitSums",
    "UpdateRatioCore",
    "rms",
    "summary_proto",
    "unique_names",
    "update_ratio",
]


class UnitSums(NamedTuple):
    """Each unit's movement of parameter ``param`` summed over ``pairs`` pairs (:func:`records.units_value`)."""

    param: str
    index: int
    unit_axis: int
    noun: str
    pairs: int
    movement: np.ndarray


class UnitPair(NamedTuple):
    """One pair's :data:`records.UNIT_QUANTILES` of per-step unit movement; ``first``: the writer's first."""

    unit_axis: int
    noun: str
    count: int
    quantiles: np.ndarray
    first: bool


class ExactRecord(NamedTuple):
    """What one snapshot measured of parameter ``param``: ``{quantity: value}``.

    ``seq`` numbers the records of ``param`` this writer wrote, 0 first, so a
    reader can tell how many a loader dropped; ``index`` is the parameter's
    position among those the writer was given (model order). ``units``: the
    pair's unit quantiles, and ``sums`` the unit sums when due (a pair count
    that is a power of two), where the parameter has a known unit axis.
    ``shape``: ``(layout, shape)`` on a parameter's first record, where the
    writer knows its framework's layout (the ``init_scale`` finding's fan-in).
    """

    param: str
    seq: int
    values: dict[str, float]
    index: int = 0
    units: UnitPair | None = None
    sums: UnitSums | None = None
    shape: tuple[str, tuple[int, ...]] | None = None


# (name, current value, gradient or None) of one parameter at a snapshot. The gradient may
# also be its norm, a float, for writers whose framework clears gradients before the
# snapshot step ends (they measure it just before the optimizer step).
ParamState = tuple[str, Any, Any]


class ArrayOps(Protocol):
    """How :class:`UpdateRatioCore` copies and measures one kind of array.

    Norms are float64 whatever the array's dtype, so float32 rounding does
    not blur small updates.
    """

    def copy(self, value: Any) -> Any:
        """A copy of ``value`` that later in-place updates of ``value`` leave alone."""

    def norm(self, values: Any) -> float:
        """``||values||``, computed in float64."""

    def distance(self, current: Any, before: Any) -> float:
        """``||current - before||``, the difference taken in float64."""

    def size(self, values: Any) -> int:
        """Number of elements."""

    def unit_change_sq(self, current: Any, before: Any, axis: int) -> np.ndarray:
        """``||current[u] - before[u]||^2`` per slice ``u`` along ``axis``, float64 on the host."""


def _norm(values: Any) -> float:
    """L2 norm in float64, so float32 rounding does not blur small updates.

    A plain ufunc reduction rather than ``np.linalg.norm``: BLAS threads
    contend with the framework's own thread pool, which made each norm up to
    100x slower inside a TensorFlow process (measured on 2 busy CPU cores).
    """
    return float(np.sqrt(np.sum(np.square(values, dtype=np.float64))))


class _NumpyOps:
    """Host snapshots as numpy arrays (any array-like is copied into one)."""

    def copy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    def norm(self, values: Any) -> float:
        return _norm(values)

    def distance(self, current: Any, before: Any) -> float:
        return _norm(np.subtract(current, before, dtype=np.float64))

    def size(self, values: Any) -> int:
        return int(np.size(values))

    def unit_change_sq(self, current: Any, before: Any, axis: int) -> np.ndarray:
        return units.change_sq(current, before, axis)


NUMPY_OPS: ArrayOps = _NumpyOps()


def update_ratio(
    before: Any, current: Any, steps: int, ops: ArrayOps = NUMPY_OPS, distance: float | None = None
) -> float:
    """``||current - before|| / ||before|| / steps`` (see the module docstring for 0 norms).

    ``distance``: ``||current - before||`` where the caller measured it already (from the per-unit sums).
    """
    base = ops.norm(before) or ops.norm(current)
    if base == 0.0:
        return 0.0
    return (ops.distance(current, before) if distance is None else distance) / base / steps


def rms(values: Any, ops: ArrayOps = NUMPY_OPS) -> float:
    """Root mean square of ``values``; 0 for an empty tensor."""
    size = ops.size(values)
    return ops.norm(values) / np.sqrt(size) if size else 0.0


class UpdateRatioCore:
    """Framework-free snapshot bookkeeping shared by every writer.

    Holds one copy of each parameter from the last snapshot and turns the next
    snapshot into :class:`ExactRecord` values. It never reads parameters
    itself: a writer asks :meth:`due` (integers only, so non-snapshot
    steps cost nothing) and only then hands the values to :meth:`snapshot`.
    ``ops`` says how the snapshot is copied and measured (host numpy arrays
    by default). ``layout`` (:data:`tb_stagnation.writers.units.LAYOUTS`): how the
    framework stores its tensors, which says each one's unit axis; ``None``
    measures no units.
    """

    def __init__(self, every: int, ops: ArrayOps = NUMPY_OPS, layout: str | None = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if layout is not None and layout not in units.LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; one of {units.LAYOUTS}")
        self.every = every
        self._ops = ops
        self._layout = layout
        self._sums: dict[str, UnitSums] = {}  # parameter -> its unit sums so far
        self._sums_written: dict[str, int] = {}  # parameter -> pairs in its last sums written
        self._no_axis: set[str] = set()  # parameters already named for their unknown unit axis
        self._new_no_axis: list[str] = []  # ... named at the end of this snapshot
        self._step: int | None = None
        self._values: dict[str, Any] = {}
        self._written: dict[str, int] = {}  # records written per parameter
        self._index: dict[str, int] = {}  # parameter -> position, in the order first given

    def due(self, step: int) -> bool:
        """Whether ``step`` takes a snapshot.

        True on the first call, when ``step`` crosses a multiple of ``every``
        (robust to loops that skip steps, e.g. Keras ``steps_per_execution``),
        and when the step went backwards (a restarted optimizer: start afresh).
        """
        last = self._step
        return last is None or step < last or step // self.every > last // self.every

    def snapshot(self, step: int, params: Iterable[ParamState]) -> list[ExactRecord]:
        """Store the current values and return what moved since the last snapshot.

        ``params`` is consumed lazily, one parameter at a time, so a writer
        that copies from a device holds at most one extra tensor beyond
        the stored snapshot. A parameter new since the last snapshot, or whose
        shape changed, is only stored.
        """
        last, self._step = self._step, step
        steps = None if last is None or step <= last else step - last
        previous, self._values = self._values, {}
        out: list[ExactRecord] = []
        ops = self._ops
        for name, value, gradient in params:
            current = ops.copy(value)
            before = previous.pop(name, None)
            self._values[name] = current
            index = self._index.setdefault(name, len(self._index))
            if steps is None or before is None or before.shape != current.shape:
                continue
            unit_axis = self._unit_axis(name, tuple(current.shape))
            unit_sq = None if unit_axis is None else ops.unit_change_sq(current, before, unit_axis)
            distance = None if unit_sq is None else float(np.sqrt(unit_sq.sum()))
            values = {
                records.UPDATE_RATIO: update_ratio(before, current, steps, ops, distance),
                records.PARAM_RMS: rms(current, ops),
            }
            if gradient is not None:
                values[records.GRAD_NORM] = gradient if isinstance(gradient, float) else ops.norm(gradient)
            seq = self._written.get(name, 0)
            self._written[name] = seq + 1
            described = self._layout is not None and seq == 0
            record = ExactRecord(name, seq, values, index, shape=(self._layout, tuple(current.shape)) if described else None)
            if unit_sq is not None:
                record = self._with_units(record, unit_axis, np.sqrt(unit_sq), steps, tuple(current.shape))
            out.append(record)
        self._warn_no_axis()
        return out

    @property
    def last_step(self) -> int | None:
        """The step of the last snapshot (``None`` before the first)."""
        return self._step

    def finish(self) -> list[UnitSums]:
        """The unit sums not written yet: what a writer writes when training ends."""
        pending = [s for name, s in self._sums.items() if s.pairs > self._sums_written.get(name, 0)]
        for s in pending:
            self._sums_written[s.param] = s.pairs
        return pending

    def _unit_axis(self, name: str, shape: tuple[int, ...]) -> int | None:
        """The unit axis of ``name`` in this writer's layout; ``None`` (noted for the warning) where unknown."""
        if self._layout is None:
            return None
        axis = units.unit_axis(name, shape, self._layout)
        if axis is None and name not in self._no_axis:
            self._no_axis.add(name)
            self._new_no_axis.append(name)
        return axis

    def _with_units(
        self, record: ExactRecord, unit_axis: int, moved: np.ndarray, steps: int, shape: tuple[int, ...]
    ) -> ExactRecord:
        """``record`` with this pair's unit quantiles, and the unit sums when their pair count is a power of two."""
        name = record.param
        noun = units.unit_noun(name, shape)
        sums = self._sums.get(name)
        if sums is None or sums.movement.shape != moved.shape:  # new, or reshaped: start again
            sums = UnitSums(name, record.index, unit_axis, noun, 0, np.zeros(moved.shape))
            self._sums_written.pop(name, None)
        sums = sums._replace(pairs=sums.pairs + 1, movement=sums.movement + moved)
        self._sums[name] = sums
        pair = UnitPair(unit_axis, noun, moved.size, units.quantiles(moved / steps), sums.pairs == 1)
        due = sums.pairs & (sums.pairs - 1) == 0
        if due:
            self._sums_written[name] = sums.pairs
        return record._replace(units=pair, sums=sums if due else None)

    def _warn_no_axis(self) -> None:
        """Name, once, the parameters whose units this writer skips."""
        names, self._new_no_axis = self._new_no_axis, []
        if names:
            warnings.warn(f"tb-stagnation: {', '.join(names)}: {units.NO_AXIS}", UserWarning, stacklevel=4)


def unique_names(names: Sequence[str]) -> list[str]:
    """``names`` unchanged; raises on duplicates, which would share one series."""
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"parameter names must be unique; duplicated: {duplicates}")
    return list(names)


def summary_proto(exact: Iterable[ExactRecord], sums: Iterable[UnitSums] = ()) -> summary_pb2.Summary:
    """A ``Summary`` holding the ``exact`` records and unit ``sums`` in the one storage format of every writer.

    TF2 writes it with ``write_raw_pb``, PyTorch through the ``SummaryWriter``'s
    file writer; :mod:`tb_stagnation.records` builds each value, as it does
    for imported checkpoints, with the metadata on a parameter's first record
    only (and on every sum record, few and each read alone).
    """
    values = []
    for r in exact:
        values.append(records.record_value(r.param, r.values, r.seq, describe=r.seq == 0, index=r.index, shape=r.shape))
        if r.units is not None:
            u = r.units
            values.append(records.unit_quantiles_value(
                r.param, u.quantiles, u.count, records.STEP, u.unit_axis, u.noun, r.index, records.EXACT, u.first
            ))
    for s in [r.sums for r in exact if r.sums is not None] + list(sums):
        values.append(records.units_value(
            s.param, s.movement, s.pairs, records.STEP, s.unit_axis, s.noun, s.index, records.EXACT
        ))
    return summary_pb2.Summary(value=values)
