"""Fairness audit pipeline for NLP models: fine-tuned vs RAG, side by side.

Importing this package is cheap: TensorFlow, TFDV, torch and transformers are
imported only inside the stages that need them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
