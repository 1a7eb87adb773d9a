"""LoRA adapters (PEFT) in checkpoints: one series per adapted module, on the update it makes.

PEFT saves an adapter as ``adapter_model.safetensors`` (or ``.bin``) beside
``adapter_config.json``, in HF ``checkpoint-N/`` folders and wherever
``save_pretrained`` points; a module's adapter is ``lora_A`` ``(r, in)`` and
``lora_B`` ``(out, r)``, under ``base_model.model.<module>``. What the model
sees is neither tensor but the update ``dW = s B A`` added to the module's
weight, ``s = lora_alpha / r`` (``lora_alpha / sqrt(r)`` with ``use_rslora``;
``alpha_pattern`` overrides alpha per module, ``r`` is A's row count). The
two tensors apart say little: ``B A`` is unchanged when B gains what A loses
(``B M``, ``M^-1 A``), A drifts under weight decay while B is still zero, and a
zero-initialised B has no update ratio at all. So each module is one series,
named by :func:`tb_stagnation.records.adapter_param`
(``model.layers.0.self_attn.q_proj.lora``), with the quantities of
:mod:`.movement` taken of ``dW``, and its lora_A and lora_B are not ranked on
their own:

* ``rms = ||dW_i|| / sqrt(out * in)``;
* ``change = ||dW_i - dW_{i-1}|| / k``;
* ``update_ratio = change / ||dW_{i-1}||``, relative to the adapter's own
  update (as every other series is relative to its own tensor; the base
  weights are seldom on disk beside an adapter), and exactly 0 where the
  update was 0 and did not change: a B still at zero is zero movement,
  never "no figure";
* ``update_cosine`` between consecutive changes of ``dW``.

Nothing of size ``out x in`` is formed. ``B_i A_i - B_{i-1} A_{i-1} = C D``
with ``C = [B_i - B_{i-1}, B_{i-1}]`` ``(out, 2r)`` and ``D = [A_i; A_i -
A_{i-1}]`` ``(2r, in)``, and ``<C D, C' D'> = tr((C^T C')(D' D^T))``, a trace
of ``2r x 2r`` products, in float64. Factoring the difference first, rather
than expanding ``||B_i A_i||^2 - 2 <B_i A_i, B_{i-1} A_{i-1}> + ...``, keeps a
small change exact instead of the difference of two large sums, and an
adapter that did not move at exactly 0.

Memory: adapters are measured in groups of at most ``budget`` bytes, each
checkpoint read once per group, holding the group's tensors of the two
previous checkpoints as stored (three times the group), as :mod:`.movement` does.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
from collections.abc import Iterable, Sequence

import numpy as np

from tb_stagnation import records, storage
from tb_stagnation.checkpoints import formats
from tb_stagnation.checkpoints.discover import Placed
from tb_stagnation.checkpoints.formats import TensorInfo
from tb_stagnation.checkpoints.movement import DEFAULT_BUDGET, groups, one_blas_thread  # shared with movement

CONFIG = "adapter_config.json"
FILES = {"adapter_model.safetensors": formats.SAFETENSORS, "adapter_model.bin": formats.TORCH}
# A LoRA factor of a Linear or Conv module, as PEFT saves it (the adapter name removed).
_FACTOR = re.compile(rf"^{re.escape(records.PEFT_PREFIX)}(.+)\.lora_([AB])\.weight$")


@dataclasses.dataclass(frozen=True)
class Adapter:
    """One adapted module: its series name, its two factors, and the scale of their product."""

    param: str
    a: TensorInfo
    b: TensorInfo
    scale: float


@dataclasses.dataclass(frozen=True)
class Adapted:
    """One checkpoint's adapters, and the reader that holds them."""

    step: int
    reader: formats.CheckpointReader
    adapters: tuple[Adapter, ...]


def adapter_file(folder: str) -> tuple[str, str, dict] | None:
    """``(path, format, config)`` of the PEFT adapter saved in ``folder``, where its config is there too.

    ``None`` without a readable config: its tensors are then ranked one by one, as any checkpoint's.
    """
    config = _config(folder)
    if config is None:
        return None
    return next(((os.path.join(folder, f), fmt, config) for f, fmt in FILES.items()
                 if storage.exists(os.path.join(folder, f))), None)


def separate(placed: Sequence[Placed]) -> tuple[list[Placed], list[Adapted]]:
    """``placed`` without their LoRA factors, and each checkpoint's adapters.

    A checkpoint that is an adapter keeps its other tensors (``modules_to_save``).
    A folder holding a full model and an adapter beside it gives both: the
    model's tensors as usual, the adapter's series from the adapter file.
    """
    models, adapted = [], []
    for p in placed:
        folder = p.checkpoint.path if storage.isdir(p.checkpoint.path) else storage.parent(p.checkpoint.path)
        found = adapter_file(folder)
        if found is None:
            models.append(p)
            continue
        path, fmt, config = found
        own = storage.normpath(path) == storage.normpath(p.checkpoint.path)
        reader = p.reader if own else formats.open_checkpoint(path, fmt)
        adapters = find(reader.tensors(), config)
        adapted.append(Adapted(p.step, reader, tuple(adapters)))
        if own:
            factors = {info.key for adapter in adapters for info in (adapter.a, adapter.b)}
            # its factors are measured as one series instead
            p = dataclasses.replace(p, reader=formats.Filtered(p.reader, lambda info, own=factors: info.key not in own))
        models.append(p)
    return models, [a for a in adapted if a.adapters]


def find(tensors: Iterable[TensorInfo], config: dict) -> list[Adapter]:
    """The adapters among ``tensors`` (an adapter file's), scaled as ``config`` says, in stored order."""
    factors: dict[str, dict[str, TensorInfo]] = {}
    for info in tensors:
        match = _FACTOR.match(info.key)
        if match and len(info.shape) >= 2:
            factors.setdefault(match[1], {})[match[2]] = info
    out = []
    for module, pair in factors.items():
        if set(pair) == {"A", "B"}:
            r = pair["A"].shape[0]
            alpha = float(_pattern(config.get("alpha_pattern"), module, config.get("lora_alpha", 8)))
            scale = alpha / math.sqrt(r) if config.get("use_rslora") else alpha / r
            out.append(Adapter(records.adapter_param(module), pair["A"], pair["B"], scale))
    return out


def measure(adapted: Sequence[Adapted], budget: int = DEFAULT_BUDGET) -> dict[str, list[tuple[int, dict[str, float]]]]:
    """Every adapter's quantities at each checkpoint of ``adapted`` (in step order), series in model order.

    BLAS is held to one thread, as :func:`.movement.measure` holds it: its ``2r``-wide products would
    wake OpenBLAS's pool, whose threads spin for cores others hold (per adapter pair of a 4096 x 4096
    module at r = 16, beside busy cores: 330 ms with the pool, 29 ms on one thread).
    """
    with one_blas_thread():
        return _measure(adapted, budget)


def _measure(adapted: Sequence[Adapted], budget: int) -> dict[str, list[tuple[int, dict[str, float]]]]:
    sizes: dict[str, int] = {}
    for checkpoint in adapted:
        for adapter in checkpoint.adapters:
            sizes[adapter.param] = max(sizes.get(adapter.param, 0), adapter.a.nbytes + adapter.b.nbytes)
    points: dict[str, list[tuple[int, dict[str, float]]]] = {param: [] for param in sizes}
    for group in groups(sizes, budget):
        held: dict[str, list[tuple[int, np.ndarray, np.ndarray]]] = {}  # param -> its last two (step, A, B)
        for checkpoint in adapted:
            present = {a.param: a for a in checkpoint.adapters if a.param in group}
            values = {info.key: v for info, v in checkpoint.reader.read(
                info for a in present.values() for info in (a.a, a.b))}
            for param, adapter in present.items():
                a, b = values[adapter.a.key], values[adapter.b.key]
                before = [h for h in held.get(param, []) if h[1].shape == a.shape and h[2].shape == b.shape]
                points[param].append((checkpoint.step, _quantities(adapter.scale, checkpoint.step, a, b, before)))
                held[param] = [*before[-1:], (checkpoint.step, a, b)]
            for param in group:  # an adapter missing here breaks its chain of pairs
                if param not in present:
                    held.pop(param, None)
    return points


def _quantities(
    scale: float, step: int, a: np.ndarray, b: np.ndarray, before: list[tuple[int, np.ndarray, np.ndarray]]
) -> dict[str, float]:
    """The quantities of ``dW = scale B A`` at ``step``, after the (at most two) checkpoints ``before``."""
    a, b = _factors(a, b)
    sq = scale**2 * _inner(b, a, b, a)
    quantities = {records.PARAM_RMS: math.sqrt(sq / (b.shape[0] * a.shape[1]))}
    if not before:
        return quantities
    previous_step, a1, b1 = before[-1]
    a1, b1 = _factors(a1, b1)
    c, d = _difference(a1, b1, a, b)
    change_sq = scale**2 * _inner(c, d, c, d)
    gap = step - previous_step
    change = math.sqrt(change_sq)
    quantities[records.CHANGE] = change / gap
    previous_sq = scale**2 * _inner(b1, a1, b1, a1)
    if previous_sq > 0:
        quantities[records.UPDATE_RATIO] = change / math.sqrt(previous_sq) / gap
    elif change_sq == 0:
        quantities[records.UPDATE_RATIO] = 0.0  # no update before, none now: still, not undefined
    if len(before) == 2:
        c0, d0 = _difference(*_factors(*before[0][1:]), a1, b1)
        previous_change_sq = scale**2 * _inner(c0, d0, c0, d0)
        if change_sq > 0 and previous_change_sq > 0:
            cosine = scale**2 * _inner(c, d, c0, d0) / math.sqrt(change_sq * previous_change_sq)
            quantities[records.UPDATE_COSINE] = min(1.0, max(-1.0, cosine))
    return quantities


def _factors(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A as ``(r, in)`` and B as ``(out, r)`` in float64 (a Conv's kernel axes folded into ``in``)."""
    return a.reshape(a.shape[0], -1).astype(np.float64), b.reshape(b.shape[0], -1).astype(np.float64)


def _difference(a0: np.ndarray, b0: np.ndarray, a1: np.ndarray, b1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(C, D)`` with ``C D = B1 A1 - B0 A0``: ``C = [B1 - B0, B0]``, ``D = [A1; A1 - A0]``."""
    return np.hstack([b1 - b0, b0]), np.vstack([a1, a1 - a0])


def _inner(c: np.ndarray, d: np.ndarray, c2: np.ndarray, d2: np.ndarray) -> float:
    """``<C D, C2 D2>`` (Frobenius) as ``tr((C^T C2)(D2 D^T))``: ``r x r`` products only; >= 0 for a norm."""
    value = float(np.sum((c.T @ c2) * (d @ d2.T)))
    return max(value, 0.0) if c is c2 and d is d2 else value


def _pattern(patterns: dict | None, module: str, default: float) -> float:
    """PEFT's per-module override (``alpha_pattern``): the first key matching the module's name's end."""
    for key, value in (patterns or {}).items():
        if re.match(rf"(.*\.)?({key})$", module):
            return value
    return default


def _config(folder: str) -> dict | None:
    """The LoRA adapter config in ``folder``; ``None`` where there is none, it is unreadable or not LoRA's."""
    try:
        config = json.loads(storage.read_bytes(os.path.join(folder, CONFIG)))
    except (OSError, ValueError, storage.StorageError):
        return None
    return config if isinstance(config, dict) and config.get("peft_type", "LORA") == "LORA" else None


def nbytes(adapted: Sequence[Adapted]) -> int:
    """The bytes :func:`measure` reads."""
    return sum(a.a.nbytes + a.b.nbytes for checkpoint in adapted for a in checkpoint.adapters)
