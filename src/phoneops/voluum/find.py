"""Find a number: everything known about one number in one answer.

List status and its history (the number core), the opt-out (`numbers.optouts.state_for`: an opted-out number
gets no SMS whatever list it is on), traffic rows, conversions, the latest live event and recent raw ones
(the raw rows that retention has not purged; the totals and `facts` count the purged ones too), and HLR results (the
HLR domain's `results_for_number`). The number is matched by its blind index through bound parameters only (the
original built this query by string interpolation, so it was injectable).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.errors import NotFound
from phoneops.core.security import Principal
from phoneops.hlr.outcomes import results_for_number
from phoneops.numbers.lists import lookup, to_e164
from phoneops.numbers.normalize import country_of
from phoneops.numbers.optouts import state_for
from phoneops.numbers.vault import get_vault
from phoneops.voluum.facts import conversion_summary, traffic_totals
from phoneops.voluum.models import Conversion, LiveEvent, LiveRawEvent, TrafficRow

LIMIT = 200


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
    hlr: list[dict[str, Any]] = field(default_factory=list)
    traffic_visits: int = 0
    traffic_clicks: int = 0
    first_day: str | None = None
    last_day: str | None = None
    # what filters read, raw rows and those a retention purge folded into facts alike (voluum.facts)
    facts: dict[str, Any] = field(default_factory=dict)
    optout: dict[str, Any] | None = None  # None: never opted out; else `numbers.optouts.state_of`

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _iso(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def find_number(session: Session, actor: Principal, raw: str, region: str) -> NumberReport:
    """Everything known about a number (raises ValidationFailed for a value that is not a number)."""
    e164 = to_e164(raw, region)
    try:
        status: dict[str, Any] | None = asdict(lookup(session, actor, e164, region))
    except NotFound:
        status = None
    report = report_for_index(session, get_vault().index(e164), e164)
    report.status = status
    report.optout = state_for(session, e164)
    return report


def report_for_index(session: Session, index: bytes, e164: str) -> NumberReport:
    """What the tracker and HLR know about one number (its blind index); `status` is left to the caller."""
    traffic_total, visits, clicks, first_day, last_day = traffic_totals(session, index)  # purged rows too
    traffic = [
        {"day": row.day.isoformat(), "traffic_source_id": row.traffic_source_id, "ip": row.ip,
         "os_version": row.os_version, "browser_version": row.browser_version, "visits": row.visits,
         "unique_visits": row.unique_visits, "clicks": row.clicks, "category": row.category,
         "number_kind": row.number_kind}
        for row in session.scalars(select(TrafficRow).where(TrafficRow.blind_index == index)
                                   .order_by(TrafficRow.day.desc(), TrafficRow.id).limit(LIMIT))
    ]
    conversions = [
        {"id": c.id, "kind": c.kind, "conversion_type": c.conversion_type, "click_id": c.click_id,
         "transaction_id": c.transaction_id, "country": c.country, "campaign_id": c.campaign_id,
         "campaign_name": c.campaign_name, "offer_id": c.offer_id, "offer_name": c.offer_name,
         "postback_at": _iso(c.postback_at), "visit_at": _iso(c.visit_at),
         "revenue": str(c.revenue) if c.revenue is not None else None}
        for c in session.scalars(select(Conversion).where(Conversion.blind_index == index)
                                 .order_by(Conversion.postback_at.desc(), Conversion.id.desc()).limit(LIMIT))
    ]
    latest = session.get(LiveEvent, index)
    live = None if latest is None else {
        "event_at": _iso(latest.event_at), "click_id": latest.click_id, "campaign_id": latest.campaign_id,
        "offer_id": latest.offer_id, "country_code": latest.country_code, "os": latest.os,
        "os_version": latest.os_version, "browser": latest.browser, "ip": latest.ip,
    }
    events = [
        {"event_at": _iso(e.event_at), "source": e.source, "click_id": e.click_id, "campaign_id": e.campaign_id,
         "offer_id": e.offer_id, "received_at": _iso(e.received_at)}
        for e in session.scalars(select(LiveRawEvent).where(LiveRawEvent.blind_index == index)
                                 .order_by(LiveRawEvent.event_at.desc(), LiveRawEvent.id.desc()).limit(50))
    ]
    return NumberReport(number=e164, country=country_of(e164) if e164.startswith("+") else None, status=None,
                        traffic_rows=traffic_total, traffic=traffic, conversions=conversions, live=live,
                        live_events=events, hlr=results_for_number(session, index),
                        traffic_visits=visits, traffic_clicks=clicks,
                        first_day=first_day.isoformat() if first_day else None,
                        last_day=last_day.isoformat() if last_day else None,
                        facts=conversion_summary(session, index))
