"""Read-path benchmark (issue 7): parse floor, CLI, tbparse and a live TensorBoard, side by side.

Builds synthetic log directories (random-walk parameters, so drift is
non-trivial), then measures, per size:

  floor     fresh process: read every event file, split the TFRecord framing,
            ``Event.FromString`` every record, nothing else
  cli       fresh process: ``python -m tb_stagnation.cli LOGDIR --json > /dev/null``
  tbparse   fresh process: ``tbparse.SummaryReader(logdir, pivot=False)``, then
            ``.histograms`` (TF1 protos) and ``.tensors`` (TF2 histograms are tensors
            to tbparse), i.e. every histogram in pandas
  inproc    in one process: a ``MultiplexerDataProvider`` over an ``EventMultiplexer``
            with default size guidance, loaded once; then one timed ``read_tensors``
            of every histogram tag (downsample=1000)
  live      ``tensorboard --load_fast=false`` (Python loader, otherwise default flags)
            on 127.0.0.1: ``/data/plugin/stagnation/ranking`` cold and warm,
            ``/data/plugin/histograms/histograms`` over every tag

Wall time of a process is measured by a tiny wrapper process around it, which
also reports the child's peak RSS (``getrusage(RUSAGE_CHILDREN).ru_maxrss``);
the server's peak RSS is its ``VmHWM``.

    .venv/bin/python bench/run.py [--sizes small,tf2_long,tf2_wide,tf1_buckets]
                                  [--out /tmp/tb-stagnation-bench] [--repeat N] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
PY = sys.executable
RUN = "train"  # every log directory holds one run
WALL0 = 1.7e9
FORMAT_VERSION = 3  # bump when the generator changes: regenerates cached logs

SIZES = {
    # name: (writer, tags, steps, values per tensor)
    "small": ("tf2", 10, 100, 1024),
    "tf2_medium": ("tf2", 100, 200, 1024),  # the 16 MB TF2 log; with small, --quick
    "tf2_long": ("tf2", 100, 1000, 1024),
    "tf2_wide": ("tf2", 1000, 200, 1024),
    "tf1_buckets": ("tf1", 100, 200, 4096),
}

# ---------------------------------------------------------------- generation


def _tag_names(n: int) -> list[str]:
    kinds = ("kernel", "bias", "gamma", "kernel")
    return [f"block{i // 4:03d}/layer{i:04d}/{kinds[i % 4]}" for i in range(n)]


def _walk(tags: int, steps: int, n: int, seed: int):
    """Yield (step, values[tags, n]) of random-walk parameters.

    Per-tag learning rates span four decades, so some tags move and some
    are stagnant; tag 3 never moves (frozen).
    """
    rng = np.random.default_rng(seed)
    w = rng.normal(0.0, 0.05, size=(tags, n))
    w[2::4] += 1.0  # "gamma" tags sit near 1
    lr = 10.0 ** rng.uniform(-5, -1, size=(tags, 1)) * 0.05
    lr[3 % tags] = 0.0
    for step in range(steps):
        if step:
            w += lr * rng.standard_normal((tags, n))
        yield step, w


def _tf2_buckets(w: np.ndarray, k: int = 30) -> np.ndarray:
    """histogram_pb's bucketing of every row of ``w`` at once: (tags, k, 3) float64."""
    lo, hi = w.min(axis=1), w.max(axis=1)
    width = (hi - lo) / k
    idx = np.minimum(np.floor((w - lo[:, None]) / width[:, None]).astype(int), k - 1)
    rows = np.arange(w.shape[0])[:, None] * k
    counts = np.bincount((idx + rows).ravel(), minlength=w.shape[0] * k).reshape(-1, k)
    edges = np.linspace(lo, hi, k + 1, axis=1)
    return np.stack([edges[:, :-1], edges[:, 1:], counts.astype(np.float64)], axis=2)


def _tf_default_limits() -> np.ndarray:
    """TF's default histogram bucket limits, as PyTorch / tensorboardX use them."""
    v, pos = 1e-12, []
    while v < 1e20:
        pos.append(v)
        v *= 1.1
    return np.array([-x for x in reversed(pos)] + [0.0] + pos)


def _tf1_proto(values: np.ndarray, limits: np.ndarray):
    """A HistogramProto as torch.utils.tensorboard.summary.make_histogram builds it."""
    from tensorboard.compat.proto.summary_pb2 import HistogramProto

    counts, edges = np.histogram(values, bins=limits)
    cum = np.cumsum(counts > 0)
    start, end = np.searchsorted(cum, [0, cum[-1] - 1], side="right")
    start, end = int(start), int(end) + 1
    counts = counts[start - 1 : end] if start > 0 else np.concatenate([[0], counts[:end]])
    edges = edges[start : end + 1]
    return HistogramProto(
        min=float(values.min()), max=float(values.max()), num=len(values),
        sum=float(values.sum()), sum_squares=float(values.dot(values)),
        bucket_limit=edges.tolist(), bucket=counts.astype(np.float64).tolist(),
    )


def _frame(payloads: list[bytes]) -> bytes:
    """TFRecord framing, checksums from tb_stagnation.sources.crc32c (google-crc32c or numpy, all records at once)."""
    from tb_stagnation.sources import crc32c

    lengths = np.array([len(p) for p in payloads], dtype=np.int64)
    body = b"".join(payloads)
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    len_bytes = lengths.astype("<u8").tobytes()
    len_crc = crc32c.masked_crc32c(len_bytes, np.arange(len(lengths)) * 8, np.full(len(lengths), 8))
    data_crc = crc32c.masked_crc32c(body, offsets, lengths)
    out = []
    lc, dc = len_crc.astype("<u4").tolist(), data_crc.astype("<u4").tolist()
    pack = struct.pack
    for i, p in enumerate(payloads):
        out.append(pack("<QI", len(p), lc[i]))
        out.append(p)
        out.append(pack("<I", dc[i]))
    return b"".join(out)


def generate(name: str, logdir: str) -> dict:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.plugins.histogram import summary_v2

    writer, tags, steps, n = SIZES[name]
    names = _tag_names(tags)
    rundir = os.path.join(logdir, RUN)
    os.makedirs(rundir, exist_ok=True)
    payloads = [event_pb2.Event(wall_time=WALL0, file_version="brain.Event:2").SerializeToString()]
    buckets_seen = []
    if writer == "tf2":
        templates = []
        for step, w in _walk(tags, steps, n, seed=len(name)):
            b = _tf2_buckets(w)
            if step == 0:  # the reference: histogram_pb itself, metadata on the first write
                for t, tag in enumerate(names):
                    ref = summary_v2.histogram_pb(tag, w[t], buckets=30)
                    assert ref.value[0].tensor.tensor_content == b[t].tobytes(), "bucketing differs from histogram_pb"
                    ev = event_pb2.Event(wall_time=WALL0, step=0, summary=ref)
                    payloads.append(ev.SerializeToString())
                    ev.summary.value[0].ClearField("metadata")  # TF2 writers send metadata once per tag
                    templates.append(ev)
                continue
            for t, ev in enumerate(templates):
                ev.step, ev.wall_time = step, WALL0 + step + t * 1e-4
                ev.summary.value[0].tensor.tensor_content = b[t].tobytes()
                payloads.append(ev.SerializeToString())
        buckets_seen.append(30)
    else:
        limits = _tf_default_limits()
        for step, w in _walk(tags, steps, n, seed=len(name)):
            for t, tag in enumerate(names):
                h = _tf1_proto(w[t], limits)
                buckets_seen.append(len(h.bucket))
                ev = event_pb2.Event(
                    wall_time=WALL0 + step + t * 1e-4, step=step,
                    summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, histo=h)]),
                )
                payloads.append(ev.SerializeToString())
    path = os.path.join(rundir, f"events.out.tfevents.{int(WALL0)}.bench.{name}")
    with open(path, "wb") as f:
        f.write(_frame(payloads))
    info = {
        "format": FORMAT_VERSION, "writer": writer, "tags": tags, "steps": steps,
        "histograms": tags * steps, "last_tag": names[-1], "last_step": steps - 1,
        "bytes": os.path.getsize(path), "buckets_mean": float(np.mean(buckets_seen)),
        "buckets_max": int(np.max(buckets_seen)),
    }
    with open(os.path.join(logdir, "bench.json"), "w") as f:
        json.dump(info, f)
    return info


def ensure(name: str, out: str) -> tuple[str, dict]:
    logdir = os.path.join(out, name)
    meta = os.path.join(logdir, "bench.json")
    if os.path.exists(meta):
        with open(meta) as f:
            info = json.load(f)
        if info.get("format") == FORMAT_VERSION:
            return logdir, info
    shutil.rmtree(logdir, ignore_errors=True)
    t = time.perf_counter()
    info = generate(name, logdir)
    print(f"# generated {name}: {info['bytes'] / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s", flush=True)
    return logdir, info


# ---------------------------------------------------------------- processes

WRAPPER = r"""
import json, resource, subprocess, sys, time
cmd, stdout = json.loads(sys.argv[1]), sys.argv[2]
out = subprocess.DEVNULL if stdout == "null" else subprocess.PIPE
t = time.perf_counter()
try:
    p = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, timeout=float(sys.argv[3]))
    rc, o, e = p.returncode, p.stdout, p.stderr
except subprocess.TimeoutExpired as x:  # the child is killed; keep what it printed
    rc, o, e = "timeout", x.stdout, x.stderr
wall = time.perf_counter() - t
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
rss, cpu = usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime
print(json.dumps({"wall": wall, "rss": rss, "cpu": cpu, "rc": rc,
                  "stdout": (o or b"").decode()[-2000:], "stderr": (e or b"").decode()[-2000:]}))
"""

FLOOR = r"""
import os, struct, sys
from tensorboard.compat.proto import event_pb2
parse, unpack, n = event_pb2.Event.FromString, struct.unpack_from, 0
for d, _, files in os.walk(sys.argv[1]):
    for f in files:
        if "tfevents" not in f:
            continue
        with open(os.path.join(d, f), "rb") as fh:
            raw = fh.read()
        pos, size = 0, len(raw)
        while pos + 12 <= size:
            (length,) = unpack("<Q", raw, pos)
            parse(raw[pos + 12 : pos + 12 + length])
            pos += 16 + length
            n += 1
print(n)
"""

TBPARSE = r"""
import sys, tbparse
r = tbparse.SummaryReader(sys.argv[1], pivot=False)
h, t = r.histograms, r.tensors
print(len(h) + len(t))
"""

INPROC = r"""
import json, sys, time
from tensorboard import context
from tensorboard.backend.event_processing import data_provider as mdp
from tensorboard.backend.event_processing import plugin_event_multiplexer as mux
from tensorboard.data import provider
logdir, verify = sys.argv[1], sys.argv[2] == "1"
t = time.perf_counter()
m = mux.EventMultiplexer()
m.AddRunsFromDirectory(logdir)
m.Reload()
load = time.perf_counter() - t
dp = mdp.MultiplexerDataProvider(m, logdir)
ctx = context.RequestContext()
listing = dp.list_tensors(ctx, experiment_id="", plugin_name="histograms")
tags = sorted({t for ts in listing.values() for t in ts})
flt = provider.RunTagFilter(runs=list(listing), tags=tags)
t = time.perf_counter()
data = dp.read_tensors(ctx, experiment_id="", plugin_name="histograms", downsample=1000, run_tag_filter=flt)
read = time.perf_counter() - t
kept = sum(len(v) for ts in data.values() for v in ts.values())
out = {"load": load, "read": read, "tags": len(tags), "kept": kept}
print(json.dumps(out), flush=True)
if verify:
    from tb_stagnation.sources import eventfile
    d = eventfile.read_logdir(logdir)
    out["skipped"] = [str(s) for s in d.skipped]
    out["all_samples"] = sum(len(s.steps) for ts in d.histograms.values() for s in ts.values())
    del d
    print(json.dumps(out), flush=True)
# Drift + ranking over that provider, as the plugin's cold /ranking does it (minus HTTP/JSON).
from tb_stagnation.verdict import vocabulary
from tb_stagnation import engine
from tb_stagnation.sources.provider import DEFAULT_DOWNSAMPLE, ProviderSource
reader = engine.Engine(ProviderSource(dp, DEFAULT_DOWNSAMPLE))
t = time.perf_counter()
r = reader.rank(ctx, "", reader.source.histogram_tags(ctx, ""), reader.source.exact_tags(ctx, ""), vocabulary.DEFAULT_RATIO).ranking
out["rank"] = time.perf_counter() - t
out["rows"] = len(r.rows)
print(json.dumps(out), flush=True)
"""


def measure(cmd: list[str], stdout: str = "pipe", timeout: float = 600) -> dict:
    """Run ``cmd`` under the wrapper: wall time, the child's peak RSS, rc, output."""
    w = subprocess.run(
        [PY, "-c", WRAPPER, json.dumps(cmd), stdout, str(timeout)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT,
    )
    if w.returncode != 0:
        return {"wall": float("nan"), "rss": float("nan"), "cpu": float("nan"), "rc": -1, "stdout": "",
                "stderr": w.stderr.decode()[-500:]}
    return json.loads(w.stdout)


def repeated(cmd: list[str], repeat: int, stdout: str = "pipe", timeout: float = 600) -> dict:
    runs = [measure(cmd, stdout, timeout) for _ in range(repeat)]
    best = dict(runs[-1])
    best["wall"] = statistics.median(r["wall"] for r in runs)
    best["wall_min"] = min(r["wall"] for r in runs)
    best["cpu"] = statistics.median(r["cpu"] for r in runs)
    best["rss"] = max(r["rss"] for r in runs)
    if any(r["rc"] != 0 for r in runs):
        best["rc"] = next(r["rc"] for r in runs if r["rc"] != 0)
    return best


# ---------------------------------------------------------------- live TensorBoard


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 600) -> tuple[float, bytes]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=timeout) as r:
        body = r.read()
    return time.perf_counter() - t, body


def _vmhwm(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) * 1024
    return float("nan")


@contextlib.contextmanager
def tensorboard(logdir: str):
    port = _free_port()
    tb = os.path.join(os.path.dirname(PY), "tensorboard")
    proc = subprocess.Popen(
        [tb, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(port), "--load_fast=false"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd="/tmp",
    )
    try:
        yield proc, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def live(logdir: str, info: dict, budget: float, warm_calls: int = 5) -> dict:
    out = {}
    with tensorboard(logdir) as (proc, base):
        t0 = time.perf_counter()
        hist = f"{base}/data/plugin/histograms/histograms?" + urllib.parse.urlencode(
            {"run": RUN, "tag": info["last_tag"]})
        ready = False
        while time.perf_counter() - t0 < budget:
            if proc.poll() is not None:
                return {"error": "tensorboard exited: " + proc.stderr.read().decode()[-500:]}
            try:
                _, body = _get(f"{base}/data/plugins_listing", timeout=30)
                listing = json.loads(body)
                if listing.get("stagnation", {}).get("enabled"):
                    _, body = _get(hist, timeout=30)
                    data = json.loads(body)
                    if data and data[-1][1] == info["last_step"]:
                        ready = True
                        break
            except (OSError, ValueError):
                pass
            time.sleep(0.25)
        out["ready"] = time.perf_counter() - t0
        if not ready:
            out["error"] = f"not loaded within {budget:.0f} s"
            return out
        _, body = _get(f"{base}/data/plugin/histograms/tags")
        tags = json.loads(body).get(RUN, {})
        out["tags_listed"] = len(tags)
        rank_url = f"{base}/data/plugin/stagnation/ranking"
        try:
            out["rank_cold"], body = _get(rank_url, timeout=budget)
        except OSError:
            out["error"] = f"/ranking cold took more than {budget:.0f} s"
            out["rank_cold"] = float("inf")
            out["rss"] = _vmhwm(proc.pid)
            return out
        out["rank_rows"] = len(json.loads(body)["rows"])
        out["rank_warm"] = statistics.median(_get(rank_url)[0] for _ in range(warm_calls))
        t = time.perf_counter()
        for tag in tags:
            _get(f"{base}/data/plugin/histograms/histograms?" + urllib.parse.urlencode({"run": RUN, "tag": tag}))
        out["histograms_all"] = time.perf_counter() - t
        out["rss"] = _vmhwm(proc.pid)
    return out


# ---------------------------------------------------------------- report


def _bytecode() -> str:
    """Compile the package's bytecode ahead, as ``pip install`` does; what was done, for the header.

    Every process measured imports tb_stagnation: with ``PYTHONDONTWRITEBYTECODE``
    set (as in CI and some sandboxes) and no ``__pycache__`` (an editable
    install), each one would compile ~46 modules from source first, ~0.1-0.2 s
    that no installed copy pays. Checked-hash files, so an edit made while
    the bench runs is compiled afresh rather than missed.
    """
    package = os.path.join(ROOT, "tb_stagnation")
    subprocess.run([PY, "-m", "compileall", "-q", "--invalidation-mode", "checked-hash", package], check=True)
    return f"bytecode of {package} compiled ahead (checked-hash), as an installed package has it"


def _load() -> str:
    return "load average %.2f %.2f %.2f, nproc %d" % (*os.getloadavg(), os.cpu_count())


def _s(x) -> str:
    if x == float("inf"):
        return "timeout"
    if x is None or (isinstance(x, float) and not np.isfinite(x)):
        return "-"
    return f"{x * 1000:.1f} ms" if x < 1 else f"{x:.2f} s"


def _mb(x) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{x / 2**20:.0f} MB"


def _ratio(a, b) -> float:
    try:
        return a / b
    except (TypeError, ZeroDivisionError):
        return float("nan")


def _mark(ok) -> str:
    return "MET" if ok else "NOT MET"


def bench_size(name: str, logdir: str, info: dict, repeat: int, timeout: float) -> dict:
    r = {"info": info}
    print(f"\n## {name}: {info['writer']} {info['tags']} tags x {info['steps']} steps = {info['histograms']} histograms, "
          f"{info['bytes'] / 1e6:.1f} MB, buckets mean {info['buckets_mean']:.0f} max {info['buckets_max']}  [{_load()}]",
          flush=True)
    r["floor"] = repeated([PY, "-c", FLOOR, logdir], repeat, timeout=timeout)
    r["cli"] = repeated([PY, "-m", "tb_stagnation.cli", logdir, "--json"], repeat, stdout="null", timeout=timeout)
    r["tbparse"] = repeated([PY, "-c", TBPARSE, logdir], repeat, timeout=timeout)
    inproc = measure([PY, "-c", INPROC, logdir, "1"], timeout=timeout)
    lines = [ln for ln in inproc["stdout"].splitlines() if ln.startswith("{")]
    r["inproc"] = json.loads(lines[-1]) if lines else {}
    if inproc["rc"] == "timeout":
        r["inproc"].setdefault("rank", float("inf"))
    elif inproc["rc"] != 0:
        r["inproc"]["error"] = f"rc {inproc['rc']}: " + inproc["stderr"]
    r["live"] = live(logdir, info, budget=timeout)
    for k in ("floor", "cli", "tbparse"):
        if r[k]["rc"] != 0:
            r[k]["wall"] = float("inf") if r[k]["rc"] == "timeout" else float("nan")
            why = f"took more than {timeout:.0f} s (timeout)" if r[k]["rc"] == "timeout" else f"failed (rc {r[k]['rc']}): {r[k]['stderr'][-300:]}"
            print(f"# {k} {why}")
    ip, lv = r["inproc"], r["live"]
    checks = []
    if "skipped" in ip:
        checks.append(f"eventfile.read_logdir: {len(ip['skipped'])} skips, {ip['all_samples']} samples "
                      f"(expected {info['histograms']})")
        checks.append(f"MultiplexerDataProvider lists {ip['tags']} tags (expected {info['tags']}), kept {ip['kept']}")
    if "tags_listed" in lv:
        checks.append(f"live TensorBoard lists {lv['tags_listed']} tags, ranking has {lv['rank_rows']} rows")
    if r["floor"]["rc"] == 0:
        checks.append(f"parse floor read {r['floor']['stdout'].strip()} records")
    if r["tbparse"]["rc"] == 0:
        checks.append(f"tbparse rows: {r['tbparse']['stdout'].strip()}")
    print("checks: " + "; ".join(checks))
    if "error" in ip:
        print("# inproc failed: " + ip["error"][-300:])
    if "error" in lv:
        print("# live failed: " + lv["error"])
    rep = f" (median of {repeat})" if repeat > 1 else ""
    rows = [
        ("parse floor (process)" + rep, _s(r["floor"]["wall"]), _mb(r["floor"]["rss"])),
        ("  its CPU time (user + system)", _s(r["floor"]["cpu"]), ""),
        ("CLI --json (process)" + rep, _s(r["cli"]["wall"]), _mb(r["cli"]["rss"])),
        ("  its CPU time (user + system, all threads)", _s(r["cli"]["cpu"]), ""),
        ("tbparse histograms+tensors (process)" + rep, _s(r["tbparse"]["wall"]), _mb(r["tbparse"]["rss"])),
        ("in-process multiplexer Reload (default guidance)", _s(ip.get("load")), ""),
        ("in-process read_tensors, all tags, downsample=1000", _s(ip.get("read")), ""),
        ("in-process Reader.summaries + rank (no HTTP)", _s(ip.get("rank")), ""),
        ("live TB: start until loaded (Python loader)", _s(lv.get("ready")), _mb(lv.get("rss"))),
        ("live TB: /stagnation/ranking cold", _s(lv.get("rank_cold")), ""),
        ("live TB: /stagnation/ranking warm (median of 5)", _s(lv.get("rank_warm")), ""),
        (f"live TB: /histograms/histograms x {lv.get('tags_listed', '?')} tags", _s(lv.get("histograms_all")), ""),
    ]
    w = max(len(a) for a, _, _ in rows)
    print(f"{'figure':<{w}}  {'time':>10}  {'peak RSS':>9}")
    for a, b, c in rows:
        print(f"{a:<{w}}  {b:>10}  {c:>9}")
    return r


def summary(results: dict) -> None:
    print("\n## Targets")
    # Cold ranking against read_tensors two ways: in one process over one provider, back to back
    # (the target), and the live server's route against that same in-process read (the route's
    # HTTP, listing and JSON, and the server's own reload thread competing for the two cores).
    # The CLI and the floor's CPU time (user + system, all threads) beside their wall times: on cores
    # other jobs keep busy, wall times stretch with the queue; CPU time tells what each process did.
    print(f"{'size':<12} {'CLI/floor':>10} {'<=2x':>8} {'tbparse/CLI':>12} {'>=5x':>8} "
          f"{'cold/read_tensors':>18} {'<=1.5x':>8} {'route/read':>11} {'rank warm':>10} {'CPU CLI/floor':>14}")
    for name, r in results.items():
        a = _ratio(r["cli"]["wall"], r["floor"]["wall"])
        b = _ratio(r["tbparse"]["wall"], r["cli"]["wall"])
        c = _ratio(r["inproc"].get("rank"), r["inproc"].get("read"))
        d = _ratio(r["live"].get("rank_cold"), r["inproc"].get("read"))
        e = _ratio(r["cli"].get("cpu"), r["floor"].get("cpu"))
        print(f"{name:<12} {a:>9.2f}x {_mark(a <= 2):>8} {b:>11.2f}x {_mark(b >= 5):>8} "
              f"{c:>17.2f}x {_mark(c <= 1.5):>8} {d:>10.2f}x {_s(r['live'].get('rank_warm')):>10} {e:>13.2f}x")
    if "tf2_wide" in results:
        warm = results["tf2_wide"]["live"].get("rank_warm", float("nan"))
        print(f"ranking warm at tf2_wide: {_s(warm)} (target < 20 ms): {_mark(warm < 0.020)}")

    print("\n## Growth (per histogram; 'marginal' = (size - small) / (histograms - small's))")
    print(f"{'size':<12} {'hists':>7} {'CLI us/h':>9} {'marg us/h':>10} {'CLI B/h':>9} {'marg B/h':>9} "
          f"{'floor us/h':>11} {'tbparse us/h':>13} {'tbparse B/h':>12}")
    base = results.get("small")
    marg = {}
    for name, r in results.items():
        h = r["info"]["histograms"]
        cli_t, cli_m = r["cli"]["wall"], r["cli"]["rss"]
        mt = mm = float("nan")
        if base is not None and name != "small":
            dh = h - base["info"]["histograms"]
            mt = (cli_t - base["cli"]["wall"]) / dh
            mm = (cli_m - base["cli"]["rss"]) / dh
            marg[name] = (mt, mm)
        print(f"{name:<12} {h:>7} {cli_t / h * 1e6:>9.1f} {mt * 1e6:>10.1f} {cli_m / h:>9.0f} {mm:>9.0f} "
              f"{r['floor']['wall'] / h * 1e6:>11.1f} {r['tbparse']['wall'] / h * 1e6:>13.1f} "
              f"{r['tbparse']['rss'] / h:>12.0f}")
    if "tf2_long" in marg and "tf2_wide" in marg:
        (lt, lm), (wt, wm) = marg["tf2_long"], marg["tf2_wide"]
        ok_t, ok_m = wt <= 1.5 * lt, wm <= 1.5 * lm
        print(f"linear in data (CLI marginal cost per histogram, tf2_wide (200k) vs tf2_long (100k), same 30-bucket "
              f"histograms, within 1.5x): time {wt / lt:.2f}x {_mark(ok_t)}, memory {wm / lm:.2f}x {_mark(ok_m)}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default=",".join(SIZES), help="comma-separated, from: " + ", ".join(SIZES))
    p.add_argument("--out", default="/tmp/tb-stagnation-bench", help="where generated logs live (reused)")
    p.add_argument("--repeat", type=int, default=1, help="runs per process figure (median reported)")
    p.add_argument("--timeout", type=float, default=300, help="seconds allowed per figure (default %(default)s)")
    p.add_argument("--quick", action="store_true", help="sizes small and tf2_medium only: a few minutes")
    args = p.parse_args()
    if args.quick:
        args.sizes = "small,tf2_medium"
    sizes = [s for s in args.sizes.split(",") if s]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        p.error(f"unknown size {unknown[0]!r}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    print(f"# tb-stagnation read-path bench; {_load()}; python {sys.version.split()[0]}", flush=True)
    print(f"# {_bytecode()}", flush=True)
    logs = {s: ensure(s, args.out) for s in sizes}
    t = time.perf_counter()
    results = {s: bench_size(s, *logs[s], args.repeat, args.timeout) for s in sizes}
    summary(results)
    print(f"\n# done in {time.perf_counter() - t:.0f} s; {_load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
