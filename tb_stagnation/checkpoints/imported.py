"""Where imported movement is kept: event files of its own in the run's directory.

Each import adds one event file named
``events.out.tfevents.<time>.<host>.<pid>.<first step>`` + :data:`SUFFIX`
to the run directory, written a checkpoint at a time as each is measured
(:class:`Appender`: a killed import keeps every checkpoint it finished),
holding the plugin's own records
(:func:`tb_stagnation.records.record_value`, source ``checkpoint``: one per
tensor and checkpoint, every quantity in it): both TensorBoard loaders,
remote log directories, the CLI and the tab read them as data, beside the
training's own events. Files are written with
TensorBoard's TF-free ``RecordWriter``: ``EventFileWriter`` imports
TensorFlow when it is installed (about 540 MB before anything is read).

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
from collections.abc import Mapping, Sequence
from typing import Any, BinaryIO

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_stagnation import records
from tb_stagnation.sources import eventfile, tfrecord

SUFFIX = ".tb-stagnation-checkpoints"


@dataclasses.dataclass(frozen=True)
class Imported:
    """What earlier imports wrote into one run directory."""

    steps: frozenset[int]  # checkpoints imported (each has an RMS point)
    axis: str | None  # what their steps count; None if nothing was imported
    files: tuple[str, ...]
    records: dict[str, int] = dataclasses.field(default_factory=dict)  # param -> records written
    # param -> (pairs, per-unit movement) of its newest unit record: what the next import adds to
    units: dict[str, tuple[int, np.ndarray]] = dataclasses.field(default_factory=dict)


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
    return Imported(frozenset(steps), axis, tuple(paths), written, {p: u for p, (_, u) in units.items()})


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
    """

    def __init__(self, run_dir: str, axis: str, done: Imported, order: Sequence[str] = ()) -> None:
        self.run_dir, self.axis, self.done = run_dir, axis, done
        self.path: str | None = None
        self._index = {param: i for i, param in enumerate(order)}
        self._described: set[str] = set()  # tags whose metadata this file holds
        self._file: BinaryIO | None = None

    def __enter__(self) -> Appender:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()

    def add(
        self,
        step: int,
        points: Mapping[str, Mapping[str, float]],
        units: Mapping[str, tuple[int, np.ndarray, int, str]] | None = None,
        unit_quantiles: Mapping[str, Sequence[tuple[int, np.ndarray]]] | None = None,
    ) -> None:
        """Write one checkpoint: ``points`` (param -> {quantity: value}) at ``step``, and ``units``
        (param -> (pairs, per-unit movement, unit axis, unit), cumulative over every import so far),
        ``unit_quantiles`` (param -> [(step, quantiles)] of the pair ending here)."""
        values = []
        for param, quantities in points.items():
            index = self._index.setdefault(param, len(self._index))
            values.append(records.record_value(
                param, quantities, self.done.records.get(param, 0), records.CHECKPOINT, self.axis,
                describe=self._describe(records.tag_for(param, records.CHECKPOINT)), index=index,
            ))
        for param, (pairs, movement, unit_axis, unit) in (units or {}).items():
            index = self._index.get(param)
            for _, quantiles in (unit_quantiles or {}).get(param, ()):
                values.append(records.unit_quantiles_value(
                    param, quantiles, movement.size, self.axis, unit_axis, unit, index,
                    describe=self._describe(records.unit_quantiles_tag(param, records.CHECKPOINT)),
                ))
            values.append(records.units_value(param, movement, pairs, self.axis, unit_axis, unit, index))
        if not values:
            return
        event = event_pb2.Event(wall_time=time.time(), step=step, summary=summary_pb2.Summary(value=values))
        self._writer(step).write(event.SerializeToString())
        self._file.flush()
        os.fsync(self._file.fileno())
        self.done = dataclasses.replace(
            self.done,
            steps=self.done.steps | {step},
            axis=self.axis,
            records={**self.done.records, **{p: self.done.records.get(p, 0) + 1 for p in points}},
            units={**self.done.units, **{p: (pairs, moved) for p, (pairs, moved, _, _) in (units or {}).items()}},
        )

    def _describe(self, tag: str) -> bool:
        """Whether a record of ``tag`` must carry the metadata: its first in this file."""
        first = tag not in self._described
        self._described.add(tag)
        return first

    def _writer(self, step: int) -> Any:
        """The file's ``RecordWriter``, the file created with its header on the first call."""
        from tensorboard.summary.writer.record_writer import RecordWriter

        if self._file is None:
            os.makedirs(self.run_dir, exist_ok=True)
            now = time.time()
            name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.{step}{SUFFIX}"
            self.path = os.path.join(self.run_dir, name)
            self._file = open(self.path, "xb")
            RecordWriter(self._file).write(
                event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString()
            )
        return RecordWriter(self._file)


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
    removed = files(run_dir)
    for path in removed:
        os.remove(path)
    return removed
