"""What a ranking means, in plain sentences: a :class:`~ranking.Ranking` in, each run's findings out.

Detection and wording only; the JSON of a finding is
:func:`tb_stagnation.wire.finding_json`'s. A finding names a problem the
ranking shows (a :class:`~vocabulary.Kind`), the tags and layers it concerns
and, in one sentence, the figures that show it. Findings only ever name what
a status or a profile already measured (thresholds from :mod:`vocabulary`).
Causes come first, each with its fix, and the tags they explain are not
told again as symptoms:

- ``norm_stats_frozen``: a normalisation layer's ``frozen`` running
  statistics while its scale or offset, or a layer beside it, moves; the fix
  for the framework its tag names tell (:func:`_norm_framework`);
- ``bias_before_norm``: a ``stagnant`` or ``frozen`` bias whose kernel moves,
  batch norm next in model order (or in the same event, where TF1's merged
  summaries leave the order unknown);
- ``dying_relu``: an activation whose share of exact zeros
  (:mod:`tb_stagnation.measure.zeros`, where the buckets resolve them) stays
  at :data:`~vocabulary.DYING_RELU_SHARE` or more over its last
  :data:`~vocabulary.DYING_RELU_MIN_SAMPLES` kept samples or more;
- ``init_scale``: a weight whose records carry its shape (checkpoint
  imports, the writers) and whose first recorded RMS is
  :data:`~vocabulary.INIT_SCALE_FACTOR` or more off both He's and Glorot's
  scale for its fan-in and fan-out (:func:`tb_stagnation.writers.units.fans`),
  one finding per tensor.

Then the symptoms:

- ``frozen``: parameter tags whose status is ``frozen``, one finding per layer;
  consecutive repeated blocks (:mod:`blocks`) whose every tensor is frozen
  make one finding (``model.layers.0-1: all 18 tensors never changed ...``),
  and so for ``stalled`` and ``stagnant``;
- ``dead_units``: a layer's weight (or embedding) whose per-unit movement
  (:attr:`~tb_stagnation.measure.exact_series.ExactSeries.units`, from a
  writer during training or imported from checkpoints: :func:`unit_series`)
  shows units that never changed or moved less than
  :data:`~vocabulary.DEAD_UNIT_SHARE` of the tensor's median unit, while
  others moved; one finding per layer, its exact indices in ``units``;
- ``inactive_adapter``: LoRA adapter series (role ``adapter``: lora_A and lora_B
  measured as one, on ``(lora_alpha / r) B A``) whose status is ``frozen``,
  grouped by block as ``frozen`` is; ``tags`` names their lora_A and lora_B;
- ``stalled``: parameter tags that reached the stagnant threshold, then stayed
  below it for at least :data:`~vocabulary.STALLED_MIN_INTERVALS` measured
  intervals and :data:`~vocabulary.STALLED_MIN_SHARE` of the run's intervals;
- ``stagnant``: the other parameter tags whose status is ``stagnant``;
- ``vanishing_gradient``: the layer profile (:attr:`ranking.Ranking.layers`)
  falls steadily towards the input over :data:`~vocabulary.VANISHING_MIN_LAYERS`
  layers or more, by :data:`~vocabulary.VANISHING_MIN_FALL` or more, down to a
  stagnant layer;
- ``nonfinite``: the first step holding NaN or Inf, any role;
- ``histogram_blind``: a run whose histograms cannot show its movement
  (:data:`~vocabulary.BLIND_UNRESOLVED_SHARE`, :data:`~vocabulary.BLIND_SEEN_SHARE`).

Gradients and activations change with the data, not with learning: they
never make a stuck finding. A run where every layer moves has no finding.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Mapping, Sequence

import numpy as np

from tb_stagnation import records
from tb_stagnation.measure.exact_series import ExactSeries
from tb_stagnation.verdict import blocks, naming, ranking
from tb_stagnation.writers import units as unit_rules
from tb_stagnation.verdict.vocabulary import (
    BLIND_SEEN_SHARE,
    BLIND_UNRESOLVED_SHARE,
    DEAD_UNIT_SHARE,
    DYING_RELU_MIN_SAMPLES,
    DYING_RELU_SHARE,
    INIT_SCALE_FACTOR,
    JUDGED_ROLES,
    STALLED_MIN_INTERVALS,
    STALLED_MIN_SHARE,
    TRAINABLE_ROLES,
    VANISHING_MIN_FALL,
    VANISHING_MIN_LAYERS,
    VANISHING_NOISE,
    Kind,
    Role,
    Source,
    Status,
)

_UNITS = {Source.HISTOGRAM: "samples", Source.EXACT: "snapshots", Source.CHECKPOINT: "checkpoints"}
_AXIS_WORDS = {records.STEP: "step", records.EPOCH: "epoch", records.ORDER: "checkpoint"}


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem of a run: its kind, the tags and layers it concerns, since when, and the sentence saying it."""

    run: str
    kind: Kind
    tags: tuple[str, ...]
    layers: tuple[str, ...]
    since_step: int | None
    message: str
    units: tuple[int, ...] = ()  # dead_units: the dead units' indices, ascending
    unit_count: int = 0  # dead_units: how many units the tensor has


def find(result: ranking.Ranking) -> list[Finding]:
    """Every run's findings: by run, then in :class:`~vocabulary.Kind` order, then model order."""
    by_run: dict[str, list[ranking.Row]] = {}
    for row in result.rows:
        by_run.setdefault(row.run, []).append(row)
    layers: dict[str, list[ranking.Layer]] = {}
    for layer in result.layers:
        layers.setdefault(layer.run, []).append(layer)
    out = []
    for run in sorted(by_run):
        rows = sorted(by_run[run], key=lambda r: r.order)
        shown = naming.shown_names([r.tag for r in rows])
        out.extend(_readable(f, shown) for f in _run_findings(run, rows, layers.get(run, []), result.ratio, result.exact))
    return out


def _run_findings(
    run: str, rows: list[ranking.Row], layers: list[ranking.Layer], ratio: float, exact: ranking.MatchedExact
) -> list[Finding]:
    """One run's findings in :class:`~vocabulary.Kind` order.

    A layer in a vanishing-gradient profile is named there, not again as
    stalled or stagnant: the profile is the cause, its slow layers the symptom.
    """
    found: list[Finding] = []
    nonfinite = _nonfinite(run, rows)
    if nonfinite:
        found.append(nonfinite)
    causes = _causes(run, rows, ratio, exact)
    found.extend(causes)
    explained = {tag for f in causes for tag in f.tags}
    stuck = [r for r in rows if r.role in JUDGED_ROLES and r.tag not in explained]
    adapters = [r for r in stuck if r.role == Role.ADAPTER]
    tensors = [r for r in stuck if r.role != Role.ADAPTER]
    for name, group in _grouped([r for r in tensors if r.status == Status.FROZEN], tensors):
        found.append(_frozen(run, name, group, exact))
    for group in _by_layer([r for r in stuck if r.status != Status.FROZEN]):
        dead = _dead_units(run, group, exact)
        if dead:
            found.append(dead)
    for name, group in _grouped([r for r in adapters if r.status == Status.FROZEN], adapters):
        found.append(_inactive_adapter(run, name, group, exact))
    vanishing = _vanishing(run, layers)
    found.extend(vanishing)
    in_profile = {name for f in vanishing for name in f.layers}
    stalled = [r for r in stuck if _is_stalled(r) and r.layer not in in_profile]
    for name, group in _grouped(stalled, stuck):
        found.append(_stalled(run, name, group))
    stalled_tags = {r.tag for r in stalled}
    slow = [r for r in stuck if r.status == Status.STAGNANT and r.tag not in stalled_tags and r.layer not in in_profile]
    for name, group in _grouped(slow, stuck):
        found.append(_stagnant(run, name, group, ratio))
    blind = _histogram_blind(run, stuck)
    if blind:
        found.append(blind)
    return found


def _by_layer(rows: Sequence[ranking.Row]) -> list[list[ranking.Row]]:
    """Rows grouped by layer, groups and rows in model order."""
    groups: dict[str, list[ranking.Row]] = {}
    for row in sorted(rows, key=lambda r: r.order):
        groups.setdefault(row.layer, []).append(row)
    return list(groups.values())


def _grouped(chosen: Sequence[ranking.Row], tensors: Sequence[ranking.Row]) -> list[tuple[str | None, list[ranking.Row]]]:
    """``chosen`` in groups of one finding each, in model order, with the name of the blocks a group is.

    Consecutive blocks whose every tensor among ``tensors`` (the run's
    parameters) is chosen are one group, named by their span
    (``model.layers.0-1``): a user asks which blocks learn, and a 32-block
    model with half its blocks frozen would otherwise read 144 findings.
    The other chosen rows are grouped by layer (name ``None``), as a block
    where only some tensors share the verdict is told layer by layer.
    """
    picked = {r.tag for r in chosen}
    of_block: dict[tuple[str, int], tuple[blocks.Block, list[ranking.Row]]] = {}
    for row in tensors:
        block = blocks.parse(row.tag)
        if block is not None:
            of_block.setdefault(block.key, (block, []))[1].append(row)
    spans: list[list[tuple[blocks.Block, list[ranking.Row]]]] = []
    for key in sorted(of_block):
        block, rows = of_block[key]
        if not all(r.tag in picked for r in rows):
            continue
        if spans and spans[-1][-1][0].prefix == block.prefix and spans[-1][-1][0].index + 1 == block.index:
            spans[-1].append((block, rows))
        else:
            spans.append([(block, rows)])
    groups: list[tuple[str | None, list[ranking.Row]]] = []
    for span in spans:
        rows = sorted((r for _, block_rows in span for r in block_rows), key=lambda r: r.order)
        if len(rows) > 1:  # one tensor is told by its own name
            groups.append((blocks.span(span[0][0], span[-1][0]), rows))
    in_blocks = {r.tag for _, rows in groups for r in rows}
    groups.extend((None, rows) for rows in _by_layer([r for r in chosen if r.tag not in in_blocks]))
    return sorted(groups, key=lambda group: group[1][0].order)


def _subject(name: str | None, rows: Sequence[ranking.Row]) -> str:
    """What a finding is about: ``model.layers.0-1: all 18 tensors`` for blocks, else the tags."""
    return f"{name}: all {len(rows)} tensors" if name is not None else _names([r.tag for r in rows])


def _finding(run: str, kind: Kind, rows: Sequence, since: int | None, message: str) -> Finding:
    """A finding about ``rows``: their tags in the order given, their layers once each."""
    layers = tuple(dict.fromkeys(r.layer for r in rows))
    tags = tuple(r.tag for r in rows)
    return Finding(run=run, kind=kind, tags=tags, layers=layers, since_step=since, message=message)


# ------------------------------------------------------------------ causes


def _causes(run: str, rows: list[ranking.Row], ratio: float, exact: ranking.MatchedExact) -> list[Finding]:
    """The findings that name a cause and its fix, in :class:`~vocabulary.Kind` order.

    The rows a cause explains (stuck statistics, a cancelled bias) are told
    there and not again as ``frozen`` or ``stagnant``.
    """
    stuck = _by_layer([r for r in rows if r.role == Role.MOVING_STAT and r.status == Status.FROZEN])
    found = [f for f in (_norm_stats_frozen(run, group, rows, exact) for group in stuck) if f]
    found += [f for f in (_bias_before_norm(run, group, rows, ratio, exact) for group in _by_layer(rows)) if f]
    found += [f for f in (_dying_relu(run, r) for r in rows if r.role == Role.ACTIVATION) if f]
    found += [f for f in (_init_scale(run, r, ratio, exact) for r in rows if r.role == Role.WEIGHT) if f]
    return found


# How each framework's users get batch-norm statistics stuck, and the fix (see _norm_framework).
_NORM_FIXES = {
    "pytorch": "{layer} ran in eval() mode while the model trained (or was built with track_running_stats=False), "
    "so inference normalises with the initial statistics; put it back in train() mode for the training steps "
    "(model.train() after any code that calls .eval() on part of the model)",
    "keras": "{layer} ran in inference mode: called with training=False, or frozen with trainable=False (Keras "
    "then never updates its moving statistics), so inference normalises with the initial statistics; call it "
    "with training=True while training",
    "tf1": "the ops that update the moving averages are in tf.GraphKeys.UPDATE_OPS and the train op does not "
    "run them, so inference normalises with the initial statistics; build the train op under "
    "tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))",
    "tensorflow": "{layer} never updated them: a Keras layer called with training=False or frozen with "
    "trainable=False, or, in a TF1 graph, the tf.GraphKeys.UPDATE_OPS not run with the train op (build it under "
    "tf.control_dependencies(tf.get_collection(tf.GraphKeys.UPDATE_OPS))); inference normalises with the "
    "initial statistics",
}
_TF1_NORM_SCOPE = re.compile(r"(^|/)(BatchNorm|batch_normalization(_\d+)?)/moving_(mean|variance)")


def _norm_framework(tags: Sequence[str]) -> str:
    """Which framework wrote a normalisation layer's statistics, from their names: a key of ``_NORM_FIXES``.

    PyTorch calls them ``running_mean`` / ``running_var`` (``num_batches_tracked``
    beside them); Keras and TF1 both ``moving_mean`` / ``moving_variance``.
    Keras' TensorBoard callback ends its tags in ``/histogram``; TF1 code
    names its summaries after the variables, under the ``BatchNorm`` scope
    (slim) or ``batch_normalization`` (``tf.layers``), and a summary named
    like its variable gets a ``_1`` suffix (``:0`` in a variable's own name).
    Other ``moving_*`` names could be either: ``tensorflow`` names both fixes.
    """
    if any(re.search(r"(^|[._/])(running_mean|running_var|num_batches_tracked)$", t) for t in tags):
        return "pytorch"
    if any(t.endswith("/histogram") for t in tags):
        return "keras"
    if any(_TF1_NORM_SCOPE.search(t) or naming.strip_variable_suffix(t) != t for t in tags):
        return "tf1"
    return "tensorflow"


def _norm_stats_frozen(
    run: str, rows: list[ranking.Row], run_rows: list[ranking.Row], exact: ranking.MatchedExact
) -> Finding | None:
    """A normalisation layer's frozen statistics while its scale or offset, or the layers around it, train.

    The evidence that the layer was meant to train: its own scale or offset
    moved, or else the layer before or after it in model order did. A
    batch norm frozen with the layers around it (a backbone frozen for
    fine-tuning) is only ``frozen``: its statistics are meant to stay.
    """
    layer = rows[0].layer
    params = [r for r in run_rows if r.layer == layer and r.role in (Role.NORM_SCALE, Role.NORM_OFFSET)]
    moving = [r for r in params if r.status in (Status.MOVING, Status.STAGNANT, Status.UNRESOLVED)]
    layers = _by_layer([r for r in run_rows if r.role in TRAINABLE_ROLES | {Role.MOVING_STAT}])
    at = next(i for i, group in enumerate(layers) if group[0].layer == layer)
    around = [
        group[0].layer
        for group in layers[max(at - 1, 0) : at] + layers[at + 1 : at + 2]
        if any(r.role in TRAINABLE_ROLES and r.status == Status.MOVING for r in group)
    ]
    if not moving and not around:
        return None
    beside = f"while {_names([r.tag for r in moving])} trained" if moving else f"while {_names(around)} around it trained"
    frozen = _frozen(run, None, rows, exact)
    cause = _NORM_FIXES[_norm_framework([r.tag for r in rows])].format(layer=layer)
    return dataclasses.replace(frozen, kind=Kind.NORM_STATS_FROZEN, message=f"{frozen.message} {beside}: {cause}")


_BATCH_NORM_LAYER = re.compile(r"(^|[_/.])(bn|batch_?norm|batch_normalization)(_?\d+)?$", re.IGNORECASE)


def _batch_norms(rows: list[ranking.Row]) -> dict[str, tuple[int | None, float]]:
    """The run's batch-norm layers (with moving statistics, or named so), each with when it was first written."""
    out: dict[str, tuple[int | None, float]] = {}
    for row in rows:
        if row.role in (Role.NORM_SCALE, Role.NORM_OFFSET, Role.MOVING_STAT) and (
            row.role == Role.MOVING_STAT or _BATCH_NORM_LAYER.search(row.layer)
        ):
            out.setdefault(row.layer, (row.first_step, row.first_wall_time))
    return out


def _bias_before_norm(
    run: str, rows: list[ranking.Row], run_rows: list[ranking.Row], ratio: float, exact: ranking.MatchedExact
) -> Finding | None:
    """A layer's still bias whose kernel moves, when batch norm comes next in model order.

    Batch norm subtracts each channel's mean over the batch, so a constant
    added per channel right before it changes nothing: its gradient is 0 (to
    rounding). Only batch norm (a layer with moving statistics, or named so):
    layer norm subtracts the mean over the features, which cancels only the
    bias' mean.
    """
    bias = next((r for r in rows if r.role == Role.BIAS and r.status in (Status.STAGNANT, Status.FROZEN)), None)
    kernel = next((r for r in rows if r.role == Role.WEIGHT and r.status == Status.MOVING), None)
    if bias is None or kernel is None:
        return None
    norms = _batch_norms(run_rows)
    later = [r for r in run_rows if r.order > max(x.order for x in rows) and r.role in JUDGED_ROLES]
    together = [name for name, first in norms.items() if first == (bias.first_step, bias.first_wall_time)]
    cancels = "subtracts the mean, which cancels the bias, so it gets no gradient"
    if later and later[0].layer in norms:
        norm = f"the batch norm {later[0].layer} right after it {cancels}"
    elif together:
        norm = f"if the batch norm {_names(together)} follows it (one event wrote both, in no known order), it {cancels}"
    else:
        return None
    still = _frozen(run, None, [bias], exact) if bias.status == Status.FROZEN else _stagnant(run, None, [bias], ratio)
    message = (
        f"{still.message}, while {kernel.tag} moves {_fig(kernel.score)} per {_axis(kernel)}: {norm}; "
        "drop it (bias=False in PyTorch, use_bias=False in Keras and tf.layers)"
    )
    return dataclasses.replace(still, kind=Kind.BIAS_BEFORE_NORM, message=message)


def _dying_relu(run: str, row: ranking.Row) -> Finding | None:
    """An activation whose share of exact zeros rose to DYING_RELU_SHARE and stayed there (where buckets tell)."""
    if row.zeros is None:
        return None
    since, count = row.zeros.above_since(DYING_RELU_SHARE)
    if since is None or count < DYING_RELU_MIN_SAMPLES:
        return None
    (first_step, first), (last_step, last) = row.zeros.first, row.zeros.last
    unit = _axis(row)
    before = f" (it was {first:.0%} at {unit} {first_step})" if since > first_step else ""
    message = (
        f"{row.tag} is exactly 0 for {last:.0%} of its values at {unit} {last_step}, and for at least "
        f"{DYING_RELU_SHARE:.0%} at each of the {count} kept {unit}s from {since}{before}: the ReLU units of "
        f"{row.layer} died (their input stays negative, so they get no gradient); lower the learning rate, or use "
        "LeakyReLU or He initialisation"
    )
    return _finding(run, Kind.DYING_RELU, [row], since, message)


def _init_scale(run: str, row: ranking.Row, ratio: float, exact: ranking.MatchedExact) -> Finding | None:
    """A weight whose first recorded RMS is INIT_SCALE_FACTOR or more off both He's and Glorot's for its shape.

    Only where its records carry the shape (checkpoint imports, writers). With Adam
    and its kin every weight moves about the learning rate per step, so a
    weight 17x larger than its initialiser's scale moves 17x slower relative
    to itself: the scale, not the gradient, explains its small ratio. One
    finding per tensor: each has its own fan-in and figures. Only a weight
    initialised too large and moving slower than the run's typical: that is
    what the scale explains. One too small moves faster, which hides no
    layer (and a narrow model built with a transformer's fixed std 0.02, the
    framework's own default, is 6-13x below He at width 32-64); a frozen
    weight is not explained by its scale and is told as frozen.
    """
    if row.status not in (Status.MOVING, Status.STAGNANT):
        return None
    found = [(s, s.shape) for s in exact.get((run, row.tag), {}).values() if s.shape is not None and len(s.rms)]
    if not found:
        return None
    series, (layout, shape) = found[0]
    fans = unit_rules.fans(row.tag, shape, layout)
    first = np.flatnonzero(np.isfinite(series.rms))
    if fans is None or not len(first) or not series.rms[first[0]] > 0 or min(fans) == 0:
        return None
    rms, step = float(series.rms[first[0]]), int(series.steps[first[0]])
    he, glorot = math.sqrt(2 / fans[0]), math.sqrt(2 / sum(fans))
    if min(max(rms / ref, ref / rms) for ref in (he, glorot)) < INIT_SCALE_FACTOR:
        return None
    cause = "unit-normal initialisation" if 0.8 <= rms <= 1.25 else "initialised too large"
    against = f"{_factor(rms / he)} He's"
    unit, typical = _axis(row), row.threshold / ratio
    share = row.score / typical if typical > 0 else float("nan")
    if rms < he or not share < 1:
        return None
    beside = _share(share) + " of"
    message = (
        f"{row.tag} started at RMS {_fig(rms)} ({unit} {step}), {against} {_fig(he)} for its fan-in {fans[0]} "
        f"(Glorot {_fig(glorot)}): {cause}, so its relative movement ({_fig(row.score)} per {unit}) is {beside} "
        f"the run's typical {_fig(typical)}; use the framework's default initialiser"
    )
    return _finding(run, Kind.INIT_SCALE, [row], None, message)


def _readable(finding: Finding, shown: dict[str, str]) -> Finding:
    """The finding's sentence with its run's tags as :func:`naming.shown_names` shows them (``tags`` unchanged)."""
    renamed = {tag: name for tag, name in shown.items() if name != tag}
    if not renamed:
        return finding
    pattern = re.compile(
        r"(?<![\w./:-])(" + "|".join(map(re.escape, sorted(renamed, key=len, reverse=True))) + r")(?![\w./-]|:\d)"
    )
    return dataclasses.replace(finding, message=pattern.sub(lambda m: renamed[m.group(1)], finding.message))


# ------------------------------------------------------------------ kinds


def _frozen(run: str, name: str | None, rows: list[ranking.Row], exact: ranking.MatchedExact) -> Finding:
    """Names the evidence of the scoring source, and of any other exact source that agrees."""
    first = min((r.first_step for r in rows if r.first_step is not None), default=None)
    last = max((r.last_step for r in rows if r.last_step is not None), default=None)
    samples = max(r.samples for r in rows)
    unit = _UNITS.get(rows[0].source, "samples")
    span = f" ({_axis(rows[0])}s {first}-{last})" if first is not None else ""
    evidence = [f"{samples} {unit}{span}"]
    for source, series in exact.get((run, rows[0].tag), {}).items():
        if source != rows[0].source and series.frozen and len(series.steps):
            words = _AXIS_WORDS.get(series.axis, "step")
            evidence.append(
                f"{len(series.steps)} {_UNITS[source]} ({words}s {series.steps[0]}-{series.steps[-1]})"
            )
    message = f"{_subject(name, rows)} never changed over {' and '.join(evidence)}"
    return _finding(run, Kind.FROZEN, rows, first, message)


def dead_unit_threshold(series: ExactSeries) -> float:
    """The summed movement under which a unit of ``series`` is dead: DEAD_UNIT_SHARE of its median unit."""
    return DEAD_UNIT_SHARE * float(np.median(series.units)) if len(series.units) else math.nan


def dead_unit_indices(series: ExactSeries) -> np.ndarray:
    """The units of ``series`` that never changed or moved under :func:`dead_unit_threshold`."""
    moved = series.units
    if not len(moved) or series.unit_pairs == 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero((moved == 0) | (moved < dead_unit_threshold(series)))


def unit_series(sources: Mapping[str, ExactSeries], prefer: str) -> ExactSeries | None:
    """The series among ``sources`` (source -> series of one tag) whose units the findings and the
    unit view read: ``prefer``'s (the source scoring the row) where it has unit sums, else the first
    exact source that has them; ``None`` where none has.

    Both sources measure the same units of the same run, so one layer gets one finding.
    """
    ordered = [prefer, *(s for s in records.SOURCES if s != prefer)]
    return next((sources[s] for s in ordered if s in sources and sources[s].unit_pairs > 0), None)


def _dead_units(run: str, rows: list[ranking.Row], exact: ranking.MatchedExact) -> Finding | None:
    """A layer whose weight has dead units among moving ones, with the same units of its bias."""
    for row in rows:
        series = unit_series(exact.get((run, row.tag), {}), row.source)
        if row.role != Role.WEIGHT or series is None:
            continue
        dead = dead_unit_indices(series)
        count = len(series.units)
        if not 0 < len(dead) < count:
            continue
        unit = series.unit_noun or records.UNIT
        embedding, noun = unit == records.ROW, f"{unit}s"
        span = f"token ids {_spans(dead)}" if embedding else _spans(dead)
        still = all(series.units[dead] == 0)
        verb = "never changed" if still else f"moved less than {DEAD_UNIT_SHARE:g} of the median {unit}"
        over = f"{series.unit_pairs + 1} {_UNITS[Source(series.source)]}"
        message = f"{row.layer}: {len(dead)} of {count} {noun} ({span}) {verb} over {over}"
        # the bias as the same source measured it
        bias_units = {r.tag: unit_series({series.source: s}, series.source)
                      for r in rows if r.role == Role.BIAS and (s := exact.get((run, r.tag), {}).get(series.source))}
        biases = [r for r in rows if bias_units.get(r.tag) is not None]
        if biases and set(dead.tolist()) <= set(dead_unit_indices(bias_units[biases[0].tag]).tolist()):
            message += ", nor their biases"
        message += (
            ": tokens absent from the training data" if embedding else ": dead ReLU units, which get no gradient"
        )
        found = _finding(run, Kind.DEAD_UNITS, [row, *biases[:1]], None, message)
        return dataclasses.replace(found, units=tuple(int(i) for i in dead), unit_count=count)
    return None


def _inactive_adapter(
    run: str, name: str | None, rows: list[ranking.Row], exact: ranking.MatchedExact
) -> Finding:
    """LoRA adapters that never changed: the modules they adapt, and whether they add anything at all.

    An update ``(lora_alpha / r) B A`` of RMS exactly 0 at every checkpoint is
    PEFT's initialisation (A random, B zero), untouched: the model is the base model there.
    """
    first = min((r.first_step for r in rows if r.first_step is not None), default=None)
    last = max((r.last_step for r in rows if r.last_step is not None), default=None)
    evidence = f" over {max(r.samples for r in rows)} checkpoints" + (
        f" ({_axis(rows[0])}s {first}-{last})" if first is not None else "")
    one = len(rows) == 1
    if name is None:
        subject = f"the LoRA adapter{'' if one else 's'} on {_names([r.layer for r in rows])}"
    else:
        inside = list(dict.fromkeys(blocks.parse(r.layer).rest for r in rows))  # self_attn.q_proj
        short = list(dict.fromkeys(part.split(".")[-1] for part in inside))  # q_proj, where that tells them apart
        subject = f"the LoRA adapters on {name} {_names(short if len(short) == len(inside) else inside)}"
    rms = [exact.get((run, r.tag), {}).get(Source.CHECKPOINT) for r in rows]
    if all(series is not None and not np.any(series.rms[~np.isnan(series.rms)]) for series in rms):
        effect = (f"; {'its' if one else 'their'} B is still exactly zero, so {'it leaves' if one else 'they leave'} "
                  "the model unchanged")
    else:
        effect = f"; {'its' if one else 'their'} update B A is not zero, but training never adjusted it"
    message = f"{subject} never changed{evidence}{effect}"
    tags = tuple(part for r in rows for part in records.adapter_parts(r.tag))
    return Finding(run=run, kind=Kind.INACTIVE_ADAPTER, tags=tags, layers=tuple(dict.fromkeys(r.layer for r in rows)),
                   since_step=first, message=message)


def _spans(indices: np.ndarray, most: int = 6) -> str:
    """``0-3``; ``2, 5, 9-12``; the first ``most`` spans and how many more."""
    spans: list[list[int]] = []
    for i in indices.tolist():
        if spans and i == spans[-1][1] + 1:
            spans[-1][1] = i
        else:
            spans.append([i, i])
    words = [f"{a}-{b}" if b > a else f"{a}" for a, b in spans]
    return ", ".join(words[:most]) + (f" and {len(words) - most} more spans" if len(words) > most else "")


def _is_stalled(row: ranking.Row) -> bool:
    """Moved at the threshold, then stayed below it for long enough to mean something."""
    if row.status not in (Status.MOVING, Status.STAGNANT) or row.stagnant_since is None:
        return False
    below, total = row.stagnant_intervals, row.intervals
    return 0 < below < total and below >= STALLED_MIN_INTERVALS and below >= STALLED_MIN_SHARE * total


def _stalled(run: str, name: str | None, rows: list[ranking.Row]) -> Finding:
    """Since when one layer's (or blocks') stalled tags stayed below the threshold, and how fast they still move."""
    since = min(r.stagnant_since for r in rows)
    last = max((r.last_step for r in rows if r.last_step is not None), default=None)
    below = max(r.stagnant_intervals for r in rows)
    total = max(r.intervals for r in rows)
    unit = _axis(rows[0])
    whose = "its" if len(rows) == 1 else "their fastest"
    message = (
        f"{_subject(name, rows)} moved, then stayed below the stagnant threshold "
        f"({_fig(rows[0].threshold)} per {unit}) from {unit} {since}"
        + (f" to {last}" if last is not None and last > since else "")
        + f" ({below} of {total} measured intervals); {whose} median over the run is "
        f"{_fig(max(r.score for r in rows))} per {unit}"
    )
    return _finding(run, Kind.STALLED, rows, since, message)


def _stagnant(run: str, name: str | None, rows: list[ranking.Row], ratio: float) -> Finding:
    """One layer's (or blocks') stagnant tags against the run's typical parameter (the threshold over ``ratio``)."""
    fastest = max(rows, key=lambda r: r.score)
    threshold = fastest.threshold
    typical = threshold / ratio
    unit = _axis(fastest)
    figure = _fig(fastest.score) if len(rows) == 1 else f"at most {_fig(fastest.score)}"
    share = fastest.score / typical if typical > 0 else float("nan")
    against = (
        f"{_share(share)} of the run's typical {_fig(typical)}"
        if share > 0
        else f"while the run's typical parameter moves {_fig(typical)}"
    )
    message = (
        f"{_subject(name, rows)} barely {'moves' if len(rows) == 1 else 'move'}: {figure} per {unit}, "
        f"{against} (stagnant below {_fig(threshold)})"
    )
    return _finding(run, Kind.STAGNANT, rows, None, message)


def _vanishing(run: str, layers: list[ranking.Layer]) -> list[Finding]:
    """Stretches of layers whose score falls steadily towards the input, down to stagnant layers.

    Repeated blocks are walked as blocks (:func:`_depth`): their ``layers``
    and ``tags`` are every layer of the blocks in the stretch.
    """
    out = []
    depth, members = _depth(layers)
    for stretch in _falling_stretches(depth):
        top = max(range(len(stretch)), key=lambda i: stretch[i].score)
        stretch = stretch[: top + 1]  # the ramp ends where movement peaks
        if len(stretch) < VANISHING_MIN_LAYERS:
            continue
        fall = stretch[-1].score / stretch[0].score
        slow = [layer for layer in stretch if layer.status in (Status.STAGNANT, Status.UNRESOLVED)]
        if fall < VANISHING_MIN_FALL or not slow:
            continue
        per_layer = fall ** (1 / (len(stretch) - 1))
        first, last = stretch[0], stretch[-1]
        unit = "step" if first.source != Source.CHECKPOINT else "checkpoint interval"
        level = "block" if all(layer.layer in members for layer in stretch) else "layer"
        message = (
            f"{_layer_span(slow, stretch)} barely {'moves' if len(slow) == 1 else 'move'}: movement falls about "
            f"{_factor(per_layer)} per {level} towards the input over {len(stretch)} {level}s "
            f"({_fig(last.score)} per {unit} at {last.layer}, {_fig(first.score)} at {first.layer}, "
            f"{_factor(fall)} in all)"
        )
        out.append(
            Finding(
                run=run,
                kind=Kind.VANISHING_GRADIENT,
                tags=tuple(part.tag for layer in stretch for part in members.get(layer.layer, [layer])),
                layers=tuple(part.layer for layer in stretch for part in members.get(layer.layer, [layer])),
                since_step=None,
                message=message,
            )
        )
    return out


def _depth(layers: list[ranking.Layer]) -> tuple[list[ranking.Layer], dict[str, list[ranking.Layer]]]:
    """The depth profile the vanishing test walks: each repeated block one step, and its layers by name.

    Inside a transformer block the norm scales move some 50x slower than the
    projections beside them, by their size alone: walked layer by layer, a
    block reads as movement rising and falling, and a slow norm as a
    vanishing gradient. A block's step is the median of its layers' scores,
    ``stagnant`` when at least half its layers are stagnant or unresolved;
    a block with a frozen, nonfinite or unmeasured layer, or measured by two
    sources, has no score (it ends a stretch, as such a layer does).
    """
    depth: list[ranking.Layer | str] = []
    members: dict[str, list[ranking.Layer]] = {}
    for layer in layers:
        block = blocks.parse(layer.tag)
        if block is None:
            depth.append(layer)
            continue
        if block.name not in members:
            members[block.name] = []
            depth.append(block.name)
        members[block.name].append(layer)
    return [step if isinstance(step, ranking.Layer) else _block_step(step, members[step]) for step in depth], members


def _block_step(name: str, layers: list[ranking.Layer]) -> ranking.Layer:
    """One block as a step of the depth profile (see :func:`_depth`)."""
    measured = len({layer.source for layer in layers}) == 1 and not any(
        layer.status in (Status.FROZEN, Status.NONFINITE, Status.INSUFFICIENT) for layer in layers
    )
    slow = sum(layer.status in (Status.STAGNANT, Status.UNRESOLVED) for layer in layers)
    first = layers[0]
    return dataclasses.replace(
        first,
        layer=name,
        score=float(np.median([layer.score for layer in layers])) if measured else float("nan"),
        status=Status.STAGNANT if 2 * slow >= len(layers) else Status.MOVING,
    )


def _falling_stretches(layers: list[ranking.Layer]) -> list[list[ranking.Layer]]:
    """Maximal runs of consecutive layers, one source, each moving no faster than VANISHING_NOISE x the next."""
    stretches: list[list[ranking.Layer]] = []
    current: list[ranking.Layer] = []
    for layer in layers:
        usable = (
            math.isfinite(layer.score)
            and layer.score > 0
            and layer.status not in (Status.FROZEN, Status.NONFINITE, Status.INSUFFICIENT)
        )
        if not usable:
            stretches.append(current)
            current = []
            continue
        if current and (layer.source != current[-1].source or current[-1].score > VANISHING_NOISE * layer.score):
            stretches.append(current)
            current = []
        current.append(layer)
    stretches.append(current)
    return [s for s in stretches if len(s) >= VANISHING_MIN_LAYERS]


def _nonfinite(run: str, rows: list[ranking.Row]) -> Finding | None:
    """The first step holding NaN or Inf and its tags: where the trouble started, whatever followed."""
    bad = [r for r in rows if r.status == Status.NONFINITE]
    if not bad:
        return None
    steps = [r.nonfinite_since for r in bad if r.nonfinite_since is not None]
    first = min(steps) if steps else None
    if first is None:
        return _finding(run, Kind.NONFINITE, bad, None, f"{_names([r.tag for r in bad])} hold NaN or Inf")
    at_first = [r for r in bad if r.nonfinite_since == first]
    message = f"NaN or Inf first at {_axis(at_first[0])} {first}, in {_names([r.tag for r in at_first])}"
    if len(bad) > len(at_first):
        message += f"; {len(bad)} tags hold NaN or Inf in all"
    ordered = sorted(bad, key=lambda r: (r.nonfinite_since if r.nonfinite_since is not None else math.inf, r.order))
    return _finding(run, Kind.NONFINITE, ordered, first, message)


_HOW_EXACT = (
    "for exact figures log update ratios with the writers in tb_stagnation.summary, "
    "or import saved checkpoints with `tb-stagnation checkpoints SRC`"
)


def _histogram_blind(run: str, rows: list[ranking.Row]) -> Finding | None:
    """A run whose histograms are too coarse for its threshold, or show too little of its exact movement."""
    measured = (Status.FROZEN, Status.NONFINITE, Status.INSUFFICIENT)
    by_histogram = [r for r in rows if r.source == Source.HISTOGRAM and r.status not in measured]
    unresolved = [r for r in by_histogram if r.status == Status.UNRESOLVED]
    if unresolved and len(unresolved) >= BLIND_UNRESOLVED_SHARE * len(by_histogram):
        floor = float(np.nanmedian([r.floor for r in unresolved]))
        message = (
            f"the histograms cannot resolve this run's movement: {len(unresolved)} of {len(by_histogram)} "
            f"parameter tags are unresolved (the buckets record changes of about {_fig(floor)} per step at the "
            f"finest, the stagnant threshold is {_fig(unresolved[0].threshold)}); {_HOW_EXACT}"
        )
        return _finding(run, Kind.HISTOGRAM_BLIND, unresolved, None, message)
    both = [
        r
        for r in rows
        if r.source != Source.HISTOGRAM
        and r.status not in measured
        and math.isfinite(r.histogram_score)
        and math.isfinite(r.exact_score)
        and r.exact_score > 0
    ]
    if not both:
        return None
    seen = float(np.median([r.histogram_score / r.exact_score for r in both]))
    if seen >= BLIND_SEEN_SHARE:
        return None
    message = (
        f"the histograms show {'none' if seen == 0 else 'about ' + _share(seen)} of the exact movement "
        f"(median over {len(both)} parameters), "
        f"too little to tell slow from stuck: rank by the exact figures (source {both[0].source}), not by the "
        f"Histograms view; {_HOW_EXACT} in runs without them"
    )
    return _finding(run, Kind.HISTOGRAM_BLIND, both, None, message)


# ------------------------------------------------------------------ wording


def _fig(value: float) -> str:
    """A figure to two significant digits, ``3e-3`` style."""
    if not math.isfinite(value):
        return "nothing"
    text = f"{value:.2g}" if 0.01 <= abs(value) < 1000 or value == 0 else f"{value:.1e}"
    mantissa, e, exponent = text.partition("e")
    if not e:
        return text
    return f"{mantissa.removesuffix('.0')}e{int(exponent)}"


def _factor(value: float) -> str:
    """``4.0x``, ``12x``, ``1000x``: how many times one score is another."""
    if value >= 1000:
        return f"{float(f'{value:.2g}'):.0f}x"
    return f"{value:.0f}x" if value >= 10 else f"{value:.1f}x"


def _share(value: float) -> str:
    """``0.004`` -> ``1/250``; ``0.05`` -> ``5%``."""
    if not math.isfinite(value) or value <= 0:
        return "none"
    if value >= 0.01:
        return f"{value:.0%}"
    return f"1/{float(f'{1 / value:.2g}'):.0f}" if value > 1e-6 else f"1/{_fig(1 / value)}"


def _axis(row: ranking.Row) -> str:
    return _AXIS_WORDS.get(row.axis, "step")


def _names(names: Sequence[str], most: int = 4) -> str:
    """``a``; ``a and b``; ``a, b and c``; ``a, b, c and 5 more``."""
    names = list(names)
    if len(names) == 1:
        return names[0]
    if len(names) > most:
        return f"{', '.join(names[: most - 1])} and {len(names) - most + 1} more"
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _layer_span(chosen: Sequence[ranking.Layer], stretch: Sequence[ranking.Layer]) -> str:
    """``dense1-dense5`` when the chosen layers are consecutive in the stretch, else a list."""
    names = [layer.layer for layer in chosen]
    positions = [i for i, layer in enumerate(stretch) if layer.layer in set(names)]
    if len(names) >= 3 and positions == list(range(positions[0], positions[0] + len(positions))):
        return f"{names[0]}-{names[-1]}"
    return _names(names)
