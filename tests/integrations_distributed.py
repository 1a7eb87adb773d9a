"""Distributed training runs for tests/test_integrations.py, each in processes of its own.

    python tests/integrations_distributed.py lightning-ddp LOGDIR   # Lightning relaunches this script for rank 1
    python tests/integrations_distributed.py lightning-fsdp LOGDIR  # FSDP2 (fully_shard) on net.fast
    python -m torch.distributed.run --nproc_per_node 2 tests/integrations_distributed.py hf-ddp LOGDIR

Two CPU processes (gloo), 20 optimizer steps of the tiny :class:`Net`,
``UpdateRatioCallback(every=5)``. The test reads what was written.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TensorBoard's writer imports TensorFlow whenever it is installed (~5 s per process on 2 cores);
# this module's presence makes it use its TF-free stub instead, as on a machine without TensorFlow.
sys.modules.setdefault("tensorboard.compat.notf", types.ModuleType("tensorboard.compat.notf"))
sys.path.insert(0, str(Path(__file__).parent))

from integrations_models import LitNet, Net, examples, loader, optimizer  # noqa: E402

EVERY, STEPS = 5, 20


class ShardedLitNet(LitNet):
    """:class:`LitNet` with ``net.fast`` sharded across the processes by FSDP2 (its parameters become DTensors)."""

    def configure_model(self) -> None:
        from torch.distributed.fsdp import fully_shard

        fully_shard(self.net.fast, mesh=self.device_mesh["data_parallel"])


def lightning(logdir: str, sharded: bool) -> None:
    import lightning.pytorch as pl
    from lightning.pytorch.strategies import ModelParallelStrategy

    from tb_stagnation.integrations.lightning import UpdateRatioCallback

    trainer = pl.Trainer(
        default_root_dir=logdir,
        # FSDP2 through the strategy that runs it on CPUs; Lightning's "fsdp" (FSDP1) needs GPUs.
        strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1) if sharded else "ddp",
        accelerator="cpu",
        devices=2,
        max_steps=STEPS,
        callbacks=[UpdateRatioCallback(every=EVERY, log_histograms=True)],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=EVERY,
    )
    trainer.fit(ShardedLitNet() if sharded else LitNet(), loader())


def hf_ddp(logdir: str) -> None:
    from transformers import Trainer, TrainingArguments

    from tb_stagnation.integrations.transformers import UpdateRatioCallback

    net = Net()
    args = TrainingArguments(
        output_dir=logdir,
        max_steps=STEPS,
        per_device_train_batch_size=8,
        use_cpu=True,
        report_to="none",  # the transformers 5 default: the callback opens its own writer
        save_strategy="no",
        disable_tqdm=True,
        lr_scheduler_type="constant",
    )
    trainer = Trainer(
        model=net, args=args, train_dataset=examples(), optimizers=(optimizer(net), None),
        callbacks=[UpdateRatioCallback(every=EVERY)],
    )
    trainer.train()
    assert trainer.args.world_size == 2, trainer.args.world_size
    import torch.distributed as dist

    # A gloo group left for interpreter exit to tear down can abort a rank ("terminate called
    # without an active exception") after a successful run, as the Trainer does not destroy it.
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    mode, logdir = sys.argv[1:]
    if mode == "hf-ddp":
        hf_ddp(logdir)
    else:
        lightning(logdir, sharded={"lightning-ddp": False, "lightning-fsdp": True}[mode])
