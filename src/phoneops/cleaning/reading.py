"""Reading uploaded tables: what a file looks like (inspection) and its rows in bounded batches.

Decisions (documented in the cleaning page's help and tested in tests/cleaning/test_cleaning_bad_input.py):

- Encoding and delimiter come from `core.csvio` (UTF-8 with or without BOM, UTF-16, Latin-1; comma,
  semicolon, tab, pipe). Files that are not UTF-8 and .xlsx sheets are first rewritten as a UTF-8 CSV in a
  temporary file, so every run reads one format with polars.
- Header: a first row whose phone cell does not normalise while most later rows do is a header (the
  original treated it as a number). The user may say yes or no instead.
- Phone column: chosen by the user (header name, 1-based position or ``column_N``) or detected as the
  column with the highest share of valid numbers in the first rows.
- Ragged rows: a row with MORE cells than the first row is refused with the number of its line (its extra
  cells would otherwise be lost silently); a row with FEWER cells is padded with empty cells. Blank lines
  are skipped.
- Every cell is read as a string (no type inference): leading zeros and ``+`` survive.
"""

from __future__ import annotations

import codecs
import csv
import itertools
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import phonenumbers
import polars as pl

from phoneops.core.csvio import TableError, TableInfo, iter_rows, normalise_header, sniff_table
from phoneops.core.errors import ValidationFailed
from phoneops.numbers.crypto import looks_like_token
from phoneops.numbers.normalize import normalize_column

SAMPLE_ROWS = 200  # rows read at upload to detect the header and the phone column
SHOWN_ROWS = 8  # rows kept with the file for its page
HEADER_SHARE = 0.5  # a header row is followed by rows of which at least this share are valid numbers
MAX_COLUMNS = 500
BATCH_ROWS = 250_000


@dataclass(frozen=True)
class Layout:
    """How to read a file's rows: everything a run needs besides the file itself."""

    table_kind: str  # csv | xlsx
    encoding: str
    delimiter: str
    has_header: bool
    columns: list[str]

    @property
    def width(self) -> int:
        return len(self.columns)


@dataclass
class Inspection:
    layout: Layout
    phone_column: int | None
    sample: list[list[str]] = field(default_factory=list)
    valid_share: float = 0.0


def check_region(region: str | None, default: str) -> str:
    """An ISO 3166 region code phonenumbers knows, upper-cased; a clear 422 otherwise."""
    value = (region or default or "").strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(
            f"unknown region code {region!r}: use an ISO 3166 alpha-2 code such as GB or US",
            code="invalid_region",
        )
    return value


@contextmanager
def _named_xlsx(path: Path) -> Iterator[Path]:
    """openpyxl decides by the file name's extension; stored uploads have none."""
    with tempfile.TemporaryDirectory(prefix="xlsx-") as tmp:
        link = Path(tmp) / "upload.xlsx"
        link.symlink_to(path.resolve())
        yield link


def _xlsx_rows(path: Path) -> Iterator[list[str]]:
    with _named_xlsx(path) as named:
        try:
            yield from iter_rows(named, TableInfo("binary", "", "xlsx"))
        except TableError:
            raise
        except Exception as exc:  # openpyxl raises many kinds on a zip that is not a workbook
            raise TableError(f"the spreadsheet cannot be opened: {type(exc).__name__}") from None


def _first_rows(path: Path, limit: int) -> tuple[str, str, str, list[list[str]]]:
    try:
        info = sniff_table(path)
        rows: list[list[str]] = []
        for row in (_xlsx_rows(path) if info.kind == "xlsx" else iter_rows(path, info)):
            if not any(cell.strip() for cell in row):
                continue
            rows.append(row)
            if len(rows) >= limit:
                break
    except TableError as exc:
        raise ValidationFailed(str(exc), code="unreadable_file") from None
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ValidationFailed(f"the file cannot be read as a table: {exc}", code="unreadable_file") from None
    return info.kind, info.encoding, info.delimiter, rows


def _valid_shares(rows: list[list[str]], width: int, region: str) -> list[float]:
    if not rows:
        return [0.0] * width
    shares = []
    for j in range(width):
        values = [row[j] if j < len(row) else "" for row in rows]
        result = normalize_column(values, region)
        shares.append(float(result["e164"].is_not_null().sum()) / len(values))
    return shares


def _names(first: list[str], width: int) -> list[str]:
    names: list[str] = []
    for j in range(width):
        raw = first[j].strip().lstrip("\ufeff") if j < len(first) else ""
        name = raw or f"column_{j + 1}"
        if name in names:
            name = f"{name}_{j + 1}"
        names.append(name[:100])
    return names


def resolve_column(columns: list[str], value: str | int | None) -> int:
    """A column position from a header name, a 1-based position or ``column_N``; 422 when unknown."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValidationFailed("choose the phone column: it could not be detected from the content",
                               code="unknown_column", details={"columns": columns})
    text = str(value).strip()
    if text.isdigit() and 1 <= int(text) <= len(columns):
        return int(text) - 1
    wanted = normalise_header(text)
    for j, name in enumerate(columns):
        if normalise_header(name) == wanted:
            return j
    if wanted.startswith("column") and wanted[6:].isdigit() and 1 <= int(wanted[6:]) <= len(columns):
        return int(wanted[6:]) - 1
    raise ValidationFailed(
        f"unknown column {text!r}: the file has {', '.join(columns[:30])}",
        code="unknown_column", details={"columns": columns},
    )


def inspect_table(
    path: Path, *, region: str, header: bool | None = None, phone_column: str | int | None = None
) -> Inspection:
    """Encoding, delimiter, header and phone column of an uploaded table (reads its first rows only)."""
    kind, encoding, delimiter, rows = _first_rows(path, SAMPLE_ROWS + 1)
    if not rows:
        raise ValidationFailed("the file is empty (no rows)", code="empty_file")
    width = len(rows[0])
    if width > MAX_COLUMNS:
        raise ValidationFailed(f"the file has {width} columns; at most {MAX_COLUMNS} are supported")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) > width:
            raise ValidationFailed(
                f"row {number} has {len(row)} cells but the first row has {width} (ragged rows are refused)",
                code="ragged_rows",
            )
    shares = _valid_shares(rows[1:], width, region)
    first_parsed = normalize_column(list(rows[0]) + [""] * (width - len(rows[0])), region)["e164"]
    detected = max(range(width), key=lambda j: shares[j]) if any(shares) else None
    if header is None:
        if detected is not None:
            header = first_parsed[detected] is None and shares[detected] >= HEADER_SHARE
        else:  # nothing valid after the first row: a first row of labels (no number, no token) is a header
            header = (len(rows) > 1 and first_parsed.is_null().all() and all(c.strip() for c in rows[0])
                      and not any(looks_like_token(c) for c in rows[0]))
    if len(rows) == 1 and first_parsed.is_null().all() and not any(looks_like_token(c) for c in rows[0]):
        header = True  # one row of labels; one row of tokens is data (a one-token file to decrypt)
    data = rows[1:] if header else rows
    if not data:
        raise ValidationFailed("the file has a header but no data rows", code="header_only")
    columns = _names(rows[0], width) if header else [f"column_{j + 1}" for j in range(width)]
    if not header:
        shares = _valid_shares(rows, width, region)
        detected = max(range(width), key=lambda j: shares[j]) if any(shares) else None
    chosen = resolve_column(columns, phone_column) if phone_column not in (None, "") else detected
    layout = Layout(table_kind=kind, encoding=encoding, delimiter=delimiter or ",", has_header=bool(header),
                    columns=columns)
    shown = [[cell[:80] for cell in row[:width]] for row in data[:SHOWN_ROWS]]
    return Inspection(layout, chosen, shown, shares[chosen] if chosen is not None else 0.0)


# --- rows in batches ---------------------------------------------------------------------------------------


def utf8_source(path: Path, layout: Layout, workdir: Path) -> Path:
    """The file as UTF-8 delimited text polars can read: the upload itself when it already is."""
    if layout.table_kind == "xlsx":
        target = workdir / "sheet.csv"
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.writer(out, delimiter=layout.delimiter, lineterminator="\n")
            try:
                for row in _xlsx_rows(path):
                    writer.writerow(row)
            except TableError as exc:
                raise ValidationFailed(str(exc), code="unreadable_file") from None
        return target
    if layout.encoding in ("utf-8", "utf-8-sig"):
        return path
    target = workdir / "utf8.csv"
    decoder = codecs.getincrementaldecoder(layout.encoding)(errors="replace")
    with path.open("rb") as src, target.open("w", encoding="utf-8", newline="") as out:
        while block := src.read(1 << 20):
            out.write(decoder.decode(block).replace("\x00", ""))
        out.write(decoder.decode(b"", final=True))
    return target


def column_names(width: int) -> list[str]:
    return [f"c{j}" for j in range(width)]


def _ragged_line(source: Path, delimiter: str, width: int) -> str:
    """Where the first row with too many cells is (only called once polars has refused the file)."""
    with source.open("r", encoding="utf-8", errors="replace", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        for row in reader:
            if len(row) > width:
                return f"line {reader.line_num} has {len(row)} cells but the first row has {width}"
    return "a row has more cells than the first row"


def _options(layout: Layout, first: bool) -> dict[str, object]:
    return {"has_header": False, "separator": layout.delimiter, "schema": dict.fromkeys(column_names(layout.width),
            pl.String), "infer_schema": False, "skip_rows": 1 if first and layout.has_header else 0,
            "empty_string_is_null": False, "quote_char": '"', "raise_if_empty": False}


_BLANK = r"^\s*$"


def _tidy(batch: pl.DataFrame, layout: Layout, first: bool) -> pl.DataFrame:
    """Blank lines and rows of blank cells dropped (as the upload's inspection skips them; polars reads a
    blank line as a row of empty cells); a BOM left on the first cell of a file without header removed."""
    blank = pl.col("c0").is_null() | pl.col("c0").str.contains(_BLANK)  # one column first: most rows stop here
    if batch.select(blank.any()).item():
        batch = batch.filter(~pl.all_horizontal(pl.all().is_null() | pl.all().str.contains(_BLANK)))
    if first and batch.height and not layout.has_header:
        batch = batch.with_columns(pl.col("c0").str.strip_prefix("\ufeff"))
    return batch


def _refused(source: Path, layout: Layout, exc: Exception) -> ValidationFailed:
    text = str(exc)
    if "more fields" in text:
        return ValidationFailed(f"ragged rows are refused: {_ragged_line(source, layout.delimiter, layout.width)}",
                                code="ragged_rows")
    reason = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
    return ValidationFailed(f"the file cannot be read as CSV: {reason[:200]}", code="unreadable_file")


def iter_batches(source: Path, layout: Layout, batch_rows: int = BATCH_ROWS) -> Iterator[pl.DataFrame]:
    """The data rows (header skipped, blank lines dropped) as string frames c0..cN, in file order."""
    frame = pl.scan_csv(source, **_options(layout, True))  # type: ignore[arg-type]
    first = True
    try:
        for batch in frame.collect_batches(chunk_size=batch_rows):
            batch = _tidy(batch, layout, first)
            first = False
            if batch.height:
                yield batch
    except pl.exceptions.PolarsError as exc:
        raise _refused(source, layout, exc) from None


# --- byte ranges, for reading one file in several processes at once ------------------------------------------


class Unsplittable(Exception):
    """A range's rows hold a line break inside a cell: the file's records may span the ranges' borders."""


def byte_ranges(source: Path, size: int) -> list[tuple[int, int]]:
    """The file cut into ranges of about `size` bytes, each ending just after a line break (the last at the
    end of the file). A line break inside a quoted cell cannot be told from here: `read_range` refuses a
    range whose cells hold one (`Unsplittable`), and the caller then reads the file in one stream."""
    total = source.stat().st_size
    cuts = [0]
    with source.open("rb") as handle:
        while cuts[-1] + size < total:
            handle.seek(cuts[-1] + size)
            at = cuts[-1] + size
            while True:
                block = handle.read(1 << 16)
                if not block:
                    at = total
                    break
                found = block.find(b"\n")
                if found >= 0:
                    at += found + 1
                    break
                at += len(block)
            if at >= total:
                break
            cuts.append(at)
    cuts.append(total)
    return list(itertools.pairwise(cuts))


def read_range(source: Path, layout: Layout, start: int, end: int, *, checked: bool = False) -> pl.DataFrame:
    """The data rows of bytes [start, end) of the file, as `iter_batches` reads them (the header is skipped
    in the range that starts the file). Raises `Unsplittable` when a cell holds a line break, unless
    `checked`: an earlier read of the same bytes found none (the writing pass after the first)."""
    with source.open("rb") as handle:
        handle.seek(start)
        data = handle.read(end - start)
    first = start == 0
    try:
        batch = pl.read_csv(data, **_options(layout, first))  # type: ignore[arg-type]
    except pl.exceptions.PolarsError as exc:
        if start == 0 and end == source.stat().st_size:
            raise _refused(source, layout, exc) from None
        raise Unsplittable(str(exc)) from None  # e.g. a quote opened in another range
    if not checked and _spans_lines(data, batch.height + (1 if first and layout.has_header else 0)):
        raise Unsplittable("a cell holds a line break")
    return _tidy(batch, layout, first)


def _spans_lines(data: bytes, records: int) -> bool:
    """Whether some record of `data` (`records` of them, as polars read it: a blank line is a record) spans
    several lines, i.e. a quoted cell holds a line break. Without a quote character none can; else the lines
    are counted (0.01 s per 16 MB, against 0.03 s for looking for a line break in every cell)."""
    if b'"' not in data:
        return False
    lines = int(np.count_nonzero(np.frombuffer(data, dtype=np.uint8) == ord("\n")))
    return records != lines + (1 if data and not data.endswith(b"\n") else 0)
