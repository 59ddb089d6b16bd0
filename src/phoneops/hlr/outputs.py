"""What a lookup produces: the clean file, the raw results file, the breakdown, result pages.

- clean file: header `phone_number`, the numbers whose outcome is `clean` (live, not on a risky network),
  in the order of the source;
- raw results file: one row per number of the lookup — its state (cached, looked up, needs review...), the
  provider's fields under their dotted batch-CSV names, credits, our outcome and reason. Numbers in review
  are listed too, so that every number paid for (or maybe paid for) is accounted for.

Both contain plaintext numbers: downloading them is an audited export for operators.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import Row, func, select
from sqlalchemy.orm import Session

from phoneops.core import storage
from phoneops.core.csvio import neutralise
from phoneops.core.security import Principal, Role
from phoneops.hlr.models import CACHED, DONE, FAILED, PENDING, REVIEW, SENDING, HlrLookup, HlrLookupItem, HlrResult
from phoneops.hlr.provider import credits_text
from phoneops.hlr.risky import load_matcher
from phoneops.numbers.vault import get_vault, mask

RAW_HEADER = (
    "phone_number", "state", "looked_up_at", "live_status", "telephone_number_type", "original_network",
    "original_network_details.name", "original_network_details.mccmnc", "current_network",
    "current_network_details.name", "current_network_details.mccmnc", "country_iso3", "is_ported",
    "credits_spent", "risky_network", "outcome", "reason", "note",
)
STATE_LABELS = {CACHED: "cached", DONE: "looked up", REVIEW: "needs review", FAILED: "failed",
                PENDING: "not looked up", SENDING: "in progress"}
CHUNK = 5000


def serving_network(result: HlrResult | Row[Any]) -> tuple[str, str]:
    """(name, MCC-MNC) of the network serving the number: the current one when known, else the original."""
    if result.current_network or result.current_mccmnc:
        return result.current_network, result.current_mccmnc
    return result.original_network, result.original_mccmnc


_ROW_COLUMNS = (
    HlrLookupItem.id, HlrLookupItem.blind_index, HlrLookupItem.sealed, HlrLookupItem.state, HlrLookupItem.outcome,
    HlrLookupItem.reason, HlrLookupItem.note, HlrResult.id.label("result_id"), HlrResult.looked_up_at,
    HlrResult.live_status, HlrResult.number_type, HlrResult.original_network, HlrResult.original_mccmnc,
    HlrResult.current_network, HlrResult.current_mccmnc, HlrResult.country_iso3, HlrResult.ported,
    HlrResult.credits_spent,
)


def _rows(session: Session, lookup_id: int) -> Iterator[Row[Any]]:
    """Items of a lookup with their results' columns, in source order, read in chunks."""
    after = 0
    while True:
        batch: Sequence[Any] = session.execute(
            select(*_ROW_COLUMNS)
            .outerjoin(HlrResult, HlrResult.id == HlrLookupItem.result_id)
            .where(HlrLookupItem.lookup_id == lookup_id, HlrLookupItem.id > after)
            .order_by(HlrLookupItem.id)
            .limit(CHUNK)
        ).all()
        if not batch:
            return
        yield from batch
        after = batch[-1].id


def _line(values: Sequence[object]) -> bytes:
    """One CSV line, spreadsheet formulas neutralised (network names come from the provider)."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow([neutralise(v) for v in values])
    return buffer.getvalue().encode()


def _yes_no(value: bool | None) -> str:
    return "" if value is None else ("YES" if value else "NO")


def _raw_row(number: str, row: Row[Any], risky: bool) -> list[object]:
    state = STATE_LABELS.get(row.state, row.state)
    tail = ["YES" if risky else "NO", row.outcome or "", row.reason or "", row.note or ""]
    if row.result_id is None:
        return [number, state, *([""] * 12), *tail]
    return [
        number, state, row.looked_up_at.strftime("%Y-%m-%dT%H:%M:%SZ"), row.live_status, row.number_type,
        "AVAILABLE" if row.original_network else "NOT_AVAILABLE", row.original_network, row.original_mccmnc,
        "AVAILABLE" if row.current_network else "NOT_AVAILABLE", row.current_network, row.current_mccmnc,
        row.country_iso3, _yes_no(row.ported), credits_text(row.credits_spent) if row.state == DONE else "0", *tail,
    ]


def write_outputs(session: Session, actor: Principal, lookup: HlrLookup) -> None:
    """(Re)write the clean and raw files of a lookup; earlier versions are deleted."""
    store = storage.get_storage()
    for old in (lookup.clean_file_id, lookup.raw_file_id):
        if old:
            store.delete(session, actor, storage.get_file(session, old))
    vault, matcher = get_vault(), load_matcher(session)
    base = storage.safe_name(lookup.title.removeprefix("HLR lookup of ")).rsplit(".", 1)[0] or f"lookup-{lookup.id}"
    with (
        store.writer(session, actor, kind="hlr-clean", original_name=f"hlr_clean_{base}.csv",
                     content_type="text/csv") as (clean_out, clean_rows),
        store.writer(session, actor, kind="hlr-raw", original_name=f"hlr_raw_{base}.csv",
                     content_type="text/csv") as (raw_out, raw_rows),
    ):
        clean_out.write(b"phone_number\n")
        raw_out.write(_line(RAW_HEADER))
        for row in _rows(session, lookup.id):
            number = vault.open(row.sealed, row.blind_index)
            if row.outcome == "clean" and row.state in (DONE, CACHED):
                clean_out.write(f"{number}\n".encode())
            risky = row.live_status == "LIVE" and matcher.match(*serving_network(row))
            raw_out.write(_line(_raw_row(number, row, risky)))
    lookup.clean_file_id = clean_rows[0].id
    lookup.raw_file_id = raw_rows[0].id
    lookup.breakdown = breakdown(session, lookup.id)


def breakdown(session: Session, lookup_id: int) -> dict[str, Any]:
    """Counts for the status page and its chart: outcome, live status, number type, network, state."""
    base = (
        select(HlrLookupItem.id)
        .where(HlrLookupItem.lookup_id == lookup_id, HlrLookupItem.state.in_((DONE, CACHED)))
        .subquery()
    )

    def grouped(*columns: Any) -> list[tuple[Any, ...]]:
        query = (
            select(*columns, func.count(HlrLookupItem.id))
            .join(base, base.c.id == HlrLookupItem.id)
            .outerjoin(HlrResult, HlrResult.id == HlrLookupItem.result_id)
            .group_by(*columns)
        )
        return [tuple(row) for row in session.execute(query)]

    outcomes: dict[str, int] = {}
    for action, reason, count in grouped(HlrLookupItem.outcome, HlrLookupItem.reason):
        label = f"{action} {reason}" if reason else str(action or "undecided")
        outcomes[label] = outcomes.get(label, 0) + int(count)
    states = {
        STATE_LABELS.get(str(state), str(state)): int(count)
        for state, count in session.execute(
            select(HlrLookupItem.state, func.count(HlrLookupItem.id))
            .where(HlrLookupItem.lookup_id == lookup_id)
            .group_by(HlrLookupItem.state)
        )
    }
    networks = sorted(
        ((str(name or "(unknown)"), int(count)) for name, count in grouped(HlrResult.current_network)),
        key=lambda pair: -pair[1],
    )
    return {
        "outcomes": dict(sorted(outcomes.items(), key=lambda pair: -pair[1])),
        "live_status": {str(k or "(none)"): int(v) for k, v in grouped(HlrResult.live_status)},
        "number_type": {str(k or "(none)"): int(v) for k, v in grouped(HlrResult.number_type)},
        "networks": dict(networks[:12]),
        "states": states,
    }


def summary_line(lookup: HlrLookup, counts: dict[str, int]) -> str:
    parts = [f"{lookup.numbers:,} numbers", f"{counts.get(CACHED, 0):,} from fresh results",
             f"{counts.get(DONE, 0):,} looked up", f"{credits_text(lookup.credits_spent)} credits spent"]
    if counts.get(REVIEW):
        parts.append(f"{counts[REVIEW]:,} need review (in doubt, not resent)")
    if counts.get(FAILED):
        parts.append(f"{counts[FAILED]:,} failed")
    return "; ".join(parts)


# --- result pages ------------------------------------------------------------------------------------


def _shown(number: str, actor: Principal) -> str:
    return number if actor.can(Role.admin) else mask(number)


def result_page(
    session: Session, actor: Principal, lookup_id: int, *, after_id: int = 0, limit: int = 100,
    state: str | None = None,
) -> list[dict[str, Any]]:
    """A page of a lookup's numbers with their results; numbers in full for admins, masked otherwise."""
    query = (
        select(HlrLookupItem, HlrResult)
        .outerjoin(HlrResult, HlrResult.id == HlrLookupItem.result_id)
        .where(HlrLookupItem.lookup_id == lookup_id, HlrLookupItem.id > after_id)
        .order_by(HlrLookupItem.id)
        .limit(max(1, min(limit, 1000)))
    )
    if state:
        query = query.where(HlrLookupItem.state == state)
    vault = get_vault()
    return [{**_result_dict(item.id, _shown(vault.open(item.sealed, item.blind_index), actor), item, result),
             "key": item.blind_index.hex()} for item, result in session.execute(query)]


def _result_dict(item_id: int, number: str, item: HlrLookupItem | None, result: HlrResult | None) -> dict[str, Any]:
    network = serving_network(result) if result is not None else ("", "")
    return {
        "id": item_id, "number": number,
        "state": item.state if item is not None else DONE,
        "live_status": result.live_status if result else None,
        "number_type": result.number_type if result else None,
        "network": network[0] or None, "mccmnc": network[1] or None,
        "original_network": result.original_network if result else None,
        "ported": result.ported if result else None,
        "credits_spent": credits_text(result.credits_spent) if result else None,
        "looked_up_at": result.looked_up_at.isoformat() if result else None,
        "outcome": item.outcome if item is not None else None,
        "reason": item.reason if item is not None else None,
        "note": item.note if item is not None else None,
    }


def number_history(session: Session, actor: Principal, e164: str, limit: int = 20) -> list[dict[str, Any]]:
    """Every stored result of one number, newest first."""
    index = get_vault().index(e164)
    rows: Sequence[HlrResult] = list(session.scalars(
        select(HlrResult).where(HlrResult.blind_index == index).order_by(HlrResult.id.desc()).limit(limit)
    ))
    shown = _shown(e164, actor)
    return [{**_result_dict(r.id, shown, None, r), "lookup_id": r.lookup_id} for r in rows]


def credits_per_number_days(start: Any, end: Any) -> Any:
    """Credits paid for HLR lookups of numbers (by blind index) per day in [start, end] (dates): a subquery
    with blind_index, day, credits (for joins by blind index: no plaintext leaves the database)."""
    from datetime import UTC, datetime, timedelta

    day = func.date(HlrResult.looked_up_at)
    since = datetime(start.year, start.month, start.day, tzinfo=UTC)
    until = datetime(end.year, end.month, end.day, tzinfo=UTC) + timedelta(days=1)
    return (
        select(HlrResult.blind_index.label("blind_index"), day.label("day"),
               func.coalesce(func.sum(HlrResult.credits_spent), 0).label("credits"))
        .where(HlrResult.looked_up_at >= since, HlrResult.looked_up_at < until)
        .group_by(HlrResult.blind_index, day)
        .subquery()
    )
