"""TF1 ``HistogramProto`` values as ``[k, 3]`` rows, as TensorBoard's loaders convert them.

Reading a histogram's repeated fields through the proto costs a Python
float per bucket; its serialisation holds them as packed little-endian
doubles, which numpy reads in place. So the reader keeps each value's
:func:`packed_parts` and converts a whole series at once (:func:`convert`);
:func:`histogram_from_proto` is the reference, and the fallback for protos
not packed alike.
"""

from __future__ import annotations

import numpy as np
from tensorboard.compat.proto import summary_pb2

from tb_stagnation.sources.protowire import varint

# Keys of a serialised HistogramProto: fields 1-5 (min, max, num, sum,
# sum_squares) are doubles; 6 and 7 (bucket_limit, bucket) packed doubles.
_FIXED64_KEYS = frozenset({0x09, 0x11, 0x19, 0x21, 0x29})
_LIMITS_KEY, _COUNTS_KEY = 0x32, 0x3A

Parts = tuple[float, float, bytes, bytes]  # min, max, packed limits, packed counts


def convert(parts: list[Parts]) -> np.ndarray:
    """Many histograms' :func:`packed_parts` as one ``(n, k, 3)`` array, zero rows padding (see :func:`_stack`)."""
    return _stack(parts)[0]


def rows(one: Parts) -> np.ndarray:
    """One histogram's :func:`packed_parts` as ``[k, 3]`` rows, as :func:`convert` makes them."""
    stacked, sizes = _stack([one])
    return stacked[0, : sizes[0]]


def packed_parts(h: summary_pb2.HistogramProto) -> Parts | None:
    """A TF1 histogram's min, max and its packed limits and counts; None if not packed alike.

    Unpacked doubles, unknown fields, or as many limits as counts not: the
    reader takes those the slow way (:func:`histogram_from_proto`).
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
        length, pos = varint(blob, pos + 1)
        if key == _LIMITS_KEY:
            limits = blob[pos : pos + length]
        else:
            counts = blob[pos : pos + length]
        pos += length
    if len(limits) != len(counts) or len(counts) % 8:
        return None
    return h.min, h.max, limits, counts


def histogram_from_proto(h: summary_pb2.HistogramProto) -> np.ndarray:
    """A TF1 ``HistogramProto`` as ``[k, 3]`` rows, as TensorBoard's loaders convert it.

    Empty outer buckets are dropped and the outer edges become the recorded
    min and max (TF1's outermost limits are +-DBL_MAX). Kept in float64,
    where the Python loader rounds to float32. The reader converts whole
    series at once (:func:`convert`); this is the reference, and
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


def _stack(parts: list[Parts]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`histogram_from_proto` of many histograms' :func:`packed_parts` at once, as drift reads it.

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
