"""PyTorch: ``torch.save`` files (plain state dicts, training states, Lightning ``.ckpt``), never unpickling code."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tb_stagnation.checkpoints.formats import TensorInfo, UnreadableCheckpoint, normalise
from tb_stagnation.checkpoints.formats.listing import Listed, floating, owned, reading

# Where full training states keep the model's state dict.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")


class TorchReader(Listed):
    """``torch.save`` files: Lightning ``.ckpt``, HF ``pytorch_model.bin``, plain ``.pt``/``.pth``.

    Loaded with ``mmap=True`` (only the pages of the tensors read are
    touched) and ``weights_only=True``. A class that loader refuses is
    listed without running anything (``get_unsafe_globals_in_checkpoint``)
    and replaced by :class:`_Inert`, so the tensors load while the pickled
    objects around them (Lightning's hyperparameters) become empty shells.
    Lightning's single ``model.`` attribute, when every key has it, is
    dropped: it is the name the model has inside the LightningModule.
    """

    def __init__(self, path: str, lightning: bool) -> None:
        super().__init__(path)
        self._lightning = lightning
        self._unsafe: list[str] = []  # classes weights_only refused, found on the first load

    def _list(self) -> list[TensorInfo]:
        with self._loaded() as state:
            keys = list(state)
            strip = self._lightning and keys and all(k.startswith("model.") for k in keys)
            return [
                TensorInfo(normalise(k.removeprefix("model.") if strip else k), k,
                           tuple(t.shape), _torch_dtype(t), t.numel() * t.element_size())
                for k, t in state.items()
                if _torch_dtype(t) is not None and floating(_torch_dtype(t))
            ]

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        import torch

        with self._loaded() as state:
            for info in tensors:
                tensor = state[info.key].detach()
                if tensor.dtype == torch.bfloat16:
                    tensor = tensor.float()  # exact: bf16 is a truncated float32
                yield info, owned(tensor.numpy())

    @contextlib.contextmanager
    def _loaded(self) -> Iterator[dict[str, Any]]:
        """The state dict, mapped from the file for the duration of the block."""
        with reading(self._path):
            loaded = _torch_load(self._path, self._unsafe)
            state, step = _state_dict(loaded)
            if state is None:
                raise UnreadableCheckpoint(f"{self._path}: holds no state dict of tensors")
            self._step = step
            yield state
            del state, loaded


def _torch_dtype(tensor: Any) -> str | None:
    """numpy's name of a tensor's dtype ("bfloat16" too); ``None`` for what is not a tensor."""
    import torch

    if not isinstance(tensor, torch.Tensor):
        return None
    if tensor.dtype == torch.bfloat16:
        return "bfloat16"
    try:
        return str(torch.empty(0, dtype=tensor.dtype).numpy().dtype)
    except (TypeError, RuntimeError):  # complex32, float8: no numpy dtype
        return None


def _torch_load(path: str, unsafe: list[str]) -> Any:
    """``torch.load`` that never runs pickled code (see :class:`TorchReader`).

    ``unsafe`` holds the classes found refused so far for this file; it is
    filled on the first refusal (listing them reads the pickle a second
    time, so files that need none skip it).
    """
    import pickle

    import torch

    mmap = zipfile.is_zipfile(path)  # the legacy format cannot be mapped
    for attempt in range(2):
        try:
            with torch.serialization.safe_globals([(_inert(name), name) for name in unsafe]):
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as e:
            if attempt == 0 and mmap and not unsafe:
                unsafe.extend(torch.serialization.get_unsafe_globals_in_checkpoint(path))
                if unsafe:
                    continue
            raise UnreadableCheckpoint(  # a module torch blocks outright (os, subprocess, ...)
                f"{path}: it refers to {', '.join(unsafe) or 'objects'} that torch's weights-only loader "
                f"refuses even as inert stand-ins; pickled code is never run here "
                f"({str(e).splitlines()[-3][:120] if len(str(e).splitlines()) > 2 else str(e)[:120]})"
            ) from None
    raise AssertionError("unreachable")


class _Inert:
    """Stands in for a pickled class: takes whatever it is built from, does nothing with it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __setstate__(self, state: Any) -> None:
        pass


def _inert(qualified_name: str) -> type:
    """A fresh :class:`_Inert` subclass per name (torch keys its allow-list by object)."""
    return type(qualified_name.rpartition(".")[2] or "Inert", (_Inert,), {})


def _state_dict(loaded: Any) -> tuple[dict[str, Any] | None, int | None]:
    """The tensors of a loaded file, and the training step it records."""
    import torch

    if not isinstance(loaded, dict):
        return None, None
    step = next((loaded[k] for k in ("global_step", "step") if isinstance(loaded.get(k), int)), None)
    if loaded and all(isinstance(v, torch.Tensor) for v in loaded.values()):
        return loaded, step
    for key in _STATE_DICT_KEYS:
        inner = loaded.get(key)
        if isinstance(inner, dict) and inner and all(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner, step
    return None, step
