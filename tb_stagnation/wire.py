"""Every JSON answer, built in one place from explicit field lists.

The ranking route, the series route, ``tb-stagnation --json`` and
:meth:`tb_stagnation.api.Analysis.to_json` all answer with what this module
builds, and the CLI's table and CSV take their columns from the same lists,
so a field means one thing wherever it is shown. A field becomes API only
by being named here: adding an attribute to :class:`~tb_stagnation.verdict.ranking.Row`
changes no answer. The series answer is one row plus per-sample arrays whose
names are disjoint from the row's by construction (checked at import), so no
answer carries two figures for one field.

Every number is finite or ``null``: NaN means "not measured" inside the
pipeline, and JSON has no NaN.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from tb_stagnation import records
from tb_stagnation.measure import drift, exact_series, histogram
from tb_stagnation.verdict import findings, ranking, vocabulary

ROW_FIELDS = (
    "run", "tag", "layer", "role", "order", "status", "score", "net", "samples", "first_step",
    "last_step", "floor", "threshold", "source", "axis", "histogram_score", "exact_score", "sparkline",
    "stagnant_since", "stagnant_intervals", "intervals", "nonfinite_since", "block", "module",
)
"""A ranking row's fields, in the order they are sent."""
LAYER_FIELDS = ("run", "layer", "order", "tag", "role", "score", "status", "source")
"""A drift-versus-depth entry's fields."""
FINDING_FIELDS = ("run", "kind", "tags", "layers", "since_step", "message", "units", "unit_count")
"""A finding's fields."""
CSV_FIELDS = (
    "run", "tag", "layer", "role", "status", "score", "net", "samples", "first_step",
    "last_step", "source", "axis", "histogram_score", "exact_score", "floor", "threshold",
)
"""``tb-stagnation --csv``'s columns: the row's scalar fields."""
TABLE_FIELDS = ("status", "score", "net", "source", "run", "tag", "role")
"""The CLI table's columns, after the rank."""
TABLE_HEADINGS = {"score": "score/step"}
"""Column headings that say more than the field's name."""
HISTOGRAM_SERIES_FIELDS = ("steps", "wall_times", "drift", "rate", "percentiles", "zero_share")
"""What the series answer adds for the histogram chart."""
FRESHNESS_FIELDS = ("as_of", "refreshing")
"""How new the data of a ranking or series answer is (:func:`freshness_json`); last in both."""
SERIES_FIELDS = ("thresholds", *HISTOGRAM_SERIES_FIELDS, records.EXACT, records.CHECKPOINT, "units",
                 *FRESHNESS_FIELDS)
"""What the series answer carries beside the row's fields."""
SPARKLINE_DIGITS = 4
"""A 48-point chart needs no more: four significant digits halve a ranking's payload."""

assert set(CSV_FIELDS) <= set(ROW_FIELDS) and set(TABLE_FIELDS) <= set(ROW_FIELDS)
assert not set(SERIES_FIELDS) & set(ROW_FIELDS), "a series answer would carry two figures for one field"


def number(value):
    """A JSON number: NaN (nothing measured) and other non-finite values become null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def numbers(values: Iterable[float]) -> list:
    """An array of JSON numbers (see :func:`number`)."""
    return [float(v) if math.isfinite(v) else None for v in map(float, values)]


def _fields(obj: object, fields: Sequence[str]) -> dict:
    return {name: number(getattr(obj, name)) for name in fields}


def row_json(row: ranking.Row) -> dict:
    """One ranking row."""
    out = _fields(row, ROW_FIELDS)
    out["sparkline"] = [number(float(f"{v:.{SPARKLINE_DIGITS}g}")) for v in row.sparkline]
    return out


def layer_json(layer: ranking.Layer) -> dict:
    """One entry of the drift-versus-depth profile."""
    return _fields(layer, LAYER_FIELDS)


def finding_json(finding: findings.Finding) -> dict:
    """One finding."""
    out = _fields(finding, FINDING_FIELDS)
    out["tags"], out["layers"], out["units"] = list(finding.tags), list(finding.layers), list(finding.units)
    return out


def csv_row(row: ranking.Row) -> list:
    """One CSV line's cells (empty where nothing was measured)."""
    return [number(getattr(row, name)) for name in CSV_FIELDS]


def thresholds_json(thresholds: Mapping[str, float]) -> dict:
    """A run's stagnant threshold per source."""
    return {source: number(t) for source, t in thresholds.items()}


def ranking_json(
    result: ranking.Ranking,
    found: Sequence[findings.Finding],
    rows: Sequence[ranking.Row],
    runs: Sequence[str],
) -> dict:
    """The ranking answer (the ``/ranking`` route, ``tb-stagnation --json``, ``Analysis.to_json``).

    ``found``: the ranking's findings; ``rows``: the rows to send (filtered);
    ``runs``: every run of the experiment. Layers, thresholds and findings are
    those of the ranked runs.
    """
    return {
        "ratio": result.ratio,
        "runs": list(runs),
        # Before the rows: what a reader of the object (or of `tb-stagnation --json`) wants first.
        "findings": [finding_json(f) for f in found],
        "rows": [row_json(r) for r in rows],
        "layers": [layer_json(layer) for layer in result.layers],
        "thresholds": {run: thresholds_json(th) for run, th in result.thresholds.items()},
        "thinned": _thinned(result),
        "definitions": definitions_json(),
        **freshness_json(result.rows),
    }


def freshness_json(rows: Iterable[ranking.Row], refreshing: bool = False) -> dict:
    """How new an answer's data is: ``as_of``, run -> the newest step of its ``rows``, and ``refreshing``.

    ``refreshing`` is true when the plugin answered from its last complete
    result while a newer one is being made from data it has not read yet;
    it stays the last field, so that the plugin can flag an encoded answer.
    """
    as_of: dict[str, int] = {}
    for row in rows:
        if row.last_step is not None:
            as_of[row.run] = max(as_of.get(row.run, row.last_step), row.last_step)
    return dict(zip(FRESHNESS_FIELDS, (as_of, refreshing)))


def series_json(
    row: ranking.Row,
    result: ranking.Ranking,
    series: drift.Series,
    matched: Mapping[str, exact_series.ExactSeries],
) -> dict:
    """The series answer: the row, its run's thresholds, what each of its charts draws, and ``as_of``.

    The histogram arrays carry no verdict: ``stagnant_since`` is the row's,
    measured on the source that scored it against that source's threshold.
    """
    values = histogram.quantiles(series.histograms)
    answer = {
        **row_json(row),
        # beside the sources' stagnant lines, the dying_relu line of the zero-share chart
        "thresholds": {**thresholds_json(result.thresholds[row.run]), "zero_share": vocabulary.DYING_RELU_SHARE},
        "steps": [int(s) for s in series.steps],
        "wall_times": [float(w) for w in series.wall_times],
        "drift": numbers(series.drift),
        "rate": numbers(series.rate),
        "percentiles": {
            "bps": list(histogram.DISTRIBUTION_BPS),
            "values": [numbers(v) if np.isfinite(v).all() else None for v in values],
        },
        # share of exact zeros per sample (null where the buckets cannot tell: measure.zeros)
        "zero_share": numbers(series.zero_share),
    }
    for source in records.SOURCES:
        answer[source] = exact_series_json(matched.get(source))
    answer["units"] = units_json(findings.unit_series(matched, row.source))
    return {**answer, **freshness_json(r for r in result.rows if r.run == row.run)}


def exact_series_json(series: exact_series.ExactSeries | None) -> dict | None:
    """One exact-movement series as the tab charts it; ``None`` where the row has none.

    ``thinned``: ``{kept, written}`` records where the loader kept fewer than were written, else ``None``.
    """
    if series is None:
        return None
    return {
        "axis": series.axis,
        "thinned": {"kept": series.kept, "written": series.written} if series.thinned else None,
        "steps": [int(s) for s in series.steps],
        "update_ratio": numbers(series.update_ratio),
        "rms": numbers(series.rms),
        "grad_norm": numbers(series.grad_norm) if len(series.grad_norm) else None,
        "change": numbers(series.change) if len(series.change) else None,
        "cosine": numbers(series.cosine) if len(series.cosine) else None,
    }


def units_json(series: exact_series.ExactSeries | None) -> dict | None:
    """A tensor's per-unit movement as the unit view draws it; ``None`` where it has none.

    ``sorted``: at most 512 units ascending by their movement summed over the
    pairs (:func:`_view_sample`: the 256 weakest, every
    dead one among them, then an even sample); ``pairs``: each kept pair's
    later step and the quantiles of its units' per-step movement; ``dead``
    every dead unit, ``threshold`` the sum under which a unit is dead.
    """
    if series is None:
        return None
    shown = _view_sample(series.units)
    return {
        "noun": series.unit_noun,
        "axis": series.unit_axis,
        "count": len(series.units),
        "source": series.source,
        "dead": [int(i) for i in findings.dead_unit_indices(series)],
        "threshold": number(findings.dead_unit_threshold(series)),
        "sorted": {"units": [int(i) for i in shown], "movement": numbers(series.units[shown])},
        "pairs": {"steps": [int(s) for s in series.unit_steps], "quantiles": [numbers(q) for q in series.unit_quantiles]},
    }


def _view_sample(movement: np.ndarray, head: int = 256, most: int = 512) -> np.ndarray:
    """Indices of at most ``most`` units, ascending by ``movement``: the ``head`` weakest, then an even sample.

    The weakest come first whole (dead units are the weakest by
    definition, so up to ``head`` of them are all there); the rest of the
    budget samples the others evenly by rank, the strongest unit included,
    so the curve keeps its shape over any number of units.
    """
    order = np.argsort(movement, kind="stable")
    if len(order) <= most:
        return order
    rest = order[head:]
    picks = np.unique(np.linspace(0, len(rest) - 1, most - head).round().astype(np.int64))
    return np.concatenate([order[:head], rest[picks]])


def definitions_json() -> dict:
    """The ``definitions`` object: what every word of the answers means, for the tab's legends."""
    return {
        "statuses": _entries(vocabulary.STATUS_MEANINGS, vocabulary.STATUSES),
        "roles": _entries(vocabulary.ROLE_MEANINGS, vocabulary.ROLES),
        "sources": _entries(vocabulary.SOURCE_MEANINGS, vocabulary.SOURCE_PREFERENCE),
        "finding_kinds": _entries(vocabulary.FINDING_MEANINGS, vocabulary.FINDING_KINDS),
        "parameter_roles": vocabulary.parameter_roles(),
        "stuck_statuses": vocabulary.stuck_statuses(),
        "default_ratio": vocabulary.DEFAULT_RATIO,
        "thinned": vocabulary.THINNED_MEANING,
        "keep_all_flag": records.KEEP_ALL_FLAG,
    }


def _entries(meanings: Mapping[str, str], order: Iterable[str]) -> list[dict[str, str]]:
    return [{"name": name, "meaning": meanings[name]} for name in order]


def _thinned(result: ranking.Ranking) -> dict[str, dict[str, int]]:
    """run -> ``{kept, written, series}`` of the exact series a loader kept fewer records of than were written."""
    by_run: dict[str, list[exact_series.ExactSeries]] = {}
    for (run, _), sources in result.exact.items():
        by_run.setdefault(run, []).extend(sources.values())
    return {run: short for run, series in sorted(by_run.items()) if (short := exact_series.thinned(series))}
