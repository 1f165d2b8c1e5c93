"""record_start_lines: records (as COPY and csv count them) to the lines an editor shows."""

from __future__ import annotations

import csv
import io

from hypothesis import given, settings, strategies as st

from app.registry.csvfile import UTF8_BOM, record_start_lines


def test_no_quotes_means_records_are_lines():
    assert record_start_lines(b"h\r\na\r\nb\r\n", {2, 3}) == {}


def test_quoted_breaks_push_later_records_down():
    data = b'h,x\r\n1,"a\r\nb"\r\n2,"c""\nd\re"\r\n3,z\r\n'
    assert record_start_lines(data, {2, 3, 4}) == {2: 2, 3: 4, 4: 7}
    assert record_start_lines(UTF8_BOM + data, {4}) == {4: 7}
    assert record_start_lines(data.decode().encode("cp932"), {4}) == {4: 7}
    assert record_start_lines(data, {1, 0}) == {}  # the header and "unknown" keep their numbers
    assert record_start_lines(data, {9}) == {}  # past the end: unchanged


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.lists(st.text(alphabet='ab"\r\n,ア', max_size=6), min_size=2, max_size=2), min_size=1, max_size=8),
    st.sampled_from(["\r\n", "\n"]),
)
def test_agrees_with_the_csv_module(rows, eol):
    """For files csv.writer writes, each record starts on the line csv.reader's line_num says."""
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator=eol).writerows([["h1", "h2"]] + rows)
    data = out.getvalue().encode()
    reader = csv.reader(io.StringIO(out.getvalue(), newline=""))
    expected, previous = {}, 0
    for number, _ in enumerate(reader, start=1):
        expected[number] = previous + 1
        previous = reader.line_num
    got = record_start_lines(data, set(expected))
    assert {n: got.get(n, n) for n in expected if n >= 2} == {n: line for n, line in expected.items() if n >= 2}
