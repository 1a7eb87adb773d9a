"""TensorFlow: TF1 ``Saver`` and TF2 ``tf.train.Checkpoint`` bundles, model variables only."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np

from tb_stagnation.checkpoints.formats import TensorInfo, normalise
from tb_stagnation.checkpoints.formats.listing import Listed, owned, reading

# Counters that sit among the variables of TF1 checkpoints (Adam's beta powers, one per optimizer).
_TF1_COUNTERS = re.compile(r"(^|/)(global_step|beta[12]_power(_\d+)?)$")


class TensorFlowReader(Listed):
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
        with reading(self._path):
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
        with reading(self._path):
            reader = self._reader()
            for info in tensors:
                value = reader.get_tensor(info.key)
                yield info, owned(np.asarray(value, dtype=np.float32) if info.dtype == "bfloat16" else value)

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
