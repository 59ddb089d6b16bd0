"""What a submission is made of: IMEIs from a textarea or a CSV/XLSX file, with optional service and fields.

A file needs a column `imei` (any case; `IMEI NO.` too), may carry a `service` column (service, serviceId,
networkId, packageId) and the provider's optional placeorder fields under any spelling (`Model No`,
`model_no`, `modelNo`). Nothing is validated here; `phoneops.imei.submission` does that.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phoneops.core.csvio import TableError, iter_rows, sniff_table
from phoneops.core.errors import ValidationFailed
from phoneops.imei.client import ORDER_FIELDS

MAX_BATCH_ROWS = 100_000
_SPLIT = re.compile(r"[\s,;]+")


def _key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


_FIELD_BY_KEY = {_key(name): name for name in ORDER_FIELDS}
_IMEI_HEADERS = {"imei", "imeino", "imeinumber", "imei1"}
# GSM Fusion calls the service `networkId` in placeorder: the most specific name wins; several service columns
# are only accepted when they agree on every row.
_SERVICE_HEADERS = ("networkid", "packageid", "serviceid", "service", "network")


@dataclass(frozen=True)
class InputRow:
    """One IMEI as given: the raw value, an optional per-row service and provider fields, its line."""

    value: str
    service_id: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    line: int | None = None


def provider_fields(given: dict[str, Any] | None) -> dict[str, str]:
    """Optional placeorder fields under the provider's names (`model_no`, `Model No` → `modelNo`)."""
    result: dict[str, str] = {}
    for name, value in (given or {}).items():
        canonical = _FIELD_BY_KEY.get(_key(str(name)))
        if canonical is None:
            raise ValidationFailed(
                f"unknown provider field {name!r}; allowed: {', '.join(ORDER_FIELDS)}", details={"field": name}
            )
        text = "" if value is None else str(value).strip()
        if "," in text or len(text) > 100:
            raise ValidationFailed(f"provider field {name!r} must be a short value without commas")
        if text:
            result[canonical] = text
    return result


def rows_from_text(text: str) -> list[InputRow]:
    """IMEIs from a textarea: one per line (commas, semicolons and spaces also separate)."""
    rows: list[InputRow] = []
    for number, line in enumerate(text.splitlines(), start=1):
        rows.extend(InputRow(value, line=number) for value in _SPLIT.split(line) if value)
    return rows


@contextmanager
def readable_table(path: Path) -> Iterator[Path]:
    """`path`, or a link to it named `.xlsx`: openpyxl refuses a workbook whose name lacks the suffix, and
    stored uploads are named by id only."""
    if path.suffix.lower() in (".xlsx", ".xlsm") or sniff_table(path).kind != "xlsx":
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="phoneops-xlsx-") as tmp:
        link = Path(tmp) / "upload.xlsx"
        link.symlink_to(path.resolve())
        yield link


def rows_from_table(path: Path) -> list[InputRow]:
    """Rows of a CSV or XLSX file with a column `imei` (any case), optional `service` and provider fields."""
    with readable_table(path) as readable:
        return _rows_from_table(readable)


def _rows_from_table(path: Path) -> list[InputRow]:
    try:
        table = iter_rows(path)
        header = next(table, None)
        if header is None:
            raise ValidationFailed("the file is empty")
        keys = [_key(h) for h in header]
        imei_col = next((i for i, k in enumerate(keys) if k in _IMEI_HEADERS), None)
        if imei_col is None:
            raise ValidationFailed("the file needs a column named 'imei' (found: " + ", ".join(header[:10]) + ")")
        service_cols = sorted((i for i, k in enumerate(keys) if k in _SERVICE_HEADERS),
                              key=lambda i: _SERVICE_HEADERS.index(keys[i]))
        service_col = service_cols[0] if service_cols else None
        field_cols = {i: _FIELD_BY_KEY[k] for i, k in enumerate(keys) if k in _FIELD_BY_KEY and i not in service_cols}
        rows: list[InputRow] = []
        for number, cells in enumerate(table, start=2):
            if len(rows) > MAX_BATCH_ROWS:
                raise ValidationFailed(f"a batch holds at most {MAX_BATCH_ROWS} rows")
            value = cells[imei_col].strip() if imei_col < len(cells) else ""
            if not value and not any(c.strip() for c in cells):
                continue
            service = cells[service_col].strip() if service_col is not None and service_col < len(cells) else ""
            others = {cells[i].strip() for i in service_cols[1:] if i < len(cells) and cells[i].strip()}
            if others - {service}:
                names = ", ".join(repr(header[i]) for i in service_cols)
                raise ValidationFailed(f"line {number}: the columns {names} disagree on the service; keep one service "
                                       "column (the service id, as in `phoneops imei services`)")
            extra = {name: cells[i].strip() for i, name in field_cols.items() if i < len(cells) and cells[i].strip()}
            rows.append(InputRow(value, service or None, extra, number))
        return rows
    except TableError as exc:
        raise ValidationFailed(str(exc)) from None
