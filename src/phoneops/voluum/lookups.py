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
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import release, utcnow
from phoneops.core.http import ProviderError
from phoneops.core.security import Principal
from phoneops.settings import get_settings
from phoneops.voluum.client import VoluumClient
from phoneops.voluum.models import Campaign, Offer
from phoneops.voluum.provider import ceil_hour, get_client, insert_for, is_configured, text

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
    campaign_rows = {
        item.campaign_id: {"campaign_id": text(item.campaign_id, 64), "name": text(item.name, 255),
                           "country_code": (item.country_code or "").upper()[:2] or None,
                           "traffic_source_id": text(item.traffic_source_id, 64), "deleted": item.deleted,
                           "refreshed_at": now}
        for item in campaigns if item.campaign_id
    }
    offer_rows = {offer.offer_id: {"offer_id": text(offer.offer_id, 64), "name": text(offer.offer_name, 255),
                                   "refreshed_at": now}
                  for offer in offers if offer.offer_id}
    known_campaigns = set(session.scalars(select(Campaign.campaign_id)))
    known_offers = set(session.scalars(select(Offer.offer_id)))
    new_campaigns = len(campaign_rows.keys() - known_campaigns)
    new_offers = len(offer_rows.keys() - known_offers)
    # upserts: a conversions sync or a live event may record the same ids at the same moment
    if campaign_rows:
        insert = insert_for(session, Campaign)
        session.execute(insert.on_conflict_do_update(
            index_elements=["campaign_id"],
            set_={name: insert.excluded[name] for name in
                  ("name", "country_code", "traffic_source_id", "deleted", "refreshed_at")},
        ), list(campaign_rows.values()))
    if offer_rows:
        insert = insert_for(session, Offer)
        session.execute(insert.on_conflict_do_update(  # an offer without a name keeps the one it had
            index_elements=["offer_id"],
            set_={"name": func.coalesce(func.nullif(insert.excluded.name, ""), Offer.name),
                  "refreshed_at": insert.excluded.refreshed_at},
        ), list(offer_rows.values()))
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
        release(session)  # only read so far: no pooled connection held while Voluum answers (issue 21)
        try:  # the provider calls come before any write, so a failure leaves the session clean
            refresh(session, actor, client)
            refreshed = True
        except ProviderError as exc:
            log.warning("voluum.lookups.refresh_failed", error=exc.message)
        missing_offers -= set(session.scalars(select(Offer.offer_id).where(Offer.offer_id.in_(missing_offers))))
        missing_campaigns -= set(
            session.scalars(select(Campaign.campaign_id).where(Campaign.campaign_id.in_(missing_campaigns)))
        )
    now_naive = utcnow()
    if missing_offers:  # another worker may record the same id at the same moment: first one wins
        session.execute(insert_for(session, Offer).on_conflict_do_nothing(index_elements=["offer_id"]), [
            {"offer_id": text(i, 64), "name": text(offers[i], 255), "refreshed_at": now_naive}
            for i in sorted(missing_offers)])
    if missing_campaigns:
        session.execute(insert_for(session, Campaign).on_conflict_do_nothing(index_elements=["campaign_id"]), [
            {"campaign_id": text(i, 64), "name": text(campaigns[i], 255), "refreshed_at": now_naive}
            for i in sorted(missing_campaigns)])
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
