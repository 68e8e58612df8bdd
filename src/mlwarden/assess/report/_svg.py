"""Line charts as inline SVG: the report must open offline, so no plotting library or
script is fetched; a few polylines, axes and ticks are all three plots need."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 520, 340
_LEFT, _RIGHT, _TOP, _BOTTOM = 62, 150, 34, 48
PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    label: str
    xs: tuple[float, ...]
    ys: tuple[float, ...]
    color: str = PALETTE[0]
    dashed: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Axis:
    label: str
    low: float
    high: float
    log: bool = False


def line_chart(
    *,
    chart_id: str,
    title: str,
    x: Axis,
    y: Axis,
    series: Sequence[Series],
    diagonal: bool = False,
    marker: tuple[float, float] | None = None,
) -> str:
    """An SVG element: one polyline (with points) per series, a legend, log or linear axes.

    `diagonal` draws y = x (chance for a ROC curve); `marker` a threshold point."""
    plot_w = WIDTH - _LEFT - _RIGHT
    plot_h = HEIGHT - _TOP - _BOTTOM

    def px(value: float) -> float:
        return _LEFT + _fraction(value, x) * plot_w

    def py(value: float) -> float:
        return _TOP + (1.0 - _fraction(value, y)) * plot_h

    parts = [
        f'<svg id="{escape(chart_id)}" '
        f'width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<text x="{_LEFT}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" fill="#fff" '
        'stroke="#888"/>',
    ]
    for value in _ticks(x):
        tx = px(value)
        parts.append(
            f'<line x1="{tx:.1f}" y1="{_TOP}" x2="{tx:.1f}" y2="{_TOP + plot_h}" stroke="#eee"/>'
            f'<text x="{tx:.1f}" y="{_TOP + plot_h + 14}" font-size="10" '
            f'text-anchor="middle">{_fmt(value)}</text>'
        )
    for value in _ticks(y):
        ty = py(value)
        parts.append(
            f'<line x1="{_LEFT}" y1="{ty:.1f}" x2="{_LEFT + plot_w}" y2="{ty:.1f}" stroke="#eee"/>'
            f'<text x="{_LEFT - 5}" y="{ty + 3:.1f}" font-size="10" '
            f'text-anchor="end">{_fmt(value)}</text>'
        )
    parts.append(
        f'<text x="{_LEFT + plot_w / 2:.1f}" y="{HEIGHT - 10}" font-size="11" '
        f'text-anchor="middle">{escape(x.label)}</text>'
        f'<text x="14" y="{_TOP + plot_h / 2:.1f}" font-size="11" text-anchor="middle" '
        f'transform="rotate(-90 14 {_TOP + plot_h / 2:.1f})">{escape(y.label)}</text>'
    )
    if diagonal:
        low = max(x.low, y.low)
        high = min(x.high, y.high)
        steps = [low + (high - low) * i / 40 for i in range(41)]
        if x.log:
            steps = [low * (high / low) ** (i / 40) for i in range(41)]
        points = " ".join(f"{px(v):.1f},{py(v):.1f}" for v in steps)
        parts.append(
            f'<polyline points="{points}" fill="none" stroke="#999" stroke-dasharray="2 3"/>'
        )
    for index, item in enumerate(series):
        pairs = [
            (a, b) for a, b in zip(item.xs, item.ys, strict=True) if _shown(a, x) and _shown(b, y)
        ]
        dash = ' stroke-dasharray="6 4"' if item.dashed else ""
        if pairs:
            points = " ".join(f"{px(a):.1f},{py(b):.1f}" for a, b in pairs)
            parts.append(
                f'<polyline class="series" points="{points}" fill="none" '
                f'stroke="{item.color}" stroke-width="2"{dash}/>'
            )
            if len(pairs) <= 30:
                parts.extend(
                    f'<circle cx="{px(a):.1f}" cy="{py(b):.1f}" r="2.5" fill="{item.color}"/>'
                    for a, b in pairs
                )
        ly = _TOP + 12 + index * 16
        lx = _LEFT + plot_w + 10
        parts.append(
            f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 18}" y2="{ly - 4}" stroke="{item.color}" '
            f'stroke-width="2"{dash}/><text x="{lx + 22}" y="{ly}" font-size="10">'
            f"{escape(item.label[:24])}</text>"
        )
    if marker is not None and _shown(marker[0], x) and _shown(marker[1], y):
        mx, my = px(marker[0]), py(marker[1])
        parts.append(
            f'<path d="M{mx - 5:.1f},{my:.1f} L{mx:.1f},{my - 5:.1f} L{mx + 5:.1f},{my:.1f} '
            f'L{mx:.1f},{my + 5:.1f} Z" fill="none" stroke="#000"><title>threshold</title></path>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _fraction(value: float, axis: Axis) -> float:
    if axis.log:
        low, high = math.log10(axis.low), math.log10(axis.high)
        value = math.log10(max(value, axis.low))
    else:
        low, high = axis.low, axis.high
    span = high - low or 1.0
    return min(1.0, max(0.0, (value - low) / span))


def _shown(value: float, axis: Axis) -> bool:
    return math.isfinite(value) and (not axis.log or value > 0)


def _ticks(axis: Axis) -> list[float]:
    if axis.log:
        first = math.floor(math.log10(axis.low))
        last = math.ceil(math.log10(axis.high))
        return [10.0**e for e in range(first, last + 1) if axis.low <= 10.0**e <= axis.high]
    span = axis.high - axis.low
    if span <= 0:
        return [axis.low]
    raw = span / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.ceil(axis.low / step) * step
    ticks = []
    value = start
    while value <= axis.high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _fmt(value: float) -> str:
    if value != 0 and (abs(value) < 0.01 or abs(value) >= 10000):
        return f"{value:.0e}"
    return f"{value:g}"
