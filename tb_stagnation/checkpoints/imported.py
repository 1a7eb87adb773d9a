"""Where imported movement is kept: event files of its own in the run's directory.

Each import adds one event file named
``events.out.tfevents.<time>.<host>.<pid>.<first step>`` + :data:`SUFFIX`
to the run directory, written a checkpoint at a time as each is measured
(:class:`Appender`: a killed import keeps every checkpoint it finished),
holding the plugin's own records
(:func:`tb_stagnation.records.record_value`, source ``checkpoint``: one per
tensor and checkpoint, every quantity in it): both TensorBoard loaders,
remote log directories, the CLI and the tab read them as data, beside the
training's own events. Files are written as TFRecords framed by
:func:`tb_stagnation.sources.tfrecord.framed`: ``EventFileWriter`` imports
TensorFlow when it is installed (about 540 MB before anything is read), and even TensorBoard's
TF-free ``RecordWriter`` brings every summary API with it.

What was imported is read back from those files (:func:`imported`), so a
re-run writes only checkpoints it has not written before, never a step
below one already written (TensorBoard's Python loader would purge the
newer points of that tag), and numbers each tensor's records on from those
already written, so a reader can tell how many a loader dropped. A re-run
after a killed import resumes after its last whole checkpoint. Files of
version 1 (one scalar tag per quantity) are read back too.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from typing import BinaryIO

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_stagnation import records
from tb_stagnation.sources import eventfile, tfrecord

SUFFIX = ".tb-stagnation-checkpoints"
# Unit sums as of one imported step, while an import runs (no "tfevents": never listed as events);
# see Appender._sums for why they are not in the event file at every checkpoint.
_SUMS_STATE = ".tb-stagnation-unit-sums.{step}.npz"


@dataclasses.dataclass(frozen=True)
class Imported:
    """What earlier imports wrote into one run directory."""

    steps: frozenset[int]  # checkpoints imported (each has an RMS point)
    axis: str | None  # what their steps count; None if nothing was imported
    files: tuple[str, ...]
    records: dict[str, int] = dataclasses.field(default_factory=dict)  # param -> records written
    # param -> (pairs, per-unit movement) of its newest unit record, or of the sums a killed import
    # saved as of its last whole checkpoint: what the next import adds to
    units: dict[str, tuple[int, np.ndarray]] = dataclasses.field(default_factory=dict)


def owned(name: str) -> bool:
    """Whether the file ``name`` of a run directory is an import's: one of its event files, or the unit
    sums it saved (what a run directory in a bucket must hold for a re-run to resume)."""
    prefix, suffix = _SUMS_STATE.split("{step}")
    return ("tfevents" in name and name.endswith(SUFFIX)) or (name.startswith(prefix) and name.endswith(suffix))


def files(run_dir: str) -> list[str]:
    """The event files earlier imports wrote into ``run_dir``, oldest first."""
    if not os.path.isdir(run_dir):
        return []
    return sorted(os.path.join(run_dir, f) for f in os.listdir(run_dir) if "tfevents" in f and f.endswith(SUFFIX))


def imported(run_dir: str) -> Imported:
    """The checkpoint steps already in ``run_dir`` (a damaged record costs only its points)."""
    steps: set[int] = set()
    axis = None
    written: dict[str, int] = {}
    old_steps: dict[str, set[int]] = {}  # version 1: param -> steps with an RMS point
    contents: dict[str, records.ExactContent | None] = {}  # tag -> content of its first described value
    units: dict[str, tuple[int, tuple[int, np.ndarray]]] = {}  # param -> (step, newest unit record)
    paths = files(run_dir)
    for path in paths:
        payloads, _ = tfrecord.records(path)
        for payload in payloads:
            try:
                event = event_pb2.Event.FromString(payload)
            except DecodeError:
                continue
            for value in event.summary.value:
                if value.tag not in contents and value.HasField("metadata"):
                    contents[value.tag] = records.parse_plugin_metadata(value.metadata.plugin_data.content)
                content = contents.get(value.tag)
                if content is None or content.source != records.CHECKPOINT:
                    continue
                axis = content.axis
                if content.quantiles is not None:  # per-pair quantiles: what the next import adds to needs none
                    continue
                if content.units is not None:
                    unit_record = records.read_units(content, eventfile.tensor_values(value.tensor))
                    if unit_record is not None and event.step >= units.get(content.param, (-1,))[0]:
                        units[content.param] = (event.step, unit_record)
                    continue
                if content.version == records.VERSION_1:
                    if content.quantity == records.PARAM_RMS:
                        steps.add(event.step)
                        old_steps.setdefault(content.param, set()).add(event.step)
                    continue
                record = records.read_record(content, eventfile.tensor_values(value.tensor))
                if record is not None:
                    steps.add(event.step)
                    written[content.param] = max(written.get(content.param, 0), record[0] + 1)
    for param, old in old_steps.items():  # an import of version 1, perhaps continued in version 2
        written[param] = max(written.get(param, 0), len(old))
    newest = _sums_state(run_dir, max(steps)) if steps else None  # a killed import's sums, as of its last step
    newest_units = {p: u for p, (_, u) in units.items()} if newest is None else newest
    return Imported(frozenset(steps), axis, tuple(paths), written, newest_units)


def _sums_state_paths(run_dir: str) -> dict[int, str]:
    """step -> path of the unit sums an import in progress (or killed) saved as of that step."""
    prefix, suffix = _SUMS_STATE.split("{step}")
    found = {}
    for name in os.listdir(run_dir) if os.path.isdir(run_dir) else ():
        step = name.removeprefix(prefix).removesuffix(suffix)
        if name.startswith(prefix) and name.endswith(suffix) and step.lstrip("-").isdigit():
            found[int(step)] = os.path.join(run_dir, name)
    return found


def _sums_state(run_dir: str, step: int) -> dict[str, tuple[int, np.ndarray]] | None:
    """The unit sums saved as of ``step`` (param -> (pairs, sums)), or ``None`` where none were."""
    path = _sums_state_paths(run_dir).get(step)
    if path is None:
        return None
    with np.load(path, allow_pickle=False) as saved:
        return {str(name): (int(pairs), saved[f"s{i}"]) for i, (name, pairs) in enumerate(zip(saved["names"], saved["pairs"]))}


class Appender:
    """One import's event file, appended a checkpoint at a time and flushed to disk after each.

    Each :meth:`add` writes one event (one checkpoint's step: a record per
    parameter, and the parameters' cumulative unit records) and syncs it, so
    a kill at any moment, even mid-write, costs at most the checkpoint being
    added: a record cut short is a truncated last record, which every reader
    of event files skips (:mod:`tb_stagnation.sources.tfrecord`, both
    TensorBoard loaders), and :func:`imported` reads back exactly the
    checkpoints whose event is whole, so a re-run goes on after the last one.
    The file is created by the first :meth:`add`, named after its first step
    (``events.out.tfevents.<time>.<host>.<pid>.<first step>`` + :data:`SUFFIX`:
    a later import's file sorts after it, so loaders read steps in order);
    it is never renamed while TensorBoard may be reading it.

    :attr:`done` is what the run directory holds so far, this file's
    checkpoints included: each parameter's records are numbered on from
    :attr:`Imported.records`, its unit sums added to :attr:`Imported.units`.
    The first record of each tag in the file carries the metadata, with the
    parameter's position in model order (``order``, then first seen).

    ``sync`` is called each time a change to the run directory is durable
    on disk, in the order made (the unit sums saved, then the event that
    needs them; the sums removed at the close): a local copy of a run in a
    bucket (:func:`tb_stagnation.storage.staged`) is uploaded then, so the
    bucket too holds every checkpoint once it is finished.
    """

    def __init__(self, run_dir: str, axis: str, done: Imported, order: Sequence[str] = (),
                 sync: Callable[[], None] | None = None) -> None:
        self.run_dir, self.axis, self.done = run_dir, axis, done
        self._sync = sync or (lambda: None)
        self.path: str | None = None
        self._index = {param: i for i, param in enumerate(order)}
        self._described: set[str] = set()  # tags whose metadata this file holds
        self._file: BinaryIO | None = None
        self._last_step: int | None = None
        self._previous_step: int | None = None  # the step of the unit sums saved before the newest
        # param -> (pairs, sums, unit axis, unit, index) not written yet: see _sums
        self._unsummed: dict[str, tuple[int, np.ndarray, int, str, int | None]] = {}

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        """Write the unit sums not written yet at the last step added, and close the file."""
        if self._file is not None:
            if self._unsummed:
                self._write(self._last_step, [self._sums(param) for param in list(self._unsummed)])
            self._file.close()
            for path in _sums_state_paths(self.run_dir).values():  # every sum is in the events now
                os.remove(path)
            self._sync()

    def add(
        self,
        step: int,
        points: Mapping[str, Mapping[str, float]],
        units: Mapping[str, tuple[int, np.ndarray, int, str]] | None = None,
        unit_quantiles: Mapping[str, Sequence[tuple[int, np.ndarray]]] | None = None,
        shapes: Mapping[str, tuple[str, Sequence[int]]] | None = None,
    ) -> None:
        """Write one checkpoint: ``points`` (param -> {quantity: value}) at ``step``, and ``units``
        (param -> (pairs, per-unit movement, unit axis, unit), cumulative over every import so far),
        ``unit_quantiles`` (param -> [(step, quantiles)] of the pair ending here), ``shapes`` (param
        -> (layout, shape), carried by the metadata of each tensor's first record in the file)."""
        values = []
        for param, quantities in points.items():
            index = self._index.setdefault(param, len(self._index))
            values.append(records.record_value(
                param, quantities, self.done.records.get(param, 0), records.CHECKPOINT, self.axis,
                describe=self._describe(records.tag_for(param, records.CHECKPOINT)), index=index,
                shape=(shapes or {}).get(param),
            ))
        for param, (pairs, movement, unit_axis, unit) in (units or {}).items():
            index = self._index.get(param)
            for _, quantiles in (unit_quantiles or {}).get(param, ()):
                values.append(records.unit_quantiles_value(
                    param, quantiles, movement.size, self.axis, unit_axis, unit, index,
                    describe=self._describe(records.unit_quantiles_tag(param, records.CHECKPOINT)),
                ))
            self._unsummed[param] = (pairs, movement, unit_axis, unit, index)
            if pairs & (pairs - 1) == 0:
                values.append(self._sums(param))
        if not values:
            return
        done = dataclasses.replace(
            self.done,
            steps=self.done.steps | {step},
            axis=self.axis,
            records={**self.done.records, **{p: self.done.records.get(p, 0) + 1 for p in points}},
            units={**self.done.units, **{p: (pairs, _as_stored(moved)) for p, (pairs, moved, _, _) in (units or {}).items()}},
        )
        if self._unsummed:  # before the event: once the event is whole, the sums as of it are on disk
            self._save_sums(step, done.units)
        self._write(step, values)
        self.done = done

    def _save_sums(self, step: int, sums: Mapping[str, tuple[int, np.ndarray]]) -> None:
        """Save the unit sums as of ``step`` (written whole, then renamed); keep the previous step's
        too, for a kill that cuts this step's event short."""
        names = list(sums)
        path = os.path.join(self.run_dir, _SUMS_STATE.format(step=step))
        os.makedirs(self.run_dir, exist_ok=True)
        with open(path + ".partial", "wb") as f:
            np.savez(f, names=np.array(names, dtype=str), pairs=np.array([sums[n][0] for n in names]),
                     **{f"s{i}": sums[n][1] for i, n in enumerate(names)})
        os.replace(path + ".partial", path)
        for older, stale in _sums_state_paths(self.run_dir).items():
            if older not in (step, self._previous_step):
                os.remove(stale)
        self._previous_step = step
        self._sync()

    def _sums(self, param: str) -> summary_pb2.Summary.Value:
        """The unit sum record of ``param``, now written.

        Sums are written when their pair count reaches a power of two and, for
        the rest, when the file is closed: at most ``log2(pairs) + 2`` vectors
        per import, never one per checkpoint (:mod:`tb_stagnation.records`).
        Meanwhile each :meth:`add` saves the sums as of its step beside the file
        (one vector per tensor, the previous one removed), so an import killed
        between two resumes from the sums of its last whole checkpoint
        (:func:`imported`); the close removes them.
        """
        pairs, movement, unit_axis, unit, index = self._unsummed.pop(param)
        return records.units_value(param, movement, pairs, self.axis, unit_axis, unit, index)

    def _write(self, step: int, values: list[summary_pb2.Summary.Value]) -> None:
        """One event at ``step``, synced to disk."""
        event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values))
        self._opened(step).write(tfrecord.framed(event.SerializeToString()))
        self._file.flush()
        os.fsync(self._file.fileno())
        self._last_step = step
        self._sync()

    def _describe(self, tag: str) -> bool:
        """Whether a record of ``tag`` must carry the metadata: its first in this file."""
        first = tag not in self._described
        self._described.add(tag)
        return first

    def _opened(self, step: int) -> BinaryIO:
        """The event file, created with its header record on the first call."""
        if self._file is None:
            os.makedirs(self.run_dir, exist_ok=True)
            now = time.time()
            name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.{step}{SUFFIX}"
            self.path = os.path.join(self.run_dir, name)
            self._file = open(self.path, "xb")
            self._file.write(tfrecord.framed(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString()))
        return self._file


def _as_stored(movement: np.ndarray) -> np.ndarray:
    """Per-unit sums as a unit record holds them (float32) and :func:`imported` reads them back: what
    the next checkpoint adds to is the same whether this import goes on or a re-run resumes it."""
    return movement.astype(np.float32).astype(np.float64)


def write(
    run_dir: str, points: Mapping[str, Sequence[tuple[int, Mapping[str, float]]]], axis: str, written: Mapping[str, int]
) -> str | None:
    """Write ``points`` (param -> [(step, {quantity: value})]) as one new event file, all at once.

    An :class:`Appender` fed every step in order, the parameters numbered
    on from ``written`` in the order of ``points``. Returns the file's path
    (``None`` if there was nothing to write).
    """
    by_step: dict[int, dict[str, Mapping[str, float]]] = {}
    for param, series in points.items():
        for step, quantities in series:
            by_step.setdefault(step, {})[param] = quantities
    with Appender(run_dir, axis, Imported(frozenset(), axis, (), dict(written)), order=list(points)) as out:
        for step in sorted(by_step):
            out.add(step, by_step[step])
    return out.path


def remove(run_dir: str) -> list[str]:
    """Delete what earlier imports wrote (``--rebuild``); returns the paths removed."""
    removed = files(run_dir) + list(_sums_state_paths(run_dir).values())
    for path in removed:
        os.remove(path)
    return removed
