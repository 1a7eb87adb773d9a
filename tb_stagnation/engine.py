"""Histogram and exact-movement data from a TensorBoard data provider, with caching.

Everything goes through ``context.data_provider`` so the plugin works the
same on the Python loader and on the Rust data server. Drift summaries are
cached per (experiment, run, tag) under the tag's newest step and wall time,
which ``list_tensors`` reports without reading any data: a reload that adds
steps to one tag re-reads exactly that tag. Its re-read returns the whole
kept series (the data provider has no "since" query), so the saving is in
the drift work: each (run, tag) keeps its analysed pairs (``drift.Kept``)
and only pairs involving new samples, or closing a gap a dropped sample
left, are measured again (``drift.update_all``). Changed tags are read a
run and ``READ_CHUNK_TAGS`` at a time, so a ranking holds one chunk's
histograms beyond its caches (:mod:`tb_stagnation.caches`), whose budgets
are stated below.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from tensorboard.data import provider

from tb_stagnation import caches, records
from tb_stagnation.measure import drift, exact_series
from tb_stagnation.verdict import ranking

# Histograms read per time series when TensorBoard gives no sampling hint;
# above both loaders' default reservoir sizes, so every kept sample is read.
DEFAULT_DOWNSAMPLE = 10_000
# Cache budgets (caches.LRU, least recently used evicted past them):
# - each (run, tag)'s analysed pairs and summary, ~20 KB at the Python
#   loader's 500 samples a tag (drift.Kept.nbytes): 256 MiB holds a
#   10,000-tag log directory, so a ranking of it stays incremental;
SUMMARY_CACHE_BYTES = 256 << 20
# - whole drift series with their histograms for the detail view, ~1 MB each at 500 samples;
SERIES_CACHE_BYTES = 64 << 20
# - the exact-movement data of the newest exact listing read.
EXACT_CACHE_BYTES = 64 << 20
# Tags of a run read and analysed at once: what a ranking holds beyond its caches is
# their histograms (~40 MB at 500 samples of 30 buckets, ~10x for TF1's ~400), not the log's.
READ_CHUNK_TAGS = 100

# What lists an exact-movement time series: a tensor (records), or a scalar (version-1 files).
ExactMeta = provider.TensorTimeSeries | provider.ScalarTimeSeries


def downsample_from_hints(hints: Mapping[str, int] | None, plugin: str = records.HISTOGRAMS_PLUGIN_NAME) -> int:
    """How many samples of ``plugin`` to request: its ``--samples_per_plugin`` hint, 0 meaning all."""
    hint = (hints or {}).get(plugin)
    return DEFAULT_DOWNSAMPLE if hint is None else (hint or 10**9)


def samples_of(data: Iterable[provider.TensorDatum]) -> drift.Sample:
    """One time series as the data provider returns it, as the drift engine takes it."""
    data = list(data)
    return [d.step for d in data], [d.wall_time for d in data], [d.numpy for d in data]


class Reader:
    """Reads and caches what the routes need from one data provider."""

    def __init__(
        self,
        data_provider: provider.DataProvider,
        downsample: int,
        summary_cache_bytes: int | None = None,
        exact_downsample: int | None = None,
    ) -> None:
        self._provider = data_provider
        self._downsample = downsample  # histograms
        self._exact_downsample = downsample if exact_downsample is None else exact_downsample  # our records
        # (experiment, run, tag) -> (version, analysed pairs, summary)
        self.summary_cache: caches.LRU[tuple[tuple, drift.Kept, drift.Summary]] = caches.LRU(
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

    def histogram_tags(self, ctx, experiment: str) -> dict[str, dict[str, provider.TensorTimeSeries]]:
        """run -> tag -> metadata of every histogram time series."""
        return self._provider.list_tensors(
            ctx, experiment_id=experiment, plugin_name=records.HISTOGRAMS_PLUGIN_NAME
        )

    def rank(
        self,
        ctx,
        experiment: str,
        histograms: Mapping[str, Mapping[str, provider.TensorTimeSeries]],
        exact_listing: Mapping[str, Mapping[str, provider.ScalarTimeSeries]],
        ratio: float,
    ) -> ranking.Ranking:
        """The pipeline over a data provider: the listed tags' drift summaries, their exact series, ranked.

        What the plugin's routes and the CLI's TensorBoard path both call;
        the CLI's own event-file reader feeds the same ``ranking.rank``.
        """
        return ranking.rank(
            self.summaries(ctx, experiment, histograms), self.exact(ctx, experiment, exact_listing), ratio
        )

    def summaries(
        self, ctx, experiment: str, listing: Mapping[str, Mapping[str, provider.TensorTimeSeries]]
    ) -> dict[str, dict[str, drift.Summary]]:
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
        result: dict[str, dict[str, drift.Summary]] = {run: {} for run in listing}
        stale: dict[str, dict[str, tuple]] = {}
        previous: dict[tuple[str, str], drift.Kept] = {}
        for run, tags in listing.items():
            for tag, meta in tags.items():
                version, cached = _version(meta), self.summary_cache.get((experiment, run, tag))
                if cached is not None and cached[0] == version:
                    result[run][tag] = cached[2]
                    continue
                stale.setdefault(run, {})[tag] = version
                if cached is not None:
                    previous[(run, tag)] = cached[1]
        return result, stale, previous

    def _reading(self, experiment: str) -> threading.Lock:
        """The lock held while an experiment's changed tags are read and analysed."""
        with self._guard:
            return self._read_locks.setdefault(experiment, threading.Lock())

    def _summarise(
        self, ctx, experiment: str, run: str, tags: Mapping[str, tuple], previous: Mapping[tuple[str, str], drift.Kept]
    ) -> dict[str, drift.Summary]:
        """Read some tags of a run, bring their kept pairs up to date and cache them; their summaries."""
        data = self._provider.read_tensors(
            ctx,
            experiment_id=experiment,
            plugin_name=records.HISTOGRAMS_PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=list(tags)),
        ).get(run, {})
        read = [tag for tag in tags if tag in data]  # else deleted between listing and reading
        samples = [samples_of(data[tag]) for tag in read]
        del data
        out = {}
        for tag, kept in zip(read, drift.update_all([previous.get((run, tag)) for tag in read], samples)):
            out[tag] = summary = kept.summary()
            self.summary_cache.put((experiment, run, tag), (tags[tag], kept, summary))
            self.pairs_analysed += kept.pairs_analysed
        return out

    def series(self, ctx, experiment: str, run: str, tag: str, meta) -> drift.Series:
        """Full drift series of one (run, tag), for the detail view; the newest few are cached."""
        key, version = (experiment, run, tag), _version(meta)
        cached = self._series.get(key)
        if cached is not None and cached[0] == version:
            return cached[1]
        data = self._provider.read_tensors(
            ctx,
            experiment_id=experiment,
            plugin_name=records.HISTOGRAMS_PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        series = drift.analyse(*samples_of(data.get(run, {}).get(tag, [])))
        self._series.put(key, (version, series))
        return series

    def exact_tags(self, ctx, experiment: str) -> dict[str, dict[str, ExactMeta]]:
        """run -> tag -> metadata of every exact-movement time series.

        Records (content version 2) are tensors; version-1 files hold
        scalars, listed too so that they still read. A tag is one time
        series of a run whichever it is.
        """
        found = self._provider.list_tensors(ctx, experiment_id=experiment, plugin_name=records.PLUGIN_NAME)
        old = self._provider.list_scalars(ctx, experiment_id=experiment, plugin_name=records.PLUGIN_NAME)
        return {run: {**old.get(run, {}), **found.get(run, {})} for run in sorted(set(found) | set(old))}

    def exact(
        self, ctx, experiment: str, listing: Mapping[str, Mapping[str, ExactMeta]]
    ) -> exact_series.ExactData:
        """run -> source -> parameter -> exact-movement series, re-read only when the listing changed."""
        if not any(listing.values()):
            return {}
        key = (experiment, snapshot(listing))
        cached = self._exact.get(key)
        if cached is not None:
            return cached
        data: dict[str, dict[str, list]] = {}
        for kind, read in (
            (provider.TensorTimeSeries, self._provider.read_tensors),
            (provider.ScalarTimeSeries, self._provider.read_scalars),
        ):
            wanted = {run: {t: m for t, m in tags.items() if isinstance(m, kind)} for run, tags in listing.items()}
            wanted = {run: tags for run, tags in wanted.items() if tags}
            if not wanted:
                continue
            got = read(
                ctx,
                experiment_id=experiment,
                plugin_name=records.PLUGIN_NAME,
                downsample=self._exact_downsample,
                run_tag_filter=_covering(wanted),
            )
            for run, tags in got.items():
                data.setdefault(run, {}).update({t: d for t, d in tags.items() if t in wanted.get(run, {})})
        result = exact_series.collect_exact(listing, data)
        self._exact.put(key, result)
        return result


def snapshot(listing: Mapping[str, Mapping[str, object]]) -> tuple:
    """A hashable identity of a listing's data: every (run, tag) with its newest step and write."""
    return tuple(
        (run, tag, *_version(meta)) for run in sorted(listing) for tag, meta in sorted(listing[run].items())
    )


def _covering(wanted: Mapping[str, Mapping[str, object]]) -> provider.RunTagFilter:
    """A filter reading every wanted (run, tag); it may cover more, which callers ignore."""
    return provider.RunTagFilter(
        runs=list(wanted), tags=sorted({t for tags in wanted.values() for t in tags})
    )


def _version(meta) -> tuple:
    """What identifies the data of a time series: its newest step and write."""
    return (meta.max_step, meta.max_wall_time)
