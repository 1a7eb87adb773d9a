"""TFRecord framing of event files: where each intact payload lies, and what was skipped.

A file is a sequence of records: a uint64 length, the masked CRC-32C of
those 8 bytes, the payload, and the payload's masked CRC-32C. The lengths
are walked once, in Python (each depends on the one before); every
checksum of the file is then verified at once (:mod:`tb_stagnation.sources.crc32c`).

Damage is reported, never fatal: a truncated last record (a writer still
writing), a payload that fails its CRC, a header that fails its CRC (the
rest of that file cannot be framed and is skipped), an empty file.

Writing is the same framing the other way (:func:`framed`), for the
import's own event files.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from tb_stagnation import storage
from tb_stagnation.sources.byte_windows import windows
from tb_stagnation.sources.crc32c import masked_crc32c

_HEADER = 12  # uint64 length + uint32 masked CRC of the length
_FOOTER = 4  # uint32 masked CRC of the payload
_LENGTH, _CRC = struct.Struct("<Q"), struct.Struct("<I")


def records(path: str) -> tuple[list[bytes], list[Skip]]:
    """The intact payloads of one file, and what was skipped."""
    raw, offsets, ends, skipped = intact_records(path)
    return [raw[a:b] for a, b in zip(offsets.tolist(), ends.tolist())], skipped


@dataclasses.dataclass(frozen=True)
class Skip:
    """Part of a file that could not be used, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def intact_records(path: str) -> tuple[bytes, np.ndarray, np.ndarray, list[Skip]]:
    """A file's bytes, where its intact payloads start and end, and what was skipped.

    The payloads stay in the file's bytes, so that the reader can take
    many of them apart in place.
    """
    raw, offsets, ends, skipped = framed_records(path)
    intact = _intact(raw, offsets, ends)
    return raw, offsets[intact], ends[intact], skipped + _crc_failures(path, intact)


def framed_records(path: str) -> tuple[bytes, np.ndarray, np.ndarray, list[Skip]]:
    """A file's bytes, where its framed payloads start and end (their CRCs unchecked), and what was skipped."""
    raw = storage.read_bytes(path)  # whole: one request for a file in a bucket
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
    ok = _headers_ok(raw, checked)
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


def _headers_ok(raw: bytes, heads: np.ndarray) -> np.ndarray:
    """Whether each record header's length matches its CRC."""
    return masked_crc32c(raw, heads, np.full(len(heads), 8)) == _u32_at(raw, heads + 8)


def _intact(raw: bytes, offsets: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Whether each payload matches its CRC."""
    return masked_crc32c(raw, offsets, ends - offsets) == _u32_at(raw, ends)


def _u32_at(raw: bytes, positions: np.ndarray) -> np.ndarray:
    """The little-endian uint32 at each position: the checksums as stored."""
    return windows(np.frombuffer(raw, dtype=np.uint8), positions, 4).view("<u4")[:, 0]


def _crc_failures(path: str, intact: np.ndarray) -> list[Skip]:
    failed = int(len(intact) - np.count_nonzero(intact))
    return [Skip(path, f"{failed} record(s) failed the payload CRC check")] if failed else []


def framed(payload: bytes) -> bytes:
    """``payload`` as one TFRecord: its length, the length's masked CRC-32C, itself, its masked CRC-32C.

    The bytes TensorBoard's ``RecordWriter`` writes, framed here because
    importing that class imports all of ``tensorboard.summary`` (every
    summary API, ~0.7 s: a fifth of a 0.75 GB import) for a dozen lines.
    """
    record = _LENGTH.pack(len(payload)) + payload
    head_crc, payload_crc = masked_crc32c(record, np.array([0, 8]), np.array([8, len(payload)]))
    return record[:8] + _CRC.pack(head_crc) + payload + _CRC.pack(payload_crc)

