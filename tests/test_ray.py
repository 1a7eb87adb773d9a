"""``tb-stagnation checkpoints SRC --ray``: the import as Ray tasks, equal to the import in one process.

A real local Ray, started for the test (by the command itself, or by the
test where it must reach into the workers), measures the checkpoints the
real HF Trainer wrote (tests/checkpoint_writers.py); every actor reads its
block of tensors itself, each checkpoint once. The records written must be
the in-process import's, byte for byte (wall times aside), also when an
actor is killed in the middle of a window: Ray starts it again with nothing
kept and runs that window again, and no point is lost or doubled.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import signal
from pathlib import Path

import pytest
from conftest import QUIET_ENV
from test_object_storage import (  # noqa: F401  (fixtures)
    checkpoints,
    fetched,
    import_contents,
    local_import,
    s3,
    trained,
    upload,
    write_series,
)

from tb_stagnation.checkpoints import command, windows

ray = pytest.importorskip("ray")


def run_dir(directory: Path) -> Path:
    """The HF run directory (runs/<time_host>) that the import writes into."""
    (found,) = (directory / "runs").iterdir()
    return found


def test_a_ray_started_for_the_import_gives_the_in_process_results(trained, tmp_path) -> None:  # noqa: F811
    copy = Path(shutil.copytree(trained["hf_sharded"], tmp_path / "ray" / "hf_sharded"))
    proc = checkpoints(str(copy), "--ray", env=QUIET_ENV)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    local = local_import(trained["hf_sharded"], tmp_path)
    assert import_contents(run_dir(copy)) == import_contents(run_dir(local))


def test_an_actor_killed_mid_import_is_run_again_without_a_lost_or_doubled_point(trained, tmp_path) -> None:  # noqa: F811
    """The first actor to measure the last checkpoint's window, holding what it kept of the two
    before, kills its own process (SIGKILL) once after its first tensor; Ray starts it again, with
    nothing kept, and runs the window again."""
    marker = str(tmp_path / "killed")

    def kill_the_first_actor_once() -> None:  # runs in every worker Ray starts
        import os

        from tb_stagnation.checkpoints import movement

        measure = movement.measure

        def killing(placed, **kwargs):
            def progress(nbytes: int) -> None:  # after its first tensor is read
                if len(placed) == 3 and not os.path.exists(marker):
                    open(marker, "w").close()
                    os.kill(os.getpid(), signal.SIGKILL)

            return measure(placed, progress=progress, **kwargs)

        movement.measure = killing

    copy = Path(shutil.copytree(trained["hf"], tmp_path / "ray" / "hf"))
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"worker_process_setup_hook": kill_the_first_actor_once})
    try:
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = command.main([str(copy), "--ray", "--quiet"])
    finally:
        ray.shutdown()
    assert code == 0, err.getvalue()
    assert Path(marker).exists()  # an actor was killed in the middle of a window
    local = local_import(trained["hf"], tmp_path)
    assert import_contents(run_dir(copy)) == import_contents(run_dir(local))


def test_actors_fetch_each_checkpoint_once_from_a_bucket(s3, tmp_path) -> None:  # noqa: F811
    """Five checkpoints, each in up to three windows: every actor keeps what the next windows need of
    its block (here the budget is lowered below one checkpoint, so the large tensor's block is spilled
    to a scratch file and the small one's kept in memory), and so fetches each checkpoint once, as the
    in-process import does; a task per window fetched them 2.4 times over."""
    steps = (100, 200, 300, 400, 500)
    series, nbytes = write_series(tmp_path / "series", "safetensors", steps)
    url = upload(s3, series, f"ray-{tmp_path.name}")
    out = tmp_path / "out"
    proc = checkpoints(url, "--ray", "--logdir", str(out), env={**s3, windows.BUDGET_VARIABLE: str(nbytes // 4)})
    assert proc.returncode == 0, proc.stderr
    got, tensors = fetched(proc.stderr)
    assert tensors == len(steps) * nbytes
    assert tensors < got <= tensors * 1.05
    local = local_import(series, tmp_path)
    assert import_contents(out) == import_contents(local)


def test_an_unreachable_cluster_exits_2_before_anything_is_read(trained, tmp_path) -> None:  # noqa: F811
    copy = Path(shutil.copytree(trained["hf"], tmp_path / "hf"))
    proc = checkpoints(str(copy), "--ray", "auto", env={**QUIET_ENV, "RAY_ADDRESS": ""})
    assert proc.returncode == 2
    assert "cannot reach the Ray cluster at 'auto'" in proc.stderr and "ray start --head" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not list(copy.rglob("*tb-stagnation*"))
