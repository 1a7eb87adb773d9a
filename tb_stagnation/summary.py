"""Opt-in writers for exact per-parameter movement, where the README imports them from.

* :class:`KerasUpdateRatioCallback` for ``model.fit`` (Keras 3, TensorFlow);
* :class:`TF2UpdateRatioTracker` for custom TF2 loops;
* :class:`TorchUpdateRatioTracker` for PyTorch, and :class:`TorchArrayOps`
  to keep its snapshots on the parameters' device.

What they log and how is :mod:`tb_stagnation.writers` (the quantities are
defined in :mod:`tb_stagnation.writers.core`). Importing this module imports
neither TensorFlow, Keras nor PyTorch: the writer modules import their
framework on first use, and ``KerasUpdateRatioCallback``, which must subclass
``keras.callbacks.Callback``, is looked up only when asked for (PEP 562).
"""

from __future__ import annotations

from typing import Any

from tb_stagnation.writers.core import NUMPY_OPS, ArrayOps, ExactRecord, UpdateRatioCore
from tb_stagnation.writers.tensorflow import TF2UpdateRatioTracker
from tb_stagnation.writers.torch import TorchArrayOps, TorchUpdateRatioTracker

__all__ = [
    "NUMPY_OPS",
    "ArrayOps",
    "ExactRecord",
    "KerasUpdateRatioCallback",
    "TF2UpdateRatioTracker",
    "TorchArrayOps",
    "TorchUpdateRatioTracker",
    "UpdateRatioCore",
]


def __getattr__(name: str) -> Any:
    """``KerasUpdateRatioCallback``, built (importing Keras) on first access."""
    if name == "KerasUpdateRatioCallback":
        from tb_stagnation.writers import tensorflow

        return tensorflow.KerasUpdateRatioCallback
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
