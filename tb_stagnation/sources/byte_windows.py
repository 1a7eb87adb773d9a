"""Fixed-width rows of bytes gathered from a buffer in one numpy call.

Every layer of the event-file reader takes many short, equally wide
pieces out of a file: the numpy CRC its records' steps, the framing the
stored checksums, the TF2 fast path its record heads and tensors. One
gather for all rows costs far less than a Python slice per row.
"""

from __future__ import annotations

import numpy as np


def windows(buf: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """A copy of ``buf[s: s + width]`` for every start, one row each; bytes before ``buf`` read as 0.

    Reading before the buffer lets the numpy CRC right-align a record that
    starts at byte 0 in a window wider than what precedes it.
    """
    if not len(starts) or not width:  # buf may be shorter than width
        return np.zeros((len(starts), width), dtype=np.uint8)
    early = starts < 0
    if not early.any():
        return _rows(buf, width)[starts].view(np.uint8).reshape(len(starts), width)
    head = np.zeros(2 * width, dtype=np.uint8)  # buf[k] at head[width + k]
    head[width:][: len(buf)] = buf[:width]
    out = np.empty((len(starts), width), dtype=np.uint8)
    out[early] = _rows(head, width)[starts[early] + width].view(np.uint8).reshape(-1, width)
    if not early.all():
        out[~early] = _rows(buf, width)[starts[~early]].view(np.uint8).reshape(-1, width)
    return out


def _rows(buf: np.ndarray, width: int) -> np.ndarray:
    """Every ``width`` bytes of a contiguous ``buf`` as one opaque item, a byte apart: a view.

    Gathering whole items copies each row in one piece; a sliding window
    view of single bytes costs ~60 us to build per call (a tag's tensors
    are one call) and copies byte by byte.
    """
    items = max(len(buf) - width + 1, 0)
    return np.ndarray((items,), dtype=np.dtype((np.void, width)), buffer=buf, strides=(1,))

