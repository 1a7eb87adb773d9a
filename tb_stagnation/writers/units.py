"""What an output unit of a tensor is, and its movement between two values of the tensor.

One rule for every producer of per-unit movement: the checkpoint import
(:mod:`tb_stagnation.checkpoints`) and the training-time writers
(:mod:`tb_stagnation.writers`, the integrations through them) ask
:func:`unit_axis` and :func:`unit_noun` with the tensor's name, shape and
the framework's storage layout, and measure with :func:`change_sq` (numpy)
or a framework's equivalent over the same slices. It lives with the
writers, the lowest stage that measures units, so the import (a stage
above) takes the same rule rather than a copy.

A unit is a slice of the tensor along its unit axis: a row of a torch
``Linear``/``Conv*`` weight or of any embedding (a token id), a column of a
TF/Keras kernel (its last axis), one element of a bias or norm vector.
Where the layout does not say which axis that is, :func:`unit_axis` returns
``None`` and the producer names the tensor (:data:`NO_AXIS`) instead of
guessing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tb_stagnation import records

# Storage layouts: torch (and safetensors) keep output units first; TensorFlow and Keras last.
TORCH_LAYOUT, TF_LAYOUT, LAYOUTS = records.TORCH_LAYOUT, records.TF_LAYOUT, records.LAYOUTS

NO_AXIS = "which axis holds the output units is not known for this layout; not measured per unit"
"""What a producer says of the tensors whose units it skips (after their names)."""

CHUNK = 1 << 16  # values per block in change_sq: 512 KB of float64, in cache

# Names that mark an embedding matrix (one row per token id) in any framework.
_EMBEDDING_MARKS = ("embed_tokens", "wte", "word_embeddings", "embeddings", "embedding")
_PER_UNIT_VECTORS = ("bias", "beta", "gamma", "moving_mean", "moving_variance")  # TF rank-1 per-unit names


def is_embedding(name: str) -> bool:
    """Whether ``name`` is an embedding matrix: torch ``nn.Embedding``/HF names, Keras ``Embedding``."""
    parts = name.replace("/", ".").split(".")
    return any(mark in part for part in parts for mark in _EMBEDDING_MARKS)


def unit_noun(name: str, shape: Sequence[int]) -> str:
    """What one unit of tensor ``name`` is (:data:`records.UNIT_NOUNS`): a row of an embedding, an
    output channel of a tensor of 3 or more axes (a convolution), else a unit."""
    if is_embedding(name):
        return records.ROW
    return records.CHANNEL if len(shape) >= 3 else records.UNIT


def unit_axis(name: str, shape: Sequence[int], layout: str) -> int | None:
    """The axis of tensor ``name`` whose slices are its output units, or ``None`` where the layout does not say.

    torch and safetensors store ``Linear``/``Conv*``/``Embedding`` weights
    output first (dim 0) and biases and norm vectors one value per unit.
    TensorFlow and Keras store kernels ``(..., in, out)``: the last axis,
    except embedding matrices, one row per token id; a rank-1 TF tensor is
    per unit only when it is a bias or a norm vector. Anything else (a
    scalar, a rank-1 TF tensor of another kind) has no known unit axis.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")
    if not len(shape):
        return None
    if layout == TORCH_LAYOUT:
        return 0
    if len(shape) >= 2:
        return 0 if is_embedding(name) else len(shape) - 1
    last = name.replace("/", ".").split(".")[-1]
    return 0 if last in _PER_UNIT_VECTORS else None


def fans(name: str, shape: Sequence[int], layout: str) -> tuple[int, int] | None:
    """``(fan_in, fan_out)`` of weight ``name`` as He and Glorot initialisers count them, or ``None``
    where they do not apply: embeddings (one row per token, initialised unit-normal on purpose), rank-1
    tensors (biases, norm vectors) and scalars.

    torch ``Linear``/``Conv*`` weights are ``(out, in, *kernel)``, TF/Keras kernels ``(*kernel, in,
    out)``; a kernel's receptive field multiplies both fans (as ``torch.nn.init`` and Keras count).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; one of {LAYOUTS}")
    if len(shape) < 2 or is_embedding(name):
        return None
    if layout == TORCH_LAYOUT:
        out, inputs, kernel = shape[0], shape[1], shape[2:]
    else:
        out, inputs, kernel = shape[-1], shape[-2], shape[:-2]
    field = int(np.prod(kernel, dtype=np.int64))
    return int(inputs) * field, int(out) * field


def change_sq(current: np.ndarray, before: np.ndarray, axis: int) -> np.ndarray:
    """``||current[u] - before[u]||^2`` per slice ``u`` along ``axis`` (0 or the last), in float64.

    One pass over blocks of whole rows of about :data:`CHUNK` values (one
    row at least), so the float64 temporary stays small whatever the tensor;
    the loop runs over blocks, never over units. Their sum is
    ``||current - before||^2``, so a producer gets the tensor's change from
    the same pass.
    """
    units = current.shape[axis]
    first = axis == 0
    c2 = current.reshape(units, -1) if first else current.reshape(-1, units)
    b2 = before.reshape(c2.shape)
    rows = max(1, CHUNK // max(1, c2.shape[1]))
    out = np.zeros(units)
    for start in range(0, c2.shape[0], rows):
        block = slice(start, start + rows)
        d = np.subtract(c2[block], b2[block], dtype=np.float64)
        np.square(d, out=d)
        if first:
            out[block] = d.sum(axis=1)
        else:
            out += d.sum(axis=0)
    return out


def quantiles(moved: np.ndarray) -> np.ndarray:
    """The :data:`records.UNIT_QUANTILES` of one pair's unit movement (float64)."""
    return np.quantile(np.asarray(moved, dtype=np.float64), records.UNIT_QUANTILES)
