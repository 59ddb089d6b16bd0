"""Conversions sync: REG and FTD postbacks from `GET /report/conversions`, idempotent, nothing lost at hour ends.

- Idempotent on (click id, transaction id, Voluum's conversion type): re-reading a window inserts nothing
  twice (duplicate postbacks inside one answer included).
- `kind` is FTD when Voluum's type is FTD, REG otherwise (the original's rule).
- `country` comes from the campaign name by a configurable rule (`VOLUUM_CAMPAIGN_COUNTRY_PATTERN`, a regular
  expression with a `country` group; by default the second " - " segment, as the original did), read as an
  ISO code or an English country name. A name the rule cannot read lands in the "unknown" bucket (country
  NULL) instead of failing the whole request.
- Every 5 minutes the periodic sync reads from one hour before the current hour to the end of the current
  hour (Voluum wants whole hours), and further back when the last periodic sync is older: consecutive
  windows overlap by at least an hour, so a postback landing in the last minute of an hour is read again
  after the hour has turned (the original read only the current hour and lost those).
- Numbers that converted are registered in the number core (on no list) so REG search can hand them out.

`converted_indexes` is the "converted" filter of list cleaning.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import phonenumbers
import structlog
from sqlalchemy import func, select, tuple_
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import ValidationFailed
from phoneops.core.http import ProviderError
from phoneops.core.jobs import JobContext, create_job
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM, Principal
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts, status_of_indexes
from phoneops.settings import get_settings
from phoneops.voluum import lookups
from phoneops.voluum.client import VoluumClient
from phoneops.voluum.facts import conversion_days, conversion_events
from phoneops.voluum.models import Conversion, ConversionSync
from phoneops.voluum.provider import (
    ceil_hour,
    chunks,
    credentials,
    day_range,
    day_start,
    floor_hour,
    get_client,
    insert_for,
    is_configured,
    job_actor,
    park_or_fail,
    parse_day,
    parse_moment,
    phone_reader,
    text,
)
from phoneops.voluum.wire import Conversion as WireConversion

log = structlog.get_logger("phoneops.voluum.conversions")

KIND = "voluum.conversions"
REG, FTD = "REG", "FTD"
UNKNOWN = "unknown"  # the bucket of conversions whose campaign name gives no country
OVERLAP = timedelta(hours=1)
MAX_CATCH_UP = timedelta(days=7)
MAX_WINDOW = timedelta(days=31)
DEFAULT_COUNTRY_PATTERN = r"^.*? - (?P<country>.+?)(?: - |$)"
BATCH = 5000

# --- the campaign-name country rule ---------------------------------------------------------------------

_ALIASES = {
    "uk": "GB", "greatbritain": "GB", "britain": "GB", "england": "GB", "scotland": "GB", "wales": "GB",
    "northernireland": "GB", "usa": "US", "unitedstatesofamerica": "US", "america": "US", "czechia": "CZ",
    "turkiye": "TR", "korea": "KR", "russianfederation": "RU", "ivorycoast": "CI", "uae": "AE",
    "holland": "NL", "thenetherlands": "NL", "southafrica": "ZA", "newzealand": "NZ",
}


def _key(name: str) -> str:
    decomposed = unicodedata.normalize("NFKD", name)
    return re.sub(r"[^a-z0-9]", "", "".join(c for c in decomposed if not unicodedata.combining(c)).casefold())


@lru_cache(maxsize=1)
def _country_names() -> dict[str, str]:
    from phonenumbers.geocoder import _region_display_name

    names: dict[str, str] = {}
    for region in phonenumbers.SUPPORTED_REGIONS:
        name = _region_display_name(region, "en")
        if name:
            names[_key(str(name))] = region
    return {**names, **_ALIASES}


def country_code(value: str) -> str | None:
    """An ISO 3166 alpha-2 code from a code (`GB`, `UK`) or an English name (`United Kingdom`)."""
    cleaned = value.strip()
    if len(cleaned) == 2 and cleaned.isalpha() and cleaned.upper() in phonenumbers.SUPPORTED_REGIONS:
        return cleaned.upper()
    return _country_names().get(_key(cleaned)) if cleaned else None


def country_rule(pattern: str | None = None) -> re.Pattern[str]:
    """The compiled campaign-name rule: `pattern`, else `VOLUUM_CAMPAIGN_COUNTRY_PATTERN`, else the default."""
    if pattern is None:
        pattern = get_settings().voluum_campaign_country_pattern or DEFAULT_COUNTRY_PATTERN
    return _compile(pattern)


@lru_cache(maxsize=16)
def _compile(pattern: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValidationFailed(f"VOLUUM_CAMPAIGN_COUNTRY_PATTERN is not a valid regular expression: {exc}") from None
    if compiled.groups < 1:
        raise ValidationFailed("VOLUUM_CAMPAIGN_COUNTRY_PATTERN needs a group (named `country`) around the country")
    return compiled


def campaign_country(name: str, rule: re.Pattern[str] | None = None) -> str | None:
    """The country of a campaign by its name; None is the "unknown" bucket."""
    rule = rule or country_rule()
    match = rule.search(name or "")
    if match is None:
        return None
    found = match.group("country") if "country" in rule.groupindex else match.group(1)
    return country_code(found or "")


def kind_of(conversion_type: str) -> str:
    return FTD if conversion_type.strip().upper() == FTD else REG


# --- storing -------------------------------------------------------------------------------------------


@dataclass
class StoreResult:
    rows: int = 0
    inserted: int = 0
    duplicates: int = 0
    unknown_country: int = 0
    without_number: int = 0
    numbers_registered: int = 0
    no_click_id: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def store(
    session: Session,
    actor: Principal,
    conversions: Iterable[WireConversion],
    *,
    client: VoluumClient | None = None,
    rule: re.Pattern[str] | None = None,
) -> StoreResult:
    """Insert conversions not stored yet (set-based), register their numbers, note unknown offers/campaigns."""
    result = StoreResult()
    unique: dict[tuple[str, str, str], WireConversion] = {}
    for item in conversions:
        result.rows += 1
        key = (text(item.click_id, 64), text(item.transaction_id, 128), text(item.conversion_type, 64))
        if not key[0]:
            result.no_click_id += 1  # a postback without a click id cannot be keyed: skipped
            continue
        unique.setdefault(key, item)
    lookups.note_entities(
        session, actor, client=client,
        offers={c.offer_id: c.offer_name for c in unique.values()},
        campaigns={c.campaign_id: c.campaign_name for c in unique.values()},
    )
    existing: set[tuple[str, str, str]] = set()
    for batch in chunks(list(unique), BATCH):
        existing.update(
            (a, b, c)
            for a, b, c in session.execute(
                select(Conversion.click_id, Conversion.transaction_id, Conversion.conversion_type).where(
                    tuple_(Conversion.click_id, Conversion.transaction_id, Conversion.conversion_type).in_(batch)
                )
            )
        )
    rule = rule or country_rule()
    reader = phone_reader()
    reader.exclude_erased(session)
    reader.prime(item.custom_variable_1 for key, item in unique.items() if key not in existing)
    numbers: dict[bytes, str] = {}
    fresh: list[dict[str, Any]] = []
    now = utcnow()
    for key, item in unique.items():
        if key in existing:
            continue
        country = campaign_country(item.campaign_name, rule)
        value = reader.read(item.custom_variable_1, country)  # the campaign's country settles ambiguous digits
        result.unknown_country += country is None
        result.without_number += value.index is None
        if value.index is not None and value.e164 is not None:
            numbers[value.index] = value.e164
        fresh.append({
            "click_id": key[0], "transaction_id": key[1], "conversion_type": key[2],
            "kind": kind_of(item.conversion_type), "blind_index": value.index, "number_kind": value.kind,
            "country": country, "campaign_id": text(item.campaign_id, 64),
            "campaign_name": text(item.campaign_name, 255), "offer_id": text(item.offer_id, 64),
            "offer_name": text(item.offer_name, 255), "traffic_source_id": text(item.traffic_source_id, 64),
            "visitor_country": text(item.country_code, 8), "visit_at": item.visit_time,
            "postback_at": item.postback_time, "revenue": item.revenue,
            "raw": {k: v for k, v in item.raw.items() if k != "customVariable1"}, "synced_at": now,
        })
    for batch in chunks(fresh, BATCH):
        statement = insert_for(session, Conversion).on_conflict_do_nothing(
            index_elements=["click_id", "transaction_id", "conversion_type"]
        )
        session.execute(statement, batch)
    result.inserted = len(fresh)
    result.duplicates = result.rows - result.no_click_id - result.inserted
    if numbers:
        known = status_of_indexes(session, list(numbers))
        verdicts = [Verdict(e164, None, Authority.auto, reason="CONVERSION", source="VOLUUM")
                    for index, e164 in numbers.items() if index not in known]
        result.numbers_registered = apply_verdicts(session, actor, verdicts).new_numbers
    return result


def sync_window(
    session: Session,
    actor: Principal,
    start: datetime,
    end: datetime,
    *,
    trigger: str = "manual",
    client: VoluumClient | None = None,
) -> ConversionSync:
    """Read and store the conversions of [start, end) widened to whole hours, in the caller's transaction."""
    start, end = floor_hour(parse_moment(start, "from")), ceil_hour(parse_moment(end, "to"))
    if end <= start:
        raise ValidationFailed("the window is empty: `to` must come after `from`")
    if end - start > MAX_WINDOW:
        raise ValidationFailed(f"a window spans at most {MAX_WINDOW.days} days; use the range job for more")
    client = client or get_client()
    settings = get_settings()
    started = utcnow()
    rows = list(client.iter_conversions(start, end, currency=settings.voluum_currency, tz=settings.voluum_timezone))
    result = store(session, actor, rows, client=client)
    record = ConversionSync(
        trigger=trigger, window_from=start, window_to=end, status="succeeded", rows=result.rows,
        inserted=result.inserted, duplicates=result.duplicates, unknown_country=result.unknown_country,
        started_at=started, finished_at=utcnow(),
    )
    session.add(record)
    session.flush()
    log.info("voluum.conversions.synced", trigger=trigger, start=start.isoformat(), end=end.isoformat(),
             **result.as_dict())
    return record


# --- the periodic sync ---------------------------------------------------------------------------------


def periodic_window(session: Session, now: datetime) -> tuple[datetime, datetime]:
    """From an hour before the current hour (or before the end of the last good periodic window, when that is
    older; at most `MAX_CATCH_UP` back) to the end of the current hour."""
    hour = floor_hour(now)
    end = hour + timedelta(hours=1)
    start = hour - OVERLAP
    last = session.scalar(
        select(func.max(ConversionSync.window_to)).where(
            ConversionSync.trigger == "periodic", ConversionSync.status == "succeeded"
        )
    )
    if last is not None and last - OVERLAP < start:
        start = max(floor_hour(last) - OVERLAP, end - MAX_CATCH_UP)
    return start, end


def periodic_sync(now: datetime | None = None, client: VoluumClient | None = None) -> ConversionSync | None:
    """The 5-minute tick (does nothing while Voluum is not configured); a failure is recorded, then raised."""
    if client is None and not is_configured():
        return None
    now = now or utcnow()
    with session_scope() as session:
        start, end = periodic_window(session, now)
    try:
        with session_scope() as session:
            record = sync_window(session, SYSTEM, start, end, trigger="periodic", client=client)
            session.expunge(record)
            return record
    except ProviderError as exc:
        with session_scope() as session:
            session.add(ConversionSync(trigger="periodic", window_from=start, window_to=end, status="failed",
                                       error=exc.message[:2000], finished_at=utcnow()))
        raise


# --- the range job -------------------------------------------------------------------------------------


def start_sync(session: Session, actor: Principal, start: date | str, end: date | str | None = None) -> Job:
    """Queue a conversions sync of whole days `start`..`end` (inclusive), one committed step per day."""
    first = parse_day(start, "from")
    last = parse_day(end, "to") if end is not None else first
    days = day_range(first, last)
    credentials()
    label = f"{first}" if first == last else f"{first} to {last}"
    job = create_job(session, actor, KIND, {"from": first.isoformat(), "to": last.isoformat(),
                                             "actor": actor.username},
                     title=f"Voluum conversions {label}", total=len(days))
    audit(session, actor, "voluum.conversions.start", "job", job.id, {"from": str(first), "to": str(last)})
    return job


def run_job(ctx: JobContext) -> dict[str, Any]:
    days = day_range(parse_day(ctx.params["from"]), parse_day(ctx.params["to"]))
    actor = job_actor(ctx)
    client = get_client()
    totals: dict[str, int] = {k: int(v) for k, v in dict(ctx.checkpoint.get("totals", {})).items()}
    for number in range(int(ctx.checkpoint.get("next", 0)), len(days)):
        start = day_start(days[number])
        try:
            with session_scope() as session:
                record = sync_window(session, actor, start, start + timedelta(days=1), client=client)
                for key in ("rows", "inserted", "duplicates", "unknown_country"):
                    totals[key] = totals.get(key, 0) + int(getattr(record, key))
                ctx.step(session, checkpoint={"next": number + 1, "totals": totals}, done=number + 1,
                         total=len(days), counters=totals,
                         message=f"{days[number]}: {record.inserted} new of {record.rows}")
        except ProviderError as exc:
            raise park_or_fail(ctx, exc) from exc
    return {"from": ctx.params["from"], "to": ctx.params["to"], **totals}


# --- reading -------------------------------------------------------------------------------------------


def converted_indexes(session: Session, indexes: Sequence[bytes]) -> set[bytes]:
    """The blind indexes among `indexes` of numbers with any conversion (REG or FTD) — list cleaning's
    "converted" filter. Chunked `IN` probes, never one query per number."""
    events = conversion_events()  # purged conversions too (docs/retention.md)
    found: set[bytes] = set()
    for batch in chunks(set(indexes), BATCH):
        query = select(events.c.blind_index).where(events.c.blind_index.in_(batch)).distinct()
        found.update(index for index in session.scalars(query) if index is not None)
    return found


def counts_by_country(session: Session, since: datetime | None = None) -> dict[str, dict[str, int]]:
    """REG and FTD counts per country (the unknown bucket under "unknown"), from `since` on."""
    events = conversion_events()  # purged conversions too (docs/retention.md)
    query = select(events.c.country, events.c.kind, func.sum(events.c.n)).group_by(events.c.country, events.c.kind)
    if since is not None:
        query = query.where(events.c.at >= since)
    out: dict[str, dict[str, int]] = {}
    for country, kind, count in session.execute(query):
        out.setdefault(country or UNKNOWN, {REG: 0, FTD: 0})[str(kind)] = int(count)
    return dict(sorted(out.items()))


def recent_syncs(session: Session, limit: int = 20) -> list[ConversionSync]:
    return list(session.scalars(select(ConversionSync).order_by(ConversionSync.id.desc()).limit(limit)))


def country_filter(country: str | None, column: Any = None) -> Any:
    """The WHERE clause for a country code or the "unknown" bucket (on `column`, default the conversions')."""
    column = Conversion.country if column is None else column
    if country is None or country.strip().lower() == UNKNOWN:
        return column.is_(None)
    code = country.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise ValidationFailed(f"country must be an ISO code such as GB, or {UNKNOWN!r} (got {country!r})")
    return column == code


def per_number_days(start: date, end: date) -> Any:
    """Conversions attributed to a number (by blind index), per postback day in [start, end], purged ones
    included (docs/retention.md): a subquery with blind_index, day, regs, ftds, revenue (for joins by blind
    index: no plaintext leaves the database)."""
    return conversion_days(start, end)

