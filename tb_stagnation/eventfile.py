"""A direct reader of event files for the CLI: every sample, fast, and honest about damage.

TensorBoard's Python loader keeps a reservoir sample, converts TF1
histograms to float32 and, without TensorFlow installed, checks record CRCs
one byte at a time in Python. The CLI wants every sample, so it reads the
TFRecord framing itself: lengths and checksums are verified for all records
of a file at once (:mod:`tb_stagnation.crc32c`), and histograms become
numpy arrays in the same ``[k, 3]`` layout the data provider hands the
plugin (see :func:`histogram_from_proto`), so the two paths rank alike;
parity is tested on every writer's log.

Events are parsed with the protobuf library's C backend, except TF2
histograms laid out byte for byte like a parsed record of their tag, whose
step, wall time and tensor bytes are read in place (:func:`_layouts`).
Reading a parsed proto from Python costs more than parsing it, so each
record gets a few attribute reads at most, and each series becomes arrays
in a few numpy calls once its run is read.

Damage is reported, never fatal: a truncated last record (a writer still
writing), a record whose payload fails its CRC or does not parse, a header
that fails its CRC (the rest of that file cannot be framed and is skipped),
an empty file. Only local directories are read here; other paths go through
TensorBoard's own file-system layer (see :mod:`tb_stagnation.cli`).
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np
from google.protobuf.message import DecodeError
from numpy.lib.stride_tricks import sliding_window_view
from tensorboard.compat.proto import event_pb2, summary_pb2, types_pb2

from tb_stagnation import crc32c, drift, exact, metadata

_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the payload
_LENGTH = struct.Struct("<Q")
# Keys of a serialised HistogramProto: fields 1-5 (min, max, num, sum,
# sum_squares) are doubles; 6 and 7 (bucket_limit, bucket) packed doubles.
_FIXED64_KEYS = frozenset({0x09, 0x11, 0x19, 0x21, 0x29})
_LIMITS_KEY, _COUNTS_KEY = 0x32, 0x3A
# Keys along the way to a TF2 histogram's bytes: Event.wall_time (1, fixed64),
# Event.step (2, varint), Event.summary (5), Summary.value (1), Value.tag (1),
# Value.tensor (8), TensorProto.tensor_content (4); the last five length-delimited.
_WALL_TIME_KEY, _STEP_KEY = 0x09, 0x10
_SUMMARY_KEY, _VALUE_KEY, _TAG_KEY, _TENSOR_KEY, _CONTENT_KEY = 0x2A, 0x0A, 0x0A, 0x42, 0x22
# Bytes read from the start of each record to group it by tag and length:
# wall time, step, three keys and lengths, 48 of tag and often all the
# bytes up to the tensor's. Shorter records are parsed (a TF2 histogram of
# 30 buckets has 720 bytes of tensor).
_LAYOUT_HEAD_BYTES = 128


@dataclasses.dataclass(frozen=True)
class Skip:
    """Part of a file that could not be used, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclasses.dataclass
class _Series:
    """One tag's samples in the order read.

    ``values`` is one ``(n, k, 3)`` array when all samples have the same
    layout (TF2 histograms with a fixed bucket count, TF1 histograms padded
    with zero rows), else a list of ``[k, 3]`` arrays; ``drift`` takes both.
    """

    steps: Sequence[int]
    wall_times: Sequence[float]
    values: np.ndarray | list[np.ndarray]


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
        keys = [(run, tag) for run, tags in self.histograms.items() for tag in tags]
        series = [self.histograms[run][tag] for run, tag in keys]
        result: dict[str, dict[str, drift.Summary]] = {run: {} for run in self.histograms}
        for (run, tag), summary in zip(keys, drift.summarise_all([(s.steps, s.wall_times, s.values) for s in series])):
            result[run][tag] = summary
        return result

    def exact(self) -> exact.ExactData:
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
    raw, offsets, ends, skipped = _intact_records(path)
    return [raw[a:b] for a, b in zip(offsets.tolist(), ends.tolist())], skipped


def _intact_records(path: str) -> tuple[bytes, np.ndarray, np.ndarray, list[Skip]]:
    """A file's bytes, where its intact payloads start and end, and what was skipped."""
    raw, offsets, ends, skipped = _frame_file(path)
    intact = _intact(raw, offsets, ends)
    return raw, offsets[intact], ends[intact], skipped + _crc_failures(path, intact)


def _frame_file(path: str) -> tuple[bytes, np.ndarray, np.ndarray, list[Skip]]:
    """A file's bytes, where its framed payloads start and end, and what was skipped."""
    with open(path, "rb") as f:
        raw = f.read()
    if not raw:  # a writer that has just created its file
        return raw, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), []
    return (raw, *_frame(raw, path))


def _frame(raw: bytes, path: str) -> tuple[np.ndarray, np.ndarray, list[Skip]]:
    """Payload offsets and ends, stopping where the framing can no longer be trusted.

    A length is only trusted once its header CRC matches: a corrupted
    length would otherwise pass for a record still being written.
    """
    heads, end = _walk(raw)
    size = len(raw)
    bounds = np.array(heads + [end], dtype=np.int64)  # record i spans bounds[i]: bounds[i + 1]
    checked = bounds if end + _HEADER <= size else bounds[:-1]
    ok = _headers_ok(np.frombuffer(raw, dtype=np.uint8), checked)
    if not ok.all():
        bad = int(np.argmin(ok))
        where = int(checked[bad])
        reason = (
            "not an event file (no valid record header at byte 0); skipped whole"
            if where == 0
            else f"record header at byte {where} failed its CRC check; "
            f"the rest of the file ({size - where} bytes) was skipped"
        )
        return bounds[:bad] + _HEADER, bounds[1 : bad + 1] - _FOOTER, [Skip(path, reason)]
    offsets, ends = bounds[:-1] + _HEADER, bounds[1:] - _FOOTER
    if end < size:
        return offsets, ends, [Skip(path, f"last {size - end} bytes hold an incomplete record (still being written?)")]
    return offsets, ends, []


def _walk(raw: bytes) -> tuple[list[int], int]:
    """Where each complete record starts, by its stated length, and where the last one ends.

    The one sequential pass over a file, so it does nothing else.
    """
    unpack = _LENGTH.unpack_from
    heads: list[int] = []
    append = heads.append
    size, pos = len(raw), 0
    last = size - _HEADER
    while pos <= last:
        after = pos + _HEADER + _FOOTER + unpack(raw, pos)[0]
        if after > size:
            break
        append(pos)
        pos = after
    return heads, pos


def _headers_ok(buf: np.ndarray, heads: np.ndarray) -> np.ndarray:
    """Whether each record header's length matches its CRC."""
    return crc32c.masked(crc32c.crc32c(buf, heads, np.full(len(heads), 8))) == _u32_at(buf, heads + 8)


def _intact(raw: bytes, offsets: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each payload matches its CRC."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    return crc32c.masked(crc32c.crc32c(buf, offsets, ends - offsets)) == _u32_at(buf, ends)


def _u32_at(buf: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """The little-endian uint32 at each position."""
    return crc32c.windows(buf, positions, 4).view("<u4")[:, 0]


def _crc_failures(path: str, intact: np.ndarray) -> list[Skip]:
    failed = int(len(intact) - np.count_nonzero(intact))
    return [Skip(path, f"{failed} record(s) failed the payload CRC check")] if failed else []


class _Layout(NamedTuple):
    """How the records of one TF2 histogram tag are laid out (see :func:`_layouts`)."""

    tag: str
    before: bytes  # from the summary's key to the tensor's bytes
    width: int  # bytes of tensor
    behind: bytes  # after the tensor's bytes: the rest of the value, its metadata say

    def size(self) -> int:
        """Bytes from the summary's key to the record's end."""
        return len(self.before) + self.width + len(self.behind)


class _Known(NamedTuple):
    """TF2 histogram records told by layout (see :func:`_layouts`); per record of the file."""

    which: np.ndarray  # index into layouts, -1 for a record to parse
    layouts: list[_Layout]
    steps: np.ndarray
    wall_times: np.ndarray
    content_at: np.ndarray  # where the tensor's bytes start


def _layouts(raw: bytes, offsets: np.ndarray, ends: np.ndarray) -> _Known:
    """Per record: the layout, step, wall time and tensor position of TF2 histograms known by layout.

    A TF2 writer lays out every histogram of a tag alike: wall time, step,
    then the summary of one value, whose tensor's bytes sit among bytes
    that do not change. Records are grouped by tag and length; one record
    of each group is parsed by the protobuf library and its layout checked
    field by field (:func:`_layout`). Every record whose bytes match it
    except in wall time, step and tensor bytes, all three read in place,
    parses to the same event with those three replaced: no other record is
    told by layout.
    """
    n = len(offsets)
    heads = _Heads(np.frombuffer(raw, dtype=np.uint8), offsets, ends)
    which, layouts = _match_layouts(raw, offsets, ends, heads)
    known = np.flatnonzero(which >= 0)
    record = heads.numbers[known]
    layout_of = np.full(n, -1)
    layout_of[record] = which[known]
    steps, wall_times = np.zeros(n, dtype=np.int64), np.zeros(n)
    steps[record], wall_times[record] = heads.step[known], heads.wall_time()[known]
    content_at = np.zeros(n, dtype=np.int64)
    behind = np.array([len(x.behind) + x.width for x in layouts], dtype=np.int64)
    content_at[record] = ends[record] - behind[which[known]]
    return _Known(layout_of, layouts, steps, wall_times, content_at)


def _match_layouts(
    raw: bytes, offsets: np.ndarray, ends: np.ndarray, heads: _Heads
) -> tuple[np.ndarray, list[_Layout]]:
    """Per head, which of the layouts found its record has (-1: none of them)."""
    layouts: list[_Layout] = []
    which = np.full(len(heads.numbers), -1)
    order = np.argsort(heads.group, kind="stable")
    for members in np.split(order, np.flatnonzero(np.diff(heads.group[order])) + 1):
        while len(members) > 1:  # a lone record gains nothing by its layout
            first = int(heads.numbers[members[0]])
            layout = _layout(raw, int(offsets[first]), int(offsets[first] + heads.after[members[0]]), int(ends[first]))
            if layout is None:
                break
            alike = heads.alike(members, layout)
            which[members[alike]] = len(layouts)
            layouts.append(layout)
            if np.count_nonzero(alike) <= 1:  # no two records of the group alike: stop parsing them
                break
            members = members[~alike]  # another layout of the same tag and length, say
    return which, layouts


class _Heads:
    """The records laid out as wall time, step, then a summary whose first value starts with its tag.

    Per record kept: its number, ``start`` and ``end`` in the file, where
    its summary starts (``after``, from ``start``) and the ``rest`` of its
    bytes from there, its step, and a hash of ``rest`` and the tag's first
    48 bytes (``group``). Each record's first bytes are copied once and
    read in place: one scattered read of the file, not one per field.
    """

    def __init__(self, buf: np.ndarray, offsets: np.ndarray, ends: np.ndarray) -> None:
        self.buf = buf
        numbers = np.flatnonzero(ends - offsets >= _LAYOUT_HEAD_BYTES)
        self.head = head = crc32c.windows(buf, offsets[numbers], _LAYOUT_HEAD_BYTES)
        rows = np.arange(len(numbers))
        step, size = _varints(head, rows, np.full(len(rows), 10), 9)  # 9 bytes hold any step >= 0
        keep = (head[:, 0] == _WALL_TIME_KEY) & (head[:, 9] == _STEP_KEY) & (size > 0)
        after = pos = 10 + size  # where the summary starts
        for key in (_SUMMARY_KEY, _VALUE_KEY, _TAG_KEY):
            length, size = _varints(head, rows, pos + 1, 3)  # up to 2 MB
            keep &= (head[rows, pos] == key) & (size > 0)
            pos = pos + 1 + size
        self.rows = rows = np.flatnonzero(keep)  # into head, one per record kept
        self.numbers = numbers[rows]
        self.start = offsets[self.numbers]
        self.after, self.step, pos, length = after[rows], step[rows].astype(np.int64), pos[rows], length[rows]
        tag = sliding_window_view(head, 48, axis=1)[rows, pos] * (np.arange(48) < length[:, None])
        self.end = ends[self.numbers]
        self.rest = self.end - self.start - self.after
        group = self.rest.astype(np.uint64)
        for word in tag.view("<u8").T:  # a prefix of the tag
            group = (group ^ word) * np.uint64(0x9E3779B97F4A7C15)  # equal bytes, equal hash; rarely the reverse
        self.group = group

    def wall_time(self) -> np.ndarray:
        """Per record kept, its wall time."""
        return np.ascontiguousarray(self.head[self.rows, 1:9]).view("<f8")[:, 0]

    def alike(self, members: np.ndarray, layout: _Layout) -> np.ndarray:
        """Whether each member holds the layout's bytes before and behind as many tensor bytes as it."""
        alike = self.rest[members] == layout.size()
        near = members[alike]
        at = self.after[near, None] + np.arange(len(layout.before))
        if at.max(initial=0) < _LAYOUT_HEAD_BYTES:
            before = self.head.ravel().take(self.rows[near, None] * _LAYOUT_HEAD_BYTES + at)
        else:
            before = self.buf.take(self.start[near, None] + at)
        behind = self.buf.take(self.end[near, None] + np.arange(-len(layout.behind), 0))
        alike[alike] = (before == np.frombuffer(layout.before, dtype=np.uint8)).all(axis=1) & (
            behind == np.frombuffer(layout.behind, dtype=np.uint8)
        ).all(axis=1)
        return alike


def _varints(head: np.ndarray, rows: np.ndarray, at: np.ndarray, most: int) -> tuple[np.ndarray, np.ndarray]:
    """The protobuf varint at ``head[rows, at]``: its value, and its size in bytes (0 if over ``most``)."""
    value = np.zeros(len(rows), dtype=np.uint64)
    size = np.zeros(len(rows), dtype=np.int64)
    going = np.ones(len(rows), dtype=bool)
    for i in range(most):  # most varints end after a byte or two
        byte = head[rows, at + i]
        value |= np.where(going, byte & 0x7F, 0).astype(np.uint64) << np.uint64(7 * i)
        ended = going & (byte < 0x80)
        size[ended] = i + 1
        going &= ~ended
        if not going.any():
            break
    return value, size


def _layout(raw: bytes, start: int, after: int, end: int) -> _Layout | None:
    """The layout of a record holding one TF2 histogram (a float64 tensor of ``[k, 3]`` bytes); else None.

    From the summary on, the record must hold exactly one summary with one
    value with one tensor field; the tensor's bytes are those of its last
    ``tensor_content`` field, as the protobuf library reads them.
    """
    try:
        event = event_pb2.Event.FromString(raw[start:end])
    except DecodeError:
        return None
    values = event.summary.value
    if len(values) != 1 or values[0].WhichOneof("value") != "tensor":
        return None
    tensor = values[0].tensor
    width = len(tensor.tensor_content)
    if not width or width % 24 or tensor.dtype != types_pb2.DT_DOUBLE:
        return None
    fields = _fields(raw, after, end)  # the event's fields after the step
    for key in (_SUMMARY_KEY, _VALUE_KEY):  # one summary, holding one value
        if fields is None or [k for k, _, _ in fields] != [key]:
            return None
        fields = _fields(raw, fields[0][1], end)
    if fields is None or [k for k, _, _ in fields].count(_TENSOR_KEY) != 1:
        return None
    _, tensor_at, tensor_end = next(f for f in fields if f[0] == _TENSOR_KEY)
    fields = _fields(raw, tensor_at, tensor_end)
    contents = [f for f in fields or [] if f[0] == _CONTENT_KEY]
    if fields is None or not contents or contents[-1][2] - contents[-1][1] != width:
        return None
    _, content_at, content_end = contents[-1]
    return _Layout(values[0].tag, raw[after:content_at], width, raw[content_end:end])


def _fields(raw: bytes, pos: int, end: int) -> list[tuple[int, int, int]] | None:
    """Key, and where the value starts and ends, of each field of the message in ``raw[pos: end]``.

    The protobuf library has parsed these bytes, so they are well formed;
    None for a message holding a group, which this reader never needs.
    """
    fields = []
    while pos < end:
        key, pos = _varint(raw, pos)
        wire, start = key & 7, pos
        if wire == 0:
            _, pos = _varint(raw, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, start = _varint(raw, pos)
            pos = start + length
        elif wire == 5:
            pos += 4
        else:
            return None
        fields.append((key, start, pos))
    return fields


def histogram_from_proto(h: summary_pb2.HistogramProto) -> np.ndarray:
    """A TF1 ``HistogramProto`` as ``[k, 3]`` rows, as TensorBoard's loaders convert it.

    Empty outer buckets are dropped and the outer edges become the recorded
    min and max (TF1's outermost limits are +-DBL_MAX). Kept in float64,
    where the Python loader rounds to float32. The reader converts whole
    series at once (:func:`_histograms`); this is the reference, and
    the fallback for protos whose limits and counts differ in number.
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
    data = LogData(histograms={}, exact_content={}, exact_data={}, skipped=[], files=0, records=0)
    runs = event_files(logdir)
    total = sum(len(files) for files in runs.values())
    for run, files in runs.items():
        tags = _Run()
        for path in files:
            _read_file(path, tags, data)
            if progress is not None:
                progress(data.files, total)
        tags.store(run, data)
    return data


def _read_file(path: str, tags: _Run, data: LogData) -> None:
    """Read one file of a run into ``tags``; its damage and counts into ``data``."""
    raw, offsets, ends, skipped = _intact_records(path)
    bad = tags.read(raw, offsets, ends)
    data.skipped.extend(skipped)
    if bad:
        data.skipped.append(Skip(path, f"{bad} record(s) or value(s) could not be read"))
    data.files += 1
    data.records += len(offsets)


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

    def series(self) -> _Series:
        """The samples in the order of the files, whichever way each was read."""
        if not self.blocks:
            return _Series(self.steps, self.wall_times, _values(self.raw))
        parts = [(self.steps, self.wall_times, _values(self.raw), self.positions)] if self.raw else []
        parts += self.blocks
        order = np.argsort(np.concatenate([np.asarray(p[3], dtype=np.int64) for p in parts]), kind="stable")
        values = [v for _, _, v, _ in parts]
        if all(isinstance(v, np.ndarray) and v.shape[1:] == values[0].shape[1:] for v in values):
            values = np.concatenate(values)[order]
        else:  # layouts differ: one [k, 3] array per sample
            every = [row for v in values for row in v]
            values = [every[i] for i in order.tolist()]
        return _Series(
            np.concatenate([np.asarray(p[0], dtype=np.int64) for p in parts])[order],
            np.concatenate([np.asarray(p[1], dtype=np.float64) for p in parts])[order],
            values,
        )


class _Run:
    """What one run's files hold, read so far."""

    def __init__(self) -> None:
        self.plugin_of: dict[str, str] = {}  # tag -> plugin, from the first value that names it
        self.samples: dict[str, _Samples] = {}
        self.tf2: dict[str, _Samples] = {}  # the tags whose plugin is histograms
        self.exact_content: dict[str, bytes] = {}
        self.exact_data: dict[str, list[_Datum]] = {}
        self._file = 0  # which file, in the high bits of a position
        self._position = -1  # of the record being parsed, among the run's files
        self._named_at: dict[str, int] = {}  # tag -> position of the record naming its plugin

    def read(self, raw: bytes, offsets: np.ndarray, ends: np.ndarray) -> int:
        """File every value of the events in ``raw[offsets[i]: ends[i]]``; count what could not be read.

        TF2 histograms laid out like another record of their tag (see
        :func:`_layouts`) are filed a whole layout at a time, their tensors
        copied out of the file in one numpy call; the rest are parsed
        first, which names the plugin of every tag whose metadata sits on
        its first write only.
        """
        known = _layouts(raw, offsets, ends)
        parsed = known.which < 0
        self._file += 1 << 48  # positions: file, then offset in it
        bad = self._parse(raw, offsets[parsed], ends[parsed])
        order = np.argsort(known.which, kind="stable")
        cuts = np.searchsorted(known.which[order], np.arange(len(known.layouts) + 1))
        buf = np.frombuffer(raw, dtype=np.uint8)
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
            values = crc32c.windows(buf, known.content_at[members], layout.width)
            self.tf2[layout.tag].add(
                known.steps[members], known.wall_times[members], values.view("<f8").reshape(len(members), -1, 3), positions
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
            samples = self.tf2.get(value.tag)
            if samples is not None:
                tensor = value.tensor
                content = tensor.tensor_content
                if content and tensor.dtype == types_pb2.DT_DOUBLE and not len(content) % 24:
                    samples.append(event.step, event.wall_time, content, self._position)
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
        if plugin == metadata.HISTOGRAMS_PLUGIN_NAME:
            samples = self.tf2[tag] = self._samples(tag)
            tensor = value.tensor
            content = tensor.tensor_content
            if content and tensor.dtype == types_pb2.DT_DOUBLE:
                if len(content) % 24:  # not [k, 3] float64
                    return 1
                raw = content
            else:
                try:
                    raw = _tensor(tensor).reshape(-1, 3)
                except ValueError:  # not [k, 3] or not numeric
                    return 1
            samples.append(event.step, event.wall_time, raw, self._position)
        elif plugin == metadata.PLUGIN_NAME:
            datum = self.exact_data.setdefault(tag, [])
            try:
                datum.append(_Datum(event.step, float(_tensor(value.tensor)[0])))
            except (ValueError, IndexError):  # not numeric, or empty
                return 1
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
        if plugin == metadata.PLUGIN_NAME:
            self.exact_content[tag] = value.metadata.plugin_data.content
        return plugin

    def _histo(self, event, value) -> int:
        """File a TF1 histogram; 1 if it could not be read."""
        samples = self._samples(value.tag)
        histo = value.histo
        raw = _histogram_parts(histo)
        if raw is None:
            try:
                raw = histogram_from_proto(histo)
            except ValueError:  # fewer limits than buckets
                return 1
        samples.append(event.step, event.wall_time, raw, self._position)
        return 0

    def _samples(self, tag: str) -> _Samples:
        samples = self.samples.get(tag)
        if samples is None:
            samples = self.samples[tag] = _Samples()
        return samples

    def store(self, run: str, data: LogData) -> None:
        """Hand this run's series to ``data``, converted to arrays."""
        if self.samples:
            data.histograms[run] = {tag: samples.series() for tag, samples in self.samples.items()}
        if self.exact_content:
            data.exact_content[run] = self.exact_content
        if self.exact_data:
            data.exact_data[run] = self.exact_data


def _tensor(proto) -> np.ndarray:
    """A tensor's values as float64, read-only."""
    if proto.dtype == types_pb2.DT_DOUBLE and proto.tensor_content:
        return np.frombuffer(proto.tensor_content, dtype=np.float64)
    from tensorboard.util import tensor_util  # 0.1 s to import; TF2 histograms never need it

    return np.asarray(tensor_util.make_ndarray(proto), dtype=np.float64).reshape(-1)


def _histogram_parts(h: summary_pb2.HistogramProto) -> tuple[float, float, bytes, bytes] | None:
    """A TF1 histogram's min, max and its packed limits and counts; None if not packed alike.

    Reading the repeated fields through the proto costs a Python float per
    bucket; its serialisation holds them as packed little-endian doubles,
    which numpy reads in place. Anything unexpected goes the slow way.
    """
    blob = h.SerializeToString()
    limits = counts = b""
    pos, size = 0, len(blob)
    while pos < size:
        key = blob[pos]
        if key in _FIXED64_KEYS:
            pos += 9
            continue
        if key != _LIMITS_KEY and key != _COUNTS_KEY:  # unpacked doubles, unknown fields
            return None
        length, pos = _varint(blob, pos + 1)
        if key == _LIMITS_KEY:
            limits = blob[pos : pos + length]
        else:
            counts = blob[pos : pos + length]
        pos += length
    if len(limits) != len(counts) or len(counts) % 8:
        return None
    return h.min, h.max, limits, counts


def _varint(blob: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at ``pos``, and the position after it."""
    value = shift = 0
    while True:
        byte = blob[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _values(raw: list) -> np.ndarray | list[np.ndarray]:
    """A series' values: one ``(n, k, 3)`` array when they come alike, else ``[k, 3]`` arrays."""
    kinds = set(map(type, raw))
    if kinds == {bytes} and len(set(map(len, raw))) == 1:
        return np.frombuffer(b"".join(raw), dtype=np.float64).reshape(len(raw), -1, 3)
    if kinds == {tuple}:
        return _histograms(raw)[0]
    return [_rows(r) for r in raw]


def _rows(raw) -> np.ndarray:
    """One value as ``[k, 3]`` rows."""
    if type(raw) is bytes:
        return np.frombuffer(raw, dtype=np.float64).reshape(-1, 3)
    if type(raw) is tuple:
        stacked, sizes = _histograms([raw])
        return stacked[0, : sizes[0]]
    return raw


def _histograms(parts: list[tuple[float, float, bytes, bytes]]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`histogram_from_proto` of many histograms at once, as drift reads it.

    Only the buckets with a positive count become rows: they are all that
    drift keeps of :func:`histogram_from_proto`'s rows (see
    ``histogram.clean``), and TF's default limits leave most buckets of a
    series empty (~150 counted of ~500), so every later step is the
    cheaper. A histogram whose rows there would hold a non-finite number
    gets a NaN count, so drift flags it just the same. Returns one
    ``(n, k, 3)`` array, zero rows padding, and the rows of each.
    """
    counts = np.frombuffer(b"".join(p[3] for p in parts), dtype="<f8")
    limits = np.frombuffer(b"".join(p[2] for p in parts), dtype="<f8")
    ends = np.cumsum([len(p[3]) // 8 for p in parts], dtype=np.int64)
    counted = np.flatnonzero(counts > 0)
    owner = np.searchsorted(ends, counted, side="right")
    sizes = np.bincount(owner, minlength=len(parts))
    out = np.zeros((len(parts), max(int(sizes.max(initial=0)), 1), 3))
    start = np.cumsum(sizes) - sizes  # of each histogram's rows, among all counted buckets
    slot = np.arange(len(counted)) - start[owner]
    out[owner, slot, 0] = limits[np.maximum(counted - 1, 0)]  # a row's left edge is the previous limit
    out[owner, slot, 1] = limits[counted]
    out[owner, slot, 2] = counts[counted]
    spanned = np.flatnonzero(sizes)
    bounds = np.array([(p[0], p[1]) for p in parts]).reshape(-1, 2)[spanned]
    out[spanned, 0, 0] = bounds[:, 0]  # the outer edges: min and max
    out[spanned, sizes[spanned] - 1, 1] = bounds[:, 1]
    first, last = counted[start[spanned]], counted[start[spanned] + sizes[spanned] - 1]
    out[spanned[_nonfinite_spans(counts, limits, first, last, bounds)], 0, 2] = np.nan
    return out, sizes


def _nonfinite_spans(
    counts: np.ndarray, limits: np.ndarray, first: np.ndarray, last: np.ndarray, bounds: np.ndarray
) -> np.ndarray:
    """Per histogram: whether :func:`histogram_from_proto`'s rows would hold a non-finite number.

    Those rows run from its ``first`` to its ``last`` positive count, empty
    ones between included: their counts, the limits between them, and the
    ``bounds`` (min, max).
    """
    bad_counts = np.concatenate([[0], np.cumsum(~np.isfinite(counts))])
    bad_limits = np.concatenate([[0], np.cumsum(~np.isfinite(limits))])
    return (
        (bad_counts[last + 1] > bad_counts[first])
        | (bad_limits[last] > bad_limits[first])
        | ~np.isfinite(bounds).all(axis=1)
    )
