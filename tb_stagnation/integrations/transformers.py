"""Exact movement in the Hugging Face ``Trainer``: ``Trainer(..., callbacks=[UpdateRatioCallback(every=100)])``.

Writes into the directory the Trainer's own TensorBoard logging uses, through
its ``TensorBoardCallback``'s ``SummaryWriter`` when there is one
(``report_to="tensorboard"``), so the series land in the same event file as
the Trainer's loss and learning-rate scalars, on the ``state.global_step``
axis (optimizer steps). Without one (transformers 5 reports to nothing by
default) it opens its own writer where that callback would have written.
Needs ``transformers`` and ``accelerate`` (``pip install
'tb-stagnation[transformers]'``).
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any

try:
    from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments
    from transformers.integrations import TensorBoardCallback
    from transformers.integrations.integration_utils import default_logdir
    from transformers.trainer_callback import CallbackHandler
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tb_stagnation.integrations.transformers needs transformers: pip install 'tb-stagnation[transformers]'"
    ) from error

from tb_stagnation.integrations.movement import ParameterMovement

__all__ = ["UpdateRatioCallback"]


class UpdateRatioCallback(TrainerCallback):
    """Log each parameter's exact update ratio, RMS, gradient norm and histogram every ``every`` steps.

    The first snapshot is taken when training begins (at ``state.global_step``,
    0 unless resumed), then one each time it crosses a multiple of ``every``;
    ratios start at the second snapshot. Gradient norms are measured in
    ``on_optimizer_step``, the last hook before the Trainer clears the
    gradients: after its gradient clipping (``max_grad_norm``, default 1.0).
    Histograms are on by default (``log_histograms``), since the Trainer logs
    none; they use the parameter names, as the ratios do.

    Where it writes: into ``log_dir`` if given; else through the
    ``TensorBoardCallback``'s writer (put this callback after one you pass
    yourself: callbacks run in order, and that one opens its writer when
    training begins); else into ``$TENSORBOARD_LOGGING_DIR``, or
    ``output_dir/runs/<time>_<host>`` as that callback would.

    ``snapshot_device``: where the one copy of the parameters lives between
    snapshots; ``None`` keeps each on its own device, ``"cpu"`` moves it to
    host memory. Under DDP only the world process zero does anything.
    Parameters sharded by FSDP or DeepSpeed ZeRO-3 are skipped with a warning.
    """

    def __init__(
        self,
        every: int = 100,
        log_histograms: bool = True,
        snapshot_device: Any = None,
        log_dir: str | os.PathLike | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.log_histograms = log_histograms
        self.snapshot_device = snapshot_device
        self.log_dir = log_dir
        self._movement: ParameterMovement | None = None
        self._writer: Any = None
        self._owns_writer = False

    def on_train_begin(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        model: Any = None,
        **kwargs: Any,
    ) -> None:
        if not state.is_world_process_zero:
            return
        self._writer, self._owns_writer = self._open_writer(args)
        self._movement = ParameterMovement(
            model.named_parameters(), self.every, self.snapshot_device, self.log_histograms
        )
        self._movement.log(state.global_step, self._writer)

    def on_optimizer_step(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        if self._movement is not None:
            self._movement.record_gradients(state.global_step + 1)

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Snapshot when due; on the last step also write the units' final sums, while the
        ``TensorBoardCallback``'s writer is open (it closes it in ``on_train_end``, before this one's)."""
        if self._movement is not None:
            self._movement.log(state.global_step, self._writer)
            if control.should_training_stop:
                self._movement.finish(self._writer)

    def on_train_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **kwargs: Any
    ) -> None:
        """Free the snapshot; close the writer if it is ours (the ``TensorBoardCallback`` closes its own)."""
        if self._owns_writer:
            self._writer.close()
        self._movement, self._writer, self._owns_writer = None, None, False

    def _open_writer(self, args: TrainingArguments) -> tuple[Any, bool]:
        """(writer, whether it is ours to close); see the class docstring for the order."""
        if self.log_dir is None:
            handler = _calling_handler()
            board = None if handler is None else next(
                (cb for cb in handler.callbacks if isinstance(cb, TensorBoardCallback)), None
            )
            if board is not None and board.tb_writer is not None:
                return board.tb_writer, False
            log_dir = os.getenv("TENSORBOARD_LOGGING_DIR") or os.path.join(args.output_dir, default_logdir())
            if handler is None:
                warnings.warn(
                    f"tb-stagnation: could not find the Trainer's callbacks; writing to {log_dir}", stacklevel=3
                )
            elif board is not None:
                warnings.warn(
                    "tb-stagnation: UpdateRatioCallback comes before the TensorBoardCallback, which opens its "
                    f"writer later; put it after that one to share its event file. Writing to {log_dir}",
                    stacklevel=3,
                )
        else:
            log_dir = os.fspath(self.log_dir)
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(log_dir=log_dir), True


def _calling_handler() -> CallbackHandler | None:
    """The ``CallbackHandler`` running the current event, found on the call stack.

    A ``TrainerCallback`` is given neither the Trainer nor its other
    callbacks, and the ``TensorBoardCallback``'s writer lives in one of them;
    the handler calls each callback's hook from its ``call_event`` method, a
    frame or two up. Only read when training begins.
    """
    frame = sys._getframe(1)
    while frame is not None:
        owner = frame.f_locals.get("self")
        if isinstance(owner, CallbackHandler):
            return owner
        frame = frame.f_back
    return None
