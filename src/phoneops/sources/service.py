"""Source labels and the per-source report (docs/sources.md).

A list (a cleaning upload, a numbers import, an Ongage CSV) is labelled when it comes in; its numbers are
recorded as members of the source by blind index only. The report joins members with what other domains
recorded by blind index (HLR lookups paid, tracker clicks, REG/FTD conversions and revenue) in SQL, and adds the
MessageWhiz broadcasts whose group name is the source's label (MessageWhiz reports per broadcast, not per
number). No phone number is read or written here.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from phoneops.broadcasts.analytics import group_days
from phoneops.core.audit import audit
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import Principal
from phoneops.hlr.outputs import credits_per_number_days
from phoneops.numbers.optouts import active_indexes
from phoneops.settings import get_settings
from phoneops.sources.models import SourceList, SourceNumber
from phoneops.voluum.conversions import per_number_days
from phoneops.voluum.traffic import clicks_per_number_days

LABEL = re.compile(r"^[a-z0-9][a-z0-9 ._-]{0,63}$")
VIAS = ("cleaning", "import", "ongage")
CHUNK = 5000
DEFAULT_DAYS = 30
MAX_DAYS = 366


def normalise_label(raw: str | None) -> str | None:
    """A source label: 1-64 of a-z 0-9 space . _ - (lower-cased, spaces collapsed); None when empty."""
    text = " ".join((raw or "").split()).lower()
    if not text:
        return None
    if not LABEL.match(text):
        raise ValidationFailed("a source label is 1-64 characters: letters, digits, space, '.', '_' or '-' "
                               f"(got {raw!r})", code="bad_source_label")
    return text


def label_list(session: Session, actor: Principal, label: str | None, via: str, ref: object, name: str) -> str | None:
    """Label a list when it comes in (before its numbers are read); returns the normalised label."""
    source = normalise_label(label)
    if source is None:
        return None
    if via not in VIAS:
        raise ValueError(f"unknown list kind {via!r}")
    row = session.scalar(select(SourceList).where(SourceList.via == via, SourceList.ref == str(ref)))
    if row is None:
        session.add(SourceList(source=source, via=via, ref=str(ref), name=name[:255], created_by=actor.username))
    else:
        row.source = source
    session.flush()
    audit(session, actor, "sources.label", f"{via}_list", str(ref), {"source": source})
    return source


def label_of(session: Session, via: str, ref: object) -> str | None:
    return session.scalar(select(SourceList.source).where(SourceList.via == via, SourceList.ref == str(ref)))


def record(session: Session, via: str, ref: object, members: Iterable[tuple[bytes, bool]]) -> int:
    """Record the numbers (blind index, kept) a labelled list brought; nothing when the list has no label.
    A number already in the source stays (kept once kept). Returns how many members were recorded."""
    listed = session.scalar(select(SourceList).where(SourceList.via == via, SourceList.ref == str(ref)))
    if listed is None:
        return 0
    unique: dict[bytes, bool] = {}
    for index, kept in members:
        unique[index] = unique.get(index, False) or kept
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    items = list(unique.items())
    for start in range(0, len(items), CHUNK):
        rows = [{"source": listed.source, "blind_index": index, "kept": kept, "via": via}
                for index, kept in items[start : start + CHUNK]]
        statement = insert(SourceNumber).values(rows)
        session.execute(statement.on_conflict_do_update(
            index_elements=["source", "blind_index"],
            set_={"kept": SourceNumber.kept | statement.excluded.kept}))
    listed.numbers += len(items)
    listed.kept += sum(1 for _, kept in items if kept)
    return len(items)


# --- the report -----------------------------------------------------------------------------------------


@dataclass
class SourceLine:
    source: str
    lists: int = 0
    numbers: int = 0
    kept: int = 0
    opted_out: int = 0
    hlr_credits: Decimal = Decimal(0)
    hlr_spend: Decimal = Decimal(0)
    sms_sent: int = 0
    sms_cost: Decimal = Decimal(0)
    clicks: int = 0
    regs: int = 0
    ftds: int = 0
    revenue: Decimal = Decimal(0)
    days: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # day -> {cost, revenue}

    @property
    def cost(self) -> Decimal:
        return self.hlr_spend + self.sms_cost

    @property
    def cost_per_ftd(self) -> Decimal | None:
        return (self.cost / self.ftds).quantize(Decimal("0.01")) if self.ftds else None

    @property
    def roi(self) -> Decimal | None:
        """(revenue - cost) / cost, in percent."""
        return ((self.revenue - self.cost) * 100 / self.cost).quantize(Decimal("0.1")) if self.cost else None

    def add_day(self, day: Any, what: str, amount: Decimal) -> None:
        point = self.days.setdefault(str(day)[:10], {"cost": Decimal(0), "revenue": Decimal(0)})
        point[what] += amount

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "lists": self.lists, "numbers": self.numbers, "kept": self.kept,
                "opted_out": self.opted_out, "hlr_credits": _money(self.hlr_credits),
                "hlr_spend": _money(self.hlr_spend),
                "sms_sent": self.sms_sent, "sms_cost": _money(self.sms_cost), "clicks": self.clicks,
                "regs": self.regs, "ftds": self.ftds, "revenue": _money(self.revenue), "cost": _money(self.cost),
                "cost_per_ftd": _money(self.cost_per_ftd) if self.cost_per_ftd is not None else None,
                "roi_percent": str(self.roi) if self.roi is not None else None}


@dataclass
class Report:
    start: date
    end: date
    sources: list[SourceLine]

    def series(self, line: SourceLine) -> list[tuple[str, float, float]]:
        """(day, cost, revenue) for every day of the period, empty days included."""
        out = []
        day = self.start
        while day <= self.end:
            point = line.days.get(day.isoformat(), {})
            out.append((day.isoformat(), float(point.get("cost", 0)), float(point.get("revenue", 0))))
            day += timedelta(days=1)
        return out


def _money(value: Decimal) -> str:
    return str(Decimal(value).quantize(Decimal("0.01")))


def window(start: date | str | None, end: date | str | None) -> tuple[date, date]:
    try:
        last = date.fromisoformat(str(end)) if end else date.today()
        first = date.fromisoformat(str(start)) if start else last - timedelta(days=DEFAULT_DAYS - 1)
    except ValueError:
        raise ValidationFailed("dates are YYYY-MM-DD") from None
    if last < first:
        raise ValidationFailed(f"the period ends ({last}) before it starts ({first})")
    if (last - first).days + 1 > MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days at once")
    return first, last


def report(session: Session, start: date | str | None = None, end: date | str | None = None) -> Report:
    """Per source: lists, numbers, kept, opted out (now), and for the period HLR spend, SMS sent and cost,
    clicks, REG, FTD, revenue, with cost per FTD and ROI; a per-day cost and revenue series."""
    first, last = window(start, end)
    lines: dict[str, SourceLine] = {}

    def line(source: str) -> SourceLine:
        return lines.setdefault(source, SourceLine(source))

    for source, lists in session.execute(select(SourceList.source, func.count()).group_by(SourceList.source)):
        line(source).lists = int(lists)
    member = SourceNumber
    for source, numbers, kept in session.execute(
        select(member.source, func.count(), func.sum(case((member.kept.is_(True), 1), else_=0)))
        .group_by(member.source)
    ):
        line(source).numbers, line(source).kept = int(numbers), int(kept or 0)
    optouts = active_indexes()
    for source, count in session.execute(
        select(member.source, func.count()).join(optouts, optouts.c.blind_index == member.blind_index)
        .group_by(member.source)
    ):
        line(source).opted_out = int(count)
    price = get_settings().hlr_credit_price
    hlr = credits_per_number_days(first, last)
    for source, day, credits in session.execute(
        select(member.source, hlr.c.day, func.sum(hlr.c.credits)).join(hlr, hlr.c.blind_index == member.blind_index)
        .group_by(member.source, hlr.c.day)
    ):
        spent = Decimal(str(credits or 0))
        line(source).hlr_credits += spent
        line(source).hlr_spend += spent * price
        line(source).add_day(day, "cost", spent * price)
    clicks = clicks_per_number_days(first, last)
    for source, count in session.execute(
        select(member.source, func.sum(clicks.c.clicks)).join(clicks, clicks.c.blind_index == member.blind_index)
        .group_by(member.source)
    ):
        line(source).clicks = int(count or 0)
    conversions = per_number_days(first, last)
    for source, day, regs, ftds, revenue in session.execute(
        select(member.source, conversions.c.day, func.sum(conversions.c.regs), func.sum(conversions.c.ftds),
               func.sum(conversions.c.revenue))
        .join(conversions, conversions.c.blind_index == member.blind_index).group_by(member.source, conversions.c.day)
    ):
        found = line(source)
        found.regs += int(regs or 0)
        found.ftds += int(ftds or 0)
        found.revenue += Decimal(str(revenue or 0))
        found.add_day(day, "revenue", Decimal(str(revenue or 0)))
    known = set(lines)
    sms = group_days(first, last)
    for group, day, sent, cost in session.execute(select(sms.c.group_name, sms.c.day, sms.c.sent, sms.c.cost)):
        if group in known:
            lines[group].sms_sent += int(sent or 0)
            lines[group].sms_cost += Decimal(str(cost or 0))
            lines[group].add_day(day, "cost", Decimal(str(cost or 0)))
    ordered = sorted(lines.values(), key=lambda s: (s.roi is None, -(s.roi or 0), s.source))
    return Report(first, last, ordered)


def csv_text(result: Report) -> Iterator[str]:
    columns = ["source", "lists", "numbers", "kept", "opted_out", "hlr_credits", "hlr_spend", "sms_sent", "sms_cost",
               "clicks", "regs", "ftds", "revenue", "cost", "cost_per_ftd", "roi_percent"]
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["period_start", "period_end", *columns])
    for line in result.sources:
        values = line.as_dict()
        writer.writerow([result.start, result.end, *("" if values[c] is None else values[c] for c in columns)])
    yield buffer.getvalue()
