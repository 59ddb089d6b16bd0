"""The User-Agent of a number's clicks: what the OS rules read when the tracker's OS field is empty.

Voluum's traffic report carries no User-Agent (docs/providers/voluum.md); its live events and conversions do.
A click whose OS field names no OS is classified by `phoneops.numbers.osrules.classify_click` with the latest
User-Agent the tracker sent for the same number: its live event first, else its latest conversion. The
traffic sync, the live-event sync and the OS-rules re-evaluation all classify through `click_verdict`, so a
number gets the same list whichever path saw it (docs/lists.md, "OS rules").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.numbers.osrules import OsRule, Verdict, classify_click, parse_os
from phoneops.voluum.models import Conversion, LiveEvent

__all__ = ["click_verdict", "latest_agents", "names_no_os"]

_CHUNK = 900  # bound parameters per IN (SQLite's limit is 999)


def names_no_os(os_text: str | None) -> bool:
    """True when the tracker's OS field gives no OS family (empty or blank)."""
    return parse_os(os_text).family is None


def click_verdict(os_text: str | None, user_agent: str | None, rules: Sequence[OsRule]) -> Verdict:
    """One click's verdict: the OS field, and the User-Agent when that field names no OS."""
    return classify_click(os_text, user_agent, rules)


def _agent(payload: object) -> str | None:
    value = payload.get("userAgent") if isinstance(payload, dict) else None
    return value.strip()[:1000] if isinstance(value, str) and value.strip() else None


def latest_agents(session: Session, indexes: Iterable[bytes]) -> dict[bytes, str]:
    """The latest User-Agent the tracker sent for each number (by blind index): live event, else conversion."""
    wanted = sorted(set(indexes))
    found: dict[bytes, str] = {}
    for start in range(0, len(wanted), _CHUNK):
        chunk = wanted[start : start + _CHUNK]
        for index, payload in session.execute(
            select(LiveEvent.blind_index, LiveEvent.payload).where(LiveEvent.blind_index.in_(chunk))
        ):
            if (agent := _agent(payload)) is not None:
                found[index] = agent
        latest: dict[bytes, tuple[str, str]] = {}
        for index, raw, moment in session.execute(
            select(Conversion.blind_index, Conversion.raw, Conversion.postback_at)
            .where(Conversion.blind_index.in_([i for i in chunk if i not in found]))
        ):
            agent = _agent(raw)
            if index is None or agent is None:
                continue
            when = moment.isoformat() if moment is not None else ""
            if index not in latest or when >= latest[index][0]:
                latest[index] = (when, agent)
        found.update({index: agent for index, (_, agent) in latest.items()})
    return found
