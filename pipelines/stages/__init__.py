"""One folder per stage, named as the stage: ``spec.py`` (inputs, outputs, the config it reads) and ``run.py``
(the work), with ``beam.py`` beside ``run.py`` where the stage has a Beam path.

The graph (their order) is :mod:`pipelines.graph`.
"""
