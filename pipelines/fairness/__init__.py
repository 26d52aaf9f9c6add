"""The fairness metric library: intervals with known coverage and calibrated gate decisions.

(Placeholder: the lead replaces this file when the evaluation code moves here; the
statistics live in :mod:`pipelines.fairness.intervals`.)
"""
