"""Memory on a 10,000-tag log directory (issue 13, requirement 5): the CLI and the plugin's caches.

    .venv/bin/python bench/memory.py [--runs 10] [--tags 1000] [--steps 50]

Writes ``--runs`` runs of ``--tags`` TF2 histograms (30 buckets, ``bench/live.py``'s
``Log``: ``bench/run.py``'s random walks) for ``--steps`` steps, then, each in a fresh process:

  CLI by run     ``tb-stagnation LOGDIR --json``: histograms summarised and dropped
                 once ``cli.HELD_HISTOGRAM_BYTES`` are held (the default)
  CLI whole log  the same with no such budget: every histogram held until the end
  plugin         an ``EventMultiplexer`` (the Python loader; every sample kept at
                 these sizes) loaded, then the plugin's ``/ranking`` route: its
                 cold ranking, the caches' bytes against their budgets, RSS
                 growth over the loader's; after one more step on every tag, the
                 reload's ranking and the pairs it measured (10,000: one per tag,
                 so nothing was evicted); and the same with a summary budget of a
                 quarter of what the log needs, where least recently used
                 summaries are evicted and analysed again.

Peak memory is the process's ``VmHWM`` (``ru_maxrss`` would report the parent's).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import live  # noqa: E402  (bench/live.py: a log a random-walk "training" appends to)


def write(logdir: str, runs: int, tags: int, steps: int, first: int = 0) -> int:
    """Append steps ``first .. first+steps-1`` of every tag to each run's event file; bytes written."""
    written = 0
    for r in range(runs):
        log = live.Log(logdir, tags, run=f"run{r:02d}", seed=r, values=256)
        log.append(first, write=False)  # the steps the file holds already
        written += log.append(steps)
    return written


CHILD = r"""
import json, sys, time
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith(("VmHWM", "VmRSS")):
            yield line.split(":")[0], int(line.split()[1]) * 1024
def mem():
    return dict(hwm())
mode, logdir, args = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
out = {}
if mode.startswith("cli"):
    import contextlib, io
    from tb_stagnation import cli, engine
    if mode == "cli_whole":
        engine.HELD_HISTOGRAM_BYTES = 1 << 62
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rc = cli.main([logdir, "--json"])
    out.update(seconds=time.perf_counter() - t, rc=rc, **mem())
else:
    from tensorboard.backend.event_processing import data_provider as mdp
    from tensorboard.backend.event_processing import plugin_event_accumulator as acc
    from tensorboard.backend.event_processing import plugin_event_multiplexer as mux
    from tensorboard.plugins import base_plugin
    from werkzeug.test import Client
    from tb_stagnation import engine, plugin
    sys.path.insert(0, args["here"])
    import memory
    if args["budget"]:
        engine.SUMMARY_CACHE_BYTES = args["budget"]
    m = mux.EventMultiplexer(size_guidance=acc.DEFAULT_SIZE_GUIDANCE)
    m.AddRunsFromDirectory(logdir)
    m.Reload()
    out["loader"] = mem()["VmRSS"]
    p = plugin.StagnationPlugin(base_plugin.TBContext(data_provider=mdp.MultiplexerDataProvider(m, logdir),
                                                      logdir=logdir, sampling_hints={}))
    route = Client(p.get_plugin_apps()["/ranking"])
    reader = p._engine
    t = time.perf_counter(); r = route.get("/"); out["cold"] = time.perf_counter() - t
    assert r.status_code == 200, r.data[:200]
    out["rows"] = len(json.loads(r.data)["rows"])
    out["after_cold"] = mem()["VmRSS"]
    out["summary_cache"] = (reader.summary_cache.nbytes, reader.summary_cache.max_bytes, len(reader.summary_cache))
    out["answers"] = (p._answers.nbytes, p._answers.max_bytes, len(p._answers))
    for reload in range(2):
        memory.write(logdir, args["runs"], args["tags"], 1, first=args["first"] + reload)
        m.Reload()
        plugin.LISTING_TTL = 0.0
        p._listed.ttl = 0.0
        before = reader.pairs_analysed
        t = time.perf_counter(); r = route.get("/"); out[f"reload{reload}"] = time.perf_counter() - t
        assert r.status_code == 200
        out[f"pairs{reload}"] = reader.pairs_analysed - before
    out["evictions"] = reader.summary_cache.evictions
    out.update(mem())
print(json.dumps(out))
"""


def child(mode: str, logdir: str, **args) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, logdir, json.dumps({"here": HERE, **args})],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--tags", type=int, default=1000, help="per run")
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    mb = lambda b: f"{b / 2**20:7.0f} MB"  # noqa: E731
    tags = args.runs * args.tags
    print(f"# {args.runs} runs x {args.tags} tags = {tags} tags x {args.steps} steps, 30-bucket TF2 histograms; "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="tb-stagnation-memory-") as logdir:
        t = time.perf_counter()
        size = write(logdir, args.runs, args.tags, args.steps)
        histograms = tags * args.steps
        print(f"log: {mb(size)} on disk, {histograms} histograms ({mb(histograms * 30 * 24)} as float64 arrays), "
              f"written in {time.perf_counter() - t:.0f} s")
        by_run, whole = child("cli", logdir), child("cli_whole", logdir)
        print("\n## CLI (--json), peak RSS")
        print(f"by run (default)  {mb(by_run['VmHWM'])}  {by_run['seconds']:6.1f} s")
        print(f"whole log         {mb(whole['VmHWM'])}  {whole['seconds']:6.1f} s   "
              f"by run / whole: {by_run['VmHWM'] / whole['VmHWM']:.2f}x")
        for n, (label, budget) in enumerate((("default budgets", 0), ("summary budget 1/4 of need", None))):
            if budget is None:
                budget = max(1, full["summary_cache"][0] // 4)
            got = child("plugin", logdir, runs=args.runs, tags=args.tags, first=args.steps + 2 * n, budget=budget)
            if not budget:
                full = got
            s_bytes, s_max, s_len = got["summary_cache"]
            a_bytes, a_max, a_len = got["answers"]
            print(f"\n## plugin over the Python loader, {label}")
            print(f"loader RSS after Reload          {mb(got['loader'])}")
            print(f"cold /ranking                    {got['cold']:7.1f} s   {got['rows']} rows, "
                  f"RSS +{mb(got['after_cold'] - got['loader']).strip()} over the loader")
            print(f"summary cache                    {mb(s_bytes)} of {mb(s_max).strip()}, {s_len} tags")
            print(f"answer cache                     {mb(a_bytes)} of {mb(a_max).strip()}, {a_len} answers")
            for k in range(2):
                print(f"/ranking after reload {k + 1}          {got[f'reload{k}']:7.1f} s   "
                      f"{got[f'pairs{k}']} pairs measured ({tags} if nothing was evicted)")
            print(f"evictions                        {got['evictions']:7d}")
            print(f"peak RSS                         {mb(got['VmHWM'])}")


if __name__ == "__main__":
    main()
