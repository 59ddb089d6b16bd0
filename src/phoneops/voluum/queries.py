"""What other domains read of the tracker's conversions, as functions: they never import `voluum.models`
(docs/architecture.md, "a domain uses another domain's service functions").

Set-based readers hand out a `Select` to put inside the caller's own statement (one query for any number of
rows); row readers answer plain dataclasses, one query per `CHUNK` ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import Session

from phoneops.voluum.models import Conversion

CHUNK = 1000  # conversion ids per IN (...) query


@dataclass(frozen=True)
class ConversionRecord:
    """One stored conversion postback, as a plain value."""

    id: int
    kind: str  # REG | FTD
    blind_index: bytes | None
    country: str | None
    click_id: str
    transaction_id: str
    campaign_id: str
    campaign_name: str
    offer_id: str
    offer_name: str
    traffic_source_id: str
    visit_at: datetime | None
    postback_at: datetime | None
    revenue: Decimal | None
    raw: dict[str, Any]
    synced_at: datetime


def conversions_by_id(session: Session, ids: Sequence[int]) -> dict[int, ConversionRecord]:
    """The stored conversions among `ids` (an id no longer stored is absent), one query per `CHUNK` ids."""
    found: dict[int, ConversionRecord] = {}
    for start in range(0, len(ids), CHUNK):
        for c in session.scalars(select(Conversion).where(Conversion.id.in_(list(ids[start:start + CHUNK])))):
            found[c.id] = ConversionRecord(
                c.id, c.kind, c.blind_index, c.country, c.click_id, c.transaction_id, c.campaign_id, c.campaign_name,
                c.offer_id, c.offer_name, c.traffic_source_id, c.visit_at, c.postback_at, c.revenue, dict(c.raw or {}),
                c.synced_at)
    return found


def conversions_since(countries: Sequence[str], since: datetime) -> Select[int, str | None, str]:
    """(id, country, kind) of the conversions of `countries` since `since` (postback time, else the sync time
    when the tracker sent none), to use as a subquery."""
    return select(Conversion.id, Conversion.country, Conversion.kind).where(
        Conversion.country.in_(list(countries)),
        or_(Conversion.postback_at >= since, Conversion.postback_at.is_(None) & (Conversion.synced_at >= since)),
    )


def blind_indexes_of(conversion_ids: Select[Any]) -> Select[bytes | None]:
    """The blind index of each conversion whose id the `conversion_ids` subquery yields, to use as a subquery."""
    return select(Conversion.blind_index).where(Conversion.id.in_(conversion_ids))
