"""The registry of variant kinds: ``variants[*].kind`` in the config -> the class that handles it.

Adding a kind: a config model in :mod:`pipelines.config.variants` (with a ``kind``
literal) and a :class:`~pipelines.variants.interface.VariantKind` subclass registered
in :data:`KINDS`.
"""

from __future__ import annotations

from typing import Any, Mapping

from pipelines.errors import ModelError
from pipelines.variants.cache import verify_entry
from pipelines.variants.classifier_kinds import ClassifierKind, FinetunedKind
from pipelines.variants.interface import VariantKind
from pipelines.variants.predictions_kind import PredictionsKind
from pipelines.variants.rag_kind import RagKind

__all__ = ["KINDS", "variant_kind", "load_predictor"]


#: Kind name -> class.
KINDS: dict[str, type[VariantKind]] = {
    cls.kind: cls for cls in (FinetunedKind, ClassifierKind, RagKind, PredictionsKind)
}


def variant_kind(spec: Any, *, index: int = 0) -> VariantKind:
    """The kind object for one variant of the config."""
    try:
        cls = KINDS[spec.kind]
    except KeyError:
        raise ModelError(f"variants[{index}].kind: unknown kind {spec.kind!r}; known: {', '.join(KINDS)}.") from None
    return cls(spec, index=index)


def load_predictor(spec: Any, built: Mapping[str, Any], *, num_threads: int = 2, index: int = 0,
                   cache_hint: str | None = None) -> Any:
    """A predictor for one variant from its build entry, after checking its model folders.

    Each folder must exist, and one that is a model-cache entry must match the file hashes
    recorded when it was built (:func:`pipelines.variants.cache.verify_entry`).
    A picklable module-level function, so that Beam workers can call it.
    """
    kind = variant_kind(spec, index=index)
    for folder in kind.model_folders(built):
        if not folder.is_dir():
            where = cache_hint or "the build_variants stage cache"
            raise ModelError(f"variant `{spec.name}`: model folder {folder} from the build_variants stage is gone "
                             f"(the model cache was cleared after that stage's outputs were cached). Delete {where} "
                             "and run again to rebuild it.")
        verify_entry(folder, what=f"variant `{spec.name}`")
    return kind.predictor(built, num_threads=num_threads)
