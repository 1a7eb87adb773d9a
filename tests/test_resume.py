"""A killed checkpoint import loses at most the checkpoint in progress; a re-run resumes after the last whole one.

A real PyTorch loop keeps a long series of checkpoints (``torch.save`` of
the state dict every step) of a model large enough that its import takes
seconds; ``tb-stagnation checkpoints`` runs as its own process and is sent
SIGKILL once its event file holds some checkpoints and before it holds them
all. The re-run must leave exactly the records of an import never
interrupted: the same steps and values, each once. The same holds for an
import from and into a bucket (a real local S3 API server): the bucket
itself must hold each checkpoint once it is finished, since a killed import
leaves nothing else behind.
"""

from __future__ import annotations

import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import botocore.exceptions
import numpy as np
import pytest
from conftest import QUIET_ENV
from test_checkpoints import imported_series
from test_object_storage import BUCKET, client, s3, upload  # noqa: F401 (s3: the server fixture)

from tb_stagnation.checkpoints import imported
from tb_stagnation.sources import tfrecord

CHECKPOINTS = 40
KILL_AT = 4  # checkpoints written when the import is killed (it takes about 0.1 s per checkpoint)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    """A directory of CHECKPOINTS ``model_<step>.pt`` files from a real training loop (read-only use)."""
    import torch
    from torch import nn

    root = tmp_path_factory.mktemp("resume")
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(512, 1024), nn.Tanh(), nn.Linear(1024, 1024), nn.Tanh(), nn.Linear(1024, 8))
    model[2].requires_grad_(False)  # one frozen layer, so some units never move
    optimizer = torch.optim.Adam((p for p in model.parameters() if p.requires_grad), lr=1e-3)
    x, y = torch.randn(64, 512), torch.randn(64, 8)
    for step in range(CHECKPOINTS):
        torch.save(model.state_dict(), root / f"model_{step * 10}.pt")
        loss = ((model(x) - y) ** 2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return root


@pytest.fixture(scope="module")
def uninterrupted(series, tmp_path_factory) -> Path:
    """The series imported in one go."""
    directory = Path(shutil.copytree(series, tmp_path_factory.mktemp("whole") / "run"))
    assert _cli(directory).returncode == 0
    return directory


def _cli(source: Path | str, *options: str, env: dict[str, str] = QUIET_ENV, **popen) -> subprocess.Popen | subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tb_stagnation.cli", "checkpoints", str(source), "--quiet", *options]
    if popen:
        return subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, **popen)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _written(directory: Path) -> int:
    """Checkpoints whose event is whole in the import files so far."""
    return len(imported.imported(str(directory)).steps)


def _events(directory: Path) -> int:
    """Whole events in the import files of ``directory`` (counted by their framing: fast)."""
    return sum(len(tfrecord.records(path)[0]) - 1 for path in imported.files(str(directory)))  # - the header


def _kill_once_written(
    proc: subprocess.Popen, directory: Path, at: int = KILL_AT, fetch: Callable[[], object] = lambda: None,
    every: float = 0.01,
) -> None:
    """SIGKILL ``proc`` once the import files in ``directory`` (after ``fetch()`` brings them there) hold
    ``at`` whole events, looking ``every`` seconds; an import that ends first is left ended, which the
    caller's asserts catch."""
    try:
        while proc.poll() is None:
            fetch()
            if _events(directory) >= at:
                break
            time.sleep(every)
        proc.send_signal(signal.SIGKILL)  # nothing once it has ended (its pid may be another's by then)
    finally:
        proc.wait(timeout=60)


def _records(directory: Path) -> collections.Counter:
    """(tag, step) of every whole record in the import files, counted: a point written twice counts 2."""
    from tensorboard.compat.proto import event_pb2

    found = collections.Counter()
    for path in imported.files(str(directory)):
        for payload in tfrecord.records(path)[0]:
            event = event_pb2.Event.FromString(payload)
            found.update((value.tag, event.step) for value in event.summary.value)
    return found


def _assert_same_import(directory: Path, uninterrupted: Path) -> None:
    assert _records(directory) == _records(uninterrupted)  # the same points, none lost, none twice
    assert max(_records(directory).values()) == 1
    whole, resumed = imported_series(uninterrupted)["."], imported_series(directory)["."]
    assert resumed.keys() == whole.keys()
    for param, s in whole.items():
        assert resumed[param].steps.tolist() == s.steps.tolist() == [10 * i for i in range(CHECKPOINTS)]
        for quantity in ("rms", "update_ratio", "change", "cosine", "units"):
            np.testing.assert_array_equal(getattr(resumed[param], quantity), getattr(s, quantity), err_msg=param)
    assert imported.imported(str(directory)).records == imported.imported(str(uninterrupted)).records


def _assert_resumes(directory: Path, uninterrupted: Path, *options: str, env: dict[str, str] = QUIET_ENV) -> None:
    """The killed import kept what it finished, and a re-run imports the rest only, to the uninterrupted records."""
    kept = _written(directory)
    assert KILL_AT <= kept < CHECKPOINTS  # killed halfway, what was finished kept
    rerun = _cli(directory, *options, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"imported {CHECKPOINTS - kept} checkpoint(s)" in rerun.stderr
    _assert_same_import(directory, uninterrupted)


def test_an_import_killed_halfway_resumes_to_the_uninterrupted_records(series, uninterrupted, tmp_path) -> None:
    directory = Path(shutil.copytree(series, tmp_path / "run"))
    proc = _cli(directory, stdout=subprocess.DEVNULL)
    _kill_once_written(proc, directory)
    assert proc.returncode == -signal.SIGKILL
    _assert_resumes(directory, uninterrupted)


def test_a_kill_in_the_middle_of_a_record_costs_only_that_checkpoint(series, uninterrupted, tmp_path) -> None:
    directory = Path(shutil.copytree(series, tmp_path / "run"))
    proc = _cli(directory, stdout=subprocess.DEVNULL)
    _kill_once_written(proc, directory)
    (path,) = imported.files(str(directory))
    kept = _written(directory)
    with open(path, "r+b") as f:  # the last event cut short, as a kill during its write leaves it
        f.truncate(os.path.getsize(path) - 100)
    assert _written(directory) == kept - 1
    assert any("incomplete record" in str(skip) for skip in tfrecord.records(path)[1])

    rerun = _cli(directory)
    assert rerun.returncode == 0, rerun.stderr
    assert f"imported {CHECKPOINTS - kept + 1} checkpoint(s)" in rerun.stderr
    _assert_same_import(directory, uninterrupted)


# Ray's agents on the node (dashboard, runtime env) watch their raylet, and report its unexpected end to
# the GCS, gone with it, for up to a minute (a 60 s timeout): seen outliving a killed driver by ~60 s, then
# ending on their own. The test ends them; every other process must go with the driver.
RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def test_a_ray_driver_killed_halfway_leaves_no_ray_process_and_resumes_to_the_uninterrupted_records(
    series, uninterrupted, tmp_path,
) -> None:
    """``--ray`` without an address: the driver starts a local Ray of its own (GCS, raylet, actors)
    for the import. SIGKILLed, it stops none of them itself: they must end with it (Ray's agents
    aside, ended here), and a re-run, on a Ray of its own, imports only what was not finished."""
    pytest.importorskip("ray")
    import psutil

    directory = Path(shutil.copytree(series, tmp_path / "run"))
    env = {**QUIET_ENV, "RAY_USAGE_STATS_ENABLED": "0", "RAY_ADDRESS": ""}  # a Ray started for the run
    proc = _cli(directory, "--ray", env=env, stdout=subprocess.DEVNULL)
    driver = psutil.Process(proc.pid)
    started: dict[psutil.Process, str] = {}  # the driver's descendants, noted while they are

    def note_ray_processes() -> None:
        with contextlib.suppress(psutil.Error):
            for child in driver.children(recursive=True):
                with contextlib.suppress(psutil.Error):
                    started[child] = child.name()  # its latest: a worker is named for its actor, and call

    try:
        _kill_once_written(proc, directory, fetch=note_ray_processes, every=0.1)
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
        names = {name.partition(".")[0] for name in started.values()}  # "ray::_Block.measure" while in a call
        assert {"gcs_server", "raylet", "ray::_Block"} <= names
        _, alive = psutil.wait_procs([p for p, name in started.items() if name not in RAY_AGENTS], timeout=15)
        assert not alive, [started[p] for p in alive]
    finally:
        for process in started:
            with contextlib.suppress(psutil.Error):
                process.kill()
    _assert_resumes(directory, uninterrupted, "--ray", env=env)


def _download(env: dict[str, str], prefix: str, directory: Path) -> Path:
    """What the bucket holds of the import under ``prefix`` (its event files and saved unit sums), in ``directory``."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    s3_client = client(env)
    for entry in s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/").get("Contents", []):
        name = entry["Key"].removeprefix(prefix + "/")
        if "/" not in name and imported.owned(name):
            try:
                s3_client.download_file(BUCKET, entry["Key"], str(directory / name))
            except botocore.exceptions.ClientError as e:  # removed by the import since the listing (saved sums)
                if e.response["Error"]["Code"] not in ("404", "NoSuchKey"):
                    raise
    return directory


def test_an_import_into_a_bucket_killed_halfway_resumes_from_what_the_bucket_holds(series, uninterrupted, s3, tmp_path) -> None:  # noqa: F811
    """From and into the bucket: a re-run starts from what the bucket holds, so it must hold each finished checkpoint."""
    url = upload(s3, series, "resume")
    (tmp_path / "tmp").mkdir()
    env = {**s3, "TMPDIR": str(tmp_path / "tmp")}  # the local copy a killed import leaves behind, in here
    proc = _cli(url, env=env, stdout=subprocess.DEVNULL)
    seen = tmp_path / "seen"
    # Killed at 6 or a little later: the unit sums of 5 to 7 pairs are in no event yet (written at powers
    # of two), only in the sums saved beside them. Looking less often: the S3 server shares this process.
    _kill_once_written(proc, seen, at=6, fetch=lambda: _download(s3, "resume", seen), every=0.2)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    held = imported.imported(str(_download(s3, "resume", tmp_path / "kept")))
    kept = len(held.steps)
    assert 6 <= kept < CHECKPOINTS  # killed halfway, what was finished is in the bucket
    assert {pairs for pairs, _ in held.units.values()} == {kept - 1}  # with its unit sums, every pair counted

    rerun = _cli(url, env=env)
    assert rerun.returncode == 0, rerun.stderr
    assert f"imported {CHECKPOINTS - kept} checkpoint(s)" in rerun.stderr
    final = _download(s3, "resume", tmp_path / "final")
    assert all(name.endswith(imported.SUFFIX) for name in os.listdir(final))  # the saved sums removed at the end
    _assert_same_import(final, uninterrupted)
