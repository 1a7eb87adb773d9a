"""The import one checkpoint at a time, so that each is written as soon as it is measured.

A checkpoint's figures need it and the two before it (its change and ratio
from the one before, its update cosine from the one before that), so each
new checkpoint is measured over a window of three (:func:`windows`) and
written before the next is read: a killed import keeps every checkpoint it
finished (:class:`tb_stagnation.checkpoints.imported.Appender`).

Read naively, the windows overlap and every checkpoint would be read three
times. The tensors of the latest three checkpoints are kept in memory instead
(:class:`Kept`) when a checkpoint's tensors fit in :data:`KEEP_BUDGET`, so a
checkpoint is read once, as by one pass over the series; a larger model is
read again from storage for the windows it is in (memory, not I/O, is the
bound that cannot give: :mod:`.movement` holds three checkpoints of one group
of tensors at a time whatever the model's size). Ray tasks read their own
checkpoints and so read every window's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence

import numpy as np

from tb_stagnation.checkpoints import formats
from tb_stagnation.checkpoints.discover import Placed
from tb_stagnation.checkpoints.formats import TensorInfo

KEEP_BUDGET = 128 << 20  # bytes of one checkpoint's tensors kept in memory (three times: a window)


def windows(placed: Sequence[Placed], new: Sequence[Placed]) -> list[list[Placed]]:
    """For each of ``new`` (in ``placed``, in step order), it and up to two checkpoints before it."""
    index = {id(p): i for i, p in enumerate(placed)}
    return [list(placed[max(0, index[id(p)] - 2):index[id(p)] + 1]) for p in new]


def fits(reader: formats.CheckpointReader, budget: int = KEEP_BUDGET) -> bool:
    """Whether a checkpoint's tensors are few enough to keep in memory (bf16 is held widened)."""
    return sum(info.nbytes * (2 if info.dtype == "bfloat16" else 1) for info in reader.tensors()) <= budget


def planned(parts: Sequence[Sequence[Placed]], remote: bool = False) -> int:
    """Bytes of tensors the windows ``parts`` will read from storage: each checkpoint once where it :func:`fits`,
    else once per window it is in (``remote``: Ray tasks, which read their own, every window)."""
    windows_in: dict[int, int] = {}
    readers: dict[int, formats.CheckpointReader] = {}
    for window in parts:
        for p in window:
            windows_in[p.step] = windows_in.get(p.step, 0) + 1
            readers[p.step] = p.reader
    return sum(
        sum(info.nbytes for info in reader.tensors()) * (windows_in[step] if remote or not fits(reader) else 1)
        for step, reader in readers.items()
    )


class Kept:
    """Readers for overlapping windows that read each checkpoint from storage once when it fits.

    :meth:`wrap` gives a window whose readers serve the latest three
    checkpoints' tensors from memory (read-only arrays) and read the others
    from storage; :attr:`nbytes` counts what was read from storage, and
    ``progress`` is told each read as it happens.
    """

    def __init__(self, progress: Callable[[int], None] | None = None, budget: int = KEEP_BUDGET) -> None:
        self.nbytes = 0
        self._progress, self._budget = progress, budget
        self._kept: dict[int, dict[str, np.ndarray]] = {}  # step -> tensors, the latest three steps

    def wrap(self, window: Sequence[Placed]) -> list[Placed]:
        return [dataclasses.replace(p, reader=_Reader(p.reader, p.step, self)) for p in window]

    def _read(
        self, reader: formats.CheckpointReader, step: int, tensors: Iterable[TensorInfo]
    ) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        kept = self._kept.get(step, {})
        wanted = list(tensors)
        keep = fits(reader, self._budget)
        if keep and step not in self._kept:
            self._kept[step] = kept
            for old in sorted(self._kept)[:-3]:  # a window's three: older ones no window needs again
                del self._kept[old]
        yield from ((info, kept[info.name]) for info in wanted if info.name in kept)
        stored = [info for info in wanted if info.name not in kept]
        for info, values in reader.read(stored) if stored else ():
            self.nbytes += info.nbytes
            if self._progress is not None:
                self._progress(info.nbytes)
            if keep:
                values.setflags(write=False)  # shared by the windows that hold it
                kept[info.name] = values
            yield info, values


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
