"""Keras 3: ``.weights.h5`` files and ``.keras`` archives, read with h5py."""

from __future__ import annotations

import contextlib
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tb_stagnation.checkpoints.formats import TensorInfo
from tb_stagnation.checkpoints.formats.listing import Listed, owned, reading

# Keras 3 stores a layer's variables by position (trainable first, in creation order):
# the names of those positions for the built-in layers, by the layer class's group name.
_KERAS_VARIABLES = {
    "dense": ("kernel", "bias"),
    "einsum_dense": ("kernel", "bias"),
    "conv1d": ("kernel", "bias"),
    "conv2d": ("kernel", "bias"),
    "conv3d": ("kernel", "bias"),
    "conv1d_transpose": ("kernel", "bias"),
    "conv2d_transpose": ("kernel", "bias"),
    "conv3d_transpose": ("kernel", "bias"),
    "depthwise_conv1d": ("kernel", "bias"),
    "depthwise_conv2d": ("kernel", "bias"),
    "separable_conv1d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "separable_conv2d": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "embedding": ("embeddings",),
    "batch_normalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "layer_normalization": ("gamma", "beta"),
    "group_normalization": ("gamma", "beta"),
}


class KerasReader(Listed):
    """Keras 3 ``.weights.h5`` files and ``.keras`` archives (which hold ``model.weights.h5``).

    Groups are named after the layer class (``layers/dense_1/vars/0``); the
    layer's own name sits in the ``name`` attribute of its ``vars`` group and
    the model's in the root's, so a kernel becomes ``<model>/<layer>/kernel``,
    as Keras' TensorBoard callback names its histogram. Top-level
    ``optimizer...`` groups (one per optimizer) are skipped.
    """

    def _list(self) -> list[TensorInfo]:  # the epoch is in the file name (see discover)
        with self._opened() as root:
            return list(_keras_layers(root, ""))

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        with self._opened() as root:
            for info in tensors:
                yield info, owned(root[info.key][()])

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Any]:
        import h5py

        with reading(self._path):
            if self._path.endswith(".keras"):
                with zipfile.ZipFile(self._path) as archive, archive.open("model.weights.h5") as member:
                    with h5py.File(member, "r") as root:
                        yield root
            else:
                with h5py.File(self._path, "r") as root:
                    yield root


def _keras_layers(group: Any, model: str) -> Iterator[TensorInfo]:
    """Every layer variable of the file, nested models included, in stored order.

    A group holding ``layers`` is a model (named by its ``vars`` group's
    ``name``); other groups are tracked attributes that may hold one (a
    model wrapping another). ``vars`` of a model (seed state) and groups of
    optimizers hold nothing of a layer.
    """
    import h5py

    layers = group.get("layers")
    if isinstance(layers, h5py.Group):
        own = group.get("vars")
        name = str(own.attrs.get("name", model)) if isinstance(own, h5py.Group) else model
        for group_name, layer in layers.items():
            yield from _keras_layer(group_name, layer, name)
        return
    for child_name, child in group.items():
        if isinstance(child, h5py.Group) and child_name != "vars" and "optimizer" not in child_name:
            yield from _keras_layers(child, model)


def _keras_layer(group_name: str, layer: Any, prefix: str) -> Iterator[TensorInfo]:
    import h5py

    variables = layer.get("vars")
    name = str(variables.attrs.get("name", group_name)) if isinstance(variables, h5py.Group) else group_name
    path = f"{prefix}/{name}" if prefix else name
    if isinstance(variables, h5py.Group):
        count = len(variables)
        kind = re.sub(r"_\d+$", "", group_name)
        labels = _KERAS_VARIABLES.get(kind, ())
        for i in range(count):
            data = variables.get(str(i))
            if not isinstance(data, h5py.Dataset) or data.dtype.kind != "f":
                continue
            label = labels[i] if len(labels) >= count else f"var_{i}"
            yield TensorInfo(f"{path}/{label}", data.name, tuple(data.shape), data.dtype.name, data.size * data.dtype.itemsize)
    nested = layer.get("layers")
    if isinstance(nested, h5py.Group):  # a model used as a layer
        for inner_group, inner in nested.items():
            yield from _keras_layer(inner_group, inner, path)
