"""Money: one definition of a day's cost, the billing currency, and the admins' exchange-rate table.

docs/money.md says it in words. In short:
- A day's cost is the sum of the prices of the day's broadcasts that count (states 0 and 2 do not), with or
  without a Voluum campaign behind their link, in the billing currency (`MESSAGEWHIZ_CURRENCY`). The part
  without a campaign cannot be pushed to Voluum and is shown as "of which ... without a campaign".
  `day_cost` (Python, for an import) and `cost_sum` (SQL, for analytics) are that one definition; the
  dashboard, the days table, the day page, analytics, the CLI and the cost push all read it.
- Costs pushed to Voluum are converted to `VOLUUM_CURRENCY` with the rate an admin set for that day (one
  rate per day and currency pair, every change audited). No rate, no push: `RateMissing` (409) says which
  day and how to set it; the import job waits for it. Same currency on both sides: rate 1, no table needed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.broadcasts.models import BroadcastStat, ExchangeRate
from phoneops.broadcasts.provider import parse_day, past_day
from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from phoneops.core.security import Principal, Role
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.broadcasts.money")

CENT = Decimal("0.0001")
RATE_STEP = Decimal("0.00000001")
MAX_RATE = Decimal("1000000")
ONE = Decimal(1)


def billing_currency() -> str:
    return get_settings().messagewhiz_currency.upper()


def tracker_currency() -> str:
    return get_settings().voluum_currency.upper()


# --- a day's cost --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DayCost:
    total: Decimal  # every broadcast that counts, with or without a campaign
    unattributed: Decimal  # of which without a campaign: not pushed to Voluum

    @property
    def attributed(self) -> Decimal:
        return self.total - self.unattributed


def counts(row: BroadcastStat) -> bool:
    """Whether a broadcast's price is part of its day's cost."""
    return bool(row.counts_for_cost)


def day_cost(rows: Iterable[BroadcastStat]) -> DayCost:
    total = unattributed = Decimal(0)
    for row in rows:
        if counts(row):
            price = row.price or Decimal(0)
            total += price
            if not row.campaign_id:
                unattributed += price
    return DayCost(total.quantize(CENT), unattributed.quantize(CENT))


def cost_sum() -> Any:
    """The same definition in SQL: the counted prices of the selected broadcast rows."""
    return func.coalesce(func.sum(BroadcastStat.price).filter(BroadcastStat.counts_for_cost.is_(True)), 0)


# --- exchange rates ------------------------------------------------------------------------------------


class RateMissing(Conflict):
    code = "rate_missing"


def parse_rate(value: Any) -> Decimal:
    try:
        rate = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise ValidationFailed(f"a rate must be a number such as 0.9213 (got {value!r})") from None
    if not rate.is_finite() or rate <= 0 or rate > MAX_RATE:
        raise ValidationFailed(f"a rate must be above 0 and at most {MAX_RATE} (got {value})")
    exact = rate.quantize(RATE_STEP)
    if exact != rate:
        raise ValidationFailed(f"a rate has at most 8 decimals (got {value})")
    return exact


def plain(rate: Decimal) -> str:
    """A rate as people write it: 0.92, not 0.92000000 or 9.2E-1."""
    text = f"{rate.normalize():f}"
    return text


def _admin(actor: Principal) -> None:
    if actor.role != Role.admin:
        raise Forbidden("only an admin may change exchange rates")


def _pair() -> tuple[str, str]:
    return billing_currency(), tracker_currency()


def _find(session: Session, day: date, pair: tuple[str, str]) -> ExchangeRate | None:
    return session.scalar(select(ExchangeRate).where(
        ExchangeRate.day == day, ExchangeRate.from_currency == pair[0], ExchangeRate.to_currency == pair[1]))


def set_rate(session: Session, actor: Principal, day: date | str, rate: Any) -> ExchangeRate:
    """Set (or replace) the rate of one day for the configured currency pair; audited with the old value."""
    _admin(actor)
    when, value = past_day(day), parse_rate(rate)
    pair = _pair()
    if pair[0] == pair[1]:
        raise ValidationFailed(f"MessageWhiz bills in {pair[1]}, Voluum's currency: no rate is needed")
    row = _find(session, when, pair)
    previous = None if row is None else plain(row.rate)
    if row is None:
        row = ExchangeRate(day=when, from_currency=pair[0], to_currency=pair[1])
        session.add(row)
    row.rate, row.set_by, row.set_at = value, actor.username[:64], utcnow()
    session.flush()
    audit(session, actor, "broadcasts.rate.set", "exchange_rate", f"{when}:{pair[0]}{pair[1]}",
          {"day": str(when), "from": pair[0], "to": pair[1], "rate": plain(value), "previous": previous})
    log.info("broadcasts.rate.set", day=str(when), pair=f"{pair[0]}{pair[1]}", rate=plain(value), previous=previous)
    return row


def delete_rate(session: Session, actor: Principal, day: date | str) -> None:
    _admin(actor)
    when = parse_day(day)
    pair = _pair()
    row = _find(session, when, pair)
    if row is None:
        raise NotFound(f"no {pair[0]}→{pair[1]} rate for {when}")
    previous = plain(row.rate)
    session.delete(row)
    session.flush()
    audit(session, actor, "broadcasts.rate.delete", "exchange_rate", f"{when}:{pair[0]}{pair[1]}",
          {"day": str(when), "from": pair[0], "to": pair[1], "previous": previous})


def list_rates(session: Session, limit: int = 400) -> list[ExchangeRate]:
    """Every stored rate, newest day first (other pairs too: they stay when the settings change)."""
    query = select(ExchangeRate).order_by(ExchangeRate.day.desc(), ExchangeRate.from_currency,
                                          ExchangeRate.to_currency)
    return list(session.scalars(query.limit(max(1, min(limit, 5000)))))


def rate_for(session: Session, day: date) -> Decimal | None:
    """Tracker units per billed unit on `day`: 1 for one currency, the admins' rate, or None (not set)."""
    pair = _pair()
    if pair[0] == pair[1]:
        return ONE
    row = _find(session, day, pair)
    return None if row is None else row.rate


def missing_message(day: date) -> str:
    billed, tracker = _pair()
    return (f"no {billed}→{tracker} exchange rate for {day}: costs are billed in {billed} and Voluum counts in "
            f"{tracker}. An admin sets it on the Exchange rates page (/broadcasts/rates) or with "
            f"`phoneops broadcasts rates set {day} RATE`; the push waits until then")


def require_rate(session: Session, day: date) -> Decimal:
    rate = rate_for(session, day)
    if rate is None:
        raise RateMissing(missing_message(day), details={"day": str(day), "from": billing_currency(),
                                                         "to": tracker_currency()})
    return rate


def convert(amount: Decimal, rate: Decimal) -> Decimal:
    return (amount * rate).quantize(CENT)
