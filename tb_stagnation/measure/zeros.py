"""The share of exact zeros in a histogram, where its buckets can tell: the dying-ReLU signal.

A ReLU's output is exactly 0 wherever its input is negative: about half the
values of a healthy layer, nearly all of a layer whose units died (pushed so
far negative that no input brings them back, so no gradient either). Whether
a histogram shows exact zeros depends on its bucket layout:

- TF1's ``HistogramProto`` buckets (``tf.compat.v1.summary.histogram``,
  PyTorch's and tensorboardX's ``add_histogram``) are exponential, with an
  edge at 0 and the next at 1e-12: the zeros of a ReLU output sit alone in a
  bucket ``[0, 1e-12]``, whichever loader read it. Its count over the total
  is the share of zeros.
- TF2's ``tf.summary.histogram`` (and Keras' callback) spreads 30 even
  buckets over ``[min, max]``: the first bucket of a ReLU output holds its
  zeros and its small positive values together. The share is unknown (NaN),
  and nothing is concluded from it.

A histogram none of whose buckets reaches 0 holds no zero (share 0); one
whose wide bucket straddles or touches 0 cannot tell (NaN). :func:`shares`
measures a batch; :class:`ZeroShares` keeps what a verdict needs of a
series' shares (first, last, and since when they stayed above any given
share), a few numbers whatever the series' length.

Pure numpy; no TensorBoard import.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tb_stagnation.measure import histogram

ZERO_WIDTH = 2e-12
"""A bucket from exactly 0 up to at most this holds exact zeros only (TF1's first positive bucket ends at
1e-12; its next at 1.1e-12): no float32 activation worth the name lies in between."""


def shares(hists: histogram.Batch) -> np.ndarray:
    """Per histogram, the share of its values that are exactly 0; NaN where its buckets cannot tell (or it is empty)."""
    mass = hists.count > 0
    zero = mass & (hists.left == 0) & (hists.right <= ZERO_WIDTH)
    blurred = mass & ~zero & (hists.left <= 0) & (hists.right >= 0) & (hists.right - hists.left > ZERO_WIDTH)
    total = hists.total
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(zero, hists.count, 0.0).sum(axis=1) / total
    out[blurred.any(axis=1) | ~(total > 0)] = np.nan
    return out


@dataclasses.dataclass(frozen=True)
class ZeroShares:
    """A series' zero shares condensed: enough to say, for any share, since when every later one reached it.

    ``dips`` are the right-to-left minima of the measured shares, latest
    first: ``(step, share, next_step, after)``, ``next_step`` the step of the
    next measured share (``None`` for the last) and ``after`` how many
    measured shares follow. The last share below a level is the first dip
    below it, so :meth:`above_since` answers from a few numbers.
    """

    first: tuple[int, float]  # (step, share) of the first measured share
    last: tuple[int, float]  # ... and of the last
    count: int  # measured shares
    dips: tuple[tuple[int, float, int | None, int], ...]

    @classmethod
    def of(cls, steps: np.ndarray, values: np.ndarray) -> ZeroShares | None:
        """The condensed ``values`` (one share per step, NaN unmeasured); ``None`` when none is measured."""
        measured = np.flatnonzero(np.isfinite(values))
        if not len(measured):
            return None
        at, share = steps[measured].tolist(), values[measured].tolist()
        later_min = np.minimum.accumulate(values[measured][::-1])[::-1]
        is_dip = np.ones(len(at), dtype=bool)
        is_dip[:-1] = values[measured][:-1] < later_min[1:]
        dips = tuple(
            (int(at[k]), float(share[k]), int(at[k + 1]) if k + 1 < len(at) else None, len(at) - 1 - k)
            for k in np.flatnonzero(is_dip)[::-1].tolist()
        )
        return cls(first=(int(at[0]), float(share[0])), last=(int(at[-1]), float(share[-1])), count=len(at), dips=dips)

    def above_since(self, level: float) -> tuple[int | None, int]:
        """``(step, shares)``: the first step from which every measured share is at least ``level``, and how many.

        ``(None, 0)`` when the last share is below ``level``.
        """
        for step, share, next_step, after in self.dips:
            if share < level:
                return (next_step, after) if after else (None, 0)
        return self.first[0], self.count
