"""A number's whole story, one answer: its status and every change of it, what the tracker saw (traffic,
conversions, live events), HLR results, broadcasts that reached it where known, Ongage state, the cleaning
run that used it, imports that listed it, and erasure requests.

One service for the number page (`/numbers/n/{key}`), `GET /api/numbers/{number}` and
`phoneops numbers lookup`. A page address is the number's blind index in hex (a number never appears in a
URL a browser keeps); admins see the number in full, everyone else masked, as in the lists.
"""

from __future__ import annotations

import binascii
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.broadcasts.days import broadcasts_for
from phoneops.cleaning.used import used_entry
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.security import Principal, Role
from phoneops.numbers.links import key_of as key_of  # the page address (re-exported for callers)
from phoneops.numbers.lists import lookup, reveal, to_e164
from phoneops.numbers.models import PhoneNumber
from phoneops.numbers.normalize import country_of
from phoneops.numbers.vault import get_vault, mask
from phoneops.ongage.service_sync import states_for_conversions
from phoneops.privacy.erase import erasures_for
from phoneops.voluum.find import report_for_index


@dataclass
class NumberStory:
    key: str  # the page address: blind index in hex
    number: str  # E.164 for admins and for a caller who gave the number; masked otherwise
    masked: str
    country: str | None
    known: bool  # the number core has a row for it
    status: dict[str, Any] | None
    voluum: dict[str, Any] = field(default_factory=dict)
    hlr: list[dict[str, Any]] = field(default_factory=list)
    broadcasts: list[dict[str, Any]] = field(default_factory=list)
    ongage: list[dict[str, Any]] = field(default_factory=list)
    cleaning: dict[str, Any] | None = None
    imports: list[dict[str, Any]] = field(default_factory=list)
    erasures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def story_for_number(session: Session, actor: Principal, raw: str, region: str) -> NumberStory:
    """The story of a number the caller knows (a value that is not a number is a ValidationFailed)."""
    e164 = to_e164(raw, region)
    return _story(session, actor, get_vault().index(e164), e164, region, shown=e164)


def story_for_key(session: Session, actor: Principal, key: str, region: str) -> NumberStory:
    """The story behind a page address; the number itself only for admins."""
    try:
        index = binascii.unhexlify(key.strip())
    except (binascii.Error, ValueError):
        raise ValidationFailed("not a number address", details={"key": key[:80]}) from None
    if len(index) != 32:
        raise ValidationFailed("not a number address", details={"key": key[:80]})
    e164 = reveal(session, [index]).get(index)
    erasures = erasures_for(session, index)
    if e164 is None and not erasures:
        raise NotFound("no number is known at this address")
    shown = e164 if e164 is not None and actor.can(Role.admin) else None
    return _story(session, actor, index, e164, region, shown=shown, erasures=erasures)


def _day(value: Any) -> date | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value)).date()
    except ValueError:
        return None


def _story(session: Session, actor: Principal, index: bytes, e164: str | None, region: str, *,
           shown: str | None, erasures: list[dict[str, Any]] | None = None) -> NumberStory:
    erasures = erasures if erasures is not None else erasures_for(session, index)
    masked = mask(e164) if e164 else (erasures[0]["masked"] if erasures else "")
    known = session.scalar(select(PhoneNumber.id).where(PhoneNumber.blind_index == index)) is not None
    status = asdict(lookup(session, actor, e164, region)) if known and e164 else None
    if status is not None and shown is None:
        status["number"] = masked
    report = report_for_index(session, index, e164 or "")
    voluum = report.as_dict()
    for name in ("number", "country", "status", "hlr"):
        voluum.pop(name, None)
    visits = [(c.get("campaign_id") or "", _day(c.get("visit_at"))) for c in report.conversions]
    visits += [(e.get("campaign_id") or "", _day(e.get("event_at"))) for e in report.live_events]
    campaign_days = [(campaign, day) for campaign, day in visits if campaign and day]
    # conversions a retention purge folded into facts still tell which broadcasts reached the number
    campaign_days += [(campaign, date.fromisoformat(day)) for campaign, day in report.facts.get("campaign_days", [])]
    imports = [
        {"at": e["at"], "file": e["evidence"].get("import_file"), "file_id": e["evidence"].get("file_id"),
         "status": e["status"], "actor": e["actor"], "reason": e["reason"]}
        for e in (status or {}).get("history", []) if isinstance(e.get("evidence"), dict)
        and e["evidence"].get("import_file")
    ]
    return NumberStory(
        key=index.hex(),
        number=shown or masked,
        masked=masked,
        country=country_of(e164) if e164 else (erasures[0].get("country") if erasures else None),
        known=known,
        status=status,
        voluum=voluum,
        hlr=report.hlr,
        broadcasts=broadcasts_for(session, campaign_days),
        ongage=states_for_conversions(session, [int(c["id"]) for c in report.conversions]),
        cleaning=used_entry(session, index),
        imports=imports,
        erasures=erasures,
    )
