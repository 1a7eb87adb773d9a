"""CRC-32C (Castagnoli) of many records at once, as TFRecord framing stores it.

TFRecord framing protects each length and each payload with a masked
CRC-32C. A byte-at-a-time Python loop (TensorBoard's fallback reader) costs
more than parsing the events, so there are two faster ways, one chosen at
import (:data:`DEFAULT_CRC32C`):

* google-crc32c's compiled code (the ``fast`` extra), one call per record
  with the CPU's CRC instructions. On the bench logs it checks every
  header and payload of a file 1.4-1.9x (80 MB of 100,000 TF2 histograms,
  where the Python call per record is most of its cost) to 6-9x (134 MB
  of 20,000 TF1 histograms) faster than numpy: the default when installed
  compiled (its pure-Python build is slower than numpy and never used).
* numpy (:func:`numpy_crc32c`), all records of a file advancing together
  16 bytes per step: the fallback, with no dependency beyond numpy.

The CRC is linear over GF(2), which is what makes the numpy one fast:

* Of each 16-byte step only the first 4 bytes meet the running CRC; the
  other 12 contribute a value that does not depend on it, so they are looked
  up for every step of every record in a few big vectorised passes, ahead
  of the sequential loop (slicing-by-16 with 16-bit tables).
* Leading zero bytes leave a zero register unchanged. Records are therefore
  right-aligned in a window whose width is a whole number of steps, the
  bytes before each record are zeroed, and its register starts at the value
  that those zeros turn into the standard initial value ``0xFFFFFFFF``:
  no record needs a ragged tail step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from tb_stagnation.sources.byte_windows import windows

try:
    import google_crc32c
except ImportError:  # the fast extra is not installed
    google_crc32c = None

_MASK_DELTA = np.uint32(0xA282EAD8)  # added by TFRecord's masking


def masked_crc32c(raw: bytes, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The masked CRC-32C TFRecord stores for ``raw[offsets[i]: offsets[i] + lengths[i]]``, for every ``i``.

    As TensorBoard's ``pywrap_tensorflow.masked_crc32c``, one uint32 per
    record, by :data:`DEFAULT_CRC32C`; a file's 8-byte length headers all
    at once by :func:`_crc32c_of_eight`.
    """
    lengths = np.asarray(lengths)
    if len(lengths) > 1 and (lengths == 8).all():
        return mask(_crc32c_of_eight(raw, offsets))
    return mask(DEFAULT_CRC32C(raw, offsets, lengths))


def mask(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masking: rotate right by 15 and add a constant."""
    crc = crc.astype(np.uint32)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA).astype(np.uint32)


def compiled_crc32c(raw: bytes, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC-32C of ``raw[offsets[i]: offsets[i] + lengths[i]]`` for every ``i``, by google-crc32c; uint32.

    google-crc32c takes ``bytes`` only (no memoryview), so each record is
    sliced out: copying costs less than the Python call around it.
    """
    starts = np.asarray(offsets, dtype=np.int64)
    stops = (starts + np.asarray(lengths, dtype=np.int64)).tolist()
    pieces = map(raw.__getitem__, map(slice, starts.tolist(), stops))
    return np.fromiter(map(google_crc32c.value, pieces), dtype=np.uint32, count=len(stops))


def numpy_crc32c(raw: bytes, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC-32C of ``raw[offsets[i]: offsets[i] + lengths[i]]`` for every ``i``, in numpy; uint32.

    Records are sorted longest first and cut into chunks of similar length,
    so the zero bytes that right-align a chunk's records in one width stay
    few.
    """
    buf = np.frombuffer(raw, dtype=np.uint8)
    lengths = np.asarray(lengths, dtype=np.int64)
    offsets = np.asarray(offsets, dtype=np.int64)
    out = np.zeros(len(lengths), dtype=np.uint32)  # the CRC of no bytes is 0
    order = np.argsort(-lengths, kind="stable")
    order = order[lengths[order] > 0]
    descending = -lengths[order]
    start = 0
    while start < len(order):
        longest = int(-descending[start])
        similar = int(np.searchsorted(descending, -(longest // 2), side="left"))
        stop = min(similar, start + max(_CHUNK_BYTES // longest, 1))
        idx = order[start:stop]
        out[idx] = _chunk(buf, offsets[idx], lengths[idx])
        start = stop
    return out


# The faster of the two that is installed (see the module's docstring).
DEFAULT_CRC32C: Callable[[bytes, np.ndarray, np.ndarray], np.ndarray] = (
    compiled_crc32c if google_crc32c is not None and google_crc32c.implementation == "c" else numpy_crc32c
)


_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_INITIAL = 0xFFFFFFFF
_STEP = 16  # bytes per sequential step
# Bytes of records prepared per pass: small enough to stay in cache.
_PASS_BYTES = 1 << 20
# Bytes of records per sequential loop: long vectors amortise numpy's
# per-call cost; the lookups held for the loop take half as many bytes.
_CHUNK_BYTES = 1 << 26


def _byte_tables() -> np.ndarray:
    """Row ``j``: the register contribution of a byte followed by ``j`` zero bytes."""
    t = np.arange(256, dtype=np.uint32)
    for _ in range(8):
        t = np.where(t & 1, (t >> 1) ^ np.uint32(_POLY), t >> 1).astype(np.uint32)
    tables = [t]
    for _ in range(_STEP - 1):
        prev = tables[-1]
        tables.append((prev >> 8) ^ t[prev & 0xFF])
    return np.stack(tables)


def _pair_tables(byte_tables: np.ndarray) -> np.ndarray:
    """Row ``q``: the contribution of the 16-bit pair at bytes ``2q, 2q + 1`` of a step.

    A pair's high byte is the later one, so it is followed by one zero byte fewer.
    """
    return np.stack(
        [
            np.bitwise_xor.outer(byte_tables[_STEP - 2 - 2 * q], byte_tables[_STEP - 1 - 2 * q]).ravel()
            for q in range(_STEP // 2)
        ]
    )


def _initial_registers(table: np.ndarray) -> np.ndarray:
    """Entry ``p``: the register that ``p`` zero bytes turn into ``0xFFFFFFFF``.

    One zero byte maps ``x`` to ``(x >> 8) ^ table[x & 0xFF]``; the top
    bytes of the table's entries are all distinct, so the top byte of the
    result tells which entry was used, and the step can be undone.
    """
    by_top = np.argsort(table >> 24).tolist()
    registers = [_INITIAL]
    for _ in range(_STEP - 1):
        y = registers[-1]
        low = by_top[y >> 24]
        registers.append(((y ^ int(table[low])) << 8 & 0xFFFFFFFF) | low)
    return np.array(registers, dtype=np.uint32)


class _Tables(NamedTuple):
    pairs: np.ndarray  # (8, 65536), 2 MB: see _pair_tables
    start: np.ndarray  # see _initial_registers
    keep: np.ndarray  # row p keeps all but the first p bytes of a step


@functools.cache
def _tables() -> _Tables:
    """The numpy CRC's tables, built on its first use: with google-crc32c, never."""
    byte_tables = _byte_tables()
    keep = np.where(np.arange(_STEP)[None, :] >= np.arange(_STEP)[:, None], 0xFF, 0).astype(np.uint8)
    return _Tables(_pair_tables(byte_tables), _initial_registers(byte_tables[0]), keep)

def _crc32c_of_eight(raw: bytes, offsets: np.ndarray) -> np.ndarray:
    """CRC-32C of the 8 bytes at each offset (TFRecord's length headers), for all of them at once.

    Slicing-by-8: with the initial register folded into the first four
    bytes, each byte's contribution is a lookup in the table of a byte
    followed by as many zero bytes as come after it. Eight lookups per
    record, vectorised over the file: 0.65 ms CPU for 20,000 headers (as
    many as tf2_medium's records), against 5-12 ms for a compiled call per
    header (most of it the call) and 3.5 ms to build the numpy CRC's 2 MB
    tables. ``windows`` copies, so the bytes are changed in place.
    """
    data = windows(np.frombuffer(raw, dtype=np.uint8), np.asarray(offsets, dtype=np.int64), 8)
    data[:, :4] ^= 0xFF  # the initial register, 0xFFFFFFFF
    tables = _eight_tables()
    crc = tables[7].take(data[:, 0])
    for i in range(1, 8):
        crc ^= tables[7 - i].take(data[:, i])
    return crc ^ np.uint32(_INITIAL)


@functools.cache
def _eight_tables() -> np.ndarray:
    """Row ``j``: a byte followed by ``j`` zero bytes, for ``j < 8`` (a fraction of a millisecond to build)."""
    return _byte_tables()[:8]


def _chunk(buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRCs of non-empty records sorted longest first."""
    steps = -(-lengths // _STEP)
    pad = steps * _STEP - lengths
    first = steps[0] - steps  # the step where each record's bytes begin; ascending
    tables = _tables()
    words, lookups = _prepare(buf, offsets + lengths, first, pad, int(steps[0]), tables)
    crc = tables.start[pad]
    live = np.searchsorted(first, np.arange(int(steps[0])), side="right")  # a prefix
    x = np.empty(len(crc), dtype=np.uint32)
    low = np.empty(len(crc), dtype=np.intp)
    high = np.empty(len(crc), dtype=np.intp)
    t0, t1 = tables.pairs[0], tables.pairs[1]
    for i, m in enumerate(live.tolist()):
        xm = np.bitwise_xor(crc[:m], words[i, :m], out=x[:m])
        r = t0.take(np.bitwise_and(xm, 0xFFFF, out=low[:m], casting="unsafe"))
        r ^= t1.take(np.right_shift(xm, 16, out=high[:m], casting="unsafe"))
        np.bitwise_xor(r, lookups[i, :m], out=crc[:m])
    return crc ^ np.uint32(_INITIAL)


def _prepare(
    buf: np.ndarray, ends: np.ndarray, first: np.ndarray, pad: np.ndarray, steps: int, tables: _Tables
) -> tuple[np.ndarray, np.ndarray]:
    """Per step and record: the word that meets the register, and the rest's contribution.

    Both come out as ``(steps, records)`` arrays, so the sequential loop
    reads contiguous rows; they are built a cache-sized pass of records at
    a time.
    """
    n, width = len(ends), steps * _STEP
    words = np.empty((steps, n), dtype=np.uint32)
    lookups = np.empty((steps, n), dtype=np.uint32)
    per_pass = max(_PASS_BYTES // width, 1)
    for a in range(0, n, per_pass):
        b = min(a + per_pass, n)
        data = windows(buf, ends[a:b] - width, width)
        data.reshape(b - a, steps, _STEP)[np.arange(b - a), first[a:b]] &= tables.keep[pad[a:b]]
        pairs = data.view("<u2").reshape(-1, _STEP // 2)
        acc = tables.pairs[2].take(pairs[:, 2].astype(np.intp))
        for q in range(3, _STEP // 2):
            acc ^= tables.pairs[q].take(pairs[:, q].astype(np.intp))
        lookups[:, a:b] = acc.reshape(b - a, steps).T
        words[:, a:b] = data.view("<u4").reshape(b - a, steps, _STEP // 4)[:, :, 0].T
    return words, lookups
