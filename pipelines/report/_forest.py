"""Forest plots of the gates: the report's picture of the verdict.

One plot per configured gate. Each row is a judged unit (a group, or a feature's gap);
each variant gets a panel, side by side, sharing the rows and the axis. A unit is its
estimate with its interval, marked by its result (pass: filled circle, fail: filled
square, undecided: hollow diamond, not evaluable: "n/a"), so colour is never the only
cue. The gate's bound is a dashed line, and the side of it the gate forbids is shaded.

The SVG is static and accessible: ``role="img"`` with a ``<title>`` and a ``<desc>``
that lists every unit in words, a ``<title>`` tooltip per unit, and ``data-*``
attributes (variant, group, result, value, interval, and the x positions drawn) that
tests and other tools can read without parsing geometry.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from markupsafe import Markup, escape

from pipelines.fairness import FAIL, INSUFFICIENT, NOT_EVALUABLE, PASS
from pipelines.report._svg import _FONT, _attrs, _el, _finite, fit_text, label_width
from pipelines.report._verdict import STATUS_WORDS, bound_text

__all__ = ["forest_plot", "STATUS_COLOURS", "nice_ticks"]

STATUS_COLOURS = {PASS: "#1b7f3b", FAIL: "#b3261e", INSUFFICIENT: "#8a6d00", NOT_EVALUABLE: "#777777"}
_FORBIDDEN = "#fbe3e0"
PANEL_W, ROW_H, TOP, GAP, INNER = 210, 20, 22, 14, 10


def nice_ticks(lo: float, hi: float, most: int = 5) -> list[float]:
    """Round tick values inside [lo, hi]: steps of 1, 2, 2.5 or 5 times a power of ten, at most ``most``.

    >>> nice_ticks(0.0, 1.0), nice_ticks(0.13, 0.71)
    ([0.0, 0.25, 0.5, 0.75, 1.0], [0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    """
    span = hi - lo
    if not span > 0:
        return [lo]
    ticks: list[float] = []
    for exponent in range(int(math.floor(math.log10(span))) - 1, int(math.floor(math.log10(span))) + 2):
        for mult in (1, 2, 2.5, 5):
            step = mult * 10.0 ** exponent
            first = math.ceil(lo / step - 1e-9)
            ticks = [round((first + k) * step, 10) for k in range(int((hi - first * step) / step + 1e-9) + 1)]
            if len(ticks) <= most + 1:
                return ticks
    return ticks


def _domain(results: Sequence[Mapping[str, Any]], bound: float,
            limits: tuple[float, float] | None) -> tuple[float, float]:
    values = [bound] + [r[k] for r in results for k in ("value", "ci_low", "ci_high") if _finite(r.get(k))]
    lo, hi = min(values), max(values)
    pad = max(hi - lo, 0.05) * 0.08
    lo, hi = lo - pad, hi + pad
    if limits is not None:
        lo = max(lo, limits[0]) if math.isfinite(limits[0]) else lo
        hi = min(hi, limits[1]) if math.isfinite(limits[1]) else hi
    return (lo, hi) if hi > lo else (lo - 0.5, hi + 0.5)


def _exact(v: Any) -> str | None:
    """A number for a ``data-*`` attribute, at full precision (``_attrs`` rounds floats for drawing)."""
    return repr(float(v)) if _finite(v) else None


def _unit_label(r: Mapping[str, Any]) -> str:
    if r.get("group") is not None:
        return str(r["group"])
    return f"{r['feature']} (gap)" if r.get("feature") else "overall"


def _interval(r: Mapping[str, Any]) -> str:
    if not _finite(r.get("value")):
        return "no estimate"
    out = f"{r['value']:.3f}"
    if _finite(r.get("ci_low")) and _finite(r.get("ci_high")):
        out += f" [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
    return out


def _marker(result: str, cx: float, cy: float, colour: str) -> str:
    if result == FAIL:
        return _el("rect", {"x": cx - 4.5, "y": cy - 4.5, "width": 9, "height": 9, "fill": colour, "class": "point"})
    if result == INSUFFICIENT:
        d = f"M{cx:.1f},{cy - 5.5:.1f} L{cx + 5.5:.1f},{cy:.1f} L{cx:.1f},{cy + 5.5:.1f} L{cx - 5.5:.1f},{cy:.1f} Z"
        return _el("path", {"d": d, "fill": "#fff", "stroke": colour, "stroke-width": 2, "class": "point"})
    return _el("circle", {"cx": cx, "cy": cy, "r": 4.5, "fill": colour, "class": "point"})


def forest_plot(gate: Mapping[str, Any], results: Sequence[Mapping[str, Any]], *, variants: Sequence[str],
                plot_id: str, level: float | None = None,
                limits: tuple[float, float] | None = (0.0, 1.0)) -> Markup:
    """The forest plot of one gate (a :func:`~pipelines.report._verdict.gate_summaries` entry) and its
    results (the summary's ``verdict.gates`` rows with this gate's ``gate_index``).

    ``limits`` are the values the metric can take (the axis never extends past them);
    ``plot_id`` makes the ``<title>``/``<desc>`` ids unique on the page.
    """
    bound, direction = float(gate["bound"]), gate["direction"]
    units: list[str] = []
    for r in results:
        if _unit_label(r) not in units:
            units.append(_unit_label(r))
    cells = {(r["variant"], _unit_label(r)): r for r in results}
    lo, hi = _domain(results, bound, limits)
    label_w = label_width(units, cap=150)
    height = TOP + ROW_H * max(len(units), 1) + 26
    width = label_w + len(variants) * PANEL_W + (len(variants) - 1) * GAP + 6
    axis_y = TOP + ROW_H * max(len(units), 1) + 4
    ticks = nice_ticks(lo, hi)
    out: list[str] = []
    for i, unit in enumerate(units):
        out.append(_el("text", {"x": label_w - 6, "y": TOP + ROW_H * i + ROW_H / 2 + 4, "text-anchor": "end",
                                "class": "label", "data-full": unit}, fit_text(unit, label_w - 10),
                       children=[_el("title", text=unit)] if fit_text(unit, label_w - 10) != unit else []))
    words = []
    for k, variant in enumerate(variants):
        x0 = label_w + k * (PANEL_W + GAP)

        def x(v: float, x0: float = x0) -> float:
            return x0 + INNER + (min(max(v, lo), hi) - lo) / (hi - lo) * (PANEL_W - 2 * INNER)

        bx = x(bound)
        forbid = (bx, x0 + PANEL_W) if direction == "max" else (x0, bx)
        out.append(_el("rect", {"x": x0, "y": TOP - 2, "width": PANEL_W, "height": axis_y - TOP + 2,
                                "fill": "#f7f7f7"}))
        out.append(_el("rect", {"x": forbid[0], "y": TOP - 2, "width": max(forbid[1] - forbid[0], 0),
                                "height": axis_y - TOP + 2, "fill": _FORBIDDEN, "class": "forbidden"}))
        out.append(_el("text", {"x": x0 + PANEL_W / 2, "y": 13, "text-anchor": "middle", "font-weight": "600",
                                "class": "panel-title", "data-variant": variant},
                       fit_text(variant, PANEL_W - 8), children=[_el("title", text=variant)]))
        for t in ticks:
            out.append(_el("line", {"x1": x(t), "x2": x(t), "y1": TOP - 2, "y2": axis_y, "stroke": "#e4e4e4"}))
            out.append(_el("text", {"x": x(t), "y": axis_y + 13, "text-anchor": "middle", "fill": "#555"},
                           f"{t:g}"))
        out.append(_el("line", {"x1": x0, "x2": x0 + PANEL_W, "y1": axis_y, "y2": axis_y, "stroke": "#999"}))
        out.append(_el("line", {"x1": bx, "x2": bx, "y1": TOP - 2, "y2": axis_y, "stroke": STATUS_COLOURS[FAIL],
                                "stroke-width": 1.5, "stroke-dasharray": "5 3", "class": "bound",
                                "data-bound": _exact(bound), "data-x": f"{bx:.2f}", "data-variant": variant},
                       children=[_el("title", text=f"bound: {bound_text(direction, bound)}")]))
        for i, unit in enumerate(units):
            r = cells.get((variant, unit))
            if r is None:
                continue
            cy = TOP + ROW_H * i + ROW_H / 2
            result = r["result"]
            colour = STATUS_COLOURS.get(result, "#777777")
            tip = f"{variant} · {unit}: {_interval(r)}: {STATUS_WORDS.get(result, result)}"
            if r.get("reason"):
                tip += f" ({r['reason']})"
            words.append(f"{variant} {unit}: {_interval(r)}, {STATUS_WORDS.get(result, result)}")
            attrs: dict[str, Any] = {"class": f"unit result-{result}", "data-variant": variant, "data-group": unit,
                                     "data-result": result, "data-value": _exact(r.get("value")),
                                     "data-ci-low": _exact(r.get("ci_low")), "data-ci-high": _exact(r.get("ci_high")),
                                     "data-near-bound": "true" if r.get("near_bound") else None}
            parts = [_el("title", text=tip)]
            if not _finite(r.get("value")):
                parts.append(_el("text", {"x": x0 + INNER, "y": cy + 4, "fill": STATUS_COLOURS[NOT_EVALUABLE],
                                          "font-style": "italic"}, "n/a"))
            else:
                if _finite(r.get("ci_low")) and _finite(r.get("ci_high")):
                    x1, x2 = x(r["ci_low"]), x(r["ci_high"])
                    attrs.update({"data-x1": f"{x1:.2f}", "data-x2": f"{x2:.2f}"})
                    parts.append(_el("line", {"x1": x1, "x2": x2, "y1": cy, "y2": cy, "stroke": colour,
                                              "stroke-width": 2, "class": "ci"}))
                attrs["data-x"] = f"{x(r['value']):.2f}"
                parts.append(_marker(result, x(r["value"]), cy, colour))
            out.append(f"<g {_attrs(attrs)}>{''.join(parts)}</g>")
    pct = f"{level * 100:g}% intervals" if _finite(level) else "intervals"
    title = f"{gate['label']}: bound {bound_text(direction, bound)}; estimates with {pct}, one panel per variant"
    desc = "; ".join(words) + "." if words else "No result."
    head = (_el("title", {"id": f"{plot_id}-t"}, title) + _el("desc", {"id": f"{plot_id}-d"}, desc))
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart forest" id="{escape(plot_id)}" '
        f'width="{width:.0f}" height="{height:.0f}" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'aria-labelledby="{escape(plot_id)}-t {escape(plot_id)}-d" data-gate-index="{int(gate["index"])}" '
        f'data-bound="{bound:g}" data-direction="{escape(direction)}" data-domain="{lo:.4g} {hi:.4g}" '
        f'style="{_FONT}">{head}{"".join(out)}</svg>'
    )
