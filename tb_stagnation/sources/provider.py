"""Histograms and the plugin's own records through TensorBoard's data provider.

Everything the plugin shows goes through ``context.data_provider``, so it
works the same on the Python loader, on the Rust data server and on remote
log directories. This module only lists and reads, converting what the
provider returns into :mod:`tb_stagnation.samples`; what is cached and
analysed is :mod:`tb_stagnation.engine`'s business.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
from tensorboard.data import provider

from tb_stagnation import records, samples

# Histograms read per time series when TensorBoard gives no sampling hint;
# above both loaders' default reservoir sizes, so every kept sample is read.
DEFAULT_DOWNSAMPLE = 10_000

# What lists an exact-movement time series: a tensor (records), or a scalar (version-1 files).
ExactMeta = provider.TensorTimeSeries | provider.ScalarTimeSeries
Listing = Mapping[str, Mapping[str, object]]  # run -> tag -> time-series metadata


def downsample_from_hints(hints: Mapping[str, int] | None, plugin: str = records.HISTOGRAMS_PLUGIN_NAME) -> int:
    """How many samples of ``plugin`` to request: its ``--samples_per_plugin`` hint, 0 meaning all."""
    hint = (hints or {}).get(plugin)
    return DEFAULT_DOWNSAMPLE if hint is None else (hint or 10**9)


def sample_of(data: Iterable[provider.TensorDatum]) -> samples.Sample:
    """One histogram time series as the data provider returns it, as the measures take it."""
    data = list(data)
    return [d.step for d in data], [d.wall_time for d in data], [d.numpy for d in data]


def version(meta) -> tuple:
    """What identifies the data of a time series: its newest step and write."""
    return (meta.max_step, meta.max_wall_time)


def snapshot(listing: Listing) -> tuple:
    """A hashable identity of a listing's data: every (run, tag) with its newest step and write."""
    return tuple((run, tag, *version(meta)) for run in sorted(listing) for tag, meta in sorted(listing[run].items()))


class ProviderSource:
    """Lists and reads one data provider's histograms and exact-movement records."""

    def __init__(self, data_provider: provider.DataProvider, downsample: int, exact_downsample: int | None = None):
        self._provider = data_provider
        self._downsample = downsample  # histograms
        self._exact_downsample = downsample if exact_downsample is None else exact_downsample  # our records

    def histogram_tags(self, ctx, experiment: str) -> dict[str, dict[str, provider.TensorTimeSeries]]:
        """run -> tag -> metadata of every histogram time series."""
        return self._provider.list_tensors(ctx, experiment_id=experiment, plugin_name=records.HISTOGRAMS_PLUGIN_NAME)

    def exact_tags(self, ctx, experiment: str) -> dict[str, dict[str, ExactMeta]]:
        """run -> tag -> metadata of every exact-movement time series.

        Records (content version 2) are tensors; version-1 files hold
        scalars, listed too so that they still read. A tag is one time
        series of a run whichever it is.
        """
        found = self._provider.list_tensors(ctx, experiment_id=experiment, plugin_name=records.PLUGIN_NAME)
        old = self._provider.list_scalars(ctx, experiment_id=experiment, plugin_name=records.PLUGIN_NAME)
        return {run: {**old.get(run, {}), **found.get(run, {})} for run in sorted(set(found) | set(old))}

    def histograms(self, ctx, experiment: str, run: str, tags: Iterable[str]) -> dict[str, samples.Sample]:
        """tag -> sample of some histogram tags of one run (a tag deleted since listing is left out)."""
        data = self._provider.read_tensors(
            ctx,
            experiment_id=experiment,
            plugin_name=records.HISTOGRAMS_PLUGIN_NAME,
            downsample=self._downsample,
            run_tag_filter=provider.RunTagFilter(runs=[run], tags=list(tags)),
        ).get(run, {})
        return {tag: sample_of(series) for tag, series in data.items()}

    def exact_points(self, ctx, experiment: str, listing: Mapping[str, Mapping[str, ExactMeta]]) -> samples.ExactPoints:
        """What the provider keeps of every listed exact-movement tag, with its content."""
        points: samples.ExactPoints = {}
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
                for tag, data in tags.items():
                    meta = wanted.get(run, {}).get(tag)
                    if meta is not None:  # the filter may cover more than was wanted
                        points.setdefault(run, {})[tag] = samples.ExactTag(
                            meta.plugin_content, [d.step for d in data], [_flat(d) for d in data]
                        )
        return points


def _flat(datum) -> np.ndarray:
    """A datum's value as a flat array: a tensor's (a record), or a scalar's as one element."""
    value = getattr(datum, "numpy", None)
    return np.reshape(value, -1) if value is not None else np.array([datum.value], dtype=np.float64)


def _covering(wanted: Listing) -> provider.RunTagFilter:
    """A filter reading every wanted (run, tag); it may cover more, which callers ignore."""
    return provider.RunTagFilter(runs=list(wanted), tags=sorted({t for tags in wanted.values() for t in tags}))
