"""PEFT LoRA adapters: one series per adapted module, on the update it makes, and the adapters that never trained.

Two real PEFT runs on a tiny Hugging Face Llama (built from a config, no
download), LoRA on ``q_proj`` and ``v_proj``:

* the HF Trainer saving ``checkpoint-10`` ... ``checkpoint-40`` (adapter_model.safetensors),
  with ``model.layers.0``'s adapters kept untrained (``requires_grad`` False:
  their B stays exactly zero): one ``inactive_adapter`` finding naming their
  lora_A and lora_B, the other adapters moving by exactly what the files imply;
* a plain loop calling ``save_pretrained(adapters/step-N, safe_serialization=False)``
  from step 0 on an adapter named ``sft`` (so PEFT writes ``adapters/step-N/sft/adapter_model.bin``),
  rsLoRA scaling and a per-module alpha: every adapter trains, no ``inactive_adapter``;
* the same loop saving, beside each adapter, the merged model (``merge_and_unload``):
  both are imported, and the merged ``q_proj.weight`` moves as its adapter's update does.

The oracle is numpy on the saved files: ``dW = s B A`` formed in full
(``32 x 32`` here), with ``s`` from the test's own LoRA config, never from
the import's reading of it.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import llama
from test_object_storage import BUCKET, checkpoints, client, import_contents, keys, s3, upload  # noqa: F401 (s3: a fixture)

from tb_stagnation import cli, engine, records
from tb_stagnation.checkpoints import imported as imports
from tb_stagnation.measure import exact_series
from tb_stagnation.sources import eventfile
from tb_stagnation.verdict.vocabulary import Kind, Role, Status

R, ALPHA, LR = 4, 8, 1e-3
TARGETS = ("q_proj", "v_proj")
TRAINER_STEPS = (10, 20, 30, 40)
LOOP_STEPS = (0, 5, 10, 15, 20)
NAMED = "sft"
RS_ALPHA, V_ALPHA = 16, 4  # the healthy run: rsLoRA (alpha / sqrt(r)), v_proj's alpha overridden by alpha_pattern


def module(block: int, target: str) -> str:
    return f"model.layers.{block}.self_attn.{target}"


def factors(block: int, target: str) -> tuple[str, str]:
    """lora_A and lora_B of one module, as PEFT's adapter files name them."""
    return tuple(f"base_model.model.{module(block, target)}.lora_{x}.weight" for x in "AB")


def data():
    import torch

    ids = torch.randperm(64 * 16, generator=torch.Generator().manual_seed(0)).remainder(256).reshape(64, 16)
    return [{"input_ids": row, "labels": row} for row in ids]


def import_checkpoints(root: Path) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["checkpoints", str(root)]) == 0, err.getvalue()
    return err.getvalue()


@pytest.fixture(scope="module")
def trainer_run(tmp_path_factory) -> tuple[Path, str]:
    """The HF Trainer run with block 0's adapters untrained, imported: (output directory, the import's report)."""
    from peft import LoraConfig, get_peft_model
    from transformers import Trainer, TrainingArguments

    root = tmp_path_factory.mktemp("lora_trainer")
    model = get_peft_model(llama(2), LoraConfig(r=R, lora_alpha=ALPHA, target_modules=list(TARGETS), lora_dropout=0.0))
    for name, parameter in model.named_parameters():
        if ".layers.0." in name and "lora_" in name:
            parameter.requires_grad_(False)
    args = TrainingArguments(
        output_dir=str(root), max_steps=TRAINER_STEPS[-1], per_device_train_batch_size=8, save_strategy="steps",
        save_steps=10, logging_steps=10, report_to=["tensorboard"], learning_rate=LR, lr_scheduler_type="constant",
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
    )
    Trainer(model=model, args=args, train_dataset=data()).train()
    return root, import_checkpoints(root)


def train_loop(root: Path, merged: bool) -> Path:
    """A plain loop training every adapter, saving at LOOP_STEPS into ``adapters/step-N`` and importing.

    ``merged``: save the merged model beside each (default) adapter (safetensors), else an adapter named
    ``sft`` alone as adapter_model.bin (in ``adapters/step-N/sft/``, as PEFT saves a named adapter).
    """
    import copy

    import torch
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=R, lora_alpha=RS_ALPHA, use_rslora=True, alpha_pattern={"v_proj": V_ALPHA},
                        target_modules=list(TARGETS), lora_dropout=0.0)
    model = get_peft_model(llama(2), config, adapter_name="default" if merged else NAMED)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=LR)
    batches = data()
    for step in range(LOOP_STEPS[-1] + 1):
        if step in LOOP_STEPS:
            folder = str(root / "adapters" / f"step-{step}")
            model.save_pretrained(folder, safe_serialization=merged)
            if merged:
                copy.deepcopy(model).merge_and_unload().save_pretrained(folder)
        if step == LOOP_STEPS[-1]:
            break
        batch = torch.stack([b["input_ids"] for b in batches[8 * (step % 8): 8 * (step % 8) + 8]])
        model(input_ids=batch, labels=batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    import_checkpoints(root)
    return root


@pytest.fixture(scope="module")
def loop_run(tmp_path_factory) -> Path:
    """Every adapter trained, saved by save_pretrained as adapter_model.bin at LOOP_STEPS, imported."""
    return train_loop(tmp_path_factory.mktemp("lora_loop"), merged=False)


@pytest.fixture(scope="module")
def trainer_outcome(trainer_run) -> engine.Outcome:
    return engine.analyse_logdir(str(trainer_run[0]))


def imported(root: Path) -> dict[str, exact_series.ExactSeries]:
    """param -> its checkpoint series, as the CLI reads them (the run's only one)."""
    (sources,) = exact_series.collect_exact(eventfile.read_logdir(str(root)).exact).values()
    return sources[records.CHECKPOINT]


def updates(files: list[dict[str, np.ndarray]], block: int, target: str, scale: float) -> list[np.ndarray]:
    """The oracle: ``s B A`` of one module at each checkpoint, formed in full in float64."""
    a_key, b_key = factors(block, target)
    return [scale * f[b_key].astype(np.float64) @ f[a_key].astype(np.float64) for f in files]


def expected(dw: list[np.ndarray], steps: tuple[int, ...]) -> tuple[list[float], list[float]]:
    """(change per step, update ratio per step) of each consecutive pair; NaN where ||dW_a|| = 0."""
    change = [np.linalg.norm(b - a) / (t - s) for a, b, s, t in zip(dw, dw[1:], steps, steps[1:])]
    ratio = [c / np.linalg.norm(a) if np.linalg.norm(a) > 0 else math.nan for c, a in zip(change, dw)]
    return change, ratio


def trainer_files(root: Path) -> list[dict[str, np.ndarray]]:
    from safetensors.numpy import load_file

    return [load_file(root / f"checkpoint-{s}" / "adapter_model.safetensors") for s in TRAINER_STEPS]


def test_untrained_adapters_are_one_finding_naming_their_lora_a_and_lora_b(trainer_run, trainer_outcome) -> None:
    files = trainer_files(trainer_run[0])
    assert all(not f[factors(0, t)[1]].any() for f in files for t in TARGETS)  # the premise: B still exactly 0
    inactive = [f for f in trainer_outcome.findings if f.kind == Kind.INACTIVE_ADAPTER]
    assert len(inactive) == 1
    assert inactive[0].tags == (*factors(0, "q_proj"), *factors(0, "v_proj"))
    assert inactive[0].message == (
        "the LoRA adapters on model.layers.0 q_proj and v_proj never changed over 4 checkpoints (steps 10-40); "
        "their B is still exactly zero, so they leave the model unchanged"
    )
    assert inactive[0].layers == (module(0, "q_proj"), module(0, "v_proj"))
    assert not [f for f in trainer_outcome.findings if f.kind == Kind.FROZEN]  # told once, as adapters


def test_each_adapter_is_one_row_and_an_untrained_one_scores_zero(trainer_run, trainer_outcome) -> None:
    rows = {r.tag: r for r in trainer_outcome.ranking.rows}
    assert set(rows) == {f"{module(b, t)}.lora" for b in (0, 1) for t in TARGETS}  # no lora_A, lora_B rows
    assert all(r.role == Role.ADAPTER and r.layer == r.tag.removesuffix(".lora") for r in rows.values())
    for target in TARGETS:
        assert rows[f"{module(0, target)}.lora"].status == Status.FROZEN
        assert rows[f"{module(0, target)}.lora"].score == 0.0  # zero movement, never "no figure"
        assert rows[f"{module(1, target)}.lora"].status == Status.MOVING
    assert "4 LoRA adapters measured on their update (lora_alpha / r) B A" in trainer_run[1]


def test_adapters_move_by_the_update_the_files_imply(trainer_run) -> None:
    series = imported(trainer_run[0])
    files = trainer_files(trainer_run[0])
    for block in (0, 1):
        for target in TARGETS:
            dw = updates(files, block, target, ALPHA / R)
            change, ratio = expected(dw, TRAINER_STEPS)
            got = series[f"{module(block, target)}.lora"]
            assert list(got.steps) == list(TRAINER_STEPS)
            np.testing.assert_allclose(got.change[1:], change, rtol=1e-9, atol=0)
            np.testing.assert_allclose(got.rms, [np.linalg.norm(d) / math.sqrt(d.size) for d in dw], rtol=1e-9)
            if block == 0:
                assert list(got.update_ratio[1:]) == [0.0] * 3  # B never moved: exactly zero, not undefined
            else:
                np.testing.assert_allclose(got.update_ratio[1:], ratio, rtol=1e-9, atol=0)
                assert min(ratio) > 0


def test_the_cli_ranks_adapters_and_names_the_inactive_ones(trainer_run) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main([str(trainer_run[0]), "--json"]) == 0
    body = json.loads(out.getvalue())
    scores = {r["tag"]: (r["role"], r["status"], r["score"]) for r in body["rows"]}
    assert scores[f"{module(0, 'q_proj')}.lora"] == ("adapter", "frozen", 0)
    assert scores[f"{module(1, 'v_proj')}.lora"][:2] == ("adapter", "moving")
    (finding,) = [f for f in body["findings"] if f["kind"] == "inactive_adapter"]
    assert finding["tags"] == [*factors(0, "q_proj"), *factors(0, "v_proj")]


def test_a_trained_lora_run_has_no_inactive_adapter(loop_run) -> None:
    outcome = engine.analyse_logdir(str(loop_run))
    assert not [f for f in outcome.findings if f.kind in (Kind.INACTIVE_ADAPTER, Kind.FROZEN)]
    assert {r.status for r in outcome.ranking.rows} == {Status.MOVING}
    assert len(outcome.ranking.rows) == 4


def test_rslora_and_alpha_pattern_scale_the_update_and_a_zero_start_has_no_ratio(loop_run) -> None:
    import torch

    series = imported(loop_run)
    files = [{k: v.numpy() for k, v in torch.load(loop_run / "adapters" / f"step-{s}" / NAMED / "adapter_model.bin",
                                                 weights_only=True).items()} for s in LOOP_STEPS]
    for target in TARGETS:
        scale = (V_ALPHA if target == "v_proj" else RS_ALPHA) / math.sqrt(R)
        for block in (0, 1):
            dw = updates(files, block, target, scale)
            change, ratio = expected(dw, LOOP_STEPS)
            got = series[f"{module(block, target)}.lora"]
            np.testing.assert_allclose(got.change[1:], change, rtol=1e-9, atol=0)
            assert math.isnan(got.update_ratio[1]) and got.change[1] > 0  # from B = 0 at step 0: a change, no ratio
            np.testing.assert_allclose(got.update_ratio[2:], ratio[1:], rtol=1e-9, atol=0)


def test_a_merged_model_beside_its_adapter_is_imported_with_it(tmp_path) -> None:
    """Both are measured: the model's tensors as any checkpoint's, the adapter as its rows.

    The merged weight is ``W0 + dW``, so its change between checkpoints is
    the adapter's (to float32 rounding of the stored weights).
    """
    series = imported(train_loop(tmp_path, merged=True))
    for target in TARGETS:
        weight, adapter = series[f"{module(1, target)}.weight"], series[f"{module(1, target)}.lora"]
        np.testing.assert_allclose(weight.change[1:], adapter.change[1:], rtol=1e-3)
        assert adapter.change[1] > 0
    assert not any(".lora_A" in name or ".lora_B" in name for name in series)
    assert series["model.layers.1.self_attn.k_proj.weight"].frozen  # not adapted: the base weight, unchanged


def test_adapters_in_a_bucket_import_as_they_do_from_disk(s3, trainer_run, tmp_path) -> None:  # noqa: F811
    """The Trainer's checkpoints in a real S3 API server (moto's, tests/test_object_storage.py): the same records."""
    import shutil

    copy = shutil.copytree(trainer_run[0], tmp_path / "run", ignore=shutil.ignore_patterns(f"*{imports.SUFFIX}"))
    url = upload(s3, copy, "lora")
    proc = checkpoints(url, env=s3)
    assert proc.returncode == 0, proc.stderr
    assert "4 LoRA adapters measured" in proc.stderr
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    for key in (k for k in keys(s3, "lora") if k.endswith(imports.SUFFIX)):
        client(s3).download_file(BUCKET, key, str(downloaded / key.rsplit("/", 1)[-1]))
    (local_run,) = (trainer_run[0] / "runs").iterdir()
    assert import_contents(downloaded) == import_contents(local_run)
