"""The Voluum simulator's dataset: seeded visits, conversions, campaigns and offers, and the report maths.

A visit fact is one pre-aggregated traffic record: dimensions (`customVariable1`, `ip`, `osVersion`,
`browserVersion`, `campaignId`, `trafficSourceId`, `offerId`, `countryCode`, ...), metrics (`visits`,
`uniqueVisits`, `clicks`, `conversions`, `revenue`, `cost`, `customConversions1`, ...) and an ISO
`timestamp` (a fact without one falls in every window). Reports group facts by the requested dimensions and
sum the metrics. Seeded phones are fictional (UK 07700 900xxx, AU 0491 570xxx, US 555-01xx), optionally
turned into AES-256-GCM link tokens (urlsafe base64 of nonce + ciphertext + tag, as the app's links carry).
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

CONVERSION_COLUMNS = (
    "clickId", "transactionId", "visitTimestamp", "postbackTimestamp", "revenue", "cost", "profit", "campaignId",
    "campaignName", "offerId", "offerName", "landerId", "landerName", "flowId", "pathId", "trafficSourceId",
    "trafficSourceName", "conversionType", "conversionTypeId", "referrer", "affiliateNetworkId",
    "affiliateNetworkName", "countryCode", "countryName", "region", "city", "ip", "isp", "connectionType", "device",
    "deviceName", "os", "osVersion", "browser", "browserVersion", "userAgent", "language", "externalId",
    "externalIdType", *(f"customVariable{n}" for n in range(1, 11)),
)
DIMENSIONS: dict[str, tuple[str, ...]] = {
    **{f"custom-variable-{n}": (f"customVariable{n}",) for n in range(1, 11)},
    "ip": ("ip",), "os": ("os",), "os-version": ("osVersion",), "browser": ("browser",),
    "browser-version": ("browserVersion",), "device": ("device",), "country-code": ("countryCode", "countryName"),
    "offer": ("offerId", "offerName"), "campaign": ("campaignId", "campaignName"),
    "traffic-source": ("trafficSourceId", "trafficSourceName"),
}
FILTERS = {"traffic-source": "trafficSourceId", "campaign": "campaignId", "offer": "offerId",
           "country-code": "countryCode"}
SUMMED = ("visits", "uniqueVisits", "clicks", "conversions", "revenue", "cost", "customConversions1",
          "customRevenue1", "customConversions2", "customRevenue2", "suspiciousVisits", "suspiciousClicks",
          "errors")
OS_VERSIONS = (
    ("IOS 18.6", 12), ("IOS 17.5", 8), ("IOS 16", 3), ("IOS 10.3", 2), ("IOS", 1), ("Android 15.0", 10),
    ("Android 14", 10), ("Android 13", 6), ("Android 10", 3), ("Android 9", 3), ("Android 8.1", 2),
    ("Android 7.0", 2), ("Android", 1), ("Android 17", 1), ("Windows 10", 5), ("Windows 11", 3), ("Windows 7", 1),
    ("MacOS 10.15", 3), ("Mac OS X 10.15", 1), ("Linux", 1), ("Ubuntu", 1), ("Chrome OS", 1), ("iOS 17", 1),
)
BROWSERS = ("Chrome Mobile 144", "Safari 18", "Mobile Safari 17", "Samsung Internet 27", "Firefox 133", "Edge 131")
COUNTRIES = (  # code, name, phone prefix, digits after it (fictional ranges)
    ("GB", "United Kingdom", "447700900", 3),
    ("AU", "Australia", "61491570", 3),
    ("US", "United States", "120255501", 2),
)
# The demo's phones: valid for the phone library (the fictional ranges above are rejected as invalid, so
# the demo would skip their traffic and conversions).
DEMO_COUNTRIES = (
    ("GB", "United Kingdom", "447400123", 3),
    ("AU", "Australia", "61412345", 3),
    ("US", "United States", "12127365", 3),
)
NOT_A_PHONE = "{{phoneNumber}}"


def ampm(moment: datetime) -> str:
    """`2025-10-01 04:20:43 AM`, as Voluum writes conversion timestamps."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %I:%M:%S %p")


def iso(moment: datetime) -> str:
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_when(value: Any) -> datetime | None:
    """ISO (`...Z`) or AM/PM text as aware UTC; None when absent or unreadable."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for fmt in ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def link_token(phone: str, key: bytes, rng: random.Random) -> str:
    """An AES-256-GCM link token for `phone` (nonce from `rng`, so seeded data is reproducible)."""
    nonce = rng.randbytes(12)
    sealed = AESGCM(key).encrypt(nonce, phone.encode(), None)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def decode_key(text: str) -> bytes:
    key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if len(key) != 32:
        raise ValueError("token_key must be a urlsafe-base64 AES-256 key (32 bytes)")
    return key


@dataclass
class Dataset:
    visits: list[dict[str, Any]] = field(default_factory=list)
    conversions: list[dict[str, Any]] = field(default_factory=list)
    campaigns: list[dict[str, Any]] = field(default_factory=list)
    offers: list[dict[str, Any]] = field(default_factory=list)
    traffic_sources: list[dict[str, Any]] = field(default_factory=list)


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def campaign_entity(
    campaign_id: str, name: str, country: tuple[str, str], source_id: str, created: str
) -> dict[str, Any]:
    return {
        "id": campaign_id, "name": name, "namePostfix": name.rsplit(" - ", 1)[-1], "createdTime": created,
        "updatedTime": created, "deleted": False, "url": f"https://trk.example.com/{campaign_id}?Phone={NOT_A_PHONE}",
        "impressionUrl": f"https://trk.example.com/impression/{campaign_id}", "costModel": {"type": "NOT_TRACKED"},
        "country": {"code": country[0], "name": country[1]}, "trafficSource": {"id": source_id},
        "redirectTarget": "CAMPAIGN", "tags": [], "workspace": {"id": "00000000-0000-0000-0000-000000000001"},
        "allowedActions": ["EDIT", "ARCHIVE"], "preferredTrackingDomain": "trk.example.com",
    }


def seed_dataset(
    seed: int, start: date, days: int, visits_per_day: int, *, token_key: bytes | None = None, token_ratio: float = 0.5,
    countries_table: Sequence[tuple[str, str, str, int]] = COUNTRIES,
) -> Dataset:
    """A reproducible dataset: 2 traffic sources, 7 campaigns (one without a country in its name), 5 offers,
    visits with phones / `{{phoneNumber}}` / empty, uniqueVisits 0, 1 and 2+, REG and FTD conversions with a
    duplicated postback."""
    rng = random.Random(seed)
    created = iso(datetime.combine(start, datetime.min.time(), tzinfo=UTC) - timedelta(days=30))
    data = Dataset()
    data.traffic_sources = [{"id": _uuid(rng), "name": name} for name in ("SMS Broadcasts", "Email Partners")]
    labels = ("Alpha", "Bravo", "Casino", "Delta", "Echo")
    data.offers = [{"id": _uuid(rng), "name": f"Offer {label}"} for label in labels]
    for number in range(1, 7):
        code, country, *_ = countries_table[(number - 1) % len(countries_table)]
        source = data.traffic_sources[(number - 1) % 2]
        name = f"Marketing Services {number} - {country} - {'XYZ'[number % 3]}"
        data.campaigns.append(campaign_entity(_uuid(rng), name, (code, country), source["id"], created))
    legacy = campaign_entity(_uuid(rng), "Legacy test campaign", ("", ""), data.traffic_sources[0]["id"], created)
    data.campaigns.append(legacy)  # no " - " in its name: the country rule must cope
    sources = {s["id"]: s["name"] for s in data.traffic_sources}
    countries = {c[0]: c for c in countries_table}
    versions, weights = zip(*OS_VERSIONS, strict=True)
    for day in range(days):
        day_start = datetime.combine(start + timedelta(days=day), datetime.min.time(), tzinfo=UTC)
        for _ in range(visits_per_day):
            campaign = rng.choice(data.campaigns)
            offer = rng.choice(data.offers)
            code = campaign["country"]["code"] or rng.choice(countries_table)[0]
            _, country, prefix, width = countries[code]
            draw = rng.random()
            phone = prefix + f"{rng.randrange(10**width):0{width}d}"
            if draw < 0.1:
                value = NOT_A_PHONE
            elif draw < 0.17:
                value = ""
            elif token_key is not None and rng.random() < token_ratio:
                value = link_token(phone, token_key, rng)
            else:
                value = phone
            os_version = rng.choices(versions, weights)[0]
            visits = rng.choices((1, 2, 3), (80, 15, 5))[0]
            unique = rng.choices((0, 1, visits), (15, 70, 15))[0]
            clicks = rng.choice((0, visits))
            moment = day_start + timedelta(seconds=rng.randrange(86_400))
            data.visits.append({
                "timestamp": iso(moment), "customVariable1": value, "ip": f"203.0.113.{rng.randrange(1, 255)}",
                "os": os_version.split(" ")[0], "osVersion": os_version, "browser": "", "device": "MOBILE",
                "browserVersion": rng.choice(BROWSERS), "campaignId": campaign["id"], "campaignName": campaign["name"],
                "trafficSourceId": campaign["trafficSource"]["id"],
                "trafficSourceName": sources[campaign["trafficSource"]["id"]], "offerId": offer["id"],
                "offerName": offer["name"], "countryCode": code, "countryName": country, "visits": visits,
                "uniqueVisits": unique, "clicks": clicks, "conversions": 0, "revenue": 0.0, "cost": 0.0,
                "customConversions1": 0, "customRevenue1": 0.0,
            })
            if value not in ("", NOT_A_PHONE) and clicks and rng.random() < 0.12:
                _convert(data, data.visits[-1], moment, rng)
    if data.conversions:
        data.conversions.insert(1, dict(data.conversions[0]))  # a duplicated postback, as Voluum sends them
    return data


def _convert(data: Dataset, visit: dict[str, Any], moment: datetime, rng: random.Random) -> None:
    click_id = rng.randbytes(12).hex()
    steps = [("REG", 0.0)] + ([("FTD", float(rng.choice((50, 100, 150))))] if rng.random() < 0.4 else [])
    for kind, revenue in steps:
        moment += timedelta(minutes=rng.randrange(1, 180))
        visit["customConversions1" if kind == "REG" else "conversions"] += 1
        visit["revenue"] += revenue
        data.conversions.append(conversion_row({
            **{k: visit[k] for k in ("campaignId", "campaignName", "offerId", "offerName", "trafficSourceId",
                                     "trafficSourceName", "countryCode", "countryName", "ip", "os", "osVersion",
                                     "browserVersion", "device", "customVariable1")},
            "clickId": click_id, "transactionId": rng.randbytes(8).hex(), "conversionType": kind,
            "conversionTypeId": kind.lower(), "revenue": revenue, "profit": revenue,
            "visitTimestamp": ampm(parse_when(visit["timestamp"]) or moment), "postbackTimestamp": ampm(moment),
        }))


def conversion_row(values: Mapping[str, Any]) -> dict[str, Any]:
    """A conversion row with all 49 columns (missing ones empty, metrics 0); ISO timestamps become AM/PM."""
    row: dict[str, Any] = dict.fromkeys(CONVERSION_COLUMNS, "")
    row.update({"revenue": 0.0, "cost": 0.0, "profit": 0.0})
    row.update(values)
    for key in ("visitTimestamp", "postbackTimestamp"):
        moment = parse_when(row[key])
        if moment is not None:
            row[key] = ampm(moment)
    return row


# --- the report maths ---------------------------------------------------------------------------------


def _derived(row: dict[str, Any]) -> dict[str, Any]:
    visits, clicks, cost, revenue = row["visits"], row["clicks"], row["cost"], row["revenue"]
    regs = row["customConversions1"]
    row["cost"], row["revenue"] = round(cost, 4), round(revenue, 4)
    row["profit"] = round(revenue - cost, 4)
    row["roi"] = round((revenue - cost) / cost * 100, 2) if cost else 0.0
    row["cv"] = round(row["conversions"] / visits * 100, 2) if visits else 0.0
    row["epv"] = round(revenue / visits, 4) if visits else 0.0
    row["cpv"] = round(cost / visits, 4) if visits else 0.0
    row["Click2Reg"] = round(regs / clicks * 100, 2) if clicks else 0.0
    row["Reg2FTD"] = round(row["conversions"] / regs * 100, 2) if regs else 0.0
    row["suspiciousVisitsPercentage"] = round(row["suspiciousVisits"] / visits * 100, 2) if visits else 0.0
    row["suspiciousClicksPercentage"] = round(row["suspiciousClicks"] / clicks * 100, 2) if clicks else 0.0
    return row


def aggregate(
    facts: Sequence[Mapping[str, Any]],
    group_by: Sequence[str],
    extra_cost: Mapping[int, float],
    *,
    entities: Iterable[Mapping[str, Any]] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows grouped by `group_by` (kebab-case dimensions) and the totals. `extra_cost` adds pushed costs per
    fact index (they mark `costSources: ["MANUAL_UPDATE"]`); `entities` adds zero rows for entities without
    traffic (`include=ALL` on a one-entity report)."""
    keys = [key for dim in group_by for key in DIMENSIONS[dim]]
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    totals: dict[str, Any] = dict.fromkeys(SUMMED, 0)
    manual = False
    for index, fact in enumerate(facts):
        ident = tuple(fact.get(k, "") for k in keys)
        row = groups.get(ident)
        if row is None:
            row = groups[ident] = {**dict(zip(keys, ident, strict=True)), **dict.fromkeys(SUMMED, 0), "costSources": []}
        values = {m: fact.get(m, 0) or 0 for m in SUMMED}
        values["visits"] = fact.get("visits", 1)  # a loaded row without metrics is one unique visit
        values["uniqueVisits"] = fact.get("uniqueVisits", 1 if values["visits"] else 0)
        if index in extra_cost:
            values["cost"] += extra_cost[index]
            row["costSources"] = ["MANUAL_UPDATE"]
            manual = True
        for metric, amount in values.items():
            row[metric] += amount
            totals[metric] += amount
    for entity in entities:
        ident = (entity["id"], entity["name"])
        if len(keys) == 2 and not any(k[0] == ident[0] for k in groups):
            groups[ident] = {keys[0]: ident[0], keys[1]: ident[1], **dict.fromkeys(SUMMED, 0), "costSources": []}
    rows = [_derived(row) for _, row in sorted(groups.items(), key=lambda item: tuple(map(str, item[0])))]
    totals["costSources"] = ["MANUAL_UPDATE"] if manual else []
    return rows, _derived(totals)


def within(stamp: Any, window: tuple[datetime | None, datetime | None]) -> bool:
    """Whether a timestamp falls in [start, end); a record without one falls in every window."""
    moment = parse_when(stamp)
    start, end = window
    return moment is None or start is None or end is None or start <= moment < end


# --- costs --------------------------------------------------------------------------------------------


def cost_update(item: Mapping[str, Any], reject_integer_cost: bool) -> dict[str, Any]:
    """One validated `costUpdateRequests` entry, normalised; ValueError/KeyError/TypeError when unreadable."""
    cost = item["cost"]
    if isinstance(cost, bool) or not isinstance(cost, int | float) or cost < 0:
        raise ValueError("cost")
    if isinstance(cost, int) and reject_integer_cost:
        raise ValueError("integer cost")
    start, end = parse_when(item["from"]), parse_when(item["to"])
    currency = str(item["currency"])
    if start is None or end is None or start >= end or len(currency) != 3 or not item["campaignId"]:
        raise ValueError("period or currency")
    return {"campaignId": str(item["campaignId"]), "from": iso(start), "to": iso(end),
            "timezone": str(item.get("timezone", "")), "cost": float(cost), "currency": currency}


def pushed_costs(visits: Sequence[Mapping[str, Any]], costs: Sequence[Mapping[str, Any]]) -> dict[int, float]:
    """Cost per visit fact (by position) from the pushes, shared by visits; the latest push per campaign and
    period wins (a push sets the cost, it does not add to it)."""
    latest = {(c["campaignId"], c["from"], c["to"]): c for c in costs}
    shares: dict[int, float] = {}
    for push in latest.values():
        window = (parse_when(push["from"]), parse_when(push["to"]))
        weights = [
            (pos, float(fact.get("visits", 1) or 0))
            for pos, fact in enumerate(visits)
            if fact.get("campaignId") == push["campaignId"] and within(fact.get("timestamp"), window)
        ]
        total = sum(weight for _, weight in weights)
        for pos, weight in weights:
            share = weight / total if total else 1 / len(weights)
            shares[pos] = shares.get(pos, 0.0) + push["cost"] * share
    return shares
