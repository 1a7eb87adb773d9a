"""Turn the exact-movement scalars a data provider returns into per-parameter series.

Pure functions over what ``DataProvider.list_scalars`` / ``read_scalars``
return for ``plugin_name="stagnation"``, so the backend can test them without
a server. Series are found by their plugin content (parsed with
:func:`tb_stagnation.metadata.parse_plugin_metadata`), never by tag name;
content this version cannot parse is skipped.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tb_stagnation import metadata


@dataclasses.dataclass(frozen=True, eq=False)
class ExactSeries:
    """The exact-movement series of one parameter in one run.

    ``steps`` is the sorted union of the steps of all logged quantities; each
    quantity array is aligned with it (NaN where that quantity has no value at
    a step, e.g. after different downsampling), or empty when the quantity was
    never logged (``grad_norm`` without gradients). Arrays are read-only.
    Compared by identity (``eq=False``): element-wise array equality has no
    single truth value.
    """

    steps: np.ndarray  # int64
    update_ratio: np.ndarray  # float64, per step
    rms: np.ndarray  # float64
    grad_norm: np.ndarray  # float64


def collect_exact(
    list_result: Mapping[str, Mapping[str, Any]],
    read_result: Mapping[str, Mapping[str, Sequence[Any]]],
) -> dict[str, dict[str, ExactSeries]]:
    """``{run: {param: ExactSeries}}`` from ``list_scalars`` and ``read_scalars`` results.

    ``list_result[run][tag]`` needs ``.plugin_content``; ``read_result[run][tag]``
    is a list of data with ``.step`` and ``.value``. Tags listed but not read
    (or read but not listed) are ignored. If a step appears twice (a restarted
    run), the later datum wins.
    """
    values: dict[str, dict[str, dict[str, dict[int, float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(dict))
    )
    for run, tags in list_result.items():
        for tag, meta in tags.items():
            content = metadata.parse_plugin_metadata(meta.plugin_content)
            data = read_result.get(run, {}).get(tag)
            if content is None or not data:
                continue
            by_step = values[run][content.param][content.quantity]
            by_step.update((int(d.step), float(d.value)) for d in data)
    return {
        run: {param: _series(quantities) for param, quantities in params.items()}
        for run, params in values.items()
    }


def _series(quantities: Mapping[str, Mapping[int, float]]) -> ExactSeries:
    """Align each quantity's ``{step: value}`` on the union of steps."""
    steps = np.array(sorted(set().union(*quantities.values())), dtype=np.int64)
    steps.setflags(write=False)
    return ExactSeries(
        steps=steps,
        update_ratio=_aligned(steps, quantities.get(metadata.UPDATE_RATIO)),
        rms=_aligned(steps, quantities.get(metadata.PARAM_RMS)),
        grad_norm=_aligned(steps, quantities.get(metadata.GRAD_NORM)),
    )


def _aligned(steps: np.ndarray, by_step: Mapping[int, float] | None) -> np.ndarray:
    """Values at ``steps`` (NaN where missing); empty if the quantity was not logged."""
    if not by_step:
        out = np.empty(0, dtype=np.float64)
    else:
        out = np.array([by_step.get(int(s), np.nan) for s in steps], dtype=np.float64)
    out.setflags(write=False)
    return out
