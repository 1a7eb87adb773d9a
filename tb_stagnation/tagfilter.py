"""User-supplied tag regexes: the one rule of the route, the CLI and the tab.

A tag filter is a regular expression searched in tag names, case-insensitive,
as TensorBoard's own tag filters are (its frontend builds ``new RegExp(filter,
'i')``): ``dense`` finds ``Dense/kernel``. The tab applies the same rule
client-side (frontend/src/tagfilter.ts: the same limits and messages, and it
refuses what JavaScript and Python read differently), so one pattern shows the
same rows in the tab, the ranking route and ``tb-stagnation --tag``.

Python's ``re`` has no time-out, so the work a pattern can trigger is bounded
up front: a length limit, and no quantified group that itself holds a
quantifier or an alternation (``(a+)+``, ``(a|aa)*``), the shape of patterns
that backtrack exponentially, and no backreference. Tag names are short, so
what is left runs in time roughly linear in their length.
"""

from __future__ import annotations

import re

from tensorboard import errors

MAX_LENGTH = 256
_NESTED_QUANTIFIER = re.compile(r"\((?:[^()\\]|\\.)*[*+?}|](?:[^()\\]|\\.)*\)\s*[*+?{]")
_BACKREFERENCE = re.compile(r"\\[1-9]|\(\?P=|\\k<")  # \k<name> is JavaScript's: refused alike


class TagFilterError(errors.InvalidArgumentError):
    """A pattern refused, with a message fit to show the user (a 400 when a route raises it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # without TensorBoard's "Invalid argument: " prefix, for the CLI


def compile_tag_filter(pattern: str | None) -> re.Pattern | None:
    """The compiled pattern (case-insensitive), ``None`` for no filter; raises :class:`TagFilterError`."""
    if not pattern:
        return None
    if len(pattern) > MAX_LENGTH:
        raise TagFilterError(f"tag regex longer than {MAX_LENGTH} characters")
    if _NESTED_QUANTIFIER.search(pattern) or _BACKREFERENCE.search(pattern):
        raise TagFilterError(
            "tag regex with a quantified group holding a quantifier or alternation, "
            "or a backreference, could take unbounded time; simplify it"
        )
    try:
        return re.compile(pattern, re.IGNORECASE)
    except re.error as e:
        raise TagFilterError(f"invalid tag regex: {e}") from None
