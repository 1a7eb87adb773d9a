"""PyTorch: ``torch.save`` files (plain state dicts, training states, Lightning ``.ckpt``), never unpickling code."""

from __future__ import annotations

import contextlib
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import numpy as np

from tb_stagnation import storage
from tb_stagnation.checkpoints.formats import TensorInfo, UnreadableCheckpoint, normalise
from tb_stagnation.checkpoints.formats.listing import Listed, floating, owned, reading

# Where full training states keep the model's state dict.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")


class TorchReader(Listed):
    """``torch.save`` files: Lightning ``.ckpt``, HF ``pytorch_model.bin``, plain ``.pt``/``.pth``.

    The pickle is read once, on listing, with ``map_location="meta"`` and
    ``weights_only=True``: no tensor data is loaded, and each tensor learns
    where its storage lies in the file (torch's ``_checkpoint_offset``), so
    every later read is a ranged read of exactly its bytes
    (:func:`tb_stagnation.storage.read_range`), in whatever groups the import
    asks for, never a reload of the pickle. torch stores its records
    uncompressed, so a local tensor is mapped, as a safetensors one is: its
    values are the page cache's own pages, with no buffer of our own to
    allocate, fill and give back (the allocator keeps such 25 MB buffers, and
    with them a third of a checkpoint more at the peak). Files
    where no offset is known (the legacy non-zip format, a torch too old to
    say) are loaded whole for each group instead (``map_location="cpu"``,
    mapped where the format allows). A class that loader refuses is
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
        self._where: dict[str, _Where | None] = {}  # key -> where its values lie in the file, if known

    def _list(self) -> list[TensorInfo]:
        with self._loaded("meta") as state:
            self._where = {k: _where(t) for k, t in state.items()}
            keys = list(state)
            strip = self._lightning and keys and all(k.startswith("model.") for k in keys)
            return [
                TensorInfo(normalise(k.removeprefix("model.") if strip else k), k,
                           tuple(t.shape), _torch_dtype(t), t.numel() * t.element_size())
                for k, t in state.items()
                if _torch_dtype(t) is not None and floating(_torch_dtype(t))
            ]

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        self.tensors()
        tensors = list(tensors)
        if all(self._where.get(info.key) is not None for info in tensors):
            for info in tensors:
                with reading(self._path):
                    values = _read_at(self._path, info, self._where[info.key])
                yield info, values
            return
        import torch

        with self._loaded("cpu") as state:
            for info in tensors:
                tensor = state[info.key].detach()
                if tensor.dtype == torch.bfloat16:
                    tensor = tensor.float()  # exact: bf16 is a truncated float32
                yield info, owned(tensor.numpy())

    @contextlib.contextmanager
    def _loaded(self, device: str) -> Iterator[dict[str, Any]]:
        """The state dict on ``device`` ("meta": no data), for the duration of the block."""
        with reading(self._path):
            loaded = _torch_load(self._path, self._unsafe, device)
            state, step = _state_dict(loaded)
            if state is None:
                raise UnreadableCheckpoint(f"{self._path}: holds no state dict of tensors")
            self._step = step
            yield state
            del state, loaded


class _Where(NamedTuple):
    """Where a tensor's values lie in its file: the first value's byte offset, and strides in values."""

    offset: int
    strides: tuple[int, ...]


def _where(tensor: Any) -> _Where | None:
    """Where a tensor loaded on "meta" lies in its file; ``None`` where torch does not say."""
    import torch

    if not isinstance(tensor, torch.Tensor):
        return None
    start = getattr(tensor.untyped_storage(), "_checkpoint_offset", None)
    if start is None:
        return None
    return _Where(start + tensor.storage_offset() * tensor.element_size(), tuple(tensor.stride()))


def _read_at(path: str, info: TensorInfo, where: _Where) -> np.ndarray:
    """One tensor's values from its file (bf16 widened to float32, exactly): mapped where the file is local.

    torch writes little-endian storages; a view saved with its storage
    (strided, or a slice) reads the span it covers and keeps its own values.
    """
    dtype = np.dtype("<u2") if info.dtype == "bfloat16" else np.dtype(info.dtype).newbyteorder("<")
    span = 1 + sum((n - 1) * s for n, s in zip(info.shape, where.strides)) if all(info.shape) else 0
    try:
        raw = np.frombuffer(storage.read_range(path, where.offset, span * dtype.itemsize), dtype)
    except EOFError:
        raise UnreadableCheckpoint(f"{path}: truncated (a tensor's values end past the file)") from None
    values = np.lib.stride_tricks.as_strided(raw, info.shape, [s * dtype.itemsize for s in where.strides])
    if info.dtype == "bfloat16":  # the 16 bits become a float32's upper half
        return (values.astype(np.uint32) << 16).view(np.float32)
    return np.ascontiguousarray(values)  # the read array itself where the tensor is contiguous, else a copy


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


def _torch_load(path: str, unsafe: list[str], device: str) -> Any:
    """``torch.load`` that never runs pickled code (see :class:`TorchReader`).

    ``unsafe`` holds the classes found refused so far for this file; it is
    filled on the first refusal (listing them reads the pickle a second
    time, so files that need none skip it).
    """
    if storage.is_url(path):  # torch's zip reader on a file read by ranges: directory, pickle, no data
        with storage.open_file(path) as f:
            return _torch_load_from(f, path, unsafe, device, mmap=False)
    return _torch_load_from(path, path, unsafe, device, mmap=device != "meta" and zipfile.is_zipfile(path))


def _torch_load_from(source: Any, path: str, unsafe: list[str], device: str, mmap: bool) -> Any:
    """:func:`_torch_load` from ``source``: the path (mapped when ``mmap``: the legacy format cannot
    be), or a file object, rewound before each use."""
    import pickle

    import torch

    def rewound() -> Any:
        if not isinstance(source, str):
            source.seek(0)
        return source

    for attempt in range(2):
        try:
            with torch.serialization.safe_globals([(_inert(name), name) for name in unsafe]):
                return torch.load(rewound(), map_location=device, weights_only=True, mmap=mmap)
        except pickle.UnpicklingError as e:
            if attempt == 0 and zipfile.is_zipfile(rewound()) and not unsafe:
                unsafe.extend(torch.serialization.get_unsafe_globals_in_checkpoint(rewound()))
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
