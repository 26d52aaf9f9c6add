"""Counterfactual twins: the same text with its identity terms swapped.

For every example, the term pairs of its group (the value of the sensitive
column ``evaluation.counterfactual.feature``) are applied at once, longest term
first, case-insensitively and on word boundaries (a hyphen matches a space:
``african americans`` is ``african-americans``). An example with at least one
swap gets a twin; the share of examples with a twin is the *coverage*.

Twins read grammatically in the common cases (:mod:`pipelines.fairness.terms.grammar`):
the case of the replaced word is kept, ``a``/``an`` follows the new word, a
counterpart that depends on the next word (``her -> his|him``) is chosen from it,
fixed expressions (``jew's harp``) are never swapped, and a swap that would put
the same word twice in a row (``african americans -> american americans``) is not
made.

Term pairs come from the built-in lists per axis (:mod:`pipelines.fairness.terms`),
a user's own list, the config, or, for the RedditBias groups, RedditBias' own
``data/<folder>/<folder>_opposites.txt`` (lines such as ``"women are","men are"``).
Those are phrases with a verb, which few comments contain verbatim, so plain
group terms are derived from them: the phrase without its trailing verb
(``women -> men``) and, where both sides share every word but the first, the first
words (``jewish people -> christian people`` gives ``jewish -> christian``).

Examples
--------
>>> swapper = TermSwapper([("women", "men"), ("she", "he")])
>>> swapper.swap("She said women are strong")
('He said men are strong', [('She', 'He'), ('women', 'men')])
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from pipelines.errors import DataError
from pipelines.fairness.terms import TermPair, term_key
from pipelines.fairness.terms.grammar import choose_form, indefinite_article, match_case

__all__ = [
    "TermPair",
    "TermSwapper",
    "read_opposites",
    "derive_group_terms",
    "redditbias_term_pairs",
    "make_twins",
    "TWIN_SUFFIX",
]

TWIN_SUFFIX = "::cf"
_VERBS = ("are", "is", "should", "were", "was")

MSG_OPPOSITES_MISSING = "{path}: RedditBias term-pair file not found (group {group!r}, folder {folder!r})."
MSG_OPPOSITES_BAD_LINE = "{path}:{line}: expected two quoted terms separated by a comma. Got {found!r} instead."
MSG_NO_TEXT = "{table}: column {column!r} is missing; expected columns {expected}. Found {found}."


def read_opposites(path: Path, *, group: str = "", folder: str = "") -> list[TermPair]:
    """Read a RedditBias ``*_opposites.txt`` file; pairs without a counterpart are skipped."""
    path = Path(path)
    if not path.is_file():
        raise DataError(MSG_OPPOSITES_MISSING.format(path=path, group=group, folder=folder))
    pairs: list[TermPair] = []
    text = path.read_text(encoding="utf-8", errors="replace")
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != 2:
            raise DataError(MSG_OPPOSITES_BAD_LINE.format(path=path, line=lineno, found=",".join(row)))
        source, target = row[0].strip().lower(), row[1].strip().lower()
        if source and target:
            pairs.append(TermPair(source, target, "phrase"))
    return pairs


def _strip_verb(phrase: str) -> str:
    words = phrase.split()
    if len(words) > 1 and words[-1] in _VERBS:
        words = words[:-1]
    return " ".join(words)


def derive_group_terms(pairs: Iterable[TermPair]) -> list[TermPair]:
    """Plain group terms from phrase pairs (see the module docstring)."""
    out: list[TermPair] = []
    for pair in pairs:
        src, tgt = _strip_verb(pair.source), _strip_verb(pair.target)
        if not src or not tgt or src == tgt:
            continue
        out.append(TermPair(src, tgt, "derived"))
        sw, tw = src.split(), tgt.split()
        if len(sw) == len(tw) >= 2 and sw[1:] == tw[1:] and sw[0] != tw[0]:
            out.append(TermPair(sw[0], tw[0], "derived"))
    return out


def redditbias_term_pairs(root: Path, *, folders: Mapping[str, str], groups: Iterable[str],
                          derive: bool = True) -> dict[str, list[TermPair]]:
    """Term pairs of each RedditBias group that has a folder in ``folders``."""
    out: dict[str, list[TermPair]] = {}
    for group in groups:
        folder = folders.get(group)
        if folder is None:
            continue
        pairs = read_opposites(Path(root) / "data" / folder / f"{folder}_opposites.txt", group=group, folder=folder)
        out[group] = pairs + (derive_group_terms(pairs) if derive else [])
    return out


_NEXT_WORD = re.compile(r"[\s\-]*([^\W_]+)")
_PREV_WORD = re.compile(r"([^\W_]+)[\s\-]*$")


def _stem(word: str) -> str:
    w = word.lower()
    return w[:-1] if w.endswith("s") and len(w) > 3 else w


class TermSwapper:
    """Swap many terms at once: longest first, case-insensitive, on word boundaries, grammatically.

    A later pair whose source repeats an earlier one is ignored (first wins). ``keep`` are fixed
    expressions left as they are even when they contain a term.
    """

    def __init__(self, pairs: Sequence[TermPair | tuple[str, str]], *, keep: Iterable[str] = ()):
        self.pairs: dict[str, TermPair] = {}
        for p in pairs:
            pair = p if isinstance(p, TermPair) else TermPair(str(p[0]).lower(), str(p[1]))
            key = term_key(pair.source)
            if key and key not in self.pairs:
                self.pairs[key] = pair
        self.keep = {term_key(k) for k in keep if term_key(k)} - set(self.pairs)
        alternatives = sorted({*self.pairs, *self.keep}, key=lambda t: (-len(t), t))
        body = "|".join(r"[\s\-]+".join(re.escape(w) for w in t.split()) for t in alternatives)
        # A hyphen counts as part of a word: "african" must not match inside "african-americans".
        self._pattern = (re.compile(rf"(?:(?<![\w-])(?P<art>an?)(?P<sp>[ \t]+))?(?<![\w-])(?P<term>{body})(?![\w-])",
                                    re.IGNORECASE) if body else None)

    def _replacement(self, match: re.Match[str]) -> tuple[str, str] | None:
        """``(found, new)`` for one match, or None when it must stay (a fixed expression, a doubled word)."""
        found = match.group("term")
        pair = self.pairs.get(term_key(found))
        if pair is None:
            return None
        text = match.string
        new = match_case(found, choose_form(pair.target, text[match.end():]))
        nxt = _NEXT_WORD.match(text, match.end())
        prev = _PREV_WORD.search(text, 0, match.start("art") if match.group("art") else match.start())
        new_words = new.split()
        if (nxt and _stem(nxt.group(1)) == _stem(new_words[-1])) or (prev and _stem(prev.group(1)) == _stem(new_words[0])):
            return None
        return found, new

    def swap(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """Return the swapped text and the ``(found, replacement)`` swaps made."""
        if self._pattern is None or not isinstance(text, str):
            return text, []
        done: list[tuple[str, str]] = []

        def repl(match: re.Match[str]) -> str:
            swap = self._replacement(match)
            if swap is None:
                return match.group(0)
            done.append(swap)
            article = match.group("art")
            if not article:
                return swap[1]
            return match_case(article, indefinite_article(swap[1])) + match.group("sp") + swap[1]

        return self._pattern.sub(repl, text), done

    def origins(self, text: str) -> set[str]:
        """Origins (phrase/derived/user/axis:...) of the pairs that match ``text``."""
        if self._pattern is None or not isinstance(text, str):
            return set()
        found = (self.pairs.get(term_key(m.group("term"))) for m in self._pattern.finditer(text))
        return {p.origin for p in found if p is not None}


def make_twins(frame: pd.DataFrame, *, feature: str, pairs_by_group: Mapping[str, Sequence[TermPair]],
               sensitive_features: Sequence[str], table: str = "audit_sample",
               keep_by_group: Mapping[str, Iterable[str]] | None = None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build the ``twins`` table and the coverage report (``keep_by_group``: fixed expressions per group).

    Returns
    -------
    twins
        ``twin_id``, ``example_id``, ``text`` (swapped), the sensitive features of the
        original, ``swaps`` (``"women->men; she->he"``), ``n_swaps``.
    coverage
        Per group: examples, twins, ``coverage`` (share with at least one swap),
        ``phrase_coverage`` (share that a RedditBias phrase alone would cover), and the
        number of term pairs used.
    """
    needed = ["example_id", "text", feature, *[c for c in sensitive_features if c != feature]]
    missing = [c for c in needed if c not in frame.columns]
    if missing:
        raise DataError(MSG_NO_TEXT.format(table=table, column=missing[0], expected=needed,
                                           found=list(frame.columns)))
    keep = keep_by_group or {}
    swappers = {str(g): TermSwapper(list(p), keep=keep.get(g, ())) for g, p in pairs_by_group.items()}
    rows: list[dict[str, Any]] = []
    per_group: dict[str, dict[str, Any]] = {}
    for group, part in frame.groupby(frame[feature].astype(str), sort=True):
        swapper = swappers.get(group)
        entry = {"examples": int(len(part)), "twins": 0, "coverage": 0.0, "phrase_coverage": 0.0,
                 "term_pairs": 0 if swapper is None else len(swapper.pairs), "has_terms": swapper is not None}
        per_group[group] = entry
        if swapper is None:
            continue
        phrase_hits = 0
        for rec in part[needed].to_dict("records"):
            new_text, swaps = swapper.swap(rec["text"])
            if not swaps:
                continue
            if "phrase" in swapper.origins(rec["text"]):
                phrase_hits += 1
            row = {"twin_id": f"{rec['example_id']}{TWIN_SUFFIX}", "example_id": rec["example_id"],
                   "text": new_text}
            row.update({c: rec[c] for c in sensitive_features})
            row["swaps"] = "; ".join(f"{a}->{b}" for a, b in swaps)
            row["n_swaps"] = len(swaps)
            rows.append(row)
            entry["twins"] += 1
        entry["coverage"] = entry["twins"] / entry["examples"] if entry["examples"] else 0.0
        entry["phrase_coverage"] = phrase_hits / entry["examples"] if entry["examples"] else 0.0
    columns = ["twin_id", "example_id", "text", *sensitive_features, "swaps", "n_swaps"]
    twins = pd.DataFrame(rows, columns=columns)
    twins["n_swaps"] = twins["n_swaps"].astype("int64")
    total = int(len(frame))
    coverage = {
        "feature": feature,
        "examples": total,
        "twins": int(len(twins)),
        "coverage": (len(twins) / total) if total else 0.0,
        "groups": per_group,
        "groups_without_terms": sorted(g for g, e in per_group.items() if not e["has_terms"]),
    }
    return twins, coverage
