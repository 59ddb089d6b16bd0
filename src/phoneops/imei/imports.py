"""Import of a GSM Fusion export (Excel or CSV with SERVICE, IMEI NO., CREDITS, STATUS, CODE, ...) into history.

A row never creates a second history row for an order we already hold: it matches an order of the same
IMEI and service placed within 36 hours of its ORDER DATE (the provider's clock zone is unknown), an order
awaiting review (the export proves it exists), or — without a date — the newest order of that IMEI and
service. Everything else is inserted as an `imported` order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.csvio import TableError, iter_rows
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import Principal
from phoneops.imei.inputs import MAX_BATCH_ROWS, readable_table
from phoneops.imei.models import IMPORTED, ORDER_LIKE_STATES, REVIEW, ImeiImport, ImeiOrder, ImeiService
from phoneops.imei.parsing import fmi_flag, normalize_status, simlock_flag
from phoneops.imei.results import store_result
from phoneops.imei.validation import check_imei

MATCH_WINDOW = timedelta(hours=36)
_CHUNK = 500
_DATE_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d", "%d/%m/%Y %H:%M",
                 "%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M", "%d.%m.%Y %H:%M", "%m/%d/%Y", "%d/%m/%Y")


_IMPORT_HEADERS = {
    "service": "service", "imeino": "imei", "imei": "imei", "imeinumber": "imei", "credits": "credits",
    "credit": "credits", "price": "credits", "status": "status", "code": "code", "result": "code", "imei2": "imei2",
    "carrier": "carrier", "simlock": "simlock", "model": "model", "fmi": "fmi", "findmyiphone": "fmi",
    "orderdate": "order_date", "date": "order_date", "requestedat": "order_date", "notes": "notes",
}


def _header_key(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _money(text: str) -> Decimal | None:
    cleaned = text.replace("$", "").replace(",", "").strip()
    if not cleaned:
        return None
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    return value if value.is_finite() and value >= 0 else None


def _datetime(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    text = text.split(".")[0] if re.match(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d\.\d+$", text) else text
    for fmt in _DATE_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


@dataclass
class _ImportRow:
    imei: str
    service: str
    credits: Decimal | None
    status: str | None
    code: str
    values: dict[str, str]
    when: datetime | None


def _read_export(path: Path) -> tuple[list[_ImportRow], int, int]:
    try:
        with readable_table(path) as readable:
            return _parse_export(readable)
    except TableError as exc:
        raise ValidationFailed(str(exc)) from None


def _parse_export(path: Path) -> tuple[list[_ImportRow], int, int]:
    table = iter_rows(path)
    header = next(table, None)
    if header is None:
        raise ValidationFailed("the file is empty")
    columns = {i: _IMPORT_HEADERS[k] for i, h in enumerate(header) if (k := _header_key(h)) in _IMPORT_HEADERS}
    if "imei" not in columns.values():
        raise ValidationFailed("the file needs an 'IMEI NO.' (or 'imei') column, as in a GSM Fusion export")
    rows: list[_ImportRow] = []
    total = skipped = 0
    for cells in table:
        if not any(c.strip() for c in cells):
            continue
        total += 1
        if total > MAX_BATCH_ROWS:
            raise ValidationFailed(f"an import holds at most {MAX_BATCH_ROWS} rows")
        data = {name: cells[i].strip() for i, name in columns.items() if i < len(cells)}
        check = check_imei(data.get("imei", ""))
        if check.imei is None:
            skipped += 1
            continue
        rows.append(_ImportRow(
            imei=check.imei, service=data.get("service", "")[:255], credits=_money(data.get("credits", "")),
            status=normalize_status(data.get("status")) or None, code=data.get("code", ""),
            values=data, when=_datetime(data.get("order_date", "")),
        ))
    return rows, total, skipped


def _match(candidates: list[ImeiOrder], row: _ImportRow, used: set[int]) -> ImeiOrder | None:
    service = row.service.casefold()
    same = [c for c in candidates if c.id not in used and (not service or (c.service_title or "").casefold() == service
                                                           or (c.service_id or "") == row.service)]
    if not same:
        return None
    if row.when is not None:
        dated = [c for c in same if (c.order_date or c.placed_at) is not None]
        close = [c for c in dated if abs((c.order_date or c.placed_at) - row.when) <= MATCH_WINDOW]  # type: ignore[operator]
        if close:
            return min(close, key=lambda c: abs((c.order_date or c.placed_at) - row.when))  # type: ignore[operator]
        undated = [c for c in same if c.state == REVIEW]
        return undated[0] if undated else None
    return max(same, key=lambda c: c.id)


def _apply(order: ImeiOrder, row: _ImportRow) -> None:
    if row.status:
        order.status = row.status[:16]
    if row.code:
        store_result(order, row.code)
    for attr, size in (("carrier", 255), ("simlock", 255), ("model", 255), ("fmi", 64), ("imei2", 32)):
        value = row.values.get(attr)
        if value:
            setattr(order, attr, str(value)[:size])
    if row.values.get("fmi"):
        order.fmi_on = fmi_flag(order.fmi)
    if row.values.get("simlock"):
        order.sim_locked = simlock_flag(order.simlock)
    if row.credits is not None and order.credits is None:
        order.credits = row.credits
    if row.values.get("notes") and not order.notes:
        order.notes = row.values["notes"]


def import_provider_export(session: Session, actor: Principal, path: Path, file_name: str) -> ImeiImport:
    """Import a GSM Fusion export into history; rows we already hold are updated, never duplicated."""
    rows, total, skipped = _read_export(path)
    titles = {s.title.casefold(): s.package_id for s in session.scalars(select(ImeiService))}
    inserted = updated = 0
    seen: set[tuple[str, str, str]] = set()
    used: set[int] = set()
    imeis = sorted({r.imei for r in rows})
    candidates: dict[str, list[ImeiOrder]] = {}
    for start in range(0, len(imeis), _CHUNK):
        for order in session.scalars(
            select(ImeiOrder).where(ImeiOrder.imei.in_(imeis[start : start + _CHUNK]),
                                    ImeiOrder.state.in_(ORDER_LIKE_STATES))
        ):
            candidates.setdefault(order.imei, []).append(order)
    for row in rows:
        key = (row.imei, row.service.casefold(), row.when.isoformat() if row.when else "")
        if key in seen:
            skipped += 1
            continue
        seen.add(key)
        match = _match(candidates.get(row.imei, []), row, used)
        if match is not None:
            used.add(match.id)
            _apply(match, row)
            if match.state == REVIEW:
                match.state = IMPORTED
                match.placed_at = match.placed_at or match.sent_at or row.when
                match.notes = f"confirmed by the provider export {file_name}"
                match.error, match.review_reason = None, None
                match.resolved_by, match.resolved_at = actor.username, datetime.now(UTC)
            updated += 1
            continue
        order = ImeiOrder(
            imei=row.imei, service_id=titles.get(row.service.casefold()), service_title=row.service, state=IMPORTED,
            source="import", credits=row.credits, order_date=row.when, placed_at=row.when, fields={},
        )
        _apply(order, row)
        session.add(order)
        inserted += 1
        if inserted % 1000 == 0:
            session.flush()
    record = ImeiImport(file_name=file_name[:255], rows_total=total, rows_inserted=inserted, rows_updated=updated,
                        rows_skipped=skipped, created_by=actor.user_id)
    session.add(record)
    session.flush()
    audit(session, actor, "imei.import", "imei_import", record.id,
          {"file_name": file_name, "rows": total, "inserted": inserted, "updated": updated, "skipped": skipped})
    return record
