"""Per-tag summaries to a ranking: statuses, thresholds, model order, layers.

Statuses need the whole run: "stagnant" means far slower than the run's
typical trainable parameter, so the threshold is ``ratio`` times the median
score of the run's trainable tags. Histogram drift and exact update ratios
are different quantities (drift is a lower bound on mean |dW| / RMS, the
exact ratio is ||dW|| / ||W||), so each source gets its own threshold.

A run is ranked in named steps (:func:`_rank_run`): match its exact series
to its tags, choose each tag's scoring source, put the tags in model order,
score them, draw each source's threshold, and make the rows.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Mapping, Sequence

import numpy as np

from tb_stagnation import records
from tb_stagnation.measure.summaries import Summary, Tail, sparkline
from tb_stagnation.measure.exact_series import ExactData, ExactSeries
from tb_stagnation.measure.zeros import ZeroShares
from tb_stagnation.verdict import blocks, matching, naming
from tb_stagnation.verdict.vocabulary import (
    DEFAULT_RATIO,
    JUDGED_ROLES,
    PARAMETER_ROLES,
    SOURCE_PREFERENCE,
    TRAINABLE_ROLES,
    UNRESOLVED_MARGIN,
    Role,
    Source,
    Status,
)


@dataclasses.dataclass(frozen=True)
class Row:
    """One (run, tag) of the ranking: its role, status and score, and the evidence behind them."""

    run: str
    tag: str
    layer: str
    role: Role
    order: int
    status: Status
    score: float
    net: float
    samples: int  # samples, snapshots or checkpoints of the scoring source
    first_step: int | None  # ... and the steps they span
    last_step: int | None
    floor: float
    threshold: float
    source: Source
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
    # Where the tensor sits among repeated blocks (blocks.parse), for the tab's block x module
    # heatmap, which should not re-parse names: the block's name ("model.layers.3") and the
    # tensor's name inside it ("self_attn.q_proj.weight"); both None outside any block.
    block: str | None = None
    module: str | None = None
    zeros: ZeroShares | None = None  # the histograms' shares of exact zeros, where their buckets tell (dying_relu)
    # When its first histogram was written: tags written in one event (TF1's merged summaries) share it,
    # and their model order is then unknown (the loaders keep no order inside an event).
    first_wall_time: float = float("nan")


@dataclasses.dataclass(frozen=True)
class Layer:
    """One layer's place in the drift-versus-depth profile of its run."""

    run: str
    layer: str
    order: int
    tag: str
    role: Role
    score: float
    status: Status
    source: Source


# (run, tag) -> source -> the exact series matched to that row
MatchedExact = dict[tuple[str, str], dict[str, ExactSeries]]


@dataclasses.dataclass(frozen=True)
class Ranking:
    """Every run's rows (most-moving first), layer profiles and thresholds: what findings read."""

    rows: list[Row]
    layers: list[Layer]
    thresholds: dict[str, dict[Source, float]]  # run -> source -> threshold
    exact: MatchedExact  # for the detail views and the findings' evidence
    ratio: float = DEFAULT_RATIO  # the fraction of typical movement the thresholds are


def rank(
    summaries: Mapping[str, Mapping[str, Summary]],
    exact: ExactData | None = None,
    ratio: float = DEFAULT_RATIO,
) -> Ranking:
    """Rank every (run, tag), most-moving first.

    ``summaries``: run -> histogram tag -> :class:`Summary`. ``exact``:
    run -> source -> parameter name -> :class:`ExactSeries` (see
    :func:`matching.match_exact` for how they meet histogram tags);
    parameters with exact data but no histogram get rows of their own.
    """
    exact = exact or {}
    rows: list[Row] = []
    layers: list[Layer] = []
    thresholds: dict[str, dict[Source, float]] = {}
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


# ------------------------------------------------------------------ one run, step by step


def _rank_run(
    summaries: Mapping[str, Summary],
    exact: Mapping[str, Mapping[str, ExactSeries]],
    run: str,
    ratio: float,
) -> tuple[list[Row], dict[Source, float], dict[str, dict[str, ExactSeries]]]:
    """One run's rows in model order, its thresholds per source, its exact series by row tag.

    In steps, each a function below: match the exact series to the tags,
    choose each tag's scoring source, put the tags in model order, score
    them (:meth:`_Measured.score`), draw each source's threshold, make the rows.
    """
    measured = _match(summaries, exact)
    scorer = {tag: _scoring_source(measured, tag) for tag in measured.names}
    tags = _model_order(measured)
    thresholds = _thresholds(measured, ratio)
    rows = [_row(run, order, tag, measured, scorer[tag], thresholds) for order, tag in enumerate(tags)]
    return rows, thresholds, measured.exact


@dataclasses.dataclass(frozen=True)
class _Measured:
    """What one run measured of each row's tag, by source: what every later step reads."""

    summaries: Mapping[str, Summary]  # histogram tag -> drift summary
    exact: dict[str, dict[str, ExactSeries]]  # source -> row tag -> exact series
    names: dict[str, naming.TagName]  # every row's tag (each histogram, each exact-only parameter) parsed

    def measures(self, tag: str, source: str) -> bool:
        """Whether ``source`` holds a series of ``tag``."""
        return tag in self.summaries if source == Source.HISTOGRAM else tag in self.exact.get(source, {})

    def score(self, tag: str, source: str) -> float:
        """Score: the tag's movement as ``source`` measures it (NaN where it has no series there).

        The median drift or update ratio per step, so that one outlier interval does not decide the rank.
        """
        if not self.measures(tag, source):
            return float("nan")
        return self.summaries[tag].score if source == Source.HISTOGRAM else _exact_score(self.exact[source][tag])

    def frozen(self, tag: str, source: str) -> bool:
        """Whether ``source`` saw the tag never change."""
        if source == Source.HISTOGRAM:
            return tag in self.summaries and self.summaries[tag].frozen
        return self.exact[source][tag].frozen


def _match(summaries: Mapping[str, Summary], exact: Mapping[str, Mapping[str, ExactSeries]]) -> _Measured:
    """Match exact series to tags: a tensor measured both ways is one row with both figures.

    An exact-only parameter (no histogram logged) is a row of its own, named as its series is.
    """
    by_source = matching.by_tag(summaries, exact)
    tags = dict.fromkeys(summaries)
    for params in by_source.values():
        tags.update(dict.fromkeys(params))
    return _Measured(summaries, by_source, {tag: naming.parse(tag) for tag in tags})


def _scoring_source(measured: _Measured, tag: str) -> Source:
    """Choose the scoring source: the first in SOURCE_PREFERENCE that measured the tag's movement.

    The exact ratio is the truer figure (drift is a lower bound); but an exact
    series without a ratio yet (one snapshot, or a tensor still at norm 0)
    scores nothing, and the histogram does, where there is one.
    """
    present = [s for s in SOURCE_PREFERENCE[:-1] if measured.measures(tag, s)]
    for source in present:
        series = measured.exact[source][tag]
        if len(series.ratios) or series.frozen:
            return source
    return Source.HISTOGRAM if tag in measured.summaries or not present else present[0]


def _model_order(measured: _Measured) -> list[str]:
    """Order: the run's tags in model order, which the layer profile and the table follow.

    Histograms come in the order they were first written (:func:`_appearance`).
    Exact-only parameters keep their place in what was logged or stored, by
    the source's first step and the writer's own order: not the listing's,
    nor each tag's first kept step, as a loader orders and samples tags its
    own way. Repeated blocks then go in numeric order (:func:`blocks.in_model_order`):
    a safetensors checkpoint stores its tensors alphabetically, ``layers.10`` before ``layers.2``.
    """
    stored_at = {}
    for source in reversed(SOURCE_PREFERENCE[:-1]):
        params = measured.exact.get(source, {})
        first = min((int(s.steps[0]) for s in params.values() if len(s.steps)), default=0)
        for i, (tag, series) in enumerate(params.items()):
            if len(series.steps):
                stored_at[tag] = (first, i if series.order is None else series.order)
    return blocks.in_model_order(
        sorted(measured.names, key=lambda t: _appearance(measured.summaries.get(t), stored_at.get(t), t))
    )


def _thresholds(measured: _Measured, ratio: float) -> dict[Source, float]:
    """Thresholds: each source's stagnant line, ``ratio`` x its typical parameter's score.

    Measured on every parameter that source measured, whichever source scores
    it: a run scored by exact ratios still draws the stagnant line on its
    histogram and checkpoint charts, at its parameters' typical figure for
    each. Frozen tags do not count towards the typical movement.
    """
    thresholds = {}
    for source in SOURCE_PREFERENCE:
        scores = [
            (name.role, measured.score(tag, source))
            for tag, name in measured.names.items()
            if measured.measures(tag, source) and not measured.frozen(tag, source)
        ]
        thresholds[source] = ratio * _typical(scores)
    return thresholds


def _row(
    run: str, order: int, tag: str, measured: _Measured, source: Source, thresholds: Mapping[Source, float]
) -> Row:
    """The row: a tag judged by its scoring source against that source's threshold.

    Its span and count are those of what scored it, so that a finding's
    "over N snapshots (steps a-b)" describes the evidence it names.
    """
    summary, name, block = measured.summaries.get(tag), measured.names[tag], blocks.parse(tag)
    ex = measured.exact[source][tag] if source != Source.HISTOGRAM else None
    score, threshold = measured.score(tag, source), thresholds[source]
    tail = Tail.of(ex.steps, ex.update_ratio) if ex is not None else summary.tail
    since, since_intervals = tail.since(threshold) if name.role in JUDGED_ROLES else (None, 0)
    return Row(
        run=run,
        tag=tag,
        layer=name.layer,
        role=name.role,
        order=order,
        status=_status(summary, ex, name.role, score, threshold),
        score=score,
        net=summary.net if summary is not None else float("nan"),
        samples=len(ex.steps) if ex is not None else summary.samples,
        first_step=_int(ex.steps, 0) if ex is not None else summary.first_step,
        last_step=_int(ex.steps, -1) if ex is not None else summary.last_step,
        floor=summary.floor if summary is not None else float("nan"),
        threshold=threshold,
        source=source,
        axis=ex.axis if ex is not None else records.STEP,
        histogram_score=summary.score if summary is not None else float("nan"),
        exact_score=score if ex is not None else float("nan"),
        sparkline=sparkline(ex.ratios) if ex is not None else summary.sparkline,
        stagnant_since=since,
        stagnant_intervals=since_intervals,
        intervals=tail.intervals,
        nonfinite_since=_nonfinite_since(summary, ex),
        block=block.name if block is not None else None,
        module=block.rest if block is not None else None,
        zeros=summary.zeros if summary is not None else None,
        first_wall_time=summary.first_wall_time if summary is not None else float("nan"),
    )


# ------------------------------------------------------------------ the figures each step uses


def _status(
    summary: Summary | None,
    exact: ExactSeries | None,
    role: Role,
    score: float,
    threshold: float,
) -> Status:
    """The one status a tag gets; earlier checks win. ``exact`` is the scoring exact series."""
    if (summary is not None and summary.nonfinite) or (exact is not None and exact.nonfinite):
        return Status.NONFINITE
    if exact is not None:
        if exact.frozen:
            return Status.FROZEN
    elif summary is None or summary.samples < 2:
        return Status.INSUFFICIENT
    elif summary.frozen:
        return Status.FROZEN
    if role not in JUDGED_ROLES:
        return Status.MOVING  # gradients and activations change with the data
    if np.isfinite(threshold) and score < threshold:
        unresolvable = exact is None and summary.floor >= threshold and score * UNRESOLVED_MARGIN >= threshold
        return Status.UNRESOLVED if unresolvable else Status.STAGNANT
    return Status.MOVING


def _typical(scores: list[tuple[Role, float]]) -> float:
    """Median score of the trainable parameters; of the tags whose name does not say, if none is.

    Never of gradients, activations or moving statistics: they change with the data, so a
    run whose histograms are mostly gradients would otherwise set its parameters' bar at
    1% of a gradient's drift and call healthy layers stagnant.
    """
    trainable = [s for role, s in scores if role in TRAINABLE_ROLES]
    return _median(trainable) if trainable else _median([s for role, s in scores if role == Role.OTHER])


def _median(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v) and v > 0]
    return float(np.median(finite)) if finite else float("nan")


def _exact_score(series: ExactSeries) -> float:
    """Median update ratio: one outlier interval does not decide the rank."""
    ratios = series.ratios
    return float(np.median(ratios)) if len(ratios) else float("nan")


def _nonfinite_since(summary: Summary | None, exact: ExactSeries | None) -> int | None:
    """The first step where the histogram or the scoring exact series holds NaN or Inf."""
    steps = []
    if summary is not None and summary.first_nonfinite_step is not None:
        steps.append(summary.first_nonfinite_step)
    if exact is not None and exact.first_nonfinite_step is not None:
        steps.append(exact.first_nonfinite_step)
    return min(steps) if steps else None


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
    """Scored rows first, most-moving first; then the frozen; then the nonfinite and the insufficient."""
    group = {Status.FROZEN: 1, Status.NONFINITE: 2, Status.INSUFFICIENT: 2}.get(row.status, 0)
    score = row.score if np.isfinite(row.score) else -np.inf
    return (group, -score, row.run, row.order)


def _layers(rows: Sequence[Row]) -> list[Layer]:
    """One entry per parameter layer, in model order, scored by its main tensor."""
    main: dict[str, Row] = {}
    for row in rows:  # rows are in model order here
        if row.role not in PARAMETER_ROLES:
            continue
        current = main.get(row.layer)
        if current is None or (row.role == Role.WEIGHT and current.role != Role.WEIGHT):
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
