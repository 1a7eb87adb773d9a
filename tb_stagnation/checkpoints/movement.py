"""Exact movement between consecutive checkpoints, streamed a group of tensors at a time.

For one tensor ``W`` of ``n`` values saved at steps ``s_0 < s_1 < ...``, at
each checkpoint ``i`` (with ``dW_i = W_i - W_{i-1}`` and ``k_i = s_i - s_{i-1}``):

* ``rms_i = ||W_i|| / sqrt(n)``, at every checkpoint, the first included;
* ``change_i = ||dW_i|| / k_i``, from the second on;
* ``update_ratio_i = ||dW_i|| / ||W_{i-1}|| / k_i``, the training-time
  writers' quantity; undefined (not written) where ``||W_{i-1}|| = 0``, a
  zero-initialised tensor, whose movement ``change`` still gives;
* ``update_cosine_i = <dW_i, dW_{i-1}> / (||dW_i|| ||dW_{i-1}||)``, from the
  third on: near 1 the tensor drifts steadily, near 0 it walks at random
  (noise-dominated updates), below 0 it oscillates (a learning rate too
  high); undefined where either update is 0.

Norms and products are summed in float64 from the stored values (bf16 and
fp16 widened exactly), over chunks of :data:`CHUNK` values so that the
temporaries stay small. A pair is measured only where the tensor is in both
checkpoints with the same shape.

Per output unit (:func:`tb_stagnation.checkpoints.formats.unit_axis`: a
row of a torch weight or embedding, a column of a TF/Keras kernel, one
element of a bias), the import also sums each unit's movement over the
pairs it counts, ``sum_i ||dW_i[u]||`` (a path length, in float64): a unit
that never changed sums to exactly 0; and keeps, per pair, the
:data:`tb_stagnation.records.UNIT_QUANTILES` of ``||dW_i[u]|| / k_i`` over the
units. The per-unit squares come from the same pass as the tensor's sums:
where a tensor has a unit axis its chunks are blocks of whole units' rows
(about :data:`CHUNK` values, as :func:`tb_stagnation.writers.units.change_sq`
takes them, whose per-unit sums these equal exactly where a row fits in a
chunk; the writers use that),
so this adds one float64 per unit per tensor held, never a value per unit
per pair, and the change is taken from memory once, not twice.

Threads: the sums are float64 dot products of :data:`CHUNK` values, tens
of thousands of them per checkpoint, each of which would wake OpenBLAS's
thread pool (it splits a dot product past 10,000 values). Beside a busy
CPU (a training job) those threads spin for cores that are taken, ~7x
slower; so :func:`measure` runs with BLAS held to one thread
(``threadpoolctl``, in every checkpoint extra; without it the pool is
left as it is). A chunk is in cache: one thread sums it as fast.

Memory: tensors are processed in groups of at most ``budget`` bytes (a
larger tensor is a group of its own). For each group every checkpoint is
opened once, in order, and closed again, holding the group's values from
the two previous checkpoints: about three times the group, whatever the
size of the model.

Windows: an import measures each new checkpoint in a window with the two
before it (:mod:`.windows`), so that it can be written at once. Their sums
were taken by the window before; :class:`Carried` keeps them (a few floats
per tensor), so a window sums only its newest checkpoint's pair.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from tb_stagnation import records
from tb_stagnation.checkpoints.discover import Placed
from tb_stagnation.checkpoints import formats
from tb_stagnation.checkpoints.formats import TensorInfo
from tb_stagnation.writers import units

CHUNK = 1 << 16  # values summed at a time: 512 KB of float64, in cache
DEFAULT_BUDGET = 32 << 20  # bytes of tensors per group


@dataclasses.dataclass
class Measurement:
    """What :func:`measure` found, per parameter in model order."""

    # param -> [(step, {quantity: value})] in step order
    points: dict[str, list[tuple[int, dict[str, float]]]]
    absent: dict[str, int]  # param -> checkpoints that lack it (present in some)
    reshaped: dict[str, list[int]]  # param -> steps at which its shape changed
    # param -> per-unit movement summed over the pairs counted, and how many pairs that is
    units: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    unit_pairs: dict[str, int] = dataclasses.field(default_factory=dict)
    # param -> [(step, quantiles of the pair's per-step unit movement)], the pairs counted, in step order
    unit_quantiles: dict[str, list[tuple[int, np.ndarray]]] = dataclasses.field(default_factory=dict)
    no_unit_axis: list[str] = dataclasses.field(default_factory=list)  # params whose unit axis is unknown


@dataclasses.dataclass(frozen=True)
class Last:
    """What one tensor's newest measured checkpoint leaves for the next pair: the floats of its :class:`_Track`."""

    step: int
    sq: float  # ||W||^2 at ``step``
    change_sq: float  # ||W - W_before||^2 of the change ending at ``step``; NaN where its chain starts there


@dataclasses.dataclass
class Carried:
    """The sums a window of checkpoints leaves for the next, so that each pair is summed once.

    Consecutive windows ``[a, b, c]``, ``[b, c, d]`` share two checkpoints;
    the second needs of them only their values (read again: :class:`.windows.Kept`
    holds them in memory where they fit) and, per tensor, the floats in
    :class:`Last`. :func:`measure` fills ``last`` at each window's newest
    checkpoint and, given it back for the next window, sums only that
    window's newest pair for the tensors it holds, with results equal to
    measuring the window whole; the earlier checkpoints' points are then not
    measured again (the import writes only the newest's). Floats only,
    bounded by the tensor count: a state a long import, or a worker that
    measures consecutive windows (a Ray actor), can keep.
    """

    last: dict[str, Last] = dataclasses.field(default_factory=dict)  # tensor name -> its newest checkpoint's sums

    def resumes(self, placed: Sequence[Placed]) -> dict[str, Last]:
        """The tensors whose sums end at ``placed[-2]``: those whose pair ``placed[-1]`` continues."""
        if len(placed) < 2:
            return {}
        step = placed[-2].step
        return {name: last for name, last in self.last.items() if last.step == step}


@dataclasses.dataclass
class _Track:
    """One tensor's last two values and what was summed of them."""

    step: int
    values: np.ndarray
    sq: float  # ||W_{i-1}||^2
    previous: np.ndarray | None = None  # W_{i-2}
    change_sq: float = math.nan  # ||W_{i-1} - W_{i-2}||^2


def measure(
    placed: Sequence[Placed],
    budget: int = DEFAULT_BUDGET,
    progress: Callable[[int], None] | None = None,
    units_from: int | None = None,
    carried: Carried | None = None,
) -> Measurement:
    """Movement of every tensor across ``placed`` (in step order); ``progress`` gets bytes read.

    Per-unit movement counts the pairs ending at ``units_from`` or later
    (all, by default): an import continuing an earlier one counts only the
    pairs the earlier one did not, so the imports' unit records add up.
    ``carried``, updated in place: the sums the previous window left (see
    :class:`Carried`); a tensor it holds at ``placed[-2]`` is measured at
    ``placed[-1]`` only, from those sums.
    """
    with one_blas_thread():
        return _measure(placed, budget, progress, units_from, carried)


def one_blas_thread() -> contextlib.AbstractContextManager:
    """BLAS held to one thread for the block (see the module's *Threads*), if ``threadpoolctl`` is installed."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # the pool stays as it is: right on a quiet machine, slow beside a busy one
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _measure(
    placed: Sequence[Placed], budget: int, progress: Callable[[int], None] | None, units_from: int | None,
    carried: Carried | None,
) -> Measurement:
    listings = [{info.name: info for info in p.reader.tensors()} for p in placed]
    names: dict[str, int] = {}  # name -> largest bytes held in memory, in first-seen order
    for listing in listings:
        for name, info in listing.items():
            names[name] = max(names.get(name, 0), _held_bytes(info))
    result = Measurement(
        points={name: [] for name in names},
        absent={n: c for n in names if (c := sum(n not in listing for listing in listings))},
        reshaped={},
    )
    resumed = carried.resumes(placed) if carried is not None else {}
    for group in groups(names, budget):
        _measure_group(group, placed, listings, result, progress, units_from, carried, resumed)
    return result


def _measure_group(
    group: list[str], placed: Sequence[Placed], listings: list[dict[str, TensorInfo]], result: Measurement,
    progress: Callable[[int], None] | None, units_from: int | None, carried: Carried | None,
    resumed: dict[str, Last],
) -> None:
    """:func:`_measure` of one group of tensors, into ``result`` (and ``carried``).

    A function of its own so that the group's values (up to three
    checkpoints' worth, mapped pages included) are let go on return, not
    held through the next group's reads.
    """
    tracks: dict[str, _Track] = {}
    newest = len(placed) - 1
    for index, (checkpoint, listing) in enumerate(zip(placed, listings)):
        wanted = [listing[name] for name in group if name in listing]
        for info, values in checkpoint.reader.read(wanted):
            if progress is not None:
                progress(info.nbytes)
            if info.name in resumed and index < newest:  # summed by the window before: values only
                _hold(tracks, info.name, values, checkpoint.step, resumed[info.name])
                continue
            before = tracks.get(info.name)
            axis = formats.unit_axis(info, checkpoint.checkpoint.format)
            if axis is None and info.name not in result.no_unit_axis:
                result.no_unit_axis.append(info.name)
            per_unit = units_from is None or checkpoint.step >= units_from
            quantities, unit_sq = _advance(tracks, info, values, checkpoint.step, result.reshaped, axis, per_unit)
            if unit_sq is not None and before is not None:
                moved = np.sqrt(unit_sq)
                total = result.units.get(info.name)
                result.units[info.name] = moved if total is None or total.shape != moved.shape else total + moved
                result.unit_pairs[info.name] = result.unit_pairs.get(info.name, 0) + 1
                gap = checkpoint.step - before.step
                result.unit_quantiles.setdefault(info.name, []).append(
                    (checkpoint.step, units.quantiles(moved / gap))
                )
            result.points[info.name].append((checkpoint.step, quantities))
        for name in group:  # a tensor missing here breaks its chain of pairs
            if name not in listing:
                tracks.pop(name, None)
    if carried is not None:
        for name in group:
            track = tracks.get(name)
            if track is not None and track.step == placed[-1].step:
                carried.last[name] = Last(track.step, track.sq, track.change_sq)
            else:
                carried.last.pop(name, None)


def _held_bytes(info: TensorInfo) -> int:
    """Bytes the tensor takes once read (bf16 is widened to float32)."""
    return info.nbytes * 2 if info.dtype == "bfloat16" else info.nbytes


def groups(sizes: dict[str, int], budget: int) -> list[list[str]]:
    """Consecutive names in groups of at most ``budget`` bytes (at least one name each)."""
    groups: list[list[str]] = []
    total = budget
    for name, size in sizes.items():
        if total + size > budget:
            groups.append([])
            total = 0
        groups[-1].append(name)
        total += size
    return groups


def _hold(tracks: dict[str, _Track], name: str, values: np.ndarray, step: int, last: Last) -> None:
    """Track ``values`` without summing them: at ``last.step`` with the sums :class:`Carried` kept,
    before it as the values the kept change started from."""
    if step != last.step:
        tracks[name] = _Track(step, values, math.nan)
        return
    before = tracks.get(name)
    previous = before.values if before is not None and not math.isnan(last.change_sq) else None
    tracks[name] = _Track(step, values, last.sq, previous=previous, change_sq=last.change_sq)


def _advance(
    tracks: dict[str, _Track], info: TensorInfo, values: np.ndarray, step: int, reshaped: dict[str, list[int]],
    axis: int | None, per_unit: bool,
) -> tuple[dict[str, float], np.ndarray | None]:
    """The quantities of ``info.name`` at ``step``, and its per-unit squared change where it has a
    unit ``axis``, ``per_unit`` asks and there is a change; its track moves on to ``values``."""
    track = tracks.get(info.name)
    if track is not None and track.values.shape != values.shape:
        reshaped.setdefault(info.name, []).append(step)
        track = None
    if track is None:
        sq, _, _, _ = _sums(values, None, None, axis)
        tracks[info.name] = _Track(step, values, sq)
        return {records.PARAM_RMS: _rms(sq, values.size)}, None
    sq, change_sq, dot, unit_sq = _sums(values, track.values, track.previous, axis, per_unit)
    gap = step - track.step
    change = math.sqrt(change_sq)
    quantities = {records.PARAM_RMS: _rms(sq, values.size), records.CHANGE: change / gap}
    if track.sq > 0:
        quantities[records.UPDATE_RATIO] = change / math.sqrt(track.sq) / gap
    if track.previous is not None and change_sq > 0 and track.change_sq > 0:
        cosine = dot / math.sqrt(change_sq * track.change_sq)
        quantities[records.UPDATE_COSINE] = min(1.0, max(-1.0, cosine))
    tracks[info.name] = _Track(step, values, sq, previous=track.values, change_sq=change_sq)
    return quantities, unit_sq


def _sums(
    c: np.ndarray, b: np.ndarray | None, a: np.ndarray | None, axis: int | None, per_unit: bool = False
) -> tuple[float, float, float, np.ndarray | None]:
    """``(||c||^2, ||c - b||^2, <c - b, b - a>, ||c[u] - b[u]||^2 per unit u along axis)`` in float64;
    NaN (``None``) where an input is missing (the units where not ``per_unit``).

    Chunks small enough to stay in cache, into buffers made once: a fresh
    float64 copy of each chunk costs page faults that dominate the sums.
    The chunks are :data:`CHUNK` values, or with a unit ``axis`` (0 or the
    last) blocks of whole units' rows of about as many (a row longer than
    that in pieces), whether or not the units are asked: a tensor's sums
    then depend on its values alone, not on which pair of an import asked
    for its units.
    """
    if axis is None:
        shape = (c.size, 1)  # flat chunks of CHUNK values
    elif axis == 0:
        shape = (c.shape[0], math.prod(c.shape[1:]))
    else:
        shape = (math.prod(c.shape[:-1]), c.shape[-1])
    c, b, a = (None if x is None else x.reshape(shape) for x in (c, b, a))
    rows, cols = max(1, CHUNK // max(1, shape[1])), max(1, min(CHUNK, shape[1]))
    sq, change_sq, dot = 0.0, 0.0 if b is not None else math.nan, 0.0 if a is not None else math.nan
    unit_sq = np.zeros(shape[0 if axis == 0 else 1]) if per_unit and b is not None and axis is not None else None
    wide, diff, scratch = (np.empty(min(rows, shape[0]) * cols) for _ in range(3))
    for start in range(0, shape[0], rows):
        for first in range(0, shape[1], cols):
            block = (slice(start, start + rows), slice(first, first + cols))
            n, m = min(rows, shape[0] - start), min(cols, shape[1] - first)
            c64 = wide[: n * m].reshape(n, m)
            np.copyto(c64, c[block])
            sq += float(wide[: n * m] @ wide[: n * m])
            if b is None:
                continue
            d = diff[: n * m].reshape(n, m)
            np.subtract(c64, b[block], out=d)
            change_sq += float(diff[: n * m] @ diff[: n * m])
            if unit_sq is not None:
                squares = np.square(d, out=scratch[: n * m].reshape(n, m))
                if axis == 0:
                    unit_sq[block[0]] += squares.sum(axis=1)
                else:
                    unit_sq[block[1]] += squares.sum(axis=0)
            if a is not None:
                np.subtract(b[block], a[block], out=scratch[: n * m].reshape(n, m), dtype=np.float64)
                dot += float(diff[: n * m] @ scratch[: n * m])
    return sq, change_sq, dot, unit_sq


def _rms(sq: float, size: int) -> float:
    return math.sqrt(sq / size) if size else 0.0
