"""Chart labels: shortened to fit their column (never clipped), the full text kept as a tooltip."""

from __future__ import annotations

import pytest

from pipelines.report._svg import bar_chart, fit_text, interval_chart, label_width, text_width

LONG = "people who describe themselves as members of a very long-named community"


@pytest.mark.parametrize("label", ["women", "LGBTQ", "a" * 80, "W" * 40, "\u5973\u6027" * 10, ""])
def test_fit_text_never_exceeds_its_width(label):
    for max_px in (30, 60, 140):
        out = fit_text(label, max_px)
        assert text_width(out) <= max_px or out == "\u2026"
        assert out == label or (out.endswith("\u2026") and label.startswith(out[:-1]))
    assert fit_text(label, 10_000) == label
    assert 40 <= label_width([label, "x"]) <= 170


def test_width_estimate_is_monotone_and_wider_for_wide_letters():
    assert text_width("") == 0
    assert text_width("ab") < text_width("abc")
    assert text_width("iiii") < text_width("aaaa") < text_width("AAAA") < text_width("MMMM")
    assert text_width("ab", bold=True) > text_width("ab")


@pytest.mark.parametrize("chart", ["interval", "bar"])
def test_chart_labels_fit_left_of_their_anchor(chart):
    from bs4 import BeautifulSoup

    rows = [{"label": "women", "value": 0.5, "ci_low": 0.4, "ci_high": 0.6},
            {"label": LONG, "value": 0.7, "ci_low": 0.6, "ci_high": 0.8}]
    svg = interval_chart(rows, title="t") if chart == "interval" else bar_chart(rows, title="t")
    labels = BeautifulSoup(str(svg), "html.parser").select("text.label")
    assert [t["data-full"] for t in labels] == ["women", LONG]
    short, long_ = (t.find(string=True, recursive=False) for t in labels)
    assert short == "women" and labels[0].find("title") is None
    assert long_ != LONG and long_.endswith("\u2026") and labels[1].find("title").get_text() == LONG
    for t in labels:  # right-aligned at x: the text's estimated width must fit between 0 and x
        assert text_width(t.find(string=True, recursive=False)) <= float(t["x"])
