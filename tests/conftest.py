"""Shared fixtures: log directories written by real writers, real TensorBoard processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
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


@pytest.fixture(scope="session")
def writer_logs(tmp_path_factory) -> dict[str, Path]:
    """writer name -> log directory written by that writer (see tests/writers.py)."""
    root = tmp_path_factory.mktemp("writers")
    procs = {}
    for name in WRITER_NAMES:
        procs[name] = subprocess.Popen(
            [sys.executable, str(HERE / "writers.py"), name, str(root / name)],
            env=QUIET_ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"writer {name} failed:\n{out[-3000:]}"
    return {name: root / name for name in WRITER_NAMES}


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

    def __init__(self, logdir: Path | str, load_fast: bool, extra: list[str], path_prefix: str = "") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}{path_prefix}"  # the served root, prefix included
        self.log = open(Path(str(logdir)).parent / f"tensorboard-{self.port}.log", "w")
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
            env=QUIET_ENV,
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
    """Factory: ``start_tensorboard(logdir, load_fast=False, extra=None, path_prefix="")`` -> a ready :class:`TensorBoard`.

    Ready means the loader has read the whole log directory once and
    ``/data/plugins_listing`` lists the plugin as enabled. Every process is
    stopped at session end.
    """
    started: list[TensorBoard] = []

    def start(logdir, load_fast: bool = False, extra: list[str] | None = None, path_prefix: str = "") -> TensorBoard:
        tb = TensorBoard(logdir, load_fast, extra or [], path_prefix)
        started.append(tb)
        tb.wait_ready()
        return tb

    yield start
    for tb in started:
        tb.stop()
