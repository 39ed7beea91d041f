"""Charts as inline SVG, drawn on the server: no script, no external library, no CDN.

Each function takes plain (label, value) pairs and returns markup safe to put in a
template; every label is escaped. Charts carry a <title> and the figures as text, so
they read without colour and in a screen reader.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup

Formatter = Callable[[float], str]


def _plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def _empty(title: str) -> Markup:
    return Markup('<p class="muted">{}: no data in this period.</p>').format(title)


def horizontal_bars(
    items: Sequence[tuple[str, float]], *, title: str, fmt: Formatter = _plain,
    width: int = 640, bar_height: int = 18, css_class: str = "bar",
) -> Markup:
    """One bar per item, longest value filling the width; labels left, values right."""
    rows = [(str(label), float(value or 0)) for label, value in items]
    if not rows:
        return _empty(title)
    label_width, value_width, gap = 150, 90, 6
    plot = width - label_width - value_width
    top = max((value for _, value in rows), default=0) or 1
    height = len(rows) * (bar_height + gap) + gap
    parts = [
        Markup('<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
               'xmlns="http://www.w3.org/2000/svg" aria-label="{t}"><title>{t}</title>').format(
            w=width, h=height, t=title),
        Markup('<line class="axis" x1="{x}" y1="0" x2="{x}" y2="{h}"/>').format(
            x=label_width, h=height),
    ]
    for index, (label, value) in enumerate(rows):
        y = gap + index * (bar_height + gap)
        length = max(1.0, plot * value / top) if value > 0 else 0
        shown = label if len(label) <= 22 else label[:21] + "…"
        parts.append(Markup(
            '<g><title>{full}: {v}</title>'
            '<text x="{lx}" y="{ty}" text-anchor="end">{label}</text>'
            '<rect class="{cls}" x="{x}" y="{y}" width="{len:.1f}" height="{bh}"/>'
            '<text x="{vx:.1f}" y="{ty}">{v}</text></g>').format(
            full=label, label=shown, v=fmt(value), lx=label_width - 6, ty=y + bar_height - 5,
            cls=css_class, x=label_width, y=y, len=length, bh=bar_height,
            vx=label_width + length + 6))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def columns(
    items: Sequence[tuple[str, float]], *, title: str, fmt: Formatter = _plain,
    width: int = 640, height: int = 220,
) -> Markup:
    """A column per item (a histogram when the labels are buckets), value above each."""
    rows = [(str(label), float(value or 0)) for label, value in items]
    if not rows or not any(value for _, value in rows):
        return _empty(title)
    bottom, top_pad, left = 34, 18, 10
    plot_h = height - bottom - top_pad
    slot = (width - 2 * left) / len(rows)
    bar_w = max(4.0, slot * 0.7)
    top = max(value for _, value in rows) or 1
    parts = [
        Markup('<svg class="chart" role="img" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
               'xmlns="http://www.w3.org/2000/svg" aria-label="{t}"><title>{t}</title>').format(
            w=width, h=height, t=title),
        Markup('<line class="axis" x1="{l}" y1="{y}" x2="{r}" y2="{y}"/>').format(
            l=left, r=width - left, y=height - bottom),
    ]
    for index, (label, value) in enumerate(rows):
        bar_h = plot_h * value / top
        x = left + index * slot + (slot - bar_w) / 2
        y = height - bottom - bar_h
        parts.append(Markup(
            '<g><title>{label}: {v}</title>'
            '<rect class="bar" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" height="{bh:.1f}"/>'
            '<text x="{cx:.1f}" y="{vy:.1f}" text-anchor="middle">{v}</text>'
            '<text x="{cx:.1f}" y="{ly:.1f}" text-anchor="middle">{label}</text></g>').format(
            label=label, v=fmt(value), x=x, y=y, bw=bar_w, bh=bar_h, cx=x + bar_w / 2,
            vy=y - 4, ly=height - bottom + 16))
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


