"""CSV helpers shared by every export: formula-safe cells and a streaming writer."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence

FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\x00")


def neutralise(value: object) -> str:
    """Make a cell safe to open in a spreadsheet: a leading formula character gets a quote.

    Phone numbers in E.164 start with '+', so a value that is purely '+digits' is left alone:
    spreadsheets read it as a number, never as a formula.
    """
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_START):
        if text[0] == "+" and text[1:].isdigit():
            return text
        if text[0] == "-" and text[1:].replace(".", "", 1).isdigit():
            return text
        return "'" + text
    return text


def csv_lines(header: Sequence[str], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """Yield a CSV document line by line (for streaming responses)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([neutralise(h) for h in header])
    yield buffer.getvalue()
    for row in rows:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([neutralise(v) for v in row])
        yield buffer.getvalue()
