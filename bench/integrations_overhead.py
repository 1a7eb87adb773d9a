"""Training-time overhead of the Lightning and HF ``UpdateRatioCallback`` on a small CNN (CPU, random data).

For each framework, trains the same model with and without the callback
(``every`` = 100 by default, each callback's own defaults otherwise:
histograms off for Lightning, on for the HF Trainer), alternating the two so
drifting machine load hits both alike, and prints side by side the best and
median time of the training loop (``on_train_start`` to ``on_train_end``,
so the Trainer's set-up is left out), their ratios, and the time spent inside
the callback's hooks (the direct measure: on a shared machine the wall-time
ratio is dominated by noise). Both runs of a pair log to TensorBoard the
same way (Lightning's default logger; the HF Trainer with
``report_to="tensorboard"``), so only the callback differs. One torch thread
by default: on a busy 2-core machine two threads spin against the other load
and a step takes 10x longer, at random.

    python bench/integrations_overhead.py [--steps 300] [--every 100] [--repeats 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
import time
from collections.abc import Callable

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import lightning.pytorch as pl  # noqa: E402
import torch  # noqa: E402
from transformers import Trainer, TrainerCallback, TrainingArguments  # noqa: E402
from transformers.trainer_callback import PrinterCallback  # noqa: E402
from transformers.utils import logging as hf_logging  # noqa: E402

from tb_stagnation.integrations import lightning as lightning_integration  # noqa: E402
from tb_stagnation.integrations import transformers as hf_integration  # noqa: E402

BATCH = 16


class FiveConvCNN(torch.nn.Module):
    """Five 3x3 convolutions (8-32 filters) on 3x32x32 inputs, a 10-way classifier: bench/exact_overhead.py's."""

    def __init__(self) -> None:
        super().__init__()
        nn = torch.nn
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.head = torch.nn.Linear(32, 10)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        logits = self.head(self.features(x))
        loss = None if labels is None else torch.nn.functional.cross_entropy(logits, labels)
        return {"loss": loss, "logits": logits}


def sgd(model: torch.nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)


def random_data(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    n = steps * BATCH
    return torch.randn(n, 3, 32, 32, generator=generator), torch.randint(0, 10, (n,), generator=generator)


def timed(callback_class: type) -> type:
    """``callback_class`` with the time spent in its training hooks summed in ``.spent``."""
    hooks = [name for name in vars(callback_class) if name.startswith("on_")]

    def wrap(name: str) -> Callable:
        hook = getattr(callback_class, name)

        def timed_hook(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return hook(self, *args, **kwargs)
            finally:
                self.spent += time.perf_counter() - start

        return timed_hook

    namespace = {"spent": 0.0, **{hook: wrap(hook) for hook in hooks}}
    return type(f"Timed{callback_class.__name__}", (callback_class,), namespace)


# ----------------------------------------------------------------------------- Lightning


class LitCNN(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.model = FiveConvCNN()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        loss = self.model(*batch)["loss"]
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return sgd(self.model)


class LightningLoopTimer(pl.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, trainer, pl_module) -> None:
        self.seconds = time.perf_counter() - self.start


def lightning_run(logdir: str, data, steps: int, callback: pl.Callback | None) -> float:
    """Seconds of one training loop of ``steps`` optimizer steps."""
    timer = LightningLoopTimer()
    trainer = pl.Trainer(
        default_root_dir=logdir, accelerator="cpu", max_steps=steps,
        callbacks=[timer, *([callback] if callback else [])],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*data), batch_size=BATCH)
    trainer.fit(LitCNN(), loader)
    return timer.seconds


# --------------------------------------------------------------------------- HF Trainer


class HFLoopTimer(TrainerCallback):
    def on_train_begin(self, args, state, control, **kwargs) -> None:
        self.start = time.perf_counter()

    def on_train_end(self, args, state, control, **kwargs) -> None:
        self.seconds = time.perf_counter() - self.start


def hf_run(logdir: str, data, steps: int, callback: TrainerCallback | None) -> float:
    """Seconds of one training loop of ``steps`` optimizer steps."""
    torch.manual_seed(0)
    model = FiveConvCNN()
    args = TrainingArguments(
        output_dir=logdir, max_steps=steps, per_device_train_batch_size=BATCH, use_cpu=True,
        report_to="tensorboard", save_strategy="no", logging_steps=50, disable_tqdm=True,
        dataloader_num_workers=0,
    )
    timer = HFLoopTimer()
    examples = [{"x": x, "labels": y} for x, y in zip(*data)]
    trainer = Trainer(
        model=model, args=args, train_dataset=examples, optimizers=(sgd(model), None),
        callbacks=[timer, *([callback] if callback else [])],
    )
    trainer.remove_callback(PrinterCallback)  # its log lines would interleave with the figures
    trainer.train()
    return timer.seconds


# ----------------------------------------------------------------------------------- main


def compare(label: str, run: Callable, make_callback: Callable, args: argparse.Namespace, data) -> None:
    """Alternate runs without and with the callback; print their times side by side."""
    with tempfile.TemporaryDirectory() as logdir:
        run(logdir, data, 20, None)  # warm up: first-use imports, allocator, thread pool
        plain, tracked, inside = [], [], []
        for _ in range(args.repeats):
            plain.append(run(logdir, data, args.steps, None))
            callback = make_callback()
            tracked.append(run(logdir, data, args.steps, callback))
            inside.append(callback.spent)
    spent = statistics.median(inside)
    print(f"{label}")
    for name, times in (("without callback", plain), ("with callback", tracked)):
        print(f"  {name:17s} min {min(times):.3f} s ({1e3 * min(times) / args.steps:.2f} ms/step), "
              f"median {statistics.median(times):.3f} s")
    print(f"  ratio with/without: min {min(tracked) / min(plain):.4f}, "
          f"median {statistics.median(tracked) / statistics.median(plain):.4f}")
    print(f"  inside the callback's hooks ({args.steps // args.every + 1} snapshots, the first only stores): "
          f"{1e3 * spent:.1f} ms per run = {100 * spent / min(plain):.2f}% of the fastest run without")
    print(f"  all runs (s): without {[round(t, 3) for t in plain]}, with {[round(t, 3) for t in tracked]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)

    hf_logging.set_verbosity_error()
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    data = random_data(args.steps)
    model = FiveConvCNN()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: 5-conv CNN, {n_params} parameters in {len(list(model.parameters()))} tensors, batch {BATCH}, "
          f"CPU, {torch.get_num_threads()} torch threads")
    print(f"steps: {args.steps}, every: {args.every}, repeats: {args.repeats}, alternating; "
          f"time of the training loop, set-up excluded")
    lightning_callback = timed(lightning_integration.UpdateRatioCallback)
    hf_callback = timed(hf_integration.UpdateRatioCallback)
    compare("Lightning UpdateRatioCallback (log_histograms=False, its default)", lightning_run,
            lambda: lightning_callback(every=args.every), args, data)
    compare("HF Trainer UpdateRatioCallback (log_histograms=True, its default)", hf_run,
            lambda: hf_callback(every=args.every), args, data)


if __name__ == "__main__":
    main()
