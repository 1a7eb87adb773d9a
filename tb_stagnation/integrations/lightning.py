"""Exact movement in PyTorch Lightning: ``Trainer(callbacks=[UpdateRatioCallback(every=100)])``.

Writes through the ``SummaryWriter`` of the trainer's ``TensorBoardLogger``
(Lightning's default logger), so the series land in the same event file as
the run's own metrics, in ``trainer.logger.log_dir``, on the
``trainer.global_step`` axis (optimizer steps). Needs ``lightning``
(``pip install 'tb-stagnation[lightning]'``); a ``pytorch_lightning``
``Trainer`` takes the callback too.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    import lightning.pytorch as pl
except ImportError as error:  # pragma: no cover - depends on the environment
    raise ImportError(
        "tb_stagnation.integrations.lightning needs PyTorch Lightning: pip install 'tb-stagnation[lightning]'"
    ) from error

from tb_stagnation.integrations.movement import ParameterMovement

__all__ = ["UpdateRatioCallback"]


class UpdateRatioCallback(pl.Callback):
    """Log each parameter's exact update ratio, RMS and gradient norm every ``every`` optimizer steps.

    The first snapshot is taken when training starts (at the trainer's
    ``global_step``, 0 unless resumed), then one each time ``global_step``
    crosses a multiple of ``every``; ratios start at the second snapshot.
    Gradient norms are measured just before the optimizer step
    (``on_before_optimizer_step``: before gradient clipping, before the next
    ``zero_grad``). ``log_histograms=True`` also logs each parameter's
    histogram at every snapshot, under the parameter's name (the plugin
    matches it to the ratios). Frozen parameters are logged too (ratio 0).

    ``snapshot_device``: where the one copy of the parameters lives between
    snapshots; ``None`` keeps each on its own device, ``"cpu"`` moves it to
    host memory. Under DDP only global rank 0 does anything. Parameters
    sharded by FSDP or DeepSpeed ZeRO-3 are skipped with a warning.
    """

    def __init__(self, every: int = 100, log_histograms: bool = False, snapshot_device: Any = None) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = every
        self.log_histograms = log_histograms
        self.snapshot_device = snapshot_device
        self._movement: ParameterMovement | None = None
        self._writer: Any = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Fail before training, on every rank alike, when there is no TensorBoard logger to write to."""
        if stage == "fit" and _tensorboard_logger(trainer) is None:
            raise ValueError(
                "UpdateRatioCallback writes through the trainer's TensorBoardLogger, and it has none "
                f"(loggers: {[type(logger).__name__ for logger in trainer.loggers] or 'none'}); "
                "pass logger=True (the default) or add a TensorBoardLogger"
            )

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        self._writer = _tensorboard_logger(trainer).experiment
        self._movement = ParameterMovement(
            pl_module.named_parameters(), self.every, self.snapshot_device, self.log_histograms
        )
        self._movement.log(trainer.global_step, self._writer)

    def on_before_optimizer_step(self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: Any) -> None:
        if self._movement is not None:
            self._movement.record_gradients(trainer.global_step + 1)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        if self._movement is not None:
            self._movement.log(trainer.global_step, self._writer)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the units' final sums while the logger is still open."""
        if self._movement is not None:
            self._movement.finish(self._writer)

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Free the snapshot when fitting ends, however it ends."""
        if stage == "fit":
            self._movement = self._writer = None


def _tensorboard_logger(trainer: Any) -> Any:
    """The trainer's first ``TensorBoardLogger``, of ``lightning`` or of ``pytorch_lightning``; else ``None``."""
    classes = tuple(
        module.TensorBoardLogger
        for module in (sys.modules.get("lightning.pytorch.loggers"), sys.modules.get("pytorch_lightning.loggers"))
        if module is not None
    )
    return next((logger for logger in trainer.loggers if isinstance(logger, classes)), None)
