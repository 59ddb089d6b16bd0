"""The cost push: per campaign, the day's broadcast cost sent to Voluum, idempotent per campaign and day.

The cost of a campaign for a day is the sum of the real prices of its broadcasts that day, leaving out the
states the original left out (0 and 2) (`money.day_cost`), converted from the billing currency to Voluum's
with the admins' rate for the day; without a rate nothing is pushed (`money.RateMissing`, docs/money.md).
The push goes through `phoneops.voluum.costs.push_costs`: a push SETS the campaign's cost over the day at
Voluum (it does not add to it), and the same cost for the same campaign and day is not sent again unless
forced. So re-running a day (or re-importing it) never doubles a cost: an unchanged cost is "unchanged", a
changed one replaces the previous one. A campaign that had a cost pushed for the day but no longer has
broadcasts (a re-import moved them) gets 0, so Voluum follows.

Each campaign's outcome is stored here (`BroadcastCostPush`, one row per campaign and day) and shown.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.broadcasts.days import get_day
from phoneops.broadcasts.models import BroadcastCampaignDay, BroadcastCostPush
from phoneops.broadcasts.money import CENT, billing_currency, convert, require_rate
from phoneops.broadcasts.provider import past_day
from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.security import Principal

log = structlog.get_logger("phoneops.broadcasts.costs")


def day_costs(session: Session, day: date) -> dict[str, tuple[Decimal, int]]:
    """(cost, broadcasts) per campaign of an imported day."""
    rows = session.scalars(select(BroadcastCampaignDay).where(BroadcastCampaignDay.day == day))
    return {r.campaign_id: (r.cost, r.broadcasts) for r in rows}


def push_day_costs(
    session: Session, actor: Principal, day: date | str, *, force: bool = False, client: Any = None
) -> list[BroadcastCostPush]:
    """Push each campaign's cost of an imported day to Voluum; the stored outcome per campaign is returned.

    Raises `ProviderNotConfigured` (503) while Voluum is not configured, `NotFound` for a day not imported.
    """
    from phoneops.voluum.costs import push_costs

    when = past_day(day)
    get_day(session, when)
    costs = day_costs(session, when)
    stored = {p.campaign_id: p for p in session.scalars(select(BroadcastCostPush).where(BroadcastCostPush.day == when))}
    for campaign_id, previous in stored.items():  # broadcasts moved away since the last push: set 0
        if campaign_id not in costs and previous.outcome == "sent" and previous.cost != 0:
            costs[campaign_id] = (Decimal(0), 0)
    if not costs:
        audit(session, actor, "broadcasts.costs.push", "broadcast_day", str(when), {"campaigns": 0})
        return []
    rate = require_rate(session, when)  # no rate for the day: nothing is pushed or stored (docs/money.md)
    if client is None:
        from phoneops.voluum.provider import get_client

        client = get_client()
    items = sorted(costs.items())
    results = push_costs(session, actor, when, [(c, convert(cost, rate)) for c, (cost, _) in items], force=force,
                         client=client)
    now = utcnow()
    pushed: list[BroadcastCostPush] = []
    for (campaign_id, (billed, broadcasts)), outcome in zip(items, results, strict=True):
        row = stored.get(campaign_id)
        if row is None:
            row = BroadcastCostPush(day=when, campaign_id=campaign_id, attempts=0)
            session.add(row)
        row.cost, row.currency, row.broadcasts = Decimal(outcome.cost), outcome.currency, broadcasts
        row.billed_cost, row.billed_currency, row.rate = billed.quantize(CENT), billing_currency(), rate
        row.outcome, row.error = outcome.outcome, outcome.error
        if outcome.outcome != "unchanged":
            row.attempts = (row.attempts or 0) + 1
        row.pushed_by, row.pushed_at = actor.username[:64], now
        pushed.append(row)
    session.flush()
    counts = {o: sum(r.outcome == o for r in pushed) for o in ("sent", "unchanged", "failed")}
    audit(session, actor, "broadcasts.costs.push", "broadcast_day", str(when),
          {"campaigns": len(pushed), "force": force, "rate": str(rate), "from": billing_currency(), **counts})
    log.info("broadcasts.costs.pushed", day=str(when), **counts)
    return pushed


def cost_pushes(session: Session, day: date | None = None, limit: int = 500) -> list[BroadcastCostPush]:
    query = select(BroadcastCostPush).order_by(BroadcastCostPush.day.desc(), BroadcastCostPush.campaign_id)
    if day is not None:
        query = query.where(BroadcastCostPush.day == day)
    return list(session.scalars(query.limit(max(1, min(limit, 5000)))))


def summary(pushes: list[BroadcastCostPush]) -> dict[str, Any]:
    return {o: sum(p.outcome == o for p in pushes) for o in ("sent", "unchanged", "failed")}
