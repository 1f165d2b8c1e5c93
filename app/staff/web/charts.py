"""Line charts as inline SVG, drawn on the server: no script (the console's CSP allows none inline) and no
chart library from a CDN. Each chart is an image to assistive technology (role="img", a <title> and a
<desc> that says the latest values); the page puts a table of the same figures beside it. Series differ
by dash pattern as well as colour, so the chart reads in greyscale and to people who do not tell the
colours apart; each colour has at least 3:1 contrast with the white background (WCAG 1.4.11)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import math

from markupsafe import Markup

WIDTH, HEIGHT = 700, 300
LEFT, RIGHT, TOP, BOTTOM = 78, 24, 40, 44

# Per series: stroke colour and dash pattern (empty: solid).
STYLES = {
    "received": ("#0b3d91", ""),
    "verified": ("#00703c", "10 5"),
    "in_review": ("#a34f00", "3 4"),
    "drafted": ("#6f2c91", "14 4 3 4"),
    "paid": ("#1a1a1a", ""),
    "returned": ("#c00000", "6 3"),
}


@dataclasses.dataclass(frozen=True)
class Line:
    key: str
    label: str
    values: list[int]


def nice_step(top: int, ticks: int = 4) -> int:
    """A round step (1, 2 or 5 times a power of ten) that divides 0..top into at most `ticks` parts."""
    raw = max(top, 1) / ticks
    power = 10 ** math.floor(math.log10(raw))
    for m in (1, 2, 5, 10):
        if m * power >= raw:
            return max(1, int(m * power))
    return int(10 * power)  # pragma: no cover  (the loop always returns)


def short_number(value: int) -> str:
    """An axis label as Japanese reads large numbers: 1.5億, 3,500万, 8,000 (the unit is the axis's)."""
    if value >= 100_000_000:
        return f"{value / 100_000_000:,.4g}億"
    if value >= 10_000:
        return f"{value / 10_000:,.4g}万"
    return f"{value:,}"


def legend_swatch(key: str) -> Markup:
    """A short line in the series' colour and dash, for the HTML legend next to the chart."""
    colour, dash = STYLES[key]
    return Markup(
        '<svg class="swatch" width="36" height="12" viewBox="0 0 36 12" aria-hidden="true" focusable="false">'
        '<line x1="0" y1="6" x2="36" y2="6" stroke="{}" stroke-width="3" stroke-dasharray="{}"/></svg>'
    ).format(colour, dash or "none")


def line_chart(chart_id: str, title: str, desc: str, days: list[dt.date], lines: list[Line], unit: str) -> Markup:
    """An SVG line chart of `lines` over `days` (one value per day each); `unit` is 件 or 円."""
    top = max([v for line in lines for v in line.values] + [1])
    step = nice_step(top)
    y_max = step * math.ceil(top / step)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(i: int) -> float:
        return LEFT + (plot_w / 2 if len(days) == 1 else plot_w * i / (len(days) - 1))

    def y(v: int) -> float:
        return TOP + plot_h * (1 - v / y_max)

    parts = [
        Markup(
            '<svg class="chart" id="{0}" viewBox="0 0 {1} {2}" role="img" aria-labelledby="{0}-title {0}-desc"'
            ' xmlns="http://www.w3.org/2000/svg"><title id="{0}-title">{3}</title><desc id="{0}-desc">{4}</desc>'
        ).format(chart_id, WIDTH, HEIGHT, title, desc)
    ]
    for tick in range(0, y_max + 1, step):
        ty = y(tick)
        parts.append(
            Markup(
                '<line x1="{0}" x2="{1}" y1="{2:.1f}" y2="{2:.1f}" stroke="#d0d0d0" stroke-width="1"/>'
                '<text x="{3}" y="{4:.1f}" text-anchor="end" font-size="13" fill="#333">{5}</text>'
            ).format(LEFT, WIDTH - RIGHT, ty, LEFT - 6, ty + 4, short_number(tick))
        )
    parts.append(
        Markup('<text x="{0}" y="24" text-anchor="end" font-size="13" fill="#333">（{1}）</text>').format(
            LEFT - 6, unit
        )
    )
    ticks = _x_ticks(len(days))
    for i in ticks:
        # The last label ends at its tick, so it stays inside the picture.
        anchor = "end" if i == ticks[-1] and len(days) > 1 else "middle"
        parts.append(
            Markup(
                '<line x1="{0:.1f}" x2="{0:.1f}" y1="{1}" y2="{2}" stroke="#555" stroke-width="1"/>'
                '<text x="{0:.1f}" y="{3}" text-anchor="{5}" font-size="13" fill="#333">{4}</text>'
            ).format(x(i), TOP + plot_h, TOP + plot_h + 5, HEIGHT - 12, f"{days[i].month}/{days[i].day}", anchor)
        )
    parts.append(
        Markup('<line x1="{0}" x2="{1}" y1="{2}" y2="{2}" stroke="#555" stroke-width="1"/>').format(
            LEFT, WIDTH - RIGHT, TOP + plot_h
        )
    )
    for line in lines:
        colour, dash = STYLES[line.key]
        points = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(line.values))
        parts.append(
            Markup(
                '<polyline class="series series-{0}" points="{1}" fill="none" stroke="{2}" stroke-width="2.5"'
                ' stroke-dasharray="{3}" stroke-linejoin="round"/>'
            ).format(line.key, points, colour, dash or "none")
        )
        if len(line.values) == 1:  # one day: a line of one point is invisible
            parts.append(
                Markup('<circle cx="{0:.1f}" cy="{1:.1f}" r="4" fill="{2}"/>').format(x(0), y(line.values[0]), colour)
            )
    parts.append(Markup("</svg>"))
    return Markup("").join(parts)


def _x_ticks(n: int, most: int = 7) -> list[int]:
    """Indices of the days labelled on the x axis: the first, the last and evenly spaced ones between."""
    if n <= most:
        return list(range(n))
    every = math.ceil((n - 1) / (most - 1))
    ticks = list(range(0, n - 1, every))
    if n - 1 - ticks[-1] < every / 2:
        ticks.pop()
    return [*ticks, n - 1]
