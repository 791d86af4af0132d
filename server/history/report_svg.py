"""Inline SVG plots for the HTML report: no library, no script, no external file.

Three shapes, each a complete ``<svg>`` element to put in an HTML page (`ident`:
the prefix of its element ids, unique in the page): :func:`rate_bars`
(a rate per category as vertical bars, with an optional second rate as a line:
acceptance and characters kept per day), :func:`histogram` (counts in equal bins,
with marked values: the latency percentiles) and :func:`rate_rows` (a rate per
category as horizontal bars: acceptance by language). Every plot is an image to
assistive technology (``role="img"``) named by its ``<title>`` and described by a
``<desc>`` that states the figures; each bar has its own ``<title>`` (a tooltip).
Text and axes use ``currentColor``, so the page's colour scheme applies; all text
is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from server.history.stats import nice_step

WIDTH = 900
FONT = 12
BAR = "#3b82c4"
LINE = "#d9822b"
MARK = "#b4436c"
GRID = "currentColor"


@dataclass(frozen=True, slots=True)
class Box:
    """The plotting area inside the SVG's margins."""

    left: float
    top: float
    width: float
    height: float

    @property
    def bottom(self) -> float:
        return self.top + self.height


def rate_bars(
    *,
    ident: str,
    title: str,
    description: str,
    labels: Sequence[str],
    rates: Sequence[float | None],
    notes: Sequence[str],
    x_label: str,
    y_label: str,
    line: Sequence[float | None] | None = None,
    bar_name: str = "",
    line_name: str = "",
) -> str:
    """Bars of `rates` (0..1, None: no bar) over `labels`; `line`: a second rate as a line."""
    height = 320
    box = Box(64, 36, WIDTH - 64 - 16, height - 36 - 64)
    parts = _frame(ident, title, description, height)
    parts += _y_axis(box, [0.0, 0.25, 0.5, 0.75, 1.0], lambda v: f"{v * 100:.0f} %", y_label)
    slot = box.width / max(1, len(labels))
    every = max(1, math.ceil(len(labels) / 12))  # at most about 12 labels on the axis
    for index, (label, value, note) in enumerate(zip(labels, rates, notes, strict=True)):
        x = box.left + index * slot
        if value is not None:
            top = box.bottom - value * box.height
            parts.append(
                f'<rect x="{x + slot * 0.12:.1f}" y="{top:.1f}" width="{slot * 0.76:.1f}" '
                f'height="{box.bottom - top:.1f}" fill="{BAR}">'
                f"<title>{escape(label)}: {escape(note)}</title></rect>"
            )
        if index % every == 0:
            parts.append(_text(x + slot / 2, box.bottom + 16, label, anchor="middle"))
    if line is not None:
        points = [
            f"{box.left + (i + 0.5) * slot:.1f},{box.bottom - v * box.height:.1f}"
            for i, v in enumerate(line)
            if v is not None
        ]
        if points:
            parts.append(
                f'<polyline points="{" ".join(points)}" fill="none" stroke="{LINE}" '
                'stroke-width="2.5" stroke-linejoin="round"/>'
            )
            parts += [
                f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="3" fill="{LINE}"/>'
                for p in points
            ]
    parts.append(_text(box.left + box.width / 2, height - 14, x_label, anchor="middle"))
    if line is not None and line_name:
        parts += _legend(box, [(BAR, bar_name), (LINE, line_name)])
    return _close(parts)


def histogram(
    *,
    ident: str,
    title: str,
    description: str,
    width_ms: float,
    counts: Sequence[int],
    overflow: int,
    marks: Sequence[tuple[str, float]],
    x_label: str,
    y_label: str,
) -> str:
    """Bars of `counts` in bins `width_ms` wide from 0, one more for `overflow`; `marks`:
    labelled vertical lines (the percentiles)."""
    height = 320
    box = Box(80, 36, WIDTH - 80 - 16, height - 36 - 56)  # room for "40,000"
    parts = _frame(ident, title, description, height)
    top = max([*counts, overflow, 1])
    step = max(1.0, nice_step(top / 5))  # whole completions
    ticks = [step * i for i in range(math.floor(top / step) + 1)]
    scale_top = max(top, ticks[-1])
    parts += _y_axis(
        box, [t / scale_top for t in ticks], lambda v: f"{v * scale_top:,.0f}", y_label
    )
    bins = len(counts) + (1 if overflow else 0)
    slot = box.width / max(1, bins)
    edge = len(counts) * width_ms
    for index, n in enumerate([*counts, overflow] if overflow else counts):
        x = box.left + index * slot
        bar_top = box.bottom - n / scale_top * box.height
        where = (
            f"{_ms(index * width_ms)} to {_ms((index + 1) * width_ms)} ms"
            if index < len(counts)
            else f"{_ms(edge)} ms or more"
        )
        parts.append(
            f'<rect x="{x + 0.5:.1f}" y="{bar_top:.1f}" width="{max(slot - 1, 0.5):.1f}" '
            f'height="{box.bottom - bar_top:.1f}" fill="{BAR}">'
            f"<title>{where}: {n:,}</title></rect>"
        )
    x_step = nice_step(edge / 8) if edge > 0 else 1.0
    for i in range(math.floor(edge / x_step) + 1):
        value = i * x_step
        x = box.left + value / width_ms * slot
        parts.append(_text(x, box.bottom + 16, _ms(value), anchor="middle"))
    if overflow:
        x = box.left + (bins - 0.5) * slot
        parts.append(_text(x, box.bottom + 30, f"≥ {_ms(edge)}", anchor="middle"))
    for index, (name, value) in enumerate(marks):
        x = box.left + min(value, edge) / width_ms * slot
        parts.append(
            f'<line x1="{x:.1f}" y1="{box.top - 4:.1f}" x2="{x:.1f}" y2="{box.bottom:.1f}" '
            f'stroke="{MARK}" stroke-width="1.5" stroke-dasharray="4 3"/>'
        )
        label, y = f"{name} {_ms(value)} ms", box.top + 4 + index * 14
        if x > box.left + box.width * 0.7:  # written leftwards, inside the plot
            parts.append(_text(x - 4, y, label, anchor="end", fill=MARK))
        else:
            parts.append(_text(x + 4, y, label, fill=MARK))
    parts.append(_text(box.left + box.width / 2, height - 10, x_label, anchor="middle"))
    return _close(parts)


def rate_rows(
    *,
    ident: str,
    title: str,
    description: str,
    labels: Sequence[str],
    rates: Sequence[float | None],
    notes: Sequence[str],
    x_label: str,
) -> str:
    """One horizontal bar per label: its rate (0..1), and `notes` written after the bar."""
    row = 26
    label_width = min(200, 16 + FONT * 0.62 * max((len(s) for s in labels), default=4))
    box = Box(label_width, 28, WIDTH - label_width - 190, row * max(1, len(labels)))
    height = box.bottom + 48
    parts = _frame(ident, title, description, height)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = box.left + tick * box.width
        parts.append(_grid(x, box.top, x, box.bottom))
        parts.append(_text(x, box.bottom + 16, f"{tick * 100:.0f} %", anchor="middle"))
    for index, (label, value, note) in enumerate(zip(labels, rates, notes, strict=True)):
        y = box.top + index * row
        parts.append(_text(box.left - 8, y + row / 2 + 4, label, anchor="end"))
        length = 0.0 if value is None else value * box.width
        if value is not None:
            parts.append(
                f'<rect x="{box.left:.1f}" y="{y + 4:.1f}" width="{max(length, 1):.1f}" '
                f'height="{row - 8}" fill="{BAR}"><title>{escape(label)}: {escape(note)}</title>'
                "</rect>"
            )
        parts.append(_text(box.left + length + 6, y + row / 2 + 4, note))
    parts.append(_text(box.left + box.width / 2, height - 10, x_label, anchor="middle"))
    return _close(parts)


# -- pieces ----------------------------------------------------------------------------------


def _frame(ident: str, title: str, description: str, height: float) -> list[str]:
    return [
        f'<svg role="img" viewBox="0 0 {WIDTH} {height:.0f}" '
        f'width="{WIDTH}" height="{height:.0f}" font-family="system-ui, sans-serif" '
        f'font-size="{FONT}" aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
        _text(8, 20, title, weight="bold", size=FONT + 2),
    ]


def _close(parts: list[str]) -> str:
    return "\n".join([*parts, "</svg>"])


def _y_axis(
    box: Box, ticks: Sequence[float], label: Callable[[float], str], title: str
) -> list[str]:
    """Grid lines at `ticks` (fractions of the height), labelled by ``label(tick)``."""
    parts = []
    for tick in ticks:
        y = box.bottom - tick * box.height
        parts.append(_grid(box.left, y, box.left + box.width, y))
        parts.append(_text(box.left - 6, y + 4, label(tick), anchor="end"))
    x, y = 14, box.top + box.height / 2
    parts.append(_text(x, y, title, anchor="middle", rotate=(x, y)))
    return parts


def _legend(box: Box, entries: Sequence[tuple[str, str]]) -> list[str]:
    parts, x = [], box.left + box.width
    for colour, name in reversed(entries):
        x -= FONT * 0.62 * len(name) + 28
        parts.append(
            f'<rect x="{x:.1f}" y="{box.top - 20:.1f}" width="12" height="12" fill="{colour}"/>'
        )
        parts.append(_text(x + 16, box.top - 10, name))
    return parts


def _grid(x1: float, y1: float, x2: float, y2: float) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{GRID}" stroke-opacity="0.18"/>'
    )


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "start",
    weight: str = "normal",
    size: int = FONT,
    fill: str = "currentColor",
    rotate: tuple[float, float] | None = None,
) -> str:
    turn = f' transform="rotate(-90 {rotate[0]:.1f} {rotate[1]:.1f})"' if rotate else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-weight="{weight}" '
        f'font-size="{size}" fill="{fill}"{turn}>{escape(text)}</text>'
    )


def _ms(value: float) -> str:
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"
