"""One reader per checkpoint format, each handing out one tensor at a time.

:func:`open_checkpoint` is the entry point. A reader lists the model's
floating-point tensors (parameters and float buffers such as batch-norm
statistics; never optimizer state, step counters or integer buffers) under
the framework's own parameter names, normalised so that they meet the
histogram tags of the same parameter, and reads a chosen set of them in one
pass: the files are opened for that pass and closed after it, so nothing of a
checkpoint stays mapped between passes (see :mod:`.movement`).

Every reader uses the framework's own library, imported on first use:
safetensors' ``safe_open``, ``torch.load(mmap=True, weights_only=True)``,
TensorFlow's checkpoint reader, h5py. Nothing pickled is ever executed:
where ``weights_only`` loading refuses a class (Lightning keeps the user's
hyperparameters pickled), that class is replaced by an inert stand-in and
the state dict is read as usual.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import numpy as np

# Format names, as discovery tells them and messages show them.
SAFETENSORS, TORCH, LIGHTNING, TENSORFLOW, KERAS = "safetensors", "torch", "lightning", "tensorflow", "keras"
FORMATS = (SAFETENSORS, TORCH, LIGHTNING, TENSORFLOW, KERAS)
# The pip extra that installs each format's reader.
_EXTRA = {SAFETENSORS: "safetensors", TORCH: "torch", LIGHTNING: "torch", TENSORFLOW: "tensorflow", KERAS: "h5py"}
_MODULE = {SAFETENSORS: "safetensors", TORCH: "torch", LIGHTNING: "torch", TENSORFLOW: "tensorflow", KERAS: "h5py"}


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


class _Listed:
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


def open_checkpoint(path: str, fmt: str) -> CheckpointReader:
    """A reader for the checkpoint at ``path`` (a file, an HF folder, or a TF prefix)."""
    _require(fmt)
    if fmt == SAFETENSORS:
        return SafetensorsReader(path)
    if fmt in (TORCH, LIGHTNING):
        return TorchReader(path, lightning=fmt == LIGHTNING)
    if fmt == TENSORFLOW:
        return TensorFlowReader(path)
    if fmt == KERAS:
        return KerasReader(path)
    raise ValueError(f"unknown checkpoint format {fmt!r}")


def _require(fmt: str) -> None:
    """Raise :class:`MissingExtra` naming the extra when ``fmt``'s library is missing."""
    import importlib.util

    module = _MODULE[fmt]
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(
            f"reading {fmt} checkpoints needs {module}: pip install 'tb-stagnation[{_EXTRA[fmt]}]'"
        )


# ------------------------------------------------------------------------ names

# Counters that sit among the variables of TF1 checkpoints (Adam's beta powers, one per optimizer).
_TF1_COUNTERS = re.compile(r"(^|/)(global_step|beta[12]_power(_\d+)?)$")
_WRAPPERS = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def normalise(name: str) -> str:
    """A parameter name as the histograms of the same parameter would spell it.

    Drops TF2's ``/.ATTRIBUTES/VARIABLE_VALUE`` and the attribute that
    ``torch.compile`` and ``DistributedDataParallel`` wrap a model in.
    """
    name = name.removesuffix("/.ATTRIBUTES/VARIABLE_VALUE")
    for wrapper in _WRAPPERS:
        name = name.replace("." + wrapper, ".")
        name = name.removeprefix(wrapper)
    return name


def _floating(dtype: str) -> bool:
    return dtype == "bfloat16" or np.dtype(dtype).kind == "f"


def _owned(values: np.ndarray) -> np.ndarray:
    """A copy in memory of our own (nothing mapped from a file), in a float numpy can sum exactly."""
    if values.dtype.kind != "f":
        raise UnreadableCheckpoint(f"not a floating-point tensor ({values.dtype})")
    return np.array(values, copy=True)


# ------------------------------------------------------------------ safetensors


class SafetensorsReader(_Listed):
    """``model.safetensors``, or shards listed by ``model.safetensors.index.json``.

    ``path`` is one ``.safetensors`` file, or an HF checkpoint folder (its
    index routes each key to the shard that holds it). numpy has no
    bfloat16: those tensors are read as their raw 16 bits and widened to
    float32 exactly (bf16 is the upper half of a float32).
    """

    def __init__(self, path: str) -> None:
        super().__init__(path)  # the step: the HF folder's trainer_state.json says it (see discover)
        self._files = _safetensors_files(path)
        self._location: dict[str, tuple[str, int]] = {}  # key -> (file, data offset)

    def _list(self) -> list[TensorInfo]:
        listing = []
        for file, keys in self._files.items():
            header, data_start = _safetensors_header(file)
            for key in keys if keys is not None else [k for k in header if k != "__metadata__"]:
                entry = header.get(key)
                if entry is None:
                    raise UnreadableCheckpoint(f"{file}: the index names {key!r}, the shard lacks it")
                dtype = _SAFETENSORS_DTYPES.get(entry["dtype"])
                start, end = entry["data_offsets"]
                self._location[key] = (file, data_start + start)
                if dtype is not None and _floating(dtype):
                    listing.append(TensorInfo(normalise(key), key, tuple(entry["shape"]), dtype, end - start))
        return listing

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        from safetensors import safe_open

        self.tensors()
        by_file: dict[str, list[TensorInfo]] = {}
        for info in tensors:
            by_file.setdefault(self._location[info.key][0], []).append(info)
        for file, infos in by_file.items():
            with _reading(file), safe_open(file, framework="np") as f:
                for info in infos:
                    if info.dtype == "bfloat16":
                        yield info, _bfloat16(file, self._location[info.key][1], info.shape)
                    else:
                        yield info, _owned(f.get_tensor(info.key))


_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
                       "I64": "int64", "I32": "int32", "I16": "int16", "I8": "int8", "U8": "uint8",
                       "BOOL": "bool"}


def _safetensors_files(path: str) -> dict[str, list[str] | None]:
    """file -> the keys to take from it (``None``: all), for a file or an HF folder."""
    if not os.path.isdir(path):
        return {path: None}
    index = os.path.join(path, "model.safetensors.index.json")
    if not os.path.exists(index):
        return {os.path.join(path, "model.safetensors"): None}
    try:
        with open(index, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise UnreadableCheckpoint(f"{index}: not a safetensors index ({e})") from None
    files: dict[str, list[str]] = {}
    for key, shard in weight_map.items():
        files.setdefault(os.path.join(path, shard), []).append(key)
    return files


def _safetensors_header(file: str) -> tuple[dict, int]:
    """The JSON header of a safetensors file and where its data starts.

    Read here rather than through ``safe_open`` because only the header says
    where a bfloat16 tensor's bytes are; it also catches truncation early.
    """
    try:
        size = os.path.getsize(file)
        with open(file, "rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if length <= 0 or 8 + length > size:
                raise UnreadableCheckpoint(f"{file}: not a safetensors file (header length {length})")
            header = json.loads(f.read(length))
    except OSError as e:
        raise UnreadableCheckpoint(f"{file}: {e.strerror or e}") from None
    except ValueError:
        raise UnreadableCheckpoint(f"{file}: the safetensors header is not JSON") from None
    ends = [e["data_offsets"][1] for k, e in header.items() if k != "__metadata__"]
    if 8 + length + max(ends, default=0) > size:
        raise UnreadableCheckpoint(f"{file}: truncated ({size} bytes, the header describes more)")
    return header, 8 + length


def _bfloat16(file: str, offset: int, shape: tuple[int, ...]) -> np.ndarray:
    """bfloat16 values widened to float32: the 16 bits become a float32's upper half."""
    count = int(np.prod(shape))
    bits = np.fromfile(file, dtype="<u2", count=count, offset=offset)
    return (bits.astype(np.uint32) << 16).view(np.float32).reshape(shape)


@contextlib.contextmanager
def _reading(file: str) -> Iterator[None]:
    """Turn the libraries' many errors for a damaged file into one kind, naming the file."""
    try:
        yield
    except (MissingExtra, UnreadableCheckpoint):
        raise
    except Exception as e:  # safetensors, torch, TF and h5py each raise their own types
        raise UnreadableCheckpoint(f"{file}: {type(e).__name__}: {str(e)[:200]}") from None


# ------------------------------------------------------------------------ torch

# Where full training states keep the model's state dict.
_STATE_DICT_KEYS = ("state_dict", "model_state_dict", "model", "module", "net")


class TorchReader(_Listed):
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
                if _torch_dtype(t) is not None and _floating(_torch_dtype(t))
            ]

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        import torch

        with self._loaded() as state:
            for info in tensors:
                tensor = state[info.key].detach()
                if tensor.dtype == torch.bfloat16:
                    tensor = tensor.float()  # exact: bf16 is a truncated float32
                yield info, _owned(tensor.numpy())

    @contextlib.contextmanager
    def _loaded(self) -> Iterator[dict[str, Any]]:
        """The state dict, mapped from the file for the duration of the block."""
        with _reading(self._path):
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


# ------------------------------------------------------------------- TensorFlow


class TensorFlowReader(_Listed):
    """TF1 ``Saver`` and TF2 ``tf.train.Checkpoint`` bundles (``.index`` + ``.data-*``).

    TF2 checkpoints name a variable by the first path that reaches it in the
    object graph; for a Keras 3 model that is often through the optimizer
    (``optimizer/_trainable_variables/0``). The object graph also records each
    variable's own name (``sequential/dense/kernel``, Keras' histogram tag),
    used when it names the variables uniquely. Variables reachable only
    through an optimizer are optimizer state and skipped, as are TF1 slots
    and counters (:func:`_tf1_optimizer_state`).
    """

    def _list(self) -> list[TensorInfo]:
        with _reading(self._path):
            reader = self._reader()
            shapes, dtypes = reader.get_variable_to_shape_map(), reader.get_variable_to_dtype_map()
            names = _tf_names(reader, shapes)
            self._step = _tf_step(reader, shapes, dtypes)
        listing = []
        for key in sorted(names, key=lambda k: names[k]):
            dtype = dtypes[key]
            if not dtype.is_floating:
                continue
            shape = tuple(int(d) for d in shapes[key])
            np_dtype = "bfloat16" if dtype.name == "bfloat16" else dtype.as_numpy_dtype().dtype.name
            listing.append(TensorInfo(names[key], key, shape, np_dtype, int(np.prod(shape)) * dtype.size))
        return listing

    def read(self, tensors: Iterable[TensorInfo]) -> Iterator[tuple[TensorInfo, np.ndarray]]:
        with _reading(self._path):
            reader = self._reader()
            for info in tensors:
                value = reader.get_tensor(info.key)
                yield info, _owned(np.asarray(value, dtype=np.float32) if info.dtype == "bfloat16" else value)

    def _reader(self) -> Any:
        import tensorflow as tf

        return tf.train.load_checkpoint(self._path)


def _tf_names(reader: Any, shapes: dict[str, Any]) -> dict[str, str]:
    """checkpoint key -> normalised name of every model variable (optimizer state left out)."""
    graph_key = "_CHECKPOINTABLE_OBJECT_GRAPH"
    if graph_key not in shapes:  # TF1 Saver: keys are the variables' names
        return {k: normalise(k) for k in shapes if not _tf1_optimizer_state(k, shapes)}
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(reader.get_tensor(graph_key))
    paths = _model_paths(graph)
    keys: dict[str, str] = {}  # checkpoint key -> own name, for variables the model reaches
    path_names: dict[str, str] = {}
    for node_id, path in paths.items():
        for attribute in graph.nodes[node_id].attributes:
            if attribute.name == "VARIABLE_VALUE" and attribute.checkpoint_key in shapes:
                keys[attribute.checkpoint_key] = attribute.full_name
                path_names[attribute.checkpoint_key] = normalise(path)
    own = list(keys.values())
    if all(own) and len(set(own)) == len(own):
        return {k: normalise(v) for k, v in keys.items()}
    return path_names


def _tf1_optimizer_state(key: str, shapes: dict[str, Any]) -> bool:
    """A TF1 slot (``<variable>/<Optimizer>``, ``.../Adam_1``) or counter, not a model variable.

    Told by structure rather than by optimizer names: a slot is stored under
    the name of the variable it belongs to, plus one component.
    """
    parent = key.rpartition("/")[0]
    return bool(_TF1_COUNTERS.search(key)) or (parent in shapes and shapes[parent] == shapes[key])


def _model_paths(graph: Any) -> dict[int, str]:
    """node -> its first path from the root that does not pass through an optimizer.

    An optimizer is a node named so (``optimizer``, ``slow_optimizer``) or one
    that counts iterations (Keras' ``_iterations``, tf.keras' ``iter``).
    Breadth-first, children in stored order, so the path is the shortest, as
    the checkpoint's own keys are.
    """
    optimizers = {
        child.node_id
        for node in graph.nodes
        for child in node.children
        if "optimizer" in child.local_name.lower()
        or {c.local_name for c in graph.nodes[child.node_id].children} & {"_iterations", "iter"}
    }
    paths: dict[int, str] = {0: ""}
    queue = [0]
    for node_id in queue:
        for child in graph.nodes[node_id].children:
            if child.node_id in paths or child.node_id in optimizers:
                continue
            prefix = paths[node_id]
            paths[child.node_id] = f"{prefix}/{child.local_name}" if prefix else child.local_name
            queue.append(child.node_id)
    return paths


# Scalar integer variables that hold the training step, most specific first.
_TF_STEP_VARIABLES = ("global_step", "step", "optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE",
                      "optimizer/iter/.ATTRIBUTES/VARIABLE_VALUE", "step/.ATTRIBUTES/VARIABLE_VALUE",
                      "global_step/.ATTRIBUTES/VARIABLE_VALUE")


def _tf_step(reader: Any, shapes: dict[str, Any], dtypes: dict[str, Any]) -> int | None:
    for key in _TF_STEP_VARIABLES:
        if key in shapes and not len(shapes[key]) and dtypes[key].is_integer:
            return int(reader.get_tensor(key))
    return None


# ------------------------------------------------------------------------ Keras


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


class KerasReader(_Listed):
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
                yield info, _owned(root[info.key][()])

    @contextlib.contextmanager
    def _opened(self) -> Iterator[Any]:
        import h5py

        with _reading(self._path):
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
