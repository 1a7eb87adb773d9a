"""Dead units (issue 20): per-unit movement imported from checkpoints written by the real frameworks.

Each run forces dead units at known indices and trains a few steps; the
import (``tb-stagnation checkpoints``, the CLI's code path) measures every
unit, and ``tb_stagnation.analyse`` must name exactly those indices in one
``dead_units`` finding per layer, and nothing on a healthy run.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import tb_stagnation
from tb_stagnation import wire
from tb_stagnation.checkpoints import command
from tb_stagnation.verdict.vocabulary import Kind

STEPS, EVERY = 100, 10  # 11 checkpoints


def _cnn(root: str, dead: bool, optimizer: str) -> None:
    """A CNN on inputs in [0, 1], saving ``model_<step>.pt`` every EVERY steps.

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
    for step in range(STEPS + 1):
        if step % EVERY == 0:
            state = {f"{names[k.split('.')[0]]}.{k.split('.')[1]}": v for k, v in model.state_dict().items()}
            torch.save(state, os.path.join(root, f"model_{step}.pt"))
        if step == STEPS:
            break
        batch = slice(step * 16, (step + 1) * 16)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x[batch]), y[batch]).backward()
        opt.step()


def _imported(root: str) -> tb_stagnation.Analysis:
    assert command.main([root, "--quiet"]) == command.EXIT_OK
    return tb_stagnation.analyse(root)


def _dead(analysis: tb_stagnation.Analysis) -> dict[str, tuple[tuple[int, ...], int, str]]:
    """layer -> (dead indices, unit count, sentence) of every dead_units finding."""
    return {f.layers[0]: (f.units, f.unit_count, f.message) for f in analysis.findings if f.kind == Kind.DEAD_UNITS}


@pytest.fixture(scope="session")
def cnn_runs(tmp_path_factory) -> dict[str, tb_stagnation.Analysis]:
    root = tmp_path_factory.mktemp("units_cnn")
    runs = {}
    for name, dead, optimizer in (("sgd", True, "sgd"), ("adamw", True, "adamw"), ("healthy", False, "sgd")):
        _cnn(str(root / name), dead, optimizer)
        runs[name] = _imported(str(root / name))
    runs["root"] = root
    return runs


@pytest.mark.parametrize("load_fast", [False, True], ids=["python-loader", "rust-loader"])
def test_tensorboard_serves_the_dead_units_on_both_loaders(cnn_runs, start_tensorboard, load_fast) -> None:
    tb = start_tensorboard(cnn_runs["root"] / "sgd", load_fast=load_fast)
    status, body, _ = tb.plugin("ranking")
    assert status == 200
    dead = {f["layers"][0]: (f["units"], f["unit_count"]) for f in body["findings"] if f["kind"] == "dead_units"}
    assert dead == {"conv1": (list(range(4)), 16), "fc1": (list(range(11)), 32)}


def test_torch_cnn_dead_channels_and_units_are_named_exactly(cnn_runs) -> None:
    dead = _dead(cnn_runs["sgd"])
    assert dead["conv1"][:2] == (tuple(range(4)), 16)
    assert dead["fc1"][:2] == (tuple(range(11)), 32)
    assert dead["conv1"][2] == (
        "conv1: 4 of 16 output channels (0-3) never changed over 11 checkpoints, nor their biases: "
        "dead ReLU units, which get no gradient"
    )
    assert dead["fc1"][2].startswith("fc1: 11 of 32 units (0-10) never changed over 11 checkpoints, nor their biases")
    assert set(dead) == {"conv1", "fc1"}
    statuses = {r.tag: r.status for r in cnn_runs["sgd"].rows}
    assert statuses["conv1.weight"] == statuses["fc1.weight"] == "moving"  # the tensor keeps its status


def test_weight_decay_drift_stays_under_the_median_share(cnn_runs) -> None:
    dead = _dead(cnn_runs["adamw"])
    assert dead["conv1"][:2] == (tuple(range(4)), 16)
    assert dead["fc1"][:2] == (tuple(range(11)), 32)
    assert "moved less than 0.01 of the median output channel over 11 checkpoints" in dead["conv1"][2]


def test_finding_json_carries_the_indices(cnn_runs) -> None:
    finding = next(f for f in cnn_runs["sgd"].findings if f.kind == Kind.DEAD_UNITS)
    out = wire.finding_json(finding)
    assert out["units"] == [0, 1, 2, 3] and out["unit_count"] == 16 and out["kind"] == "dead_units"


def test_a_healthy_cnn_has_no_dead_units(cnn_runs) -> None:
    assert _dead(cnn_runs["healthy"]) == {}


def _keras(root: str) -> None:
    """A Keras Dense layer whose units 0-7 (kernel columns: the last axis) never fire, checkpointed every epoch."""
    import keras

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
        keras.callbacks.ModelCheckpoint(os.path.join(root, "model.{epoch:02d}.weights.h5"), save_weights_only=True)
    ])


def test_keras_dense_dead_units_along_the_last_axis(tmp_path) -> None:
    _keras(str(tmp_path))
    dead = _dead(_imported(str(tmp_path)))
    layer = next(name for name in dead if name.endswith("hidden"))
    assert dead[layer][:2] == (tuple(range(8)), 32)
    assert "8 of 32 units (0-7) never changed over 6 checkpoints, nor their biases" in dead[layer][2]
    assert len(dead) == 1


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

    class Tokens(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ids)

        def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
            return {"input_ids": ids[i], "labels": ids[i]}

    args = TrainingArguments(output_dir=root, max_steps=50, per_device_train_batch_size=8, save_strategy="steps",
                             save_steps=EVERY, learning_rate=1e-3, report_to=[], use_cpu=True, disable_tqdm=True,
                             dataloader_num_workers=0, lr_scheduler_type="constant")
    Trainer(model=LlamaForCausalLM(config), args=args, train_dataset=Tokens()).train()


@pytest.fixture(scope="session")
def llama_runs(tmp_path_factory) -> dict[str, tb_stagnation.Analysis]:
    runs = {}
    for tied in (False, True):
        root = str(tmp_path_factory.mktemp(f"units_llama_tied_{tied}"))
        _llama(root, tied)
        runs["tied" if tied else "untied"] = _imported(root)
    return runs


def test_llama_embedding_rows_of_tokens_never_seen(llama_runs) -> None:
    dead = _dead(llama_runs["untied"])
    assert dead["model.embed_tokens"][:2] == (tuple(range(200, 256)), 256)
    assert dead["model.embed_tokens"][2] == (
        "model.embed_tokens: 56 of 256 rows (token ids 200-255) never changed over 5 checkpoints: "
        "tokens absent from the training data"
    )
    assert set(dead) == {"model.embed_tokens"}


def test_a_tied_embedding_lm_has_no_dead_rows(llama_runs) -> None:
    assert _dead(llama_runs["tied"]) == {}


def test_an_import_continued_later_adds_its_pairs_to_the_units(tmp_path) -> None:
    """Importing checkpoints 0-50, then 60-100, names the same units over the same 11 checkpoints."""
    import shutil

    _cnn(str(tmp_path / "all"), True, "sgd")
    run = tmp_path / "run"
    run.mkdir()
    for step in range(0, 60, EVERY):
        shutil.copy(tmp_path / "all" / f"model_{step}.pt", run)
    assert _dead(_imported(str(run)))["conv1"][2].startswith("conv1: 4 of 16 output channels (0-3) never changed over 6")
    for step in range(60, STEPS + 1, EVERY):
        shutil.copy(tmp_path / "all" / f"model_{step}.pt", run)
    once, twice = _dead(_imported(str(tmp_path / "all"))), _dead(_imported(str(run)))
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
