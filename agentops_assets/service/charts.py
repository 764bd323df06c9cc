"""Small server-rendered SVG charts for the console: no JavaScript, no chart library.

Each function takes plain numbers and labels and returns the ``<svg>`` as
:class:`markupsafe.Markup`, ready for a Jinja template. Every text that comes from data is
escaped here, so a label such as ``<script>`` is shown as written. Missing values (``None``)
leave a gap rather than a zero a person would misread as a measurement.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

from markupsafe import Markup

Formatter = Callable[[float], str]

WIDTH: Final = 560
HEIGHT: Final = 170
_PAD_LEFT: Final = 56  # room for the y-axis labels
_PAD_RIGHT: Final = 12
_PAD_TOP: Final = 12
_PAD_BOTTOM: Final = 24  # room for the x-axis labels
_STATUS_CLASS: Final = {"ok": "ok", "warning": "warn", "breach": "bad"}


@dataclass(frozen=True)
class Stack:
    """One layer of a stacked bar chart: a name for the legend, a CSS class, one value per
    bar."""

    name: str
    css: str
    values: Sequence[float]


def plain(value: float) -> str:
    """A number as a person reads it on an axis: 3 significant digits, thousands grouped."""
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def usd(value: float) -> str:
    """US dollars: three significant digits below a dollar, cents below 100, whole dollars
    above (a cycle's $0.0042 must not read as $0.00)."""
    if value == 0:
        return "$0"
    if abs(value) < 1:
        return f"${value:.3g}"
    return f"${value:,.2f}" if abs(value) < 100 else f"${value:,.0f}"


def ms(value: float) -> str:
    """Milliseconds, grouped."""
    return f"{value:,.0f} ms"


def percent(value: float) -> str:
    """A ratio of 0..1 as a percentage."""
    return f"{value * 100:.3g} %"


def line_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    band: Sequence[tuple[float | None, float | None]] | None = None,
    baseline: Sequence[float | None] | None = None,
    fmt: Formatter = plain,
    ceiling: float | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """A line of daily values against the baseline: a shaded band (low..high) and/or a dashed
    baseline line; points outside the band are drawn as alerts.

    Args:
        labels: One x label per point (days), oldest first.
        values: The measured values; ``None`` leaves a gap.
        title: What the chart shows; the SVG's accessible name.
        band: Per point the expected range (``None`` ends: no band there).
        baseline: Per point the baseline value, drawn dashed.
        fmt: How a y value is written on the axis and in the tooltips.
        ceiling: The axis never goes above it when the data does not (1.0 for a rate).
        width: Width in SVG units (the chart scales to its container).
        height: Height in SVG units.
    """
    _same_length(labels, values, band, baseline)
    if not any(v is not None for v in values):
        return empty_chart(title, "no data for these days", width=width, height=60)
    numbers = [v for v in values if v is not None]
    numbers += [x for low_high in band or () for x in low_high if x is not None]
    numbers += [b for b in baseline or () if b is not None]
    frame = _Frame(labels, min(numbers), max(numbers), width, height, bars=False, ceiling=ceiling)
    parts = [frame.grid(fmt)]
    if band:
        parts.append(_band(frame, band))
    if baseline:
        parts.append(_polyline(frame, baseline, "baseline"))
    parts.append(_polyline(frame, values, "series"))
    parts.append(_points(frame, labels, values, band, fmt))
    parts.append(frame.x_labels())
    return _svg(title, width, height, parts)


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float | None],
    *,
    title: str,
    cap: float | None = None,
    cap_label: str = "cap",
    statuses: Sequence[str] | None = None,
    fmt: Formatter = plain,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """One bar per label (days) against an optional cap drawn as a dashed line.

    Args:
        labels: One x label per bar, oldest first.
        values: The bar heights; ``None`` leaves an empty slot.
        title: What the chart shows; the SVG's accessible name.
        cap: A limit drawn across the chart (a budget cap); bars above it are alerts.
        cap_label: The cap's name in its label.
        statuses: Per bar ``ok``, ``warning`` or ``breach`` (else from the cap).
        fmt: How a value is written on the axis and in the tooltips.
        width: Width in SVG units (the chart scales to its container).
        height: Height in SVG units.
    """
    _same_length(labels, values, statuses)
    if not any(v is not None for v in values):
        return empty_chart(title, "no data for these days", width=width, height=60)
    numbers = [0.0, *(v for v in values if v is not None)]
    if cap is not None:
        numbers.append(cap)
    frame = _Frame(labels, min(numbers), max(numbers), width, height, bars=True)
    parts = [frame.grid(fmt)]
    for i, value in enumerate(values):
        if not value:  # none, or nothing that day: no sliver of a bar
            continue
        status = statuses[i] if statuses else ("breach" if cap and value > cap else "ok")
        parts.append(
            frame.bar(i, 0.0, value, _STATUS_CLASS.get(status, "ok"), f"{labels[i]}: {fmt(value)}")
        )
    if cap is not None:
        y = frame.y(cap)
        parts.append(
            f'<line class="cap" x1="{_PAD_LEFT}" x2="{width - _PAD_RIGHT}" y1="{y:.1f}" '
            f'y2="{y:.1f}"/><text class="cap-label" x="{width - _PAD_RIGHT - 2}" '
            f'y="{y - 3:.1f}" text-anchor="end">{escape(cap_label)} {escape(fmt(cap))}</text>'
        )
    parts.append(frame.x_labels())
    return _svg(title, width, height, parts)


def stacked_bars(
    labels: Sequence[str],
    stacks: Sequence[Stack],
    *,
    title: str,
    fmt: Formatter = plain,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """Bars made of layers (e.g. warnings under criticals per day), with a legend.

    Args:
        labels: One x label per bar, oldest first.
        stacks: The layers, bottom first; each has one value per label.
        title: What the chart shows; the SVG's accessible name.
        fmt: How a value is written on the axis and in the tooltips.
        width: Width in SVG units (the chart scales to its container).
        height: Height in SVG units.
    """
    _same_length(labels, *(s.values for s in stacks))
    totals = [sum(s.values[i] for s in stacks) for i in range(len(labels))]
    if not any(totals):
        return empty_chart(title, "nothing found on these days", width=width, height=60)
    frame = _Frame(labels, 0.0, max(totals), width, height, bars=True)
    parts = [frame.grid(fmt)]
    for i, label in enumerate(labels):
        bottom = 0.0
        for stack in stacks:
            value = stack.values[i]
            if value:
                tip = f"{label}: {fmt(value)} {stack.name}"
                parts.append(frame.bar(i, bottom, bottom + value, stack.css, tip))
                bottom += value
    parts.append(frame.x_labels())
    parts.append(_legend(stacks, width))
    return _svg(title, width, height, parts)


def sparkline(values: Sequence[float | None], *, title: str, width: int = 90) -> Markup:
    """A tiny line without axes, for a table cell; ``None`` leaves a gap."""
    height = 22
    numbers = [v for v in values if v is not None]
    if len(numbers) < 2:
        return Markup('<span class="muted">-</span>')
    low, high = min(numbers), max(numbers)
    span = (high - low) or 1.0
    step = (width - 4) / max(1, len(values) - 1)
    segments: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
            continue
        y = 2 + (height - 4) * (1 - (value - low) / span)
        segments[-1].append(f"{2 + i * step:.1f},{y:.1f}")
    lines = "".join(
        f'<polyline class="series" points="{" ".join(s)}"/>' for s in segments if len(s) > 1
    )
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>{lines}</svg>'
    )


def empty_chart(title: str, message: str, *, width: int = WIDTH, height: int = 60) -> Markup:
    """A chart's frame with a sentence in it, for days without data."""
    return _svg(
        title,
        width,
        height,
        [
            f'<text class="empty" x="{width / 2:.0f}" y="{height / 2 + 4:.0f}" '
            f'text-anchor="middle">{escape(message)}</text>'
        ],
    )


class _Frame:
    """The plot area: maps an index and a value to SVG coordinates, draws grid and axes."""

    def __init__(
        self,
        labels: Sequence[str],
        low: float,
        high: float,
        width: int,
        height: int,
        *,
        bars: bool,
        ceiling: float | None = None,
    ) -> None:
        if high == low:  # a flat series still needs a visible range
            pad = abs(high) * 0.1 or 1.0
            low, high = (low - pad if low - pad >= 0 or low < 0 else 0.0), high + pad
        self.step = _nice_step((high - low) / 3)
        floor_ = math.floor(low / self.step) * self.step
        self.low = max(0.0, floor_) if low >= 0 else floor_  # no negative axis for counts, $
        self.high = math.ceil(high / self.step) * self.step
        if ceiling is not None and high <= ceiling:
            self.high = min(self.high, ceiling)  # a rate's axis ends at 100 %
        if self.high <= self.low:
            self.high = self.low + self.step
        self.labels = labels
        self.width, self.height, self.bars = width, height, bars
        self.inner_w = width - _PAD_LEFT - _PAD_RIGHT
        self.inner_h = height - _PAD_TOP - _PAD_BOTTOM
        slots = max(1, len(labels))
        self.slot = self.inner_w / slots if bars else self.inner_w / max(1, slots - 1)

    def x(self, i: int) -> float:
        if self.bars:
            return _PAD_LEFT + self.slot * (i + 0.5)
        if len(self.labels) == 1:
            return _PAD_LEFT + self.inner_w / 2
        return _PAD_LEFT + self.slot * i

    def y(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return _PAD_TOP + self.inner_h * (1 - share)

    def bar(self, i: int, bottom: float, top: float, css: str, tip: str) -> str:
        w = max(1.0, min(28.0, self.slot * 0.7))
        y_top, y_bottom = self.y(top), self.y(bottom)
        return (
            f'<rect class="bar {css}" x="{self.x(i) - w / 2:.1f}" y="{y_top:.1f}" '
            f'width="{w:.1f}" height="{max(0.5, y_bottom - y_top):.1f}">'
            f"<title>{escape(tip)}</title></rect>"
        )

    def grid(self, fmt: Formatter) -> str:
        """Gridlines at round values, labelled on the left."""
        lines = []
        count = round((self.high - self.low) / self.step)
        for k in range(count + 1):
            value = self.low + self.step * k
            y = self.y(value)
            text = escape(_axis_text(fmt, value, self.step))
            lines.append(
                f'<line class="grid" x1="{_PAD_LEFT}" x2="{self.width - _PAD_RIGHT}" '
                f'y1="{y:.1f}" y2="{y:.1f}"/><text class="axis" x="{_PAD_LEFT - 6}" '
                f'y="{y + 4:.1f}" text-anchor="end">{text}</text>'
            )
        return "".join(lines)

    def x_labels(self) -> str:
        """The first and last labels, and a few between when there is room."""
        count = len(self.labels)
        room = max(2, int(self.inner_w // 70))
        every = max(1, -(-count // room))
        shown = sorted({0, count - 1, *range(0, count, every)})
        if count > 1 and (count - 1) - max(i for i in shown if i < count - 1) < every / 2:
            shown.remove(max(i for i in shown if i < count - 1))  # no crowding before the last
        baseline_y = self.height - 6
        return "".join(
            f'<text class="axis" x="{self.x(i):.1f}" y="{baseline_y}" '
            f'text-anchor="{self._anchor(i, count)}">{escape(self.labels[i])}</text>'
            for i in shown
            if 0 <= i < count
        )

    def _anchor(self, i: int, count: int) -> str:
        """Line charts put their first and last points on the edges: keep those labels in."""
        if self.bars or count == 1:
            return "middle"
        return "start" if i == 0 else "end" if i == count - 1 else "middle"


def _nice_step(raw: float) -> float:
    """The round step (1, 2 or 5 times a power of ten) at or above ``raw``."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if raw <= m * magnitude * (1 + 1e-9))


def _axis_text(fmt: Formatter, value: float, step: float) -> str:
    """An axis label short enough for the left margin: large values in k, M or seconds, and
    dollars with as many decimals as the step needs."""
    if abs(value) < 1e-12:
        value = 0.0
    if fmt is ms and step >= 1000:
        return f"{value / 1000:,.0f} s"
    if fmt in (plain, usd) and abs(value) >= 10_000:
        unit, size = ("M", 1e6) if abs(value) >= 1e6 else ("k", 1e3)
        return f"{'$' if fmt is usd else ''}{value / size:.3g} {unit}"
    if fmt is usd and value:
        decimals = min(6, max(0, -math.floor(math.log10(step)))) if step < 1 else 0
        decimals = 2 if 0 < decimals < 2 else decimals
        return f"${value:,.{decimals}f}"
    return fmt(value)


def _band(frame: _Frame, band: Sequence[tuple[float | None, float | None]]) -> str:
    """The expected range as one shaded polygon per run of points that have both ends."""
    runs: list[list[int]] = [[]]
    for i, (low, high) in enumerate(band):
        if low is None or high is None:
            runs.append([])
        else:
            runs[-1].append(i)
    shapes = []
    for run in runs:
        if not run:
            continue
        if len(run) == 1:  # a single day: a short bar instead of a polygon of width zero
            i = run[0]
            low, high = band[i]
            x = frame.x(i)
            shapes.append(
                f'<rect class="band" x="{x - 4:.1f}" y="{frame.y(high):.1f}" width="8" '
                f'height="{max(0.5, frame.y(low) - frame.y(high)):.1f}"/>'
            )
            continue
        top = [f"{frame.x(i):.1f},{frame.y(band[i][1]):.1f}" for i in run]
        bottom = [f"{frame.x(i):.1f},{frame.y(band[i][0]):.1f}" for i in reversed(run)]
        shapes.append(f'<polygon class="band" points="{" ".join(top + bottom)}"/>')
    return "".join(shapes)


def _polyline(frame: _Frame, values: Sequence[float | None], css: str) -> str:
    segments: list[list[str]] = [[]]
    for i, value in enumerate(values):
        if value is None:
            segments.append([])
        else:
            segments[-1].append(f"{frame.x(i):.1f},{frame.y(value):.1f}")
    return "".join(
        f'<polyline class="{css}" points="{" ".join(s)}"/>' for s in segments if len(s) > 1
    )


def _points(
    frame: _Frame,
    labels: Sequence[str],
    values: Sequence[float | None],
    band: Sequence[tuple[float | None, float | None]] | None,
    fmt: Formatter,
) -> str:
    dots = []
    for i, value in enumerate(values):
        if value is None:
            continue
        low, high = band[i] if band else (None, None)
        outside = (low is not None and value < low) or (high is not None and value > high)
        tip = f"{labels[i]}: {fmt(value)}"
        if low is not None and high is not None:
            tip += f" (expected {fmt(low)} to {fmt(high)})"
        dots.append(
            f'<circle class="point{" alert" if outside else ""}" cx="{frame.x(i):.1f}" '
            f'cy="{frame.y(value):.1f}" r="{4 if outside else 2.5}">'
            f"<title>{escape(tip)}</title></circle>"
        )
    return "".join(dots)


def _legend(stacks: Sequence[Stack], width: int) -> str:
    items, x = [], width - _PAD_RIGHT
    for stack in reversed(stacks):
        text = escape(stack.name)
        x -= 10 + 7 * len(stack.name)
        items.append(
            f'<rect class="bar {stack.css}" x="{x:.0f}" y="2" width="8" height="8"/>'
            f'<text class="axis" x="{x + 11:.0f}" y="10">{text}</text>'
        )
        x -= 8
    return "".join(items)


def _svg(title: str, width: int, height: int, parts: Sequence[str]) -> Markup:
    name = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {width} {height}" preserveAspectRatio="xMidYMid meet" '
        f'role="img" aria-label="{name}"><title>{name}</title>{"".join(parts)}</svg>'
    )


def _same_length(labels: Sequence[str], *others: Sequence[object] | None) -> None:
    for other in others:
        if other is not None and len(other) != len(labels):
            raise ValueError(
                f"a chart needs one value per label: {len(labels)} labels, {len(other)} values."
            )
