"""A direct reader of event files for the CLI: every sample, fast, and honest about damage.

TensorBoard's Python loader keeps a reservoir sample, converts TF1
histograms to float32 and, without TensorFlow installed, checks record CRCs
one byte at a time in Python. The CLI wants every sample, so it reads the
TFRecord framing itself: lengths and checksums are verified for all records
of a file at once (:mod:`tb_stagnation.crc32c`), events are parsed with the
protobuf library's C backend, and histograms become numpy arrays in the same
``[k, 3]`` layout the data provider hands the plugin (see
:func:`histogram_from_proto`), so the two paths rank alike; parity is
tested on every writer's log.

Damage is reported, never fatal: a truncated last record (a writer still
writing), a record whose payload fails its CRC or does not parse, a header
that fails its CRC (the rest of that file cannot be framed and is skipped),
an empty file. Only local directories are read here; other paths go through
TensorBoard's own file-system layer (see :mod:`tb_stagnation.cli`).
"""

from __future__ import annotations

import collections
import dataclasses
import os
import struct
from collections.abc import Callable

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2
from tensorboard.util import tensor_util

from tb_stagnation import crc32c, drift, exact, metadata

_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the payload


@dataclasses.dataclass(frozen=True)
class Skip:
    """Part of a file that could not be used, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclasses.dataclass
class _Series:
    steps: list[int] = dataclasses.field(default_factory=list)
    wall_times: list[float] = dataclasses.field(default_factory=list)
    values: list = dataclasses.field(default_factory=list)


@dataclasses.dataclass(frozen=True)
class _Datum:
    """The shape of a data-provider datum, for :func:`exact.collect_exact`."""

    step: int
    value: float


@dataclasses.dataclass(frozen=True)
class _Listing:
    plugin_content: bytes


@dataclasses.dataclass
class LogData:
    """Everything the CLI ranks, read from one log directory."""

    histograms: dict[str, dict[str, _Series]]
    exact_content: dict[str, dict[str, bytes]]
    exact_data: dict[str, dict[str, list[_Datum]]]
    skipped: list[Skip]
    files: int
    records: int

    def summaries(self) -> dict[str, dict[str, drift.Summary]]:
        return {
            run: {
                tag: drift.summarise(drift.analyse(s.steps, s.wall_times, s.values))
                for tag, s in tags.items()
            }
            for run, tags in self.histograms.items()
        }

    def exact(self) -> dict[str, dict[str, exact.ExactSeries]]:
        listing = {
            run: {tag: _Listing(content) for tag, content in tags.items()}
            for run, tags in self.exact_content.items()
        }
        return exact.collect_exact(listing, self.exact_data)


def event_files(logdir: str) -> dict[str, list[str]]:
    """run -> event files, named as TensorBoard names runs (``.`` for the root)."""
    runs: dict[str, list[str]] = {}
    for directory, _, files in sorted(os.walk(logdir)):
        found = sorted(f for f in files if "tfevents" in f)
        if found:
            run = os.path.relpath(directory, logdir)
            runs[run] = [os.path.join(directory, f) for f in found]
    return runs


def records(path: str) -> tuple[list[bytes], list[Skip]]:
    """The intact payloads of one file, and what was skipped."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw:
        return [], []  # a writer that has just created its file
    offsets, lengths, skipped = _frame(raw, path)
    if not offsets:
        return [], skipped
    buf = np.frombuffer(raw, dtype=np.uint8)
    offs, lens = np.array(offsets, dtype=np.int64), np.array(lengths, dtype=np.int64)
    expected = np.frombuffer(b"".join(raw[o + n : o + n + 4] for o, n in zip(offsets, lengths)), dtype="<u4")
    good = crc32c.masked(crc32c.crc32c(buf, offs, lens)) == expected
    if not good.all():
        skipped.append(Skip(path, f"{int((~good).sum())} record(s) failed the payload CRC check"))
    return [raw[o : o + n] for o, n, ok in zip(offsets, lengths, good.tolist()) if ok], skipped


def _frame(raw: bytes, path: str) -> tuple[list[int], list[int], list[Skip]]:
    """Payload offsets and lengths, stopping where the framing can no longer be trusted.

    A length is only trusted once its header CRC matches: a corrupted
    length would otherwise pass for a record still being written.
    """
    offsets, lengths = [], []
    size, pos = len(raw), 0
    while pos + _HEADER <= size:
        (length,) = struct.unpack_from("<Q", raw, pos)
        if pos + _HEADER + length + _FOOTER > size:
            break
        offsets.append(pos + _HEADER)
        lengths.append(length)
        pos += _HEADER + length + _FOOTER
    headers = [o - _HEADER for o in offsets] + ([pos] if pos + _HEADER <= size else [])
    buf = np.frombuffer(raw, dtype=np.uint8)
    stored = np.frombuffer(b"".join(raw[h + 8 : h + 12] for h in headers), dtype="<u4")
    ok = crc32c.masked(crc32c.crc32c(buf, np.array(headers, dtype=np.int64), np.full(len(headers), 8))) == stored
    if not ok.all():
        bad = int(np.argmin(ok))
        where = headers[bad]
        reason = (
            "not an event file (no valid record header at byte 0); skipped whole"
            if where == 0
            else f"record header at byte {where} failed its CRC check; "
            f"the rest of the file ({size - where} bytes) was skipped"
        )
        return offsets[:bad], lengths[:bad], [Skip(path, reason)]
    if pos < size:
        return offsets, lengths, [
            Skip(path, f"last {size - pos} bytes hold an incomplete record (still being written?)")
        ]
    return offsets, lengths, []


def histogram_from_proto(h: summary_pb2.HistogramProto) -> np.ndarray:
    """A TF1 ``HistogramProto`` as ``[k, 3]`` rows, as TensorBoard's loaders convert it.

    Empty outer buckets are dropped and the outer edges become the recorded
    min and max (TF1's outermost limits are +-DBL_MAX). Kept in float64,
    where the Python loader rounds to float32.
    """
    counts = np.asarray(h.bucket, dtype=np.float64)
    nonzero = np.flatnonzero(counts > 0)
    if len(nonzero) == 0:
        return np.zeros((0, 3))
    start, end = nonzero[0], nonzero[-1]
    limits = np.asarray(h.bucket_limit, dtype=np.float64)
    inner = limits[start:end]
    lefts = np.concatenate([[h.min], inner])
    rights = np.concatenate([inner, [h.max]])
    return np.column_stack([lefts, rights, counts[start : end + 1]])


def read_logdir(logdir: str, progress: Callable[[int, int], None] | None = None) -> LogData:
    """Read every histogram and exact-movement scalar under ``logdir``."""
    data = LogData(
        histograms=collections.defaultdict(lambda: collections.defaultdict(_Series)),
        exact_content=collections.defaultdict(dict),
        exact_data=collections.defaultdict(lambda: collections.defaultdict(list)),
        skipped=[],
        files=0,
        records=0,
    )
    runs = event_files(logdir)
    total = sum(len(files) for files in runs.values())
    for run, files in runs.items():
        plugin_of: dict[str, str] = {}  # tag -> plugin, from the first value that names it
        for path in files:
            payloads, skipped = records(path)
            data.skipped.extend(skipped)
            data.files += 1
            data.records += len(payloads)
            bad = 0
            for payload in payloads:
                try:
                    event = event_pb2.Event.FromString(payload)
                except DecodeError:
                    bad += 1
                    continue
                for value in event.summary.value:
                    try:
                        _take(data, run, plugin_of, event, value)
                    except ValueError:  # a tensor that is not [k, 3] or not numeric
                        bad += 1
            if bad:
                data.skipped.append(Skip(path, f"{bad} record(s) or value(s) could not be read"))
            if progress is not None:
                progress(data.files, total)
    return data


def _take(data: LogData, run: str, plugin_of: dict[str, str], event, value) -> None:
    """File one summary value under its run and tag, if it is ours to read."""
    tag = value.tag
    if value.HasField("histo"):
        _append(data.histograms[run][tag], event, histogram_from_proto(value.histo))
        return
    if not value.HasField("tensor"):
        return
    if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
        if tag not in plugin_of:
            plugin_of[tag] = value.metadata.plugin_data.plugin_name
            if plugin_of[tag] == metadata.PLUGIN_NAME:
                data.exact_content[run][tag] = value.metadata.plugin_data.content
    plugin = plugin_of.get(tag)
    if plugin == metadata.HISTOGRAMS_PLUGIN_NAME:
        _append(data.histograms[run][tag], event, _tensor(value.tensor).reshape(-1, 3))
    elif plugin == metadata.PLUGIN_NAME:
        data.exact_data[run][tag].append(_Datum(event.step, float(_tensor(value.tensor)[0])))


def _tensor(proto) -> np.ndarray:
    """A tensor's values as float64, read-only.

    TF2 histograms (float64 with ``tensor_content``) are viewed in place:
    ``make_ndarray``'s dtype lookups and copy cost more than the parse.
    """
    if proto.dtype == types_pb2.DT_DOUBLE and proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=np.float64)
    return np.asarray(tensor_util.make_ndarray(proto), dtype=np.float64).reshape(-1)


def _append(series: _Series, event, values: np.ndarray) -> None:
    series.steps.append(event.step)
    series.wall_times.append(event.wall_time)
    series.values.append(values)
