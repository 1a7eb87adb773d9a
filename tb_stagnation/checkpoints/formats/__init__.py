"""Checkpoint formats: a checkpoint's path and format in, its floating-point tensors out, one at a time.

:func:`open_checkpoint` is the entry point. A reader lists the model's
floating-point tensors (parameters and float buffers such as batch-norm
statistics; never optimizer state, step counters or integer buffers) under
the framework's own parameter names, normalised so that they meet the
histogram tags of the same parameter (:func:`normalise`), and reads a chosen
set of them in one pass: the files are opened for that pass and closed after
it, so nothing of a checkpoint stays mapped between passes (see
:mod:`tb_stagnation.checkpoints.movement`).

One module per framework, each using the framework's own library, imported
on first use: :mod:`.safetensors` (``safe_open``), :mod:`.torch`
(``torch.load(mmap=True, weights_only=True)``, for Lightning too),
:mod:`.tensorflow` (TensorFlow's checkpoint reader), :mod:`.keras` (h5py), :mod:`.dcp`
(``torch.distributed.checkpoint``'s own loader, one tensor at a time);
:mod:`.listing` holds what they share. Nothing pickled is ever executed:
where ``weights_only`` loading refuses a class (Lightning keeps the user's
hyperparameters pickled), that class is replaced by an inert stand-in and
the state dict is read as usual.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

import numpy as np

from tb_stagnation.writers import units

# Format names, as discovery tells them and messages show them.
SAFETENSORS, TORCH, LIGHTNING, TENSORFLOW, KERAS = "safetensors", "torch", "lightning", "tensorflow", "keras"
DCP = "dcp"  # torch.distributed.checkpoint: a directory of .metadata and .distcp shards
FORMATS = (SAFETENSORS, TORCH, LIGHTNING, TENSORFLOW, KERAS, DCP)
# The pip extra that installs each format's reader.
_EXTRA = {SAFETENSORS: "safetensors", TORCH: "torch", LIGHTNING: "torch", TENSORFLOW: "tensorflow", KERAS: "h5py",
          DCP: "torch"}
_MODULE = {SAFETENSORS: "safetensors", TORCH: "torch", LIGHTNING: "torch", TENSORFLOW: "tensorflow", KERAS: "h5py",
           DCP: "torch"}


class MissingExtra(RuntimeError):
    """A format's reader library is not installed; the message names the extra."""


class UnreadableCheckpoint(RuntimeError):
    """A checkpoint that cannot be read (truncated, corrupt, not what its name says)."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """One tensor of a checkpoint: its normalised name, where it is stored, its layout."""

    name: str
    key: str  # the name the file stores it under
    shape: tuple[int, ...]
    dtype: str  # numpy's name; "bfloat16" where numpy has none
    nbytes: int  # in the file


class CheckpointReader(Protocol):
    def tensors(self) -> list[TensorInfo]:
        """The model's floating-point tensors, in stored order."""

    def recorded_step(self) -> int | None:
        """The training step the checkpoint itself records, if it records one."""

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        """Each of ``tensors`` as a numpy array of its own (float, upcast exactly), one at a time."""


class Filtered:
    """A checkpoint reader that lists only the tensors ``keep`` accepts, and reads as ``reader`` does.

    For a part of the import that measures some of a checkpoint's tensors
    (a Ray actor's block, :mod:`tb_stagnation.checkpoints.cluster`) or
    measures some apart (LoRA factors, :mod:`tb_stagnation.checkpoints.adapters`):
    what it is not to measure it never sees.
    """

    def __init__(self, reader: CheckpointReader, keep: Callable[[TensorInfo], bool]) -> None:
        self._reader, self._keep = reader, keep

    def tensors(self) -> list[TensorInfo]:
        return [info for info in self._reader.tensors() if self._keep(info)]

    def recorded_step(self) -> int | None:
        return self._reader.recorded_step()

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        return self._reader.read(tensors)


def open_checkpoint(path: str, fmt: str) -> CheckpointReader:
    """A reader for the checkpoint at ``path`` (a file, an HF folder, or a TF prefix)."""
    _require(fmt)
    if fmt == SAFETENSORS:
        from tb_stagnation.checkpoints.formats.safetensors import SafetensorsReader

        return SafetensorsReader(path)
    if fmt in (TORCH, LIGHTNING):
        from tb_stagnation.checkpoints.formats.torch import TorchReader

        return TorchReader(path, lightning=fmt == LIGHTNING)
    if fmt == TENSORFLOW:
        from tb_stagnation.checkpoints.formats.tensorflow import TensorFlowReader

        return TensorFlowReader(path)
    if fmt == KERAS:
        from tb_stagnation.checkpoints.formats.keras import KerasReader

        return KerasReader(path)
    if fmt == DCP:
        from tb_stagnation.checkpoints.formats.dcp import DcpReader

        return DcpReader(path)
    raise ValueError(f"unknown checkpoint format {fmt!r}")


def _require(fmt: str) -> None:
    """Raise :class:`MissingExtra` naming the extra when ``fmt``'s library is missing."""
    import importlib.util

    module = _MODULE[fmt]
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"reading {fmt} checkpoints needs {module}: pip install 'tb-stagnation[{_EXTRA[fmt]}]'"
        )


_LAYOUT = {SAFETENSORS: units.TORCH_LAYOUT, TORCH: units.TORCH_LAYOUT, LIGHTNING: units.TORCH_LAYOUT,
           TENSORFLOW: units.TF_LAYOUT, KERAS: units.TF_LAYOUT, DCP: units.TORCH_LAYOUT}


def unit_noun(info: TensorInfo) -> str:
    """What one unit of ``info`` is (:func:`tb_stagnation.writers.units.unit_noun`)."""
    return units.unit_noun(info.name, info.shape)


def unit_axis(info: TensorInfo, fmt: str) -> int | None:
    """The axis of ``info`` whose slices are its output units in format ``fmt``'s layout, or ``None``
    where it does not say (:func:`tb_stagnation.writers.units.unit_axis`, the writers' rule too)."""
    return units.unit_axis(info.name, info.shape, _LAYOUT[fmt])


def shape(info: TensorInfo, fmt: str) -> tuple[str, tuple[int, ...]]:
    """``(layout, shape)`` of ``info`` as its records carry it (:func:`tb_stagnation.records.create_summary_metadata`)."""
    return _LAYOUT[fmt], info.shape


# DistributedDataParallel, torch.compile, FSDP1 and its activation checkpointing (in the keys of a state
# dict taken from inside FSDP1's wrappers)
_WRAPPERS = ("module.", "_orig_mod.", "_fsdp_wrapped_module.", "_checkpoint_wrapped_module.")


def normalise(name: str) -> str:
    """A parameter name as the histograms of the same parameter would spell it.

    Drops TF2's ``/.ATTRIBUTES/VARIABLE_VALUE`` and the attribute that
    ``torch.compile``, ``DistributedDataParallel`` and FSDP1 wrap a model in.
    """
    name = name.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
    for wrapper in _WRAPPERS:
        name = name.replace("." + wrapper, ".")
        name = name.removeprefix(wrapper)
    return name
