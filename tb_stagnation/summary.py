"""Opt-in writers for exact per-parameter movement.

Histogram drift is only a lower bound on how far a layer moved: a permutation
of its weights, or updates of random sign, leave the distribution (almost)
unchanged. These writers log the exact quantity instead, every ``every``
optimizer steps, for each parameter tensor ``W``:

* ``update_ratio``: ``||W_t - W_{t-k}|| / ||W_{t-k}|| / k``, where ``k`` is the
  number of steps since the previous snapshot (so it is a per-step rate,
  comparable across different ``every``). When ``||W_{t-k}|| == 0`` (a
  zero-initialised bias, say) the denominator is ``max(||W_{t-k}||, ||W_t||)``
  instead, and the ratio is 0 when both norms are 0: a parameter that stayed at
  zero did not move.
* ``rms``: ``sqrt(mean(W_t ** 2))``, the scale the ratio is relative to.
* ``grad_norm``: ``||dL/dW||`` at the snapshot step, only where the caller
  passes gradients.

The first snapshot only stores the values; the first point of every series
comes at the second snapshot, so all quantities of a parameter share their
steps. Norms are computed in float64 from the parameter's own dtype. Cost: one
host copy of the logged parameters (made one tensor at a time, every ``every``
steps); between snapshots nothing touches the weights. How a snapshot is
copied and measured is an :class:`ArrayOps`: numpy on the host by default;
:mod:`tb_stagnation.integrations` keeps PyTorch snapshots on the parameters'
own device with :class:`TorchArrayOps`.

Front doors, all thin wrappers around :class:`UpdateRatioCore`:

* :class:`KerasUpdateRatioCallback` for ``model.fit`` (Keras 3; writes with
  ``tf.summary``, like Keras' own ``TensorBoard`` callback, so TensorFlow must
  be installed);
* :class:`TF2UpdateRatioTracker` for custom TF2 loops (writes with the default
  ``tf.summary`` writer);
* :class:`TorchUpdateRatioTracker` for PyTorch (writes through a
  ``torch.utils.tensorboard`` or ``tensorboardX`` ``SummaryWriter``).

Storage: one record per parameter and snapshot holding all its quantities
and its sequence number, under the tag :func:`tb_stagnation.records.tag_for`
(:func:`tb_stagnation.records.record_value`: plugin ``stagnation``, data class
TENSOR, metadata on each tag's first record). A summary carries exactly one
plugin name and TensorBoard's Scalars tab only reads summaries of the
``scalars`` plugin, so these values do not show in the Scalars tab; the
Stagnation tab finds them by their plugin name and plots them next to the
histogram drift.

Importing this module imports neither TensorFlow, Keras nor PyTorch: each
front door imports its framework on first use. ``KerasUpdateRatioCallback`` is
built on first attribute access (PEP 562), because it must subclass
``keras.callbacks.Callback``.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, NamedTuple, Protocol

import numpy as np
from tensorboard.compat.proto import summary_pb2

from tb_stagnation import records

__all__ = [
    "ArrayOps",
    "ExactRecord",
    "KerasUpdateRatioCallback",
    "NUMPY_OPS",
    "TF2UpdateRatioTracker",
    "TorchArrayOps",
    "TorchUpdateRatioTracker",
    "UpdateRatioCore",
]


class ExactRecord(NamedTuple):
    """What one snapshot measured of parameter ``param``: ``{quantity: value}``.

    ``seq`` numbers the records of ``param`` this writer wrote, 0 first, so a
    reader can tell how many a loader dropped; ``index`` is the parameter's
    position among those the writer was given (model order).
    """

    param: str
    seq: int
    values: dict[str, float]
    index: int = 0


# (name, current value, gradient or None) of one parameter at a snapshot. The gradient may
# also be its norm, a float, for front doors whose framework clears gradients before the
# snapshot step ends (they measure it just before the optimizer step).
ParamState = tuple[str, Any, Any]


class ArrayOps(Protocol):
    """How :class:`UpdateRatioCore` copies and measures one kind of array.

    Norms are float64 whatever the array's dtype, so float32 rounding does
    not blur small updates.
    """

    def copy(self, value: Any) -> Any:
        """A copy of ``value`` that later in-place updates of ``value`` leave alone."""

    def norm(self, values: Any) -> float:
        """``||values||``, computed in float64."""

    def distance(self, current: Any, before: Any) -> float:
        """``||current - before||``, the difference taken in float64."""

    def size(self, values: Any) -> int:
        """Number of elements."""


def _norm(values: Any) -> float:
    """L2 norm in float64, so float32 rounding does not blur small updates.

    A plain ufunc reduction rather than ``np.linalg.norm``: BLAS threads
    contend with the framework's own thread pool, which made each norm up to
    100x slower inside a TensorFlow process (measured on 2 busy CPU cores).
    """
    return float(np.sqrt(np.sum(np.square(values, dtype=np.float64))))


class _NumpyOps:
    """Host snapshots as numpy arrays (any array-like is copied into one)."""

    def copy(self, value: Any) -> np.ndarray:
        return np.array(value, copy=True)

    def norm(self, values: Any) -> float:
        return _norm(values)

    def distance(self, current: Any, before: Any) -> float:
        return _norm(np.subtract(current, before, dtype=np.float64))

    def size(self, values: Any) -> int:
        return int(np.size(values))


NUMPY_OPS: ArrayOps = _NumpyOps()


def update_ratio(before: Any, current: Any, steps: int, ops: ArrayOps = NUMPY_OPS) -> float:
    """``||current - before|| / ||before|| / steps`` (see the module docstring for 0 norms)."""
    base = ops.norm(before) or ops.norm(current)
    if base == 0.0:
        return 0.0
    return ops.distance(current, before) / base / steps


def rms(values: Any, ops: ArrayOps = NUMPY_OPS) -> float:
    """Root mean square of ``values``; 0 for an empty tensor."""
    size = ops.size(values)
    return ops.norm(values) / np.sqrt(size) if size else 0.0


class UpdateRatioCore:
    """Framework-free snapshot bookkeeping shared by the front doors.

    Holds one copy of each parameter from the last snapshot and turns the next
    snapshot into :class:`ExactRecord` values. It never reads parameters
    itself: a front door asks :meth:`due` (integers only, so non-snapshot
    steps cost nothing) and only then hands the values to :meth:`snapshot`.
    ``ops`` says how the snapshot is copied and measured (host numpy arrays
    by default).
    """

    def __init__(self, every: int, ops: ArrayOps = NUMPY_OPS) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self._ops = ops
        self._step: int | None = None
        self._values: dict[str, Any] = {}
        self._written: dict[str, int] = {}  # records written per parameter
        self._index: dict[str, int] = {}  # parameter -> position, in the order first given

    def due(self, step: int) -> bool:
        """Whether ``step`` takes a snapshot.

        True on the first call, when ``step`` crosses a multiple of ``every``
        (robust to loops that skip steps, e.g. Keras ``steps_per_execution``),
        and when the step went backwards (a restarted optimizer: start afresh).
        """
        last = self._step
        return last is None or step < last or step // self.every > last // self.every

    def snapshot(self, step: int, params: Iterable[ParamState]) -> list[ExactRecord]:
        """Store the current values and return what moved since the last snapshot.

        ``params`` is consumed lazily, one parameter at a time, so a front
        door that copies from a device holds at most one extra tensor beyond
        the stored snapshot. A parameter new since the last snapshot, or whose
        shape changed, is only stored.
        """
        last, self._step = self._step, step
        steps = None if last is None or step <= last else step - last
        previous, self._values = self._values, {}
        records: list[ExactRecord] = []
        ops = self._ops
        for name, value, gradient in params:
            current = ops.copy(value)
            before = previous.pop(name, None)
            self._values[name] = current
            index = self._index.setdefault(name, len(self._index))
            if steps is None or before is None or before.shape != current.shape:
                continue
            values = {
                records.UPDATE_RATIO: update_ratio(before, current, steps, ops),
                records.PARAM_RMS: rms(current, ops),
            }
            if gradient is not None:
                values[records.GRAD_NORM] = gradient if isinstance(gradient, float) else ops.norm(gradient)
            seq = self._written.get(name, 0)
            self._written[name] = seq + 1
            records.append(ExactRecord(name, seq, values, index))
        return records


def _unique_names(names: Sequence[str]) -> list[str]:
    """``names`` unchanged; raises on duplicates, which would share one series."""
    duplicates = sorted(n for n, count in Counter(names).items() if count > 1)
    if duplicates:
        raise ValueError(f"parameter names must be unique; duplicated: {duplicates}")
    return list(names)


def _summary_proto(records: Iterable[ExactRecord]) -> summary_pb2.Summary:
    """A ``Summary`` holding ``records`` in the one storage format of every writer.

    TF2 writes it with ``write_raw_pb``, PyTorch through the ``SummaryWriter``'s
    file writer; :func:`tb_stagnation.records.record_value` builds each value,
    as it does for imported checkpoints, with the metadata on a parameter's
    first record only.
    """
    return summary_pb2.Summary(
        value=[records.record_value(r.param, r.values, r.seq, describe=r.seq == 0, index=r.index) for r in records]
    )


# --------------------------------------------------------------------------- TF2


def _tf_param_name(variable: Any) -> str:
    """Keras 3 ``variable.path`` when present (matches Keras' histogram tags), else the TF name."""
    return getattr(variable, "path", None) or variable.name.removesuffix(":0")


class TF2UpdateRatioTracker:
    """Exact movement of TF2 / Keras 3 variables in a custom training loop.

    Call :meth:`maybe_log` eagerly (outside ``tf.function``) after each
    optimizer step, inside the caller's ``with writer.as_default():``.
    Non-floating variables (counters, seeds) are ignored.
    """

    def __init__(self, variables: Iterable[Any], every: int = 100) -> None:
        import tensorflow as tf

        self._variables = [v for v in variables if tf.as_dtype(v.dtype).is_floating]
        self._names = _unique_names([_tf_param_name(v) for v in self._variables])
        self._core = UpdateRatioCore(every)

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
        _write_tf(step, self._core.snapshot(step, self._states(grads)))
        return True

    def _states(self, gradients: Sequence[Any]) -> Iterator[ParamState]:
        import tensorflow as tf

        for name, variable, grad in zip(self._names, self._variables, gradients):
            dense = None if grad is None else np.asarray(tf.convert_to_tensor(grad))
            yield name, variable.numpy(), dense


def _write_tf(step: int, records: Sequence[ExactRecord]) -> None:
    """Write through the default ``tf.summary`` writer (a no-op without one).

    One raw ``Summary`` per snapshot: a single op call, where one
    ``tf.summary.write`` per value costs milliseconds each in eager mode.
    """
    import tensorflow as tf

    if records:
        tf.summary.experimental.write_raw_pb(_summary_proto(records).SerializeToString(), step=step)


# ------------------------------------------------------------------------- Keras


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
        weights are logged too, so they show as exactly 0.
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


# ----------------------------------------------------------------------- PyTorch


class TorchUpdateRatioTracker:
    """Exact movement of PyTorch parameters.

    Call :meth:`step` after ``optimizer.step()`` (and before the next
    ``zero_grad`` when logging gradients). ``writer`` is a
    ``torch.utils.tensorboard.SummaryWriter`` or a ``tensorboardX`` one; the
    values go into its default event file, next to its histograms.
    Parameters frozen with ``requires_grad_(False)`` are logged too (ratio 0).
    """

    def __init__(self, named_parameters: Iterable[tuple[str, Any]], writer: Any, every: int = 100) -> None:
        pairs = [(n, p) for n, p in named_parameters if p.is_floating_point()]
        self._names = _unique_names([n for n, _ in pairs])
        self._params = [p for _, p in pairs]
        self._writer = writer
        self._core = UpdateRatioCore(every)

    def step(self, global_step: int, log_gradients: bool = False) -> bool:
        """Snapshot and write if ``global_step`` is due; returns whether it was."""
        global_step = int(global_step)
        if not self._core.due(global_step):
            return False
        _write_torch(self._writer, global_step, self._core.snapshot(global_step, self._states(log_gradients)))
        return True

    def _states(self, log_gradients: bool) -> Iterator[ParamState]:
        for name, param in zip(self._names, self._params):
            grad = param.grad if log_gradients else None
            yield name, _torch_numpy(param), None if grad is None else _torch_numpy(grad)


def _write_torch(writer: Any, step: int, records: Sequence[ExactRecord]) -> None:
    """Write ``records`` through a ``torch.utils.tensorboard`` or ``tensorboardX`` ``SummaryWriter``."""
    if records:
        file_writer = writer._get_file_writer()  # both writers' only way to add a raw Summary
        file_writer.add_summary(_for_writer(writer, _summary_proto(records)), step)


class TorchArrayOps:
    """PyTorch snapshots kept as tensors, on one device or each on its parameter's own.

    ``device=None`` clones each tensor where it lives (on a GPU the snapshot
    never crosses to the host); ``"cpu"`` copies it to host memory. Norms are
    reduced in float64 on the tensor's device, in chunks of
    :attr:`NORM_CHUNK` elements, so measuring a large embedding needs a
    bounded float64 buffer, not a float64 copy of the whole tensor. Apple's
    MPS has no float64: its chunks are reduced on the host.
    """

    NORM_CHUNK = 1 << 22  # elements: a 32 MB float64 buffer at most

    def __init__(self, device: Any = None) -> None:
        import torch

        self.device = None if device is None else torch.device(device)

    def copy(self, value: Any) -> Any:
        import torch

        tensor = value.detach()
        device = tensor.device if self.device is None else self.device
        return tensor.to(device, copy=True, memory_format=torch.contiguous_format)

    def norm(self, values: Any) -> float:
        return self._sum_of_squares(values, None) ** 0.5

    def distance(self, current: Any, before: Any) -> float:
        return self._sum_of_squares(current, before) ** 0.5

    def size(self, values: Any) -> int:
        return values.numel()

    def _sum_of_squares(self, values: Any, minus: Any) -> float:
        """``sum((values - minus) ** 2)`` in float64 (``minus`` on the same device, or ``None``)."""
        import torch

        flat = values.detach().reshape(-1)
        other = None if minus is None else minus.detach().reshape(-1)
        device = torch.device("cpu") if flat.device.type == "mps" else flat.device
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, flat.numel(), self.NORM_CHUNK):
            chunk = flat[start : start + self.NORM_CHUNK].to(device, torch.float64)  # may be a view
            if other is not None:
                chunk = chunk - other[start : start + self.NORM_CHUNK].to(device)
            total += torch.dot(chunk, chunk)
        return float(total)  # the one device sync per norm


def _torch_numpy(tensor: Any) -> np.ndarray:
    """Host numpy view of ``tensor`` (bfloat16 has no numpy dtype: widened to float32)."""
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.cpu().numpy()


def _for_writer(writer: Any, summary: summary_pb2.Summary) -> Any:
    """``summary`` as the proto class ``writer`` expects.

    tensorboardX ships its own generated protos (without ``data_class``, which
    survives as an unknown field), so the message is re-parsed into its class.
    """
    if type(writer).__module__.split(".")[0] != "tensorboardX":
        return summary
    from tensorboardX.proto import summary_pb2 as tbx_summary_pb2

    return tbx_summary_pb2.Summary.FromString(summary.SerializeToString())
