"""Measures: samples and exact points in, per-series figures (drift, summaries, exact series) out."""
