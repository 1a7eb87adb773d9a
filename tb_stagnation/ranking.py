"""Per-tag summaries to a ranking: statuses, thresholds, model order, layers.

Statuses need the whole run: "stagnant" means far slower than the run's
typical trainable parameter, so the threshold is ``ratio`` times the median
score of the run's trainable tags. Histogram drift and exact update ratios
are different quantities (drift is a lower bound on mean |dW| / RMS, the
exact ratio is ||dW|| / ||W||), so each source gets its own threshold.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from tb_stagnation import naming
from tb_stagnation.exact import ExactSeries
from tb_stagnation.drift import Summary, sparkline

DEFAULT_RATIO = 0.01  # stagnant: two orders of magnitude slower than typical

FROZEN, STAGNANT, MOVING = "frozen", "stagnant", "moving"
NONFINITE, UNRESOLVED, INSUFFICIENT = "nonfinite", "unresolved", "insufficient"
STATUSES = (FROZEN, STAGNANT, MOVING, NONFINITE, UNRESOLVED, INSUFFICIENT)
# Statuses a CI gate fails on (`tb-stagnation --fail-on-stagnant`).
STUCK_STATUSES = frozenset({FROZEN, STAGNANT})

HISTOGRAM, EXACT = "histogram", "exact"


@dataclasses.dataclass(frozen=True)
class Row:
    run: str
    tag: str
    layer: str
    role: str
    order: int
    status: str
    score: float
    net: float
    samples: int
    first_step: int | None
    last_step: int | None
    floor: float
    threshold: float
    source: str
    histogram_score: float
    exact_score: float
    sparkline: tuple[float, ...]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer's place in the drift-versus-depth profile of its run."""

    run: str
    layer: str
    order: int
    tag: str
    role: str
    score: float
    status: str
    source: str


@dataclasses.dataclass(frozen=True)
class Ranking:
    rows: list[Row]
    layers: list[Layer]
    thresholds: dict[str, dict[str, float]]  # run -> source -> threshold


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v) and v > 0]
    return float(np.median(finite)) if finite else float("nan")


def _measured(series: ExactSeries | None) -> np.ndarray:
    """The logged update ratios (NaN marks a snapshot without one, such as the first)."""
    if series is None:
        return np.empty(0)
    return series.update_ratio[~np.isnan(series.update_ratio)]


def _exact_score(series: ExactSeries | None) -> float:
    ratios = _measured(series)
    return float(np.median(ratios)) if len(ratios) else float("nan")


def _exact_nonfinite(series: ExactSeries | None) -> bool:
    """Weights gone NaN/Inf show in the logged RMS; an infinite ratio too."""
    return series is not None and bool(
        (~np.isfinite(series.rms)).any() or np.isinf(series.update_ratio).any()
    )


def _status(
    summary: Summary | None,
    exact: ExactSeries | None,
    role: str,
    score: float,
    threshold: float,
) -> str:
    """The one status a tag gets; earlier checks win."""
    exact_values = _measured(exact)
    if (summary is not None and summary.nonfinite) or _exact_nonfinite(exact):
        return NONFINITE
    if len(exact_values):
        if (exact_values == 0).all():
            return FROZEN
    elif summary is None or summary.samples < 2:
        return INSUFFICIENT
    elif summary.frozen:
        return FROZEN
    if role not in naming.PARAMETER_ROLES and role != naming.OTHER:
        return MOVING  # gradients and activations change with the data
    if np.isfinite(threshold) and score < threshold:
        unresolvable = not len(exact_values) and summary.floor >= threshold
        return UNRESOLVED if unresolvable else STAGNANT
    return MOVING


def _typical(scores: list[tuple[str, float]]) -> float:
    """Median score of the trainable tags, or of all measured tags if none is trainable."""
    trainable = [s for role, s in scores if role in naming.TRAINABLE_ROLES]
    return _median(trainable) if trainable else _median([s for _, s in scores])


def rank(
    summaries: Mapping[str, Mapping[str, Summary]],
    exact: Mapping[str, Mapping[str, ExactSeries]] | None = None,
    ratio: float = DEFAULT_RATIO,
) -> Ranking:
    """Rank every (run, tag), most-moving first.

    ``summaries``: run -> histogram tag -> :class:`Summary`. ``exact``:
    run -> parameter name -> :class:`ExactSeries`, matched to histogram tags by
    their noise-free name (``conv1/kernel`` for ``conv1/kernel/histogram``);
    parameters with exact data but no histogram get rows of their own.
    """
    exact = exact or {}
    rows: list[Row] = []
    layers: list[Layer] = []
    thresholds: dict[str, dict[str, float]] = {}
    for run in sorted(set(summaries) | set(exact)):
        run_rows, run_thresholds = _rank_run(summaries.get(run, {}), exact.get(run, {}), run, ratio)
        rows.extend(run_rows)
        layers.extend(_layers(run_rows))
        thresholds[run] = run_thresholds
    rows.sort(key=_sort_key)
    return Ranking(rows=rows, layers=layers, thresholds=thresholds)


def _rank_run(
    summaries: Mapping[str, Summary], exact: Mapping[str, ExactSeries], run: str, ratio: float
) -> tuple[list[Row], dict[str, float]]:
    names = {tag: naming.parse(tag) for tag in summaries}
    by_key = {names[tag].param_key: tag for tag in summaries if names[tag].role != naming.GRADIENT}
    exact_for = {by_key.get(naming.parse(p).param_key, p): series for p, series in exact.items()}
    for param in exact_for.keys() - summaries.keys():
        names[param] = naming.parse(param)
    tags = sorted(names, key=lambda t: _appearance(summaries.get(t), exact_for.get(t), t))
    hist_scores = [(names[t].role, summaries[t].score) for t in summaries if not summaries[t].frozen]
    exact_score_of = {t: _exact_score(e) for t, e in exact_for.items()}
    exact_scores = [(names[t].role, score) for t, score in exact_score_of.items()]
    thresholds = {HISTOGRAM: ratio * _typical(hist_scores), EXACT: ratio * _typical(exact_scores)}
    rows = []
    for order, tag in enumerate(tags):
        summary, ex = summaries.get(tag), exact_for.get(tag)
        name = names[tag]
        measured = _measured(ex)
        source = EXACT if len(measured) else HISTOGRAM
        hist_score = summary.score if summary is not None else float("nan")
        exact_score = exact_score_of.get(tag, float("nan"))
        score = exact_score if source == EXACT else hist_score
        threshold = thresholds[source]
        rows.append(
            Row(
                run=run,
                tag=tag,
                layer=name.layer,
                role=name.role,
                order=order,
                status=_status(summary, ex, name.role, score, threshold),
                score=score,
                net=summary.net if summary is not None else float("nan"),
                samples=summary.samples if summary is not None else len(ex.steps),
                first_step=summary.first_step if summary is not None else _int(ex.steps, 0),
                last_step=summary.last_step if summary is not None else _int(ex.steps, -1),
                floor=summary.floor if summary is not None else float("nan"),
                threshold=threshold,
                source=source,
                histogram_score=hist_score,
                exact_score=exact_score,
                sparkline=sparkline(measured) if source == EXACT else summary.sparkline,
            )
        )
    return rows, thresholds


def select(
    rows: Sequence[Row],
    *,
    runs: Collection[str] | None = None,
    roles: Collection[str] | None = None,
    statuses: Collection[str] | None = None,
    tag_filter: re.Pattern | None = None,
) -> list[Row]:
    """The rows passing every given filter (``None`` or empty: no filter)."""
    return [
        r
        for r in rows
        if (not runs or r.run in runs)
        and (not roles or r.role in roles)
        and (not statuses or r.status in statuses)
        and (tag_filter is None or tag_filter.search(r.tag))
    ]


def _int(steps: np.ndarray, index: int) -> int | None:
    return int(steps[index]) if len(steps) else None


def _appearance(summary: Summary | None, ex: ExactSeries | None, tag: str) -> tuple:
    """Model order: the order tags were first written in, by step then wall time."""
    if summary is not None and summary.first_step is not None:
        return (summary.first_step, summary.first_wall_time, tag)
    if ex is not None and len(ex.steps):
        return (int(ex.steps[0]), float("inf"), tag)
    return (float("inf"), float("inf"), tag)


def _sort_key(row: Row) -> tuple:
    group = {FROZEN: 1, NONFINITE: 2, INSUFFICIENT: 2}.get(row.status, 0)
    score = row.score if np.isfinite(row.score) else -np.inf
    return (group, -score, row.run, row.order)


def _layers(rows: Sequence[Row]) -> list[Layer]:
    """One entry per parameter layer, in model order, scored by its main tensor."""
    main: dict[str, Row] = {}
    for row in rows:  # rows are in model order here
        if row.role not in naming.PARAMETER_ROLES:
            continue
        current = main.get(row.layer)
        if current is None or (row.role == naming.WEIGHT and current.role != naming.WEIGHT):
            main[row.layer] = row
    first = {}
    for row in rows:
        first.setdefault(row.layer, row.order)
    ordered = sorted(main.values(), key=lambda r: first[r.layer])
    return [
        Layer(
            run=r.run,
            layer=r.layer,
            order=i,
            tag=r.tag,
            role=r.role,
            score=r.score,
            status=r.status,
            source=r.source,
        )
        for i, r in enumerate(ordered)
    ]
