"""Where a number lives in the database, and how each place forgets it.

Per-number state is deleted: the number and its list history, the main database of used numbers, the latest live
event, HLR results and lookup items. An opt-out is kept, keyed by the blind index alone (docs/optouts.md), so the
number is still never sent to if it comes back. Event rows that other figures are built from (Voluum traffic rows,
conversions, raw live events) are kept as anonymous rows: blind index removed, `number_kind` = ``erased``, payload
emptied. Day totals stay right, and because such a row keeps its natural key (click/transaction/type for
conversions, message id/position for live events) a later sync of the same window finds it "already stored" and
does not bring the number back. Ongage sync state of the number's conversions is marked invalid (never sent).

Free text and JSON (job params and results, audit details, file samples, CSV job rows, dead letters ...) are
scrubbed by `text_columns` + `Matcher.scrub`: every writing of the number becomes ``[erased]``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import JSON, Column, String, Table, Text, delete, func, select, update
from sqlalchemy.orm import Session

from phoneops.core.db import Base, rowcount

ERASED_KIND = "erased"
# Strings that are never free text (hashes, worker ids): never rewritten.
SKIP_COLUMNS = {("users", "password_hash"), ("jobs", "lease_owner"), ("periodic_runs", "worker"),
                ("sample_ticks", "worker")}
SKIP_TABLES = {"privacy_erasures"}  # the ledger itself holds the blind index by design
TEXT_BATCH = 2000


def _count(session: Session, table: Any, where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(table).where(where)) or 0)


def erase_rows(session: Session, index: bytes) -> dict[str, int]:
    """Delete or anonymise every row keyed by the number's blind index; counts per place."""
    from phoneops.cleaning.models import UsedNumber
    from phoneops.hlr.models import HlrLookupItem, HlrResult
    from phoneops.numbers.models import NumberEvent, NumberOptOut, PhoneNumber
    from phoneops.ongage.models import OngageConversion
    from phoneops.voluum.models import (
        Conversion,
        ConversionFact,
        LiveEvent,
        LiveRawEvent,
        TrafficDayFact,
        TrafficFact,
        TrafficRow,
    )

    counts: dict[str, int] = {}
    number_ids = select(PhoneNumber.id).where(PhoneNumber.blind_index == index).scalar_subquery()
    counts["number_events"] = rowcount(session.execute(
        delete(NumberEvent).where(NumberEvent.number_id.in_(number_ids))
    ))
    # An opt-out outlives the erasure (docs/optouts.md, "Erasure"): it keeps the blind index, reason, source
    # and dates, loses its link to the number and its free-text detail, so the number stays refused.
    counts["number_optouts_kept"] = rowcount(session.execute(
        update(NumberOptOut).where(NumberOptOut.blind_index == index).values(number_id=None, detail=None)
    ))
    counts["phone_numbers"] = rowcount(session.execute(
        delete(PhoneNumber).where(PhoneNumber.blind_index == index)
    ))
    counts["used_numbers"] = rowcount(session.execute(
        delete(UsedNumber).where(UsedNumber.blind_index == index)
    ))
    counts["hlr_lookup_items"] = rowcount(session.execute(
        delete(HlrLookupItem).where(HlrLookupItem.blind_index == index)
    ))
    result_ids = select(HlrResult.id).where(HlrResult.blind_index == index).scalar_subquery()
    session.execute(update(HlrLookupItem).where(HlrLookupItem.result_id.in_(result_ids)).values(result_id=None))
    counts["hlr_results"] = rowcount(session.execute(
        delete(HlrResult).where(HlrResult.blind_index == index)
    ))
    counts["voluum_live_events"] = rowcount(session.execute(
        delete(LiveEvent).where(LiveEvent.blind_index == index)
    ))
    conversion_ids = select(Conversion.id).where(Conversion.blind_index == index).scalar_subquery()
    counts["ongage_conversions"] = rowcount(session.execute(
        update(OngageConversion)
        .where(OngageConversion.conversion_id.in_(conversion_ids))
        .values(status="invalid", last_error="number erased", contact_id=None, claimed_by=None,
                claimed_at=None, next_attempt_at=None)
    ))
    counts["voluum_conversions"] = rowcount(session.execute(
        update(Conversion).where(Conversion.blind_index == index)
        .values(blind_index=None, number_kind=ERASED_KIND, raw={})
    ))
    counts["voluum_traffic_rows"] = rowcount(session.execute(
        update(TrafficRow).where(TrafficRow.blind_index == index)
        .values(blind_index=None, number_kind=ERASED_KIND, ip="", metrics={})
    ))
    # facts kept from purged rows (docs/retention.md): conversion facts stay for the reports, anonymous;
    # traffic facts exist only per number and go
    counts["voluum_conversion_facts"] = rowcount(session.execute(
        update(ConversionFact).where(ConversionFact.blind_index == index).values(blind_index=None)
    ))
    counts["voluum_traffic_facts"] = rowcount(session.execute(
        delete(TrafficFact).where(TrafficFact.blind_index == index)
    ))
    counts["voluum_traffic_day_facts"] = rowcount(session.execute(
        delete(TrafficDayFact).where(TrafficDayFact.blind_index == index)
    ))
    counts["voluum_live_raw_events"] = rowcount(session.execute(
        update(LiveRawEvent).where(LiveRawEvent.blind_index == index)
        .values(blind_index=None, number_kind=ERASED_KIND, payload={})
    ))
    session.flush()
    return {k: int(v) for k, v in counts.items()}


def text_columns() -> list[tuple[Table, Column[Any], list[Column[Any]]]]:
    """(table, primary key, columns that may hold free text or JSON) for every table of every domain."""
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name in SKIP_TABLES:
            continue
        keys = list(table.primary_key.columns)
        if len(keys) != 1:
            continue
        columns = [
            c for c in table.columns
            if (table.name, c.name) not in SKIP_COLUMNS and not c.primary_key
            and (isinstance(c.type, JSON | Text) or (isinstance(c.type, String) and (c.type.length or 1000) >= 100))
        ]
        if columns:
            found.append((table, keys[0], columns))
    return found


def scan_batch(session: Session, table: Table, key: Column[Any], columns: list[Column[Any]], after: Any,
               limit: int = TEXT_BATCH) -> Iterator[tuple[Any, dict[str, Any]]]:
    """Rows of `table` after primary key `after` (None: from the start), `limit` of them, in key order."""
    query = select(key, *columns).order_by(key).limit(limit)
    if after is not None:
        query = query.where(key > after)
    for row in session.execute(query):
        values = row._mapping
        yield values[key.name], {c.name: values[c.name] for c in columns}
