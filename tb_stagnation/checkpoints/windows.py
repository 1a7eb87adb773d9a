"""The import one checkpoint at a time, so that each is written as soon as it is measured.

A checkpoint's figures need it and the two before it (its change and ratio
from the one before, its update cosine from the one before that), so each
new checkpoint is measured over a window of three (:func:`windows`) and
written before the next is read: a killed import keeps every checkpoint it
finished (:class:`tb_stagnation.checkpoints.imported.Appender`). Only the
newest checkpoint's pair is summed: the earlier two were summed by the window
before, which leaves those sums in a :class:`tb_stagnation.checkpoints.movement.Carried`,
so of them a window needs only their values.

Read naively, the windows overlap and every checkpoint would be read three
times. :class:`Kept` reads each checkpoint from its source once instead, as
one pass over the series would, and keeps what a later window needs of it:
in memory when a checkpoint's tensors fit in the budget (:func:`memory_budget`),
else, for a source in object storage (``spill``), spilled tensor by tensor to
a scratch file per checkpoint (``tempfile``, so in ``TMPDIR``; gone when the
import ends, even killed) and read back from there. Memory stays bounded by
:mod:`.movement`'s groups whatever the model's size; the scratch holds at most
the two checkpoints the next window shares. A local file beyond the budget
is read again instead: its reads are mapped pages (:func:`tb_stagnation.storage.read_range`),
which the page cache serves at the cost of a copy, where the spill would
cost a write and a read (half of a 0.75 GB import's time in the checkpoint
bench). On Ray, each actor holds a :class:`Kept` of its own block of tensors
(:mod:`.cluster`), spilling wherever the source is.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import BinaryIO

import numpy as np

from tb_stagnation.checkpoints import formats
from tb_stagnation.checkpoints.discover import Placed
from tb_stagnation.checkpoints.formats import TensorInfo

KEEP_BUDGET = 128 << 20  # bytes of one checkpoint's tensors kept in memory (three times: a window)
# Overrides KEEP_BUDGET (bytes): a smaller machine's knob, and how the tests make a small model spill.
BUDGET_VARIABLE = "TB_STAGNATION_KEEP_BUDGET"


def memory_budget() -> int:
    """Bytes of one checkpoint's tensors kept in memory: :data:`BUDGET_VARIABLE` if set, else :data:`KEEP_BUDGET`."""
    return int(os.environ.get(BUDGET_VARIABLE, KEEP_BUDGET))


def windows(placed: Sequence[Placed], new: Sequence[Placed]) -> list[list[Placed]]:
    """For each of ``new`` (in ``placed``, in step order), it and up to two checkpoints before it."""
    index = {id(p): i for i, p in enumerate(placed)}
    return [list(placed[max(0, index[id(p)] - 2):index[id(p)] + 1]) for p in new]


def fits(reader: formats.CheckpointReader, budget: int = KEEP_BUDGET) -> bool:
    """Whether a checkpoint's tensors are few enough to keep in memory (bf16 is held widened)."""
    return sum(info.nbytes * (2 if info.dtype == "bfloat16" else 1) for info in reader.tensors()) <= budget


def planned(parts: Sequence[Sequence[Placed]], spill: bool = True) -> int:
    """Bytes of tensors the windows ``parts`` will read from storage: each checkpoint's once
    (:class:`Kept`; what the bytes fetched are counted against), or, without ``spill``, a
    checkpoint beyond the memory budget once per window it is in."""
    windows_in: dict[int, int] = {}
    readers: dict[int, formats.CheckpointReader] = {}
    for window in parts:
        for p in window:
            windows_in[p.step] = windows_in.get(p.step, 0) + 1
            readers[p.step] = p.reader
    return sum(
        sum(info.nbytes for info in reader.tensors())
        * (windows_in[step] if not (spill or fits(reader, memory_budget())) else 1)
        for step, reader in readers.items()
    )


class Kept:
    """Readers for the overlapping windows ``parts`` that read each checkpoint from storage once.

    :meth:`wrap` gives window ``index`` (taken in order) whose readers serve
    what earlier windows read from memory (read-only arrays) or from
    scratch files, and read the rest from storage, keeping it where a
    later window needs it; what no later window needs is dropped.
    ``progress`` is told each read from storage as it happens. Without
    ``spill``, what does not fit the budget is read again from storage.
    A context manager: the scratch files go at exit.
    """

    def __init__(
        self, parts: Sequence[Sequence[Placed]], progress: Callable[[int], None] | None = None,
        budget: int | None = None, spill: bool = True,
    ) -> None:
        self._parts, self._progress, self._spill = parts, progress, spill
        self._budget = memory_budget() if budget is None else budget
        self._last_use = {p.step: i for i, window in enumerate(parts) for p in window}
        self._index = 0
        self._kept: dict[int, dict[str, np.ndarray]] = {}  # step -> tensors in memory
        self._spilled: dict[int, _Spill] = {}  # step -> its tensors in a scratch file

    def __enter__(self) -> Kept:
        return self

    def __exit__(self, *exc: object) -> None:
        for spill in self._spilled.values():
            spill.file.close()

    def wrap(self, index: int) -> list[Placed]:
        self._index = index
        for step in [s for s in {**self._kept, **self._spilled} if self._last_use[s] < index]:
            self._kept.pop(step, None)
            if step in self._spilled:
                self._spilled.pop(step).file.close()
        return [dataclasses.replace(p, reader=_Reader(p.reader, p.step, self)) for p in self._parts[index]]

    def _read(
        self, reader: formats.CheckpointReader, step: int, tensors: Iterable[TensorInfo]
    ) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        kept, spill = self._kept.get(step, {}), self._spilled.get(step)
        wanted = list(tensors)
        for info in wanted:
            if info.name in kept:
                yield info, kept[info.name]
            elif spill is not None and info.name in spill.where:
                yield info, spill.load(info.name)
        stored = [info for info in wanted if info.name not in kept and (spill is None or info.name not in spill.where)]
        later = self._last_use[step] > self._index
        keep = later and fits(reader, self._budget)
        if keep:
            kept = self._kept.setdefault(step, kept)
        elif later and spill is None and self._spill:
            spill = self._spilled[step] = _Spill(tempfile.TemporaryFile(prefix="tb-stagnation-import-"), {})
        for info, values in reader.read(stored) if stored else ():
            if self._progress is not None:
                self._progress(info.nbytes)
            if keep:
                values.setflags(write=False)  # shared by the windows that hold it
                kept[info.name] = values
            elif later and spill is not None:
                spill.save(info.name, values)
            yield info, values


@dataclasses.dataclass
class _Spill:
    """One checkpoint's tensors, raw, one after the other in an unnamed scratch file.

    ``tempfile.TemporaryFile`` (in ``TMPDIR``) has no name on Linux: its space
    goes back when it is closed or the process ends, even by SIGKILL, so a
    killed import leaves no scratch behind.
    """

    file: BinaryIO
    where: dict[str, tuple[int, np.dtype, tuple[int, ...]]]  # name -> (offset, dtype, shape)

    def save(self, name: str, values: np.ndarray) -> None:
        self.where[name] = (self.file.seek(0, os.SEEK_END), values.dtype, values.shape)
        values.tofile(self.file)
        self.file.flush()

    def load(self, name: str) -> np.ndarray:
        offset, dtype, shape = self.where[name]
        self.file.seek(offset)
        return np.fromfile(self.file, dtype=dtype, count=math.prod(shape)).reshape(shape)


class _Reader:
    """One checkpoint's reader inside a window of :class:`Kept`."""

    def __init__(self, reader: formats.CheckpointReader, step: int, kept: Kept) -> None:
        self._reader, self._step, self._kept = reader, step, kept

    def tensors(self) -> list[TensorInfo]:
        return self._reader.tensors()

    def recorded_step(self) -> int | None:
        return self._reader.recorded_step()

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        return self._kept._read(self._reader, self._step, tensors)
