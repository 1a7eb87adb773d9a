"""Dead units (issue 20): per-unit movement measured live and imported from checkpoints, by the real frameworks.

Each run forces dead units at known indices and trains a few steps with the
framework's live writer (the PyTorch writer, the Keras callback, the HF
Trainer callback) while it saves checkpoints. Read three ways: the live
records alone, the checkpoints alone (imported by ``tb-stagnation
checkpoints``, the CLI's code path, in a directory of their own), and both
in one run; ``tb_stagnation.analyse`` must name exactly those indices in one
``dead_units`` finding per layer every way, and nothing on a healthy run.
"""

from __future__ import annotations

import glob
import os
import shutil

import numpy as np
import pytest

import tb_stagnation
from tb_stagnation import wire
from tb_stagnation.checkpoints import command
from tb_stagnation.verdict.vocabulary import Kind

STEPS, EVERY = 100, 10  # 11 checkpoints


def _cnn(root: str, dead: bool, optimizer: str) -> None:
    """A CNN on inputs in [0, 1], saving ``model_<step>.pt`` every EVERY steps and logging its movement
    live with the PyTorch writer at the same steps (``TorchUpdateRatioTracker``, closed at the end).

    Every conv1 weight starts positive and every fc1 bias at 1, so that no
    unit is dead by chance (at this seed, with PyTorch's initialisation,
    conv1's channel 11 is, and the import names it). ``dead``: conv1's channels 0-3 and fc1's units 0-10 get all-negative
    weights and a negative bias, so on nonnegative inputs their ReLU never
    fires and they get no gradient. ``optimizer``: ``sgd`` (no weight decay:
    the dead units never change) or ``adamw`` (weight decay 1e-3: they drift
    a little, far under 1/100 of a live unit).
    """
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(16 * 6 * 6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1),
    )
    conv1, fc1 = model[0], model[3]
    with torch.no_grad():  # at this seed channel 11 is born dead (all its weights < 0): every unit fires
        conv1.weight.abs_()
        fc1.bias.fill_(1.0)
    if dead:
        with torch.no_grad():
            for layer, units in ((conv1, slice(0, 4)), (fc1, slice(0, 11))):
                layer.weight[units] = -layer.weight[units].abs()
                layer.bias[units] = -0.5
    names = {"0": "conv1", "3": "fc1", "5": "fc2"}
    opt = (torch.optim.SGD(model.parameters(), lr=0.01) if optimizer == "sgd"
           else torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-3))
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(STEPS * 16, 1, 8, 8, generator=gen)
    y = x.mean(dim=(1, 2, 3)).unsqueeze(1) * 3 - x[:, :, :4].mean(dim=(1, 2, 3)).unsqueeze(1)
    os.makedirs(root)
    from torch.utils.tensorboard import SummaryWriter

    from tb_stagnation.summary import TorchUpdateRatioTracker

    def named(key: str) -> str:
        return f"{names[key.split('.')[0]]}.{key.split('.')[1]}"

    writer = SummaryWriter(root)
    tracker = TorchUpdateRatioTracker([(named(k), p) for k, p in model.named_parameters()], writer, every=EVERY)
    tracker.step(0)
    for step in range(STEPS + 1):
        if step % EVERY == 0:
            torch.save({named(k): v for k, v in model.state_dict().items()}, os.path.join(root, f"model_{step}.pt"))
        if step == STEPS:
            break
        batch = slice(step * 16, (step + 1) * 16)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
        opt.step()
        tracker.step(step + 1)
    tracker.close()
    writer.close()


def _three_ways(run: str, checkpoints: list[str]) -> dict[str, tb_stagnation.Analysis]:
    """``run`` read live only, its ``checkpoints`` (paths under ``run``) imported in a copy of their own, and both.

    The copy keeps each checkpoint's path relative to ``run``, so the import finds the same series.
    """
    alone = run.rstrip("/") + "_checkpoints"
    for path in checkpoints:
        target = os.path.join(alone, os.path.relpath(path, run))
        if os.path.isdir(path):
            shutil.copytree(path, target)
        else:
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy(path, target)
    return {"live": tb_stagnation.analyse(run), "checkpoints": _imported(alone), "both": _imported(run)}


def _imported(root: str) -> tb_stagnation.Analysis:
    assert command.main([root, "--quiet"]) == command.EXIT_OK
    return tb_stagnation.analyse(root)


def _dead(analysis: tb_stagnation.Analysis) -> dict[str, tuple[tuple[int, ...], int, str]]:
    """layer -> (dead indices, unit count, sentence) of every dead_units finding."""
    return {f.layers[0]: (f.units, f.unit_count, f.message) for f in analysis.findings if f.kind == Kind.DEAD_UNITS}


@pytest.fixture(scope="session")
def cnn_runs(tmp_path_factory) -> dict:
    """name -> {live, checkpoints, both}; ``root``: the directory of the runs (``sgd`` holds both sources)."""
    root = tmp_path_factory.mktemp("units_cnn")
    runs = {}
    for name, dead, optimizer in (("sgd", True, "sgd"), ("adamw", True, "adamw"), ("healthy", False, "sgd")):
        run = str(root / name)
        _cnn(run, dead, optimizer)
        runs[name] = _three_ways(run, sorted(glob.glob(os.path.join(run, "*.pt"))))
    runs["root"] = root
    return runs


@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "rust-loader"])
def test_tensorboard_serves_the_dead_units_on_both_loaders(cnn_runs, start_tensorboard, load_fast) -> None:
    """A run with live and imported units: one finding per layer, and the unit view's data in the series answer."""
    tb = start_tensorboard(cnn_runs["root"] / "sgd", load_fast=load_fast)
    status, body, _ = tb.plugin("ranking")
    assert status == 200
    dead = [(f["layers"][0], f["units"], f["unit_count"]) for f in body["findings"] if f["kind"] == "dead_units"]
    assert dead == [("conv1", list(range(4)), 16), ("fc1", list(range(11)), 32)]
    status, series, _ = tb.plugin("series?run=.&tag=conv1.weight")
    assert status == 200
    units = series["units"]
    assert {k: units[k] for k in ("noun", "axis", "count", "dead", "source")} == {
        "noun": "output channel", "axis": 0, "count": 16, "dead": [0, 1, 2, 3], "source": "exact"}
    assert sorted(units["sorted"]["units"]) == list(range(16))
    assert units["sorted"]["units"][:4] == [0, 1, 2, 3] and units["sorted"]["movement"][:4] == [0.0] * 4
    assert units["sorted"]["movement"] == sorted(units["sorted"]["movement"])
    assert 0 < units["threshold"] < units["sorted"]["movement"][4]
    assert units["pairs"]["steps"] == list(range(EVERY, STEPS + 1, EVERY))  # the later step of each of 10 pairs
    assert all(len(q) == 5 and q[0] == 0.0 and q == sorted(q) and q[-1] > 0 for q in units["pairs"]["quantiles"])
    status, bias, _ = tb.plugin("series?run=.&tag=fc2.bias")
    assert status == 200 and bias["units"]["count"] == 1 and bias["units"]["dead"] == []


def test_torch_cnn_dead_channels_and_units_are_named_exactly(cnn_runs) -> None:
    dead = _dead(cnn_runs["sgd"]["checkpoints"])
    assert dead["conv1"][:2] == (tuple(range(4)), 16)
    assert dead["fc1"][:2] == (tuple(range(11)), 32)
    assert dead["conv1"][2] == (
        "conv1: 4 of 16 output channels (0-3) never changed over 11 checkpoints, nor their biases: "
        "dead ReLU units, which get no gradient"
    )
    assert dead["fc1"][2].startswith("fc1: 11 of 32 units (0-10) never changed over 11 checkpoints, nor their biases")
    assert set(dead) == {"conv1", "fc1"}
    statuses = {r.tag: r.status for r in cnn_runs["sgd"]["checkpoints"].rows}
    assert statuses["conv1.weight"] == statuses["fc1.weight"] == "moving"  # the tensor keeps its status


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_the_pytorch_writer_names_the_same_dead_units_as_the_checkpoints(cnn_runs, optimizer) -> None:
    """Live, imported, and both in one run: the same layers and indices, one finding per layer."""
    ways = {way: _dead(analysis) for way, analysis in cnn_runs[optimizer].items()}
    indices = {way: {layer: found[:2] for layer, found in dead.items()} for way, dead in ways.items()}
    assert indices["live"] == indices["checkpoints"] == indices["both"] == {
        "conv1": (tuple(range(4)), 16), "fc1": (tuple(range(11)), 32)}
    kinds = [(f.kind, f.layers) for f in cnn_runs[optimizer]["both"].findings if f.kind == Kind.DEAD_UNITS]
    assert len(kinds) == len(set(kinds)) == 2
    if optimizer == "sgd":  # read live: 11 snapshots (10 pairs), the sums closed at step 100
        assert ways["live"]["conv1"][2].startswith("conv1: 4 of 16 output channels (0-3) never changed over 11 "
                                                    "snapshots, nor their biases")


def test_weight_decay_drift_stays_under_the_median_share(cnn_runs) -> None:
    dead = _dead(cnn_runs["adamw"]["checkpoints"])
    assert dead["conv1"][:2] == (tuple(range(4)), 16)
    assert dead["fc1"][:2] == (tuple(range(11)), 32)
    assert "moved less than 0.01 of the median output channel over 11 checkpoints" in dead["conv1"][2]


def test_finding_json_carries_the_indices(cnn_runs) -> None:
    finding = next(f for f in cnn_runs["sgd"]["checkpoints"].findings if f.kind == Kind.DEAD_UNITS)
    out = wire.finding_json(finding)
    assert out["units"] == [0, 1, 2, 3] and out["unit_count"] == 16 and out["kind"] == "dead_units"


@pytest.mark.parametrize("way", ["live", "checkpoints", "both"])
def test_a_healthy_cnn_has_no_dead_units(cnn_runs, way) -> None:
    assert _dead(cnn_runs["healthy"][way]) == {}


def _keras(root: str) -> None:
    """A Keras Dense layer whose units 0-7 (kernel columns: the last axis) never fire, checkpointed every
    epoch (8 steps) and logged live by the Keras callback every 8 steps into the same directory."""
    import keras

    from tb_stagnation.summary import KerasUpdateRatioCallback

    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.random((256, 12)).astype("float32")
    y = (x @ rng.normal(size=(12, 1))).astype("float32")
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(32, activation="relu", name="hidden"),
                              keras.layers.Dense(1, name="out")], name="mlp")
    hidden = model.get_layer("hidden")
    kernel, bias = (np.array(v) for v in hidden.get_weights())
    kernel = np.abs(kernel)
    kernel[:, :8] *= -1
    bias[:8], bias[8:] = -0.5, 0.5
    hidden.set_weights([kernel, bias])
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    model.fit(x, y, batch_size=32, epochs=6, verbose=0, shuffle=False, callbacks=[
        keras.callbacks.ModelCheckpoint(os.path.join(root, "model.{epoch:02d}.weights.h5"), save_weights_only=True),
        KerasUpdateRatioCallback(root, every=8, run="."),
    ])


def test_keras_dense_dead_units_along_the_last_axis(tmp_path) -> None:
    """Live (the Keras callback: 7 snapshots) and imported (6 checkpoints): the same kernel columns, one finding."""
    run = str(tmp_path / "run")
    _keras(run)
    ways = {way: _dead(analysis) for way, analysis in _three_ways(run, glob.glob(os.path.join(run, "*.h5"))).items()}
    for way, dead in ways.items():
        assert [found[:2] for layer, found in dead.items() if layer.endswith("hidden")] == [(tuple(range(8)), 32)], way
        assert len(dead) == 1, way
    assert "8 of 32 units (0-7) never changed over 6 checkpoints, nor their biases" in [*ways["checkpoints"].values()][0][2]
    assert "8 of 32 units (0-7) never changed over 7 snapshots, nor their biases" in [*ways["live"].values()][0][2]


def _llama(root: str, tied: bool) -> None:
    """A tiny Llama from a config (no download), trained by the HF Trainer on token ids 0-199 only.

    Checkpoints every 10 steps (safetensors). Untied, rows 200-255 of
    ``model.embed_tokens.weight`` get no gradient; tied, the LM head's
    gradient reaches every row.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=32,
                         tie_word_embeddings=tied)
    ids = torch.randint(0, 200, (400, 16), generator=torch.Generator().manual_seed(1))
    from tb_stagnation.integrations.transformers import UpdateRatioCallback

    class Tokens(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": ids[i], "labels": ids[i]}

    args = TrainingArguments(output_dir=root, max_steps=50, per_device_train_batch_size=8, save_strategy="steps",
                             save_steps=EVERY, learning_rate=1e-3, report_to=[], use_cpu=True, disable_tqdm=True,
                             dataloader_num_workers=0, lr_scheduler_type="constant")
    live = UpdateRatioCallback(every=EVERY, log_histograms=False, log_dir=root)
    Trainer(model=LlamaForCausalLM(config), args=args, train_dataset=Tokens(), callbacks=[live]).train()


@pytest.fixture(scope="session")
def llama_runs(tmp_path_factory) -> dict[str, dict[str, tb_stagnation.Analysis]]:
    """``tied``/``untied`` -> {live, checkpoints, both}: the HF Trainer callback live, checkpoints every 10 steps."""
    runs = {}
    for tied in (False, True):
        root = str(tmp_path_factory.mktemp(f"units_llama_tied_{tied}") / "run")
        _llama(root, tied)
        runs["tied" if tied else "untied"] = _three_ways(root, glob.glob(os.path.join(root, "checkpoint-*")))
    return runs


def test_llama_embedding_rows_of_tokens_never_seen(llama_runs) -> None:
    dead = _dead(llama_runs["untied"]["checkpoints"])
    assert dead["model.embed_tokens"][:2] == (tuple(range(200, 256)), 256)
    assert dead["model.embed_tokens"][2] == (
        "model.embed_tokens: 56 of 256 rows (token ids 200-255) never changed over 5 checkpoints: "
        "tokens absent from the training data"
    )
    assert set(dead) == {"model.embed_tokens"}


def test_the_hf_trainer_callback_names_the_same_rows_as_the_checkpoints(llama_runs) -> None:
    """Live (6 snapshots from step 0), imported (5 checkpoints from step 10), and both: rows 200-255, one finding."""
    ways = {way: _dead(analysis) for way, analysis in llama_runs["untied"].items()}
    for way, dead in ways.items():
        assert {layer: found[:2] for layer, found in dead.items()} == {
            "model.embed_tokens": (tuple(range(200, 256)), 256)}, way
    assert ways["live"]["model.embed_tokens"][2].startswith(
        "model.embed_tokens: 56 of 256 rows (token ids 200-255) never changed over 6 snapshots")


@pytest.mark.parametrize("way", ["live", "checkpoints", "both"])
def test_a_tied_embedding_lm_has_no_dead_rows(llama_runs, way) -> None:
    assert _dead(llama_runs["tied"][way]) == {}


def test_an_import_continued_later_adds_its_pairs_to_the_units(tmp_path) -> None:
    """Importing checkpoints 0-50, then 60-100, names the same units over the same 11 checkpoints."""
    _cnn(str(tmp_path / "trained"), True, "sgd")
    run, whole = tmp_path / "run", tmp_path / "whole"
    run.mkdir()
    whole.mkdir()
    for step in range(0, 60, EVERY):
        shutil.copy(tmp_path / "trained" / f"model_{step}.pt", run)
    assert _dead(_imported(str(run)))["conv1"][2].startswith("conv1: 4 of 16 output channels (0-3) never changed over 6")
    for step in range(0, STEPS + 1, EVERY):
        shutil.copy(tmp_path / "trained" / f"model_{step}.pt", whole)
        if step >= 60:
            shutil.copy(tmp_path / "trained" / f"model_{step}.pt", run)
    once, twice = _dead(_imported(str(whole))), _dead(_imported(str(run)))
    assert twice == once


def test_a_tensor_without_a_known_unit_axis_is_named_and_skipped(tmp_path, capsys) -> None:
    """A TF2 checkpoint's rank-1 variable that is no bias: the import says so and measures no units of it."""
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")], name="mlp")
    scale = tf.Variable(tf.ones(3), name="scale")
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model, scale=scale), str(tmp_path), max_to_keep=None)
    for i in range(3):
        scale.assign_add(tf.constant([1.0, 0.0, 0.0]))
        model.get_layer("dense").kernel.assign_add(tf.fill((4, 3), float(i)))
        manager.save()
    analysis = _imported(str(tmp_path))
    err = capsys.readouterr().err
    assert "tb-stagnation: scale: which axis holds the output units is not known for this layout; not measured per unit" in err
    assert _dead(analysis) == {}


def _unit_records(directory: str) -> dict[str, list[tuple[int, int]]]:
    """tag suffix (``units``, ``unit_quantiles``) -> [(step, values)] of every unit record in ``directory``'s event files."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    found: dict[str, list[tuple[int, int]]] = {}
    for path in sorted(glob.glob(os.path.join(directory, "events.out.tfevents.*"))):
        for event in EventFileLoader(path).Load():
            for value in event.summary.value:
                suffix = value.tag.rsplit("/", 1)[-1]
                if suffix in ("units", "unit_quantiles"):
                    found.setdefault(suffix, []).append((event.step, tensor_util.make_ndarray(value.tensor).size))
    return found


def test_a_writer_stores_unit_sums_at_powers_of_two_and_quantiles_per_pair(tmp_path) -> None:
    """An embedding of 4096 rows logged at every step for 64 pairs: 7 sums of 4096 (pairs 1, 2, 4, ... 64),
    not 64; one 5-quantile record per pair; exactly the rows of tokens never fed are named."""
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from tb_stagnation.summary import TorchUpdateRatioTracker

    torch.manual_seed(0)
    embedding = torch.nn.Embedding(4096, 8)
    opt = torch.optim.SGD(embedding.parameters(), lr=0.1)
    writer = SummaryWriter(str(tmp_path))
    tracker = TorchUpdateRatioTracker([("embed_tokens.weight", embedding.weight)], writer, every=1)
    tracker.step(0)
    fed = set()
    for step in range(1, 65):
        ids = torch.randint(0, 4000, (256,))  # rows 4000-4095 never fed, and some below by chance
        fed.update(ids.tolist())
        opt.zero_grad()
        embedding(ids).square().sum().backward()
        opt.step()
        tracker.step(step)
    tracker.close()  # 64 is a power of two: nothing left to write
    writer.close()
    stored = _unit_records(str(tmp_path))
    assert stored["units"] == [(2**k, 1 + 4096) for k in range(7)]
    assert stored["unit_quantiles"] == [(step, 5) for step in range(1, 65)]
    (finding,) = [f for f in tb_stagnation.analyse(str(tmp_path)).findings if f.kind == Kind.DEAD_UNITS]
    assert finding.units == tuple(sorted(set(range(4096)) - fed)) and finding.unit_count == 4096
    assert set(range(4000, 4096)) <= set(finding.units)


def test_the_import_stores_unit_sums_at_powers_of_two_and_quantiles_per_pair(cnn_runs) -> None:
    """11 checkpoints, 10 pairs, one import: per tensor the sums at pairs 1, 2, 4, 8 and the last (steps 10,
    20, 40, 80, 100), never one per checkpoint; one quantile record per pair."""
    stored = _unit_records(str(cnn_runs["root"] / "sgd_checkpoints"))
    tensors = 6  # conv1, fc1, fc2: weight and bias
    assert sorted(step for step, _ in stored["units"]) == sorted([10, 20, 40, 80, 100] * tensors)
    assert sorted(step for step, _ in stored["unit_quantiles"]) == sorted(list(range(EVERY, STEPS + 1, EVERY)) * tensors)


def _lightning(root: str) -> None:
    """A Lightning MLP whose fc1 units 0-7 never fire, 50 steps: the callback live every 10 steps into the
    logger's directory (``root``), a ``.ckpt`` every 10 steps in ``root/checkpoints``."""
    import lightning.pytorch as pl
    import torch

    from tb_stagnation.integrations.lightning import UpdateRatioCallback

    class Mlp(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.fc1, self.fc2 = torch.nn.Linear(12, 32), torch.nn.Linear(32, 1)
            with torch.no_grad():
                self.fc1.weight.abs_()
                self.fc1.weight[:8] *= -1
                self.fc1.bias[:8], self.fc1.bias[8:] = -0.5, 0.5

        def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
            x, y = batch
            return torch.nn.functional.mse_loss(self.fc2(torch.relu(self.fc1(x))), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    x = torch.rand(400, 12)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8)
    pl.Trainer(
        max_steps=50, logger=pl.loggers.TensorBoardLogger(root, name="", version=""), enable_progress_bar=False,
        enable_model_summary=False, accelerator="cpu", callbacks=[
            UpdateRatioCallback(every=EVERY),
            pl.callbacks.ModelCheckpoint(os.path.join(root, "checkpoints"), every_n_train_steps=EVERY, save_top_k=-1),
        ],
    ).fit(Mlp(), data)


def test_the_lightning_callback_names_the_same_dead_units_as_the_checkpoints(tmp_path) -> None:
    run = str(tmp_path / "run")
    _lightning(run)
    ways = _three_ways(run, glob.glob(os.path.join(run, "checkpoints", "*.ckpt")))
    live, imported = _dead(ways["live"]), _dead(ways["checkpoints"])
    assert {layer: found[:2] for layer, found in live.items()} == {"fc1": (tuple(range(8)), 32)}
    assert {layer: found[:2] for layer, found in imported.items()} == {"fc1": (tuple(range(8)), 32)}
    assert live["fc1"][2].startswith("fc1: 8 of 32 units (0-7) never changed over 6 snapshots, nor their biases")
