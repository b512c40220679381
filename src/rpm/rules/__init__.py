"""Deterioration rules: thresholds from condition templates, weight-gain trend, missing measurements."""
