"""Turn the exact-movement scalars a data provider returns into per-parameter series.

Pure functions over what ``DataProvider.list_scalars`` / ``read_scalars``
return for ``plugin_name="stagnation"``, so the backend can test them without
a server. Series are found by their plugin content (parsed with
:func:`tb_stagnation.metadata.parse_plugin_metadata`), never by tag name;
content this version cannot parse is skipped. Both sources of exact movement
arrive here the same way: the training-time writers (``source`` ``exact``)
and checkpoints imported afterwards (``checkpoint``); they stay apart, since
a run may hold both for one parameter.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tb_stagnation import metadata

# run -> source -> parameter -> series
ExactData = dict[str, dict[str, dict[str, "ExactSeries"]]]


@dataclasses.dataclass(frozen=True, eq=False)
class ExactSeries:
    """The exact-movement series of one parameter in one run, from one source.

    ``steps`` is the sorted union of the steps of all logged quantities; each
    quantity array is aligned with it (NaN where that quantity has no value at
    a step: the first snapshot has no ratio, a tensor at norm 0 no ratio but a
    ``change``), or empty when the quantity was never logged (``grad_norm``
    without gradients, ``change`` and ``update_cosine`` from the writers).
    ``axis`` says what the steps count (:data:`metadata.AXES`). Arrays are
    read-only. Compared by identity (``eq=False``): element-wise array
    equality has no single truth value.
    """

    source: str
    axis: str
    steps: np.ndarray  # int64
    update_ratio: np.ndarray  # float64, per step
    rms: np.ndarray  # float64
    grad_norm: np.ndarray  # float64
    change: np.ndarray  # float64, ||dW|| per step
    cosine: np.ndarray  # float64, between consecutive updates

    @property
    def ratios(self) -> np.ndarray:
        """The measured update ratios (NaN marks a snapshot without one)."""
        return self.update_ratio[~np.isnan(self.update_ratio)]

    @property
    def frozen(self) -> bool:
        """Every measured update is exactly zero (and there is at least one)."""
        moves = self.change[~np.isnan(self.change)] if len(self.change) else self.ratios
        return bool(len(moves)) and bool((moves == 0).all())

    @property
    def nonfinite(self) -> bool:
        """Weights gone NaN/Inf show in the logged RMS; an infinite ratio too."""
        return bool((~np.isfinite(self.rms)).any() or np.isinf(self.update_ratio).any())


def collect_exact(
    list_result: Mapping[str, Mapping[str, Any]],
    read_result: Mapping[str, Mapping[str, Sequence[Any]]],
) -> ExactData:
    """``{run: {source: {param: ExactSeries}}}`` from ``list_scalars`` and ``read_scalars`` results.

    ``list_result[run][tag]`` needs ``.plugin_content``; ``read_result[run][tag]``
    is a list of data with ``.step`` and ``.value``. Tags listed but not read
    (or read but not listed) are ignored. If a step appears twice (a restarted
    run), the later datum wins.
    """
    values: dict = defaultdict(lambda: defaultdict(lambda: defaultdict(lambda: defaultdict(dict))))
    axes: dict[tuple[str, str, str], str] = {}
    for run, tags in list_result.items():
        for tag, meta in tags.items():
            content = metadata.parse_plugin_metadata(meta.plugin_content)
            data = read_result.get(run, {}).get(tag)
            if content is None or not data:
                continue
            axes[(run, content.source, content.param)] = content.axis
            by_step = values[run][content.source][content.param][content.quantity]
            by_step.update((int(d.step), float(d.value)) for d in data)
    return {
        run: {
            source: {
                param: _series(source, axes[(run, source, param)], quantities)
                for param, quantities in params.items()
            }
            for source, params in sources.items()
        }
        for run, sources in values.items()
    }


def nbytes(data: ExactData) -> int:
    """About what ``data`` holds, for cache budgets: its arrays plus ~1 KB of objects per series."""
    return sum(
        1024 + sum(a.nbytes for a in (s.steps, s.update_ratio, s.rms, s.grad_norm, s.change, s.cosine))
        for sources in data.values()
        for params in sources.values()
        for s in params.values()
    )


def _series(source: str, axis: str, quantities: Mapping[str, Mapping[int, float]]) -> ExactSeries:
    """Align each quantity's ``{step: value}`` on the union of steps."""
    steps = np.array(sorted(set().union(*quantities.values())), dtype=np.int64)
    steps.setflags(write=False)
    return ExactSeries(
        source=source,
        axis=axis,
        steps=steps,
        update_ratio=_aligned(steps, quantities.get(metadata.UPDATE_RATIO)),
        rms=_aligned(steps, quantities.get(metadata.PARAM_RMS)),
        grad_norm=_aligned(steps, quantities.get(metadata.GRAD_NORM)),
        change=_aligned(steps, quantities.get(metadata.CHANGE)),
        cosine=_aligned(steps, quantities.get(metadata.UPDATE_COSINE)),
    )


def _aligned(steps: np.ndarray, by_step: Mapping[int, float] | None) -> np.ndarray:
    """Values at ``steps`` (NaN where missing); empty if the quantity was not logged."""
    if not by_step:
        out = np.empty(0, dtype=np.float64)
    else:
        out = np.array([by_step.get(int(s), np.nan) for s in steps], dtype=np.float64)
    out.setflags(write=False)
    return out
