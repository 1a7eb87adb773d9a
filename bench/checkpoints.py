"""Checkpoint import bench: `tb-stagnation checkpoints` against plainly reading the same files.

Builds GB-sized checkpoints (safetensors and ``torch.save`` files, float32,
and one bf16 safetensors series), then times, each in a fresh process so that
peak RSS is its own:

* the read floor: every byte of every checkpoint read once (16 MB reads);
* the library floor: every tensor loaded once with the format's own library
  (``safe_open(...).get_tensor``, ``torch.load(mmap=True)`` and a copy);
* the plain script a user would write: consecutive checkpoints opened
  with the format's library (safetensors' numpy loader, ``torch.load(mmap=True)``),
  one tensor pair at a time, ``norm(b - a) / norm(a)`` in numpy;
* the import: ``tb-stagnation checkpoints DIR`` (reads each checkpoint once
  per group of tensors, sums in float64, writes the event file);
* the library import: only importing what the import imports to read the
  format (numpy; torch for ``.pt`` files, ~220 MB of RSS on its own), the
  floor of its peak memory, printed beside the memory target.

Prints times (the median of ``--repeat`` runs of each job, taken in turn),
their CPU time (user + system), MB/s, peak RSS and the ratios side by side, on a quiet machine
and, with ``--busy N``, again beside N busy processes (each a pure-Python
loop, ``while True: sum(range(10**6))``, one core each, as a training job
keeps the cores taken). The page cache is warm for all jobs (each file is
read once before timing), so the figures compare CPU work, not the disk.
The targets: the import within 1.5x of the plain script, quiet and busy,
and its peak RSS below one checkpoint.

    .venv/bin/python bench/checkpoints.py [--gb 1] [--checkpoints 3] [--busy 2] [--keep DIR]
    .venv/bin/python bench/checkpoints.py --quick   # 0.25 GB checkpoints, about five minutes
"""

from __future__ import annotations

import argparse
import os
import resource
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
    "plain script": """
import os, sys, numpy as np
paths = [os.path.join(sys.argv[1], n) for n in sorted((n for n in os.listdir(sys.argv[1]) if n.startswith('model_')), key=lambda n: int(n.split('_')[1].split('.')[0]))]
def opened(path):
    if path.endswith('.pt'):
        import torch
        state = torch.load(path, mmap=True, weights_only=True)
        return {k: (lambda t=t: t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()) for k, t in state.items()}
    from safetensors import safe_open
    fw = 'pt' if sys.argv[2] == 'bf16' else 'np'
    f = safe_open(path, framework=fw)
    return {k: (lambda k=k: f.get_tensor(k).float().numpy() if fw == 'pt' else f.get_tensor(k)) for k in f.keys()}
ratios = {}
for before, after in zip(paths, paths[1:]):
    fa, fb = opened(before), opened(after)
    for key in fa:
        a, b = fa[key](), fb[key]()
        ratios[key] = np.linalg.norm(b - a) / np.linalg.norm(a)
""",
    "tb-stagnation checkpoints": """
import sys
from tb_stagnation.cli import main
assert main(['checkpoints', sys.argv[1], '--quiet', '--rebuild']) == 0
""",
    "library import": """
import sys, numpy
if sys.argv[2] == 'torch':
    import torch
""",
}


BUSY = "while True: sum(range(10**6))"
"""One busy process: a pure-Python loop holding one core, as a training job's does."""


def measure(job: str, directory: str, fmt: str) -> tuple[float, int, float]:
    """(wall seconds, peak RSS, CPU seconds: user + system, every thread) of ``job`` in a process of its own."""
    script = JOBS[job] + "\n" + _PEAK
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cpu = _children_cpu()
    began = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", script, directory, fmt], env=env, capture_output=True, text=True, check=True)
    return time.perf_counter() - began, int(out.stdout.split()[-1]), _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure_beside(busy: int, job: str, directory: str, fmt: str) -> tuple[float, int, float]:
    """:func:`measure` with ``busy`` busy processes running beside it (stopped after)."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY]) for _ in range(busy)]
    try:
        time.sleep(0.5 if busy else 0)  # every busy process up and spinning
        return measure(job, directory, fmt)
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--gb", type=float, default=1.0, help="size of one checkpoint (default %(default)s)")
    p.add_argument("--checkpoints", type=int, default=3)
    p.add_argument("--formats", default="safetensors,torch,bf16")
    p.add_argument("--busy", type=int, default=0, help="also time every job beside this many busy processes")
    p.add_argument("--repeat", type=int, default=3, help="runs of each job per load; the median is shown "
                   "(one run's ratio swings 0.5-2x on a shared 2-core machine)")
    p.add_argument("--quick", action="store_true", help="0.25 GB checkpoints, safetensors and torch, --busy 2")
    p.add_argument("--keep", help="build the checkpoints here and keep them")
    args = p.parse_args()
    if args.quick:
        args.gb, args.formats, args.busy = 0.25, "safetensors,torch", args.busy or 2
    root = args.keep or tempfile.mkdtemp(prefix="tbs-ckpt-bench-")
    print(f"# checkpoint import bench; nproc {os.cpu_count()}, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"# busy: {args.busy} x `python -c {BUSY!r}`" if args.busy else "# quiet only (--busy N adds a loaded run)")
    loads = [0, args.busy] if args.busy else [0]
    try:
        for fmt in args.formats.split(","):
            directory = build(root, fmt, args.gb, args.checkpoints)
            files = [os.path.join(directory, f) for f in os.listdir(directory) if not f.startswith("events")]
            total = sum(os.path.getsize(f) for f in files)
            one = max(os.path.getsize(f) for f in files)
            measure("read floor", directory, fmt)  # warm the page cache
            print(f"## {fmt}: {len(files)} checkpoints x {one / 1e9:.2f} GB = {total / 1e9:.2f} GB")
            head = "".join(f"{f'time/{n} busy':>14}{'x plain':>9}{'CPU':>8}" for n in loads)
            print(f"{'job':<28}{head}{'MB/s':>9}{'peak RSS':>11}{'RSS / 1 ckpt':>14}")
            runs: dict[str, list[list[tuple[float, int, float]]]] = {job: [[] for _ in loads] for job in JOBS}
            for _ in range(args.repeat):  # round-robin, so that a change in the machine's load hits every job alike
                for job in JOBS:
                    for i, n in enumerate(loads):
                        runs[job][i].append(measure_beside(n, job, directory, fmt))
            # per job and load: the run of median wall time, with the highest peak of its runs
            times = {job: [(*sorted(r)[len(r) // 2][::2], max(p for _, p, _ in r)) for r in timed] for job, timed in runs.items()}
            for job, timed in times.items():
                cells = "".join(
                    f"{seconds:>13.2f}s{seconds / times['plain script'][i][0]:>8.2f}x{cpu:>7.2f}s"
                    for i, (seconds, cpu, _) in enumerate(timed)
                )
                seconds, _, peak = timed[0]
                print(f"{job:<28}{cells}{total / 1e6 / seconds:>9.0f}{peak / 1e6:>9.0f}MB{peak / one:>13.2f}x")
            ratios = [times["tb-stagnation checkpoints"][i][0] / times["plain script"][i][0] for i in range(len(loads))]
            print(f"target import <= 1.5x plain: {', '.join(f'{r:.2f}x ({n} busy)' for r, n in zip(ratios, loads))}: "
                  f"{'met' if max(ratios) <= 1.5 else 'NOT met'}")
            peak, floor = times["tb-stagnation checkpoints"][0][2], times["library import"][0][2]
            print(f"target import peak RSS < 1 checkpoint: {peak / one:.2f}x: {'met' if peak < one else 'NOT met'} "
                  f"(the library import alone {floor / one:.2f}x, the import above it {(peak - floor) / one:.2f}x); "
                  f"load average now {os.getloadavg()[0]:.2f}")
            shutil.rmtree(directory)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
