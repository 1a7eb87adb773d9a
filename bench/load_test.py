"""Load test: a real TensorBoard with the plugin, hammered by concurrent clients.

    python bench/load_test.py [--seconds 20] [--clients 4] [--runs 3] [--tags 50] [--steps 100]

Writes a log directory with TensorBoard's TF-free record writer (runs x tags x
steps histograms), starts ``tensorboard`` on 127.0.0.1 only, waits until every
tag is listed, then runs ``--clients`` threads for ``--seconds`` seconds, each
sending a random mix of ``/ranking`` (random filters), ``/series`` and bad
requests with a known expected status. Prints requests served, errors (an
unexpected status, a non-JSON answer or a failed connection) and latency
percentiles; exits 1 on any error. Stops the server itself.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

ROLES = ("weight", "bias", "norm_scale", "gradient", "other")
STATUSES = ("moving", "stagnant", "frozen", "unresolved", "nonfinite", "insufficient")


def tag_name(i: int) -> str:
    layer, kind = divmod(i, 2)
    return f"layer{layer}/{'kernel' if kind == 0 else 'bias'}"


def write_log(logdir: Path, runs: int, tags: int, steps: int, seed: int = 0) -> None:
    """runs x tags x steps histograms (30 buckets over 256 values) with TensorBoard's TF-free writer."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.plugins.histogram import summary_v2
    from tensorboard.summary.writer.record_writer import RecordWriter

    rng = np.random.default_rng(seed)
    for r in range(runs):
        path = logdir / f"run{r}" / f"events.out.tfevents.{1700000000 + r}.bench.{r}"
        path.parent.mkdir(parents=True, exist_ok=True)
        speeds = rng.choice([0.0, 1e-6, 1e-3, 1e-2], size=tags)
        base = rng.normal(0, 0.1, (tags, 256))
        with open(path, "wb") as f:
            writer = RecordWriter(f)
            writer.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
            for step in range(steps):
                for t in range(tags):
                    values = base[t] * (1 + speeds[t] * step)
                    event = event_pb2.Event(step=step, wall_time=1.7e9 + step,
                                            summary=summary_v2.histogram_pb(tag_name(t), values, buckets=30))
                    writer.write(event.SerializeToString())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 60) -> tuple[int, object, str]:
    """(status, parsed JSON or None, content type)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            raw, status, ctype = r.read(), r.status, r.headers.get("Content-Type", "")
    except urllib.error.HTTPError as e:
        raw, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
    try:
        return status, json.loads(raw), ctype
    except ValueError:
        return status, None, ctype


class Server:
    def __init__(self, logdir: Path, log_path: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
             "--port", str(self.port), "--load_fast", "false", "--reload_interval", "5"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def plugin(self, route: str) -> str:
        return f"{self.base}/data/plugin/stagnation/{route}"

    def wait_loaded(self, runs: int, tags: int, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited with {self.proc.returncode}; see {self.log.name}")
            try:
                status, body, _ = get(self.plugin("ranking"))
                if status == 200 and len(body["rows"]) == runs * tags:
                    return
            except OSError:
                pass
            time.sleep(1)
        raise TimeoutError("tensorboard did not load the log in time")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def random_request(rng: random.Random, runs: int, tags: int) -> tuple[str, int]:
    """(route with query, expected status)."""
    run = f"run{rng.randrange(runs)}"
    tag = tag_name(rng.randrange(tags))
    kind = rng.random()
    if kind < 0.45:
        q: list[tuple[str, str]] = []
        if rng.random() < 0.5:
            q += [("run", f"run{i}") for i in rng.sample(range(runs), rng.randint(1, runs))]
        if rng.random() < 0.3:
            q.append(("role", rng.choice(ROLES)))
        if rng.random() < 0.3:
            q.append(("status", rng.choice(STATUSES)))
        if rng.random() < 0.3:
            q.append(("tag", rng.choice([f"^layer{rng.randrange(tags // 2)}/", "kernel$", "bias", "[0-9]+/k"])))
        if rng.random() < 0.3:
            q.append(("ratio", f"{rng.uniform(1e-4, 1):.4g}"))
        return "ranking?" + urllib.parse.urlencode(q), 200
    if kind < 0.8:
        return "series?" + urllib.parse.urlencode({"run": run, "tag": tag}), 200
    bad = [
        ("ranking?run=nope", 404), ("ranking?role=wheel", 400), ("ranking?status=sleepy", 400),
        ("ranking?ratio=abc", 400), ("ranking?ratio=0", 400), ("ranking?tag=%28", 400),
        ("ranking?tag=%28a%2B%29%2B%24", 400), ("series", 400),
        ("series?" + urllib.parse.urlencode({"run": run}), 400),
        ("series?" + urllib.parse.urlencode({"run": run, "tag": "nope"}), 404),
        ("series?" + urllib.parse.urlencode({"run": "nope", "tag": tag}), 404),
    ]
    return rng.choice(bad)


def client(server: Server, seed: int, stop_at: float, runs: int, tags: int, results: list, errors: list) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        route, expected = random_request(rng, runs, tags)
        start = time.perf_counter()
        try:
            status, body, ctype = get(server.plugin(route))
        except OSError as e:
            errors.append((route, f"connection: {e}"))
            continue
        elapsed = time.perf_counter() - start
        results.append(elapsed)
        if status != expected or body is None or not ctype.startswith("application/json"):
            errors.append((route, f"status {status} (expected {expected}), {ctype}"))
        elif status != 200 and not isinstance(body.get("error"), str):
            errors.append((route, "error answer without an error message"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tags", type=int, default=50)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tb-stagnation-load-") as tmp:
        logdir = Path(tmp) / "logs"
        t0 = time.monotonic()
        write_log(logdir, args.runs, args.tags, args.steps, args.seed)
        print(f"wrote {args.runs} runs x {args.tags} tags x {args.steps} steps in {time.monotonic() - t0:.1f} s")
        server = Server(logdir, Path(tmp) / "tensorboard.log")
        try:
            t0 = time.monotonic()
            server.wait_loaded(args.runs, args.tags)
            print(f"tensorboard on {server.base} ready in {time.monotonic() - t0:.1f} s")
            results: list[float] = []
            errors: list[tuple[str, str]] = []
            stop_at = time.monotonic() + args.seconds
            threads = [
                threading.Thread(target=client, args=(server, args.seed * 1000 + i, stop_at,
                                                      args.runs, args.tags, results, errors))
                for i in range(args.clients)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=args.seconds + 120)
            alive = server.proc.poll() is None
        finally:
            server.stop()
    lat = np.array(results) * 1000
    p50, p95, p99 = np.percentile(lat, [50, 95, 99]) if len(lat) else (float("nan"),) * 3
    print(f"clients {args.clients}, {args.seconds:g} s: requests {len(results)} "
          f"({len(results) / args.seconds:.1f}/s), errors {len(errors)}, "
          f"latency ms p50 {p50:.1f} p95 {p95:.1f} p99 {p99:.1f} max {lat.max() if len(lat) else float('nan'):.1f}")
    for route, what in errors[:10]:
        print(f"  error: {route}: {what}")
    if errors or not results or not alive:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
