"""What the ranking's words mean: statuses, roles, sources and finding kinds, in one place.

The CLI's help and the tab's legends both read these (the tab through the
``definitions`` object of the ranking JSON, :func:`as_json`), so a word means
the same wherever it is shown.
"""

from __future__ import annotations

from tb_stagnation import records
from tb_stagnation.verdict import naming, ranking

# Finding kinds (see tb_stagnation.verdict.findings for how each is found).
FROZEN, STAGNANT, STALLED = "frozen", "stagnant", "stalled"
VANISHING_GRADIENT, NONFINITE, HISTOGRAM_BLIND = "vanishing_gradient", "nonfinite", "histogram_blind"
FINDING_KINDS = (NONFINITE, FROZEN, VANISHING_GRADIENT, STALLED, STAGNANT, HISTOGRAM_BLIND)
# Findings saying that parameters do not learn (a CI gate's concern), as opposed to
# findings about the data (nonfinite) or about what the histograms can show.
STUCK_KINDS = (FROZEN, VANISHING_GRADIENT, STALLED, STAGNANT)

STATUS_MEANINGS = {
    ranking.FROZEN: "never changed: every kept histogram identical bucket for bucket, or every exact update exactly 0",
    ranking.STAGNANT: "moving far slower than the run's typical trainable parameter: score below ratio x the "
    "median score of the run's weights, biases and norm parameters (per source)",
    ranking.MOVING: "none of the other statuses: moving at least at the stagnant threshold",
    ranking.NONFINITE: "a kept histogram, logged RMS or update ratio holds NaN or Inf",
    ranking.UNRESOLVED: "below the stagnant threshold, but the histogram buckets are too coarse to show a change "
    f"at the threshold's rate, and the drift is within {ranking.UNRESOLVED_MARGIN:g}x of it: the histogram "
    "cannot tell slow from stuck; "
    "log the exact update ratio",
    ranking.INSUFFICIENT: "fewer than two usable samples",
}
ROLE_MEANINGS = {
    naming.WEIGHT: "a kernel or weight matrix (also embeddings)",
    naming.BIAS: "a bias vector",
    naming.NORM_SCALE: "a normalisation layer's scale (gamma)",
    naming.NORM_OFFSET: "a normalisation layer's offset (beta)",
    naming.MOVING_STAT: "a normalisation layer's moving mean or variance (not trained, but follows the data)",
    naming.GRADIENT: "a parameter's gradient: changes with the data, never called stuck",
    naming.ACTIVATION: "a layer's output: changes with the data, never called stuck",
    naming.OTHER: "a tag whose name says nothing of its role; compared with the parameters",
}
SOURCE_MEANINGS = {
    ranking.HISTOGRAM: "histogram drift: normalised Wasserstein-1 between kept histograms per step, "
    "a lower bound on movement",
    ranking.EXACT: "the exact update ratio ||W_t - W_t-k|| / ||W_t-k|| per step, logged during training "
    "by the writers in tb_stagnation.summary",
    ranking.CHECKPOINT: "the exact update ratio between saved checkpoints, imported by "
    "`tb-stagnation checkpoints SRC`",
}
FINDING_MEANINGS = {
    NONFINITE: "the first step holding NaN or Inf, and which tags hold it",
    FROZEN: "parameters that never changed",
    VANISHING_GRADIENT: "movement falls steadily towards the input over at least 3 consecutive parameter layers, "
    "and by at least 10x, down to layers that are stagnant",
    STALLED: "parameters that moved, then stayed below the stagnant threshold from a step on",
    STAGNANT: "parameters far slower than the run's typical parameter over the whole run",
    HISTOGRAM_BLIND: "the run's parameter movement is below what its histograms can resolve or tell apart; "
    "exact figures come from the writers in tb_stagnation.summary or `tb-stagnation checkpoints SRC`",
}

THINNED_MEANING = (
    "TensorBoard kept fewer of the plugin's exact-movement records than were written (its Python loader keeps 10 "
    "a tag by default, the Rust one 100): scores, statuses and findings come from the records it kept; start "
    f"TensorBoard with {records.KEEP_ALL_FLAG} to keep them all"
)

assert set(STATUS_MEANINGS) == set(ranking.STATUSES)
assert set(ROLE_MEANINGS) == set(naming.ROLES)
assert set(SOURCE_MEANINGS) == set(ranking.SOURCE_PREFERENCE)
assert set(FINDING_MEANINGS) == set(FINDING_KINDS)


def parameter_roles() -> list[str]:
    """The roles whose stillness means a layer does not learn, in naming.ROLES order."""
    return [r for r in naming.ROLES if r in naming.PARAMETER_ROLES]


def stuck_statuses() -> list[str]:
    """The statuses ``--fail-on-stagnant`` fails on, in ranking.STATUSES order."""
    return [s for s in ranking.STATUSES if s in ranking.STUCK_STATUSES]


def _entries(meanings: dict[str, str], order) -> list[dict[str, str]]:
    return [{"name": name, "meaning": meanings[name]} for name in order]


def as_json() -> dict:
    """The ``definitions`` object of the ranking JSON."""
    return {
        "statuses": _entries(STATUS_MEANINGS, ranking.STATUSES),
        "roles": _entries(ROLE_MEANINGS, naming.ROLES),
        "sources": _entries(SOURCE_MEANINGS, ranking.SOURCE_PREFERENCE),
        "finding_kinds": _entries(FINDING_MEANINGS, FINDING_KINDS),
        "parameter_roles": parameter_roles(),
        "stuck_statuses": stuck_statuses(),
        "default_ratio": ranking.DEFAULT_RATIO,
        "thinned": THINNED_MEANING,
        "keep_all_flag": records.KEEP_ALL_FLAG,
    }
