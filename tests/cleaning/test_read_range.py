"""A byte range's rows: read_range tells a range whose cells hold line breaks (the file is then read in one
stream) by counting lines against records; that must agree with looking into every cell, for any content."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phoneops.cleaning.reading import Layout, Unsplittable, _options, _tidy, read_range

CELL = st.text(alphabet=['a', '7', '+', ' ', ',', '"', '\n', '\r', ';', '='], max_size=6)


def reference(data: bytes, layout: Layout) -> pl.DataFrame | None:
    """The rows tidied, or None when a cell of any record holds a line break: looked for in every cell,
    before blank rows are dropped (a row of blank cells can hold a quoted line break too, and straddle a
    range's border like any other)."""
    raw = pl.read_csv(data, **_options(layout, False))  # type: ignore[arg-type]
    if raw.height and raw.select(pl.any_horizontal(pl.all().str.contains("\n", literal=True)).any()).item():
        return None
    return _tidy(raw, layout, False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=3, max_size=3), min_size=1, max_size=8),
       ending=st.sampled_from(["\n", "\r\n"]), blank=st.integers(0, 8), last=st.booleans())
def test_line_breaks_in_cells_are_told_as_looking_into_every_cell(
    tmp_path: Path, rows: list[list[str]], ending: str, blank: int, last: bool
) -> None:
    out = io.StringIO()
    csv.writer(out, lineterminator=ending).writerows(rows)
    lines = out.getvalue().split(ending)
    lines.insert(min(blank, len(lines) - 1), "")  # a blank line somewhere
    body = ending.join(lines)
    if not last:
        body = body.removesuffix(ending)  # a range without its final line break (the end of a file)
    head = b"h1,h2,h3\n"
    data = body.encode()
    source = tmp_path / "t.csv"
    source.write_bytes(head + data + b"tail,x,y\n")
    layout = Layout("csv", "utf-8", ",", True, ["h1", "h2", "h3"])
    try:
        expected = reference(data, layout)
    except pl.exceptions.PolarsError:
        with pytest.raises(Unsplittable):
            read_range(source, layout, len(head), len(head) + len(data))
        return
    if expected is None:
        with pytest.raises(Unsplittable):
            read_range(source, layout, len(head), len(head) + len(data))
    else:
        got = read_range(source, layout, len(head), len(head) + len(data))
        assert got.equals(expected)
        assert read_range(source, layout, len(head), len(head) + len(data), checked=True).equals(expected)


def test_a_range_of_the_first_line_with_its_header(tmp_path: Path) -> None:
    source = tmp_path / "t.csv"
    source.write_bytes(b'name,phone\n"a\nb",1\nc,2\nd,3\n')
    layout = Layout("csv", "utf-8", ",", True, ["name", "phone"])
    with pytest.raises(Unsplittable):
        read_range(source, layout, 0, 20)
    end = len(b'name,phone\n"a\nb",1\nc,2\n')
    with pytest.raises(Unsplittable):
        read_range(source, layout, 0, end)
    plain = tmp_path / "p.csv"
    plain.write_bytes(b'name,phone\n"a,b",1\nc,2\nd,3\n')
    assert read_range(plain, layout, 0, len(b'name,phone\n"a,b",1\nc,2\n')).rows() == [("a,b", "1"), ("c", "2")]
