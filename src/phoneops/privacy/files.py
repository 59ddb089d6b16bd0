"""Removing one number from stored files: uploads and produced CSV / XLSX, rewritten in place (same file id).

A CSV (any encoding and delimiter `core.csvio` detects) keeps its encoding and delimiter; every row with a cell
that is the number is dropped, the others are written back unchanged (quoting may differ). An XLSX keeps its
sheets; rows holding the number are dropped from every sheet (values are kept, formatting is not). Files that are
neither (binary, empty) are left alone and counted as skipped. A file is only rewritten when it held the number.
"""

from __future__ import annotations

import csv
import gc
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from phoneops.core.csvio import TableError, sniff_table
from phoneops.core.models import StoredFile
from phoneops.core.storage import Storage
from phoneops.privacy.matching import Matcher

BATCH_ROWS = 50_000
MAX_UNPACKED = 2 * 1024 * 1024 * 1024


@dataclass
class FileOutcome:
    kind: str  # csv | xlsx | skipped
    rows_removed: int = 0
    reason: str | None = None


def _batches(rows: Iterator[list[Any]], size: int = BATCH_ROWS) -> Iterator[list[list[Any]]]:
    while batch := list(islice(rows, size)):
        yield batch


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The collector held off while a pass makes millions of short-lived, acyclic cells and rows (freed by
    their reference counts): its full collections walk every live row of the batch again and again (2-3x the
    CPU of reading, splitting into columns and cleaning the cells)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _holds_nul(path: Path) -> bool:
    """Whether the file has a NUL byte (always, in UTF-16 / UTF-32 text): its cells are then cleaned of NUL
    characters before matching; otherwise there is none to clean."""
    with path.open("rb") as handle:
        return any(b"\x00" in chunk for chunk in iter(lambda: handle.read(1 << 20), b""))


def _csv_hits(path: Path, encoding: str, delimiter: str, matcher: Matcher) -> list[int]:
    """The indexes of the rows (as csv.reader reads them) holding the number."""
    hits: list[int] = []
    nul = _holds_nul(path)
    with path.open("r", encoding=encoding, errors="strict", newline="") as handle, _gc_paused():
        start = 0
        for batch in _batches(iter(csv.reader(handle, delimiter=delimiter))):
            found = matcher.rows([[cell.replace("\x00", "") for cell in row] for row in batch] if nul else batch)
            hits += [start + i for i, hit in enumerate(found) if hit]
            start += len(batch)
    return hits


def _csv_write(path: Path, encoding: str, delimiter: str, out: Path, hits: list[int]) -> None:
    """Write the file to `out` without the rows `hits` (as `_csv_hits` found them: the same file, read the
    same way, is not matched again); the rows between them are copied by csv in C."""
    with path.open("r", encoding=encoding, errors="strict", newline="") as handle:
        sample = handle.read(64 * 1024)
        terminator = "\r\n" if "\r\n" in sample else "\n"
        handle.seek(0)
        with out.open("w", encoding=encoding, newline="") as target:
            reader = csv.reader(handle, delimiter=delimiter)
            writer = csv.writer(target, delimiter=delimiter, lineterminator=terminator)
            at = 0
            for index in sorted(set(hits)):
                writer.writerows(islice(reader, index - at))
                next(reader, None)
                at = index + 1
            writer.writerows(reader)


def _csv_pass(path: Path, encoding: str, delimiter: str, matcher: Matcher, out: Path | None) -> int:
    """Count (and with `out`, write without) the rows holding the number."""
    hits = _csv_hits(path, encoding, delimiter, matcher)
    if out is not None:
        _csv_write(path, encoding, delimiter, out, hits)
    return len(hits)


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as archive:
        unpacked = sum(info.file_size for info in archive.infolist())
    if unpacked > MAX_UNPACKED or unpacked > 200 * max(path.stat().st_size, 1):
        raise TableError("the spreadsheet expands to an implausible size")


def _xlsx_pass(path: Path, matcher: Matcher, out: Path | None) -> int:
    from openpyxl import Workbook, load_workbook

    _check_zip(path)
    with path.open("rb") as handle:
        book = load_workbook(handle, read_only=True, data_only=False)
        try:
            target = Workbook(write_only=True) if out else None
            removed = 0
            for sheet in book.worksheets:
                written = target.create_sheet(sheet.title) if target else None
                rows = (list(values) for values in sheet.iter_rows(values_only=True))
                for batch in _batches(rows):
                    hits = matcher.rows([[_text(v) for v in row] for row in batch])
                    removed += sum(hits)
                    if written is not None:
                        for row, hit in zip(batch, hits, strict=True):
                            if not hit:
                                written.append(row)
            if target is not None and out is not None:
                target.save(out)
            return removed
        finally:
            book.close()


def erase_from_file(session: Session, storage: Storage, row: StoredFile, matcher: Matcher) -> FileOutcome:
    """Drop the rows holding the number from one stored file; the caller audits and counts."""
    with storage.local_path(row) as path:
        try:
            info = sniff_table(path)
        except TableError as exc:
            return FileOutcome("skipped", reason=str(exc))
        hits: list[int] = []
        try:
            if info.kind == "xlsx":
                removed = _xlsx_pass(path, matcher, None)
            else:
                hits = _csv_hits(path, info.encoding, info.delimiter, matcher)
                removed = len(hits)
        except (TableError, zipfile.BadZipFile, UnicodeDecodeError, csv.Error, OSError, KeyError, ValueError) as exc:
            return FileOutcome("skipped", reason=f"not readable as a table: {type(exc).__name__}")
        if not removed:
            return FileOutcome(info.kind)
        tmp_dir = storage.scratch_dir()
        tmp_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=tmp_dir, prefix="erase-", delete=False) as handle:
            out = Path(handle.name)
        try:
            if info.kind == "xlsx":
                _xlsx_pass(path, matcher, out)
            else:
                _csv_write(path, info.encoding, info.delimiter, out, hits)
        except BaseException:
            out.unlink(missing_ok=True)
            raise
    storage.replace_content(session, row, out)
    return FileOutcome(info.kind, rows_removed=removed)
