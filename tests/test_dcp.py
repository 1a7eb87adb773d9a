"""Sharded ``torch.distributed.checkpoint`` (DCP) checkpoints, written by real 2-process FSDP2 runs.

Two processes on the CPU (gloo) train the story of tests/checkpoint_writers.py
(``dense`` and ``out`` trained, ``frozen`` never, ``slow`` at 1e-5 x the
learning rate), each layer sharded with ``fully_shard``, and save with
``dcp.save`` every 10 steps in two layouts users have: torchtitan's
(``checkpoint/step-N/``, the model's keys flattened to the top beside
``optimizer.``) and the DCP tutorial's (``{"model": ..., "optim": ...}``).
Lightning's ``ModelParallelStrategy`` (FSDP2 under Lightning) trains the
same story on the CPU and keeps its sharded ``epoch=E-step=S.ckpt``
folders (``meta.pt`` beside the shards). The import must rank the layers as
they trained and log numpy's figures on the same checkpoints consolidated by
torch's own ``dcp_to_torch_save``.

Run as ``python tests/test_dcp.py fsdp2|lightning DIR`` to write the checkpoints.

Not run here, because they do not run on the CPU: Lightning's
``FSDPStrategy`` (FSDP1) refuses it ("The strategy `fsdp` requires a GPU
accelerator"), and the HF Trainer's ``fsdp`` option is ignored there
(accelerate 1.16 enables FSDP for multi-GPU/accelerator runs only; on the
CPU it trains as DDP and saves ``model.safetensors``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HERE, QUIET_ENV
from test_checkpoints import expected_quantities, imported_series, run

from tb_stagnation import engine
from tb_stagnation.checkpoints import imported
from tb_stagnation.verdict.vocabulary import Status

STEPS = [0, 10, 20, 30]
LAYOUTS = {"torchtitan": "checkpoint/step-{step}", "tutorial": "ckpt/step_{step}"}
# layout -> (its run directory, its checkpoints' steps): Lightning saves after steps 10, 20 and 30
RUNS = {**{layout: (".", STEPS) for layout in LAYOUTS}, "lightning": ("lightning_logs/version_0", [10, 20, 30])}
PARAMS = {f"{layer}.{var}" for layer in ("dense", "frozen", "slow", "out") for var in ("weight", "bias")}


def _train(rank: int, world: int, out: str, port: int) -> None:
    """One rank of the FSDP2 run: shard every layer, train, save both layouts at each step of STEPS."""
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict
    from torch.distributed.fsdp import fully_shard

    sys.path.insert(0, str(Path(__file__).parent))
    from checkpoint_writers import BATCH, LR, _torch_groups, _torch_model, data

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = _torch_model()
    for name in ("dense", "frozen", "slow", "out"):
        fully_shard(getattr(model, name))
    fully_shard(model)
    optimizer = torch.optim.Adam(_torch_groups(model), lr=LR)
    x, y = (torch.from_numpy(a) for a in data())
    for step in range(STEPS[-1] + 1):
        if step in STEPS:
            state, optim = get_model_state_dict(model), get_optimizer_state_dict(model, optimizer)
            dcp.save({**state, "optimizer": optim}, checkpoint_id=os.path.join(out, "torchtitan", LAYOUTS["torchtitan"].format(step=step)))
            dcp.save({"model": state, "optim": optim}, checkpoint_id=os.path.join(out, "tutorial", LAYOUTS["tutorial"].format(step=step)))
        if step == STEPS[-1]:
            break
        batch = slice(step * BATCH, (step + 1) * BATCH)
        loss = ((model(x[batch]) - y[batch]) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    # Both ranks leave together: a rank tearing gloo down while the other still holds the group
    # aborts it ("terminate called without an active exception", seen once in CI).
    dist.barrier()
    dist.destroy_process_group()


def _lightning(out: str) -> None:
    """Lightning's ModelParallelStrategy on 2 CPU processes (its launcher re-runs this script per rank)."""
    import lightning.pytorch as L
    import torch
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.strategies import ModelParallelStrategy

    sys.path.insert(0, str(Path(__file__).parent))
    from checkpoint_writers import BATCH, LR, _torch_groups, _torch_model, data

    class Story(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.model = _torch_model()

        def configure_model(self) -> None:
            from torch.distributed.fsdp import fully_shard

            mesh = self.device_mesh["data_parallel"]
            for name in ("dense", "frozen", "slow", "out"):
                fully_shard(getattr(self.model, name), mesh=mesh)
            fully_shard(self.model, mesh=mesh)

        def training_step(self, batch, index):
            x, y = batch
            return ((self.model(x) - y) ** 2).mean()

        def configure_optimizers(self):
            return torch.optim.Adam(_torch_groups(self.model), lr=LR)

    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=BATCH)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy=ModelParallelStrategy(data_parallel_size=2, tensor_parallel_size=1),
        max_steps=30, default_root_dir=out, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[ModelCheckpoint(every_n_train_steps=10, save_top_k=-1)],
    )
    trainer.fit(Story(), loader)


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    """A directory holding every layout's DCP checkpoints of real FSDP2 runs (read-only use)."""
    root = tmp_path_factory.mktemp("dcp")
    procs = {
        writer: subprocess.Popen([sys.executable, __file__, writer, str(root / writer)], env=QUIET_ENV,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for writer in ("fsdp2", "lightning")
    }
    for writer, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{writer} failed:\n{out[-3000:]}"
    for layout in LAYOUTS:
        os.rename(root / "fsdp2" / layout, root / layout)
    return root


def consolidated(directory: Path) -> dict[str, np.ndarray]:
    """The model's tensors of one DCP checkpoint, as torch's own ``dcp_to_torch_save`` consolidates it."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = directory.parent / f"{directory.name}.consolidated.pt"
    dcp_to_torch_save(str(directory), str(out))
    state = torch.load(out, weights_only=True)
    out.unlink()
    model = state.get("model", state.get("state_dict", state))  # the tutorial's, Lightning's, torchtitan's
    return {k.removeprefix("model."): v.numpy() for k, v in model.items()
            if isinstance(v, torch.Tensor) and v.is_floating_point()}


@pytest.mark.parametrize("layout", list(RUNS))
def test_fsdp2_checkpoints_rank_their_layers_with_numpys_figures(sharded, tmp_path, layout) -> None:
    directory = Path(shutil.copytree(sharded / layout, tmp_path / layout))
    code, err = run("checkpoints", directory)
    assert code == 0, err
    run_dir, steps = RUNS[layout]
    assert f"{len(steps)} checkpoint(s)" in err and f"steps {steps[0]}-{steps[-1]}" in err
    assert len(imported.files(str(directory / run_dir))) == 1, err  # beside the training's own events

    series = imported_series(directory)[run_dir]
    assert set(series) == PARAMS  # the model's own parameter names: what its histograms are tagged
    rows = {r.tag: r for r in engine.analyse_logdir(str(directory)).ranking.rows if r.run == run_dir}
    assert rows["frozen.weight"].status == rows["frozen.bias"].status == Status.FROZEN
    assert rows["slow.weight"].status == rows["slow.bias"].status == Status.STAGNANT
    assert rows["dense.weight"].status == rows["out.weight"].status == Status.MOVING

    folders = sorted((directory / run_dir).glob("**/.metadata"), key=lambda p: int(re.findall(r"\d+", p.parent.name)[-1]))
    states = [consolidated(folder.parent) for folder in folders]
    assert len(states) == len(steps)
    for param, s in series.items():
        values = [state[param] for state in states]
        rms, ratio, cosine = expected_quantities(values, steps)
        assert s.steps.tolist() == steps
        np.testing.assert_allclose(s.rms, rms, rtol=1e-5, err_msg=param)
        np.testing.assert_allclose(s.update_ratio[1:], ratio, rtol=1e-5, err_msg=param)
        if not s.frozen:
            np.testing.assert_allclose(s.cosine[2:], cosine, rtol=1e-5, atol=1e-7, err_msg=param)

    code, err = run("checkpoints", directory)
    assert code == 0 and "up to date" in err


def test_a_truncated_shard_costs_only_its_checkpoint_and_is_named(sharded, tmp_path) -> None:
    directory = Path(shutil.copytree(sharded / "torchtitan", tmp_path / "torchtitan"))
    shard = directory / "checkpoint/step-20/__1_0.distcp"
    with open(shard, "r+b") as f:
        f.truncate(shard.stat().st_size // 2)
    missing = directory / "checkpoint/step-10/__0_0.distcp"
    missing.unlink()

    code, err = run("checkpoints", directory)
    assert code == 0, err
    assert f"{shard}: truncated" in err and f"{missing}: missing" in err
    assert {p: s.steps.tolist() for p, s in imported_series(directory)["."].items()} == {p: [0, 30] for p in PARAMS}
    assert len(imported.files(str(directory))) == 1


if __name__ == "__main__":
    if sys.argv[1] == "lightning":
        _lightning(sys.argv[2])
    else:
        import socket

        import torch.multiprocessing as mp

        with socket.socket() as s:  # a free port for the rendezvous
            s.bind(("127.0.0.1", 0))
            free = s.getsockname()[1]
        mp.spawn(_train, args=(2, sys.argv[2], free), nprocs=2)
