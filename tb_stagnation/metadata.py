"""What tb-stagnation's own summaries look like on disk.

Shaped like ``tensorboard/plugins/*/metadata.py``: the plugin name and the
``SummaryMetadata`` that marks the exact movement scalars written by
:mod:`tb_stagnation.summary` (during training) and by
:mod:`tb_stagnation.checkpoints` (afterwards, from saved checkpoints). The
content is a small JSON object naming the parameter, the quantity, where it
was measured and what its steps count, so the plugin finds the data by its
metadata, never by guessing from tag names.
"""

from __future__ import annotations

import dataclasses
import functools
import json

from tensorboard.compat.proto import summary_pb2

PLUGIN_NAME = "stagnation"

# Histogram data is read from TensorBoard's own histograms plugin.
HISTOGRAMS_PLUGIN_NAME = "histograms"

# Bumped whenever the content format changes incompatibly.
CONTENT_VERSION = 1

# The quantities an exact-movement writer logs per parameter tensor.
UPDATE_RATIO = "update_ratio"  # ||W_t - W_{t-k}|| / ||W_{t-k}|| / k
PARAM_RMS = "rms"  # sqrt(mean(W_t ** 2))
GRAD_NORM = "grad_norm"  # ||dL/dW||, only where the caller passes gradients
CHANGE = "change"  # ||W_t - W_{t-k}|| / k: absolute, defined where ||W_{t-k}|| == 0 too
UPDATE_COSINE = "update_cosine"  # cos(W_t - W_{t-k}, W_{t-k} - W_{t-2k}): direction consistency
QUANTITIES = (UPDATE_RATIO, PARAM_RMS, GRAD_NORM, CHANGE, UPDATE_COSINE)

# Where a series was measured: by a writer during training, or between checkpoints.
EXACT, CHECKPOINT = "exact", "checkpoint"
SOURCES = (EXACT, CHECKPOINT)
# What a series' steps count: optimizer steps, epochs (Keras' checkpoints), or only the
# order of checkpoints whose real step is unknown (a TF2 save counter, unnumbered files).
STEP, EPOCH, ORDER = "step", "epoch", "checkpoint"
AXES = (STEP, EPOCH, ORDER)


@dataclasses.dataclass(frozen=True)
class ExactContent:
    """Parsed plugin content of one exact-movement time series."""

    param: str
    quantity: str
    source: str = EXACT
    axis: str = STEP


def create_summary_metadata(
    param: str, quantity: str, source: str = EXACT, axis: str = STEP
) -> summary_pb2.SummaryMetadata:
    """Metadata for one exact-movement scalar of parameter ``param``.

    ``source`` and ``axis`` are left out of the content at their defaults, so
    what the training-time writers wrote before they existed reads the same.
    """
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; expected one of {QUANTITIES}")
    if source not in SOURCES or axis not in AXES:
        raise ValueError(f"unknown source {source!r} or axis {axis!r}")
    fields = {"version": CONTENT_VERSION, "param": param, "quantity": quantity}
    if source != EXACT:
        fields["source"] = source
    if axis != STEP:
        fields["axis"] = axis
    content = json.dumps(fields, sort_keys=True).encode("utf-8")
    return summary_pb2.SummaryMetadata(
        summary_description=f"tb-stagnation {quantity} of `{param}` ({source})",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=content
        ),
        data_class=summary_pb2.DATA_CLASS_SCALAR,
    )


def parse_plugin_metadata(content: bytes) -> ExactContent | None:
    """Parse plugin content; ``None`` for content this version cannot read.

    Unknown or newer content is skipped rather than raised on, so one odd
    series never takes the whole ranking down.
    """
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("version") != CONTENT_VERSION:
        return None
    param, quantity = data.get("param"), data.get("quantity")
    source, axis = data.get("source", EXACT), data.get("axis", STEP)
    if not isinstance(param, str) or quantity not in QUANTITIES:
        return None
    if source not in SOURCES or axis not in AXES:
        return None
    return ExactContent(param=param, quantity=quantity, source=source, axis=axis)


def tag_for(param: str, quantity: str, source: str = EXACT) -> str:
    """The tag an exact-movement scalar is written under (readable in any tool).

    Checkpoint series get a tag space of their own, so a run that has both
    keeps both.
    """
    if source == CHECKPOINT:
        return f"stagnation/checkpoint/{param}/{quantity}"
    return f"stagnation/{param}/{quantity}"


def scalar_value(
    param: str, quantity: str, value: float, source: str = EXACT, axis: str = STEP
) -> summary_pb2.Summary.Value:
    """One exact-movement value as every writer stores it: a rank-0 float32 tensor with our metadata."""
    return summary_pb2.Summary.Value(
        tag=tag_for(param, quantity, source),
        metadata=_cached_metadata(param, quantity, source, axis),
        tensor=_float32_scalar(value),
    )


@functools.lru_cache(maxsize=4096)
def _cached_metadata(param: str, quantity: str, source: str, axis: str) -> summary_pb2.SummaryMetadata:
    """The same few protos are written at every snapshot (each Value copies it)."""
    return create_summary_metadata(param, quantity, source, axis)


def _float32_scalar(value: float):
    """A rank-0 float32 ``TensorProto``, as ``tensor_util.make_tensor_proto`` builds it."""
    from tensorboard.compat.proto import tensor_pb2, tensor_shape_pb2, types_pb2

    return tensor_pb2.TensorProto(
        dtype=types_pb2.DT_FLOAT, tensor_shape=tensor_shape_pb2.TensorShapeProto(), float_val=[value]
    )
