"""``tb-stagnation checkpoints s3://...``: checkpoints read from a bucket in byte ranges, as from disk.

A real S3 API server (moto's server mode on a free localhost port), started
here, holds the Hugging Face checkpoints that the real Trainer wrote
(tests/checkpoint_writers.py), uploaded with boto3. The command runs as a
user runs it, in its own process, configured the standard way
(``AWS_ENDPOINT_URL`` and the AWS variables), and its results must equal the
import of the same files from disk, record for record, while fetching little
more than the tensors' own bytes.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import HERE, QUIET_ENV
from tensorboard.compat.proto import event_pb2

from tb_stagnation.checkpoints import imported, windows
from tb_stagnation.sources import tfrecord

SCRIPT = Path(sys.executable).with_name("tb-stagnation")
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "tb_stagnation.cli"]
BUCKET = "runs"
# No credentials or configuration from the machine running the tests, and no metadata service lookups.
ISOLATED = {"AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_EC2_METADATA_DISABLED": "true", "AWS_DEFAULT_REGION": "us-east-1"}
FETCHED = re.compile(r"fetched ([\d,]+) bytes for ([\d,]+) bytes of tensors")


@pytest.fixture(scope="module")
def s3() -> dict[str, str]:
    """The environment of a user of a local S3 API server holding the bucket ``runs``."""
    moto_server = pytest.importorskip("moto.server")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**QUIET_ENV, **ISOLATED, "AWS_ENDPOINT_URL": f"http://{host}:{port}",
           "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    client(env).create_bucket(Bucket=BUCKET)
    yield env
    server.stop()


def client(env: dict[str, str]):
    """A boto3 S3 client of that server (the tests' own uploads and listings)."""
    import boto3

    return boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"], aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict[str, Path]:
    """HF Trainer output (one safetensors file, and sharded with an index) written by the real Trainer."""
    root = tmp_path_factory.mktemp("hf")
    names = ("hf", "hf_sharded")
    procs = {n: subprocess.Popen([sys.executable, str(HERE / "checkpoint_writers.py"), n, str(root / n)],
                                 env=QUIET_ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for n in names}
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{name} failed:\n{out[-3000:]}"
    return {n: root / n for n in names}


def upload(env: dict[str, str], directory: Path, prefix: str) -> str:
    """Every file under ``directory`` into the bucket under ``prefix``; the URL of that prefix."""
    s3_client = client(env)
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            s3_client.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(directory).as_posix()}")
    return f"s3://{BUCKET}/{prefix}"


def keys(env: dict[str, str], prefix: str) -> list[str]:
    listed = client(env).list_objects_v2(Bucket=BUCKET, Prefix=prefix + "/")
    return sorted(o["Key"] for o in listed.get("Contents", []))


def tb_stagnation(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], env=env, capture_output=True, text=True, timeout=300)


def checkpoints(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return tb_stagnation("checkpoints", *args, env=env)


def import_contents(run_dir: Path | str) -> list[tuple[int, bytes]]:
    """(step, serialised summary) of every event the imports wrote into ``run_dir``: all but wall times."""
    out = []
    for path in imported.files(str(run_dir)):
        payloads, _ = tfrecord.records(path)
        events = (event_pb2.Event.FromString(p) for p in payloads)
        out += [(e.step, e.summary.SerializeToString(deterministic=True)) for e in events if e.HasField("summary")]
    assert out, f"nothing imported in {run_dir}"
    return out


def local_import(directory: Path, tmp_path: Path, env: dict[str, str] = QUIET_ENV) -> Path:
    """A copy of ``directory`` imported from disk: the reference a bucket's import must equal."""
    copy = Path(shutil.copytree(directory, tmp_path / "local" / directory.name))
    proc = checkpoints(str(copy), env=env)
    assert proc.returncode == 0, proc.stderr
    return copy


def fetched(stderr: str) -> tuple[int, int]:
    """(bytes fetched, tensor bytes) as the command reports them."""
    match = FETCHED.search(stderr)
    assert match, stderr
    return int(match.group(1).replace(",", "")), int(match.group(2).replace(",", ""))


def small_files(directory: Path) -> int:
    """What a reader must fetch besides tensors: each safetensors header (8 bytes + JSON), index, trainer state."""
    total = 0
    for path in directory.rglob("*"):
        if path.suffix == ".safetensors":
            with open(path, "rb") as f:
                total += 8 + int.from_bytes(f.read(8), "little")
        elif path.name in ("model.safetensors.index.json", "trainer_state.json"):
            total += path.stat().st_size
    return total


@pytest.mark.parametrize("name", ["hf", "hf_sharded"])
def test_a_bucket_imports_equal_to_the_same_files_on_disk_writing_beside_the_run(s3, trained, tmp_path, name) -> None:
    url = upload(s3, trained[name], f"{name}-{tmp_path.name}")
    proc = checkpoints(url, env=s3)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr

    # Written beside the run's own events in the bucket (runs/<time_host>/), nowhere else.
    (events,) = [k for k in keys(s3, url.removeprefix(f"s3://{BUCKET}/")) if "tfevents" in k and "/runs/" in k
                 and not k.endswith(imported.SUFFIX)]
    written = [k for k in keys(s3, url.removeprefix(f"s3://{BUCKET}/")) if k.endswith(imported.SUFFIX)]
    assert written and {os.path.dirname(k) for k in written} == {os.path.dirname(events)}

    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    for key in written:
        client(s3).download_file(BUCKET, key, str(downloaded / os.path.basename(key)))
    local = local_import(trained[name], tmp_path)
    (local_run,) = (local / "runs").iterdir()
    assert import_contents(downloaded) == import_contents(local_run)

    # Each tensor once, plus the headers, the index and trainer_state.json: nothing else.
    got, tensors = fetched(proc.stderr)
    assert got == tensors + small_files(trained[name])

    # A re-run reads the import back from the bucket and adds nothing.
    again = checkpoints(url, env=s3)
    assert again.returncode == 0 and "up to date" in again.stderr, again.stderr
    assert [k for k in keys(s3, url.removeprefix(f"s3://{BUCKET}/")) if k.endswith(imported.SUFFIX)] == written


def write_series(series: Path, fmt: str, steps: tuple[int, ...]) -> tuple[Path, int]:
    """A few MB of tensors (float32 and float16) saved at ``steps`` as safetensors or torch files,
    moving a little each time; the directory and one checkpoint's tensor bytes."""
    series.mkdir()
    rng = np.random.default_rng(0)
    state = {"encoder.weight": rng.normal(size=(512, 1024)).astype(np.float32),
             "encoder.bias": rng.normal(size=1024).astype(np.float32),
             "head.weight": rng.normal(size=(64, 512)).astype(np.float16)}
    for step in steps:
        state = {k: (v + rng.normal(scale=1e-3, size=v.shape)).astype(v.dtype) for k, v in state.items()}
        if fmt == "safetensors":
            from safetensors.numpy import save_file

            save_file(state, str(series / f"model_step{step}.safetensors"))
        else:
            import torch

            torch.save({k: torch.from_numpy(v) for k, v in state.items()}, series / f"model_step{step}.pt")
    return series, sum(v.nbytes for v in state.values())


@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_large_tensors_cost_their_own_bytes_and_a_few_more(s3, tmp_path, fmt) -> None:
    """Megabytes of tensors per checkpoint: headers (torch: the zip's directory and pickle) add under 1%.

    ``--logdir`` keeps the output local, and nothing is written into the bucket.
    """
    series, nbytes = write_series(tmp_path / "big", fmt, (100, 200, 300))
    url = upload(s3, series, f"big-{fmt}-{tmp_path.name}")
    out = tmp_path / "out"
    proc = checkpoints(url, "--logdir", str(out), env=s3)
    assert proc.returncode == 0, proc.stderr
    got, tensors = fetched(proc.stderr)
    assert tensors == 3 * nbytes  # each checkpoint's tensors, once
    assert tensors < got <= tensors * 1.01
    assert not [k for k in keys(s3, url.removeprefix(f"s3://{BUCKET}/")) if k.endswith(imported.SUFFIX)]
    local = local_import(series, tmp_path)
    assert import_contents(out) == import_contents(local)


@pytest.mark.parametrize("fmt", ["safetensors", "torch"])
def test_checkpoints_larger_than_the_memory_budget_are_fetched_once(s3, tmp_path, fmt) -> None:
    """Each checkpoint is in up to three windows (it and the two after it); one that does not fit the
    memory budget (here lowered below one checkpoint) is spilled to a scratch file for the later
    windows, not fetched again; the figures equal those of the import kept in memory."""
    steps = (100, 200, 300, 400, 500)
    series, nbytes = write_series(tmp_path / "spilled", fmt, steps)
    url = upload(s3, series, f"spilled-{fmt}-{tmp_path.name}")
    out = tmp_path / "out"
    env = {**s3, windows.BUDGET_VARIABLE: str(nbytes // 4)}
    proc = checkpoints(url, "--logdir", str(out), env=env)
    assert proc.returncode == 0, proc.stderr
    got, tensors = fetched(proc.stderr)
    assert tensors == len(steps) * nbytes
    assert tensors < got <= tensors * 1.05  # not the ~2.4x of reading every window's checkpoints
    local = local_import(series, tmp_path)  # from disk, within the default budget: kept in memory
    assert import_contents(out) == import_contents(local)
    reread = local_import(series, tmp_path / "reread", env)  # from disk beyond the budget: read again, not spilled
    assert import_contents(reread) == import_contents(local)


@pytest.mark.parametrize("command", [["checkpoints"], []], ids=["checkpoints", "ranking"])
def test_what_cannot_be_read_exits_2_saying_why(s3, trained, tmp_path, command) -> None:
    url = upload(s3, trained["hf"], f"errors-{tmp_path.name}")
    uncredentialed = {k: v for k, v in s3.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    cases = {
        "unknown protocol": (["nope://bucket/run"], s3, "nope://bucket/run: not a URL fsspec can read"),
        "no credentials": ([url], uncredentialed, "no AWS credentials found: set AWS_ACCESS_KEY_ID"),
        "no bucket": (["s3://no-such-bucket/run"], s3, "s3://no-such-bucket/run: no bucket named 'no-such-bucket'"),
        "empty prefix": ([f"s3://{BUCKET}/nothing-here"], s3, f"s3://{BUCKET}/nothing-here: no such directory"),
        "no gcsfs": (["gs://bucket/run"], s3, "pip install 'tb-stagnation[gcs]'"),
    }
    if _installed("gcsfs"):
        del cases["no gcsfs"]
    for case, (args, env, message) in cases.items():
        proc = tb_stagnation(*command, *args, env=env)
        assert proc.returncode == 2, (case, proc.stderr)
        assert message in proc.stderr, (case, proc.stderr)
        assert "Traceback" not in proc.stderr, (case, proc.stderr)


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def test_the_import_reads_trainer_state_from_the_bucket(s3, trained, tmp_path) -> None:
    """The step is trainer_state.json's global_step, read from the bucket (here made to differ from N)."""
    copy = Path(shutil.copytree(trained["hf"], tmp_path / "hf"))
    for folder in copy.glob("checkpoint-*"):
        state = json.loads((folder / "trainer_state.json").read_text())
        state["global_step"] = int(folder.name.split("-")[1]) * 7
        (folder / "trainer_state.json").write_text(json.dumps(state))
    url = upload(s3, copy, f"state-{tmp_path.name}")
    proc = checkpoints(url, "--logdir", str(tmp_path / "out"), env=s3)
    assert proc.returncode == 0, proc.stderr
    assert {step for step, _ in import_contents(tmp_path / "out")} == {70, 140, 210}


def test_dcp_shards_in_a_bucket_are_read_by_chunk_equal_to_disk(s3, tmp_path) -> None:
    """torch.distributed.checkpoint directories (dcp.save, torchtitan's step-N/): .metadata, then each
    chunk's span of its shard; each chunk is a small torch.save blob, so a few percent on top at most."""
    import warnings

    import torch
    import torch.distributed.checkpoint as dcp

    series = tmp_path / "dcp"
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.Linear(512, 64))
    for step in (10, 20, 30):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * 1e-3)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dcp.save({"model": model.state_dict()}, checkpoint_id=str(series / f"step-{step}"), no_dist=True)
    url = upload(s3, series, f"dcp-{tmp_path.name}")
    out = tmp_path / "out"
    proc = checkpoints(url, "--logdir", str(out), env=s3)
    assert proc.returncode == 0, proc.stderr
    got, tensors = fetched(proc.stderr)
    assert tensors < got <= tensors * 1.05
    local = local_import(series, tmp_path)
    assert import_contents(out) == import_contents(local)


def ranked(logdir: str, env: dict[str, str]) -> tuple[dict, str]:
    """``tb-stagnation LOGDIR --json``: the answer, and what it said on stderr."""
    proc = tb_stagnation(logdir, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_the_ranking_reads_logs_in_a_bucket_as_the_same_logs_on_disk(s3, writer_logs, tmp_path) -> None:
    """Every writer's log in one directory, and a file that is no event file (it costs that file only):
    the same rows, findings and run names from the bucket (``tb-stagnation s3://...``) as from disk."""
    logs = tmp_path / "logs"
    for name, directory in writer_logs.items():
        shutil.copytree(directory, logs / name)
    (logs / "broken").mkdir()
    (logs / "broken" / "events.out.tfevents.0.broken").write_bytes(b"not an event file" * 10)
    url = upload(s3, logs, f"{tmp_path.name}/logs")
    local, local_said = ranked(str(logs), QUIET_ENV)
    remote, remote_said = ranked(url, s3)
    assert remote == local
    assert {r["run"].split("/")[0] for r in remote["rows"]} == set(writer_logs)
    assert f"skipped {url}/broken/events.out.tfevents.0.broken: not an event file" in remote_said
    assert remote_said.replace(url, str(logs)) == local_said


def test_a_checkpoint_import_into_the_bucket_is_ranked_from_the_bucket(s3, trained, tmp_path) -> None:
    """The import writes beside the run in the bucket so that ``tb-stagnation s3://...`` sees it:
    the same exact-movement rows as the same import on disk, ranked from disk."""
    url = upload(s3, trained["hf"], f"{tmp_path.name}/hf")
    assert checkpoints(url, env=s3).returncode == 0
    remote, _ = ranked(url, s3)
    local, _ = ranked(str(local_import(trained["hf"], tmp_path)), QUIET_ENV)
    assert remote == local
    assert [r for r in remote["rows"] if r["exact_score"] is not None], "no exact movement ranked"


def test_tensorboard_serves_the_plugin_from_the_bucket_where_the_import_wrote(s3, trained, tmp_path, start_tensorboard) -> None:
    """``tensorboard --logdir s3://...`` on a machine without TensorFlow (a PyTorch user's): TensorBoard's
    own S3 file system (boto3, ``AWS_ENDPOINT_URL``) on its Python loader ranks the import the command wrote
    into the bucket as ``tb-stagnation s3://...`` does. With TensorFlow installed, its ``tf.io.gfile`` has
    no ``s3://`` without ``tensorflow-io`` (TensorBoard says so and exits): the tab then needs that package."""
    url = upload(s3, trained["hf"], f"{tmp_path.name}/hf")
    assert checkpoints(url, env=s3).returncode == 0
    hidden = tmp_path / "without-tensorflow" / "tensorflow"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('this machine has no TensorFlow')\n")
    path = os.pathsep.join(p for p in (str(hidden.parent), s3.get("PYTHONPATH")) if p)
    tb = start_tensorboard(url, env={**s3, "PYTHONPATH": path})
    assert "TensorFlow installation not found" in Path(tb.log.name).read_text()
    status, body, _ = tb.plugin("ranking")
    assert status == 200
    cli, _ = ranked(url, s3)
    assert {(r["run"], r["tag"]): (r["source"], r["status"]) for r in body["rows"]} == {
        (r["run"], r["tag"]): (r["source"], r["status"]) for r in cli["rows"]}
    assert {r["source"] for r in body["rows"]} == {"checkpoint"}
