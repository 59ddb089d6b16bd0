"""Browsing one list as a table: filters (country, reason, source, who decided, listed dates), a sort on any
column but the number (numbers are sealed: they sort by nothing the database can read), real pages with the
total, and the filtered table as CSV. Every value reaches SQL as a bound parameter; a sort key is looked up
in `SORTS`, never pasted into SQL, and an unknown one is refused with the keys that exist."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import Principal, Role
from phoneops.numbers.lists import LISTS
from phoneops.numbers.models import PhoneNumber
from phoneops.numbers.vault import get_vault, mask

SORTS: dict[str, Any] = {
    "country": PhoneNumber.country, "reason": PhoneNumber.reason, "source": PhoneNumber.source,
    "authority": PhoneNumber.authority, "listed_at": PhoneNumber.listed_at,
}
DEFAULT_SORT = "-listed_at"  # newest first
EXPORT_MAX = 100_000  # rows in one CSV; the list export (Numbers → Exports) writes whole lists
FACET_MAX = 200  # values offered in a filter's drop-down


@dataclass(frozen=True)
class ListQuery:
    """One list, filtered and sorted as the page's form and column headers send it (empty = not set)."""

    status: str
    country: str = ""
    reason: str = ""
    source: str = ""
    authority: str = ""
    date_from: date | None = None
    date_to: date | None = None
    sort: str = DEFAULT_SORT  # a key of SORTS, "-" first for descending

    def checked(self) -> ListQuery:
        """The query, or ValidationFailed naming what is wrong (an unknown list or sort key, dates reversed)."""
        if self.status not in LISTS:
            raise ValidationFailed(f"status must be one of {', '.join(LISTS)}")
        if _key(self.sort or DEFAULT_SORT) not in SORTS:
            raise ValidationFailed(f"cannot sort by {self.sort!r}: sort by one of {', '.join(SORTS)} "
                                   "(a leading '-' sorts descending)", code="bad_sort")
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValidationFailed("the 'from' date is after the 'to' date")
        return replace(self, sort=self.sort or DEFAULT_SORT, country=self.country.strip().upper())

    def where(self) -> list[Any]:
        clauses: list[Any] = [PhoneNumber.status == self.status]
        for column, value in ((PhoneNumber.country, self.country), (PhoneNumber.reason, self.reason),
                              (PhoneNumber.source, self.source), (PhoneNumber.authority, self.authority)):
            if value:
                clauses.append(column == value)
        if self.date_from:
            clauses.append(PhoneNumber.listed_at >= datetime.combine(self.date_from, time.min, tzinfo=UTC))
        if self.date_to:
            clauses.append(PhoneNumber.listed_at < datetime.combine(self.date_to + timedelta(days=1), time.min,
                                                                    tzinfo=UTC))
        return clauses

    def select(self) -> Select[PhoneNumber]:
        column = SORTS[_key(self.sort)]
        descending = self.sort.startswith("-")
        order = [column.desc().nulls_last() if descending else column.asc().nulls_last(),
                 PhoneNumber.id.desc() if descending else PhoneNumber.id]
        return select(PhoneNumber).where(*self.where()).order_by(*order)

    def filters_qs(self) -> str:
        """The filters as a query string (without the sort and the page)."""
        values = {"country": self.country, "reason": self.reason, "source": self.source,
                  "authority": self.authority, "date_from": self.date_from or "", "date_to": self.date_to or ""}
        return urlencode({k: str(v) for k, v in values.items() if v})

    def qs(self) -> str:
        """Filters and sort: what a page link or the CSV link carries."""
        sort = "" if self.sort == DEFAULT_SORT else urlencode({"sort": self.sort})
        return "&".join(part for part in (self.filters_qs(), sort) if part)


def _key(sort: str) -> str:
    return sort[1:] if sort.startswith("-") else sort


def count(session: Session, query: ListQuery) -> int:
    query = query.checked()
    return int(session.scalar(select(func.count(PhoneNumber.id)).where(*query.where())) or 0)


def _row(row: PhoneNumber, reveal: bool) -> dict[str, Any]:
    e164 = get_vault().open(row.sealed, row.blind_index)
    return {
        "id": row.id, "key": row.blind_index.hex(), "number": e164 if reveal else mask(e164),
        "country": row.country, "status": row.status, "authority": row.authority, "reason": row.reason,
        "source": row.source, "listed_at": row.listed_at.isoformat() if row.listed_at else None,
    }


def page(session: Session, actor: Principal, query: ListQuery, *, limit: int = 100,
         offset: int = 0) -> list[dict[str, Any]]:
    """One page of the filtered, sorted list; plaintext only for admins, masked for everyone else."""
    query = query.checked()
    rows = session.scalars(query.select().limit(max(1, min(limit, 1000))).offset(max(0, offset)))
    reveal = actor.can(Role.admin)
    return [_row(row, reveal) for row in rows]


def facets(session: Session, status: str) -> dict[str, list[str]]:
    """The values each filter can take on this list (for its drop-downs)."""
    out: dict[str, list[str]] = {}
    for name in ("country", "reason", "source", "authority"):
        column = SORTS[name]
        values = session.scalars(select(column).where(PhoneNumber.status == status, column.is_not(None))
                                 .distinct().order_by(column).limit(FACET_MAX))
        out[name] = [str(v) for v in values if v]
    return out


CSV_COLUMNS = ("number", "country", "reason", "source", "authority", "listed_at")


def export_rows(session: Session, actor: Principal, query: ListQuery) -> Iterator[list[Any]]:
    """The filtered table's rows for CSV (at most EXPORT_MAX; numbers masked below admin), audited."""
    query = query.checked()
    reveal = actor.can(Role.admin)
    audit(session, actor, "numbers.list.export", "list", query.status,
          {"filters": query.qs(), "plaintext": reveal, "max_rows": EXPORT_MAX})
    for row in session.scalars(query.select().limit(EXPORT_MAX).execution_options(yield_per=2000)):
        data = _row(row, reveal)
        yield [data[c] or "" for c in CSV_COLUMNS]
