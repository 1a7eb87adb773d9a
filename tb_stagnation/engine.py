"""The one pipeline: samples and exact points from any source, to a ranking with its findings.

Every face calls it: the plugin's routes (through :class:`Engine`, over
TensorBoard's data provider), the CLI and :func:`tb_stagnation.analyse` on a
log directory, local or in a bucket (:func:`analyse_logdir`, over the event
files). Sources only read
(:mod:`tb_stagnation.sources`); this module decides what to read when, what
to keep, and hands the figures to the measures and the verdict:

    sources -> samples, exact points -> drift summaries, exact series
            -> ranking -> findings

What it owns:

- **the incremental summary cache**: each (experiment, run, tag)'s analysed
  pairs (``incremental.Kept``) under the tag's newest step and wall time, which a
  listing reports without reading data. A reload that adds steps to a tag
  re-reads that tag (the data provider has no "since" query) and measures
  only pairs involving new samples, or closing a gap a dropped sample left;
- **the reading policy**: changed tags are read a run and
  :data:`READ_CHUNK_TAGS` at a time, so a ranking holds one chunk's
  histograms beyond its caches; event files are read a run at a time and
  summarised past :data:`HELD_HISTOGRAM_BYTES`, so memory follows the largest
  run, not the log.

Cache budgets (:mod:`tb_stagnation.caches`, least recently used evicted past
them) are stated below.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping

from tensorboard.data import provider

from tb_stagnation import caches, samples
from tb_stagnation.measure import drift, exact_series, incremental
from tb_stagnation.measure.summaries import Summary
from tb_stagnation.sources import eventfile
from tb_stagnation.sources.provider import ExactMeta, ProviderSource, snapshot, version
from tb_stagnation.verdict import findings, ranking, vocabulary

# - each (run, tag)'s analysed pairs and summary, ~20 KB at the Python
#   loader's 500 samples a tag (incremental.Kept.nbytes): 256 MiB holds a
#   10,000-tag log directory, so a ranking of it stays incremental;
SUMMARY_CACHE_BYTES = 256 << 20
# - whole drift series with their histograms for the detail view, ~1 MB each at 500 samples;
SERIES_CACHE_BYTES = 64 << 20
# - the exact-movement data of the newest exact listing read.
EXACT_CACHE_BYTES = 64 << 20
# Tags of a run read and analysed at once: what a ranking holds beyond its caches is
# their histograms (~40 MB at 500 samples of 30 buckets, ~10x for TF1's ~400), not the log's.
READ_CHUNK_TAGS = 100
# Histograms held while reading event files before the runs read so far are summarised
# and dropped: memory follows the largest run (and the file being read), not the log.
HELD_HISTOGRAM_BYTES = 64 << 20


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What the pipeline answers: the ranking and the findings it supports."""

    ranking: ranking.Ranking
    findings: list[findings.Finding]
    skipped: list[eventfile.Skip] = dataclasses.field(default_factory=list)  # what could not be read


def assess(
    summarised: Mapping[str, Mapping[str, Summary]], exact: exact_series.ExactData, ratio: float
) -> Outcome:
    """The verdict over measured figures: ranked, then found. The last step of every path."""
    result = ranking.rank(summarised, exact, ratio)
    return Outcome(result, findings.find(result))


def analyse_logdir(
    logdir: str,
    ratio: float = vocabulary.DEFAULT_RATIO,
    progress: Callable[[int, int], None] | None = None,
    held_bytes: int | None = None,
) -> Outcome:
    """Every sample of a log directory (a path or fsspec URL), read by the event-file reader (no reservoir).

    Runs' histograms are summarised and dropped whenever more than
    ``held_bytes`` (default :data:`HELD_HISTOGRAM_BYTES`) are held (a batch of
    runs analyses faster than one at a time); what could not be read is in
    :attr:`Outcome.skipped`.
    """
    held_bytes = HELD_HISTOGRAM_BYTES if held_bytes is None else held_bytes
    summarised: dict[str, dict[str, Summary]] = {}
    held: dict[tuple[str, str], samples.Sample] = {}
    points: samples.ExactPoints = {}
    skipped: list[eventfile.Skip] = []

    def summarise_held() -> None:
        keys = list(held)
        for (run, tag), summary in zip(keys, incremental.summarise_all([held[k] for k in keys])):
            summarised.setdefault(run, {})[tag] = summary
        held.clear()

    for run in eventfile.read_runs(logdir, progress):
        held.update(((run.run, tag), sample) for tag, sample in run.histograms.items())
        if run.exact:
            points[run.run] = run.exact
        skipped += run.skipped
        if sum(_nbytes(s.values) for s in held.values()) > held_bytes:
            summarise_held()
    summarise_held()
    outcome = assess(summarised, exact_series.collect_exact(points), ratio)
    return dataclasses.replace(outcome, skipped=skipped)


def analyse_through_tensorboard(logdir: str, ratio: float = vocabulary.DEFAULT_RATIO) -> Outcome:
    """Every sample through TensorBoard's own loader, file-system layer and data provider.

    What the plugin reads through, told to keep every sample: the reference
    the event-file reader must rank alike (tests/test_eventfile.py). Damage
    is reported only in TensorBoard's own log.
    """
    # Imported here: TensorBoard's loader takes a while to import.
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider as mdp
    from tensorboard.backend.event_processing import plugin_event_accumulator as acc
    from tensorboard.backend.event_processing import plugin_event_multiplexer as mux

    multiplexer = mux.EventMultiplexer(size_guidance=acc.STORE_EVERYTHING_SIZE_GUIDANCE)
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    engine = Engine(ProviderSource(mdp.MultiplexerDataProvider(multiplexer, logdir), downsample=10**9))
    ctx = context.RequestContext()
    return engine.rank(ctx, "", engine.source.histogram_tags(ctx, ""), engine.source.exact_tags(ctx, ""), ratio)


class Engine:
    """The pipeline over one data provider, incremental across reloads (the plugin's)."""

    def __init__(self, source: ProviderSource, summary_cache_bytes: int | None = None) -> None:
        self.source = source
        # (experiment, run, tag) -> (version, analysed pairs, summary)
        self.summary_cache: caches.LRU[tuple[tuple, incremental.Kept, Summary]] = caches.LRU(
            SUMMARY_CACHE_BYTES if summary_cache_bytes is None else summary_cache_bytes, lambda entry: entry[1].nbytes
        )
        self._series: caches.LRU[tuple[tuple, drift.Series]] = caches.LRU(
            SERIES_CACHE_BYTES, lambda entry: entry[1].nbytes
        )
        self._exact: caches.LRU[exact_series.ExactData] = caches.LRU(EXACT_CACHE_BYTES, exact_series.nbytes)
        self._guard = threading.Lock()
        self._read_locks: dict[str, threading.Lock] = {}  # experiment -> held while reading it
        # Consecutive pairs measured (W1 computed) by ``summaries`` since creation, for tests and benches.
        self.pairs_analysed = 0

    def rank(
        self,
        ctx,
        experiment: str,
        histograms: Mapping[str, Mapping[str, provider.TensorTimeSeries]],
        exact_listing: Mapping[str, Mapping[str, ExactMeta]],
        ratio: float,
    ) -> Outcome:
        """The listed tags' drift summaries and exact series, ranked and found."""
        return assess(self.summaries(ctx, experiment, histograms), self.exact(ctx, experiment, exact_listing), ratio)

    def summaries(
        self, ctx, experiment: str, listing: Mapping[str, Mapping[str, provider.TensorTimeSeries]]
    ) -> dict[str, dict[str, Summary]]:
        """Drift summaries of every listed (run, tag), reading only what changed.

        Requests that arrive together after a reload (several clients, a
        ranking and a series) would each read every changed tag; the first
        reads, the others wait for it and then find it cached.
        """
        result, stale, previous = self._cached(experiment, listing)
        if not stale:
            return result
        with self._reading(experiment):
            result, stale, previous = self._cached(experiment, listing)
            for run, tags in stale.items():
                names = list(tags)
                for start in range(0, len(names), READ_CHUNK_TAGS):
                    chunk = {tag: tags[tag] for tag in names[start : start + READ_CHUNK_TAGS]}
                    result[run].update(self._summarise(ctx, experiment, run, chunk, previous))
        return result

    def _cached(self, experiment: str, listing: Mapping[str, Mapping[str, provider.TensorTimeSeries]]):
        """What the cache answers of a listing: summaries, the stale (run, tag)s' versions, their kept pairs."""
        result: dict[str, dict[str, Summary]] = {run: {} for run in listing}
        stale: dict[str, dict[str, tuple]] = {}
        previous: dict[tuple[str, str], incremental.Kept] = {}
        for run, tags in listing.items():
            for tag, meta in tags.items():
                current, cached = version(meta), self.summary_cache.get((experiment, run, tag))
                if cached is not None and cached[0] == current:
                    result[run][tag] = cached[2]
                    continue
                stale.setdefault(run, {})[tag] = current
                if cached is not None:
                    previous[(run, tag)] = cached[1]
        return result, stale, previous

    def _reading(self, experiment: str) -> threading.Lock:
        """The lock held while an experiment's changed tags are read and analysed."""
        with self._guard:
            return self._read_locks.setdefault(experiment, threading.Lock())

    def _summarise(
        self, ctx, experiment: str, run: str, tags: Mapping[str, tuple], previous: Mapping[tuple[str, str], incremental.Kept]
    ) -> dict[str, Summary]:
        """Read some tags of a run, bring their kept pairs up to date and cache them; their summaries."""
        data = self.source.histograms(ctx, experiment, run, tags)
        read = [tag for tag in tags if tag in data]  # else deleted between listing and reading
        read_samples = [data.pop(tag) for tag in read]
        out = {}
        for tag, kept in zip(read, incremental.update_all([previous.get((run, tag)) for tag in read], read_samples)):
            out[tag] = summary = kept.summary()
            self.summary_cache.put((experiment, run, tag), (tags[tag], kept, summary))
            self.pairs_analysed += kept.pairs_analysed
        return out

    def series(self, ctx, experiment: str, run: str, tag: str, meta) -> drift.Series:
        """Full drift series of one (run, tag), for the detail view; the newest few are cached."""
        key, current = (experiment, run, tag), version(meta)
        cached = self._series.get(key)
        if cached is not None and cached[0] == current:
            return cached[1]
        sample = self.source.histograms(ctx, experiment, run, [tag]).get(tag)
        series = drift.analyse(*(sample or ([], [], [])))
        self._series.put(key, (current, series))
        return series

    def exact(self, ctx, experiment: str, listing: Mapping[str, Mapping[str, ExactMeta]]) -> exact_series.ExactData:
        """run -> source -> parameter -> exact-movement series, re-read only when the listing changed."""
        if not any(listing.values()):
            return {}
        key = (experiment, snapshot(listing))
        cached = self._exact.get(key)
        if cached is not None:
            return cached
        result = exact_series.collect_exact(self.source.exact_points(ctx, experiment, listing))
        self._exact.put(key, result)
        return result


def _nbytes(values) -> int:
    """What a sample's histograms take, about."""
    return values.nbytes if hasattr(values, "nbytes") else sum(v.nbytes for v in values)
