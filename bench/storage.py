"""Object storage and Ray bench: `tb-stagnation checkpoints` from a local S3 API server against local disk.

Builds a series of checkpoints (safetensors, ``torch.save``; float32, tensors
of 16 MB), uploads it to a local S3 API server (moto's server mode, in this
process, on a free localhost port) and times the import, each in a fresh
``tb-stagnation checkpoints`` process:

* from local disk, in one process;
* from the bucket (``AWS_ENDPOINT_URL``), in one process;
* with ``--ray`` on a local Ray cluster (``ray start --head --num-cpus N``,
  joined with ``--ray auto``) of 1 and 2 workers, from the bucket and from disk.
  Each Ray job begins and ends with ``ray stop --force``, which stops every
  Ray on the machine, not only the bench's: run it where no other Ray runs
  (``--no-ray`` skips those jobs).

Prints, per job, the import's own time (from its last line: reading,
measuring, writing; not discovery or Ray's start), MB/s of tensor bytes
read, and for the bucket the bytes fetched against the tensor bytes. The
page cache is warm for the local job; the S3 server is a Python process
sharing the machine's cores with the import, so its figures are a floor on
what a real store's bandwidth gives, not a forecast of it.

    .venv/bin/python bench/storage.py [--mb 256] [--checkpoints 3] [--formats safetensors torch]
    .venv/bin/python bench/storage.py --quick   # 64 MB checkpoints
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TENSOR_VALUES = 4_000_000  # 16 MB of float32 per tensor
COMMAND = [str(Path(sys.executable).with_name("tb-stagnation"))]
RAY = str(Path(sys.executable).with_name("ray"))
READ = re.compile(r"([\d.]+) MB of tensors read in ([\d.]+) s")
FETCHED = re.compile(r"fetched ([\d,]+) bytes for ([\d,]+) bytes of tensors")


def build(root: Path, fmt: str, mb: int, checkpoints: int) -> Path:
    """``checkpoints`` numbered checkpoints of about ``mb`` MB each, in a directory of their own."""
    directory = root / fmt
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    count = max(1, mb * 1_000_000 // (TENSOR_VALUES * 4))
    base = {f"layers.{i}.weight": rng.standard_normal(TENSOR_VALUES, dtype=np.float32).reshape(2000, 2000)
            for i in range(count)}
    for c in range(checkpoints):
        state = {k: v + np.float32(1e-3 * c * (i + 1)) for i, (k, v) in enumerate(base.items())}
        if fmt == "safetensors":
            from safetensors.numpy import save_file

            save_file(state, str(directory / f"model_{c * 1000}.safetensors"))
        else:
            import torch

            torch.save({k: torch.from_numpy(v) for k, v in state.items()}, directory / f"model_{c * 1000}.pt")
    return directory


def upload(env: dict[str, str], directory: Path, bucket: str) -> str:
    import boto3

    client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
    client.create_bucket(Bucket=bucket)
    for path in sorted(directory.iterdir()):
        client.upload_file(str(path), bucket, f"{directory.name}/{path.name}")
    return f"s3://{bucket}/{directory.name}"


def run_import(src: str, env: dict[str, str], out: Path, ray: bool) -> dict[str, float]:
    """One import in a fresh process: its own time, tensor MB, and bytes fetched where counted."""
    shutil.rmtree(out, ignore_errors=True)
    args = [*COMMAND, "checkpoints", src, "--logdir", str(out), "--quiet"] + (["--ray", "auto"] if ray else [])
    began = time.monotonic()
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=3600)
    wall = time.monotonic() - began
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    mb, seconds = (float(x) for x in READ.search(proc.stderr).groups())
    result = {"mb": mb, "seconds": seconds, "wall": wall}
    fetched = FETCHED.search(proc.stderr)
    if fetched:
        result["fetched"] = int(fetched.group(1).replace(",", ""))
        result["tensors"] = int(fetched.group(2).replace(",", ""))
    return result


def ray_cluster(cpus: int, env: dict[str, str]) -> None:
    subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
    subprocess.run([RAY, "start", "--head", f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=256, help="MB per checkpoint")
    p.add_argument("--checkpoints", type=int, default=3)
    p.add_argument("--formats", nargs="+", default=["safetensors", "torch"])
    p.add_argument("--quick", action="store_true", help="64 MB checkpoints")
    p.add_argument("--no-ray", action="store_true", help="skip the Ray jobs")
    args = p.parse_args()
    mb = 64 if args.quick else args.mb

    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # not a line per request among the results
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {**os.environ, "AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "bench",
           "AWS_SECRET_ACCESS_KEY": "bench", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
           "RAY_USAGE_STATS_ENABLED": "0"}
    root = Path(tempfile.mkdtemp(prefix="tb-stagnation-bench-storage-"))
    rows = []
    try:
        for fmt in args.formats:
            directory = build(root / "src", fmt, mb, args.checkpoints)
            url = upload(env, directory, f"bench-{fmt}")
            for path in directory.iterdir():  # a warm page cache for the local job
                path.read_bytes()
            jobs = [("local disk", str(directory), False, 0), ("S3 (moto)", url, False, 0)]
            if not args.no_ray:
                jobs += [(f"{where} + Ray, {n} worker{'s' * (n > 1)}", src, True, n)
                         for where, src in (("S3", url), ("local", str(directory))) for n in (1, 2)]
            for label, src, ray, cpus in jobs:
                if ray:
                    ray_cluster(cpus, env)
                try:
                    result = run_import(src, env, root / "out", ray)
                finally:
                    if ray:
                        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
                rows.append((fmt, label, result))
                print(_row(fmt, label, result), flush=True)
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{args.checkpoints} checkpoints of {mb} MB, {os.cpu_count()} CPUs\n")
    print("| format | source | import s | MB/s | fetched / tensor bytes |\n| --- | --- | --- | --- | --- |")
    for fmt, label, result in rows:
        print(_row(fmt, label, result))


def _row(fmt: str, label: str, r: dict[str, float]) -> str:
    ratio = f"{r['fetched'] / r['tensors']:.4f}" if "fetched" in r else "-"
    return f"| {fmt} | {label} | {r['seconds']:.1f} | {r['mb'] / r['seconds']:.0f} | {ratio} |"


if __name__ == "__main__":
    main()
