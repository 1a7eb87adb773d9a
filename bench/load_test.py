"""Load test: a real TensorBoard with the plugin, hammered by concurrent clients.

    python bench/load_test.py [--seconds 20] [--clients 4] [--runs 3] [--tags 50] [--steps 100]
                              [--loader python|rust|both] [--live]

Writes a log directory with TensorBoard's TF-free record writer (runs x tags x
steps histograms), starts ``tensorboard`` on 127.0.0.1 only (``--load_fast=false``
for the Python loader, ``--load_fast=true`` for the Rust data server; ``both``
runs one after the other, each on its own copy of the log), waits until every
tag is listed, then runs ``--clients`` threads for ``--seconds`` seconds, each
sending a random mix of ``/ranking`` (random filters), ``/series`` and bad
requests with a known expected status.

``--live``: while the clients poll, a writer thread appends one step to every
tag of every run about once a second (the same writer, appending to the same
files), and TensorBoard runs with ``--reload_interval 1`` (5 otherwise), so
reloads land during the test.

Prints per loader: requests served, errors (an unexpected status, a non-JSON
answer or a failed connection), 5xx answers, latency percentiles and, live,
the steps appended during the test and the newest step the ranking showed;
exits 1 on any error or 5xx. Stops the servers itself.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
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


class Log:
    """runs x tags histograms (30 buckets over 256 values) written with TensorBoard's TF-free writer.

    Each run is one event file; ``append`` adds one step to every tag of every run.
    """

    def __init__(self, logdir: Path, runs: int, tags: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.tags = tags
        self.paths = [logdir / f"run{r}" / f"events.out.tfevents.{1700000000 + r}.bench.{r}" for r in range(runs)]
        self.speeds = [rng.choice([0.0, 1e-6, 1e-3, 1e-2], size=tags) for _ in range(runs)]
        self.bases = [rng.normal(0, 0.1, (tags, 256)) for _ in range(runs)]
        self.steps = 0  # steps written to every tag so far

    def moved(self, logdir: Path) -> "Log":
        """The same log's writer for a copy of its files in ``logdir``."""
        other = Log.__new__(Log)
        other.__dict__.update(self.__dict__)
        other.paths = [logdir / p.relative_to(p.parents[1]) for p in self.paths]
        return other

    def append(self, steps: int = 1) -> None:
        """``steps`` more steps on every tag of every run, each step's records written and flushed at once."""
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.histogram import summary_v2
        from tensorboard.summary.writer.record_writer import RecordWriter

        for path, speeds, base in zip(self.paths, self.speeds, self.bases):
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "ab") as f:
                for step in range(self.steps, self.steps + steps):
                    buf = io.BytesIO()  # a step's records reach the file in one write
                    writer = RecordWriter(buf)
                    if step == 0:
                        writer.write(event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString())
                    for t in range(self.tags):
                        values = base[t] * (1 + speeds[t] * step)
                        event = event_pb2.Event(step=step, wall_time=1.7e9 + step,
                                                summary=summary_v2.histogram_pb(tag_name(t), values, buckets=30))
                        writer.write(event.SerializeToString())
                    f.write(buf.getvalue())
                    f.flush()
        self.steps += steps


def write_log(logdir: Path, runs: int, tags: int, steps: int, seed: int = 0) -> Log:
    """runs x tags x steps histograms (30 buckets over 256 values) with TensorBoard's TF-free writer."""
    log = Log(logdir, runs, tags, seed)
    log.append(steps)
    return log


def live_writer(log: Log, stop: threading.Event, appended: list, failures: list, period: float = 1.0) -> None:
    """Append one step to every tag of every run about every ``period`` seconds until ``stop``."""
    next_at = time.monotonic() + period
    try:
        while not stop.wait(max(0.0, next_at - time.monotonic())):
            log.append(1)
            appended.append(time.monotonic())
            next_at = max(next_at + period, time.monotonic())
    except Exception as e:  # a writer failure fails the test instead of going unnoticed
        failures.append(f"writer: {type(e).__name__}: {e}")


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


LOAD_FAST = {"python": "false", "rust": "true"}


class Server:
    def __init__(self, logdir: Path, log_path: Path, loader: str = "python", reload_interval: float = 5) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "w")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--host", "127.0.0.1",
             "--port", str(self.port), "--load_fast", LOAD_FAST[loader], "--reload_interval", f"{reload_interval:g}"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )

    def plugin(self, route: str) -> str:
        return f"{self.base}/data/plugin/stagnation/{route}"

    def wait_loaded(self, runs: int, tags: int, last_step: int = 0, timeout: float = 300) -> None:
        """Until the ranking lists every tag of every run at ``last_step`` (a loader lists a tag at its first step)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited with {self.proc.returncode}; see {self.log.name}")
            try:
                status, body, _ = get(self.plugin("ranking"))
                if (status == 200 and len(body["rows"]) == runs * tags
                        and all(row.get("last_step") == last_step for row in body["rows"])):
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


class Tally:
    """What the clients saw (list appends are atomic under the GIL; ``newest`` is a max, races harmless)."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors: list[tuple[str, str]] = []
        self.server_errors = 0  # 5xx answers
        self.newest = -1  # the newest last_step a ranking answer showed


def client(server: Server, seed: int, stop_at: float, runs: int, tags: int, tally: Tally) -> None:
    rng = random.Random(seed)
    while time.monotonic() < stop_at:
        route, expected = random_request(rng, runs, tags)
        start = time.perf_counter()
        try:
            status, body, ctype = get(server.plugin(route))
        except OSError as e:
            tally.errors.append((route, f"connection: {e}"))
            continue
        elapsed = time.perf_counter() - start
        tally.latencies.append(elapsed)
        if status >= 500:
            tally.server_errors += 1
        if status != expected or body is None or not ctype.startswith("application/json"):
            tally.errors.append((route, f"status {status} (expected {expected}), {ctype}"))
        elif status != 200 and not isinstance(body.get("error"), str):
            tally.errors.append((route, "error answer without an error message"))
        elif route.startswith("ranking"):
            steps = [row.get("last_step") for row in body.get("rows", [])]
            tally.newest = max([tally.newest] + [s for s in steps if isinstance(s, int)])


def run_loader(loader: str, args, tmp: Path, log: Log) -> dict:
    """One TensorBoard on its own copy of the log, loaded, then polled (and written to, live) for --seconds."""
    logdir = tmp / f"logs-{loader}"
    shutil.copytree(tmp / "logs", logdir)
    log = log.moved(logdir)
    server = Server(logdir, tmp / f"tensorboard-{loader}.log", loader, reload_interval=1 if args.live else 5)
    tally, appended, failures = Tally(), [], []
    stop = threading.Event()
    writer = None
    try:
        t0 = time.monotonic()
        server.wait_loaded(args.runs, args.tags, log.steps - 1)
        ready = time.monotonic() - t0
        print(f"[{loader}] tensorboard --load_fast={LOAD_FAST[loader]} on {server.base} served step {log.steps - 1} "
              f"of every tag in {ready:.1f} s",
              flush=True)
        start_step = log.steps
        stop_at = time.monotonic() + args.seconds
        if args.live:
            writer = threading.Thread(target=live_writer, args=(log, stop, appended, failures), daemon=True)
            writer.start()
        threads = [
            threading.Thread(target=client, args=(server, args.seed * 1000 + i, stop_at, args.runs, args.tags, tally))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=max(0.0, stop_at - time.monotonic()) + 120)
        stop.set()
        lasted = args.seconds + time.monotonic() - stop_at  # until the last request in flight at the end
        if writer is not None:
            writer.join(timeout=120)
        hung = [t for t in threads if t.is_alive()] + ([writer] if writer is not None and writer.is_alive() else [])
        if hung:
            failures.append(f"{len(hung)} client or writer threads still running")
        if server.proc.poll() is not None:
            failures.append(f"tensorboard exited with {server.proc.returncode} during the test")
    finally:
        stop.set()
        server.stop()
    lat = np.array(tally.latencies) * 1000
    pct = np.percentile(lat, [50, 95, 99]) if len(lat) else np.full(3, np.nan)
    return {
        "loader": loader, "ready": ready, "requests": len(tally.latencies), "errors": tally.errors,
        "5xx": tally.server_errors, "p50": pct[0], "p95": pct[1], "p99": pct[2],
        "max": lat.max() if len(lat) else float("nan"), "appended": len(appended), "lasted": lasted,
        "first_step": start_step, "last_written": log.steps - 1, "newest_seen": tally.newest, "failures": failures,
    }


def print_result(r: dict, args) -> None:
    print(f"[{r['loader']}] clients {args.clients}, {args.seconds:g} s: requests {r['requests']} "
          f"({r['requests'] / args.seconds:.1f}/s), errors {len(r['errors'])}, 5xx {r['5xx']}, "
          f"latency ms p50 {r['p50']:.1f} p95 {r['p95']:.1f} p99 {r['p99']:.1f} max {r['max']:.1f}")
    if args.live:
        print(f"[{r['loader']}] live: {r['appended']} steps appended to every tag of every run during the test "
              f"({r['lasted']:.1f} s, until the last request ended; steps {r['first_step']}..{r['last_written']}), "
              f"newest step a ranking answer showed: "
              f"{r['newest_seen']}")
    for route, what in r["errors"][:10]:
        print(f"  error: {route}: {what}")
    for what in r["failures"]:
        print(f"  failure: {what}")


def summary_table(results: list[dict], args) -> None:
    width = 14
    print(f"\n{'live' if args.live else 'static'} load test, {args.runs} runs x {args.tags} tags, "
          f"{args.steps} steps written before, {args.clients} clients x {args.seconds:g} s; "
          f"{os.cpu_count()} cores, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'':34s}" + "".join(f"{r['loader']:>{width}s}" for r in results))
    lines = [
        ("tensorboard loaded (s)", lambda r: f"{r['ready']:.1f}"),
        ("requests served", lambda r: f"{r['requests']}"),
        ("requests per second", lambda r: f"{r['requests'] / args.seconds:.1f}"),
        ("errors", lambda r: f"{len(r['errors'])}"),
        ("5xx", lambda r: f"{r['5xx']}"),
        ("latency p50 (ms)", lambda r: f"{r['p50']:.1f}"),
        ("latency p95 (ms)", lambda r: f"{r['p95']:.1f}"),
        ("latency p99 (ms)", lambda r: f"{r['p99']:.1f}"),
        ("latency max (ms)", lambda r: f"{r['max']:.1f}"),
    ]
    if args.live:
        lines += [
            ("test lasted (s, last request)", lambda r: f"{r['lasted']:.1f}"),
            ("steps appended during the test", lambda r: f"{r['appended']}"),
            ("last step written", lambda r: f"{r['last_written']}"),
            ("newest step a ranking showed", lambda r: f"{r['newest_seen']}"),
        ]
    for label, cell in lines:
        print(f"{label:34s}" + "".join(f"{cell(r):>{width}s}" for r in results))
    ok = [not r["errors"] and not r["5xx"] and r["requests"] and not r["failures"] for r in results]
    print(f"{'0 errors, 0 5xx':34s}" + "".join(f"{'MET' if o else 'NOT MET':>{width}s}" for o in ok))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--tags", type=int, default=50)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--loader", choices=("python", "rust", "both"), default="both",
                   help="python: --load_fast=false; rust: --load_fast=true (the data server); both: one, then the other")
    p.add_argument("--live", action="store_true",
                   help="append a step to every tag of every run about once a second during the test, "
                        "TensorBoard reloading every second")
    args = p.parse_args(argv)
    loaders = ["python", "rust"] if args.loader == "both" else [args.loader]
    results = []
    with tempfile.TemporaryDirectory(prefix="tb-stagnation-load-") as tmp:
        t0 = time.monotonic()
        log = write_log(Path(tmp) / "logs", args.runs, args.tags, args.steps, args.seed)
        print(f"wrote {args.runs} runs x {args.tags} tags x {args.steps} steps in {time.monotonic() - t0:.1f} s",
              flush=True)
        for loader in loaders:
            results.append(run_loader(loader, args, Path(tmp), log))
            print_result(results[-1], args)
    summary_table(results, args)
    if any(r["errors"] or r["5xx"] or not r["requests"] or r["failures"] for r in results):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
