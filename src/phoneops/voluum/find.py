"""Find a number: everything known about one number in one answer.

List status and its history (the number core), traffic rows, conversions, the latest live event and recent
raw ones, and HLR results when the HLR domain offers them. The number is matched by its blind index through
bound parameters only (the original built this query by string interpolation, so it was injectable).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.errors import NotFound
from phoneops.core.security import Principal
from phoneops.numbers.lists import lookup, to_e164
from phoneops.numbers.normalize import country_of
from phoneops.numbers.vault import get_vault
from phoneops.voluum.models import Conversion, LiveEvent, LiveRawEvent, TrafficRow

LIMIT = 200
HLR_HOOK = ("phoneops.hlr.service", "results_for_number")  # (session, blind_index) -> list[dict]


@dataclass
class NumberReport:
    number: str
    country: str | None
    status: dict[str, Any] | None
    traffic_rows: int
    traffic: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    live: dict[str, Any] | None = None
    live_events: list[dict[str, Any]] = field(default_factory=list)
    hlr: list[dict[str, Any]] | None = None
    hlr_note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _hlr(session: Session, index: bytes) -> tuple[list[dict[str, Any]] | None, str]:
    module_name, function = HLR_HOOK
    if importlib.util.find_spec(module_name) is None:
        return None, "no HLR results: the HLR domain keeps none yet"
    found = getattr(importlib.import_module(module_name), function, None)
    if found is None:
        return None, "no HLR results: the HLR domain offers no lookup by number yet"
    results = found(session, index)
    return list(results), ""


def find_number(session: Session, actor: Principal, raw: str, region: str) -> NumberReport:
    """Everything known about a number (raises ValidationFailed for a value that is not a number)."""
    e164 = to_e164(raw, region)
    index = get_vault().index(e164)
    try:
        status: dict[str, Any] | None = asdict(lookup(session, actor, e164, region))
    except NotFound:
        status = None
    traffic_total = session.scalar(select(func.count(TrafficRow.id)).where(TrafficRow.blind_index == index)) or 0
    traffic = [
        {"day": row.day.isoformat(), "traffic_source_id": row.traffic_source_id, "ip": row.ip,
         "os_version": row.os_version, "browser_version": row.browser_version, "visits": row.visits,
         "unique_visits": row.unique_visits, "clicks": row.clicks, "category": row.category,
         "number_kind": row.number_kind}
        for row in session.scalars(select(TrafficRow).where(TrafficRow.blind_index == index)
                                   .order_by(TrafficRow.day.desc(), TrafficRow.id).limit(LIMIT))
    ]  # fmt: skip
    conversions = [
        {"kind": c.kind, "conversion_type": c.conversion_type, "click_id": c.click_id,
         "transaction_id": c.transaction_id, "country": c.country, "campaign_name": c.campaign_name,
         "offer_id": c.offer_id, "offer_name": c.offer_name, "postback_at": _iso(c.postback_at),
         "visit_at": _iso(c.visit_at), "revenue": str(c.revenue) if c.revenue is not None else None}
        for c in session.scalars(select(Conversion).where(Conversion.blind_index == index)
                                 .order_by(Conversion.postback_at.desc(), Conversion.id.desc()).limit(LIMIT))
    ]  # fmt: skip
    latest = session.get(LiveEvent, index)
    live = None if latest is None else {
        "event_at": _iso(latest.event_at), "click_id": latest.click_id, "campaign_id": latest.campaign_id,
        "offer_id": latest.offer_id, "country_code": latest.country_code, "os": latest.os,
        "os_version": latest.os_version, "browser": latest.browser, "ip": latest.ip,
    }  # fmt: skip
    events = [
        {"event_at": _iso(e.event_at), "source": e.source, "click_id": e.click_id, "campaign_id": e.campaign_id,
         "offer_id": e.offer_id, "received_at": _iso(e.received_at)}
        for e in session.scalars(select(LiveRawEvent).where(LiveRawEvent.blind_index == index)
                                 .order_by(LiveRawEvent.event_at.desc(), LiveRawEvent.id.desc()).limit(50))
    ]  # fmt: skip
    hlr, note = _hlr(session, index)
    return NumberReport(number=e164, country=country_of(e164), status=status, traffic_rows=traffic_total,
                        traffic=traffic, conversions=conversions, live=live, live_events=events, hlr=hlr,
                        hlr_note=note)  # fmt: skip
