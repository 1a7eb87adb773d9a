"""The TensorFlow writers: :class:`TF2UpdateRatioTracker` and ``KerasUpdateRatioCallback``.

* ``KerasUpdateRatioCallback`` for ``model.fit`` (Keras 3; writes with
  ``tf.summary``, like Keras' own ``TensorBoard`` callback, so TensorFlow must
  be installed);
* :class:`TF2UpdateRatioTracker` for custom TF2 loops (writes with the default
  ``tf.summary`` writer).

Both are thin wrappers around :class:`tb_stagnation.writers.core.UpdateRatioCore`.
Importing this module imports neither TensorFlow nor Keras: the tracker
imports TensorFlow on first use, and ``KerasUpdateRatioCallback`` is built on
first attribute access (PEP 562), because it must subclass
``keras.callbacks.Callback``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from tb_stagnation.writers import units
from tb_stagnation.writers.core import ExactRecord, ParamState, UnitSums, UpdateRatioCore, summary_proto, unique_names

__all__ = ["KerasUpdateRatioCallback", "TF2UpdateRatioTracker"]


def _param_name(variable: Any) -> str:
    """Keras 3 ``variable.path`` when present (matches Keras' histogram tags), else the TF name."""
    return getattr(variable, "path", None) or variable.name.removesuffix(":0")


class TF2UpdateRatioTracker:
    """Exact movement of TF2 / Keras 3 variables in a custom training loop.

    Call :meth:`maybe_log` eagerly (outside ``tf.function``) after each
    optimizer step, inside the caller's ``with writer.as_default():``.
    Non-floating variables (counters, seeds) are ignored. Each unit's
    movement is measured too (a kernel's last axis, an embedding's rows, a
    bias or norm vector's elements); call :meth:`close` when training ends,
    inside the writer's context, to write the units' final sums.
    """

    def __init__(self, variables: Iterable[Any], every: int = 100) -> None:
        import tensorflow as tf

        self._variables = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
        self._names = unique_names([_param_name(v) for v in self._variables])
        self._core = UpdateRatioCore(every, layout=units.TF_LAYOUT)

    def maybe_log(self, step: int, gradients: Sequence[Any] | None = None) -> bool:
        """Snapshot and write if ``step`` is due; returns whether it was.

        ``gradients``, if given, is aligned with ``variables`` (``None``
        entries allowed, as from ``tape.gradient``); it is only read on
        snapshot steps. Without a default writer nothing is written, but the
        snapshot is still taken so the next ratio stays correct.
        """
        import tensorflow as tf

        if not tf.executing_eagerly():
            raise RuntimeError("TF2UpdateRatioTracker.maybe_log must run eagerly, outside tf.function")
        step = int(step)
        if not self._core.due(step):
            return False
        grads = [None] * len(self._variables) if gradients is None else list(gradients)
        if len(grads) != len(self._variables):
            raise ValueError(f"got {len(grads)} gradients for {len(self._variables)} variables")
        _write(step, self._core.snapshot(step, self._states(grads)))
        return True

    def close(self) -> None:
        """Write the units' sums not written yet, at the last snapshot's step, through the default writer.

        Without it the newest sums are those of the last power-of-two pair count.
        """
        sums = self._core.finish()
        if sums:
            _write(self._core.last_step, [], sums)

    def _states(self, gradients: Sequence[Any]) -> Iterator[ParamState]:
        import tensorflow as tf

        for name, variable, grad in zip(self._names, self._variables, gradients):
            dense = None if grad is None else np.asarray(tf.convert_to_tensor(grad))
            yield name, variable.numpy(), dense


def _write(step: int, exact: Sequence[ExactRecord], sums: Sequence[UnitSums] = ()) -> None:
    """Write through the default ``tf.summary`` writer (a no-op without one).

    One raw ``Summary`` per snapshot: a single op call, where one
    ``tf.summary.write`` per value costs milliseconds each in eager mode.
    """
    import tensorflow as tf

    if exact or sums:
        tf.summary.experimental.write_raw_pb(summary_proto(exact, sums).SerializeToString(), step=step)


@functools.cache
def _keras_callback_class() -> type:
    """Build ``KerasUpdateRatioCallback`` (needs Keras, hence only on first use)."""
    import keras
    import tensorflow as tf

    class KerasUpdateRatioCallback(keras.callbacks.Callback):
        """Exact movement of every floating model weight during ``model.fit``.

        Writes to ``os.path.join(log_dir, run)``: with the default ``run`` the
        series land in the same run as ``keras.callbacks.TensorBoard(log_dir)``
        (its ``train`` directory). Steps are ``model.optimizer.iterations``;
        the first snapshot is taken when training begins, then one each time
        the step crosses a multiple of ``every``. Frozen (non-trainable)
        weights are logged too, so they show as exactly 0. Per-unit
        movement too (a kernel's last axis), its final sums when training ends.
        """

        def __init__(self, log_dir: str, every: int = 100, run: str = "train") -> None:
            super().__init__()
            self.log_dir = os.path.join(log_dir, run)
            self.every = every
            self._tracker: TF2UpdateRatioTracker | None = None
            self._writer: Any = None

        def on_train_begin(self, logs: dict | None = None) -> None:
            if self._tracker is None:
                self._tracker = TF2UpdateRatioTracker(self.model.weights, self.every)
            self._writer = tf.summary.create_file_writer(self.log_dir)
            self._log()

        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            self._log()

        def on_train_end(self, logs: dict | None = None) -> None:
            with self._writer.as_default():
                self._tracker.close()
            self._writer.close()

        def _log(self) -> None:
            step = int(self.model.optimizer.iterations.numpy())
            with self._writer.as_default():
                self._tracker.maybe_log(step)

    KerasUpdateRatioCallback.__qualname__ = KerasUpdateRatioCallback.__name__
    KerasUpdateRatioCallback.__module__ = __name__
    return KerasUpdateRatioCallback


def __getattr__(name: str) -> Any:
    """Build the Keras callback class lazily (PEP 562)."""
    if name == "KerasUpdateRatioCallback":
        return _keras_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
