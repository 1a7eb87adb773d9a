"""What both callbacks share: :class:`ParameterMovement`, the exact movement of one model in one run.

The snapshot (one copy of the logged parameters, on their own device by
default), gradient norms taken before the framework clears the gradients,
and the refusal to read sharded parameters (:func:`loggable_parameters`).
It measures with :mod:`tb_stagnation.writers.core` and writes with
:mod:`tb_stagnation.writers.torch`, so the series are those
:class:`tb_stagnation.summary.TorchUpdateRatioTracker` logs. PyTorch is
imported on first use.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Iterable
from typing import Any

from tb_stagnation.writers import units
from tb_stagnation.writers.core import UpdateRatioCore
from tb_stagnation.writers.torch import TorchArrayOps, host_numpy, write_records

__all__ = ["ParameterMovement", "loggable_parameters"]


def loggable_parameters(named_parameters: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The floating parameters whose full value this process holds; warns about the rest.

    FSDP (flattened parameters, or DTensor shards with ``fully_shard``) and
    DeepSpeed ZeRO-3 (partitioned parameters, empty outside their forward
    pass) keep only a slice of each tensor per process, so a ratio computed
    from it would describe a slice, or nothing. They are skipped with one
    warning naming them, never read.
    """
    kept, sharded = [], []
    for name, param in named_parameters:
        if not param.is_floating_point():
            continue
        (sharded if _sharded(param) else kept).append((name, param))
    if sharded:
        names = ", ".join(name for name, _ in sharded[:5]) + (", ..." if len(sharded) > 5 else "")
        warnings.warn(
            f"tb-stagnation: {len(sharded)} of {len(sharded) + len(kept)} parameters are sharded "
            f"(FSDP, DeepSpeed ZeRO-3, DTensor) or hold no values on this process and are not "
            f"logged: {names}",
            UserWarning,
            stacklevel=3,
        )
    return kept


def _sharded(param: Any) -> bool:
    """Whether ``param`` is (part of) a tensor sharded across processes."""
    if param.numel() == 0 or hasattr(param, "ds_id") or getattr(param, "_fsdp_flattened", False):
        return True
    # A DTensor exists only once its module was imported: no import (and no torch.distributed) needed.
    dtensor = getattr(sys.modules.get("torch.distributed.tensor"), "DTensor", None)
    return dtensor is not None and isinstance(param, dtensor)


class ParameterMovement:
    """The exact movement of one model during one training run.

    Holds the snapshot (:class:`~tb_stagnation.writers.core.UpdateRatioCore` with
    :class:`~tb_stagnation.writers.torch.TorchArrayOps`): one copy of every logged
    parameter, on ``snapshot_device`` (``None``: each on its own device).
    Between snapshots it only compares integers. Each unit's movement is
    measured too (dim 0, :mod:`tb_stagnation.writers.units`), on the parameters'
    device. A callback creates one when training starts, calls :meth:`finish`
    when training ends and drops it, which frees the copy.
    """

    def __init__(
        self,
        named_parameters: Iterable[tuple[str, Any]],
        every: int,
        snapshot_device: Any = None,
        log_histograms: bool = False,
    ) -> None:
        self._params = loggable_parameters(named_parameters)
        self._ops = TorchArrayOps(snapshot_device)
        self._core = UpdateRatioCore(every, self._ops, units.TORCH_LAYOUT)
        self._log_histograms = log_histograms
        self._grad_norms: dict[str, float] = {}

    def record_gradients(self, next_step: int) -> None:
        """Measure the gradient norms now if the step about to complete, ``next_step``, is due.

        Call it between backward and the optimizer's ``zero_grad``: both
        frameworks clear the gradients before their end-of-step hook.
        """
        if self._core.due(next_step):
            self._grad_norms = {
                name: self._ops.norm(_dense(param.grad))
                for name, param in self._params
                if param.grad is not None
            }

    def log(self, step: int, writer: Any) -> bool:
        """Snapshot and write through ``writer`` (a ``SummaryWriter``) if ``step`` is due; say whether it was."""
        if not self._core.due(step):
            return False
        grad_norms, self._grad_norms = self._grad_norms, {}
        states = ((name, param, grad_norms.get(name)) for name, param in self._params)
        write_records(writer, step, self._core.snapshot(step, states))
        if self._log_histograms:
            for name, param in self._params:
                writer.add_histogram(name, host_numpy(param), step)
        writer.flush()  # a few writes every `every` steps: let a live TensorBoard see them
        return True

    def finish(self, writer: Any) -> None:
        """Write the units' sums not written yet (when training ends), at the last snapshot's step."""
        sums = self._core.finish()
        if sums:
            write_records(writer, self._core.last_step, [], sums)
            writer.flush()


def _dense(gradient: Any) -> Any:
    """The stored values of a sparse gradient (``nn.Embedding(sparse=True)``) have its norm."""
    return gradient.coalesce().values() if gradient.is_sparse else gradient
