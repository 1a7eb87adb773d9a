"""What sources hand to measures: histogram samples and exact-movement points, as plain arrays.

Defined below both stages so that a source (an event file, TensorBoard's
data provider) never needs a measure's types, and a measure never sees a
provider object: each source converts what it reads into these.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np


class Sample(NamedTuple):
    """One histogram series as read: in any order, any bucket layouts."""

    steps: Sequence[int]
    wall_times: Sequence[float]
    values: Sequence[np.ndarray] | np.ndarray  # [k, 3] histograms, or one (n, k, 3) array


@dataclasses.dataclass(frozen=True)
class ExactTag:
    """What was read of one tag of the plugin's own data: its content and its values by step.

    ``values[i]`` is flat: a version-2 record's ``(2, columns)`` array, or a
    version-1 scalar as one element (:mod:`tb_stagnation.records` shapes it
    by the content).
    """

    content: bytes
    steps: Sequence[int]
    values: Sequence[np.ndarray]


ExactPoints = dict[str, dict[str, ExactTag]]
"""run -> tag -> :class:`ExactTag`: every exact-movement tag a source read."""
