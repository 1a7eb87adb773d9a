"""What tb-stagnation's own summaries look like on disk.

Shaped like ``tensorboard/plugins/*/metadata.py``: the plugin name and the
``SummaryMetadata`` that marks the exact movement written by
:mod:`tb_stagnation.summary` and the integrations (during training) and by
:mod:`tb_stagnation.checkpoints` (afterwards, from saved checkpoints). The
content is a small JSON object naming the parameter, where it was measured,
what its steps count and what each record holds, so the plugin finds the
data by its metadata, never by guessing from tag names.

**Version 2** (written now): one tag per tensor and source
(:func:`tag_for`), one record per step holding every quantity measured
there: a float64 tensor of shape ``(2, len(columns))``, row :data:`VALUES`
the values and row :data:`PRESENT` 1 where that column was measured, 0
where not (a checkpoint's first record has no ratio yet; a tensor at norm 0
has no ratio but a change), so "not measured" never reads as a NaN the
weights really held. The content's ``columns`` names them; a reader takes
the columns it knows by name and ignores the rest, so quantities can be
added without a new version. Column :data:`SEQ` numbers the records
written for the tensor (0 first; the checkpoint import continues across
re-runs), so a reader can tell how many a loader dropped. The content's
``index`` is the tensor's position in what its writer measures (the model's
parameter order, a checkpoint's tensor order): the Rust loader lists tags in
an order of its own and either loader may drop a tensor's first records, so
model order cannot come from the listing or the first step kept. Where
the producer knows it, the content also holds the tensor's ``shape`` and
the ``layout`` it is stored in (:data:`LAYOUTS`): its fan-in and fan-out,
which the ``init_scale`` finding needs; older files have none.

Data class TENSOR: a record is not a scalar. What the loaders keep of it by
default, per tag (measured on TensorBoard 2.21 / data server 0.7.2, for
this data class and for version 1's scalars alike where not noted):

* the Python loader (``--load_fast=false``; also ``s3://`` and other
  non-``gs://`` log directories, ``--logdir_spec``): **10**, its default for
  any plugin it does not know, whatever the data class;
* the Rust data server (``--load_fast=true``, the default where it runs):
  **100** for tensors (version 1's scalars: 1,000).

``--samples_per_plugin stagnation=0`` (:data:`KEEP_ALL_FLAG`) keeps every
record on both; TensorBoard 2.21 parses the value as an integer, so ``all``
is refused, and passes 0 to the data server as its ``all``.

**Unit records**: per output unit of a tensor (what a unit is:
:mod:`tb_stagnation.writers.units`), from the checkpoint import and from the
training-time writers alike, two tags per tensor and source:

* ``<tag>/units`` (:func:`units_tag`, content version 2 with ``units``):
  the movement of every unit summed over the pairs measured so far
  (``sum_i ||W_i[u] - W_{i-1}[u]||``, a path length), a float32 vector of
  length ``1 + units``, the number of pairs first. Written when the pair
  count reaches a power of two and once more at the end: of each import
  (which adds its pairs to what the previous one wrote, read back from the
  files), of training (a writer's ``close``, the callbacks' end of
  training); so ``log2(pairs) + 2`` at most per import or writer.
* ``<tag>/unit_quantiles`` (:func:`unit_quantiles_tag`, content version 2
  with ``quantiles`` and ``unit_count``): one record per pair at its later
  step, float64, the :data:`UNIT_QUANTILES` (min, p10, median, p90, max) of
  the units' movement over that pair per step (``||dW_i[u]|| / k_i``, the
  scale of ``change``).

Why this and no more: the ``dead_units`` finding needs exact index sets,
and a unit is dead when its sum is 0 or under a share of the tensor's
median unit, which the sum over the series answers; the tab's unit view
sorts the units by that sum and draws how the spread of unit movement
evolves pair by pair, which the quantiles answer. A 128k-row embedding over
64 pairs thus stores 8 sums of 512 KB (pairs 1, 2, 4, ... 64) plus 40
bytes per pair, never a value per unit per pair; the newest sum, the one
that counts, is the record both loaders always keep. float32 keeps a unit
that moved nonzero (weights differ by at least float32's smallest step).
The content's ``unit_axis`` says which axis of the tensor the units are
slices along, and ``unit`` what one is (:data:`UNIT_NOUNS`), as the
producer knew them from the framework's layout: readers never guess them
again from a name. Files with sums only (written before the quantiles) are
read alike, without quantiles.

**Version 1** (written before): one rank-0 float32 scalar per quantity, tag
``stagnation/<param>/<quantity>`` (``stagnation/checkpoint/...``), data class
SCALAR, content naming the one quantity. Still read; a loader samples each
of its tags on its own, so readers align them by step where present.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence

import numpy as np
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2

PLUGIN_NAME = "stagnation"

# Histogram data is read from TensorBoard's own histograms plugin.
HISTOGRAMS_PLUGIN_NAME = "histograms"

# The content versions this code reads; it writes the newest.
CONTENT_VERSION = 2
VERSION_1 = 1

# The flag that makes TensorBoard keep every record of this plugin, on both loaders.
KEEP_ALL_FLAG = f"--samples_per_plugin {PLUGIN_NAME}=0"

# The quantities measured per parameter tensor.
UPDATE_RATIO = "update_ratio"  # ||W_t - W_{t-k}|| / ||W_{t-k}|| / k
PARAM_RMS = "rms"  # sqrt(mean(W_t ** 2))
GRAD_NORM = "grad_norm"  # ||dL/dW||, only where the caller passes gradients
CHANGE = "change"  # ||W_t - W_{t-k}|| / k: absolute, defined where ||W_{t-k}|| == 0 too
UPDATE_COSINE = "update_cosine"  # cos(W_t - W_{t-k}, W_{t-k} - W_{t-2k}): direction consistency
QUANTITIES = (UPDATE_RATIO, PARAM_RMS, GRAD_NORM, CHANGE, UPDATE_COSINE)
SEQ = "seq"  # the record's number among those written for its tensor, 0 first

# Rows of a version-2 record.
VALUES, PRESENT = 0, 1

# Where a series was measured: by a writer during training, or between checkpoints.
EXACT, CHECKPOINT = "exact", "checkpoint"
SOURCES = (EXACT, CHECKPOINT)
# The columns each source writes.
COLUMNS = {
    EXACT: (SEQ, UPDATE_RATIO, PARAM_RMS, GRAD_NORM),
    CHECKPOINT: (SEQ, UPDATE_RATIO, PARAM_RMS, CHANGE, UPDATE_COSINE),
}
# What a series' steps count: optimizer steps, epochs (Keras' checkpoints), or only the
# order of checkpoints whose real step is unknown (a TF2 save counter, unnumbered files).
STEP, EPOCH, ORDER = "step", "epoch", "checkpoint"
AXES = (STEP, EPOCH, ORDER)
# Storage layouts a tensor's shape is in (content ``layout``, beside ``shape``): torch (and
# safetensors) keep output units first; TensorFlow and Keras last. Rules on them:
# :mod:`tb_stagnation.writers.units`.
TORCH_LAYOUT, TF_LAYOUT = "torch", "tensorflow"
LAYOUTS = (TORCH_LAYOUT, TF_LAYOUT)


@dataclasses.dataclass(frozen=True)
class ExactContent:
    """Parsed plugin content of one exact-movement time series.

    Version 2: ``columns`` names the columns of every record, ``quantity``
    is ``None``. Version 1: the tag holds the one scalar ``quantity``.
    """

    param: str
    source: str = EXACT
    axis: str = STEP
    version: int = CONTENT_VERSION
    columns: tuple[str, ...] = ()
    quantity: str | None = None
    index: int | None = None  # the tensor's position among its writer's (version 2)
    units: int | None = None  # unit records: how many units each holds (None: a movement record)
    unit_axis: int | None = None  # unit records: the tensor's axis the units are slices along
    unit: str | None = None  # unit records: what one unit is, one of UNIT_NOUNS
    quantiles: tuple[float, ...] | None = None  # unit quantile records: the quantiles each holds
    shape: tuple[int, ...] | None = None  # the tensor's shape, where its producer wrote it (version 2)
    layout: str | None = None  # ... and the layout it is in, one of LAYOUTS


def create_summary_metadata(
    param: str, source: str = EXACT, axis: str = STEP, index: int | None = None,
    shape: tuple[str, Sequence[int]] | None = None,
) -> summary_pb2.SummaryMetadata:
    """Metadata of the records of parameter ``param`` from ``source``, steps counting ``axis``.

    ``index``: the tensor's position among those its writer measures (model
    order). ``shape``: ``(layout, shape)``, the tensor's shape in one of
    :data:`LAYOUTS`, so a reader can tell its fan-in and fan-out (the
    ``init_scale`` finding compares its first RMS with He's and Glorot's);
    files written before carry none and are read alike.
    """
    if source not in SOURCES or axis not in AXES or (shape is not None and shape[0] not in LAYOUTS):
        raise ValueError(f"unknown source {source!r}, axis {axis!r} or layout {shape and shape[0]!r}")
    fields = {"version": CONTENT_VERSION, "param": param, "source": source, "axis": axis,
              "columns": list(COLUMNS[source])}
    if index is not None:
        fields["index"] = index
    if shape is not None:
        fields["layout"], fields["shape"] = shape[0], [int(n) for n in shape[1]]
    return summary_pb2.SummaryMetadata(
        summary_description=f"tb-stagnation movement of `{param}` ({source})",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(fields, sort_keys=True).encode("utf-8")
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


def parse_plugin_metadata(content: bytes) -> ExactContent | None:
    """Parse plugin content of version 1 or 2; ``None`` for content this version cannot read.

    Unknown or newer content is skipped rather than raised on, so one odd
    series never takes the whole ranking down.
    """
    try:
        data = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("version") not in (VERSION_1, CONTENT_VERSION):
        return None
    param, source, axis = data.get("param"), data.get("source", EXACT), data.get("axis", STEP)
    if not isinstance(param, str) or source not in SOURCES or axis not in AXES:
        return None
    if data["version"] == VERSION_1:
        quantity = data.get("quantity")
        if quantity not in QUANTITIES:
            return None
        return ExactContent(param=param, source=source, axis=axis, version=VERSION_1, quantity=quantity)
    index = data.get("index")
    if not (isinstance(index, int) and not isinstance(index, bool) and index >= 0):
        index = None
    if "units" in data or "quantiles" in data:
        quantiles = data.get("quantiles")
        units = data.get("unit_count" if quantiles is not None else "units")
        unit_axis, unit = data.get("unit_axis"), data.get("unit")
        if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in (units, unit_axis)):
            return None
        if unit not in UNIT_NOUNS:
            return None
        if quantiles is not None:
            if not isinstance(quantiles, list) or not quantiles or not all(
                isinstance(q, (int, float)) and not isinstance(q, bool) for q in quantiles
            ):
                return None
            quantiles = tuple(float(q) for q in quantiles)
        return ExactContent(param=param, source=source, axis=axis, index=index, units=units, unit_axis=unit_axis,
                            unit=unit, quantiles=quantiles)
    columns = data.get("columns")
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns) or SEQ not in columns:
        return None
    shape, layout = data.get("shape"), data.get("layout")
    if not (isinstance(shape, list) and all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)
            and layout in LAYOUTS):
        shape, layout = None, None
    return ExactContent(param=param, source=source, axis=axis, columns=tuple(columns), index=index,
                        shape=None if shape is None else tuple(shape), layout=layout)


def tag_for(param: str, source: str = EXACT) -> str:
    """The tag of a tensor's records (readable in any tool).

    Checkpoint series get a tag space of their own, so a run that has both
    keeps both.
    """
    return f"stagnation/checkpoint/{param}" if source == CHECKPOINT else f"stagnation/{param}"


def record_value(
    param: str,
    quantities: Mapping[str, float],
    seq: int,
    source: str = EXACT,
    axis: str = STEP,
    describe: bool = True,
    index: int | None = None,
    shape: tuple[str, Sequence[int]] | None = None,
) -> summary_pb2.Summary.Value:
    """One record as every writer stores it: ``quantities`` measured at one step, numbered ``seq``.

    ``describe``: carry the metadata (with ``index``, the tensor's position
    in model order, and ``shape``, ``(layout, shape)`` where known). TensorBoard's loaders and the CLI take a tag's metadata
    from its first value in a run, so writers put it on the first record of
    each tag they write (as TF2's own summary writers do), which keeps a
    record about 100 bytes.
    """
    columns = COLUMNS[source]
    unknown = set(quantities) - set(columns)
    if unknown:
        raise ValueError(f"{source} records have no column for {sorted(unknown)}; columns: {columns}")
    record = np.zeros((2, len(columns)), dtype="<f8")
    for i, column in enumerate(columns):
        value = seq if column == SEQ else quantities.get(column)
        if value is not None:
            record[VALUES, i], record[PRESENT, i] = value, 1.0
    value = summary_pb2.Summary.Value(
        tag=tag_for(param, source),
        tensor=tensor_pb2.TensorProto(
            dtype=types_pb2.DT_DOUBLE,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(
                dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=n) for n in record.shape]
            ),
            tensor_content=record.tobytes(),
        ),
    )
    if describe:
        value.metadata.CopyFrom(create_summary_metadata(param, source, axis, index, shape))
    return value


def read_record(content: ExactContent, values: np.ndarray | Sequence[float]) -> tuple[int, dict[str, float]] | None:
    """``(seq, {quantity: value})`` of one version-2 record, the measured quantities only.

    Columns this version does not know are ignored; ``None`` for an array
    that is not ``(2, len(columns))`` or has no valid sequence number.
    """
    array = np.asarray(values, dtype=np.float64)
    if array.size != 2 * len(content.columns):
        return None
    array = array.reshape(2, len(content.columns))
    present = array[PRESENT] != 0
    measured = {c: float(v) for c, v, p in zip(content.columns, array[VALUES], present) if p}
    seq = measured.pop(SEQ, None)
    if seq is None or not 0 <= seq < 2**53 or seq != int(seq):
        return None
    return int(seq), {q: v for q, v in measured.items() if q in QUANTITIES}


# What one unit of a tensor is, as findings name it: an embedding's row (a token id), a
# convolution's output channel (a tensor of 3 or more axes), or a dense layer's unit.
UNIT, CHANNEL, ROW = "unit", "output channel", "row"
UNIT_NOUNS = (UNIT, CHANNEL, ROW)


# The quantiles of unit movement a unit quantile record holds, in order.
UNIT_QUANTILES = (0.0, 0.1, 0.5, 0.9, 1.0)


def units_tag(param: str, source: str = CHECKPOINT) -> str:
    """The tag of a tensor's per-unit sums (records of ``source``)."""
    return tag_for(param, source) + "/units"


def unit_quantiles_tag(param: str, source: str = CHECKPOINT) -> str:
    """The tag of a tensor's per-pair quantiles of unit movement (records of ``source``)."""
    return tag_for(param, source) + "/unit_quantiles"


def units_value(
    param: str,
    movement: np.ndarray,
    pairs: int,
    axis: str,
    unit_axis: int,
    unit: str,
    index: int | None = None,
    source: str = CHECKPOINT,
) -> summary_pb2.Summary.Value:
    """One sum record: ``movement`` per unit summed over ``pairs`` pairs, with its metadata (always:
    a writer writes few of them and each must be readable alone).

    ``unit_axis``: the tensor's axis the units are slices along; ``unit``: what one is (:data:`UNIT_NOUNS`).
    """
    record = np.concatenate([[pairs], movement]).astype("<f4")
    fields = {"units": int(movement.size)}
    return _unit_value(units_tag(param, source), record, types_pb2.DT_FLOAT, param, source, axis, unit_axis, unit,
                       index, fields, "per-unit movement")


def unit_quantiles_value(
    param: str,
    quantiles: np.ndarray,
    count: int,
    axis: str,
    unit_axis: int,
    unit: str,
    index: int | None = None,
    source: str = CHECKPOINT,
    describe: bool = True,
) -> summary_pb2.Summary.Value:
    """One quantile record: the :data:`UNIT_QUANTILES` of one pair's per-step movement over ``count`` units.

    ``describe``: carry the metadata (the tag's first record in a file or a writer's life).
    """
    record = np.asarray(quantiles, dtype="<f8")
    if record.shape != (len(UNIT_QUANTILES),):
        raise ValueError(f"expected {len(UNIT_QUANTILES)} quantiles, got shape {record.shape}")
    fields = {"unit_count": int(count), "quantiles": list(UNIT_QUANTILES)} if describe else None
    return _unit_value(unit_quantiles_tag(param, source), record, types_pb2.DT_DOUBLE, param, source, axis,
                       unit_axis, unit, index, fields, "quantiles of per-unit movement")


def _unit_value(
    tag: str, record: np.ndarray, dtype: int, param: str, source: str, axis: str, unit_axis: int, unit: str,
    index: int | None, fields: dict | None, what: str,
) -> summary_pb2.Summary.Value:
    """A rank-1 ``record`` under ``tag``, with the unit content ``fields`` add to (none: no metadata)."""
    value = summary_pb2.Summary.Value(
        tag=tag,
        tensor=tensor_pb2.TensorProto(
            dtype=dtype,
            tensor_shape=tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=record.size)]),
            tensor_content=record.tobytes(),
        ),
    )
    if fields is None:
        return value
    if source not in SOURCES or axis not in AXES or unit not in UNIT_NOUNS:
        raise ValueError(f"unknown source {source!r}, axis {axis!r} or unit {unit!r}")
    content = {"version": CONTENT_VERSION, "param": param, "source": source, "axis": axis, "unit_axis": unit_axis,
               "unit": unit, **fields}
    if index is not None:
        content["index"] = index
    value.metadata.CopyFrom(summary_pb2.SummaryMetadata(
        summary_description=f"tb-stagnation {what} of `{param}` ({source})",
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME, content=json.dumps(content, sort_keys=True).encode("utf-8")
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    ))
    return value


def read_units(content: ExactContent, values: np.ndarray | Sequence[float]) -> tuple[int, np.ndarray] | None:
    """``(pairs, movement per unit)`` of one sum record; ``None`` where it does not match its content."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if content.units is None or content.quantiles is not None or array.size != content.units + 1:
        return None
    pairs = array[0]
    if not 0 <= pairs < 2**24 or pairs != int(pairs):
        return None
    movement = array[1:]
    movement.setflags(write=False)
    return int(pairs), movement


def read_unit_quantiles(content: ExactContent, values: np.ndarray | Sequence[float]) -> np.ndarray | None:
    """The :data:`UNIT_QUANTILES` of one quantile record; ``None`` where it does not match its content."""
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if content.quantiles != UNIT_QUANTILES or array.size != len(UNIT_QUANTILES):
        return None
    return array


# LoRA adapters (checkpoint imports, :mod:`tb_stagnation.checkpoints.adapters`): the lora_A and lora_B
# of one adapted module are one series, measured on the module's effective update
# (lora_alpha / r) * B @ A, named after the module as the base model names it (PEFT's prefix dropped)
# plus ADAPTER. The import names it, the verdict names the two tensors it is made of: one rule, here.
ADAPTER = "lora"
PEFT_PREFIX = "base_model.model."


def adapter_param(module: str) -> str:
    """The series name of the LoRA adapter on ``module`` (PEFT's key, ``base_model.model.`` included or not)."""
    return f"{module.removeprefix(PEFT_PREFIX)}.{ADAPTER}"


def adapter_parts(param: str) -> tuple[str, str]:
    """The lora_A and lora_B tensors of the adapter series ``param``, as PEFT's adapter files name them."""
    module = PEFT_PREFIX + param.removesuffix(f".{ADAPTER}")
    return f"{module}.lora_A.weight", f"{module}.lora_B.weight"
