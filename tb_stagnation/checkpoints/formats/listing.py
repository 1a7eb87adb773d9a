"""What every reader shares: a listing taken once, of floating tensors only, read out as owned copies.

:class:`Listed` lists a checkpoint's tensors on first demand and keeps the
listing (learning the recorded step as it does); :func:`floating` says which
dtypes are listed, :func:`owned` what a read hands out, and :func:`reading`
turns each library's errors for a damaged file into
:class:`~tb_stagnation.checkpoints.formats.UnreadableCheckpoint`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

from tb_stagnation.checkpoints.formats import MissingExtra, TensorInfo, UnreadableCheckpoint


class Listed:
    """What every reader shares: it lists its tensors once, learning the recorded step as it does."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._listing: list[TensorInfo] | None = None
        self._step: int | None = None

    def tensors(self) -> list[TensorInfo]:
        if self._listing is None:
            self._listing = self._list()
        return self._listing

    def recorded_step(self) -> int | None:
        self.tensors()
        return self._step

    def _list(self) -> list[TensorInfo]:
        raise NotImplementedError


def floating(dtype: str) -> bool:
    """Whether ``dtype`` (numpy's name, or "bfloat16") is a floating-point one: what readers list."""
    return dtype == "bfloat16" or np.dtype(dtype).kind == "f"


def owned(values: np.ndarray) -> np.ndarray:
    """A copy in memory of our own (nothing mapped from a file), in a float numpy can sum exactly."""
    if values.dtype.kind != "f":
        raise UnreadableCheckpoint(f"not a floating-point tensor ({values.dtype})")
    return np.array(values, copy=True)


@contextlib.contextmanager
def reading(file: str) -> Iterator[None]:
    """Turn the libraries' many errors for a damaged file into one kind, naming the file."""
    try:
        yield
    except (MissingExtra, UnreadableCheckpoint):
        raise
    except Exception as e:  # safetensors, torch, TF and h5py each raise their own types
        raise UnreadableCheckpoint(f"{file}: {type(e).__name__}: {str(e)[:200]}") from None
