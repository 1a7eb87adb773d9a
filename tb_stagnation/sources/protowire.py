"""Protobuf wire format, read by hand where the protobuf library would cost more.

Both fast paths of the event-file reader look inside serialised protos
without building Python objects for them: the TF2 layout check walks an
event's fields, the TF1 conversion finds a histogram's packed doubles.
"""

from __future__ import annotations


def varint(blob: bytes, pos: int) -> tuple[int, int]:
    """A protobuf varint at ``pos``, and the position after it."""
    value = shift = 0
    while True:
        byte = blob[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def fields(raw: bytes, pos: int, end: int) -> list[tuple[int, int, int]] | None:
    """Key, and where the value starts and ends, of each field of the message in ``raw[pos: end]``.

    The protobuf library has parsed these bytes, so they are well formed;
    None for a message holding a group, which this reader never needs.
    """
    found = []
    while pos < end:
        key, pos = varint(raw, pos)
        wire, start = key & 7, pos
        if wire == 0:
            _, pos = varint(raw, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, start = varint(raw, pos)
            pos = start + length
        elif wire == 5:
            pos += 4
        else:
            return None
        found.append((key, start, pos))
    return found
