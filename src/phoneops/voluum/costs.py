"""Cost update: a campaign's cost for a day pushed to Voluum (`POST /report/cost`), one currency throughout.

The currency is `VOLUUM_CURRENCY` for reports and pushes alike (the original read reports in EUR and pushed
costs in USD). Each campaign is pushed in its own call so each gets its own result, stored per campaign and
day. A push SETS the campaign's cost over the day (Voluum keeps the latest), so it is idempotent: the same
cost for the same campaign and day is not sent again unless forced, a different cost replaces it, and a
failed push can simply be repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import release, utcnow
from phoneops.core.errors import ValidationFailed
from phoneops.core.http import ProviderError
from phoneops.core.security import Principal
from phoneops.settings import get_settings
from phoneops.voluum.client import VoluumClient
from phoneops.voluum.models import CostPush
from phoneops.voluum.provider import day_start, get_client, parse_day

log = structlog.get_logger("phoneops.voluum.costs")

MAX_ITEMS = 1000
MAX_COST = Decimal("10000000")
CENT = Decimal("0.0001")


@dataclass(frozen=True)
class CostItem:
    campaign_id: str
    cost: Decimal


@dataclass(frozen=True)
class CostResult:
    campaign_id: str
    day: str
    cost: str
    currency: str
    outcome: str  # sent | unchanged | failed
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"campaign_id": self.campaign_id, "day": self.day, "cost": self.cost, "currency": self.currency,
                "outcome": self.outcome, "error": self.error}


def _cost(value: Any, campaign_id: str) -> Decimal:
    try:
        number = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"cost of campaign {campaign_id} is not a number: {value!r}") from None
    if not number.is_finite() or number < 0 or number > MAX_COST:
        raise ValidationFailed(f"cost of campaign {campaign_id} must be between 0 and {MAX_COST} (got {value})")
    return number.quantize(CENT)


def parse_items(items: Sequence[tuple[str, Any]] | Sequence[CostItem]) -> list[CostItem]:
    """Validate (campaign id, cost) pairs: ids given once each, costs finite and >= 0."""
    if not items:
        raise ValidationFailed("give at least one campaign and its cost")
    if len(items) > MAX_ITEMS:
        raise ValidationFailed(f"at most {MAX_ITEMS} campaigns per push")
    parsed: list[CostItem] = []
    seen: set[str] = set()
    for item in items:
        campaign_id, cost = (item.campaign_id, item.cost) if isinstance(item, CostItem) else item
        campaign_id = str(campaign_id).strip()
        if not campaign_id or len(campaign_id) > 64 or "/" in campaign_id:
            raise ValidationFailed(f"not a campaign id: {campaign_id!r}")
        if campaign_id in seen:
            raise ValidationFailed(f"campaign {campaign_id} is given twice")
        seen.add(campaign_id)
        parsed.append(CostItem(campaign_id, _cost(cost, campaign_id)))
    return parsed


def push_costs(
    session: Session,
    actor: Principal,
    day: date | str,
    items: Sequence[tuple[str, Any]] | Sequence[CostItem],
    *,
    force: bool = False,
    client: VoluumClient | None = None,
) -> list[CostResult]:
    """Push each campaign's cost for `day` (midnight to midnight UTC) and store the outcome per campaign."""
    when = parse_day(day)
    if when > datetime.now(UTC).date():
        raise ValidationFailed(f"{when} is in the future; costs are pushed for past days or today")
    parsed = parse_items(items)
    settings = get_settings()
    currency = settings.voluum_currency.upper()
    client = client or get_client()
    existing = {
        row.campaign_id: row
        for row in session.scalars(
            select(CostPush).where(CostPush.day == when, CostPush.campaign_id.in_([i.campaign_id for i in parsed]))
        )
    }
    start = day_start(when)
    errors: dict[str, str | None] = {}
    release(session)  # the pushes hold no pooled connection; their outcomes are written after the last one
    for item in parsed:
        row = existing.get(item.campaign_id)
        if (not force and row is not None and row.status == "sent" and row.cost == item.cost
                and row.currency == currency):
            continue
        try:
            client.push_cost(item.campaign_id, start, start + timedelta(days=1), item.cost, currency,
                             timezone=settings.voluum_timezone)
            errors[item.campaign_id] = None
        except ProviderError as exc:
            errors[item.campaign_id] = exc.message[:2000]
    results: list[CostResult] = []
    for item in parsed:
        row = existing.get(item.campaign_id)
        if item.campaign_id not in errors:
            results.append(CostResult(item.campaign_id, str(when), str(item.cost), currency, "unchanged"))
            continue
        error = errors[item.campaign_id]
        if row is None:
            row = CostPush(campaign_id=item.campaign_id, day=when, attempts=0)
            session.add(row)
        row.cost, row.currency, row.status, row.error = item.cost, currency, "failed" if error else "sent", error
        row.attempts = (row.attempts or 0) + 1
        row.pushed_by, row.pushed_at = actor.username[:64], utcnow()
        results.append(CostResult(item.campaign_id, str(when), str(item.cost), currency,
                                  "failed" if error else "sent", error))
    session.flush()
    outcomes = {o: sum(r.outcome == o for r in results) for o in ("sent", "unchanged", "failed")}
    audit(session, actor, "voluum.costs.push", "cost_day", str(when), {"currency": currency, **outcomes})
    log.info("voluum.costs.pushed", day=str(when), currency=currency, **outcomes)
    return results


def recent_pushes(session: Session, day: date | None = None, limit: int = 200) -> list[CostPush]:
    query = select(CostPush).order_by(CostPush.day.desc(), CostPush.campaign_id).limit(max(1, min(limit, 2000)))
    if day is not None:
        query = query.where(CostPush.day == day)
    return list(session.scalars(query))
