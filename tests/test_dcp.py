"""Sharded ``torch.distributed.checkpoint`` (DCP) checkpoints, written by a real 2-process FSDP2 run.

Two processes on the CPU (gloo) train the story of tests/checkpoint_writers.py
(``dense`` and ``out`` trained, ``frozen`` never, ``slow`` at 1e-5 x the
learning rate), each layer sharded with ``fully_shard``, and save with
``dcp.save`` every 10 steps in two layouts users have: torchtitan's
(``checkpoint/step-N/``, the model's keys flattened to the top beside
``optimizer.``) and the DCP tutorial's (``{"model": ..., "optim": ...}``).
The import must rank the layers as they trained and log numpy's figures on
the same checkpoints consolidated by torch's own ``dcp_to_torch_save``.

Run as ``python tests/test_dcp.py DIR`` to write the checkpoints.

Lightning's FSDP strategy and the HF Trainer's FSDP are not run here:
Lightning 2.6 refuses FSDP without a GPU ("The strategy `fsdp` requires a
GPU accelerator"), see the README's DCP section.
"""

from __future__ import annotations

import os
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
    dist.destroy_process_group()


@pytest.fixture(scope="module")
def sharded(tmp_path_factory) -> Path:
    """A directory holding both layouts' DCP checkpoints of one real FSDP2 run (read-only use)."""
    root = tmp_path_factory.mktemp("dcp")
    proc = subprocess.run([sys.executable, __file__, str(root)], env=QUIET_ENV, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root


def consolidated(directory: Path) -> dict[str, np.ndarray]:
    """The model's tensors of one DCP checkpoint, as torch's own ``dcp_to_torch_save`` consolidates it."""
    import torch
    from torch.distributed.checkpoint.format_utils import dcp_to_torch_save

    out = directory.parent / f"{directory.name}.consolidated.pt"
    dcp_to_torch_save(str(directory), str(out))
    state = torch.load(out, weights_only=True)
    out.unlink()
    model = state.get("model", state)
    return {k: v.numpy() for k, v in model.items() if isinstance(v, torch.Tensor) and v.is_floating_point()}


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_fsdp2_checkpoints_rank_their_layers_with_numpys_figures(sharded, tmp_path, layout) -> None:
    directory = Path(shutil.copytree(sharded / layout, tmp_path / layout))
    code, err = run("checkpoints", directory)
    assert code == 0, err
    assert "4 checkpoint(s)" in err and "steps 0-30" in err

    series = imported_series(directory)["."]
    assert set(series) == PARAMS  # the model's own parameter names: what its histograms are tagged
    rows = {r.tag: r for r in engine.analyse_logdir(str(directory)).ranking.rows}
    assert rows["frozen.weight"].status == rows["frozen.bias"].status == Status.FROZEN
    assert rows["slow.weight"].status == rows["slow.bias"].status == Status.STAGNANT
    assert rows["dense.weight"].status == rows["out.weight"].status == Status.MOVING

    states = [consolidated(directory / LAYOUTS[layout].format(step=s)) for s in STEPS]
    for param, s in series.items():
        values = [state[param] for state in states]
        rms, ratio, cosine = expected_quantities(values, STEPS)
        assert s.steps.tolist() == STEPS
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
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:  # a free port for the rendezvous
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    mp.spawn(_train, args=(2, sys.argv[1], free), nprocs=2)
