"""CRC-32C (Castagnoli) of many records at once, in numpy.

TFRecord framing protects each length and each payload with a masked
CRC-32C. A byte-at-a-time Python loop (TensorBoard's fallback reader) costs
more than parsing the events; here all records of a file advance together,
16 bytes per numpy step.

The CRC is linear over GF(2), which is what makes this fast:

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

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

_POLY = 0x82F63B78  # reflected Castagnoli polynomial
_INITIAL = 0xFFFFFFFF
_MASK_DELTA = np.uint32(0xA282EAD8)
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


_BYTES = _byte_tables()
_PAIRS = _pair_tables(_BYTES)  # (8, 65536): 2 MB
_START = _initial_registers(_BYTES[0])
# Row p keeps all but the first p bytes of a step.
_KEEP = np.where(np.arange(_STEP)[None, :] >= np.arange(_STEP)[:, None], 0xFF, 0).astype(np.uint8)


def crc32c(buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRC-32C of ``buf[offsets[i]: offsets[i] + lengths[i]]`` for every ``i``.

    ``buf`` is a uint8 array; the result is uint32, one per record. Records
    are sorted longest first and cut into chunks of similar length, so the
    zero bytes that right-align a chunk's records in one width stay few.
    """
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


def _chunk(buf: np.ndarray, offsets: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """CRCs of non-empty records sorted longest first."""
    steps = -(-lengths // _STEP)
    pad = steps * _STEP - lengths
    first = steps[0] - steps  # the step where each record's bytes begin; ascending
    words, lookups = _prepare(buf, offsets + lengths, first, pad, int(steps[0]))
    crc = _START[pad]
    live = np.searchsorted(first, np.arange(int(steps[0])), side="right")  # a prefix
    x = np.empty(len(crc), dtype=np.uint32)
    low = np.empty(len(crc), dtype=np.intp)
    high = np.empty(len(crc), dtype=np.intp)
    t0, t1 = _PAIRS[0], _PAIRS[1]
    for i, m in enumerate(live.tolist()):
        xm = np.bitwise_xor(crc[:m], words[i, :m], out=x[:m])
        r = t0.take(np.bitwise_and(xm, 0xFFFF, out=low[:m], casting="unsafe"))
        r ^= t1.take(np.right_shift(xm, 16, out=high[:m], casting="unsafe"))
        np.bitwise_xor(r, lookups[i, :m], out=crc[:m])
    return crc ^ np.uint32(_INITIAL)


def _prepare(
    buf: np.ndarray, ends: np.ndarray, first: np.ndarray, pad: np.ndarray, steps: int
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
        data.reshape(b - a, steps, _STEP)[np.arange(b - a), first[a:b]] &= _KEEP[pad[a:b]]
        pairs = data.view("<u2").reshape(-1, _STEP // 2)
        acc = _PAIRS[2].take(pairs[:, 2].astype(np.intp))
        for q in range(3, _STEP // 2):
            acc ^= _PAIRS[q].take(pairs[:, q].astype(np.intp))
        lookups[:, a:b] = acc.reshape(b - a, steps).T
        words[:, a:b] = data.view("<u4").reshape(b - a, steps, _STEP // 4)[:, :, 0].T
    return words, lookups


def windows(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """A copy of ``buf[s: s + width]`` for every start, one row each; bytes before ``buf`` read as 0.

    One gather for all rows instead of a slice per row; the event-file
    reader takes its record heads and tensors out of a file the same way.
    """
    if not len(starts):  # buf may be shorter than width
        return np.zeros((0, width), dtype=np.uint8)
    early = starts < 0
    if not early.any():
        return sliding_window_view(buf, width)[starts]
    head = np.zeros(2 * width, dtype=np.uint8)  # buf[k] at head[width + k]
    head[width:][: len(buf)] = buf[:width]
    out = np.empty((len(starts), width), dtype=np.uint8)
    out[early] = sliding_window_view(head, width)[starts[early] + width]
    if not early.all():
        out[~early] = sliding_window_view(buf, width)[starts[~early]]
    return out


def masked(crc: np.ndarray) -> np.ndarray:
    """TFRecord's masking: rotate right by 15 and add a constant."""
    crc = crc.astype(np.uint32)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA).astype(np.uint32)
