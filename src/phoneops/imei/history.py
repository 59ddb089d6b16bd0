"""Order history: search, detail, statistics over all orders, spend per day, exports.

Exports carry the original system's columns (SERVICE, IMEI NO., CREDITS, STATUS, CODE, IMEI 2, CARRIER,
SIMLOCK, MODEL, FMI, ORDER DATE, NOTES) as real comma-separated CSV (formula-safe) or XLSX. Importing a
provider export is `phoneops.imei.imports`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from phoneops.core.audit import audit
from phoneops.core.csvio import csv_lines
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.security import Principal
from phoneops.imei.inputs import MAX_BATCH_ROWS
from phoneops.imei.models import (
    DUPLICATE,
    FAILED,
    IMPORTED,
    PAID_STATES,
    PLACED,
    QUEUED,
    REVIEW,
    SENDING,
    WRITTEN_OFF,
    ImeiOrder,
)
from phoneops.imei.parsing import COMPLETED, IN_PROCESS, OPEN_STATUSES, PENDING, REJECTED, normalize_status
from phoneops.imei.submission import money_text, spend_today
from phoneops.imei.validation import check_imei
from phoneops.settings import get_settings

EXPORT_HEADER = ("SERVICE", "IMEI NO.", "CREDITS", "STATUS", "CODE", "IMEI 2", "CARRIER", "SIMLOCK", "MODEL", "FMI",
                 "ORDER DATE", "NOTES", "BRAND", "SERIAL", "MEID", "ICLOUD", "BLACKLIST", "WARRANTY", "PURCHASE DATE",
                 "ACTIVATION", "COUNTRY", "OTHER RESULT FIELDS")
TEXT_COLUMNS = frozenset(i for i, h in enumerate(EXPORT_HEADER) if h in ("IMEI NO.", "IMEI 2", "MEID", "SERIAL"))
# Result filters: the value asked → the flag column's value.
FLAG_FILTERS: dict[str, dict[str, bool]] = {
    "fmi": {"on": True, "off": False},
    "blacklist": {"blacklisted": True, "clean": False},
    "simlock": {"locked": True, "unlocked": False},
}
TEXT_FILTERS = ("carrier", "model", "brand", "country")
STATE_LABELS = {QUEUED: "Queued", SENDING: "Sending", DUPLICATE: "Duplicate", FAILED: "Failed",
                REVIEW: "Needs review", IMPORTED: "Imported", PLACED: "Placed", WRITTEN_OFF: "Written off"}
ORDER_STATES = (PLACED, IMPORTED, REVIEW)  # rows that are (or may be) orders at the provider


# --- search -------------------------------------------------------------------------------------------


def parse_imei_list(text: str | Sequence[str] | None) -> list[str]:
    """IMEIs from free text (newlines, commas, spaces); 14 digits get their check digit."""
    if not text:
        return []
    values = re.split(r"[\s,;]+", text) if isinstance(text, str) else list(text)
    found: list[str] = []
    for value in values:
        check = check_imei(value) if value.strip() else None
        digits = re.sub(r"\D", "", value)
        if check is not None and check.imei:
            found.append(check.imei)
        elif digits:
            found.append(digits[:15])  # keep what was asked: an invalid IMEI simply matches nothing
    return list(dict.fromkeys(found))


@dataclass
class OrderFilters:
    imeis: list[str] = field(default_factory=list)
    order_id: str | None = None
    statuses: list[str] = field(default_factory=list)  # provider statuses: Pending, In Process, ...
    states: list[str] = field(default_factory=list)  # ours: placed, duplicate, failed, review, ...
    service_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    text: str | None = None
    batch_id: int | None = None
    fmi: str | None = None  # on | off
    blacklist: str | None = None  # clean | blacklisted
    simlock: str | None = None  # locked | unlocked
    carrier: str | None = None  # the rest: text contained, any case
    model: str | None = None
    brand: str | None = None
    country: str | None = None

    def __post_init__(self) -> None:
        for name, allowed in FLAG_FILTERS.items():
            value = (getattr(self, name) or "").strip().lower() or None
            if value is not None and value not in allowed:
                raise ValidationFailed(f"{name} must be one of {', '.join(allowed)} (got {value!r})")
            setattr(self, name, value)
        for name in TEXT_FILTERS:
            setattr(self, name, (getattr(self, name) or "").strip()[:100] or None)

    def is_empty(self) -> bool:
        return not any((self.imeis, self.order_id, self.statuses, self.states, self.service_id, self.date_from,
                        self.date_to, self.text, self.batch_id, *(getattr(self, n) for n in FLAG_FILTERS),
                        *(getattr(self, n) for n in TEXT_FILTERS)))


def _like(value: str) -> str:
    escaped = value.strip().lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _when() -> ColumnElement[datetime]:
    return func.coalesce(ImeiOrder.order_date, ImeiOrder.created_at)


def _filtered(query: Select[Any], filters: OrderFilters) -> Select[Any]:
    if filters.imeis:
        query = query.where(ImeiOrder.imei.in_(filters.imeis[:MAX_BATCH_ROWS]))
    if filters.order_id:
        query = query.where(ImeiOrder.order_id == filters.order_id.strip())
    if filters.statuses:
        query = query.where(ImeiOrder.status.in_([normalize_status(s) for s in filters.statuses]))
    if filters.states:
        query = query.where(ImeiOrder.state.in_(filters.states))
    else:
        query = query.where(ImeiOrder.state != QUEUED)
    if filters.service_id:
        query = query.where(ImeiOrder.service_id == filters.service_id.strip())
    if filters.batch_id is not None:
        query = query.where(ImeiOrder.batch_id == filters.batch_id)
    if filters.date_from:
        query = query.where(_when() >= datetime.combine(filters.date_from, datetime.min.time(), tzinfo=UTC))
    if filters.date_to:
        end = datetime.combine(filters.date_to + timedelta(days=1), datetime.min.time(), tzinfo=UTC)
        query = query.where(_when() < end)
    for name, allowed in FLAG_FILTERS.items():
        wanted = getattr(filters, name)
        if wanted:
            column = {"fmi": ImeiOrder.fmi_on, "blacklist": ImeiOrder.blacklisted, "simlock": ImeiOrder.sim_locked}
            query = query.where(column[name].is_(allowed[wanted]))
    for name in TEXT_FILTERS:
        wanted = getattr(filters, name)
        if wanted:
            query = query.where(func.lower(getattr(ImeiOrder, name)).like(_like(wanted), escape="\\"))
    if filters.text and filters.text.strip():
        pattern = _like(filters.text)
        columns = (ImeiOrder.imei, ImeiOrder.order_id, ImeiOrder.model, ImeiOrder.carrier, ImeiOrder.service_title,
                   ImeiOrder.code_display, ImeiOrder.notes, ImeiOrder.error, ImeiOrder.imei2, ImeiOrder.serial,
                   ImeiOrder.meid, ImeiOrder.country)
        query = query.where(or_(*(func.lower(c).like(pattern, escape="\\") for c in columns)))
    return query


@dataclass(frozen=True)
class OrderPage:
    items: list[ImeiOrder]
    total: int
    page: int
    per_page: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))


def search_orders(session: Session, filters: OrderFilters, *, page: int = 1, per_page: int = 50) -> OrderPage:
    per_page = max(1, min(per_page, 500))
    page = max(1, page)
    total = session.scalar(_filtered(select(func.count(ImeiOrder.id)), filters)) or 0
    items = session.scalars(
        _filtered(select(ImeiOrder), filters)
        .order_by(_when().desc(), ImeiOrder.id.desc())
        .offset((page - 1) * per_page)
        .limit(per_page)
    )
    return OrderPage(list(items), int(total), page, per_page)


def get_order(session: Session, row_id: int) -> ImeiOrder:
    order = session.get(ImeiOrder, row_id)
    if order is None:
        raise NotFound(f"no IMEI order {row_id}")
    return order


def find_orders(session: Session, reference: str) -> list[ImeiOrder]:
    """Orders for a provider order id, else for an IMEI (newest first)."""
    reference = reference.strip()
    by_id = session.scalar(select(ImeiOrder).where(ImeiOrder.order_id == reference))
    if by_id is not None:
        return [by_id]
    imeis = parse_imei_list(reference)
    if not imeis:
        return []
    return list(
        session.scalars(
            select(ImeiOrder).where(ImeiOrder.imei == imeis[0], ImeiOrder.state != QUEUED)
            .order_by(ImeiOrder.id.desc()).limit(50)
        )
    )


# --- statistics ---------------------------------------------------------------------------------------


def _day(session: Session, column: Any) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite stores UTC as 'YYYY-MM-DD HH:MM:SS.ffffff'


def spend_by_day(session: Session, days: int = 14) -> dict[str, Decimal]:
    """Credits of accepted orders per UTC day, oldest first, every day present (zero when none)."""
    days = max(1, min(days, 366))
    today = utcnow().date()
    start = datetime.combine(today - timedelta(days=days - 1), datetime.min.time(), tzinfo=UTC)
    day = _day(session, ImeiOrder.placed_at)
    rows = session.execute(
        select(day, func.coalesce(func.sum(ImeiOrder.credits), 0))
        .where(ImeiOrder.state.in_(PAID_STATES), ImeiOrder.placed_at >= start)
        .group_by(day)
    )
    found = {str(d): Decimal(str(total)) for d, total in rows}
    return {(k := (today - timedelta(days=n)).isoformat()): found.get(k, Decimal(0)) for n in range(days - 1, -1, -1)}


def statistics(session: Session) -> dict[str, Any]:
    """Figures over ALL orders (the original computed them from the last 50 only)."""
    states = session.execute(select(ImeiOrder.state, func.count(ImeiOrder.id)).group_by(ImeiOrder.state))
    by_state = {str(s): int(n) for s, n in states}
    by_status = {
        str(s or "unknown"): int(n)
        for s, n in session.execute(
            select(ImeiOrder.status, func.count(ImeiOrder.id))
            .where(ImeiOrder.state.in_(ORDER_STATES)).group_by(ImeiOrder.status)
        )
    }
    credits = session.scalar(
        select(func.coalesce(func.sum(ImeiOrder.credits), 0)).where(or_(
            ImeiOrder.state.in_((PLACED, IMPORTED)),
            ImeiOrder.state.in_(PAID_STATES) & ImeiOrder.placed_at.is_not(None)))
    )
    today = datetime.combine(utcnow().date(), datetime.min.time(), tzinfo=UTC)
    orders_today = session.scalar(
        select(func.count(ImeiOrder.id)).where(ImeiOrder.state.in_(PAID_STATES), ImeiOrder.placed_at >= today)
    )
    return {
        "total_orders": sum(by_state.get(s, 0) for s in ORDER_STATES),
        "completed": by_status.get(COMPLETED, 0),
        "rejected": by_status.get(REJECTED, 0),
        "pending": by_status.get(PENDING, 0) + by_status.get(IN_PROCESS, 0),
        "needs_review": by_state.get(REVIEW, 0),
        "duplicates": by_state.get(DUPLICATE, 0),
        "failed": by_state.get(FAILED, 0),
        "total_credits": money_text(Decimal(str(credits or 0))),
        "orders_today": int(orders_today or 0),
        "spend_today": money_text(spend_today(session)),
        "daily_budget": money_text(get_settings().imei_daily_budget),
        "by_status": by_status,
        "by_state": by_state,
    }


# --- exports ------------------------------------------------------------------------------------------


def _code_text(order: ImeiOrder) -> str:
    return (order.code_display or order.code or "").replace("\n", " - ")


def export_row(order: ImeiOrder) -> list[object]:
    when = order.order_date or order.placed_at or order.created_at
    status = order.status if order.state in (PLACED, IMPORTED) and order.status else STATE_LABELS.get(order.state)
    notes = "; ".join(x for x in (order.notes, order.error if order.state != PLACED else None) if x)
    return [
        order.service_title or order.service_id or "", order.imei,
        None if order.credits is None or order.state not in (*PAID_STATES, REVIEW) else order.credits,
        status or "", _code_text(order), order.imei2 or "", order.carrier or "", order.simlock or "",
        order.model or "", order.fmi or "", when.strftime("%Y-%m-%d %H:%M:%S") if when else "", notes,
        order.brand or "", order.serial or "", order.meid or "", order.icloud or "", order.blacklist or "",
        order.warranty or "", order.purchase_date or "", order.activation or "", order.country or "",
        "; ".join(f"{k}: {v}" for k, v in (order.result_extra or {}).items()),
    ]


def _export_query(filters: OrderFilters) -> Select[Any]:
    return _filtered(select(ImeiOrder), filters).order_by(_when().desc(), ImeiOrder.id.desc())


def export_csv(session: Session, actor: Principal, filters: OrderFilters) -> Iterator[str]:
    """The export as comma-separated lines, streamed from its own session; audited in the caller's."""
    audit(session, actor, "imei.export", "imei_orders", None, {"format": "csv", "filters": _describe(filters)})

    def rows() -> Iterator[list[object]]:
        with session_scope() as reader:
            for order in reader.scalars(_export_query(filters).execution_options(yield_per=1000)):
                row = export_row(order)
                if isinstance(row[2], Decimal):
                    row[2] = money_text(row[2])
                yield row

    return csv_lines(EXPORT_HEADER, rows())


def export_xlsx(session: Session, actor: Principal, filters: OrderFilters, out: IO[bytes]) -> int:
    """Write the export as XLSX into `out`; returns the number of rows."""
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    audit(session, actor, "imei.export", "imei_orders", None, {"format": "xlsx", "filters": _describe(filters)})
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("orders")
    sheet.append(list(EXPORT_HEADER))
    count = 0
    for order in session.scalars(_export_query(filters).execution_options(yield_per=1000)):
        values = export_row(order)
        cells: list[object] = []
        for index, value in enumerate(values):
            if isinstance(value, str) and value.startswith(("=", "+", "-", "@")):
                value = "'" + value  # never a formula
            if index == 2 and isinstance(value, Decimal):
                cell = WriteOnlyCell(sheet, value=float(value))
                cell.number_format = '"$"#,##0.00'
                cells.append(cell)
            elif index in TEXT_COLUMNS and value:  # a text cell: never 3.5E+14
                cell = WriteOnlyCell(sheet, value=str(value))
                cell.number_format = "@"
                cells.append(cell)
            else:
                cells.append(value)
        sheet.append(cells)
        count += 1
    workbook.save(out)
    return count


def _describe(filters: OrderFilters) -> dict[str, Any]:
    data = {k: v for k, v in vars(filters).items() if v}
    if "imeis" in data:
        data["imeis"] = len(filters.imeis)
    return {k: (v.isoformat() if isinstance(v, date) else v) for k, v in data.items()}


def open_orders(session: Session) -> int:
    return int(
        session.scalar(
            select(func.count(ImeiOrder.id)).where(
                ImeiOrder.state == PLACED, ImeiOrder.status.in_(sorted(OPEN_STATUSES))
            )
        )
        or 0
    )
