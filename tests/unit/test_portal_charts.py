"""The portal's server-drawn bar charts: the numbers carried through as stated, bars on a zero
baseline in proportion, negative ones below it, grouped series side by side."""

from __future__ import annotations

import pytest

from services.portal.domain import charts


def test_bars_stand_on_the_baseline_in_proportion_with_the_stated_numbers() -> None:
    chart = charts.bar_chart(["2026-Q3", "2026-Q4"], [("Net", ["50.00", "100.00"])])
    low, high = chart.bars
    assert (low.value, high.value) == ("50.00", "100.00")
    assert high.y == pytest.approx(charts.TOP)  # the largest reaches the top
    assert high.y + high.height == pytest.approx(chart.baseline)
    assert low.height == pytest.approx(high.height / 2)
    assert chart.largest == "100.00"
    assert chart.smallest == ""
    assert [label.text for label in chart.labels] == ["2026-Q3", "2026-Q4"]


def test_a_negative_value_hangs_below_zero_and_is_named_on_the_scale() -> None:
    chart = charts.bar_chart(["a", "b"], [("Net", ["-25.00", "75.00"])])
    down, up = chart.bars
    assert down.y == pytest.approx(chart.baseline)
    assert down.height == pytest.approx(up.height / 3)
    assert chart.baseline < chart.height - charts.BOTTOM
    assert chart.smallest == "-25.00"


def test_series_stand_side_by_side_and_nothing_at_all_draws_flat() -> None:
    chart = charts.bar_chart(["q1", "q2"], [("Sourced", ["10", "0"]), ("Influenced", ["5", "0"])])
    assert [(b.series, b.category) for b in chart.bars] == [
        (0, "q1"),
        (0, "q2"),
        (1, "q1"),
        (1, "q2"),
    ]
    assert chart.bars[2].x == pytest.approx(chart.bars[0].x + chart.bars[0].width)
    flat = charts.bar_chart(["q1"], [("Net", ["0"])])
    assert flat.bars[0].height == 0
    assert flat.largest == "0"
    garbage = charts.bar_chart(["q1"], [("Net", ["NaN"])])
    assert garbage.bars[0].value == "NaN"
    assert garbage.bars[0].height == 0


def test_a_quarter_starts_on_its_first_day() -> None:
    assert charts.first_day("2026-Q4") == "2026-10-01"
    assert charts.first_day("2027-Q1") == "2027-01-01"
