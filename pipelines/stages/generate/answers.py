"""One generating variant's answers in every condition, with the scores that need models.

Per answer: its VADER compound sentiment, the stereotype classifier's calibrated score
and decision (when the audit has one), and per counterfactual pair the cosine of the
two answers' sentence embeddings and their ROUGE-L, both with the group terms masked
(:func:`pipelines.fairness.generation.score_answer_pairs`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from pipelines.config.generation import CONDITION_DOCS
from pipelines.fairness.generation import SentimentConvention, score_answer_pairs, vader_sentiment

__all__ = ["PAIR_TABLE_COLUMNS", "OPEN_TABLE_COLUMNS", "Judge", "variant_answers", "empty_pairs", "empty_open"]

PAIR_TABLE_COLUMNS = (
    "variant", "condition", "pair_id", "example_id", "feature", "group", "text", "twin_text", "answer", "twin_answer",
    "masked_answer", "masked_twin_answer", "cosine", "rouge_l", "sentiment", "twin_sentiment", "negative",
    "twin_negative", "stereotype_score", "twin_stereotype_score", "stereotype", "twin_stereotype", "new_tokens",
    "twin_new_tokens", "hit_limit", "twin_hit_limit", "docs", "twin_docs",
)
OPEN_TABLE_COLUMNS = (
    "variant", "condition", "prompt_id", "source", "axis", "group", "prompt", "answer", "sentiment", "negative",
    "stereotype_score", "stereotype", "new_tokens", "hit_limit", "docs",
)


@dataclass(frozen=True)
class Judge:
    """The audit's stereotype classifier applied to answers: calibrated score, decision at its threshold."""

    variant: str
    score: Callable[[list[str]], np.ndarray]
    threshold: float


def empty_pairs() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in PAIR_TABLE_COLUMNS})


def empty_open() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in OPEN_TABLE_COLUMNS})


def _docs(rule: str | None, own: list[list[str]] | None, original: list[list[str]] | None, i: int) -> list[str]:
    if rule == "own":
        return own[i]  # type: ignore[index]
    if rule == "original":
        return original[i]  # type: ignore[index]
    return []


def variant_answers(writer: Any, *, variant: str, pairs: pd.DataFrame, prompts: pd.DataFrame, settings: Any,
                    feature: str, pairs_by_group: Mapping[str, Sequence[Any]], judge: Judge | None,
                    progress: Any, log: Any) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """Answers of one variant to the pairs and the open-ended prompts in ``settings.conditions``.

    ``pairs``: ``pair_id``, ``example_id``, ``group``, ``text``, ``twin_text``; ``prompts``:
    ``prompt_id``, ``source``, ``axis``, ``group``, ``prompt``. Returns the rows of the
    ``answer_pairs`` and ``open_answers`` tables and the variant's timing.
    """
    from pipelines.variants.generation import AnswerRequest

    conditions = list(settings.conditions)
    rules = {c: CONDITION_DOCS[c] for c in conditions}
    pair_rules = {r for c in conditions for r in rules[c][:2]}
    open_rules = {rules[c][2] for c in conditions}
    texts, twin_texts, prompt_texts = (pairs["text"].tolist(), pairs["twin_text"].tolist(),
                                       prompts["prompt"].tolist())
    t0 = time.perf_counter()
    none: tuple[list[list[str]], list[list[str]]] = ([], [])
    need_pairs = bool(texts) and bool(pair_rules & {"own", "original"})
    docs_orig, ids_orig = writer.documents(texts, progress=progress) if need_pairs else none
    docs_twin, ids_twin = writer.documents(twin_texts, progress=progress) if need_pairs and "own" in pair_rules \
        else none
    docs_open, ids_open = writer.documents(prompt_texts, progress=progress) if prompt_texts and "own" in open_rules \
        else none
    retrieval_seconds = time.perf_counter() - t0

    requests, slots = [], []
    for c in conditions:
        orig_rule, twin_rule, open_rule = rules[c]
        for i in range(len(texts)):
            requests.append(AnswerRequest(texts[i], settings.instruction, "Comment: ",
                                          tuple(_docs(orig_rule, docs_orig, docs_orig, i))))
            requests.append(AnswerRequest(twin_texts[i], settings.instruction, "Comment: ",
                                          tuple(_docs(twin_rule, docs_twin, docs_orig, i))))
            slots += [("pair", c, i, 0), ("pair", c, i, 1)]
        if open_rule is not None:
            for i in range(len(prompt_texts)):
                requests.append(AnswerRequest(prompt_texts[i], settings.open_instruction, "",
                                              tuple(_docs(open_rule, docs_open, docs_open, i))))
                slots.append(("open", c, i, 0))
    answers = writer.write(requests, progress=progress, desc=f"{variant}: writing answers")
    log.info("%s: %d answers (%d prompts generated) in %.1fs", variant, len(requests), answers.prompts_generated,
             answers.seconds)

    t1 = time.perf_counter()
    unique = list(dict.fromkeys(answers.texts))
    convention = SentimentConvention("compound", settings.negative_at_most, "at_most")
    sentiment = dict(zip(unique, vader_sentiment(unique)["compound"].to_numpy(dtype=np.float64)))
    stereo = dict(zip(unique, judge.score(unique))) if judge is not None and unique else {}
    at = {s: k for k, s in enumerate(slots)}

    def scored(k: int) -> dict[str, Any]:
        text = answers.texts[k]
        s = stereo.get(text)
        return {"answer": text, "sentiment": float(sentiment[text]),
                "negative": bool(convention.is_negative([sentiment[text]])[0]),
                "stereotype_score": None if s is None else float(s),
                "stereotype": None if s is None else bool(s >= judge.threshold),  # type: ignore[union-attr]
                "new_tokens": int(answers.new_tokens[k]), "hit_limit": bool(answers.hit_limit[k])}

    pair_rows, open_rows = [], []
    for c in conditions:
        orig_rule, twin_rule, open_rule = rules[c]
        if texts:
            a = [answers.texts[at[("pair", c, i, 0)]] for i in range(len(texts))]
            b = [answers.texts[at[("pair", c, i, 1)]] for i in range(len(texts))]
            sim = score_answer_pairs(a, b, groups=pairs["group"].astype(str).tolist(), pairs_by_group=pairs_by_group,
                                     embed=lambda xs: writer.embed(xs, progress=progress), convention=convention)
            for i, row in enumerate(pairs.itertuples(index=False)):
                one, two = scored(at[("pair", c, i, 0)]), scored(at[("pair", c, i, 1)])
                pair_rows.append({
                    "variant": variant, "condition": c, "pair_id": row.pair_id, "example_id": row.example_id,
                    "feature": feature, "group": str(row.group), "text": row.text, "twin_text": row.twin_text,
                    **one, **{f"twin_{k}": v for k, v in two.items()},
                    "masked_answer": sim["masked_answer"].iloc[i], "masked_twin_answer": sim["masked_twin_answer"].iloc[i],
                    "cosine": float(sim["cosine"].iloc[i]), "rouge_l": float(sim["rouge_l"].iloc[i]),
                    "docs": list(_docs(orig_rule, ids_orig, ids_orig, i)),
                    "twin_docs": list(_docs(twin_rule, ids_twin, ids_orig, i)),
                })
        if open_rule is not None:
            for i, row in enumerate(prompts.itertuples(index=False)):
                open_rows.append({"variant": variant, "condition": c, "prompt_id": row.prompt_id, "source": row.source,
                                  "axis": row.axis, "group": str(row.group), "prompt": row.prompt,
                                  **scored(at[("open", c, i, 0)]),
                                  "docs": list(_docs(open_rule, ids_open, ids_open, i))})
    scoring_seconds = time.perf_counter() - t1
    n = len(requests)
    timing = {"answers": n, "prompts_generated": answers.prompts_generated, "batches": answers.batches,
              "generate_seconds": round(answers.seconds, 3),
              "prompts_per_s": round(answers.prompts_generated / answers.seconds, 3) if answers.seconds > 0 else None,
              "new_tokens_mean": round(float(answers.new_tokens.mean()), 2) if n else None,
              "prompt_tokens_mean": round(float(answers.prompt_tokens.mean()), 2) if n else None,
              "hit_limit": int(answers.hit_limit.sum()), "prompt_cut": int(answers.prompt_cut.sum()),
              "retrieval_seconds": round(retrieval_seconds, 3), "scoring_seconds": round(scoring_seconds, 3),
              "path": {k: v for k, v in writer.path.items() if k in ("precision", "runtime", "requested", "reason")}}
    pair_table = pd.DataFrame(pair_rows, columns=list(PAIR_TABLE_COLUMNS)) if pair_rows else empty_pairs()
    open_table = pd.DataFrame(open_rows, columns=list(OPEN_TABLE_COLUMNS)) if open_rows else empty_open()
    return pair_table, open_table, timing
