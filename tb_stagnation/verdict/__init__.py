"""Verdicts: per-series figures in, statuses, a ranking and findings out, in one vocabulary."""
