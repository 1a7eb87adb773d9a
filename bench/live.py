"""Live-training benchmark (issue 13): the ranking after a reload against reading the changed tags, per loader.

A training job appends a few steps to every tag between TensorBoard's
reloads, so every tag changes. For each loader, over the data provider
TensorBoard itself would use:

  python   an ``EventMultiplexer`` sized as TensorBoard's ``LocalDataIngester``
           sizes it (histograms: 500 samples a tag, or ``--reservoir``) and a
           ``MultiplexerDataProvider``, in this process; a reload is
           ``Reload()``
  rust     TensorBoard's own data server (``tensorboard_data_server``, the
           ``--load_fast=true`` loader) as a subprocess, flags as TensorBoard
           passes them (``--samples-per-plugin`` empty, so the server's own
           default of 100 samples a tag for tensors; ``--reservoir`` sets
           ``histograms=N``), reloading every second, through
           ``GrpcDataProvider``; a reload is waiting until ``list_tensors``
           shows the last written step on every tag

after each append, timed:

  read       ``read_tensors`` of the changed tags: what any ranking must pay
  ranking    ``Reader.summaries`` + ``ranking.rank`` after the reload, the
             incremental path: its own ``read_tensors``, and the rest (drift
             and ranking)
  scratch    ``incremental.summarise_all`` of the same samples + ``ranking.rank``:
             what the rest cost before

and the pairs the incremental path measured. Medians over ``--reloads``,
both loaders side by side in one table, with the issue's targets (ranking
<= 1.2x the read, median ranking <= 1 s) marked MET / NOT MET per loader.
Both loaders follow the same log (one writer; each append is loaded by
both, then each is measured in turn while the other is idle). The log is
built with ``bench/run.py``'s generator pieces (random walks, 30-bucket TF2
histograms); a reservoir below the step count makes reloads drop old
samples, as a long run does.

    .venv/bin/python bench/live.py [--loader python|rust|both] [--tags 1000] [--steps 200]
                                   [--append 2] [--reloads 5] [--reservoir N]

``--route`` measures what the user waits for instead (issue 22): a real
``tensorboard --reload_interval 1`` per loader on the log while a writer
appends a step to every tag each second (``bench/load_test.py``'s writer),
and one client polling ``/ranking`` as the tab does (every ``--poll``
seconds, for ``--seconds``) after its first ranking: the route's latency and
how far the newest step it shows (``as_of``) is behind the writer, medians
per loader, with the targets (median latency <= 150 ms, median lag <= 15
steps) marked. ``--quick``: 50 steps before, 30 s of polling.

    .venv/bin/python bench/live.py --route [--tags 1000] [--steps 200] [--seconds 60] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as gen  # noqa: E402  (bench/run.py: the log generator)

RUST_DEFAULT_RESERVOIR = 100  # the data server's capacity for DataClass::Tensor without a hint
SERVER_RELOAD_SECONDS = 1  # the data server's --reload: seconds it sleeps between load cycles
TARGET_RATIO = 1.2
TARGET_SECONDS = 1.0


class Log:
    """One run's event file that a random-walk "training" appends steps to, every tag at each step.

    The walk is fixed by ``seed``, so a Log made again over the same file
    and passed over the steps it holds (``append(n, write=False)``) goes on
    where the first left off, in another process too.
    """

    def __init__(self, logdir: str, tags: int, run: str = gen.RUN, seed: int = 13, values: int = 1024) -> None:
        self.path = os.path.join(logdir, run, f"events.out.tfevents.{int(gen.WALL0)}.live")
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.names = gen._tag_names(tags)
        self.walk = gen._walk(tags, 10**9, values, seed=seed)
        self.templates: list = []  # per tag, its event without the metadata only the first write carries
        self.last_step = -1

    def append(self, steps: int, write: bool = True) -> int:
        """Write the next ``steps`` steps, or with ``write=False`` pass over them; the bytes written."""
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.histogram import summary_v2

        payloads = []
        for _ in range(steps):
            step, w = next(self.walk)
            self.last_step = step
            if step == 0:
                payloads.append(event_pb2.Event(wall_time=gen.WALL0, file_version="brain.Event:2").SerializeToString())
                for t, tag in enumerate(self.names):
                    event = event_pb2.Event(wall_time=gen.WALL0, step=0,
                                            summary=summary_v2.histogram_pb(tag, w[t], buckets=30))
                    payloads.append(event.SerializeToString())
                    event.summary.value[0].ClearField("metadata")
                    self.templates.append(event)
                continue
            if not write:
                continue
            for t, (event, buckets) in enumerate(zip(self.templates, gen._tf2_buckets(w))):
                event.step, event.wall_time = step, gen.WALL0 + step + t * 1e-4
                event.summary.value[0].tensor.tensor_content = buckets.tobytes()
                payloads.append(event.SerializeToString())
        if not write:
            return 0
        framed = gen._frame(payloads)
        with open(self.path, "ab") as f:
            f.write(framed)
        return len(framed)


def timed(base: type) -> type:
    """``base`` (a data provider class) adding up the seconds its ``read_tensors`` takes."""

    class Timed(base):
        seconds = 0.0

        def read_tensors(self, ctx, **kwargs):
            t = time.perf_counter()
            try:
                return super().read_tensors(ctx, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

    Timed.__name__ = f"Timed{base.__name__}"
    return Timed


class PythonLoader:
    """The ``--load_fast=false`` loader in this process, sized as TensorBoard sizes it."""

    name = "python"

    def __init__(self, logdir: str, reservoir: int | None) -> None:
        from tensorboard.backend.event_processing import data_ingester
        from tensorboard.backend.event_processing import data_provider as mdp
        from tensorboard.backend.event_processing import plugin_event_multiplexer as mux

        from tb_stagnation import records

        guidance = dict(data_ingester.DEFAULT_TENSOR_SIZE_GUIDANCE)
        if reservoir is not None:
            guidance[records.HISTOGRAMS_PLUGIN_NAME] = reservoir
        self.reservoir = guidance[records.HISTOGRAMS_PLUGIN_NAME]
        self.reservoir_note = "--reservoir" if reservoir is not None else "TensorBoard default"
        self.multiplexer = mux.EventMultiplexer(size_guidance=data_ingester.DEFAULT_SIZE_GUIDANCE,
                                                tensor_size_guidance=guidance)
        self.multiplexer.AddRunsFromDirectory(logdir)
        self.provider = timed(mdp.MultiplexerDataProvider)(self.multiplexer, logdir)

    def sync(self, last_step: int) -> None:
        self.multiplexer.Reload()

    def close(self) -> None:
        pass


class RustLoader:
    """TensorBoard's data server (``--load_fast=true``) as a subprocess, through ``GrpcDataProvider``."""

    name = "rust"

    def __init__(self, logdir: str, reservoir: int | None, workdir: str, tags: int) -> None:
        import grpc
        import tensorboard_data_server
        from tensorboard.data import grpc_provider
        from tensorboard.data.proto import data_provider_pb2

        from tb_stagnation import records

        self.tags = tags
        self.reservoir = RUST_DEFAULT_RESERVOIR if reservoir is None else reservoir
        self.reservoir_note = "--reservoir" if reservoir is not None else "server default"
        binary = tensorboard_data_server.server_binary()
        if binary is None:
            raise RuntimeError("tensorboard_data_server has no binary for this platform")
        self.version = tensorboard_data_server.__version__
        port_file = os.path.join(workdir, "port")
        error_file = os.path.join(workdir, "startup_error")
        self.log_path = os.path.join(workdir, "data_server.log")
        hint = "" if reservoir is None else f"{records.HISTOGRAMS_PLUGIN_NAME}={reservoir or 'all'}"
        args = [binary, f"--logdir={logdir}", f"--reload={SERVER_RELOAD_SECONDS}",
                f"--samples-per-plugin={hint}", "--port=0", f"--port-file={port_file}",
                "--die-after-stdin", f"--error-file={error_file}"]
        self.channel = None
        with open(self.log_path, "w") as log:
            # --die-after-stdin: the server also dies if this process does, however it ends.
            self.proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT)
        try:
            port = self._port(port_file, error_file)
            addr = f"localhost:{port}"
            self.channel = grpc.insecure_channel(addr, options=[("grpc.max_receive_message_length", 1 << 28)])
            stub = grpc_provider.make_stub(self.channel)
            stub.GetExperiment(data_provider_pb2.GetExperimentRequest(), timeout=10)
            self.provider = timed(grpc_provider.GrpcDataProvider)(addr, stub)
        except BaseException:
            self.close()
            raise

    def _port(self, port_file: str, error_file: str, timeout: float = 30) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"data server exited with {self.proc.returncode}: {_read(error_file) or _read(self.log_path)}")
            text = _read(port_file)
            if text and text.endswith("\n"):
                return int(text)
            time.sleep(0.05)
        raise TimeoutError("the data server wrote no port file")

    def sync(self, last_step: int, timeout: float = 600) -> None:
        """Wait until the server has loaded ``last_step`` on every tag (it reloads on its own)."""
        from tensorboard import context

        from tb_stagnation import records

        ctx = context.RequestContext()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"data server exited with {self.proc.returncode}; see {self.log_path}")
            listing = self.provider.list_tensors(ctx, experiment_id="", plugin_name=records.HISTOGRAMS_PLUGIN_NAME)
            series = [meta for tags in listing.values() for meta in tags.values()]
            if len(series) == self.tags and all(meta.max_step == last_step for meta in series):
                return
            time.sleep(0.02)
        raise TimeoutError(f"the data server did not load step {last_step} of every tag in {timeout:g} s")

    def close(self) -> None:
        if self.channel is not None:
            self.channel.close()
        with contextlib.suppress(OSError):
            self.proc.stdin.close()  # --die-after-stdin: the server exits on EOF
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        return None


class Bench:
    """One loader's reader and its figures."""

    def __init__(self, loader) -> None:
        from tb_stagnation import engine
        from tb_stagnation.sources import provider

        self.loader = loader
        self.reader = engine.Engine(provider.ProviderSource(loader.provider, provider.DEFAULT_DOWNSAMPLE))
        self.figures: dict[str, list[float]] = {k: [] for k in
                                               ("sync", "read", "ranking", "rest", "scratch", "pairs", "kept")}
        self.cold = self.cold_pairs = self.initial = float("nan")
        self.rows = 0

    def rank(self, ctx):
        from tb_stagnation.verdict import vocabulary

        return self.reader.rank(ctx, "", self.reader.source.histogram_tags(ctx, ""), {}, vocabulary.DEFAULT_RATIO).ranking

    def first(self, ctx, last_step: int) -> None:
        t = time.perf_counter()
        self.loader.sync(last_step)
        self.initial = time.perf_counter() - t
        t = time.perf_counter()
        self.rows = len(self.rank(ctx).rows)
        self.cold = time.perf_counter() - t
        self.cold_pairs = self.reader.pairs_analysed

    def sync(self, last_step: int) -> None:
        t = time.perf_counter()
        self.loader.sync(last_step)
        self.figures["sync"].append(time.perf_counter() - t)

    def measure(self, ctx) -> None:
        from tb_stagnation import records
        from tb_stagnation.measure import incremental
        from tb_stagnation.sources.provider import DEFAULT_DOWNSAMPLE, sample_of
        from tb_stagnation.verdict import ranking, vocabulary

        provider, f = self.loader.provider, self.figures
        listing = self.reader.source.histogram_tags(ctx, "")
        t = time.perf_counter()
        data = provider.read_tensors(ctx, experiment_id="", plugin_name=records.HISTOGRAMS_PLUGIN_NAME,
                                     downsample=DEFAULT_DOWNSAMPLE, run_tag_filter=None)
        f["read"].append(time.perf_counter() - t)
        before, read_before = self.reader.pairs_analysed, provider.seconds
        t = time.perf_counter()
        result = self.rank(ctx)
        f["ranking"].append(time.perf_counter() - t)
        f["rest"].append(f["ranking"][-1] - (provider.seconds - read_before))
        f["pairs"].append(self.reader.pairs_analysed - before)
        tags = list(listing[gen.RUN])
        samples = [sample_of(data[gen.RUN][tag]) for tag in tags]
        f["kept"].append(statistics.median(len(s[0]) for s in samples))
        t = time.perf_counter()
        scratch = incremental.summarise_all(samples)
        ranking.rank({gen.RUN: dict(zip(tags, scratch))}, {}, vocabulary.DEFAULT_RATIO)
        f["scratch"].append(time.perf_counter() - t)
        assert len(result.rows) == self.rows, (len(result.rows), self.rows)

    def median(self, key: str) -> float:
        return statistics.median(self.figures[key]) if self.figures[key] else float("nan")


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _mark(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def report(args, benches: list[Bench]) -> bool:
    """Print the side-by-side table; True when every target is met on every loader measured."""
    width = 24
    ms = lambda x: f"{1e3 * x:.0f} ms"  # noqa: E731
    head = f"{'':44s}" + "".join(f"{b.loader.name:>{width}s}" for b in benches)
    lines = [
        ("reservoir (histograms kept a tag)", lambda b: f"{b.loader.reservoir} ({b.loader.reservoir_note})"),
        ("samples a tag read (median)", lambda b: f"{b.median('kept'):.0f}"),
        ("initial load", lambda b: f"{b.initial:.1f} s"),
        ("cold ranking", lambda b: f"{ms(b.cold)}, {b.cold_pairs} pairs"),
        ("reload (Reload() / data server catching up)", lambda b: ms(b.median("sync"))),
        ("read: read_tensors of the changed tags", lambda b: ms(b.median("read"))),
        ("ranking, incremental", lambda b: ms(b.median("ranking"))),
        ("ranking / read", lambda b: f"{b.median('ranking') / b.median('read'):.2f}x"),
        ("  rest: drift and ranking", lambda b: ms(b.median("rest"))),
        ("  pairs measured", lambda b: f"{b.median('pairs'):.0f}"),
        ("drift and ranking from scratch", lambda b: ms(b.median("scratch"))),
    ]
    print(f"\nafter a reload, median of {args.reloads} (+{args.append} steps on every tag each):")
    print(head)
    for label, cell in lines:
        print(f"{label:44s}" + "".join(f"{cell(b):>{width}s}" for b in benches))
    print("targets (issue 13):")
    ok = True
    for label, test in [
        (f"ranking <= {TARGET_RATIO}x read", lambda b: b.median("ranking") <= TARGET_RATIO * b.median("read")),
        (f"median ranking <= {TARGET_SECONDS:g} s", lambda b: b.median("ranking") <= TARGET_SECONDS),
    ]:
        marks = [test(b) for b in benches]
        ok = ok and all(marks)
        print(f"  {label:42s}" + "".join(f"{_mark(m):>{width}s}" for m in marks))
    print(f"{os.cpu_count()} cores (os.cpu_count()), load average {_load()} (1, 5, 15 min) at the end", flush=True)
    return ok


def _fetch(url: str) -> tuple[int, bytes]:
    """(status, body) of a GET, errors included."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=120) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


ROUTE_TARGET_MS = 150.0
ROUTE_TARGET_LAG = 15


def route_bench(args) -> bool:
    """``--route``: per loader, the ranking route's latency and lag behind a writer at a step a second."""
    import threading
    from pathlib import Path

    import load_test

    print(f"--route: {args.tags} tags x {args.steps} steps, then +1 step/s on every tag; one client polling "
          f"/ranking every {args.poll:g} s for {args.seconds:g} s; {os.cpu_count()} cores (os.cpu_count()), "
          f"load average {_load()} at the start", flush=True)
    loaders = ("python", "rust") if args.loader == "both" else (args.loader,)
    results = {}
    with tempfile.TemporaryDirectory(prefix="tb-stagnation-route-") as tmp:
        for loader in loaders:
            logdir = Path(tmp) / f"logs-{loader}"
            log = load_test.write_log(logdir, 1, args.tags, args.steps)
            server = load_test.Server(logdir, Path(tmp) / f"tensorboard-{loader}.log", loader, reload_interval=1)
            stop, appended, failures = threading.Event(), [], []
            try:
                server.wait_loaded(1, args.tags, log.steps - 1, timeout=600)
                t = time.perf_counter()
                status, _, _ = load_test.get(server.plugin("ranking"))
                first = time.perf_counter() - t
                writer = threading.Thread(target=load_test.live_writer, args=(log, stop, appended, failures), daemon=True)
                writer.start()
                latencies, lags, refreshing, errors = [], [], 0, int(status != 200)
                stop_at = time.monotonic() + args.seconds
                while time.monotonic() < stop_at:
                    written = log.steps - 1  # before the request: the lag is never flattered
                    t = time.perf_counter()
                    status, raw = _fetch(server.plugin("ranking"))
                    latencies.append(time.perf_counter() - t)  # until the body is in, as a browser waits
                    body = json.loads(raw) if status == 200 else None
                    if body is None:
                        errors += 1
                    else:
                        lags.append(written - max(body["as_of"].values()))
                        refreshing += body["refreshing"]
                    time.sleep(max(0.0, args.poll - latencies[-1]))
                stop.set()
                writer.join(timeout=60)
            finally:
                stop.set()
                server.stop()
            results[loader] = {
                "first": first, "latency": 1e3 * statistics.median(latencies), "max": 1e3 * max(latencies),
                "lag": statistics.median(lags), "max lag": max(lags), "requests": len(latencies),
                "refreshing": refreshing, "errors": errors + len(failures), "steps written": len(appended),
            }
            print(f"[{loader}] {results[loader]}", flush=True)
    width = 14
    print(f"\n{'':36s}" + "".join(f"{name:>{width}s}" for name in results))
    for label, cell in [
        ("first ranking", lambda r: f"{1e3 * r['first']:.0f} ms"),
        ("ranking route latency, median", lambda r: f"{r['latency']:.0f} ms"),
        ("ranking route latency, max", lambda r: f"{r['max']:.0f} ms"),
        ("steps behind the writer, median", lambda r: f"{r['lag']:.0f}"),
        ("steps behind the writer, max", lambda r: f"{r['max lag']:.0f}"),
        ("answers flagged refreshing", lambda r: f"{r['refreshing']}/{r['requests']}"),
        ("steps written while polling", lambda r: f"{r['steps written']}"),
        ("errors", lambda r: f"{r['errors']}"),
    ]:
        print(f"{label:36s}" + "".join(f"{cell(r):>{width}s}" for r in results.values()))
    ok = True
    print("targets (issue 22):")
    for label, test in [
        (f"median latency <= {ROUTE_TARGET_MS:g} ms", lambda r: r["latency"] <= ROUTE_TARGET_MS),
        (f"median lag <= {ROUTE_TARGET_LAG} steps", lambda r: r["lag"] <= ROUTE_TARGET_LAG),
        ("0 errors", lambda r: r["errors"] == 0),
    ]:
        marks = [test(r) for r in results.values()]
        ok = ok and all(marks)
        print(f"  {label:34s}" + "".join(f"{_mark(m):>{width}s}" for m in marks))
    print(f"{os.cpu_count()} cores (os.cpu_count()), load average {_load()} (1, 5, 15 min) at the end", flush=True)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--loader", choices=("python", "rust", "both"), default="both")
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200, help="steps written before the first ranking")
    parser.add_argument("--append", type=int, default=2, help="steps every tag gains per reload")
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--reservoir", type=int, default=None,
                        help="histograms each loader keeps a tag (0: all); default: each loader's own default "
                             "(python 500, rust 100)")
    parser.add_argument("--route", action="store_true", help="the ranking route behind a live writer (issue 22)")
    parser.add_argument("--seconds", type=float, default=60, help="--route: seconds of polling")
    parser.add_argument("--poll", type=float, default=1.0, help="--route: seconds between the client's requests")
    parser.add_argument("--quick", action="store_true", help="--route with 50 steps before and 30 s of polling")
    args = parser.parse_args()
    if args.quick:
        args.route, args.steps, args.seconds = True, 50, 30
    if args.route:
        return 0 if route_bench(args) else 1

    from tensorboard import context

    ctx = context.RequestContext()
    print(f"{args.tags} tags x {args.steps} steps, +{args.append} steps/tag per reload, {args.reloads} reloads, "
          f"loaders: {args.loader}; {os.cpu_count()} cores (os.cpu_count()), load average {_load()} at the start")
    with contextlib.ExitStack() as stack:
        workdir = tempfile.mkdtemp(prefix="tb-stagnation-live-")
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        logdir = os.path.join(workdir, "logs")
        log = Log(logdir, args.tags)
        t = time.perf_counter()
        log.append(args.steps)
        print(f"wrote {args.tags * args.steps} histograms in {time.perf_counter() - t:.1f} s")
        benches = []
        if args.loader in ("python", "both"):
            loader = PythonLoader(logdir, args.reservoir)
            benches.append(Bench(loader))
        if args.loader in ("rust", "both"):
            loader = RustLoader(logdir, args.reservoir, workdir, args.tags)
            stack.callback(loader.close)
            print(f"data server {loader.version} (pid {loader.proc.pid}), --reload={SERVER_RELOAD_SECONDS}")
            benches.append(Bench(loader))
        for b in benches:
            b.first(ctx, log.last_step)
            print(f"{b.loader.name}: initial load {b.initial:.1f} s, cold ranking {1e3 * b.cold:.0f} ms, "
                  f"{b.rows} rows")
        for i in range(args.reloads):
            log.append(args.append)
            for b in benches:  # load the append everywhere first, so no loader works while another is timed
                b.sync(log.last_step)
            for b in benches:
                b.measure(ctx)
            print(f"reload {i + 1}: " + ", ".join(
                f"{b.loader.name} read {1e3 * b.figures['read'][-1]:.0f} ms, ranking {1e3 * b.figures['ranking'][-1]:.0f} ms"
                for b in benches))
        report(args, benches)
    return 0


if __name__ == "__main__":
    sys.exit(main())
