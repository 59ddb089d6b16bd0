"""Broadcast analytics over imported days: cost, clicks, CTR, delivery and conversions, per day and per campaign.

Cost, clicks and delivery are summed over broadcasts (those without a campaign included, under "no
campaign"); Voluum visits and conversions come from the campaign-day rows, whose window covers a campaign's
broadcasts of the day once, so nothing is counted twice. CTR = unique clicks / recipients; delivery rate =
delivered / recipients; both in percent.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.broadcasts.models import BroadcastCampaignDay, BroadcastStat
from phoneops.broadcasts.money import cost_sum
from phoneops.broadcasts.provider import parse_day, today
from phoneops.core.csvio import csv_lines
from phoneops.core.errors import ValidationFailed

NO_CAMPAIGN = "no campaign"
DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass
class Point:
    """One day or one campaign."""

    key: str  # the day (ISO) or the campaign id ("" for broadcasts without a campaign)
    label: str
    broadcasts: int = 0
    cost: Decimal = Decimal(0)
    recipients: int = 0
    unique_clicks: int = 0
    total_clicks: int = 0
    delivered: int = 0
    undelivered: int = 0
    rejected: int = 0
    visits: int = 0
    unique_visits: int = 0
    regs: int = 0
    ftds: int = 0

    @property
    def ctr(self) -> float:
        return round(self.unique_clicks * 100 / self.recipients, 2) if self.recipients else 0.0

    @property
    def delivery_rate(self) -> float:
        return round(self.delivered * 100 / self.recipients, 2) if self.recipients else 0.0

    @property
    def cost_per_reg(self) -> Decimal | None:
        return (self.cost / self.regs).quantize(Decimal("0.01")) if self.regs else None

    @property
    def cost_per_ftd(self) -> Decimal | None:
        return (self.cost / self.ftds).quantize(Decimal("0.01")) if self.ftds else None

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost"] = str(self.cost.quantize(Decimal("0.01")))
        data.update(ctr=self.ctr, delivery_rate=self.delivery_rate,
                    cost_per_reg=None if self.cost_per_reg is None else str(self.cost_per_reg),
                    cost_per_ftd=None if self.cost_per_ftd is None else str(self.cost_per_ftd))
        return data


@dataclass
class Analytics:
    start: date
    end: date
    campaign: str | None
    days: list[Point]
    campaigns: list[Point]
    total: Point

    def as_dict(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(), "campaign": self.campaign,
                "total": self.total.as_dict(), "days": [p.as_dict() for p in self.days],
                "campaigns": [p.as_dict() for p in self.campaigns]}

    def chart(self, metric: str, by: str = "days") -> dict[str, float]:
        """{label: value} for `ui.charts.bar_chart` (metric: any Point field or property)."""
        points = self.days if by == "days" else self.campaigns
        return {p.label: float(getattr(p, metric)) for p in points}


def window(start: date | str | None, end: date | str | None) -> tuple[date, date]:
    last = parse_day(end, "to") if end else today()
    first = parse_day(start, "from") if start else last - timedelta(days=DEFAULT_DAYS - 1)
    if (last - first).days + 1 > MAX_DAYS:
        raise ValidationFailed(f"at most {MAX_DAYS} days at once")
    if last < first:
        raise ValidationFailed(f"the range ends ({last}) before it starts ({first})")
    return first, last


_STAT_SUMS = (
    func.count(BroadcastStat.id), func.coalesce(func.sum(BroadcastStat.recipients), 0),
    func.coalesce(func.sum(BroadcastStat.unique_clicks), 0), func.coalesce(func.sum(BroadcastStat.total_clicks), 0),
    func.coalesce(func.sum(BroadcastStat.delivered), 0), func.coalesce(func.sum(BroadcastStat.undelivered), 0),
    func.coalesce(func.sum(BroadcastStat.rejected), 0),
)
_VOLUUM_SUMS = (
    func.coalesce(func.sum(BroadcastCampaignDay.voluum_visits), 0),
    func.coalesce(func.sum(BroadcastCampaignDay.voluum_unique_visits), 0),
    func.coalesce(func.sum(BroadcastCampaignDay.voluum_regs), 0),
    func.coalesce(func.sum(BroadcastCampaignDay.voluum_ftds), 0),
)


def _fill(point: Point, counts: Any) -> None:
    (point.broadcasts, point.recipients, point.unique_clicks, point.total_clicks, point.delivered,
     point.undelivered, point.rejected) = (int(v) for v in counts)


def _fill_voluum(point: Point, sums: Any) -> None:
    point.visits, point.unique_visits, point.regs, point.ftds = (int(v) for v in sums)


def _cost_sum() -> Any:
    return cost_sum()  # the one definition of a day's cost (docs/money.md)


def analytics(session: Session, start: date | str | None = None, end: date | str | None = None,
              campaign: str | None = None) -> Analytics:
    """Per day (every day of the range, empty ones included) and per campaign, with totals."""
    first, last = window(start, end)
    campaign = campaign.strip().lower() if campaign and campaign.strip() else None
    stat_where = [BroadcastStat.day >= first, BroadcastStat.day <= last]
    camp_where = [BroadcastCampaignDay.day >= first, BroadcastCampaignDay.day <= last]
    if campaign is not None:
        if campaign == NO_CAMPAIGN:
            stat_where.append(BroadcastStat.campaign_id.is_(None))
            camp_where.append(BroadcastCampaignDay.id.is_(None))
        else:
            stat_where.append(BroadcastStat.campaign_id == campaign)
            camp_where.append(BroadcastCampaignDay.campaign_id == campaign)

    days = {first + timedelta(days=n): Point(key="", label="") for n in range((last - first).days + 1)}
    for day, point in days.items():
        point.key = point.label = day.isoformat()
    for day, cost, *counts in session.execute(
        select(BroadcastStat.day, _cost_sum(), *_STAT_SUMS).where(*stat_where).group_by(BroadcastStat.day)
    ):
        point = days[day]
        point.cost = Decimal(str(cost))
        _fill(point, counts)
    for day, *sums in session.execute(
        select(BroadcastCampaignDay.day, *_VOLUUM_SUMS).where(*camp_where).group_by(BroadcastCampaignDay.day)
    ):
        _fill_voluum(days[day], sums)

    names = dict(session.execute(
        select(BroadcastCampaignDay.campaign_id, func.max(BroadcastCampaignDay.campaign_name))
        .where(*camp_where).group_by(BroadcastCampaignDay.campaign_id)
    ).all())
    campaigns: dict[str, Point] = {}
    for campaign_id, stat_name, cost, *counts in session.execute(
        select(BroadcastStat.campaign_id, func.max(BroadcastStat.campaign_name), _cost_sum(), *_STAT_SUMS)
        .where(*stat_where).group_by(BroadcastStat.campaign_id)
    ):
        key = campaign_id or ""
        label = (names.get(key) or stat_name or key) if key else NO_CAMPAIGN
        point = campaigns[key] = Point(key=key, label=label)
        point.cost = Decimal(str(cost))
        _fill(point, counts)
    for campaign_id, *sums in session.execute(
        select(BroadcastCampaignDay.campaign_id, *_VOLUUM_SUMS).where(*camp_where)
        .group_by(BroadcastCampaignDay.campaign_id)
    ):
        point = campaigns.setdefault(campaign_id, Point(key=campaign_id, label=names.get(campaign_id) or campaign_id))
        _fill_voluum(point, sums)

    total = Point(key="total", label="total")
    for point in days.values():
        for f in fields(Point):
            if f.name not in ("key", "label"):
                setattr(total, f.name, getattr(total, f.name) + getattr(point, f.name))
    ordered = sorted(campaigns.values(), key=lambda p: (-p.cost, p.label))
    return Analytics(first, last, campaign, list(days.values()), ordered, total)


CSV_COLUMNS = ("key", "label", "broadcasts", "cost", "recipients", "unique_clicks", "total_clicks", "ctr",
               "delivered", "undelivered", "rejected", "delivery_rate", "visits", "unique_visits", "regs", "ftds",
               "cost_per_reg", "cost_per_ftd")


def csv_rows(result: Analytics, by: str = "days") -> Iterator[str]:
    """The days (or the campaigns) as CSV lines, spreadsheet formulas neutralised."""
    metrics = CSV_COLUMNS[2:]
    if by == "days":
        return csv_lines(("day", *metrics), ([p.key, *(p.as_dict()[m] for m in metrics)] for p in result.days))
    return csv_lines(("campaign_id", "campaign", *metrics),
                     ([p.key, p.label, *(p.as_dict()[m] for m in metrics)] for p in result.campaigns))


def group_days(start: date, end: date) -> Any:
    """SMS sent and their cost per broadcast group (the list's name before `_chunk`, lower case) and day in
    [start, end]: a subquery with group_name, day, sent, cost."""
    return (
        select(func.lower(BroadcastStat.group_name).label("group_name"), BroadcastStat.day.label("day"),
               func.coalesce(func.sum(BroadcastStat.recipients), 0).label("sent"), _cost_sum().label("cost"))
        .where(BroadcastStat.day >= start, BroadcastStat.day <= end)
        .group_by(func.lower(BroadcastStat.group_name), BroadcastStat.day)
        .subquery()
    )
