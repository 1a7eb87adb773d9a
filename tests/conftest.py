"""Shared fixtures: log directories written by real writers, real TensorBoard processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

HERE = Path(__file__).parent
WRITER_NAMES = ("tf1", "tf2", "keras", "torch", "tensorboardx")
QUIET_ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
# ``tensorboard`` with its own logger at INFO, so that its loaders say when a load cycle
# ends (the Python loader "done reloading", the Rust data server, given ``--verbose`` by
# that level, "Finished load cycle"): a test starts only once every run has been read.
LOGGING_TENSORBOARD = (
    "import logging, sys; logging.getLogger('tensorboard').setLevel(logging.INFO); "
    "sys.argv[0] = 'tensorboard'; from tensorboard.main import run_main; run_main()"
)
LOADED = ("TensorBoard done reloading", "Finished load cycle")


def write_in_processes(script: Path, names: Sequence[str], root: Path) -> dict[str, Path]:
    """name -> ``root / name``, written by ``script name root/name``, every name in a process of its own at once.

    A framework per process: TensorFlow's graph mode and its import are global state.
    """
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(script), name, str(root / name)],
            env=QUIET_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for name in names
    }
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{script.name} {name} failed:\n{out[-3000:]}"
    return {name: root / name for name in names}


@pytest.fixture(scope="session")
def writer_logs(tmp_path_factory) -> dict[str, Path]:
    """writer name -> log directory written by that writer (see tests/writers.py)."""
    return write_in_processes(HERE / "writers.py", WRITER_NAMES, tmp_path_factory.mktemp("writers"))


# The demo at a reduced size: small enough for CI (about a minute of CPU), long enough that
# tiny_lr's biases have left their starting spike and the vanishing profile has formed.
DEMO_ARGS = ("--steps", "180", "--log-every", "20", "--exact-every", "20", "--seed", "0")


@pytest.fixture(scope="session")
def demo_logdir(tmp_path_factory) -> Path:
    """``demo/train.py``'s log directory (every run), trained once per session in a subprocess
    so that TensorFlow's global state never leaks into other tests."""
    path = tmp_path_factory.mktemp("demo")
    result = subprocess.run(
        [sys.executable, "demo/train.py", "--logdir", str(path), *DEMO_ARGS],
        cwd=HERE.parent, env={**QUIET_ENV, "PYTHONPATH": str(HERE.parent)},
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, f"demo/train.py failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return path


def tfrecords(payloads: list[bytes]) -> bytes:
    """TFRecord framing of ``payloads``, by TensorBoard's TF-free RecordWriter."""
    import io

    from tensorboard.summary.writer.record_writer import RecordWriter

    buf = io.BytesIO()
    writer = RecordWriter(buf)
    for payload in payloads:
        writer.write(payload)
    return buf.getvalue()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get_json(url: str) -> tuple[int, dict | list, str]:
    """(status, parsed JSON body, content type) of a GET, errors included."""
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, json.loads(r.read()), r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read()), e.headers.get("Content-Type", "")


class TensorBoard:
    """A real ``tensorboard`` process serving a log directory with the plugin."""

    def __init__(
        self, logdir: Path | str, load_fast: bool, extra: list[str], path_prefix: str = "", env: dict[str, str] | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path_prefix}"  # the served root, prefix included
        beside = Path(tempfile.mkdtemp()) if "://" in str(logdir) else Path(str(logdir)).parent  # a bucket: no parent here
        self.log = open(beside / f"tensorboard-{self.port}.log", "w")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-c", LOGGING_TENSORBOARD,
                "--logdir", str(logdir),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--load_fast", "true" if load_fast else "false",
                "--reload_interval", "1",
                *(["--path_prefix", path_prefix] if path_prefix else []),
                *extra,
            ],
            env=env or QUIET_ENV,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited with {self.proc.returncode}; see {self.log.name}")
            try:
                status, listing, _ = get_json(self.url + "/data/plugins_listing")
                if status == 200 and listing.get("stagnation", {}).get("enabled") and self.loaded():
                    return
            except (OSError, ValueError):
                pass
            time.sleep(0.5)
        raise TimeoutError(f"tensorboard on {self.url} did not load its log directory and list the plugin as enabled")

    def loaded(self) -> bool:
        """Whether the loader has finished its first pass over the log directory."""
        text = Path(self.log.name).read_text(errors="replace")
        return any(marker in text for marker in LOADED)

    def plugin(self, route: str) -> tuple[int, dict | list, str]:
        return get_json(f"{self.url}/data/plugin/stagnation/{route}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="session")
def start_tensorboard() -> Iterator[Callable[..., TensorBoard]]:
    """Factory: ``start_tensorboard(logdir, load_fast=False, extra=None, path_prefix="", env=None)`` -> a ready :class:`TensorBoard`.

    Ready means the loader has read the whole log directory once and
    ``/data/plugins_listing`` lists the plugin as enabled. Every process is
    stopped at session end.
    """
    started: list[TensorBoard] = []

    def start(
        logdir, load_fast: bool = False, extra: list[str] | None = None, path_prefix: str = "", env: dict[str, str] | None = None
    ) -> TensorBoard:
        tb = TensorBoard(logdir, load_fast, extra or [], path_prefix, env)
        started.append(tb)
        tb.wait_ready()
        return tb

    yield start
    for tb in started:
        tb.stop()


# A tiny Llama (HF Trainer, checkpoints imported), for the block tests and the tab's heatmap.
LAYERS, FROZEN_BLOCKS, LR = 4, (0, 1), 1e-3


def llama(layers: int):
    """A tiny Llama built from its config (no download); torch is imported by the tests that train."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
        num_key_value_heads=4, vocab_size=256, max_position_embeddings=64,
    )
    return LlamaForCausalLM(config)


def train_and_import(root: Path, model, groups: list[dict]) -> Path:
    """60 steps of the HF Trainer on the CPU (AdamW over ``groups``), checkpoints every 10, then the import."""
    import contextlib
    import io

    import torch
    from transformers import Trainer, TrainingArguments

    from tb_stagnation import cli

    optimizer = torch.optim.AdamW(groups, weight_decay=0.0)
    # Every token id occurs, so that no embedding row is left untrained.
    ids = torch.randperm(64 * 16, generator=torch.Generator().manual_seed(0)).remainder(256).reshape(64, 16)
    dataset = [{"input_ids": row, "labels": row} for row in ids]
    args = TrainingArguments(
        output_dir=str(root), max_steps=60, per_device_train_batch_size=8, save_strategy="steps", save_steps=10,
        logging_steps=10, report_to=["tensorboard"], learning_rate=LR, lr_scheduler_type="constant",
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
    )
    Trainer(model=model, args=args, train_dataset=dataset, optimizers=(optimizer, None)).train()
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert cli.main(["checkpoints", str(root)]) == 0, err.getvalue()
    return root


@pytest.fixture(scope="session")
def llama_blocks(tmp_path_factory) -> Path:
    """A tiny Llama trained by the HF Trainer, checkpoints imported (tests/test_blocks.py tells its story):
    blocks 0-1 frozen, block 2's norms frozen and the rest of it at 1e-5 x the learning rate, block 3's MLP frozen.

    A Trainer output directory (checkpoint-10 ... checkpoint-60, runs/); shared by the block tests and the tab's heatmap test.
    """
    model = llama(LAYERS)
    for index in FROZEN_BLOCKS:
        model.model.layers[index].requires_grad_(False)
    slow = model.model.layers[2]
    slow.input_layernorm.requires_grad_(False)
    slow.post_attention_layernorm.requires_grad_(False)
    model.model.layers[3].mlp.requires_grad_(False)
    slow_ids = {id(p) for p in slow.parameters()}
    groups = [
        {"params": [p for p in model.parameters() if p.requires_grad and id(p) not in slow_ids], "lr": LR},
        {"params": [p for p in slow.parameters() if p.requires_grad], "lr": LR * 1e-5},
    ]
    return train_and_import(tmp_path_factory.mktemp("llama"), model, groups)
