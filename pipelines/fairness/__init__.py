"""Fairness metric library (placeholder: replaced when the package restructuring lands)."""
