"""``torch.distributed.checkpoint`` (DCP): a directory of ``.metadata`` and ``__<rank>_<n>.distcp`` shards.

What FSDP2 and torchtitan (``checkpoint/step-N/``), Lightning's FSDP
strategy (an ``epoch=E-step=S.ckpt`` *folder*, with ``meta.pt`` beside the
shards) and the HF Trainer with FSDP's sharded state dict
(``checkpoint-N/pytorch_model_fsdp_0/``) write. Read with torch's public
API, no process group: ``dcp.load({key: preallocated}, FileSystemReader(dir),
no_dist=True)`` fills one preallocated tensor from the chunks of that key
alone (the planner asks only for the keys given; other keys' bytes are never
read). Its memory is that tensor plus the largest stored chunk of it, which
``FileSystemReader`` ``torch.load``s whole before copying it in place: one
tensor at a time, never a model, so no reading of chunks by hand through
the ``.metadata`` index is needed. The index is used for what the API does
not do: listing the tensors and checking, before anything is read, that
every shard holds the bytes the index places in it (a truncated or missing
shard makes the whole checkpoint unreadable, so it is skipped and named).
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tb_stagnation import storage
from tb_stagnation.checkpoints.formats import TensorInfo, UnreadableCheckpoint, normalise
from tb_stagnation.checkpoints.formats.listing import Listed, floating, owned, reading

METADATA = ".metadata"  # the index DCP writes beside its shards
SHARD_SUFFIX = ".distcp"
LIGHTNING_META = "meta.pt"  # Lightning's FSDP strategy: the rest of its checkpoint dict (global_step...)
# Top-level entries of a training state that are not the model: torchtitan's flattened state
# (``optimizer.``, ``lr_scheduler.``, ``dataloader.``, ``train_state.``), Lightning's ``optimizer_0.``,
# the DCP tutorial's ``optim.``.
_NOT_MODEL = re.compile(r"^(optim\w*|lr_scheduler\w*|scheduler\w*|dataloader\w*|train_state|extra_state)\.")
# The keys a training state keeps its model's state dict under: "model" (HF Trainer via accelerate,
# Lightning's FSDPStrategy, the DCP tutorial), "state_dict" (Lightning's ModelParallelStrategy).
_CONTAINERS = ("model.", "state_dict.")
_MODEL = "model."  # Lightning's attribute for the model inside the LightningModule, as in its .ckpt files


def is_dcp(files: Iterable[str]) -> bool:
    """Whether a directory holding ``files`` is a DCP checkpoint."""
    files = list(files)
    return METADATA in files and any(f.endswith(SHARD_SUFFIX) for f in files)


class DcpReader(Listed):
    """One DCP checkpoint directory; see the module's docstring for how it is read and why.

    The model's tensors are those under ``model.`` or ``state_dict.`` when
    every model-like key is (Lightning's FSDP and ModelParallel strategies,
    HF Trainer, the DCP tutorial's ``{"model": ...}``), else
    every key that is no optimizer, scheduler or loader state (torchtitan
    flattens the model's keys to the top); Lightning's own ``model.``
    attribute is dropped as for its ``.ckpt`` files. FSDP1's wrapper names
    are dropped by :func:`normalise`.
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)
        self._index: Any = None  # torch's Metadata, read once

    def _list(self) -> list[TensorInfo]:
        from torch.distributed.checkpoint.metadata import TensorStorageMetadata

        metadata = self._metadata()
        self._check_shards(metadata)
        tensors = {k: m for k, m in metadata.state_dict_metadata.items() if isinstance(m, TensorStorageMetadata)}
        model = [k for k in tensors if not _NOT_MODEL.match(k)]
        container = next((c for c in _CONTAINERS if model and all(k.startswith(c) for k in model)), "")
        keys = {k: k.removeprefix(container) for k in model}
        lightning = storage.exists(os.path.join(self._path, LIGHTNING_META))
        if lightning and keys and all(name.startswith(_MODEL) for name in keys.values()):
            keys = {k: name.removeprefix(_MODEL) for k, name in keys.items()}
        if lightning:
            self._step = _lightning_step(os.path.join(self._path, LIGHTNING_META))
        listing = []
        for key, name in keys.items():
            meta = tensors[key]
            dtype = _dtype(meta.properties.dtype)
            if dtype is not None and floating(dtype):
                itemsize = meta.properties.dtype.itemsize
                listing.append(TensorInfo(normalise(name), key, tuple(meta.size), dtype, meta.size.numel() * itemsize))
        return listing

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        import torch
        import torch.distributed.checkpoint as dcp

        metadata = self._metadata()
        reader = _reader(self._path, metadata)
        for info in tensors:
            target = torch.empty(info.shape, dtype=metadata.state_dict_metadata[info.key].properties.dtype)
            with reading(self._path), warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*assuming the intent is to load in a single process")
                dcp.load({info.key: target}, storage_reader=reader, no_dist=True)
            if target.dtype == torch.bfloat16:
                target = target.float()  # exact: bf16 is a truncated float32
            yield info, owned(target.numpy())

    def _metadata(self) -> Any:
        """The checkpoint's ``.metadata`` (torch's pickled ``Metadata``), read once."""
        if self._index is None:
            if not storage.exists(os.path.join(self._path, METADATA)):
                raise UnreadableCheckpoint(f"{self._path}: no {METADATA} index")
            with reading(os.path.join(self._path, METADATA)):
                self._index = _reader(self._path).read_metadata()
        return self._index

    def _check_shards(self, metadata: Any) -> None:
        """Every shard holds the bytes the index places in it (a truncated copy, an interrupted save)."""
        needed: dict[str, int] = {}
        for info in (metadata.storage_data or {}).values():
            needed[info.relative_path] = max(needed.get(info.relative_path, 0), info.offset + info.length)
        for relative, end in sorted(needed.items()):
            shard = os.path.join(self._path, relative)
            try:
                size = storage.size(shard)
            except (OSError, storage.StorageError):
                raise UnreadableCheckpoint(f"{shard}: missing (the {METADATA} index names it)") from None
            if size < end:
                raise UnreadableCheckpoint(f"{shard}: truncated ({size} bytes, the index places data up to {end})")


def _reader(path: str, metadata: Any = None) -> Any:
    """A ``FileSystemReader`` of ``path``, serving ``metadata`` when given: ``dcp.load`` would otherwise
    read ``.metadata`` again on every call, once per tensor (a large model's index is megabytes of pickle).

    For a URL its files are streams of :func:`.storage.open_file`: ``FileSystemReader`` seeks to each
    chunk the index places and reads that span, so a shard in a bucket costs the chunks asked for.
    """
    from torch.distributed.checkpoint import FileSystemReader

    class Indexed(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Any:
            return metadata if metadata is not None else super().read_metadata(*args, **kwargs)

    reader = Indexed(path)
    if storage.is_url(path):
        reader.fs, reader.path = _ranged_files(), path  # its own FileSystem would make a local Path of it
    return reader


def _ranged_files() -> Any:
    """torch's file-system interface over :mod:`tb_stagnation.storage`, for reading only (a reader never writes)."""
    import contextlib
    import posixpath

    from torch.distributed.checkpoint.filesystem import FileSystemBase

    class Ranged(FileSystemBase):
        @contextlib.contextmanager
        def create_stream(self, path: Any, mode: str) -> Iterator[Any]:
            with storage.open_file(str(path)) as f:
                yield f

        def concat_path(self, path: Any, suffix: str) -> str:
            return posixpath.join(str(path), suffix)

        def init_path(self, path: Any) -> str:
            return str(path)

        def exists(self, path: Any) -> bool:
            return storage.exists(str(path))

        @classmethod
        def validate_checkpoint_id(cls, checkpoint_id: Any) -> bool:
            return storage.is_url(str(checkpoint_id))

        def rename(self, *args: Any) -> None:
            raise NotImplementedError("reading only")

        mkdir = rm_file = rename

    return Ranged()


def _dtype(dtype: Any) -> str | None:
    """numpy's name of a stored torch dtype, as the ``torch.save`` reader names it."""
    import torch

    from tb_stagnation.checkpoints.formats.torch import _torch_dtype

    return _torch_dtype(torch.empty(0, dtype=dtype))


def _lightning_step(meta: str) -> int | None:
    """``global_step`` from Lightning's ``meta.pt`` (its checkpoint dict without the tensors)."""
    from tb_stagnation.checkpoints.formats.torch import _state_dict, _torch_load

    with reading(meta):
        _, step = _state_dict(_torch_load(meta, [], "cpu"))
    return step
