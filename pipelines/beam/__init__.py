"""Apache Beam adapters: RunInference for the variants (statistics run on Beam through TFDV)."""
