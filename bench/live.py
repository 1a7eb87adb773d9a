"""Live-training benchmark (issue 13): the ranking after a reload against reading the changed tags.

A training job appends a few steps to every tag between TensorBoard's
reloads, so every tag changes. In one process, over a real
``EventMultiplexer`` (default size guidance: the Python loader's 500
samples a tag, or ``--reservoir``) and ``MultiplexerDataProvider``:

  read       ``read_tensors`` of the changed tags: what any ranking must pay
  ranking    ``Reader.summaries`` + ``ranking.rank`` after the reload, the
             incremental path: its own ``read_tensors``, and the rest (drift
             and ranking)
  scratch    ``drift.summarise_all`` of the same samples + ``ranking.rank``:
             what the rest cost before

and the pairs the incremental path measured. Medians over ``--reloads``.
The log is built with ``bench/run.py``'s generator pieces (random walks,
30-bucket TF2 histograms); ``--reservoir`` below the step count makes
reloads drop old samples, as a long run does.

    .venv/bin/python bench/live.py [--tags 1000] [--steps 200] [--append 2]
                                   [--reloads 5] [--reservoir 500]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run as gen  # noqa: E402  (bench/run.py: the log generator)


class Log:
    """One run's event file that a random-walk "training" appends steps to, every tag at each step."""

    def __init__(self, logdir: str, tags: int) -> None:
        self.path = os.path.join(logdir, gen.RUN, f"events.out.tfevents.{int(gen.WALL0)}.live")
        os.makedirs(os.path.dirname(self.path))
        self.names = gen._tag_names(tags)
        self.walk = gen._walk(tags, 10**9, 1024, seed=13)
        self.templates: list = []  # per tag, its event without the metadata only the first write carries

    def append(self, steps: int) -> None:
        from tensorboard.compat.proto import event_pb2
        from tensorboard.plugins.histogram import summary_v2

        payloads = []
        for _ in range(steps):
            step, w = next(self.walk)
            if step == 0:
                payloads.append(event_pb2.Event(wall_time=gen.WALL0, file_version="brain.Event:2").SerializeToString())
                for t, tag in enumerate(self.names):
                    event = event_pb2.Event(wall_time=gen.WALL0, step=0,
                                            summary=summary_v2.histogram_pb(tag, w[t], buckets=30))
                    payloads.append(event.SerializeToString())
                    event.summary.value[0].ClearField("metadata")
                    self.templates.append(event)
                continue
            for t, (event, buckets) in enumerate(zip(self.templates, gen._tf2_buckets(w))):
                event.step, event.wall_time = step, gen.WALL0 + step + t * 1e-4
                event.summary.value[0].tensor.tensor_content = buckets.tobytes()
                payloads.append(event.SerializeToString())
        with open(self.path, "ab") as f:
            f.write(gen._frame(payloads))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=200, help="steps written before the first ranking")
    parser.add_argument("--append", type=int, default=2, help="steps every tag gains per reload")
    parser.add_argument("--reloads", type=int, default=5)
    parser.add_argument("--reservoir", type=int, default=500, help="samples the loader keeps per tag")
    args = parser.parse_args()

    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider as mdp
    from tensorboard.backend.event_processing import plugin_event_accumulator as acc
    from tensorboard.backend.event_processing import plugin_event_multiplexer as mux

    from tb_stagnation import drift, metadata, ranking, reading

    logdir = tempfile.mkdtemp(prefix="tb-stagnation-live-")
    log = Log(logdir, args.tags)
    log.append(args.steps)
    multiplexer = mux.EventMultiplexer(size_guidance={**acc.DEFAULT_SIZE_GUIDANCE, acc.TENSORS: args.reservoir})
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    class TimedProvider(mdp.MultiplexerDataProvider):
        """The real provider, adding up the seconds its ``read_tensors`` takes."""

        seconds = 0.0

        def read_tensors(self, ctx, **kwargs):
            t = time.perf_counter()
            try:
                return super().read_tensors(ctx, **kwargs)
            finally:
                self.seconds += time.perf_counter() - t

    provider = TimedProvider(multiplexer, logdir)
    reader = reading.Reader(provider, reading.DEFAULT_DOWNSAMPLE)
    ctx = context.RequestContext()

    def rank():
        summaries = reader.summaries(ctx, "", reader.histogram_tags(ctx, ""))
        return ranking.rank(summaries, {}, ranking.DEFAULT_RATIO)

    t = time.perf_counter()
    cold = rank()
    print(f"{args.tags} tags x {args.steps} steps, reservoir {args.reservoir}, +{args.append} steps/tag per reload, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")
    print(f"cold ranking {1e3 * (time.perf_counter() - t):.0f} ms, {reader.pairs_analysed} pairs")

    figures: dict[str, list[float]] = {"read": [], "ranking": [], "rest": [], "scratch": [], "pairs": []}
    for _ in range(args.reloads):
        log.append(args.append)
        multiplexer.Reload()
        listing = reader.histogram_tags(ctx, "")
        t = time.perf_counter()
        data = provider.read_tensors(ctx, experiment_id="", plugin_name=metadata.HISTOGRAMS_PLUGIN_NAME,
                                     downsample=reading.DEFAULT_DOWNSAMPLE, run_tag_filter=None)
        figures["read"].append(time.perf_counter() - t)
        before, read_before = reader.pairs_analysed, provider.seconds
        t = time.perf_counter()
        result = rank()
        figures["ranking"].append(time.perf_counter() - t)
        figures["rest"].append(figures["ranking"][-1] - (provider.seconds - read_before))
        figures["pairs"].append(reader.pairs_analysed - before)
        samples = [reading._samples(data[gen.RUN][tag]) for tag in listing[gen.RUN]]
        t = time.perf_counter()
        scratch = drift.summarise_all(samples)
        ranking.rank({gen.RUN: dict(zip(listing[gen.RUN], scratch))}, {}, ranking.DEFAULT_RATIO)
        figures["scratch"].append(time.perf_counter() - t)
        assert len(result.rows) == len(cold.rows) == args.tags

    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"after a reload (median of {args.reloads}):")
    print(f"  read_tensors of the changed tags  {1e3 * med['read']:8.0f} ms")
    print(f"  ranking, incremental              {1e3 * med['ranking']:8.0f} ms   "
          f"{med['ranking'] / med['read']:.2f}x the read, {med['pairs']:.0f} pairs measured")
    print(f"    of which drift and ranking      {1e3 * med['rest']:8.0f} ms")
    print(f"  drift and ranking from scratch    {1e3 * med['scratch']:8.0f} ms")
    shutil.rmtree(logdir)


if __name__ == "__main__":
    main()
