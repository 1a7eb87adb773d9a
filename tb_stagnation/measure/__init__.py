"""Measures: per-series figures from what the sources read.

In: histogram samples (steps, wall times and ``[k, 3]`` histograms, one
series a (run, tag)) and exact points (the plugin's records, by tag). Out:
per-series figures, no verdict: :mod:`.drift` (a series' step-to-step
drift, for the detail view), :mod:`.incremental` (drift kept across reloads,
measuring only new pairs), :mod:`.summaries` (a series condensed to what the
ranking uses), :mod:`.exact_series` (exact points aligned into per-parameter
series), on :mod:`.histogram` (bucketed histograms as distributions, W1).
"""
