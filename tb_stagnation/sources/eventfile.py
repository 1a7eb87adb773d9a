"""A direct reader of event files for the CLI: every sample, fast, and honest about damage.

TensorBoard's Python loader keeps a reservoir sample, converts TF1
histograms to float32 and, without TensorFlow installed, checks record CRCs
one byte at a time in Python. The CLI wants every sample, so it reads event
files itself, by layer as TensorBoard's loaders do:

* :mod:`tb_stagnation.sources.tfrecord`: the framing, every length and checksum
  of a file verified at once (:mod:`tb_stagnation.sources.crc32c`);
* :mod:`tb_stagnation.sources.tf2_layout`: TF2 histograms laid out byte for byte
  like a parsed record of their tag, whose step, wall time and tensor
  bytes are read in place, without a protobuf parse;
* :mod:`tb_stagnation.sources.tf1_histograms`: TF1 ``HistogramProto`` values
  converted a series at once from their packed fields;
* this module: every other event parsed with the protobuf library's C
  backend, values filed by run and tag, and each series made arrays in
  the same ``[k, 3]`` layout the data provider hands the plugin, so the
  two paths rank alike; parity is tested on every writer's log.

Reading a parsed proto from Python costs more than parsing it, so each
record gets a few attribute reads at most, and each series becomes arrays
in a few numpy calls once its run is read.

Damage is reported, never fatal (:class:`Skip`): what the framing could
not use, and records or values that do not parse or are not histograms
after all; a file that cannot be fetched costs that file. A log directory
is a local path or any fsspec URL (``s3://bucket/run``): listed in one
recursive listing and each file read whole through :mod:`tb_stagnation.storage`,
which names what to do when the URL cannot be read at all.
"""

from __future__ import annotations

import dataclasses
import os
import posixpath
from collections.abc import Callable, Iterator

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, types_pb2

from tb_stagnation import records, samples, storage
from tb_stagnation.sources import tf1_histograms, tf2_layout
from tb_stagnation.sources.tf1_histograms import histogram_from_proto
from tb_stagnation.sources.tfrecord import Skip, intact_records

__all__ = ["LogData", "RunData", "Skip", "event_files", "read_logdir", "read_runs", "tensor_values"]


@dataclasses.dataclass
class RunData:
    """What one run's event files hold for the plugin, and what reading them cost."""

    run: str
    histograms: dict[str, samples.Sample]
    exact: dict[str, samples.ExactTag]
    skipped: list[Skip]
    files: int
    records: int


def read_runs(logdir: str, progress: Callable[[int, int], None] | None = None) -> Iterator[RunData]:
    """Every run under ``logdir``, one at a time, with every histogram and exact-movement record.

    One run at a time, so that a caller can summarise and drop histograms as
    it goes and hold the largest run, not the log.
    """
    runs = event_files(logdir)
    total, done = sum(len(files) for files in runs.values()), 0
    for run, files in runs.items():
        tags = _Run()
        data = RunData(run, {}, {}, [], 0, 0)
        for path in files:
            _read_file(path, tags, data)
            done += 1
            if progress is not None:
                progress(done, total)
        tags.store(data)
        del tags
        yield data


@dataclasses.dataclass
class LogData:
    """Everything a log directory holds for the plugin, read whole: for tests and small logs."""

    histograms: dict[str, dict[str, samples.Sample]]
    exact: samples.ExactPoints
    skipped: list[Skip]
    files: int
    records: int


def read_logdir(logdir: str) -> LogData:
    """Every run of ``logdir`` at once (:func:`read_runs` holds one run at a time)."""
    data = LogData({}, {}, [], 0, 0)
    for run in read_runs(logdir):
        if run.histograms:
            data.histograms[run.run] = run.histograms
        if run.exact:
            data.exact[run.run] = run.exact
        data.skipped += run.skipped
        data.files += run.files
        data.records += run.records
    return data


def event_files(logdir: str) -> dict[str, list[str]]:
    """run -> event files, named as TensorBoard names runs (``.`` for the root), local or URL alike."""
    paths = posixpath if storage.is_url(logdir) else os.path  # a URL's "s3:" is one more component
    runs: dict[str, list[str]] = {}
    for directory, _, files in sorted(storage.walk(logdir)):
        found = sorted(f for f in files if "tfevents" in f)
        if found:
            runs[paths.relpath(directory, logdir)] = [paths.join(directory, f) for f in found]
    return runs


def _read_file(path: str, tags: _Run, data: RunData) -> None:
    """Read one file of a run into ``tags``; its damage and counts into ``data``."""
    try:
        raw, offsets, ends, skipped = intact_records(path)
    except storage.StorageError as e:  # gone or refused since it was listed: that file, not the run
        data.skipped.append(Skip(path, f"could not be fetched ({e})"))
        return
    bad = tags.read(raw, offsets, ends)
    data.skipped.extend(skipped)
    if bad:
        data.skipped.append(Skip(path, f"{bad} record(s) or value(s) could not be read"))
    data.files += 1
    data.records += len(offsets)


class _Run:
    """What one run's files hold, read so far."""

    def __init__(self) -> None:
        self.plugin_of: dict[str, str] = {}  # tag -> plugin, from the first value that names it
        self.samples: dict[str, _Samples] = {}
        self.tf2: dict[str, _Samples] = {}  # the tags whose plugin is histograms
        self.exact_content: dict[str, bytes] = {}
        self.exact_data: dict[str, tuple[list[int], list[np.ndarray]]] = {}
        self._file = 0  # which file, in the high bits of a position
        self._position = -1  # of the record being parsed, among the run's files
        self._named_at: dict[str, int] = {}  # tag -> position of the record naming its plugin

    def read(self, raw: bytes, offsets: np.ndarray, ends: np.ndarray) -> int:
        """File every value of the events in ``raw[offsets[i]: ends[i]]``; count what could not be read.

        TF2 histograms laid out like another record of their tag (see
        :func:`tf2_layout.known_by_layout`) are filed a whole layout at a
        time, their tensors copied out of the file in one numpy call; the
        rest are parsed first, which names the plugin of every tag whose
        metadata sits on its first write only.
        """
        known = tf2_layout.known_by_layout(raw, offsets, ends)
        parsed = known.which < 0
        self._file += 1 << 48  # positions: file, then offset in it
        bad = self._parse(raw, offsets[parsed], ends[parsed])
        order = np.argsort(known.which, kind="stable")
        cuts = np.searchsorted(known.which[order], np.arange(len(known.layouts) + 1))
        for layout, start, stop in zip(known.layouts, cuts[:-1].tolist(), cuts[1:].tolist()):
            members = order[start:stop]
            if layout.tag not in self.tf2:  # metadata on every write: the first one names the plugin
                bad += self._parse(raw, offsets[members[:1]], ends[members[:1]])
                members = members[1:]
                if layout.tag not in self.tf2:  # not a histogram after all
                    bad += self._parse(raw, offsets[members], ends[members])
                    continue
            # Values before the one naming the plugin are not read, as when reading in order.
            positions = self._file + offsets[members]
            later = positions > self._named_at.get(layout.tag, -1)
            members, positions = members[later], positions[later]
            self.tf2[layout.tag].add(
                known.steps[members], known.wall_times[members], known.values(raw, members, layout), positions
            )
        return bad

    def _parse(self, raw: bytes, offsets: np.ndarray, ends: np.ndarray) -> int:
        """Parse and file the events at ``raw[offsets[i]: ends[i]]``; count what could not be read."""
        parse = event_pb2.Event.FromString
        bad = 0
        for start, end in zip(offsets.tolist(), ends.tolist()):
            self._position = self._file + start
            try:
                event = parse(raw[start:end])
            except DecodeError:
                bad += 1
                continue
            bad += self._event(event)
        return bad

    def _event(self, event) -> int:
        """File an event's values; how many could not be read.

        A TF2 histogram of a known tag is filed inline, touching as few
        proto attributes as it can: each access builds a Python wrapper.
        The rest go through :meth:`_value`.
        """
        bad = 0
        values = event.summary.value
        for i in range(len(values)):  # indexing builds fewer wrappers than iterating
            value = values[i]
            held = self.tf2.get(value.tag)
            if held is not None:
                tensor = value.tensor
                content = tensor.tensor_content
                if content and tensor.dtype == types_pb2.DT_DOUBLE and not len(content) % 24:
                    held.append(event.step, event.wall_time, content, self._position)
                    continue
            bad += self._value(event, value)
        return bad

    def _value(self, event, value) -> int:
        """File one summary value if it is ours to read; 1 if it could not be read."""
        kind = value.WhichOneof("value")
        if kind == "histo":
            return self._histo(event, value)
        if kind != "tensor":
            return 0
        tag = value.tag
        plugin = self.plugin_of.get(tag) or self._learn(tag, value)
        if plugin == records.HISTOGRAMS_PLUGIN_NAME:
            held = self.tf2[tag] = self._samples(tag)
            tensor = value.tensor
            content = tensor.tensor_content
            if content and tensor.dtype == types_pb2.DT_DOUBLE:
                if len(content) % 24:  # not [k, 3] float64
                    return 1
                raw = content
            else:
                try:
                    raw = tensor_values(tensor).reshape(-1, 3)
                except ValueError:  # not [k, 3] or not numeric
                    return 1
            held.append(event.step, event.wall_time, raw, self._position)
        elif plugin == records.PLUGIN_NAME:
            try:
                values = tensor_values(value.tensor)
            except ValueError:  # not numeric
                return 1
            if not values.size:
                return 1
            steps, points = self.exact_data.setdefault(tag, ([], []))
            steps.append(event.step)
            points.append(values)
        return 0

    def _learn(self, tag: str, value) -> str | None:
        """The plugin a tag's first value with metadata names, noted for the values after it.

        TF2 writers put metadata on a tag's first value only, so later
        values are not asked.
        """
        if not value.HasField("metadata"):
            return None
        plugin = value.metadata.plugin_data.plugin_name
        if not plugin:
            return None
        self.plugin_of[tag] = plugin
        self._named_at[tag] = self._position
        if plugin == records.PLUGIN_NAME:
            self.exact_content[tag] = value.metadata.plugin_data.content
        return plugin

    def _histo(self, event, value) -> int:
        """File a TF1 histogram; 1 if it could not be read."""
        held = self._samples(value.tag)
        histo = value.histo
        raw = tf1_histograms.packed_parts(histo)
        if raw is None:
            try:
                raw = histogram_from_proto(histo)
            except ValueError:  # fewer limits than buckets
                return 1
        held.append(event.step, event.wall_time, raw, self._position)
        return 0

    def _samples(self, tag: str) -> _Samples:
        held = self.samples.get(tag)
        if held is None:
            held = self.samples[tag] = _Samples()
        return held

    def store(self, data: RunData) -> None:
        """Hand this run's series to ``data``, converted to arrays."""
        data.histograms = {tag: read.sample() for tag, read in self.samples.items()}
        data.exact = {
            tag: samples.ExactTag(self.exact_content[tag], steps, values)
            for tag, (steps, values) in self.exact_data.items()
            if tag in self.exact_content
        }


class _Samples:
    """One tag's samples as read; their values become arrays once the whole run is read.

    A value is kept as read: a TF2 histogram's ``tensor_content`` bytes, a
    TF1 histogram's ``(min, max, limits, counts)`` with the two packed
    arrays as bytes, or an array (anything else). Converting a whole series
    at once costs a few numpy calls instead of several per sample. Samples
    read a layout at a time arrive as ``(n, k, 3)`` blocks.
    """

    __slots__ = ("steps", "wall_times", "raw", "positions", "blocks")

    def __init__(self) -> None:
        self.steps: list[int] = []
        self.wall_times: list[float] = []
        self.raw: list = []
        self.positions: list[int] = []
        self.blocks: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def append(self, step: int, wall_time: float, raw, position: int) -> None:
        """One parsed sample, and its position in the run's files (for the order read)."""
        self.steps.append(step)
        self.wall_times.append(wall_time)
        self.raw.append(raw)
        self.positions.append(position)

    def add(self, steps: np.ndarray, wall_times: np.ndarray, values: np.ndarray, positions: np.ndarray) -> None:
        """Samples of one layout: steps, wall times, an ``(n, k, 3)`` array, positions."""
        self.blocks.append((steps, wall_times, values, positions))

    def sample(self) -> samples.Sample:
        """The samples in the order of the files, whichever way each was read."""
        if not self.blocks:
            return samples.Sample(self.steps, self.wall_times, _values(self.raw))
        if not self.raw and len(self.blocks) == 1:  # one layout, in file order: as read, no copy
            steps, wall_times, values, _ = self.blocks[0]
            return samples.Sample(steps, wall_times, values)
        parts = [(self.steps, self.wall_times, _values(self.raw), self.positions)] if self.raw else []
        parts += self.blocks
        order = np.argsort(np.concatenate([np.asarray(p[3], dtype=np.int64) for p in parts]), kind="stable")
        values = [v for _, _, v, _ in parts]
        if all(isinstance(v, np.ndarray) and v.shape[1:] == values[0].shape[1:] for v in values):
            values = np.concatenate(values)[order]
        else:  # layouts differ: one [k, 3] array per sample
            every = [row for v in values for row in v]
            values = [every[i] for i in order.tolist()]
        return samples.Sample(
            np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])[order],
            np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts])[order],
            values,
        )


def tensor_values(proto) -> np.ndarray:
    """A ``TensorProto``'s values as a flat float64 array, read-only."""
    if proto.dtype == types_pb2.DT_DOUBLE and proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=np.float64)
    from tensorboard.util import tensor_util  # 0.1 s to import; TF2 histograms never need it

    return np.asarray(tensor_util.make_ndarray(proto), dtype=np.float64).reshape(-1)


def _values(raw: list) -> np.ndarray | list[np.ndarray]:
    """A series' values: one ``(n, k, 3)`` array when they come alike, else ``[k, 3]`` arrays."""
    kinds = set(map(type, raw))
    if kinds == {bytes} and len(set(map(len, raw))) == 1:
        return np.frombuffer(b"".join(raw), dtype=np.float64).reshape(len(raw), -1, 3)
    if kinds == {tuple}:
        return tf1_histograms.convert(raw)
    return [_rows(r) for r in raw]


def _rows(raw) -> np.ndarray:
    """One value as ``[k, 3]`` rows."""
    if type(raw) is bytes:
        return np.frombuffer(raw, dtype=np.float64).reshape(-1, 3)
    if type(raw) is tuple:
        return tf1_histograms.rows(raw)
    return raw
