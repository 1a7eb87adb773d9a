"""How exact series meet histogram tags: one tensor measured both ways is one row.

An exact series is named by its parameter (``conv1.weight``, or a
checkpoint's ``model/dense/kernel``), a histogram by its tag
(``sequential/dense/kernel/histogram``). Writers disagree on the outermost
name and on noise around it, so names meet on what :func:`naming.parse`
keeps of them, and failing that on a few variants that still identify one
tag (:func:`match_exact`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tb_stagnation.measure.exact_series import ExactSeries
from tb_stagnation.verdict import naming
from tb_stagnation.verdict.vocabulary import Role


def by_tag(
    tags: Collection[str], exact: Mapping[str, Mapping[str, ExactSeries]]
) -> dict[str, dict[str, ExactSeries]]:
    """source -> row tag -> series: each series under the histogram tag of its tensor, else its own name.

    ``tags``: one run's histogram tags; ``exact``: source -> parameter name
    -> series of the same run. A parameter without a histogram keeps its own
    name, and gets a row of its own.
    """
    out = {}
    for source, params in exact.items():
        matched = match_exact(tags, params)
        out[source] = {matched.get(p, p): series for p, series in params.items()}
    return out


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
    keys = {tag: name.param_key for tag, name in parsed.items() if name.role != Role.GRADIENT}
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
