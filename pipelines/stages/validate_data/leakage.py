"""Texts shared between splits, and between the evaluated texts and a RAG knowledge base.

A text of eval (or validation) that also sits in train, or in the documents a RAG variant
retrieves from, measures memory rather than generalization: the classifier saw it with its
label, and the retriever can hand it back as its own nearest neighbour. The data stage
removes duplicates before splitting; this check proves, on what was actually split (and on
each knowledge-base file), that none remain, and lets a gate require it.

*exact* counts rows whose text (stripped) appears in the other set; *near* counts rows whose
normalized text does (:func:`pipelines.stages.load_data.normalize.normalized_text`: case,
punctuation and spacing ignored). Near includes exact.
"""

from __future__ import annotations

import hashlib
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from pipelines.stages.load_data.normalize import NORMALIZATION, normalized_text

__all__ = ["text_hashes", "TextSet", "shared_texts", "leakage_report", "SPLIT_PAIRS"]

#: (evaluated set, reference set): eval against everything it must not have seen, validation against train.
SPLIT_PAIRS: tuple[tuple[str, str], ...] = (("eval", "train"), ("eval", "validation"), ("validation", "train"))
EXAMPLES = 5
SNIPPET = 80


def _hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big")


def text_hashes(texts: Iterable[Any]) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes of each text as it is (stripped) and normalized (two uint64 arrays)."""
    exact, near = [], []
    for text in texts:
        t = "" if text is None else str(text).strip()
        exact.append(_hash(t))
        near.append(_hash(normalized_text(t)))
    return np.array(exact, dtype=np.uint64), np.array(near, dtype=np.uint64)


class TextSet:
    """The texts of one split or knowledge base, as hashes (8 bytes per text and form), with their ids.

    Parameters
    ----------
    name
        What the set is (``"train"``, ``"knowledge base of variant rag (kb.csv)"``).
    ids, texts
        Parallel sequences.
    """

    def __init__(self, name: str, ids: Sequence[Any], texts: Sequence[Any]):
        self.name = name
        self.ids = [str(i) for i in ids]
        self.exact, self.near = text_hashes(texts)
        # only the start of each text is kept, for the examples
        self.texts = ["" if t is None else str(t)[:SNIPPET + 1] for t in texts]

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def concat(cls, name: str, parts: Sequence["TextSet"]) -> "TextSet":
        """One set from sets built batch by batch (the Beam path reads shards in batches)."""
        out = cls(name, [], [])
        for part in parts:
            out.ids += part.ids
            out.texts += part.texts
        if parts:
            out.exact = np.concatenate([p.exact for p in parts])
            out.near = np.concatenate([p.near for p in parts])
        return out


def shared_texts(evaluated: TextSet, reference: TextSet) -> dict[str, Any]:
    """How many rows of ``evaluated`` have their text (exact / normalized) in ``reference``, with examples.

    >>> a = TextSet("eval", ["e1", "e2", "e3"], ["Women are strong.", "new text", "Same"])
    >>> b = TextSet("train", ["t1", "t2"], ["women are STRONG", "Same"])
    >>> r = shared_texts(a, b)
    >>> r["exact"], r["near"], [x["id"] for x in r["examples"]]
    (1, 2, ['e1', 'e3'])
    """
    exact = np.isin(evaluated.exact, reference.exact)
    near = np.isin(evaluated.near, reference.near)
    first_of = {}
    for i, h in enumerate(reference.near.tolist()):
        first_of.setdefault(h, i)
    examples = []
    for i in np.flatnonzero(near)[:EXAMPLES]:
        j = first_of[int(evaluated.near[i])]
        text = evaluated.texts[i]
        examples.append({"id": evaluated.ids[i], "other_id": reference.ids[j], "exact": bool(exact[i]),
                         "text": text[:SNIPPET] + ("..." if len(text) > SNIPPET else "")})
    return {"a": evaluated.name, "b": reference.name, "a_rows": len(evaluated), "b_rows": len(reference),
            "exact": int(exact.sum()), "near": int(near.sum()), "examples": examples}


def leakage_report(splits: Mapping[str, TextSet], knowledge_bases: Sequence[tuple[str, TextSet | None, str]], *,
                   max_shared: int | None, block: bool, scope: str) -> dict[str, Any]:
    """Shared texts for every split pair of :data:`SPLIT_PAIRS` and eval/validation against each knowledge base.

    Parameters
    ----------
    splits
        ``{split: TextSet}`` (splits without rows may be missing).
    knowledge_bases
        ``(variant name, TextSet or None, source)``; None means the knowledge base is the train split
        (its numbers are the train pair's).
    max_shared
        The most rows of an evaluated set that may share a normalized text with a reference set (None: no limit).
    block
        Whether exceeding ``max_shared`` fails the run.
    scope
        What the split sets hold (all rows, or the in-memory samples of the Beam path).

    Returns
    -------
    dict
        ``pairs`` (one entry per compared pair), ``exceeded`` (the pairs over ``max_shared``), ``ok``,
        ``blocking`` (reasons that fail the run), and the settings.
    """
    pairs = [shared_texts(splits[a], splits[b]) for a, b in SPLIT_PAIRS if a in splits and b in splits]
    for variant, kb, source in knowledge_bases:
        for a in ("eval", "validation"):
            if a not in splits:
                continue
            if kb is None:
                entry = next((dict(p) for p in pairs if p["a"] == a and p["b"] == "train"), None)
                if entry is None:
                    continue
                entry.update({"b": f"knowledge base of {variant}", "source": source, "same_as": f"{a} vs train"})
            else:
                entry = shared_texts(splits[a], kb) | {"b": f"knowledge base of {variant}", "source": source}
            pairs.append(entry)
    exceeded = [p for p in pairs if max_shared is not None and p["near"] > max_shared]
    reasons = [f"data leakage: {p['near']} {p['a']} text(s) also in {p['b']} ({p['exact']} exact, the rest equal "
               f"after normalization), more than `validation.leakage.max_shared` = {max_shared}" for p in exceeded]
    return {
        "normalization": NORMALIZATION,
        "scope": scope,
        "max_shared": max_shared,
        "block": block,
        "pairs": pairs,
        "exceeded": [{"a": p["a"], "b": p["b"], "near": p["near"], "exact": p["exact"]} for p in exceeded],
        "ok": not exceeded,
        "blocking": reasons if block else [],
    }
