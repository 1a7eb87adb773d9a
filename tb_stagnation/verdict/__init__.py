"""Verdicts: per-series figures in, a ranking and findings out, in one vocabulary.

In: one figure set per series, as the measures made them: drift
:class:`~tb_stagnation.measure.summaries.Summary` per histogram tag and
:class:`~tb_stagnation.measure.exact_series.ExactSeries` per parameter and
exact source. Out: a :class:`~ranking.Ranking` (rows with statuses and
scores, each run's layer profile and thresholds per source) and its
findings (:class:`~findings.Finding`), one plain sentence per problem.

- :mod:`.vocabulary`: the words (statuses, roles, sources, finding kinds),
  the thresholds, and what each means; every other module reads them here;
- :mod:`.naming`: a tag's layer and role, read off its name;
- :mod:`.blocks`: the repeated block a tag's tensor is in, read off its name;
- :mod:`.matching`: how an exact series meets the histogram tag of its tensor;
- :mod:`.ranking`: scores, thresholds and statuses, per run, in model order;
- :mod:`.findings`: what a ranking means, detected and worded.
"""
