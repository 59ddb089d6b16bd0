"""Offers and campaigns: lookup tables refreshed from Voluum on demand and whenever an unknown id appears.

Campaigns come from `GET /campaign` (names, countries, traffic sources); offers from the offer tree report
over the last `OFFER_WINDOW_DAYS` days (Voluum's access-key sessions have no offer list). When a refresh is
not possible (Voluum down or not configured), ids met in conversions or live events are still recorded with
the names those carried, so nothing waits on the lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import utcnow
from phoneops.core.http import ProviderError
from phoneops.core.security import Principal
from phoneops.settings import get_settings
from phoneops.voluum.client import VoluumClient
from phoneops.voluum.models import Campaign, Offer
from phoneops.voluum.service import ceil_hour, get_client, is_configured, text

log = structlog.get_logger("phoneops.voluum.lookups")

OFFER_WINDOW_DAYS = 90
MIN_REFRESH_INTERVAL = timedelta(minutes=10)  # unknown ids trigger at most one refresh per interval
_last_auto_refresh: datetime | None = None


@dataclass
class RefreshResult:
    campaigns: int
    offers: int
    new_campaigns: int
    new_offers: int

    def as_dict(self) -> dict[str, int]:
        return {"campaigns": self.campaigns, "offers": self.offers, "new_campaigns": self.new_campaigns,
                "new_offers": self.new_offers}


def refresh(session: Session, actor: Principal, client: VoluumClient | None = None) -> RefreshResult:
    """Fetch campaigns and offers from Voluum and upsert them (raises the provider's error)."""
    client = client or get_client()
    settings = get_settings()
    now = utcnow()
    campaigns = client.campaigns()
    end = ceil_hour(now)
    offers = client.offers(end - timedelta(days=OFFER_WINDOW_DAYS), end, tz=settings.voluum_timezone)
    known_campaigns = {c.campaign_id: c for c in session.scalars(select(Campaign))}
    known_offers = {o.offer_id: o for o in session.scalars(select(Offer))}
    new_campaigns = new_offers = 0
    for item in campaigns:
        if not item.campaign_id:
            continue
        row = known_campaigns.get(item.campaign_id)
        if row is None:
            row = known_campaigns[item.campaign_id] = Campaign(campaign_id=text(item.campaign_id, 64))
            session.add(row)
            new_campaigns += 1
        row.name = text(item.name, 255)
        row.country_code = (item.country_code or "").upper()[:2] or None
        row.traffic_source_id = text(item.traffic_source_id, 64)
        row.deleted = item.deleted
        row.refreshed_at = now
    for offer in offers:
        if not offer.offer_id:
            continue
        found = known_offers.get(offer.offer_id)
        if found is None:
            found = known_offers[offer.offer_id] = Offer(offer_id=text(offer.offer_id, 64))
            session.add(found)
            new_offers += 1
        found.name = text(offer.offer_name, 255) or found.name
        found.refreshed_at = now
    session.flush()
    result = RefreshResult(len(campaigns), len(offers), new_campaigns, new_offers)
    audit(session, actor, "voluum.lookups.refresh", None, None, result.as_dict())
    log.info("voluum.lookups.refreshed", **result.as_dict())
    return result


def note_entities(
    session: Session,
    actor: Principal,
    *,
    offers: Mapping[str, str] | None = None,
    campaigns: Mapping[str, str] | None = None,
    client: VoluumClient | None = None,
) -> bool:
    """Ids seen in conversions or live events (id -> name, name may be empty). When one is unknown, refresh the
    tables from Voluum (at most once per `MIN_REFRESH_INTERVAL` per process); ids still unknown afterwards
    are recorded with the names given. Returns whether a refresh from Voluum happened."""
    global _last_auto_refresh
    offers = {k: v for k, v in (offers or {}).items() if k}
    campaigns = {k: v for k, v in (campaigns or {}).items() if k}
    if not offers and not campaigns:
        return False
    missing_offers = set(offers) - set(session.scalars(select(Offer.offer_id).where(Offer.offer_id.in_(offers))))
    missing_campaigns = set(campaigns) - set(
        session.scalars(select(Campaign.campaign_id).where(Campaign.campaign_id.in_(campaigns)))
    )
    if not missing_offers and not missing_campaigns:
        return False
    refreshed = False
    now = datetime.now(UTC)
    recent = _last_auto_refresh is not None and now - _last_auto_refresh < MIN_REFRESH_INTERVAL
    if (client is not None or is_configured()) and not recent:
        _last_auto_refresh = now
        try:  # the provider calls come before any write, so a failure leaves the session clean
            refresh(session, actor, client)
            refreshed = True
        except ProviderError as exc:
            log.warning("voluum.lookups.refresh_failed", error=exc.message)
        missing_offers -= set(session.scalars(select(Offer.offer_id).where(Offer.offer_id.in_(missing_offers))))
        missing_campaigns -= set(
            session.scalars(select(Campaign.campaign_id).where(Campaign.campaign_id.in_(missing_campaigns)))
        )
    for offer_id in missing_offers:
        session.add(Offer(offer_id=text(offer_id, 64), name=text(offers[offer_id], 255)))
    for campaign_id in missing_campaigns:
        session.add(Campaign(campaign_id=text(campaign_id, 64), name=text(campaigns[campaign_id], 255)))
    session.flush()
    return refreshed


def reset_refresh_clock() -> None:
    """Forget when the last automatic refresh happened (tests)."""
    global _last_auto_refresh
    _last_auto_refresh = None


def list_offers(session: Session) -> list[Offer]:
    return list(session.scalars(select(Offer).order_by(Offer.name, Offer.offer_id)))


def list_campaigns(session: Session) -> list[Campaign]:
    return list(session.scalars(select(Campaign).order_by(Campaign.name, Campaign.campaign_id)))


def offer_names(session: Session) -> dict[str, str]:
    return {o.offer_id: o.name for o in session.scalars(select(Offer))}


def as_dicts(rows: list[Offer] | list[Campaign]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for row in rows:
        if isinstance(row, Offer):
            out.append({"id": row.offer_id, "name": row.name, "refreshed_at": row.refreshed_at})
        else:
            out.append({"id": row.campaign_id, "name": row.name, "country_code": row.country_code,
                        "traffic_source_id": row.traffic_source_id, "deleted": row.deleted,
                        "refreshed_at": row.refreshed_at})
    return out
