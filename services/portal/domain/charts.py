"""Bar charts as plain geometry for a server-rendered SVG (no chart library, nothing from
elsewhere): grouped bars per category, zero as the baseline, negative values below it.

The numbers a chart shows are the services' own strings, carried through untouched; they are
read as Decimal only to place the bars (a bar's height is a drawing, not an amount).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

WIDTH = 640
HEIGHT = 260
TOP, BOTTOM, LEFT, RIGHT = 16, 40, 8, 8  # room for the category labels under the baseline


@dataclass(frozen=True)
class Bar:
    series: int  # its series' position (the colour and the legend)
    category: str
    value: str  # as the service stated it
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True)
class Label:
    text: str
    x: float  # the middle of its category


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    baseline: float  # the y of zero
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...]
    series: tuple[str, ...]
    largest: str  # the largest value as stated (the top of the scale), "0" when none
    smallest: str  # the most negative value as stated, "" when none is below zero


def _number(value: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return Decimal(0)
    return number if number.is_finite() else Decimal(0)


def bar_chart(categories: Sequence[str], series: Sequence[tuple[str, Sequence[str]]]) -> Chart:
    """`series`: (name, one value per category) each. Bars of one category stand side by side;
    the scale runs from the smallest value (or zero) to the largest (or zero)."""
    numbers = [[_number(v) for v in values] for _, values in series]
    flat = [
        (n, v)
        for row, (_, values) in zip(numbers, series, strict=True)
        for n, v in zip(row, values, strict=True)
    ]
    top = max((n for n, _ in flat), default=Decimal(0))
    bottom = min((n for n, _ in flat), default=Decimal(0))
    high, low = max(top, Decimal(0)), min(bottom, Decimal(0))
    span = (high - low) or Decimal(1)
    plot = HEIGHT - TOP - BOTTOM
    baseline = TOP + float(high / span) * plot
    slot = (WIDTH - LEFT - RIGHT) / max(len(categories), 1)
    width = slot * 0.8 / max(len(series), 1)
    bars = []
    for s, row in enumerate(numbers):
        for c, number in enumerate(row):
            size = float(abs(number) / span) * plot
            x = LEFT + c * slot + slot * 0.1 + s * width
            y = baseline - size if number >= 0 else baseline
            bars.append(Bar(s, categories[c], series[s][1][c], x, y, width, size))
    labels = tuple(Label(c, LEFT + i * slot + slot / 2) for i, c in enumerate(categories))
    largest = next((v for n, v in flat if n == top), "0") if top > 0 else "0"
    smallest = next((v for n, v in flat if n == bottom), "") if bottom < 0 else ""
    return Chart(
        WIDTH,
        HEIGHT,
        baseline,
        tuple(bars),
        labels,
        tuple(name for name, _ in series),
        largest,
        smallest,
    )


def first_day(quarter: str) -> str:
    """`2026-Q4` -> `2026-10-01`: where a quarter's close dates start."""
    year, number = quarter.split("-Q")
    return f"{year}-{(int(number) - 1) * 3 + 1:02d}-01"
