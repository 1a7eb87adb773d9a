"""Where imported movement is kept: event files of its own in the run's directory.

Each import appends one event file named
``events.out.tfevents.<time>.<host>.<pid>.<first step>-<last step>`` + :data:`SUFFIX`
to the run directory, holding the plugin's own summaries
(:func:`tb_stagnation.metadata.scalar_value`, source ``checkpoint``): both
TensorBoard loaders, remote log directories, the CLI and the tab read them
as data, beside the training's own events. Files are written with
TensorBoard's TF-free ``RecordWriter``: ``EventFileWriter`` imports
TensorFlow when it is installed (about 540 MB before anything is read).

What was imported is read back from those files (:func:`imported`), so a
re-run writes only checkpoints it has not written before, and never a step
below one already written (TensorBoard's Python loader would purge the
newer points of that tag).
"""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Mapping, Sequence

from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_stagnation import eventfile, metadata

SUFFIX = ".tb-stagnation-checkpoints"


@dataclasses.dataclass(frozen=True)
class Imported:
    """What earlier imports wrote into one run directory."""

    steps: frozenset[int]  # checkpoints imported (each has an RMS point)
    axis: str | None  # what their steps count; None if nothing was imported
    files: tuple[str, ...]


def files(run_dir: str) -> list[str]:
    """The event files earlier imports wrote into ``run_dir``, oldest first."""
    if not os.path.isdir(run_dir):
        return []
    return sorted(os.path.join(run_dir, f) for f in os.listdir(run_dir) if "tfevents" in f and f.endswith(SUFFIX))


def imported(run_dir: str) -> Imported:
    """The checkpoint steps already in ``run_dir`` (a damaged record costs only its points)."""
    steps: set[int] = set()
    axis = None
    paths = files(run_dir)
    for path in paths:
        payloads, _ = eventfile.records(path)
        for payload in payloads:
            try:
                event = event_pb2.Event.FromString(payload)
            except DecodeError:
                continue
            for value in event.summary.value:
                content = metadata.parse_plugin_metadata(value.metadata.plugin_data.content)
                if content is not None and content.source == metadata.CHECKPOINT:
                    axis = content.axis
                    if content.quantity == metadata.PARAM_RMS:
                        steps.add(event.step)
    return Imported(frozenset(steps), axis, tuple(paths))


def write(
    run_dir: str, points: Mapping[str, Sequence[tuple[int, Mapping[str, float]]]], axis: str
) -> str | None:
    """Write ``points`` (param -> [(step, {quantity: value})]) as one new event file.

    One event per step, every parameter's values in it, steps ascending;
    the file is written under a temporary name and renamed when complete,
    so a reader never sees half of it. Returns its path (``None`` if there
    was nothing to write).
    """
    by_step: dict[int, list[summary_pb2.Summary.Value]] = {}
    for param, series in points.items():
        for step, quantities in series:
            by_step.setdefault(step, []).extend(
                metadata.scalar_value(param, q, v, metadata.CHECKPOINT, axis) for q, v in quantities.items()
            )
    if not by_step:
        return None
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
