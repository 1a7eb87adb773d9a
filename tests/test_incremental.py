"""Incremental analysis (``incremental.update_all``, ``engine.Engine``) against a from-scratch one.

- Property: random appends (fresh, frozen, empty and non-finite samples,
  rewrites of a step by a restart) and reservoir drops, the incremental
  :class:`~tb_stagnation.measure.summaries.Summary` after each one equal to ``summarise(drift.analyse(...))`` on the
  same samples, field by field (exact, or 1e-12 relative for floats), and
  only pairs involving a new sample or closing a gap measured.
- The reader's cache: bounded in bytes, least recently used evicted, an evicted tag
  analysed from scratch again.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard import context
from tensorboard.backend.event_processing import data_provider as mdp
from tensorboard.backend.event_processing import plugin_event_multiplexer as mux

from tb_stagnation import engine
from tb_stagnation.sources.provider import ProviderSource
from tb_stagnation.measure import drift, incremental
from tb_stagnation.measure.summaries import Summary, summarise


def _close(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= 1e-12 * max(abs(a), abs(b))
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def assert_same_summary(incremental: Summary, scratch: Summary) -> None:
    for field in dataclasses.fields(Summary):
        mine, theirs = getattr(incremental, field.name), getattr(scratch, field.name)
        assert _close(mine, theirs), (field.name, mine, theirs)


def _histogram(rng: np.random.Generator, kind: str, step: int, previous: np.ndarray | None) -> np.ndarray:
    if kind == "frozen" and previous is not None:
        return previous
    if kind == "empty":
        return np.zeros((0, 3))
    counts, edges = np.histogram(rng.normal(1e-3 * step, 1.0, 50), bins=int(rng.integers(1, 12)))
    raw = np.stack([edges[:-1], edges[1:], counts], axis=1)
    if kind == "nonfinite":
        raw[0, 0] = np.nan
    return raw


operation = st.tuples(
    st.integers(0, 6),  # samples appended
    st.sampled_from(["fresh", "fresh", "frozen", "empty", "nonfinite"]),
    st.floats(0, 0.5),  # fraction of kept samples the reservoir drops
    st.booleans(),  # a restart rewrites the last kept step
)


@settings(max_examples=200, deadline=None)
@given(st.lists(operation, min_size=1, max_size=8), st.integers(0, 2**32 - 1))
def test_incremental_equals_from_scratch(operations, seed) -> None:
    rng = np.random.default_rng(seed)
    samples: dict[int, tuple[float, np.ndarray]] = {}  # step -> (wall time, raw), what the loader keeps
    next_step, clock, kept = 0, 0.0, None
    for appended, kind, drop, restart in operations:
        if samples and drop:
            steps = sorted(samples)
            for s in rng.choice(steps, size=int(drop * len(steps)), replace=False):
                del samples[int(s)]
        if restart and samples:
            clock += 1.0
            last = max(samples)
            samples[last] = (clock, _histogram(rng, "fresh", last, None))
        for _ in range(appended):
            clock += 1.0
            previous = samples[max(samples)][1] if samples else None
            samples[next_step] = (clock, _histogram(rng, kind, next_step, previous))
            next_step += int(rng.integers(1, 20))
        order = list(rng.permutation(sorted(samples)))  # the loader's order is not the engine's concern
        sample = ([int(s) for s in order], [samples[s][0] for s in order], [samples[s][1] for s in order])
        before = kept
        kept = incremental.update_all([kept], [sample])[0]
        assert_same_summary(kept.summary(), summarise(drift.analyse(*sample)))
        # Measured: exactly the pairs not already kept (new samples, or a gap closed).
        old_pairs = set() if before is None else set(_pairs(before))
        assert kept.pairs_analysed == len(set(_pairs(kept)) - old_pairs)


def _pairs(kept: incremental.Kept):
    ids = list(zip(kept.steps.tolist(), kept.wall_times.tolist()))
    return zip(ids, ids[1:])


def test_unchanged_series_measures_nothing() -> None:
    rng = np.random.default_rng(1)
    sample = (list(range(10)), [float(s) for s in range(10)], [_histogram(rng, "fresh", s, None) for s in range(10)])
    first = incremental.update_all([None], [sample])[0]
    again = incremental.update_all([first], [sample])[0]
    assert (first.pairs_analysed, again.pairs_analysed) == (9, 0)
    assert again.summary() == first.summary()


class _Provider(mdp.MultiplexerDataProvider):
    """A real provider over an empty multiplexer, serving series the test sets."""

    def __init__(self) -> None:
        super().__init__(mux.EventMultiplexer(), "")
        self.series: dict[str, list[int]] = {}  # tag -> steps

    def list_tensors(self, ctx=None, *, experiment_id, plugin_name, run_tag_filter=None):
        from tensorboard.data import provider

        return {"run": {tag: provider.TensorTimeSeries(max_step=max(steps), max_wall_time=float(max(steps)),
                                                       plugin_content=b"", description="", display_name="")
                        for tag, steps in self.series.items()}}

    def read_tensors(self, ctx=None, *, experiment_id, plugin_name, downsample=None, run_tag_filter=None):
        from tensorboard.data import provider

        rng = np.random.default_rng(0)
        return {"run": {tag: [provider.TensorDatum(step=s, wall_time=float(s),
                                                   numpy=_histogram(rng, "fresh", s, None))
                              for s in steps]
                        for tag, steps in self.series.items() if tag in run_tag_filter.tags}}


def test_reader_cache_is_bounded_in_bytes_and_evicts_least_recently_used() -> None:
    data = _Provider()
    ctx = context.RequestContext()
    data.series = {"a": list(range(6))}
    probe = engine.Engine(ProviderSource(data, downsample=10**9))
    probe.summaries(ctx, "", probe.source.histogram_tags(ctx, ""))
    one = probe.summary_cache.nbytes  # a 6-sample tag's entry; 5-sample ones are smaller
    assert one > 0
    reader = engine.Engine(ProviderSource(data, downsample=10**9), summary_cache_bytes=int(2.5 * one))

    def rank(*tags):
        listing = {"run": {t: m for t, m in reader.source.histogram_tags(ctx, "")["run"].items() if t in tags}}
        return reader.summaries(ctx, "", listing)

    data.series = {"a": list(range(5)), "b": list(range(5)), "c": list(range(5))}
    rank("a", "b")
    assert reader.pairs_analysed == 8
    rank("a")  # a is now the most recently used ...
    rank("c")  # ... so c evicts b
    assert reader.pairs_analysed == 12
    data.series = {t: list(range(6)) for t in "abc"}
    rank("a", "c")  # kept: one new pair each
    assert reader.pairs_analysed == 14
    rank("b")  # evicted: analysed from scratch
    assert reader.pairs_analysed == 19
    assert len(reader.summary_cache) == 2 and reader.summary_cache.nbytes <= 2.5 * one
