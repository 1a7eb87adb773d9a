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

from tb_stagnation import records
from tb_stagnation.measure.summaries import Summary, Tail, sparkline
from tb_stagnation.measure.exact_series import ExactData, ExactSeries
from tb_stagnation.verdict import naming

DEFAULT_RATIO = 0.01  # stagnant: two orders of magnitude slower than typical

FROZEN, STAGNANT, MOVING = "frozen", "stagnant", "moving"
NONFINITE, UNRESOLVED, INSUFFICIENT = "nonfinite", "unresolved", "insufficient"
STATUSES = (FROZEN, STAGNANT, MOVING, NONFINITE, UNRESOLVED, INSUFFICIENT)
# Statuses a CI gate fails on (`tb-stagnation --fail-on-stagnant`).
STUCK_STATUSES = frozenset({FROZEN, STAGNANT})
UNRESOLVED_MARGIN = 100.0
"""A histogram-scored tag below its threshold is ``unresolved`` only if the buckets could not
have shown a change at the threshold's rate (floor at or above it) and its measured drift is
within this factor of the threshold; drift this far below the threshold is evidence enough
for ``stagnant``, coarse buckets or not."""

HISTOGRAM, EXACT, CHECKPOINT = "histogram", records.EXACT, records.CHECKPOINT
# Which measurement a row is scored by when it has several: the writers' ratio at every
# snapshot, then the ratio between checkpoints, then histogram drift (a lower bound).
SOURCE_PREFERENCE = (EXACT, CHECKPOINT, HISTOGRAM)


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
    samples: int  # samples, snapshots or checkpoints of the scoring source
    first_step: int | None  # ... and the steps they span
    last_step: int | None
    floor: float
    threshold: float
    source: str
    axis: str  # what the score's steps count: records.STEP, EPOCH or ORDER
    histogram_score: float
    exact_score: float
    sparkline: tuple[float, ...]
    # For findings: the first step from which every later measured movement of a parameter
    # stays below ``threshold`` (None: it reached the threshold at its last measurement, or
    # is no parameter), and how many measured intervals lie since then.
    stagnant_since: int | None = None
    stagnant_intervals: int = 0
    intervals: int = 0  # measured intervals in all, by the scoring source
    nonfinite_since: int | None = None  # the first step holding NaN or Inf


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


# (run, tag) -> source -> the exact series matched to that row
MatchedExact = dict[tuple[str, str], dict[str, ExactSeries]]


@dataclasses.dataclass(frozen=True)
class Ranking:
    rows: list[Row]
    layers: list[Layer]
    thresholds: dict[str, dict[str, float]]  # run -> source -> threshold
    exact: MatchedExact  # for the detail views and the findings' evidence
    ratio: float = DEFAULT_RATIO  # the fraction of typical movement the thresholds are


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v) and v > 0]
    return float(np.median(finite)) if finite else float("nan")


def _exact_score(series: ExactSeries | None) -> float:
    """Median update ratio: one outlier interval does not decide the rank."""
    ratios = series.ratios if series is not None else np.empty(0)
    return float(np.median(ratios)) if len(ratios) else float("nan")


def _status(
    summary: Summary | None,
    exact: ExactSeries | None,
    role: str,
    score: float,
    threshold: float,
) -> str:
    """The one status a tag gets; earlier checks win. ``exact`` is the scoring exact series."""
    if (summary is not None and summary.nonfinite) or (exact is not None and exact.nonfinite):
        return NONFINITE
    if exact is not None:
        if exact.frozen:
            return FROZEN
    elif summary is None or summary.samples < 2:
        return INSUFFICIENT
    elif summary.frozen:
        return FROZEN
    if role not in naming.PARAMETER_ROLES and role != naming.OTHER:
        return MOVING  # gradients and activations change with the data
    if np.isfinite(threshold) and score < threshold:
        unresolvable = exact is None and summary.floor >= threshold and score * UNRESOLVED_MARGIN >= threshold
        return UNRESOLVED if unresolvable else STAGNANT
    return MOVING


def _typical(scores: list[tuple[str, float]]) -> float:
    """Median score of the trainable parameters; of the tags whose name does not say, if none is.

    Never of gradients, activations or moving statistics: they change with the data, so a
    run whose histograms are mostly gradients would otherwise set its parameters' bar at
    1% of a gradient's drift and call healthy layers stagnant.
    """
    trainable = [s for role, s in scores if role in naming.TRAINABLE_ROLES]
    return _median(trainable) if trainable else _median([s for role, s in scores if role == naming.OTHER])


def rank(
    summaries: Mapping[str, Mapping[str, Summary]],
    exact: ExactData | None = None,
    ratio: float = DEFAULT_RATIO,
) -> Ranking:
    """Rank every (run, tag), most-moving first.

    ``summaries``: run -> histogram tag -> :class:`Summary`. ``exact``:
    run -> source -> parameter name -> :class:`ExactSeries` (see
    :func:`match_exact` for how they meet histogram tags); parameters with
    exact data but no histogram get rows of their own.
    """
    exact = exact or {}
    rows: list[Row] = []
    layers: list[Layer] = []
    thresholds: dict[str, dict[str, float]] = {}
    matched: MatchedExact = {}
    for run in sorted(set(summaries) | set(exact)):
        run_rows, run_thresholds, by_source = _rank_run(summaries.get(run, {}), exact.get(run, {}), run, ratio)
        rows.extend(run_rows)
        layers.extend(_layers(run_rows))
        thresholds[run] = run_thresholds
        for source, params in by_source.items():
            for tag, series in params.items():
                matched.setdefault((run, tag), {})[source] = series
    rows.sort(key=_sort_key)
    return Ranking(rows=rows, layers=layers, thresholds=thresholds, exact=matched, ratio=ratio)


def match_exact(tags: Collection[str], params: Collection[str]) -> dict[str, str]:
    """parameter name -> the histogram tag of the same tensor, where one is found.

    Names meet on their noise-free key (``conv1/kernel`` for
    ``conv1/kernel/histogram``). Failing that, on the key without its first
    component or without the ``_1`` TF1 appends to a summary named like its
    variable (``out/weights_1``), on either side or both, when that
    identifies one tag: the outermost name is where writers disagree (Keras' histograms say
    ``sequential/dense/kernel`` where a TF2 checkpoint of the same model says
    ``model/dense/kernel``; Lightning's attribute path adds ``model.`` to
    what ``self.model.named_parameters()`` logs).
    """
    parsed = {tag: naming.parse(tag) for tag in tags}
    keys = {tag: name.param_key for tag, name in parsed.items() if name.role != naming.GRADIENT}
    full: dict[str, str] = {}
    short: dict[str, list[str]] = {}
    for tag, key in keys.items():
        full.setdefault(key, tag)
        for variant in _variants(key):
            short.setdefault(variant, []).append(tag)
    matches = {}
    for param in params:
        key = naming.parse(param).param_key
        if key in full:
            matches[param] = full[key]
            continue
        candidates = {t for variant in _variants(key) for t in short.get(variant, [])}
        if len(candidates) == 1:
            matches[param] = candidates.pop()
    return matches


def _variants(key: str) -> set[str]:
    """The spellings a key is matched by: as is, without its first component, without a TF1 ``_1``."""
    plain = naming.strip_variable_suffix(key)
    return {key, _without_first(key), plain, _without_first(plain)}


def _without_first(key: str) -> str:
    """``model/dense/kernel`` -> ``dense/kernel``; a key of one or two components stays."""
    sep = "/" if "/" in key else "."
    parts = key.split(sep)
    return sep.join(parts[1:]) if len(parts) > 2 else key


def _rank_run(
    summaries: Mapping[str, Summary],
    exact: Mapping[str, Mapping[str, ExactSeries]],
    run: str,
    ratio: float,
) -> tuple[list[Row], dict[str, float], dict[str, dict[str, ExactSeries]]]:
    """One run's rows in model order, its thresholds per source, its exact series by row tag."""
    names = {tag: naming.parse(tag) for tag in summaries}
    by_source: dict[str, dict[str, ExactSeries]] = {}
    for source, params in exact.items():
        matched = match_exact(summaries, params)
        by_source[source] = {matched.get(p, p): series for p, series in params.items()}
        for tag in by_source[source].keys() - names.keys():
            names[tag] = naming.parse(tag)
    scorer = {tag: _scoring_source(tag, summaries, by_source) for tag in names}
    # Exact-only parameters: their place in what was logged or stored, by the source's first
    # step and the writer's own order (not the listing's, nor each tag's first kept step: a
    # loader orders and samples tags its own way).
    stored_at = {}
    for source in reversed(SOURCE_PREFERENCE[:-1]):
        params = by_source.get(source, {})
        first = min((int(s.steps[0]) for s in params.values() if len(s.steps)), default=0)
        for i, (tag, series) in enumerate(params.items()):
            if len(series.steps):
                stored_at[tag] = (first, i if series.order is None else series.order)
    tags = sorted(names, key=lambda t: _appearance(summaries.get(t), stored_at.get(t), t))
    scores = {tag: _source_score(tag, source, summaries, by_source) for tag, source in scorer.items()}
    # Each source's threshold is measured on every parameter that source measured, whichever
    # source scores it: a run scored by exact ratios still draws the stagnant line on its
    # histogram and checkpoint charts, at its parameters' typical figure for each.
    thresholds = {}
    for source in SOURCE_PREFERENCE:
        measured = [
            (names[t].role, _source_score(t, source, summaries, by_source))
            for t in names
            if _measures(t, source, summaries, by_source) and not _is_frozen(t, source, summaries, by_source)
        ]
        thresholds[source] = ratio * _typical(measured)
    rows = []
    for order, tag in enumerate(tags):
        summary, name, source = summaries.get(tag), names[tag], scorer[tag]
        ex = by_source[source][tag] if source != HISTOGRAM else None
        exact_score = scores[tag] if ex is not None else float("nan")
        since, since_intervals = None, 0
        if ex is not None:
            tail = Tail.of(ex.steps, ex.update_ratio)
        else:
            tail = summary.tail if summary is not None else Tail()
        if name.role in naming.PARAMETER_ROLES or name.role == naming.OTHER:
            since, since_intervals = tail.since(thresholds[source])
        rows.append(
            Row(
                run=run,
                tag=tag,
                layer=name.layer,
                role=name.role,
                order=order,
                status=_status(summary, ex, name.role, scores[tag], thresholds[source]),
                score=scores[tag],
                net=summary.net if summary is not None else float("nan"),
                # The span and count of what scored the row, so that a finding's "over N
                # snapshots (steps a-b)" describes the evidence it names.
                samples=len(ex.steps) if ex is not None else summary.samples,
                first_step=_int(ex.steps, 0) if ex is not None else summary.first_step,
                last_step=_int(ex.steps, -1) if ex is not None else summary.last_step,
                floor=summary.floor if summary is not None else float("nan"),
                threshold=thresholds[source],
                source=source,
                axis=ex.axis if ex is not None else records.STEP,
                histogram_score=summary.score if summary is not None else float("nan"),
                exact_score=exact_score,
                sparkline=sparkline(ex.ratios) if ex is not None else summary.sparkline,
                stagnant_since=since,
                stagnant_intervals=since_intervals,
                intervals=tail.intervals,
                nonfinite_since=_nonfinite_since(summary, ex),
            )
        )
    return rows, thresholds, by_source


def _nonfinite_since(summary: Summary | None, exact: ExactSeries | None) -> int | None:
    """The first step where the histogram or the scoring exact series holds NaN or Inf."""
    steps = []
    if summary is not None and summary.first_nonfinite_step is not None:
        steps.append(summary.first_nonfinite_step)
    if exact is not None and exact.first_nonfinite_step is not None:
        steps.append(exact.first_nonfinite_step)
    return min(steps) if steps else None


def _scoring_source(tag: str, summaries: Mapping[str, Summary], by_source) -> str:
    """The first source in SOURCE_PREFERENCE that measured the tag's movement.

    An exact series without a ratio yet (one snapshot, or a tensor still at
    norm 0) scores nothing; the histogram does, where there is one.
    """
    present = [s for s in SOURCE_PREFERENCE[:-1] if tag in by_source.get(s, {})]
    for source in present:
        series = by_source[source][tag]
        if len(series.ratios) or series.frozen:
            return source
    return HISTOGRAM if tag in summaries or not present else present[0]


def _measures(tag: str, source: str, summaries: Mapping[str, Summary], by_source) -> bool:
    """Whether ``source`` holds a series of ``tag``."""
    return tag in summaries if source == HISTOGRAM else tag in by_source.get(source, {})


def _source_score(tag: str, source: str, summaries: Mapping[str, Summary], by_source) -> float:
    """The tag's score as ``source`` measures it (NaN where it has no series there)."""
    if not _measures(tag, source, summaries, by_source):
        return float("nan")
    return summaries[tag].score if source == HISTOGRAM else _exact_score(by_source[source][tag])


def _is_frozen(tag: str, source: str, summaries: Mapping[str, Summary], by_source) -> bool:
    """Frozen tags do not count towards a run's typical movement."""
    if source == HISTOGRAM:
        return tag in summaries and summaries[tag].frozen
    return by_source[source][tag].frozen


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


def _appearance(summary: Summary | None, stored_at: tuple[int, int] | None, tag: str) -> tuple:
    """Model order: the order tags were first written in, by step then wall time.

    A parameter with exact data only keeps the order it was logged or stored
    in (a checkpoint's state dict is in model order), after any histogram of
    the same step.
    """
    if summary is not None and summary.first_step is not None:
        return (summary.first_step, summary.first_wall_time, 0, tag)
    if stored_at is not None:
        return (stored_at[0], float("inf"), stored_at[1], tag)
    return (float("inf"), float("inf"), 0, tag)


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
