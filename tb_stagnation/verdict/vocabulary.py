"""The verdict's one vocabulary: statuses, roles, sources, finding kinds, and the thresholds they rest on.

Every word is a member of a small string enum (:class:`Status`, :class:`Role`,
:class:`Source`, :class:`Kind`). Statuses and finding kinds share three words
(``frozen``, ``stagnant``, ``nonfinite``) but are different things, a status
judging one tag and a finding naming a problem of a run: ``Status.FROZEN`` and
``Kind.FROZEN`` keep them apart in code, while the wire carries the same
strings as ever (a member *is* its string: it compares, hashes, formats and
encodes to JSON as one).

Each threshold is written once, here, and the meanings are built from them.
The CLI's help and the tab's legends both read the meanings (the tab through
the ``definitions`` object of the ranking JSON,
:func:`tb_stagnation.wire.definitions_json`), so a word means the same
wherever it is shown. This module imports nothing of the verdict: the
others import it.
"""

from __future__ import annotations

import enum

from tb_stagnation import records


class Word(enum.StrEnum):
    """A word of the vocabulary: shown as its string everywhere, in a ``repr`` too.

    The ``repr`` matters where a message lists the choices (argparse's
    "invalid choice", the routes' 4xx answers): they read ``'frozen'``, as
    they did when the words were plain strings.
    """

    def __repr__(self) -> str:
        return repr(self.value)


class Status(Word):
    """The one status a ranked tag gets (see :func:`tb_stagnation.verdict.ranking.rank`)."""

    FROZEN = "frozen"
    STAGNANT = "stagnant"
    MOVING = "moving"
    NONFINITE = "nonfinite"
    UNRESOLVED = "unresolved"
    INSUFFICIENT = "insufficient"


class Role(Word):
    """What a tag's tensor is to its layer, as its name says (see :func:`tb_stagnation.verdict.naming.parse`)."""

    WEIGHT = "weight"
    BIAS = "bias"
    NORM_SCALE = "norm_scale"
    NORM_OFFSET = "norm_offset"
    MOVING_STAT = "moving_stat"
    ADAPTER = "adapter"
    GRADIENT = "gradient"
    ACTIVATION = "activation"
    OTHER = "other"


class Source(Word):
    """Which measurement scores a row; the exact sources are named as the plugin's records name them."""

    HISTOGRAM = "histogram"
    EXACT = records.EXACT
    CHECKPOINT = records.CHECKPOINT


class Kind(Word):
    """A finding's kind (see :mod:`tb_stagnation.verdict.findings`), in the order a run's findings are listed."""

    NONFINITE = "nonfinite"
    # Causes, each naming a fix, before the symptoms they explain.
    NORM_STATS_FROZEN = "norm_stats_frozen"
    BIAS_BEFORE_NORM = "bias_before_norm"
    DYING_RELU = "dying_relu"
    INIT_SCALE = "init_scale"
    FROZEN = "frozen"
    DEAD_UNITS = "dead_units"
    INACTIVE_ADAPTER = "inactive_adapter"
    VANISHING_GRADIENT = "vanishing_gradient"
    STALLED = "stalled"
    STAGNANT = "stagnant"
    HISTOGRAM_BLIND = "histogram_blind"


STATUSES = tuple(Status)
ROLES = tuple(Role)
FINDING_KINDS = tuple(Kind)
SOURCE_PREFERENCE = (Source.EXACT, Source.CHECKPOINT, Source.HISTOGRAM)
"""Which measurement a row is scored by when it has several: the writers' ratio at every
snapshot, then the ratio between checkpoints, then histogram drift (a lower bound)."""

TRAINABLE_ROLES = frozenset({Role.WEIGHT, Role.BIAS, Role.NORM_SCALE, Role.NORM_OFFSET, Role.ADAPTER})
"""Trained by the optimiser: these define a run's typical movement."""
PARAMETER_ROLES = TRAINABLE_ROLES | {Role.MOVING_STAT}
"""Tags whose stillness means a layer does not learn."""
JUDGED_ROLES = PARAMETER_ROLES | {Role.OTHER}
"""Tags that can be called stagnant or stuck: the parameters, and the tags whose name does not say
(ranked like them). Gradients and activations change with the data, not with learning."""
STUCK_STATUSES = frozenset({Status.FROZEN, Status.STAGNANT})
"""Statuses a CI gate fails on (``tb-stagnation --fail-on-stagnant``)."""
STUCK_KINDS = frozenset({Kind.NORM_STATS_FROZEN, Kind.DYING_RELU, Kind.FROZEN, Kind.DEAD_UNITS, Kind.INACTIVE_ADAPTER, Kind.VANISHING_GRADIENT, Kind.STALLED, Kind.STAGNANT})
"""Findings saying that parameters do not learn (a CI gate's concern), as opposed to
findings about the data (nonfinite) or about what the histograms can show."""
BLOCK_CONTAINERS = frozenset({"layers", "layer", "h", "blocks", "block", "resblocks"})
"""Names of the lists a model keeps its repeated blocks in, a block's number after them (``model.layers.3``,
GPT-2's ``transformer.h.3``, BERT's ``encoder.layer.3``, timm's ``blocks.3``, T5's ``block.3``, CLIP's
``resblocks.3``): see :mod:`tb_stagnation.verdict.blocks`."""

# ------------------------------------------------------------------ thresholds

DEFAULT_RATIO = 0.01
"""Stagnant: two orders of magnitude slower than the run's typical trainable parameter."""
UNRESOLVED_MARGIN = 100.0
"""A histogram-scored tag below its threshold is ``unresolved`` only if the buckets could not
have shown a change at the threshold's rate (floor at or above it) and its measured drift is
within this factor of the threshold; drift this far below the threshold is evidence enough
for ``stagnant``, coarse buckets or not."""
STALLED_MIN_INTERVALS = 3
"""A tag is ``stalled`` only after this many measured intervals below the threshold (one or two are noise)."""
STALLED_MIN_SHARE = 0.25
"""... and only if those intervals are at least this share of all its measured intervals."""
VANISHING_MIN_LAYERS = 3
"""A vanishing-gradient profile spans at least this many consecutive parameter layers."""
VANISHING_MIN_FALL = 10.0
"""... over which the main tensor's score falls at least this factor from the output side to the input side."""
VANISHING_NOISE = 1.5
"""A layer may move up to this factor faster than its neighbour towards the output, and the fall still counts
as steady."""
DEAD_UNIT_SHARE = 0.01
"""A unit (an output row or channel, a kernel column, an embedding row) is dead when it never changed over the
snapshots or checkpoints measured, or moved less than this share of the tensor's median unit: weight decay alone keeps dead
units drifting a little."""
BLIND_UNRESOLVED_SHARE = 0.5
"""``histogram_blind`` when at least this share of a run's histogram-scored parameter tags is ``unresolved``."""
DYING_RELU_SHARE = 0.9
"""``dying_relu`` when at least this share of a layer's output is exactly 0 at every kept sample from some step to
the last: a healthy ReLU layer outputs about 50% zeros, a layer whose units died nearly 100%."""
DYING_RELU_MIN_SAMPLES = 3
"""... over at least this many kept samples (one or two are a bad batch)."""
INIT_SCALE_FACTOR = 5.0
"""``init_scale`` when a weight's first recorded RMS is at least this factor above both He's
sqrt(2 / fan_in) and Glorot's sqrt(2 / (fan_in + fan_out)) for its shape and it moves slower than the
run's typical: default initialisers stay within about 2.5x of both, unit-normal initialisation is 10x or
more above them for any fan-in over 200. Below them a weight moves faster, which hides nothing."""
BLIND_SEEN_SHARE = 0.1
"""... or when, where an exact source scores a parameter, its histogram drift shows less than this share of the
exact ratio (median over the run's parameters): the histograms cannot tell these parameters apart."""

# ------------------------------------------------------------------ meanings

STATUS_MEANINGS = {
    Status.FROZEN: "never changed: every kept histogram identical bucket for bucket, or every exact update exactly 0",
    Status.STAGNANT: "moving far slower than the run's typical trainable parameter: score below ratio x the "
    "median score of the run's weights, biases and norm parameters (per source)",
    Status.MOVING: "none of the other statuses: moving at least at the stagnant threshold",
    Status.NONFINITE: "a kept histogram, logged RMS or update ratio holds NaN or Inf",
    Status.UNRESOLVED: "below the stagnant threshold, but the histogram buckets are too coarse to show a change "
    f"at the threshold's rate, and the drift is within {UNRESOLVED_MARGIN:g}x of it: the histogram "
    "cannot tell slow from stuck; log the exact update ratio",
    Status.INSUFFICIENT: "fewer than two usable samples",
}
ROLE_MEANINGS = {
    Role.WEIGHT: "a kernel or weight matrix (also embeddings)",
    Role.BIAS: "a bias vector",
    Role.NORM_SCALE: "a normalisation layer's scale (gamma)",
    Role.NORM_OFFSET: "a normalisation layer's offset (beta)",
    Role.MOVING_STAT: "a normalisation layer's moving mean or variance (not trained, but follows the data)",
    Role.ADAPTER: "a LoRA adapter (PEFT checkpoints): its lora_A and lora_B measured as one, on the module's "
    "effective update (lora_alpha / r) x B A",
    Role.GRADIENT: "a parameter's gradient: changes with the data, never called stuck",
    Role.ACTIVATION: "a layer's output: changes with the data, never called stuck",
    Role.OTHER: "a tag whose name says nothing of its role; compared with the parameters",
}
SOURCE_MEANINGS = {
    Source.HISTOGRAM: "histogram drift: normalised Wasserstein-1 between kept histograms per step, "
    "a lower bound on movement",
    Source.EXACT: "the exact update ratio ||W_t - W_t-k|| / ||W_t-k|| per step, logged during training "
    "by the writers in tb_stagnation.summary",
    Source.CHECKPOINT: "the exact update ratio between saved checkpoints, imported by "
    "`tb-stagnation checkpoints SRC`",
}
FINDING_MEANINGS = {
    Kind.NONFINITE: "the first step holding NaN or Inf, and which tags hold it",
    Kind.NORM_STATS_FROZEN: "a normalisation layer's running mean and variance never changed while the run trained: "
    "the layer was kept in inference mode (PyTorch eval(), Keras training=False or trainable=False, TF1 "
    "UPDATE_OPS not run with the train op), so inference normalises with the initial statistics",
    Kind.BIAS_BEFORE_NORM: "a bias that barely moves while its layer's kernel moves, right before a normalisation "
    "layer, which subtracts the mean and so cancels it: drop it (bias=False, use_bias=False)",
    Kind.DYING_RELU: f"at least {DYING_RELU_SHARE:.0%} of a layer's output exactly 0 at each of the last "
    f"{DYING_RELU_MIN_SAMPLES} or more kept samples: units stuck at 0 get no gradient (seen where the histogram "
    "buckets resolve exact zeros: TF1, PyTorch and tensorboardX writers, not TF2's)",
    Kind.INIT_SCALE: f"a weight whose first recorded RMS is at least {INIT_SCALE_FACTOR:g}x above both "
    "He's sqrt(2 / fan_in) and Glorot's sqrt(2 / (fan_in + fan_out)) for its shape (known from imported checkpoints "
    "and the writers) and that moves slower than the run's typical: with an adaptive optimiser its steps are the "
    "same size as everyone's, so its relative movement is that much slower; use the framework's default initialiser",
    Kind.FROZEN: "parameters that never changed",
    Kind.DEAD_UNITS: "output units of a layer (rows, channels, kernel columns, embedding rows) that never changed "
    f"over the snapshots or checkpoints measured, or moved less than {DEAD_UNIT_SHARE:g} of the tensor's median unit",
    Kind.INACTIVE_ADAPTER: "LoRA adapters whose effective update (lora_alpha / r) x B A never changed over the "
    "imported checkpoints (every change exactly 0): untrained, and with B still at its zero initialisation they "
    "leave the model unchanged",
    Kind.VANISHING_GRADIENT: "movement falls steadily towards the input over at least "
    f"{VANISHING_MIN_LAYERS} consecutive parameter layers, and by at least {VANISHING_MIN_FALL:g}x, "
    "down to layers that are stagnant",
    Kind.STALLED: "parameters that moved, then stayed below the stagnant threshold from a step on",
    Kind.STAGNANT: "parameters far slower than the run's typical parameter over the whole run",
    Kind.HISTOGRAM_BLIND: "the run's parameter movement is below what its histograms can resolve or tell apart; "
    "exact figures come from the writers in tb_stagnation.summary or `tb-stagnation checkpoints SRC`",
}
THINNED_MEANING = (
    "TensorBoard kept fewer of the plugin's exact-movement records than were written (its Python loader keeps 10 "
    "a tag by default, the Rust one 100): scores, statuses and findings come from the records it kept; start "
    f"TensorBoard with {records.KEEP_ALL_FLAG} to keep them all"
)

assert set(STATUS_MEANINGS) == set(Status)
assert set(ROLE_MEANINGS) == set(Role)
assert set(SOURCE_MEANINGS) == set(Source) == set(SOURCE_PREFERENCE)
assert set(FINDING_MEANINGS) == set(Kind)


def parameter_roles() -> list[Role]:
    """The roles whose stillness means a layer does not learn, in :data:`ROLES` order."""
    return [r for r in ROLES if r in PARAMETER_ROLES]


def stuck_statuses() -> list[Status]:
    """The statuses ``--fail-on-stagnant`` fails on, in :data:`STATUSES` order."""
    return [s for s in STATUSES if s in STUCK_STATUSES]
