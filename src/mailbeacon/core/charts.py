"""Charts as server-rendered SVG, and their data as CSV (B6). Pure: strings in, strings out.

Why SVG from the server rather than a chart library in the browser: the page
stays within the strict Content-Security-Policy (no inline script, no CDN), the
chart is there before any script runs, and a screen reader gets a titled,
described image (`role="img"`, `<title>`, `<desc>`) followed by the same
numbers as a table. Colours come from CSS classes (`series-0`, `series-1`, ...)
so the stylesheet, not this module, decides how the chart looks.

Every text that reaches the SVG is escaped here; callers pass plain strings.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from html import escape

# The drawing area, in viewBox units; the SVG scales to its container.
WIDTH = 960
NARROW = 440  # the phone version: fewer labels, text that stays legible when scaled down
HEIGHT = 300
LEFT = 64  # room for the y-axis tick labels and its title
RIGHT = 16
TOP = 34  # room for the legend above the plot
BOTTOM = 56  # room for the x-axis tick labels and its title
MAX_X_LABELS = 8
# Cells a spreadsheet would read as a formula (CSV injection), and the prefix that
# keeps them text. Tab and carriage return start formulas in some spreadsheets too.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class ChartText:
    """What a chart says about itself: for people who see it and for screen readers."""

    dom_id: str  # unique on the page; ids of <title> and <desc> derive from it
    title: str
    description: str
    x_label: str
    y_label: str
    width: int = WIDTH

    @property
    def narrow(self) -> bool:
        return self.width < 700


@dataclass(frozen=True, slots=True)
class Series:
    """One named row of values; None is a gap (nothing to measure there)."""

    name: str
    values: tuple[float | None, ...]


def nice_step(value: float, *, whole: bool = False) -> float:
    """The smallest 1, 2, 2.5 or 5 times a power of ten at or above `value` (axis steps);
    with `whole`, the smallest whole one."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    steps = [m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0)]
    if whole:
        steps = [step for step in steps if step >= 1 and step == int(step)] or [1.0]
    return next((step for step in steps if value <= step * (1 + 1e-9)), steps[-1])


def scale(top: float, *, whole: bool = True, most: int = 5) -> list[float]:
    """Axis values from 0 up to at least `top`, in at most `most` round steps.

    `whole` keeps steps whole numbers, for counts: three emails never read "1.25".
    """
    step = nice_step(top / most, whole=whole) if top > 0 else 1.0
    count = max(1, math.ceil(top / step - 1e-9))
    return [step * index for index in range(count + 1)]


def label_every(count: int, most: int = MAX_X_LABELS) -> int:
    """Show every n-th category label so that at most `most` are drawn."""
    return max(1, math.ceil(count / most))


def _number(value: float) -> str:
    """A tick value without a pointless '.0'."""
    return f"{value:g}" if value != int(value) else str(int(value))


def _svg_open(text: ChartText, kind: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-{kind}" '
        f'viewBox="0 0 {text.width} {HEIGHT}" role="img" id="{escape(text.dom_id)}" '
        f'aria-labelledby="{escape(text.dom_id)}-title {escape(text.dom_id)}-desc">',
        f'<title id="{escape(text.dom_id)}-title">{escape(text.title)}</title>',
        f'<desc id="{escape(text.dom_id)}-desc">{escape(text.description)}</desc>',
    ]


def _axes(
    text: ChartText, labels: Sequence[str], values: Sequence[float], unit: str, slot: float
) -> list[str]:
    """Grid lines with y ticks, category labels under the x axis, both axis titles."""
    bottom = HEIGHT - BOTTOM
    plot_height = bottom - TOP
    maximum = values[-1]
    parts = ['<g class="axis y-axis" aria-hidden="true">']
    for value in values:
        y = bottom - plot_height * (value / maximum)
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{text.width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
            f"{escape(_number(value) + unit)}</text>"
        )
    parts.append(
        f'<text class="axis-title" transform="translate(14 {TOP + plot_height / 2:.1f}) '
        f'rotate(-90)" text-anchor="middle">{escape(text.y_label)}</text></g>'
    )
    parts.append('<g class="axis x-axis" aria-hidden="true">')
    parts.append(
        f'<line class="baseline" x1="{LEFT}" x2="{text.width - RIGHT}" '
        f'y1="{bottom}" y2="{bottom}"/>'
    )
    every = label_every(len(labels), 4 if text.narrow else MAX_X_LABELS)
    for index, label in enumerate(labels):
        if index % every:
            continue
        x = LEFT + slot * (index + 0.5)
        parts.append(
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<text class="axis-title" x="{LEFT + (text.width - LEFT - RIGHT) / 2:.1f}" '
        f'y="{HEIGHT - 8}" text-anchor="middle">{escape(text.x_label)}</text></g>'
    )
    return parts


def _legend(series: Sequence[Series], width: int) -> list[str]:
    """Series names top right, each beside its colour (only with more than one series)."""
    if len(series) < 2:
        return []
    parts = ['<g class="legend" aria-hidden="true">']
    x = width - RIGHT
    for index, one in reversed(list(enumerate(series))):
        width = 16 + 8 * len(one.name)
        x -= width + 12
        parts.append(
            f'<rect class="series-{index}" x="{x}" y="2" width="10" height="10" rx="2"/>'
            f'<text x="{x + 14}" y="11">{escape(one.name)}</text>'
        )
    parts.append("</g>")
    return parts


def bar_chart(
    labels: Sequence[str], series: Sequence[Series], text: ChartText, *, unit: str = ""
) -> str:
    """Vertical bars, one group per label and one bar per series, each bar titled with its value."""
    top_value = max((v for s in series for v in s.values if v is not None), default=0.0)
    axis = scale(top_value)
    maximum = axis[-1]
    slot = (text.width - LEFT - RIGHT) / max(1, len(labels))
    bar = max(1.0, min(slot * 0.8 / max(1, len(series)), 48.0))
    bottom = HEIGHT - BOTTOM
    plot_height = bottom - TOP
    parts = (
        _svg_open(text, "bar") + _axes(text, labels, axis, unit, slot) + _legend(series, text.width)
    )
    parts.append('<g class="marks">')
    for index, label in enumerate(labels):
        start = LEFT + slot * (index + 0.5) - bar * len(series) / 2
        for number, one in enumerate(series):
            value = one.values[index] if index < len(one.values) else None
            if not value:
                continue
            height = plot_height * value / maximum
            name = f"{label}, {one.name}: " if len(series) > 1 else f"{label}: "
            parts.append(
                f'<rect class="series-{number}" x="{start + bar * number:.1f}" '
                f'y="{bottom - height:.1f}" width="{bar:.1f}" height="{height:.1f}">'
                f"<title>{escape(name + _number(value) + unit)}</title></rect>"
            )
    parts.append("</g></svg>")
    return "".join(parts)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    text: ChartText,
    *,
    unit: str = "",
    maximum: float | None = None,
) -> str:
    """Lines with a titled dot per value; a gap (None) breaks the line rather than faking a 0."""
    top_value = max((v for s in series for v in s.values if v is not None), default=0.0)
    axis = scale(maximum if maximum is not None else top_value, whole=False, most=4)
    ceiling = axis[-1]
    slot = (text.width - LEFT - RIGHT) / max(1, len(labels))
    bottom = HEIGHT - BOTTOM
    plot_height = bottom - TOP
    parts = (
        _svg_open(text, "line")
        + _axes(text, labels, axis, unit, slot)
        + _legend(series, text.width)
    )
    parts.append('<g class="marks">')
    for number, one in enumerate(series):
        runs: list[list[tuple[float, float]]] = [[]]
        dots: list[str] = []
        for index, value in enumerate(one.values):
            if value is None:
                runs.append([])
                continue
            x = LEFT + slot * (index + 0.5)
            y = bottom - plot_height * min(value, ceiling) / ceiling
            runs[-1].append((x, y))
            label = labels[index] if index < len(labels) else ""
            dots.append(
                f'<circle class="series-{number}" cx="{x:.1f}" cy="{y:.1f}" r="3">'
                f"<title>{escape(f'{label}, {one.name}: {_number(value)}{unit}')}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(f'<polyline class="line series-{number}" points="{points}"/>')
        parts.extend(dots)
    parts.append("</g></svg>")
    return "".join(parts)


def median(counts: Iterable[tuple[float, int]]) -> float | None:
    """The median of values given as (value, how many times); None when there are none."""
    ordered = sorted((value, n) for value, n in counts if n > 0)
    total = sum(n for _, n in ordered)
    if not total:
        return None
    wanted = [(total - 1) // 2, total // 2]  # the middle one, or the middle two
    found: list[float] = []
    seen = 0
    for value, n in ordered:
        while wanted and wanted[0] < seen + n:
            found.append(value)
            wanted.pop(0)
        seen += n
    return sum(found) / len(found)


def csv_cell(value: object) -> str:
    """A CSV cell a spreadsheet shows as text: never a formula (CSV injection)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int | float):
        return _number(float(value)) if isinstance(value, float) else str(value)
    cell = str(value)
    return "'" + cell if cell.startswith(FORMULA_STARTS) else cell


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """RFC 4180 CSV (quoted where needed, CRLF line ends), every cell made safe."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_cell(name) for name in header])
    for row in rows:
        writer.writerow([csv_cell(value) for value in row])
    return buffer.getvalue()


def hbar_chart(labels: Sequence[str], values: Sequence[float], text: ChartText) -> str:
    """Horizontal bars, one per label (long labels, like URLs), largest first as given."""
    row = 26
    label_width = 170 if text.narrow else 330
    longest = 20 if text.narrow else 40
    height = TOP + row * max(1, len(labels)) + 40
    maximum = scale(max(values, default=0.0))[-1]
    plot = text.width - label_width - RIGHT - 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart chart-hbar" '
        f'viewBox="0 0 {text.width} {height}" role="img" id="{escape(text.dom_id)}" '
        f'aria-labelledby="{escape(text.dom_id)}-title {escape(text.dom_id)}-desc">',
        f'<title id="{escape(text.dom_id)}-title">{escape(text.title)}</title>',
        f'<desc id="{escape(text.dom_id)}-desc">{escape(text.description)}</desc>',
        '<g class="marks">',
    ]
    for index, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = TOP + row * index
        shown = label if len(label) <= longest else label[: longest - 1] + "…"
        width = plot * value / maximum
        parts.append(
            f'<text class="bar-label" x="{label_width - 8}" y="{y + 16}" text-anchor="end" '
            f'aria-hidden="true">{escape(shown)}</text>'
            f'<rect class="series-0" x="{label_width}" y="{y + 4}" width="{max(width, 1):.1f}" '
            f'height="{row - 8}"><title>{escape(f"{label}: {_number(value)}")}</title></rect>'
            f'<text class="bar-value" x="{label_width + width + 6:.1f}" y="{y + 16}" '
            f'aria-hidden="true">{escape(_number(value))}</text>'
        )
    parts.append(
        f'</g><text class="axis-title" x="{label_width + plot / 2:.1f}" y="{height - 10}" '
        f'text-anchor="middle" aria-hidden="true">{escape(text.x_label)}</text></svg>'
    )
    return "".join(parts)
