"""Checkpoint import bench: `tb-stagnation checkpoints` against plainly reading the same files.

Builds GB-sized checkpoints (safetensors and ``torch.save`` files, float32,
and one bf16 safetensors series), then times, each in a fresh process so that
peak RSS is its own:

* the read floor: every byte of every checkpoint read once (16 MB reads);
* the library floor: every tensor loaded once with the format's own library
  (``safe_open(...).get_tensor``, ``torch.load(mmap=True)`` and a copy);
* the import: ``tb-stagnation checkpoints DIR`` (reads each checkpoint once
  per group of tensors, sums in float64, writes the event file).

Prints times, MB/s, peak RSS and the ratios side by side. The page cache
is warm for all three (each file is read once before timing), so the
figures compare CPU work, not the disk.

    .venv/bin/python bench/checkpoints.py [--gb 1] [--checkpoints 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
TENSOR_VALUES = 6_250_000  # 25 MB of float32 per tensor


def build(root: str, fmt: str, gb: float, checkpoints: int) -> str:
    """A directory of ``checkpoints`` numbered checkpoints of about ``gb`` GB each."""
    directory = os.path.join(root, fmt)
    os.makedirs(directory)
    rng = np.random.default_rng(0)
    count = max(1, int(gb * 1e9 / (TENSOR_VALUES * 4)))
    base = {f"layers.{i}.weight": rng.standard_normal(TENSOR_VALUES, dtype=np.float32).reshape(2500, 2500) for i in range(count)}
    for c in range(checkpoints):
        state = {k: v + np.float32(1e-3 * c * (i + 1)) for i, (k, v) in enumerate(base.items())}
        path = os.path.join(directory, f"model_{c * 1000}")
        if fmt == "safetensors":
            from safetensors.numpy import save_file

            save_file(state, path + ".safetensors")
        elif fmt == "bf16":
            import torch
            from safetensors.torch import save_file

            save_file({k: torch.from_numpy(v).bfloat16() for k, v in state.items()}, path + ".safetensors")
        else:
            import torch

            torch.save({k: torch.from_numpy(v) for k, v in state.items()}, path + ".pt")
    return directory


# Each measured job runs in its own process and prints its peak RSS in bytes last.
# VmHWM, not ru_maxrss: the latter keeps the high-water mark of the process it was forked from.
_PEAK = "import re; print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) * 1024)"
JOBS = {
    "read floor": """
import os, sys
for name in sorted(os.listdir(sys.argv[1])):
    with open(os.path.join(sys.argv[1], name), 'rb') as f:
        while f.read(1 << 24):
            pass
""",
    "library floor": """
import os, sys, numpy as np
for name in sorted(os.listdir(sys.argv[1])):
    path = os.path.join(sys.argv[1], name)
    if path.endswith('.safetensors'):
        from safetensors import safe_open
        fw = 'pt' if sys.argv[2] == 'bf16' else 'np'
        with safe_open(path, framework=fw) as f:
            for key in f.keys():
                t = f.get_tensor(key)
                np.array(t.float().numpy() if fw == 'pt' else t, copy=True)
    elif path.endswith('.pt'):
        import torch
        for t in torch.load(path, mmap=True, weights_only=True).values():
            np.array(t.numpy(), copy=True)
""",
    "tb-stagnation checkpoints": """
import sys
from tb_stagnation.cli import main
assert main(['checkpoints', sys.argv[1], '--quiet', '--rebuild']) == 0
""",
}


def measure(job: str, directory: str, fmt: str) -> tuple[float, int]:
    script = JOBS[job] + "\n" + _PEAK
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, directory, fmt], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - began, int(out.stdout.split()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=1.0, help="size of one checkpoint (default %(default)s)")
    p.add_argument("--checkpoints", type=int, default=3)
    p.add_argument("--formats", default="safetensors,torch,bf16")
    p.add_argument("--keep", help="build the checkpoints here and keep them")
    args = p.parse_args()
    root = args.keep or tempfile.mkdtemp(prefix="tbs-ckpt-bench-")
    print(f"# checkpoint import bench; nproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    try:
        for fmt in args.formats.split(","):
            directory = build(root, fmt, args.gb, args.checkpoints)
            files = [os.path.join(directory, f) for f in os.listdir(directory) if not f.startswith("events")]
            total = sum(os.path.getsize(f) for f in files)
            one = max(os.path.getsize(f) for f in files)
            measure("read floor", directory, fmt)  # warm the page cache
            print(f"## {fmt}: {len(files)} checkpoints x {one / 1e9:.2f} GB = {total / 1e9:.2f} GB")
            print(f"{'job':<28}{'time':>9}{'MB/s':>9}{'peak RSS':>11}{'x read floor':>14}{'RSS / 1 ckpt':>14}")
            floor = None
            for job in JOBS:
                seconds, peak = measure(job, directory, fmt)
                floor = floor or seconds
                print(f"{job:<28}{seconds:>8.2f}s{total / 1e6 / seconds:>9.0f}{peak / 1e6:>9.0f}MB"
                      f"{seconds / floor:>13.2f}x{peak / one:>13.2f}x")
            shutil.rmtree(directory)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
