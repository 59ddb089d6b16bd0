"""Today's broadcasts, live: read from MessageWhiz page by page and streamed as server-sent events.

`stream()` yields SSE text (`event: NAME` / `data: JSON`). Each pass over today's broadcasts (newest first,
as the pages arrive) sends a `row` event for every broadcast whose name contains the filter and that is new
or changed since the last pass, then a `group` event per changed group (broadcasts of one list share the name
before `_chunk`), then `pass`. With `every` set it waits and passes again (clicks and delivery reports grow
after sending) until `max_seconds`; it ends with `done`. A provider error is sent as an `error` event and the
stream goes on with the next pass. Nothing is stored.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import structlog

from phoneops.broadcasts.client import Broadcast, MessageWhizClient, day_window
from phoneops.broadcasts.provider import state_text
from phoneops.core.http import ProviderError

log = structlog.get_logger("phoneops.broadcasts.live")

MIN_EVERY = 2.0
DEFAULT_EVERY = 30.0
MAX_SECONDS = 15 * 60


def matches(broadcast: Broadcast, search: str | None) -> bool:
    return not search or search.strip().lower() in broadcast.name.lower()


def _num(value: Decimal | None, places: str = "0.01") -> str | None:
    return None if value is None else str(value.quantize(Decimal(places)))


def live_row(broadcast: Broadcast) -> dict[str, Any]:
    return {
        "id": broadcast.id, "name": broadcast.name, "group": broadcast.group_name,
        "send_date": broadcast.send_date.isoformat() if broadcast.send_date else None,
        "status": state_text(broadcast.state), "state": broadcast.state,
        "link_id": broadcast.link_id, "recipients": broadcast.recipient_count or 0,
        "price": _num(broadcast.price, "0.0001"), "unique_clicks": broadcast.unique_clicks or 0,
        "total_clicks": broadcast.total_clicks or 0, "ctr": _num(broadcast.ctr),
        "delivered": broadcast.delivered_count or 0, "sent": broadcast.sent_count or 0,
        "undelivered": broadcast.undelivered_count or 0, "rejected": broadcast.rejected_count or 0,
    }


def group_totals(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Totals per group (name before `_chunk`), groups in order of their first row."""
    groups: dict[str, dict[str, Any]] = {}
    for row in rows:
        total = groups.setdefault(row["group"], {"group": row["group"], "broadcasts": 0, "recipients": 0,
                                                 "price": Decimal(0), "unique_clicks": 0, "total_clicks": 0,
                                                 "delivered": 0, "undelivered": 0, "rejected": 0})
        total["broadcasts"] += 1
        for key in ("recipients", "unique_clicks", "total_clicks", "delivered", "undelivered", "rejected"):
            total[key] += int(row[key])
        total["price"] += Decimal(row["price"] or 0)
    for total in groups.values():
        recipients = total["recipients"]
        total["ctr"] = f"{total['unique_clicks'] * 100 / recipients:.2f}" if recipients else None
        total["price"] = str(total["price"].quantize(Decimal("0.0001")))
    return groups


def event(name: str, data: Any) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def today_rows(client: MessageWhizClient, search: str | None = None, day: date | None = None
               ) -> Iterator[dict[str, Any]]:
    """Today's (or `day`'s) broadcasts matching `search`, as live rows, newest first (the CLI's view)."""
    for broadcast in client.iter_broadcasts(*day_window(day or datetime.now(UTC).date())):
        if matches(broadcast, search):
            yield live_row(broadcast)


async def stream(
    client: MessageWhizClient,
    search: str | None = None,
    *,
    every: float | None = None,
    max_seconds: float = MAX_SECONDS,
    day: date | None = None,
) -> AsyncIterator[str]:
    """SSE text for today's broadcasts (see the module docstring)."""
    every = None if not every else max(MIN_EVERY, every)
    deadline = time.monotonic() + max(0.0, min(max_seconds, MAX_SECONDS))
    seen: dict[int, dict[str, Any]] = {}
    sent_groups: dict[str, dict[str, Any]] = {}
    passes = 0
    yield ": today's broadcasts\nretry: 5000\n\n"
    while True:
        passes += 1
        wanted = day or datetime.now(UTC).date()
        items = client.iter_broadcasts(*day_window(wanted))
        count, failed = 0, False
        try:
            while (broadcast := await asyncio.to_thread(next, items, None)) is not None:
                if not matches(broadcast, search):
                    continue
                count += 1
                row = live_row(broadcast)
                if seen.get(broadcast.id) != row:
                    seen[broadcast.id] = row
                    yield event("row", row)
        except ProviderError as exc:
            failed = True
            log.warning("broadcasts.live.error", error=exc.message)
            yield event("error", {"message": exc.message})
        for name, total in group_totals(seen.values()).items():
            if sent_groups.get(name) != total:
                sent_groups[name] = total
                yield event("group", total)
        yield event("pass", {"pass": passes, "broadcasts": count, "day": wanted.isoformat(), "failed": failed,
                             "at": datetime.now(UTC).isoformat(timespec="seconds")})
        if every is None or time.monotonic() + every > deadline:
            break
        await asyncio.sleep(every)
    yield event("done", {"passes": passes, "broadcasts": len(seen)})
