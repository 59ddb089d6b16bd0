"""CSV helpers shared by every export: formula-safe cells and a streaming writer."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from phoneops.core.errors import ValidationFailed

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


# --- reading uploaded tables -------------------------------------------------------------------

DELIMITERS = (",", ";", "\t", "|")
SNIFF_BYTES = 64 * 1024


class TableError(ValidationFailed, ValueError):
    """An uploaded table that cannot be read; the message says why. A 422 wherever it surfaces."""

    code = "unreadable_table"


OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # a compound file: an encrypted .xlsx or a legacy .xls


def detect_encoding(sample: bytes) -> str:
    """UTF-8 (with or without BOM), UTF-16 (BOM or NUL pattern), else Latin-1."""
    if sample.startswith(b"\xef\xbb\xbf"):
        return "utf-8-sig"
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "utf-16"
    if len(sample) >= 4 and sample[1:4:2] == b"\x00\x00" and sample[0:4:2] != b"\x00\x00":
        return "utf-16-le"
    if len(sample) >= 4 and sample[0:4:2] == b"\x00\x00" and sample[1:4:2] != b"\x00\x00":
        return "utf-16-be"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(sample) - 3:  # a multi-byte character cut by the sample's end
            return "utf-8"
        return "latin-1"


def looks_binary(text: str) -> bool:
    if not text:
        return False
    controls = sum(1 for ch in text[:4096] if ord(ch) < 32 and ch not in "\r\n\t")
    return controls > max(2, len(text[:4096]) // 100)


def detect_delimiter(text: str) -> str:
    """The delimiter giving the most consistent column count over the first lines.

    A character counts as a delimiter only when it splits the first line (a header) or most lines: one
    `|` or `,` inside a value of a single-column list does not make the list a two-column table whose other
    rows are then refused as ragged. A list no candidate splits gets the first delimiter it does not contain.
    """
    lines = [line for line in text.splitlines()[:50] if line.strip()]
    if not lines:
        return ","
    best, best_score = "", -1.0
    for delim in DELIMITERS:
        counts = [len(next(csv.reader([line], delimiter=delim))) for line in lines]
        most = max(set(counts), key=lambda c: (counts.count(c), -c))
        if counts[0] <= 1 and most <= 1:
            continue
        score = counts.count(most) / len(counts) + (0.01 * most)
        if score > best_score:
            best, best_score = delim, score
    if best:
        return best
    return next((d for d in DELIMITERS if not any(d in line for line in lines)), ",")


@dataclass(frozen=True)
class TableInfo:
    encoding: str
    delimiter: str
    kind: str  # csv | xlsx


def sniff_table(path: Path) -> TableInfo:
    with path.open("rb") as f:
        sample = f.read(SNIFF_BYTES)
    if not sample.strip():
        raise TableError("the file is empty")
    if sample.startswith(b"PK\x03\x04"):
        return TableInfo("binary", "", "xlsx")
    if sample.startswith(OLE_MAGIC):
        raise TableError("the file is a password-protected workbook or an old .xls: save it as .xlsx without a "
                         "password, or as CSV")
    encoding = detect_encoding(sample)
    if not encoding.startswith("utf-16") and b"\x00" in sample:
        raise TableError("the file contains NUL bytes, so it is not a text table: save it as CSV (UTF-8)")
    text = sample.decode(encoding, errors="replace")
    if looks_binary(text):
        raise TableError("the file is not a text table (binary content)")
    return TableInfo(encoding, detect_delimiter(text), "csv")


def iter_rows(path: Path, info: TableInfo | None = None) -> Iterator[list[str]]:
    """Every row of a CSV/TSV/xlsx file as a list of strings (xlsx: the first sheet)."""
    info = info or sniff_table(path)
    if info.kind == "xlsx":
        yield from _iter_xlsx(path)
        return
    with path.open("r", encoding=info.encoding, errors="replace", newline="") as handle:
        for row in csv.reader(handle, delimiter=info.delimiter):
            yield [cell.replace("\x00", "") for cell in row]


def _iter_xlsx(path: Path, max_cells: int = 50_000_000) -> Iterator[list[str]]:
    import zipfile
    import zlib

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
        if unpacked > 2 * 1024 * 1024 * 1024 or unpacked > 200 * max(path.stat().st_size, 1):
            raise TableError("the spreadsheet expands to an implausible size (refused)")
        # Stored uploads have no extension: hand openpyxl a file object, not the path.
        workbook = load_workbook(path.open("rb"), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, InvalidFileException) as exc:
        raise TableError(f"the spreadsheet cannot be opened: {type(exc).__name__}") from None
    try:
        if not workbook.worksheets:
            raise TableError("the spreadsheet has no sheet")
        sheet = workbook.worksheets[0]
        cells = 0
        for values in sheet.iter_rows(values_only=True):
            cells += len(values)
            if cells > max_cells:
                raise TableError("the spreadsheet has too many cells")
            yield ["" if v is None else _cell_text(v) for v in values]
    except TableError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, KeyError, OSError, ValueError, SyntaxError) as exc:
        # a truncated or damaged workbook fails while its sheet is read (ParseError is a SyntaxError)
        raise TableError(f"the spreadsheet is damaged or truncated ({type(exc).__name__}): save it again") from None
    finally:
        workbook.close()


def check_table(path: Path, info: TableInfo | None = None, rows: int = 5) -> TableInfo:
    """Sniff a file and read its first rows: a TableError (422) now for an empty, binary, encrypted, truncated
    or damaged file, rather than a job failing later."""
    info = info or sniff_table(path)
    seen = 0
    for _row in iter_rows(path, info):
        seen += 1
        if seen >= rows:
            break
    if seen == 0:
        raise TableError("the file has no rows")
    return info


def _cell_text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def normalise_header(name: str) -> str:
    """Loose header matching as the original did: trim, lower-case, drop spaces and underscores."""
    return name.strip().lstrip("\ufeff").lower().replace(" ", "").replace("_", "").replace("-", "")
