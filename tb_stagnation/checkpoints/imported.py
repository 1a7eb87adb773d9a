"""Where imported movement is kept: event files of its own in the run's directory.

Each import appends one event file named
``events.out.tfevents.<time>.<host>.<pid>.<first step>-<last step>`` + :data:`SUFFIX`
to the run directory, holding the plugin's own records
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
already written, so a reader can tell how many a loader dropped. Files of
version 1 (one scalar tag per quantity) are read back too.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Mapping, Sequence

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


def write(
    run_dir: str,
    points: Mapping[str, Sequence[tuple[int, Mapping[str, float]]]],
    axis: str,
    written: Mapping[str, int],
    units: Mapping[str, tuple[int, np.ndarray, int, int]] | None = None,
) -> str | None:
    """Write ``points`` (param -> [(step, {quantity: value})]) as one new event file.

    One event per step, one record per parameter in it, steps ascending;
    each parameter's records are numbered on from ``written[param]`` (what
    earlier imports wrote: :attr:`Imported.records`), and the first of each
    in the file carries the metadata, with the parameter's position in
    ``points`` (model order: a checkpoint's own tensor order). The file is
    written under a temporary name and renamed when complete, so a reader
    never sees half of it. Returns its path (``None`` if there was nothing
    to write). ``units`` (param -> (pairs, per-unit movement, unit axis),
    cumulative over every import) are written at the file's last step,
    one unit record per tensor (:func:`tb_stagnation.records.units_value`).
    """
    by_step: dict[int, list[summary_pb2.Summary.Value]] = {}
    for index, (param, series) in enumerate(points.items()):
        start = written.get(param, 0)
        for i, (step, quantities) in enumerate(series):
            by_step.setdefault(step, []).append(
                records.record_value(
                    param, quantities, start + i, records.CHECKPOINT, axis, describe=i == 0, index=index
                )
            )
    if not by_step:
        return None
    order = {param: i for i, param in enumerate(points)}
    for param, (pairs, movement, unit_axis, unit) in (units or {}).items():
        by_step[max(by_step)].append(
            records.units_value(param, movement, pairs, axis, unit_axis, unit, order.get(param))
        )
    from tensorboard.summary.writer.record_writer import RecordWriter

    os.makedirs(run_dir, exist_ok=True)
    now = time.time()
    steps = sorted(by_step)  # in the name too: two imports within a second never share one
    name = f"events.out.tfevents.{int(now):010d}.{socket.gethostname()}.{os.getpid()}.{steps[0]}-{steps[-1]}{SUFFIX}"
    path = os.path.join(run_dir, name)
    partial = os.path.join(run_dir, f".tb-stagnation-import.{os.getpid()}.partial")  # no "tfevents": unlisted
    with open(partial, "wb") as f:
        writer = RecordWriter(f)
        writer.write(event_pb2.Event(wall_time=now, file_version="brain.Event:2").SerializeToString())
        for step in steps:
            event = event_pb2.Event(wall_time=now, step=step, summary=summary_pb2.Summary(value=by_step[step]))
            writer.write(event.SerializeToString())
    os.replace(partial, path)
    return path


def remove(run_dir: str) -> list[str]:
    """Delete what earlier imports wrote (``--rebuild``); returns the paths removed."""
    removed = files(run_dir)
    for path in removed:
        os.remove(path)
    return removed
