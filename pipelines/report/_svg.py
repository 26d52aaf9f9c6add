"""Inline SVG charts for the HTML report, built as escaped markup.

Every piece of text (group names, run ids, metric names) goes through
:func:`markupsafe.escape`, so a group called ``<script>`` is drawn as text. The
charts return :class:`markupsafe.Markup`, which the autoescaping template
inserts as it is. No fonts, scripts or external references: the SVG is static.
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping, Sequence

from markupsafe import Markup, escape

__all__ = ["interval_chart", "trend_chart", "bar_chart", "text_width", "fit_text", "label_width", "PALETTE", "FONT_SIZE"]

#: Colour-blind-safe palette (Okabe-Ito), one colour per variant / series.
PALETTE = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")

FONT_SIZE = 11
_FONT = f"font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:{FONT_SIZE}px"

# Advance widths in em, rounded up from the widest common sans-serif faces (DejaVu Sans, which
# Debian's Chromium uses for system-ui, is among the widest): an estimate that errs on the wide
# side, so that a label given its estimated width is never clipped. Characters not listed
# (other scripts, emoji) count as a full em.
_NARROW = set("iljI.,:;'|!`()[]{} ")
_WIDE = set("mwMW@%&")
_EM_NARROW, _EM_LOWER, _EM_UPPER, _EM_WIDE, _EM_OTHER = 0.40, 0.64, 0.78, 1.0, 1.0


def text_width(text: Any, size: float = FONT_SIZE, *, bold: bool = False) -> float:
    """A conservative estimate of the rendered width of ``text`` in px (never less than the real width
    for Latin text in the common sans-serif faces; bold adds 10%).

    >>> text_width("ab") < text_width("mw") < text_width("\u5973\u6027\u5973")
    True
    """
    total = 0.0
    for ch in "" if text is None else str(text):
        if ch in _NARROW:
            total += _EM_NARROW
        elif ch in _WIDE:
            total += _EM_WIDE
        elif ch.isascii() and (ch.islower() or ch.isdigit() or not ch.isalnum()):
            total += _EM_LOWER
        elif ch.isascii():
            total += _EM_UPPER
        else:
            total += _EM_OTHER
    return total * size * (1.1 if bold else 1.0)


def fit_text(text: Any, max_px: float, size: float = FONT_SIZE) -> str:
    """``text`` shortened with an ellipsis until its estimated width is at most ``max_px``.

    >>> fit_text("women", 200), fit_text("a very long group name indeed", 60)
    ('women', 'a very l\u2026')
    """
    s = "" if text is None else str(text)
    if text_width(s, size) <= max_px:
        return s
    while s and text_width(s + "\u2026", size) > max_px:
        s = s[:-1]
    return s.rstrip() + "\u2026"


def label_width(labels: Iterable[Any], *, cap: float = 170.0, floor: float = 40.0, pad: float = 10.0) -> float:
    """Width of a label column: the widest label's estimate plus ``pad``, within [``floor``, ``cap``]."""
    widest = max((text_width(label) for label in labels), default=0.0)
    return max(floor, min(cap, widest + pad))


def _attrs(attrs: Mapping[str, Any]) -> str:
    parts = []
    for key, value in attrs.items():
        if value is None:
            continue
        if isinstance(value, float):
            value = f"{value:.2f}".rstrip("0").rstrip(".")
        parts.append(f'{key.rstrip("_").replace("_", "-")}="{escape(str(value))}"')
    return " ".join(parts)


def _el(tag: str, attrs: Mapping[str, Any] | None = None, text: Any = None, children: Iterable[str] = ()) -> str:
    a = _attrs(attrs or {})
    inner = "".join(children)
    if text is not None:
        inner = str(escape(str(text))) + inner
    return f"<{tag}{' ' + a if a else ''}>{inner}</{tag}>" if inner or tag not in ("line", "circle", "rect", "path") \
        else f"<{tag}{' ' + a if a else ''}/>"


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _fmt(x: Any) -> str:
    return f"{x:.3f}" if _finite(x) else "n/a"


def _svg(width: float, height: float, label: str, children: list[str]) -> Markup:
    head = _el("title", text=label)
    body = "".join(children)
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" width="{width:.0f}" '
        f'height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" aria-label="{escape(label)}" '
        f'style="{_FONT}">{head}{body}</svg>'
    )


def _domain(values: Sequence[float], lo: float | None, hi: float | None) -> tuple[float, float]:
    vals = [v for v in values if _finite(v)]
    d_lo = lo if lo is not None else (min(vals) if vals else 0.0)
    d_hi = hi if hi is not None else (max(vals) if vals else 1.0)
    if d_hi - d_lo < 1e-9:
        d_lo, d_hi = d_lo - 0.5, d_hi + 0.5
    return d_lo, d_hi


def interval_chart(
    rows: Sequence[Mapping[str, Any]],
    *,
    title: str,
    domain: tuple[float | None, float | None] = (0.0, 1.0),
    reference: float | None = None,
    reference_label: str = "overall",
    width: int = 460,
) -> Markup:
    """Points with interval bars, one row per group.

    ``rows``: ``{"label", "value", "ci_low", "ci_high", "note"}``; a row without a
    value is drawn as a label with its note (e.g. "insufficient data").
    ``reference`` draws a dashed vertical line (the overall value).
    """
    label_w = label_width(r.get("label") for r in rows)
    pad_r, row_h, top, bottom = 56, 22, 26, 26
    height = top + bottom + row_h * max(len(rows), 1)
    lo, hi = _domain([v for r in rows for v in (r.get("ci_low"), r.get("ci_high"), r.get("value"))]
                     + ([reference] if _finite(reference) else []), *domain)
    plot_w = width - label_w - pad_r

    def x(v: float) -> float:
        return label_w + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_w

    out = [_el("text", {"x": 4, "y": 14, "font-weight": "600"}, title)]
    # axis with 5 ticks
    axis_y = top + row_h * max(len(rows), 1) + 4
    out.append(_el("line", {"x1": label_w, "x2": label_w + plot_w, "y1": axis_y, "y2": axis_y, "stroke": "#888"}))
    for i in range(5):
        v = lo + (hi - lo) * i / 4
        out.append(_el("line", {"x1": x(v), "x2": x(v), "y1": top - 4, "y2": axis_y, "stroke": "#eee"}))
        out.append(_el("text", {"x": x(v), "y": axis_y + 14, "text-anchor": "middle", "fill": "#555"}, f"{v:.2f}"))
    if _finite(reference):
        out.append(_el("line", {"x1": x(reference), "x2": x(reference), "y1": top - 4, "y2": axis_y,
                                "stroke": "#444", "stroke-dasharray": "4 3"},
                       children=[_el("title", text=f"{reference_label}: {_fmt(reference)}")]))
    for i, row in enumerate(rows):
        cy = top + row_h * i + row_h / 2
        out.append(_label(label_w - 6, cy + 4, row.get("label"), label_w - 10))
        value = row.get("value")
        if not _finite(value):
            out.append(_el("text", {"x": label_w + 4, "y": cy + 4, "fill": "#999", "font-style": "italic"},
                           row.get("note") or "no estimate"))
            continue
        tip = f"{row.get('label')}: {_fmt(value)}"
        lo_v, hi_v = row.get("ci_low"), row.get("ci_high")
        if _finite(lo_v) and _finite(hi_v):
            tip += f" [{_fmt(lo_v)}, {_fmt(hi_v)}]"
            out.append(_el("line", {"x1": x(lo_v), "x2": x(hi_v), "y1": cy, "y2": cy, "stroke": PALETTE[0],
                                    "stroke-width": 2, "class": "ci"}))
            for end in (lo_v, hi_v):
                out.append(_el("line", {"x1": x(end), "x2": x(end), "y1": cy - 5, "y2": cy + 5,
                                        "stroke": PALETTE[0], "stroke-width": 1.5}))
        out.append(_el("circle", {"cx": x(value), "cy": cy, "r": 4, "fill": PALETTE[0], "class": "point"},
                       children=[_el("title", text=tip)]))
        out.append(_el("text", {"x": label_w + plot_w + 6, "y": cy + 4, "fill": "#333"}, _fmt(value)))
    return _svg(width, height, title, out)


def bar_chart(rows: Sequence[Mapping[str, Any]], *, title: str, width: int = 360, max_value: float | None = None,
              fmt: str = "{:.1%}") -> Markup:
    """Horizontal bars: ``{"label", "value"}`` per row (e.g. group shares)."""
    label_w = label_width(r.get("label") for r in rows)
    pad_r, row_h, top = 60, 18, 22
    height = top + row_h * max(len(rows), 1) + 6
    vals = [r.get("value") for r in rows if _finite(r.get("value"))]
    vmax = max_value if max_value is not None else (max(vals) if vals else 1.0)
    vmax = vmax or 1.0
    plot_w = width - label_w - pad_r
    out = [_el("text", {"x": 4, "y": 14, "font-weight": "600"}, title)]
    for i, row in enumerate(rows):
        y = top + row_h * i
        out.append(_label(label_w - 6, y + 12, row.get("label"), label_w - 10))
        v = row.get("value")
        if _finite(v):
            w = max(0.0, min(1.0, v / vmax)) * plot_w
            out.append(_el("rect", {"x": label_w, "y": y + 3, "width": w, "height": row_h - 6, "fill": PALETTE[5]},
                           children=[_el("title", text=f"{row.get('label')}: {fmt.format(v)}")]))
            out.append(_el("text", {"x": label_w + w + 4, "y": y + 12, "fill": "#333"}, fmt.format(v)))
    return _svg(width, height, title, out)


def trend_chart(
    runs: Sequence[Mapping[str, Any]],
    *,
    metric: str,
    title: str,
    series: Sequence[str],
    width: int = 300,
    height: int = 150,
) -> Markup:
    """A metric over runs (oldest left), one line per series (variant).

    ``runs``: ``{"run_id", "key_metrics": {series: {metric: value}}, "current": bool}``.
    """
    left, right, top, bottom = 40, 10, 22, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [((r.get("key_metrics") or {}).get(s) or {}).get(metric) for r in runs for s in series]
    lo, hi = _domain(values, None, None)
    pad = (hi - lo) * 0.1
    lo, hi = lo - pad, hi + pad
    n = len(runs)

    def x(i: int) -> float:
        return left + (plot_w / 2 if n <= 1 else plot_w * i / (n - 1))

    def y(v: float) -> float:
        return top + plot_h - (v - lo) / (hi - lo) * plot_h

    out = [_el("text", {"x": 4, "y": 14, "font-weight": "600"}, title)]
    out.append(_el("line", {"x1": left, "x2": left, "y1": top, "y2": top + plot_h, "stroke": "#888"}))
    out.append(_el("line", {"x1": left, "x2": left + plot_w, "y1": top + plot_h, "y2": top + plot_h, "stroke": "#888"}))
    for v in (lo + pad, hi - pad):
        out.append(_el("text", {"x": left - 4, "y": y(v) + 4, "text-anchor": "end", "fill": "#555"}, f"{v:.2f}"))
    for i, run in enumerate(runs):
        label = "this run" if run.get("current") else f"#{i + 1}"
        anchor = "end" if n > 1 and i == n - 1 else "start" if n > 1 and i == 0 else "middle"
        out.append(_el("text", {"x": x(i), "y": top + plot_h + 14, "text-anchor": anchor, "fill": "#555"}, label,
                       children=[_el("title", text=str(run.get("run_id")))]))
    for k, s in enumerate(series):
        colour = PALETTE[k % len(PALETTE)]
        pts = [(i, ((r.get("key_metrics") or {}).get(s) or {}).get(metric)) for i, r in enumerate(runs)]
        pts = [(i, v) for i, v in pts if _finite(v)]
        if len(pts) >= 2:
            d = " ".join(f"{'M' if j == 0 else 'L'}{x(i):.1f},{y(v):.1f}" for j, (i, v) in enumerate(pts))
            out.append(_el("path", {"d": d, "fill": "none", "stroke": colour, "stroke-width": 1.5, "class": "trend-line"}))
        for i, v in pts:
            out.append(_el("circle", {"cx": x(i), "cy": y(v), "r": 3, "fill": colour, "class": "trend-point"},
                           children=[_el("title", text=f"{s} {runs[i].get('run_id')}: {_fmt(v)}")]))
    return _svg(width, height, title, out)


def _label(x: float, y: float, label: Any, max_px: float) -> str:
    """A right-aligned row label ending at ``x``, shortened to fit ``max_px`` (so it never runs off the
    chart's left edge), with the full label as its tooltip when shortened."""
    full = "" if label is None else str(label)
    short = fit_text(full, max_px)
    return _el("text", {"x": x, "y": y, "text-anchor": "end", "class": "label", "data-full": full}, short,
               children=[_el("title", text=full)] if short != full else [])
