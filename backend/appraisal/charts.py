"""Server-side SVG charts for the reports page: grouped bars, lines, a funnel and horizontal
bars. Plain Python, no JavaScript: each function returns safe markup with a ``viewBox`` (so it
scales to any width, 360 px phones included), a ``<title>`` and ``role="img"`` with a label;
the page always shows the same numbers in a table next to the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH = 640
PALETTE = ("#1f6feb", "#12b76a", "#f04438", "#f79009", "#7a5af8", "#667085")


@dataclass(frozen=True, slots=True)
class Series:
    """One named line or set of bars."""

    name: str
    values: Sequence[float]
    color: str = PALETTE[0]


def nice_max(value: float) -> float:
    """The smallest 1/2/5 × 10^n at or above ``value`` (an axis top); 1 for nothing."""
    if value <= 0:
        return 1.0
    scale = 1.0
    while scale * 10 <= value:
        scale *= 10
    while scale > value:
        scale /= 10
    for step in (1, 2, 5, 10):
        if step * scale >= value:
            return step * scale
    return 10 * scale


def short_number(value: float) -> str:
    """1234 → "1.2k", 2500000 → "2.5M" for axis labels."""
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}".rstrip("0").rstrip(".") + suffix
    return f"{value:g}"


def _svg(height: int, label: str, body: list[str]) -> Markup:
    title = escape(label)
    # Every piece of text in ``body`` went through ``escape``; the rest is our own markup.
    return Markup(  # noqa: S704
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" aria-label="{title}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{title}</title>{''.join(body)}</svg>"
    )


def _legend(series: Sequence[Series], y: int) -> list[str]:
    out, x = [], 48
    for s in series:
        out.append(f'<rect x="{x}" y="{y - 9}" width="10" height="10" fill="{s.color}"/>')
        out.append(f'<text x="{x + 14}" y="{y}" class="legend">{escape(s.name)}</text>')
        x += 24 + 8 * len(s.name)
    return out


def _axis(top: float, plot_top: int, plot_bottom: int) -> list[str]:
    out = []
    for i in range(5):
        value = top * i / 4
        y = plot_bottom - (plot_bottom - plot_top) * i / 4
        out.append(f'<line x1="44" x2="{WIDTH - 8}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        out.append(
            f'<text x="40" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{short_number(value)}</text>"
        )
    return out


def _x_labels(labels: Sequence[str], x_of: list[float], y: int) -> list[str]:
    every = max(1, len(labels) // 8)
    return [
        f'<text x="{x:.1f}" y="{y}" text-anchor="middle" class="tick">{escape(label)}</text>'
        for i, (label, x) in enumerate(zip(labels, x_of, strict=True))
        if i % every == 0
    ]


def bar_chart(label: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """Grouped vertical bars, one group per label."""
    height, plot_top, plot_bottom = 240, 28, 200
    top = nice_max(max((v for s in series for v in s.values), default=0))
    body = _legend(series, 14) + _axis(top, plot_top, plot_bottom)
    n = max(len(labels), 1)
    group = (WIDTH - 56) / n
    bar = max(group * 0.8 / max(len(series), 1), 1)
    centres = []
    for i in range(len(labels)):
        x0 = 48 + group * i + group * 0.1
        centres.append(48 + group * (i + 0.5))
        for j, s in enumerate(series):
            value = s.values[i]
            h = (plot_bottom - plot_top) * value / top
            body.append(
                f'<rect x="{x0 + bar * j:.1f}" y="{plot_bottom - h:.1f}" width="{bar:.1f}" '
                f'height="{h:.1f}" fill="{s.color}"><title>{escape(labels[i])}: '
                f"{escape(s.name)} {value:g}</title></rect>"
            )
    body += _x_labels(labels, centres, plot_bottom + 18)
    return _svg(height, label, body)


def line_chart(label: str, labels: Sequence[str], series: Sequence[Series]) -> Markup:
    """One polyline per series over the labels, with a dot per point."""
    height, plot_top, plot_bottom = 240, 28, 200
    top = nice_max(max((v for s in series for v in s.values), default=0))
    body = _legend(series, 14) + _axis(top, plot_top, plot_bottom)
    n = len(labels)
    step = (WIDTH - 64) / max(n - 1, 1)
    xs = [52 + step * i for i in range(n)]
    for s in series:
        points = [
            (x, plot_bottom - (plot_bottom - plot_top) * v / top)
            for x, v in zip(xs, s.values, strict=True)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{s.color}" stroke-width="2"/>')
        for (x, y), v, name in zip(points, s.values, labels, strict=True):
            body.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{s.color}"><title>'
                f"{escape(name)}: {escape(s.name)} {v:g}</title></circle>"
            )
    body += _x_labels(labels, xs, plot_bottom + 18)
    return _svg(height, label, body)


def funnel_chart(label: str, stages: Sequence[tuple[str, float]]) -> Markup:
    """Centred bars whose width is the stage's share of the first stage."""
    row = 34
    height = max(row * len(stages) + 8, 40)
    first = max((v for _, v in stages), default=0) or 1
    body = []
    for i, (name, value) in enumerate(stages):
        width = max((WIDTH - 16) * value / first, 2)
        x = (WIDTH - width) / 2
        y = 4 + row * i
        color = PALETTE[i % len(PALETTE)]
        body.append(
            f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{row - 6}" rx="3" '
            f'fill="{color}" opacity="0.85"><title>{escape(name)}: {value:g}</title></rect>'
        )
        body.append(
            f'<text x="{WIDTH / 2}" y="{y + row / 2 + 1:.0f}" text-anchor="middle" '
            f'class="on-bar">{escape(name)} · {value:g}</text>'
        )
    return _svg(height, label, body)


def hbar_chart(label: str, items: Sequence[tuple[str, float]], color: str = PALETTE[0]) -> Markup:
    """Horizontal bars, one per item (label on the left, value at the bar's end)."""
    row = 26
    height = max(row * len(items) + 8, 40)
    top = max((v for _, v in items), default=0) or 1
    left = 150
    body = []
    for i, (name, value) in enumerate(items):
        y = 4 + row * i
        width = max((WIDTH - left - 70) * value / top, 1)
        short = name if len(name) <= 22 else name[:21] + "…"
        body.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" class="tick">{escape(short)}'
            "</text>"
        )
        body.append(
            f'<rect x="{left}" y="{y + 3}" width="{width:.1f}" height="{row - 8}" fill="{color}">'
            f"<title>{escape(name)}: {value:g}</title></rect>"
        )
        body.append(
            f'<text x="{left + width + 4:.1f}" y="{y + 15}" class="tick">'
            f"{short_number(value)}</text>"
        )
    return _svg(height, label, body)
