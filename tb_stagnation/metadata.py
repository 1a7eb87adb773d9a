"""What tb-stagnation's own summaries look like on disk.

Shaped like ``tensorboard/plugins/*/metadata.py``: the plugin name and the
``SummaryMetadata`` that marks the exact movement scalars written by
:mod:`tb_stagnation.summary`. The content is a small JSON object naming the
parameter and the quantity, so the plugin finds the data by its metadata,
never by guessing from tag names.
"""

from __future__ import annotations

import dataclasses
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
QUANTITIES = (UPDATE_RATIO, PARAM_RMS, GRAD_NORM)


@dataclasses.dataclass(frozen=True)
class ExactContent:
    """Parsed plugin content of one exact-movement time series."""

    param: str
    quantity: str


def create_summary_metadata(param: str, quantity: str) -> summary_pb2.SummaryMetadata:
    """Metadata for one exact-movement scalar of parameter ``param``."""
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity {quantity!r}; expected one of {QUANTITIES}")
    content = json.dumps(
        {"version": CONTENT_VERSION, "param": param, "quantity": quantity},
        sort_keys=True,
    ).encode("utf-8")
    return summary_pb2.SummaryMetadata(
        summary_description=f"tb-stagnation {quantity} of `{param}`",
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
    if not isinstance(param, str) or quantity not in QUANTITIES:
        return None
    return ExactContent(param=param, quantity=quantity)


def tag_for(param: str, quantity: str) -> str:
    """The tag an exact-movement scalar is written under (readable in any tool)."""
    return f"stagnation/{param}/{quantity}"
