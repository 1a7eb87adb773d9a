"""The TF2 histograms of an event file told by their byte layout, read without a protobuf parse.

Parsing a record and reading its fields from Python costs more than the
rest of reading a TF2 histogram. A TF2 writer lays out every histogram of
a tag alike, so a record whose bytes match a parsed one of its tag except
in wall time, step and tensor bytes parses to the same event with those
three replaced, and those are read in place for many records at once
(:func:`known_by_layout`). Every other record is left to the parser.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from google.protobuf.message import DecodeError
from numpy.lib.stride_tricks import sliding_window_view
from tensorboard.compat.proto import event_pb2, types_pb2

from tb_stagnation.sources import protowire
from tb_stagnation.sources.byte_windows import windows

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


def known_by_layout(raw: bytes, offsets: np.ndarray, ends: np.ndarray) -> Known:
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
    return Known(layout_of, layouts, steps, wall_times, content_at)


class Layout(NamedTuple):
    """How the records of one TF2 histogram tag are laid out (see :func:`known_by_layout`)."""

    tag: str
    before: bytes  # from the summary's key to the tensor's bytes
    width: int  # bytes of tensor
    behind: bytes  # after the tensor's bytes: the rest of the value, its metadata say

    def size(self) -> int:
        """Bytes from the summary's key to the record's end."""
        return len(self.before) + self.width + len(self.behind)


class Known(NamedTuple):
    """TF2 histogram records told by layout (see :func:`known_by_layout`); per record of the file."""

    which: np.ndarray  # index into layouts, -1 for a record to parse
    layouts: list[Layout]
    steps: np.ndarray
    wall_times: np.ndarray
    content_at: np.ndarray  # where the tensor's bytes start

    def values(self, raw: bytes, records: np.ndarray, layout: Layout) -> np.ndarray:
        """The ``(n, k, 3)`` tensors of these records of ``raw``, all of one layout, copied out at once."""
        tensors = windows(np.frombuffer(raw, dtype=np.uint8), self.content_at[records], layout.width)
        return tensors.view("<f8").reshape(len(records), -1, 3)


def _match_layouts(
    raw: bytes, offsets: np.ndarray, ends: np.ndarray, heads: _Heads
) -> tuple[np.ndarray, list[Layout]]:
    """Per head, which of the layouts found its record has (-1: none of them)."""
    layouts: list[Layout] = []
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
        self.head = head = windows(buf, offsets[numbers], _LAYOUT_HEAD_BYTES)
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

    def alike(self, members: np.ndarray, layout: Layout) -> np.ndarray:
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


def _layout(raw: bytes, start: int, after: int, end: int) -> Layout | None:
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
    fields = protowire.fields(raw, after, end)  # the event's fields after the step
    for key in (_SUMMARY_KEY, _VALUE_KEY):  # one summary, holding one value
        if fields is None or [k for k, _, _ in fields] != [key]:
            return None
        fields = protowire.fields(raw, fields[0][1], end)
    if fields is None or [k for k, _, _ in fields].count(_TENSOR_KEY) != 1:
        return None
    _, tensor_at, tensor_end = next(f for f in fields if f[0] == _TENSOR_KEY)
    fields = protowire.fields(raw, tensor_at, tensor_end)
    contents = [f for f in fields or [] if f[0] == _CONTENT_KEY]
    if fields is None or not contents or contents[-1][2] - contents[-1][1] != width:
        return None
    _, content_at, content_end = contents[-1]
    return Layout(values[0].tag, raw[after:content_at], width, raw[content_end:end])
