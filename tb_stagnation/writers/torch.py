"""The PyTorch writer: :class:`TorchUpdateRatioTracker`, and what the integrations build on.

:class:`TorchUpdateRatioTracker` writes through a ``torch.utils.tensorboard``
or ``tensorboardX`` ``SummaryWriter`` (:func:`write_records`), from host
copies of the parameters (:func:`host_numpy`). :class:`TorchArrayOps` keeps
snapshots as tensors on the parameters' own device instead: the Lightning
and Hugging Face callbacks (:mod:`tb_stagnation.integrations.movement`) use
it with the same two functions.

Importing this module does not import PyTorch: each function and class
imports it on first use.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from tensorboard.compat.proto import summary_pb2

from tb_stagnation.writers import units
from tb_stagnation.writers.core import ExactRecord, ParamState, UnitSums, UpdateRatioCore, summary_proto, unique_names

__all__ = ["TorchArrayOps", "TorchUpdateRatioTracker", "host_numpy", "write_records"]


class TorchUpdateRatioTracker:
    """Exact movement of PyTorch parameters.

    Call :meth:`step` after ``optimizer.step()`` (and before the next
    ``zero_grad`` when logging gradients). ``writer`` is a
    ``torch.utils.tensorboard.SummaryWriter`` or a ``tensorboardX`` one; the
    values go into its default event file, next to its histograms.
    Parameters frozen with ``requires_grad_(False)`` are logged too (ratio 0).
    Each unit's movement is measured too (dim 0: a ``Linear``/``Conv*``
    weight's output units with their bias elements, an embedding's rows);
    call :meth:`close` when training ends to write the units' final sums.
    """

    def __init__(self, named_parameters: Iterable[tuple[str, Any]], writer: Any, every: int = 100) -> None:
        pairs = [(n, p) for n, p in named_parameters if p.is_floating_point()]
        self._names = unique_names([n for n, _ in pairs])
        self._params = [p for _, p in pairs]
        self._writer = writer
        self._core = UpdateRatioCore(every, layout=units.TORCH_LAYOUT)

    def step(self, global_step: int, log_gradients: bool = False) -> bool:
        """Snapshot and write if ``global_step`` is due; returns whether it was."""
        global_step = int(global_step)
        if not self._core.due(global_step):
            return False
        write_records(self._writer, global_step, self._core.snapshot(global_step, self._states(log_gradients)))
        return True

    def close(self) -> None:
        """Write the units' sums not written yet, at the last snapshot's step (the writer stays open).

        Without it the newest sums are those of the last power-of-two pair count.
        """
        sums = self._core.finish()
        if sums:
            write_records(self._writer, self._core.last_step, [], sums)
            self._writer.flush()

    def _states(self, log_gradients: bool) -> Iterator[ParamState]:
        for name, param in zip(self._names, self._params):
            grad = param.grad if log_gradients else None
            yield name, host_numpy(param), None if grad is None else host_numpy(grad)


def write_records(writer: Any, step: int, exact: Sequence[ExactRecord], sums: Sequence[UnitSums] = ()) -> None:
    """Write ``exact`` and unit ``sums`` at ``step`` through a ``torch.utils.tensorboard`` or ``tensorboardX``
    ``SummaryWriter``."""
    if exact or sums:
        file_writer = writer._get_file_writer()  # both writers' only way to add a raw Summary
        file_writer.add_summary(_for_writer(writer, summary_proto(exact, sums)), step)


def host_numpy(tensor: Any) -> np.ndarray:
    """Host numpy view of ``tensor`` (bfloat16 has no numpy dtype: widened to float32)."""
    import torch

    tensor = tensor.detach()
    if tensor.dtype == torch.bfloat16:
        tensor = tensor.float()
    return tensor.cpu().numpy()


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

    def unit_change_sq(self, current: Any, before: Any, axis: int) -> np.ndarray:
        """Per-unit squares summed in float64 on the tensor's device, blocks of whole rows of about
        :attr:`NORM_CHUNK` values (the loop runs over blocks, never units); one transfer of the result."""
        import torch

        count = current.shape[axis]
        c2 = current.detach().reshape(count, -1) if axis == 0 else current.detach().reshape(-1, count)
        b2 = before.detach().reshape(c2.shape)
        device = torch.device("cpu") if c2.device.type == "mps" else c2.device
        out = torch.zeros(count, dtype=torch.float64, device=device)
        rows = max(1, self.NORM_CHUNK // max(1, c2.shape[1]))
        for start in range(0, c2.shape[0], rows):
            block = slice(start, start + rows)
            d = c2[block].to(device, torch.float64) - b2[block].to(device)
            d.square_()
            if axis == 0:
                out[block] = d.sum(dim=1)
            else:
                out += d.sum(dim=0)
        return out.cpu().numpy()

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


def _for_writer(writer: Any, summary: summary_pb2.Summary) -> Any:
    """``summary`` as the proto class ``writer`` expects.

    tensorboardX ships its own generated protos (without ``data_class``, which
    survives as an unknown field), so the message is re-parsed into its class.
    """
    if type(writer).__module__.split(".")[0] != "tensorboardX":
        return summary
    from tensorboardX.proto import summary_pb2 as tbx_summary_pb2

    return tbx_summary_pb2.Summary.FromString(summary.SerializeToString())
