"""One-line exact movement for PyTorch Lightning and the Hugging Face Trainer, on real (tiny, CPU) training.

The network of tests/integrations_models.py has one layer trained at the
learning rate on each side of a frozen one and a slow one (1e-5 x the rate,
its own parameter group). Every logged value is read back from the event
files and compared with one computed here, with numpy, from weights and
gradients a second callback saves independently; statuses come from the
public ranking (``tb_stagnation.engine.analyse_logdir``) and, once, from a live
TensorBoard.
"""

from __future__ import annotations

import os

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import collections
import dataclasses
import importlib.metadata
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from conftest import free_port
from integrations_models import LitNet, Net, TrainsNet, examples, loader, optimizer
from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader
from tensorboard.util import tensor_util
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.integrations import TensorBoardCallback

from tb_stagnation import engine, records
from tb_stagnation.integrations.movement import ParameterMovement
from tb_stagnation.integrations import lightning as lightning_integration
from tb_stagnation.integrations import transformers as hf_integration
from tb_stagnation.summary import TorchArrayOps
from tb_stagnation.verdict.vocabulary import Source, Status

HERE = Path(__file__).parent
EVERY, STEPS = 5, 20
SNAPSHOTS = list(range(0, STEPS + 1, EVERY))
RTOL = 1e-5
LAYERS = {"fast": Status.MOVING, "out": Status.MOVING, "slow": Status.STAGNANT, "frozen": Status.FROZEN}
QUIET_ENV = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "TF_CPP_MIN_LOG_LEVEL": "2"}

# ------------------------------------------------------------------------------ reading


@dataclasses.dataclass
class Logged:
    """Everything in the event files under one directory, every point kept (duplicates too)."""

    files: list[Path]
    exact: dict[tuple[str, str], list[tuple[int, float]]]  # (param, quantity) -> [(step, value)]
    histograms: dict[str, list[int]]  # tag -> steps
    scalars: set[str]  # tags of the framework's own scalars

    def series(self, param: str, quantity: str) -> tuple[list[int], np.ndarray]:
        points = self.exact.get((param, quantity), [])
        return [step for step, _ in points], np.array([value for _, value in points])

    def params(self) -> set[str]:
        return {param for param, _ in self.exact}


def read(logdir: Path) -> Logged:
    """Raw events (TensorBoard's own loader, no migration), so nothing is merged or deduplicated."""
    files = sorted(logdir.rglob("events.out.tfevents.*"))
    logged = Logged(files, collections.defaultdict(list), collections.defaultdict(list), set())
    for path in logged.files:
        contents = {}  # tag -> its records' content (the metadata is on a tag's first record)
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == records.PLUGIN_NAME:
                    contents[value.tag] = records.parse_plugin_metadata(value.metadata.plugin_data.content)
                if value.tag in contents:
                    content = contents[value.tag]
                    if content.units is not None:  # per-unit records: tests/test_units.py reads them
                        continue
                    _, quantities = records.read_record(content, tensor_util.make_ndarray(value.tensor))
                    for quantity, number in quantities.items():
                        logged.exact[(content.param, quantity)].append((event.step, number))
                elif value.HasField("histo"):
                    logged.histograms[value.tag].append(event.step)
                elif value.HasField("simple_value"):
                    logged.scalars.add(value.tag)
    return logged


def statuses(logdir: Path) -> dict[str, str]:
    """tag -> status through the public ranking (what `tb-stagnation LOGDIR` prints)."""
    outcome = engine.analyse_logdir(str(logdir))
    result = outcome.ranking
    assert not outcome.skipped
    return {row.tag: row.status for row in result.rows}


def expected_statuses(prefix: str = "") -> dict[str, str]:
    return {f"{prefix}{layer}.{kind}": status for layer, status in LAYERS.items() for kind in ("weight", "bias")}


# ------------------------------------------------------------------ independent record


class Record:
    """Weights at the snapshot steps and gradient norms of the steps that end on one, saved with numpy."""

    def __init__(self) -> None:
        self.weights: dict[int, dict[str, np.ndarray]] = {}
        self.grad_norms: dict[int, dict[str, float]] = {}

    def save_weights(self, step: int, module: torch.nn.Module) -> None:
        if step % EVERY == 0:
            self.weights[step] = {n: p.detach().numpy().astype(np.float64) for n, p in module.named_parameters()}

    def save_grad_norms(self, next_step: int, module: torch.nn.Module) -> None:
        if next_step % EVERY == 0:
            self.grad_norms[next_step] = {
                n: float(np.linalg.norm(p.grad.numpy().astype(np.float64)))
                for n, p in module.named_parameters()
                if p.grad is not None
            }


def ratio(before: np.ndarray, after: np.ndarray, steps: int) -> float:
    """||after - before|| / ||before|| / steps (against ||after|| when ||before|| == 0)."""
    base = np.linalg.norm(before) or np.linalg.norm(after)
    return 0.0 if base == 0 else float(np.linalg.norm(after - before) / base / steps)


def assert_logged_as_recorded(logged: Logged, record: Record) -> None:
    """One point per snapshot after the first, each equal to numpy's on the recorded weights and gradients."""
    steps = sorted(record.weights)
    assert steps == SNAPSHOTS
    assert logged.params() == set(record.weights[0])
    for name in record.weights[0]:
        for quantity in (records.UPDATE_RATIO, records.PARAM_RMS):
            assert logged.series(name, quantity)[0] == steps[1:], (name, quantity)
        ratios = [ratio(record.weights[a][name], record.weights[b][name], b - a) for a, b in zip(steps, steps[1:])]
        np.testing.assert_allclose(logged.series(name, records.UPDATE_RATIO)[1], ratios, rtol=RTOL, err_msg=name)
        rms = [np.sqrt(np.mean(record.weights[b][name] ** 2)) for b in steps[1:]]
        np.testing.assert_allclose(logged.series(name, records.PARAM_RMS)[1], rms, rtol=RTOL, err_msg=name)
        grad_steps, grad_norms = logged.series(name, records.GRAD_NORM)
        if name.split(".")[-2] == "frozen":
            assert logged.series(name, records.UPDATE_RATIO)[1].tolist() == [0.0] * len(steps[1:])
            assert grad_steps == []  # no gradient, no point
        else:
            assert grad_steps == steps[1:]
            np.testing.assert_allclose(grad_norms, [record.grad_norms[s][name] for s in steps[1:]], rtol=RTOL)


# ----------------------------------------------------------------------------- Lightning


class LightningRecord(pl.Callback, Record):
    def __init__(self) -> None:
        pl.Callback.__init__(self)
        Record.__init__(self)

    def on_train_start(self, trainer, pl_module) -> None:
        self.save_weights(trainer.global_step, pl_module)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        self.save_grad_norms(trainer.global_step + 1, pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step not in self.weights:  # with gradient accumulation, a step spans batches
            self.save_weights(trainer.global_step, pl_module)


def lightning_trainer(root: Path, *callbacks: pl.Callback, **kwargs) -> pl.Trainer:
    return pl.Trainer(
        default_root_dir=root,
        accelerator="cpu",
        max_steps=STEPS,
        callbacks=list(callbacks),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        log_every_n_steps=EVERY,
        **kwargs,
    )


def test_lightning_fit_logs_exact_movement_into_the_loggers_event_file(tmp_path: Path) -> None:
    record = LightningRecord()
    trainer = lightning_trainer(tmp_path, lightning_integration.UpdateRatioCallback(every=EVERY), record)
    trainer.fit(LitNet(), loader())

    run_dir = Path(trainer.logger.log_dir)
    logged = read(run_dir)
    assert len(logged.files) == 1 and "loss" in logged.scalars  # the logger's own file, shared
    assert read(tmp_path).files == logged.files
    assert_logged_as_recorded(logged, record)
    assert logged.histograms == {}  # off by default: Lightning users log their own
    assert statuses(tmp_path) == expected_statuses("net.")


def test_lightning_snapshots_follow_optimizer_steps_and_add_histograms(tmp_path: Path) -> None:
    record = LightningRecord()
    callback = lightning_integration.UpdateRatioCallback(every=EVERY, log_histograms=True, snapshot_device="cpu")
    trainer = lightning_trainer(tmp_path, callback, record, accumulate_grad_batches=2)  # 40 batches, 20 steps
    trainer.fit(LitNet(), loader())

    logged = read(tmp_path)
    assert_logged_as_recorded(logged, record)
    assert logged.histograms == {name: SNAPSHOTS for name in record.weights[0]}  # parameter names, step 0 on
    rows = {row.tag: row for row in engine.analyse_logdir(str(tmp_path)).ranking.rows}
    assert {tag: row.status for tag, row in rows.items()} == expected_statuses("net.")
    assert all(row.source == Source.EXACT and np.isfinite(row.histogram_score) for row in rows.values())


def test_lightning_without_a_tensorboard_logger_fails_before_training(tmp_path: Path) -> None:
    callback = lightning_integration.UpdateRatioCallback(every=EVERY)
    with pytest.raises(ValueError, match="TensorBoardLogger"):
        lightning_trainer(tmp_path, callback, logger=pl.loggers.CSVLogger(tmp_path)).fit(LitNet(), loader())
    assert not list(tmp_path.rglob("events.out.tfevents.*"))


def test_pytorch_lightning_trainer_takes_the_callback(tmp_path: Path) -> None:
    import pytorch_lightning

    class PLNet(TrainsNet, pytorch_lightning.LightningModule):
        pass

    trainer = pytorch_lightning.Trainer(
        default_root_dir=tmp_path, accelerator="cpu", max_steps=EVERY, enable_progress_bar=False,
        enable_checkpointing=False, callbacks=[lightning_integration.UpdateRatioCallback(every=EVERY)],
    )
    trainer.fit(PLNet(), loader())
    assert read(Path(trainer.logger.log_dir)).series("net.fast.weight", records.UPDATE_RATIO)[0] == [EVERY]


# ----------------------------------------------------------------------- Hugging Face


class HFRecord(TrainerCallback, Record):
    def __init__(self) -> None:
        Record.__init__(self)

    def on_train_begin(self, args, state, control, model=None, **kwargs) -> None:
        self.save_weights(state.global_step, model)

    def on_optimizer_step(self, args, state, control, model=None, **kwargs) -> None:
        self.save_grad_norms(state.global_step + 1, model)

    def on_step_end(self, args, state, control, model=None, **kwargs) -> None:
        self.save_weights(state.global_step, model)


def hf_trainer(output_dir: Path, *callbacks: TrainerCallback, report_to: str = "none") -> Trainer:
    net = Net()
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=STEPS,
        per_device_train_batch_size=8,
        use_cpu=True,
        report_to=report_to,
        save_strategy="no",
        logging_steps=EVERY,
        disable_tqdm=True,
        lr_scheduler_type="constant",
    )
    return Trainer(
        model=net, args=args, train_dataset=examples(), optimizers=(optimizer(net), None),
        callbacks=list(callbacks),
    )


def test_hf_trainer_logs_exact_movement_and_histograms_into_the_tensorboard_callbacks_file(
    tmp_path: Path, start_tensorboard
) -> None:
    record = HFRecord()
    callback = hf_integration.UpdateRatioCallback(every=EVERY)
    trainer = hf_trainer(tmp_path, callback, record, report_to="tensorboard")
    trainer.train()

    logged = read(tmp_path)
    (run_dir,) = {path.parent for path in logged.files}
    assert len(logged.files) == 1 and "train/loss" in logged.scalars  # the TensorBoardCallback's own file
    assert run_dir.parent == tmp_path / "runs" and run_dir.name.endswith(os.uname().nodename)  # <time>_<host>
    assert_logged_as_recorded(logged, record)
    assert logged.histograms == {name: SNAPSHOTS for name in record.weights[0]}  # on by default
    assert statuses(tmp_path) == expected_statuses()

    board = start_tensorboard(tmp_path)
    status, body, _ = board.plugin("ranking")
    assert status == 200
    assert {row["tag"]: row["status"] for row in body["rows"]} == expected_statuses()


def test_hf_trainer_reporting_to_nothing_gets_a_writer_of_its_own(tmp_path: Path) -> None:
    # transformers 5: report_to defaults to "none", so there is no TensorBoardCallback to share.
    hf_trainer(tmp_path / "default", hf_integration.UpdateRatioCallback(every=EVERY)).train()
    explicit_callback = hf_integration.UpdateRatioCallback(every=EVERY, log_dir=tmp_path / "mine")
    hf_trainer(tmp_path / "explicit", explicit_callback).train()

    (default,) = read(tmp_path / "default").files
    assert default.parent.parent == tmp_path / "default" / "runs"  # where the TensorBoardCallback would write
    assert statuses(tmp_path / "default") == expected_statuses()
    (explicit,) = read(tmp_path / "mine").files
    assert explicit.parent == tmp_path / "mine" and not (tmp_path / "explicit" / "runs").exists()


def test_hf_callback_before_the_tensorboard_callback_warns_and_still_logs(tmp_path: Path) -> None:
    trainer = hf_trainer(tmp_path, hf_integration.UpdateRatioCallback(every=EVERY), TensorBoardCallback())
    with pytest.warns(UserWarning, match="put it after"):
        trainer.train()
    assert statuses(tmp_path) == expected_statuses()


# --------------------------------------------------------------------------- distributed


def run_distributed(mode: str, logdir: Path) -> str:
    """Run tests/integrations_distributed.py in its own 2 processes; return their output."""
    script = str(HERE / "integrations_distributed.py")
    if mode == "hf-ddp":
        launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
        launcher += ["--master_port", str(free_port())]
    else:
        launcher = [sys.executable]  # Lightning launches rank 1 itself
    proc = subprocess.run(
        [*launcher, script, mode, str(logdir)], env=QUIET_ENV, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    return proc.stdout + proc.stderr


def assert_one_set_of_points(logged: Logged, params: set[str]) -> None:
    assert len(logged.files) == 1
    assert logged.params() == params
    for (param, quantity), points in logged.exact.items():
        assert [step for step, _ in points] == SNAPSHOTS[1:], (param, quantity)  # once each: rank 0 only


@pytest.mark.parametrize("mode", ["lightning-ddp", "hf-ddp"])
def test_ddp_on_two_processes_writes_one_set_of_points(tmp_path: Path, mode: str) -> None:
    run_distributed(mode, tmp_path)
    logged = read(tmp_path)
    prefix = "net." if mode.startswith("lightning") else ""
    assert_one_set_of_points(logged, set(expected_statuses(prefix)))
    assert statuses(tmp_path) == expected_statuses(prefix)


def test_fsdp_sharded_parameters_are_skipped_with_a_warning(tmp_path: Path) -> None:
    output = run_distributed("lightning-fsdp", tmp_path)  # FSDP2: net.fast's parameters are DTensor shards
    assert "2 of 8 parameters are sharded" in output and "net.fast.weight, net.fast.bias" in output
    assert "Trainer.fit` stopped: `max_steps=20` reached" in output
    expected = {tag: s for tag, s in expected_statuses("net.").items() if not tag.startswith("net.fast.")}
    assert_one_set_of_points(read(tmp_path), set(expected))
    assert statuses(tmp_path) == expected


# ------------------------------------------------------------------- snapshot machinery


def test_torch_norms_are_float64_chunked_and_leave_the_snapshot_alone() -> None:
    ops = TorchArrayOps("cpu")
    ops.NORM_CHUNK = 7  # several chunks and a ragged last one
    generator = torch.Generator().manual_seed(0)
    before = torch.randn(5, 9, dtype=torch.float64, generator=generator)
    after = before + 1e-9 * torch.randn(5, 9, dtype=torch.float64, generator=generator)
    kept = after.clone()
    assert ops.distance(after, before) == pytest.approx(np.linalg.norm(after.numpy() - before.numpy()), rel=1e-12)
    assert torch.equal(after, kept)  # float64 chunks are views: the difference must not be taken in place
    assert ops.norm(before) == pytest.approx(np.linalg.norm(before.numpy()), rel=1e-12)
    half = before.to(torch.bfloat16)
    assert ops.norm(half) == pytest.approx(np.linalg.norm(half.float().numpy().astype(np.float64)), rel=1e-12)
    copy = ops.copy(before.t())
    assert copy.is_contiguous() and copy.data_ptr() != before.data_ptr() and torch.equal(copy, before.t())


def test_sparse_gradients_are_measured_by_their_values(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    embedding = torch.nn.Embedding(10, 4, sparse=True)
    sgd = torch.optim.SGD(embedding.parameters(), lr=0.1)
    movement = ParameterMovement(embedding.named_parameters(), every=1)
    with SummaryWriter(tmp_path) as writer:
        movement.log(0, writer)
        embedding(torch.tensor([1, 3, 3])).sum().backward()
        dense = float(np.linalg.norm(embedding.weight.grad.to_dense().numpy().astype(np.float64)))
        movement.record_gradients(1)
        sgd.step()
        movement.log(1, writer)
    steps, grad_norms = read(tmp_path).series("weight", records.GRAD_NORM)
    assert steps == [1]
    np.testing.assert_allclose(grad_norms, [dense], rtol=RTOL)


def test_installing_or_importing_the_plugin_pulls_no_framework() -> None:
    unconditional = [r for r in importlib.metadata.requires("tb-stagnation") or [] if "extra ==" not in r]
    frameworks = ("torch", "lightning", "pytorch-lightning", "transformers", "accelerate")
    assert not [r for r in unconditional if r.split(">")[0].split("=")[0].strip() in frameworks]
    code = (
        "import sys, tb_stagnation.plugin, tb_stagnation.cli, tb_stagnation.summary, tb_stagnation.integrations\n"
        "loaded = [m for m in ('torch', 'lightning', 'pytorch_lightning', 'transformers', 'accelerate')"
        " if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=HERE.parent, env=QUIET_ENV)
