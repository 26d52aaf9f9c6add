"""Counterfactual twins: the same text with its identity terms swapped.

For every example, the term pairs of its group (the value of the sensitive
column ``evaluation.counterfactual.feature``) are applied at once, longest term
first, case-insensitively and on word boundaries. An example with at least one
swap gets a twin; the share of examples with a twin is the *coverage*.

Term pairs for the RedditBias groups come from RedditBias' own
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from pipelines.errors import DataError

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


@dataclass(frozen=True)
class TermPair:
    source: str
    target: str
    origin: str = "user"  # "phrase" (RedditBias file), "derived" or "user"


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


def _match_case(found: str, target: str) -> str:
    if found.isupper() and len(found) > 1:
        return target.upper()
    if found[:1].isupper():
        return target[:1].upper() + target[1:]
    return target


class TermSwapper:
    """Swap many terms at once: longest first, case-insensitive, on word boundaries.

    A later pair whose source repeats an earlier one is ignored (first wins).
    """

    def __init__(self, pairs: Sequence[TermPair | tuple[str, str]]):
        self.pairs: dict[str, TermPair] = {}
        for p in pairs:
            pair = p if isinstance(p, TermPair) else TermPair(str(p[0]).lower(), str(p[1]).lower())
            key = pair.source.lower()
            if key and key not in self.pairs:
                self.pairs[key] = pair
        alternatives = sorted(self.pairs, key=lambda t: (-len(t), t))
        body = "|".join(r"\s+".join(re.escape(w) for w in t.split()) for t in alternatives)
        # A hyphen counts as part of a word: "african" must not match inside "african-americans".
        self._pattern = re.compile(rf"(?<![\w-])(?:{body})(?![\w-])", re.IGNORECASE) if body else None

    def swap(self, text: str) -> tuple[str, list[tuple[str, str]]]:
        """Return the swapped text and the ``(found, replacement)`` swaps made."""
        if self._pattern is None or not isinstance(text, str):
            return text, []
        done: list[tuple[str, str]] = []

        def repl(match: re.Match[str]) -> str:
            found = match.group(0)
            pair = self.pairs[" ".join(found.lower().split())]
            new = _match_case(found, pair.target)
            done.append((found, new))
            return new

        return self._pattern.sub(repl, text), done

    def origins(self, text: str) -> set[str]:
        """Origins (phrase/derived/user) of the pairs that match ``text``."""
        if self._pattern is None or not isinstance(text, str):
            return set()
        return {self.pairs[" ".join(m.group(0).lower().split())].origin for m in self._pattern.finditer(text)}


def make_twins(frame: pd.DataFrame, *, feature: str, pairs_by_group: Mapping[str, Sequence[TermPair]],
               sensitive_features: Sequence[str], table: str = "audit_sample") -> tuple[pd.DataFrame, dict[str, Any]]:
    """Build the ``twins`` table and the coverage report.

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
    swappers = {str(g): TermSwapper(list(p)) for g, p in pairs_by_group.items()}
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
