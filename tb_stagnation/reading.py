"""Histogram and exact-movement data from a TensorBoard data provider, with caching.

Everything goes through ``context.data_provider`` so the plugin works the
same on the Python loader and on the Rust data server. Drift summaries are
cached per (experiment, run, tag) under the tag's newest step and wall time,
which ``list_tensors`` reports without reading any data: a reload that adds
steps to one tag re-reads exactly that tag. Its re-read returns the whole
kept series (the data provider has no "since" query), so the saving is in
the drift work: each (run, tag) keeps its analysed pairs (``drift.Kept``)
and only pairs involving new samples, or closing a gap a dropped sample
left, are measured again (``drift.update_all``).
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterable, Mapping

from tensorboard.data import provider

from tb_stagnation import drift, exact, metadata

# Histograms read per time series when TensorBoard gives no sampling hint;
# above both loaders' default reservoir sizes, so every kept sample is read.
DEFAULT_DOWNSAMPLE = 10_000
_SERIES_CACHE_SIZE = 32
# (run, tag)s whose analysed pairs are kept, least recently used evicted:
# ~20 KB each at the Python loader's 500 samples/tag (drift.Kept), so
# ~80 MB when full; room for a few runs of a 1,000-layer model.
SUMMARY_CACHE_SIZE = 4096

_CacheKey = tuple[str, str, str]  # experiment, run, tag


def downsample_from_hints(hints: Mapping[str, int] | None) -> int:
    """How many samples to request: TensorBoard's hint for histograms, 0 meaning all."""
    hint = (hints or {}).get(metadata.HISTOGRAMS_PLUGIN_NAME)
    return DEFAULT_DOWNSAMPLE if hint is None else (hint or 10**9)


def _samples(data: Iterable[provider.TensorDatum]) -> drift.Sample:
    """One time series as the data provider returns it, as the drift engine takes it."""
    data = list(data)
    return [d.step for d in data], [d.wall_time for d in data], [d.numpy for d in data]


def series_from_data(data: Iterable[provider.TensorDatum]) -> drift.Series:
    """Drift of one time series as the data provider returns it."""
    return drift.analyse(*_samples(data))


class Reader:
    """Reads and caches what the routes need from one data provider."""

    def __init__(
        self, data_provider: provider.DataProvider, downsample: int, cache_size: int = SUMMARY_CACHE_SIZE
    ) -> None:
        self._provider = data_provider
        self._downsample = downsample
        self._cache_size = cache_size
        self._lock = threading.Lock()
        self._summaries: collections.OrderedDict[_CacheKey, tuple[tuple, drift.Kept, drift.Summary]] = (
            collections.OrderedDict()
        )
        # Consecutive pairs measured (W1 computed) by ``summaries`` since creation, for tests and benches.
        self.pairs_analysed = 0
        self._series: collections.OrderedDict[_CacheKey, tuple[tuple, drift.Series]] = (
            collections.OrderedDict()
        )
        self._exact: tuple[tuple, exact.ExactData] | None = None

    def histogram_tags(self, ctx, experiment: str) -> dict[str, dict[str, provider.TensorTimeSeries]]:
        """run -> tag -> metadata of every histogram time series."""
        return self._provider.list_tensors(
            ctx, experiment_id=experiment, plugin_name=metadata.HISTOGRAMS_PLUGIN_NAME
        )

    def summaries(
        self, ctx, experiment: str, listing: Mapping[str, Mapping[str, provider.TensorTimeSeries]]
    ) -> dict[str, dict[str, drift.Summary]]:
        """Drift summaries of every listed (run, tag), reading only what changed."""
        result: dict[str, dict[str, drift.Summary]] = {run: {} for run in listing}
        stale: dict[str, dict[str, tuple]] = {}
        previous: dict[tuple[str, str], drift.Kept] = {}
        with self._lock:
            for run, tags in listing.items():
                for tag, meta in tags.items():
                    version, key = _version(meta), (experiment, run, tag)
                    cached = self._summaries.get(key)
                    if cached is not None:
                        self._summaries.move_to_end(key)
                    if cached is not None and cached[0] == version:
                        result[run][tag] = cached[2]
                    else:
                        stale.setdefault(run, {})[tag] = version
                        if cached is not None:
                            previous[(run, tag)] = cached[1]
        if not stale:
            return result
        data = self._provider.read_tensors(
            ctx,
            experiment_id=experiment,
            plugin_name=metadata.HISTOGRAMS_PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=_covering(stale),
        )
        keys, samples = [], []
        for run, tags in stale.items():
            for tag, version in tags.items():
                points = data.get(run, {}).get(tag)
                if points is not None:  # else deleted between listing and reading
                    keys.append((run, tag, version))
                    samples.append(_samples(points))
        kept = drift.update_all([previous.get(k[:2]) for k in keys], samples)
        summaries = [k.summary() for k in kept]
        with self._lock:
            for (run, tag, version), k, summary in zip(keys, kept, summaries):
                result[run][tag] = summary
                self._summaries[(experiment, run, tag)] = (version, k, summary)
                self._summaries.move_to_end((experiment, run, tag))
                self.pairs_analysed += k.pairs_analysed
            while len(self._summaries) > self._cache_size:
                self._summaries.popitem(last=False)
        return result

    def series(self, ctx, experiment: str, run: str, tag: str, meta) -> drift.Series:
        """Full drift series of one (run, tag); the newest few are cached."""
        key, version = (experiment, run, tag), _version(meta)
        with self._lock:
            cached = self._series.get(key)
            if cached is not None and cached[0] == version:
                self._series.move_to_end(key)
                return cached[1]
        data = self._provider.read_tensors(
            ctx,
            experiment_id=experiment,
            plugin_name=metadata.HISTOGRAMS_PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=[tag]),
        )
        series = series_from_data(data.get(run, {}).get(tag, []))
        with self._lock:
            self._series[key] = (version, series)
            while len(self._series) > _SERIES_CACHE_SIZE:
                self._series.popitem(last=False)
        return series

    def exact_tags(self, ctx, experiment: str) -> dict[str, dict[str, provider.ScalarTimeSeries]]:
        """run -> tag -> metadata of every exact-movement time series."""
        return self._provider.list_scalars(
            ctx, experiment_id=experiment, plugin_name=metadata.PLUGIN_NAME
        )

    def exact(
        self, ctx, experiment: str, listing: Mapping[str, Mapping[str, provider.ScalarTimeSeries]]
    ) -> exact.ExactData:
        """run -> source -> parameter -> exact-movement series, re-read only when the listing changed."""
        if not any(listing.values()):
            return {}
        key = (experiment, snapshot(listing))
        with self._lock:
            if self._exact is not None and self._exact[0] == key:
                return self._exact[1]
        data = self._provider.read_scalars(
            ctx,
            experiment_id=experiment,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=_covering(listing),
        )
        result = exact.collect_exact(listing, data)
        with self._lock:
            self._exact = (key, result)
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
