"""The console's SVG line charts (app/staff/web/charts.py): round axis steps, axis labels as Japanese reads
large numbers, x labels that never crowd, one day still visible, and a program's name (typed by a person)
escaped in the chart's title and description."""

from __future__ import annotations

import datetime as dt
import re

from app.staff.web.charts import Line, _x_ticks, line_chart, nice_step, short_number


def test_axis_steps_are_round_and_cover_the_largest_value():
    assert [nice_step(v) for v in (0, 1, 3, 6, 9, 310_000, 1_000_000)] == [1, 1, 1, 2, 5, 100_000, 500_000]
    for top in (1, 7, 99, 12_345, 987_654_321):
        step = nice_step(top)
        assert str(step).strip("0") in ("1", "2", "5") and -(-top // step) <= 4


def test_axis_labels_read_as_japanese_numbers():
    assert [short_number(v) for v in (0, 8_000, 50_000, 1_000_000, 35_000_000, 150_000_000)] == [
        "0",
        "8,000",
        "5万",
        "100万",
        "3,500万",
        "1.5億",
    ]


def test_x_labels_are_few_and_include_the_first_and_last_day():
    assert _x_ticks(1) == [0] and _x_ticks(7) == list(range(7))
    for n in (8, 30, 40, 365):
        ticks = _x_ticks(n)
        assert ticks[0] == 0 and ticks[-1] == n - 1 and len(ticks) <= 7 and ticks == sorted(set(ticks))


def test_one_day_is_a_dot_and_names_are_escaped():
    day = [dt.date(2026, 12, 1)]
    svg = str(line_chart("c", "<script>x</script>の推移", 'a "b" & c', day, [Line("paid", "支払済", [3])], "件"))
    assert "<script>" not in svg and "&lt;script&gt;x&lt;/script&gt;の推移" in svg
    assert "a &#34;b&#34; &amp; c" in svg
    assert re.search(r'<circle cx="[\d.]+" cy="[\d.]+" r="4" fill="#1a1a1a"/>', svg)
    assert svg.startswith('<svg class="chart" id="c"') and 'aria-labelledby="c-title c-desc"' in svg
