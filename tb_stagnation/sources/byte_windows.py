"""Fixed-width rows of bytes gathered from a buffer in one numpy call.

Every layer of the event-file reader takes many short, equally wide
pieces out of a file: the numpy CRC its records' steps, the framing the
stored checksums, the TF2 fast path its record heads and tensors. One
gather for all rows costs far less than a Python slice per row.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def windows(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """A copy of ``buf[s: s + width]`` for every start, one row each; bytes before ``buf`` read as 0.

    Reading before the buffer lets the numpy CRC right-align a record that
    starts at byte 0 in a window wider than what precedes it.
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

