"""Live training: a log directory appended to while it is read.

- ``engine.Reader`` over a real ``MultiplexerDataProvider``, wrapped in a
  counting subclass (instrumentation: every call goes to the real provider):
  after a reload that adds steps to one tag, only that (run, tag) is re-read.
- The same over a loader keeping 8 samples a tag, so reloads drop old ones:
  each reload measures only the pairs it must (``Reader.pairs_analysed``),
  and the summaries equal a from-scratch analysis of what is served.
- A real ``tensorboard --reload_interval 1`` on a log the test keeps writing
  to: the ranking is right before and after, and matches the CLI's reading.
- Content types of every route, and the load test (``bench/load_test.py``)
  for a few seconds.
"""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import QUIET_ENV
from tensorboard import context
from tensorboard.backend.event_processing import data_provider as mdp
from tensorboard.backend.event_processing import plugin_event_accumulator as acc
from tensorboard.backend.event_processing import plugin_event_multiplexer as mux
from test_incremental import assert_same_summary

from tb_stagnation import engine
from tb_stagnation.sources.provider import ProviderSource, sample_of
from tb_stagnation.measure import drift
from tb_stagnation.measure.summaries import summarise

ROOT = Path(__file__).resolve().parent.parent
TAGS = {"conv1/kernel": 0.02, "conv1/bias": 0.01, "dense/kernel": 0.03}


class LogWriter:
    """Appends histogram events to one event file, as a training job does."""

    def __init__(self, logdir: Path, run: str, seed: int = 0) -> None:
        from tensorboard.compat.proto import event_pb2

        self.path = logdir / run / f"events.out.tfevents.1700000000.live.{seed}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rng = np.random.default_rng(seed)
        self.base = {tag: self.rng.normal(0, 0.1, 400) for tag in TAGS}
        self._append([event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")])

    def _append(self, events) -> None:
        from tensorboard.summary.writer.record_writer import RecordWriter

        with open(self.path, "ab") as f:
            writer = RecordWriter(f)
            for e in events:
                writer.write(e.SerializeToString())

    def write(self, steps, tags=tuple(TAGS), speed: float = 1.0) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.histogram import summary_v2

        events = []
        for step in steps:
            for tag in tags:
                values = self.base[tag] * (1 + speed * TAGS[tag] * step) + 0.001 * self.rng.normal(size=400)
                events.append(event_pb2.Event(step=step, wall_time=time.time(),
                                              summary=summary_v2.histogram_pb(tag, values, buckets=30)))
        self._append(events)


class CountingProvider(mdp.MultiplexerDataProvider):
    """The real provider, noting which (run, tag) each ``read_tensors`` asks for."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.reads: list[set[tuple[str, str]]] = []

    def read_tensors(self, ctx, *, experiment_id, plugin_name, downsample=None, run_tag_filter=None):
        asked = {(r, t) for r in run_tag_filter.runs for t in run_tag_filter.tags}
        self.reads.append(asked)
        return super().read_tensors(ctx, experiment_id=experiment_id, plugin_name=plugin_name,
                                    downsample=downsample, run_tag_filter=run_tag_filter)


def _two_runs_loaded(logdir: Path) -> tuple[dict[str, LogWriter], mux.EventMultiplexer]:
    """Runs a and b, steps 0-45 of every tag, loaded by a multiplexer that keeps every sample."""
    writers = {run: LogWriter(logdir, run, seed=i) for i, run in enumerate(("a", "b"))}
    for w in writers.values():
        w.write(range(0, 50, 5))
    multiplexer = mux.EventMultiplexer(size_guidance=acc.STORE_EVERYTHING_SIZE_GUIDANCE)
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return writers, multiplexer


def test_reload_rereads_only_the_tag_that_changed(tmp_path) -> None:
    logdir = tmp_path / "logs"
    writers, multiplexer = _two_runs_loaded(logdir)
    provider = CountingProvider(multiplexer, str(logdir))
    reader = engine.Engine(ProviderSource(provider, downsample=10**9))
    ctx = context.RequestContext()

    def summaries():
        return reader.summaries(ctx, "", reader.source.histogram_tags(ctx, ""))

    first = summaries()
    # One read per run (a run's tags in chunks of engine.READ_CHUNK_TAGS), each exactly its tags.
    assert sorted(map(sorted, provider.reads)) == [sorted((run, t) for t in TAGS) for run in ("a", "b")]
    assert reader.pairs_analysed == 6 * 9
    assert all(s.samples == 10 for tags in first.values() for s in tags.values())

    assert summaries() == first and len(provider.reads) == 2  # nothing new: nothing read

    writers["b"].write([50, 55], tags=["dense/kernel"], speed=5.0)
    multiplexer.Reload()
    second = summaries()
    # One read, of the changed (run, tag) alone.
    assert provider.reads[2:] == [{("b", "dense/kernel")}]
    assert reader.pairs_analysed == 6 * 9 + 2  # the two new samples' pairs, nothing else
    assert second["b"]["dense/kernel"].samples == 12 and second["b"]["dense/kernel"].last_step == 55
    for run, tags in first.items():
        for tag, summary in tags.items():
            if (run, tag) != ("b", "dense/kernel"):
                assert second[run][tag] is summary  # the cached object itself

    # The per-series cache follows the same version.
    meta = reader.source.histogram_tags(ctx, "")["b"]["dense/kernel"]
    series = reader.series(ctx, "", "b", "dense/kernel", meta)
    assert reader.series(ctx, "", "b", "dense/kernel", meta) is series and len(provider.reads) == 4
    assert list(series.steps) == list(range(0, 60, 5))


def test_pairs_per_reload_through_the_reservoir(tmp_path) -> None:
    """A loader keeping 8 samples a tag drops old ones: each reload measures only new pairs and gaps.

    The summaries after every reload equal a from-scratch analysis of what
    the provider then serves.
    """
    logdir = tmp_path / "logs"
    writer = LogWriter(logdir, "train")
    multiplexer = mux.EventMultiplexer(size_guidance={**acc.DEFAULT_SIZE_GUIDANCE, acc.TENSORS: 8})
    multiplexer.AddRunsFromDirectory(str(logdir))
    provider = mdp.MultiplexerDataProvider(multiplexer, str(logdir))
    reader = engine.Engine(ProviderSource(provider, downsample=10**9))
    ctx = context.RequestContext()
    kept: dict[str, set] = dict.fromkeys(TAGS, set())
    for start in range(0, 120, 20):
        writer.write(range(start, start + 20, 2))
        multiplexer.Reload()
        before = reader.pairs_analysed
        summaries = reader.summaries(ctx, "", reader.source.histogram_tags(ctx, ""))["train"]
        data = provider.read_tensors(ctx, experiment_id="", plugin_name="histograms", downsample=10**9,
                                     run_tag_filter=None)["train"]
        expected_pairs = 0
        for tag, points in data.items():
            sample = sample_of(points)
            assert_same_summary(summaries[tag], summarise(drift.analyse(*sample)))
            ids = [(d.step, d.wall_time) for d in points]
            pairs = set(zip(ids, ids[1:]))
            expected_pairs += len(pairs - kept[tag])
            kept[tag] = pairs
        assert 0 < reader.pairs_analysed - before == expected_pairs <= 3 * 8
        assert all(s.samples <= 8 and s.last_step == start + 18 for s in summaries.values())


def _rows(tb, run: str) -> dict[str, dict]:
    status, body, ctype = tb.plugin(f"ranking?run={run}")
    assert status == 200 and ctype.startswith("application/json")
    return {r["tag"]: r for r in body["rows"]}


def _cli_rows(logdir: Path) -> dict[tuple[str, str], dict]:
    result = engine.analyse_logdir(str(logdir), 0.01).ranking
    return {(r.run, r.tag): vars(r) for r in result.rows}


def _same(http_row: dict, cli_row: dict) -> bool:
    keys = ("status", "samples", "first_step", "last_step", "score", "net")
    return all(
        http_row[k] == pytest.approx(cli_row[k], rel=1e-9) if isinstance(cli_row[k], float) else http_row[k] == cli_row[k]
        for k in keys
    )


def test_live_tensorboard_follows_the_writer(tmp_path, start_tensorboard) -> None:
    logdir = tmp_path / "logs"
    writer = LogWriter(logdir, "train")
    writer.write(range(0, 50, 5))
    tb = start_tensorboard(logdir)

    before = _rows(tb, "train")
    assert {t: r["samples"] for t, r in before.items()} == {t: 10 for t in TAGS}
    expected = _cli_rows(logdir)
    assert all(_same(before[t], expected[("train", t)]) for t in TAGS)

    # Training goes on: dense/kernel speeds up, the rest keep their pace.
    writer.write(range(50, 100, 5), tags=["dense/kernel"], speed=10.0)
    writer.write(range(50, 100, 5), tags=["conv1/kernel", "conv1/bias"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        after = _rows(tb, "train")
        if all(r["last_step"] == 95 for r in after.values()):
            break
        time.sleep(0.5)
    else:
        pytest.fail(f"new steps never served: {after}")
    expected = _cli_rows(logdir)
    assert all(_same(after[t], expected[("train", t)]) for t in TAGS), (after, expected)
    assert after["dense/kernel"]["samples"] == 20

    status, series, _ = tb.plugin("series?run=train&tag=dense%2Fkernel")
    assert status == 200 and series["steps"] == list(range(0, 100, 5))


def test_content_types(writer_logs, start_tensorboard) -> None:
    """index.js as text/javascript, every JSON route (answers and errors) as application/json."""
    tb = start_tensorboard(writer_logs["tf2"])
    for route in ("ranking", "ranking?role=wheel", "ranking?run=nope", "series", "series?run=train&tag=nope"):
        _, body, ctype = tb.plugin(route)
        assert ctype.startswith("application/json"), (route, ctype)
    bundle = importlib.resources.files("tb_stagnation").joinpath("static/index.js")
    if not bundle.is_file():
        pytest.skip("tb_stagnation/static/index.js is not built (make frontend)")
    with urllib.request.urlopen(f"{tb.url}/data/plugin/stagnation/index.js", timeout=60) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].split(";")[0].strip() == "text/javascript"
        assert b"render" in r.read()


def test_load_test_runs_clean() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "load_test.py"), "--seconds", "5", "--clients", "4",
         "--runs", "2", "--tags", "20", "--steps", "40"],
        capture_output=True, text=True, env=QUIET_ENV, timeout=300,
    )
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    assert "errors 0," in proc.stdout


def test_a_ranking_reads_a_run_in_chunks_of_tags_and_ranks_as_one_read(tmp_path, monkeypatch) -> None:
    """What a ranking holds beyond its caches is one chunk's histograms, not the log's; the figures are the same."""
    LogWriter(tmp_path / "logs", "a", seed=0).write(range(0, 50, 5))
    multiplexer = mux.EventMultiplexer(size_guidance=acc.STORE_EVERYTHING_SIZE_GUIDANCE)
    multiplexer.AddRunsFromDirectory(str(tmp_path / "logs"))
    multiplexer.Reload()
    provider = CountingProvider(multiplexer, str(tmp_path / "logs"))
    ctx = context.RequestContext()
    whole = engine.Engine(ProviderSource(provider, downsample=10**9))
    expected = whole.summaries(ctx, "", whole.source.histogram_tags(ctx, ""))
    monkeypatch.setattr(engine, "READ_CHUNK_TAGS", 2)
    provider.reads.clear()
    chunked = engine.Engine(ProviderSource(provider, downsample=10**9))
    assert chunked.summaries(ctx, "", chunked.source.histogram_tags(ctx, "")) == expected
    assert sorted(map(len, provider.reads)) == [1, 2]
    assert set().union(*provider.reads) == {("a", t) for t in TAGS}


def test_rankings_arriving_together_after_a_reload_read_the_changes_once(tmp_path) -> None:
    """Several clients polling a live run: the first reads the changed tags, the others wait and share it."""
    import threading

    logdir = tmp_path / "logs"
    _, multiplexer = _two_runs_loaded(logdir)

    class SlowProvider(CountingProvider):
        def read_tensors(self, ctx, **kwargs):
            time.sleep(0.3)  # long enough for every client to arrive while the first reads
            return super().read_tensors(ctx, **kwargs)

    provider = SlowProvider(multiplexer, str(logdir))
    reader = engine.Engine(ProviderSource(provider, downsample=10**9))
    ctx = context.RequestContext()
    listing = reader.source.histogram_tags(ctx, "")
    start, answers = threading.Barrier(4), []

    def client() -> None:
        start.wait()
        answers.append(reader.summaries(ctx, "", listing))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(answers) == 4 and all(a == answers[0] for a in answers)
    assert len(provider.reads) == 2  # one per run, not one per run and client
    assert reader.pairs_analysed == 6 * 9
