"""What the retention purge keeps of raw tracker rows, and how readers see raw rows and kept facts as one.

Retention (`phoneops.privacy.retention`, docs/retention.md) deletes raw conversions and traffic rows past
their age. Before a batch goes, `fold_conversions` / `fold_traffic` add it to the facts tables:

- `ConversionFact`: per number, kind (REG/FTD), offer, country, campaign, postback day (UTC) and visit day,
  how many conversions and the first and last postback time;
- `TrafficFact`: per number and OS version seen, how many rows, visits and clicks, first and last day;
- `TrafficDayFact`: per number and day, how many clicks (the sources report counts clicks per period).

Conversion facts also keep the revenue (the sources report, docs/sources.md, reads `conversions.per_number_days`
and `traffic.clicks_per_number_days`, which add these facts to the raw rows).

Every reader that answers "did this number convert", "which numbers REG'd in this window", "which offers",
"how many per country", "which OS versions was it seen with" reads `conversion_events()` (raw rows and kept
facts as one table) or `traffic_os_versions`, so lists, cleaning, smart cleaning, REG search, reclassification,
reports and a number's story give the same answers after a purge as before it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Subquery, and_, case, func, literal, or_, select, union_all
from sqlalchemy.orm import Session

from phoneops.voluum.models import Conversion, ConversionFact, TrafficDayFact, TrafficFact, TrafficRow

FactKey = tuple[bytes | None, str, str, str | None, str, date, date | None]


def _utc_day(moment: datetime) -> date:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date()


# --- folding (before a purge deletes the raw rows) -------------------------------------------------------


def fold_conversions(session: Session, ids: Sequence[int]) -> int:
    """Add the conversions `ids` to the kept facts (same transaction as their deletion); facts touched."""
    rows = session.execute(select(
        Conversion.blind_index, Conversion.kind, Conversion.offer_id, Conversion.offer_name, Conversion.country,
        Conversion.campaign_id, Conversion.postback_at, Conversion.synced_at, Conversion.visit_at, Conversion.revenue,
    ).where(Conversion.id.in_(list(ids)))).all()
    groups: dict[FactKey, dict[str, Any]] = {}
    for index, kind, offer_id, offer_name, country, campaign_id, postback, synced, visit, revenue in rows:
        key: FactKey = (index, kind, offer_id or "", country, campaign_id or "", _utc_day(postback or synced),
                        _utc_day(visit) if visit else None)
        group = groups.setdefault(key, {"n": 0, "first": None, "last": None, "name": offer_name or "",
                                        "revenue": Decimal(0)})
        group["n"] += 1
        group["revenue"] += revenue or Decimal(0)
        group["name"] = min(group["name"], offer_name or "")
        if postback is not None:
            group["first"] = postback if group["first"] is None else min(group["first"], postback)
            group["last"] = postback if group["last"] is None else max(group["last"], postback)
    if not groups:
        return 0
    indexes = {k[0] for k in groups if k[0] is not None}
    where = [ConversionFact.day.in_({k[5] for k in groups})]
    owners = [ConversionFact.blind_index.in_(indexes)] if indexes else []
    if any(k[0] is None for k in groups):
        owners.append(ConversionFact.blind_index.is_(None))
    existing: dict[FactKey, ConversionFact] = {
        (f.blind_index, f.kind, f.offer_id, f.country, f.campaign_id, f.day, f.visit_day): f
        for f in session.scalars(select(ConversionFact).where(*where, or_(*owners)))
    }
    for key, group in groups.items():
        fact = existing.get(key)
        if fact is None:
            index, kind, offer_id, country, campaign_id, day, visit_day = key
            session.add(ConversionFact(blind_index=index, kind=kind, offer_id=offer_id, offer_name=group["name"],
                                       country=country, campaign_id=campaign_id, day=day, visit_day=visit_day,
                                       conversions=group["n"], first_at=group["first"], last_at=group["last"],
                                       revenue=group["revenue"]))
            continue
        fact.conversions += group["n"]
        # a fact folded before revenue was kept has none (NULL): what is folded into it now is known
        fact.revenue = (fact.revenue or Decimal(0)) + group["revenue"]
        fact.offer_name = min(fact.offer_name, group["name"])
        fact.first_at = _earliest(fact.first_at, group["first"])
        fact.last_at = _latest(fact.last_at, group["last"])
    session.flush()
    return len(groups)


def fold_traffic(session: Session, ids: Sequence[int]) -> int:
    """Add the traffic rows `ids` of numbers to the kept facts (rows of no number leave only day totals)."""
    rows = session.execute(select(
        TrafficRow.blind_index, TrafficRow.os_version, TrafficRow.day, TrafficRow.visits, TrafficRow.clicks,
    ).where(TrafficRow.id.in_(list(ids)), TrafficRow.blind_index.is_not(None))).all()
    groups: dict[tuple[bytes, str], dict[str, Any]] = {}
    days: dict[tuple[bytes, date], int] = {}
    for index, os_version, day, visits, clicks in rows:
        if index is None:
            continue
        days[(index, day)] = days.get((index, day), 0) + (clicks or 0)
        group = groups.setdefault((index, os_version or ""), {"rows": 0, "visits": 0, "clicks": 0,
                                                              "first": day, "last": day})
        group["rows"] += 1
        group["visits"] += visits or 0
        group["clicks"] += clicks or 0
        group["first"], group["last"] = min(group["first"], day), max(group["last"], day)
    if not groups:
        return 0
    existing = {(f.blind_index, f.os_version): f for f in session.scalars(
        select(TrafficFact).where(TrafficFact.blind_index.in_({k[0] for k in groups})))}
    for (index, os_version), group in groups.items():
        fact = existing.get((index, os_version))
        if fact is None:
            session.add(TrafficFact(blind_index=index, os_version=os_version, rows=group["rows"],
                                    visits=group["visits"], clicks=group["clicks"], first_day=group["first"],
                                    last_day=group["last"]))
            continue
        fact.rows += group["rows"]
        fact.visits += group["visits"]
        fact.clicks += group["clicks"]
        fact.first_day, fact.last_day = min(fact.first_day, group["first"]), max(fact.last_day, group["last"])
    _fold_click_days(session, days)
    session.flush()
    return len(groups)


def _fold_click_days(session: Session, days: dict[tuple[bytes, date], int]) -> None:
    existing = {(f.blind_index, f.day): f for f in session.scalars(select(TrafficDayFact).where(
        TrafficDayFact.blind_index.in_({k[0] for k in days}), TrafficDayFact.day.in_({k[1] for k in days})))}
    for (index, day), clicks in days.items():
        fact = existing.get((index, day))
        if fact is None:
            session.add(TrafficDayFact(blind_index=index, day=day, clicks=clicks))
        else:
            fact.clicks += clicks


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)


# --- reading raw rows and facts as one ------------------------------------------------------------------


def conversion_events() -> Subquery:
    """Raw conversions and kept facts as one table: blind_index, kind, offer_id, offer_name, country,
    campaign_id, at (postback time; a fact's first), last (a fact's last), n (how many)."""
    raw = select(Conversion.blind_index.label("blind_index"), Conversion.kind.label("kind"),
                 Conversion.offer_id.label("offer_id"), Conversion.offer_name.label("offer_name"),
                 Conversion.country.label("country"), Conversion.campaign_id.label("campaign_id"),
                 Conversion.postback_at.label("at"), Conversion.postback_at.label("last"), literal(1).label("n"))
    kept = select(ConversionFact.blind_index, ConversionFact.kind, ConversionFact.offer_id,
                  ConversionFact.offer_name, ConversionFact.country, ConversionFact.campaign_id,
                  ConversionFact.first_at, ConversionFact.last_at, ConversionFact.conversions)
    return union_all(raw, kept).subquery("conversion_events")


def traffic_indexes(session: Session) -> set[bytes]:
    """Every number the tracker's traffic rows saw, purged rows included."""
    found = {i for i in session.scalars(select(TrafficRow.blind_index).where(TrafficRow.blind_index.is_not(None))
                                        .distinct()) if i is not None}
    found.update(session.scalars(select(TrafficFact.blind_index).distinct()))
    return found


def traffic_os_versions(session: Session, indexes: Iterable[bytes]) -> list[tuple[bytes, str]]:
    """(number, OS version text) pairs seen in traffic, purged rows included."""
    wanted = list(indexes)
    pairs = {(i, os or "") for i, os in session.execute(
        select(TrafficRow.blind_index, TrafficRow.os_version).where(TrafficRow.blind_index.in_(wanted)).distinct())
        if i is not None}
    pairs.update((i, os or "") for i, os in session.execute(
        select(TrafficFact.blind_index, TrafficFact.os_version).where(TrafficFact.blind_index.in_(wanted))))
    return sorted(pairs)


def traffic_totals(session: Session, index: bytes) -> tuple[int, int, int, date | None, date | None]:
    """(rows, visits, clicks, first day, last day) of one number's traffic, purged rows included."""
    raw = session.execute(select(
        func.count(TrafficRow.id), func.coalesce(func.sum(TrafficRow.visits), 0),
        func.coalesce(func.sum(TrafficRow.clicks), 0), func.min(TrafficRow.day), func.max(TrafficRow.day),
    ).where(TrafficRow.blind_index == index)).one()
    kept = session.execute(select(
        func.coalesce(func.sum(TrafficFact.rows), 0), func.coalesce(func.sum(TrafficFact.visits), 0),
        func.coalesce(func.sum(TrafficFact.clicks), 0), func.min(TrafficFact.first_day),
        func.max(TrafficFact.last_day),
    ).where(TrafficFact.blind_index == index)).one()
    firsts = [d for d in (raw[3], kept[3]) if d is not None]
    lasts = [d for d in (raw[4], kept[4]) if d is not None]
    return (int(raw[0]) + int(kept[0]), int(raw[1]) + int(kept[1]), int(raw[2]) + int(kept[2]),
            min(firsts) if firsts else None, max(lasts) if lasts else None)


def conversion_summary(session: Session, index: bytes) -> dict[str, Any]:
    """One number's conversion facts, purged rows included: converted, REG and FTD counts, first and last
    postback time, the offers, and the (campaign, visit day) pairs that tell which broadcasts reached it."""
    events = conversion_events()
    counts = {kind: int(n or 0) for kind, n in session.execute(
        select(events.c.kind, func.sum(events.c.n)).where(events.c.blind_index == index).group_by(events.c.kind))}
    first, last = session.execute(select(func.min(events.c.at), func.max(events.c.last))
                                  .where(events.c.blind_index == index)).one()
    offers = sorted({o for o in session.scalars(select(events.c.offer_id).where(events.c.blind_index == index)
                                                .distinct()) if o})
    visits = {(c, d) for c, d in session.execute(
        select(ConversionFact.campaign_id, ConversionFact.visit_day).where(ConversionFact.blind_index == index))
        if c and d is not None}
    visits.update((c, _utc_day(v)) for c, v in session.execute(
        select(Conversion.campaign_id, Conversion.visit_at).where(Conversion.blind_index == index))
        if c and v is not None)
    return {"converted": bool(counts), "regs": counts.get("REG", 0), "ftds": counts.get("FTD", 0),
            "first_conversion_at": first.isoformat() if first else None,
            "last_conversion_at": last.isoformat() if last else None, "offers": offers,
            "campaign_days": [[c, d.isoformat()] for c, d in sorted(visits)]}


def conversion_days(start: date, end: date) -> Subquery:
    """Conversions of numbers per postback day (UTC; the sync day when Voluum sent none) in [start, end], raw
    rows and kept facts as one: blind_index, day, regs, ftds, revenue. Facts folded before revenue was kept
    count their REG/FTD with no revenue."""
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    moment = func.coalesce(Conversion.postback_at, Conversion.synced_at)
    raw = select(Conversion.blind_index.label("blind_index"), func.date(moment).label("day"),
                 case((Conversion.kind == "REG", 1), else_=0).label("regs"),
                 case((Conversion.kind == "FTD", 1), else_=0).label("ftds"),
                 func.coalesce(Conversion.revenue, 0).label("revenue")).where(
        Conversion.blind_index.is_not(None),
        or_(and_(Conversion.postback_at >= since, Conversion.postback_at < until),
            and_(Conversion.postback_at.is_(None), Conversion.synced_at >= since, Conversion.synced_at < until)))
    kept = select(ConversionFact.blind_index, ConversionFact.day,
                  case((ConversionFact.kind == "REG", ConversionFact.conversions), else_=0),
                  case((ConversionFact.kind == "FTD", ConversionFact.conversions), else_=0),
                  func.coalesce(ConversionFact.revenue, 0)).where(
        ConversionFact.blind_index.is_not(None), ConversionFact.day >= start, ConversionFact.day <= end)
    rows = union_all(raw, kept).subquery("conversion_rows")
    return (select(rows.c.blind_index, rows.c.day, func.sum(rows.c.regs).label("regs"),
                   func.sum(rows.c.ftds).label("ftds"), func.sum(rows.c.revenue).label("revenue"))
            .group_by(rows.c.blind_index, rows.c.day).subquery("conversion_days"))


def click_days(start: date, end: date) -> Subquery:
    """Tracker clicks of numbers per day in [start, end], raw rows and kept facts as one: blind_index, day,
    clicks."""
    raw = select(TrafficRow.blind_index.label("blind_index"), TrafficRow.day.label("day"),
                 func.coalesce(TrafficRow.clicks, 0).label("clicks")).where(
        TrafficRow.blind_index.is_not(None), TrafficRow.day >= start, TrafficRow.day <= end)
    kept = select(TrafficDayFact.blind_index, TrafficDayFact.day, TrafficDayFact.clicks).where(
        TrafficDayFact.day >= start, TrafficDayFact.day <= end)
    rows = union_all(raw, kept).subquery("click_rows")
    return (select(rows.c.blind_index, rows.c.day, func.sum(rows.c.clicks).label("clicks"))
            .group_by(rows.c.blind_index, rows.c.day).subquery("click_days"))
