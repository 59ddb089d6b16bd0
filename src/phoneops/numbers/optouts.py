"""Opt-outs that stick: a suppression kept per number, apart from its list status.

Rules (docs/optouts.md):
- one `NumberOptOut` row per number (keyed through the number's blind index, never plaintext); while it is
  `active`, cleaning drops the number and no export to a sending platform (Ongage) carries it;
- list imports, API bulk sets, tracker verdicts, HLR results and provider syncs only ever write list
  statuses: none of them reads or writes this table, so none can lift an opt-out;
- `lift` is the one way out: an admin, with a reason, audited and recorded in the number's history. The undo
  of the import that recorded an opt-out (an admin only) is the other;
- an opt-out fed again after an admin lifted it comes back only when it is newer than the lift (a provider
  still listing an old unsubscriber does not undo the admin's decision); a direct action (UI, API) always does.
Every change is a `NumberEvent` with source `OPT_OUT` (reason = the opt-out reason), so the history shows it.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import core_table, utcnow
from phoneops.core.errors import Forbidden, NotFound, ValidationFailed
from phoneops.core.security import Principal, Role
from phoneops.numbers.models import NumberEvent, NumberOptOut, PhoneNumber
from phoneops.numbers.normalize import country_of
from phoneops.numbers.vault import get_vault, mask

REASONS = ("sms_stop", "email_unsubscribe", "complaint", "manual")
EVENT_SOURCE = "OPT_OUT"
BATCH = 5000
ERASED = "[erased]"  # how a list shows an opt-out whose number privacy erased (the opt-out stays)

# Reply keywords meaning "stop sending", per language of the platform's countries (GB, IT, NL, DE, ES, FR),
# compared without case, accents and punctuation. A reply opts out when it IS a keyword, or starts with one
# and is short ("Stop please", "STOP ALL", "Basta grazie"): "don't stop" or a long message never does.
STOP_KEYWORDS = frozenset({
    # English (the carrier-standard set)
    "stop", "stopall", "stop all", "unsubscribe", "cancel", "end", "quit", "optout", "opt out", "remove",
    "stop sms", "revoke",
    # Italian
    "basta", "cancella", "cancellami", "disiscrivi", "disiscrivimi", "annulla", "rimuovi", "rimuovimi",
    # Dutch
    "afmelden", "uitschrijven", "opzeggen", "stoppen",
    # German
    "stopp", "abmelden", "abbestellen", "austragen", "kundigen", "beenden", "ende",
    # Spanish
    "baja", "darme de baja", "alto", "parar", "cancelar", "detener", "no mas",
    # French
    "arret", "arreter", "desabonner", "desabonnement", "desinscrire", "desinscription", "stop pub",
})
_MAX_WORDS = 4


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return " ".join(re.sub(r"[^\w\s]", " ", plain).replace("_", " ").split())


def is_stop_reply(text: str) -> bool:
    """Whether an inbound SMS asks to stop (see STOP_KEYWORDS)."""
    folded = _fold(text or "")
    if not folded:
        return False
    if folded in STOP_KEYWORDS:
        return True
    words = folded.split()
    if len(words) > _MAX_WORDS:
        return False
    return words[0] in STOP_KEYWORDS or " ".join(words[:2]) in STOP_KEYWORDS or " ".join(words[:3]) in STOP_KEYWORDS


def check_reason(reason: str) -> str:
    value = (reason or "").strip().lower()
    if value not in REASONS:
        raise ValidationFailed(
            f"unknown opt-out reason {reason!r} (allowed: {', '.join(REASONS)})", details={"allowed": list(REASONS)}
        )
    return value


@dataclass(frozen=True, slots=True)
class OptOutEntry:
    """One opt-out to record (E.164 already)."""

    e164: str
    reason: str
    source: str
    detail: str | None = None
    at: datetime | None = None  # when the person opted out, when the feed says so


@dataclass
class OptOutResult:
    numbers: int = 0
    recorded: int = 0  # newly opted out (or back after a lift)
    already: int = 0  # already opted out
    kept_lifted: int = 0  # an admin lifted it after this opt-out was made
    new_numbers: int = 0
    # (number id, existed before, previous opt-out state: None | "lifted") of every number recorded
    touched: list[tuple[int, bool, str | None]] = field(default_factory=list)

    def as_dict(self) -> dict[str, int]:
        return {"numbers": self.numbers, "recorded": self.recorded, "already": self.already,
                "kept_lifted": self.kept_lifted, "new_numbers": self.new_numbers}


def ensure_numbers(session: Session, e164s: Sequence[str]) -> tuple[dict[str, int], set[str]]:
    """Number ids for E.164 values, creating the unknown ones (set-based); returns (ids, created)."""
    vault = get_vault()
    unique = list(dict.fromkeys(e164s))
    ids: dict[str, int] = {}
    created: set[str] = set()
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        indexes = vault.index_many(chunk)
        by_index = dict(zip(indexes, chunk, strict=True))
        for number_id, index in session.execute(
            select(PhoneNumber.id, PhoneNumber.blind_index).where(PhoneNumber.blind_index.in_(indexes))
        ):
            ids[by_index[index]] = number_id
        missing = [(index, e164) for index, e164 in by_index.items() if e164 not in ids]
        if missing:
            now = utcnow()
            session.execute(insert(core_table(PhoneNumber)), [
                {"blind_index": index, "sealed": vault.seal(e164, index), "country": country_of(e164),
                 "first_seen_at": now, "updated_at": now}
                for index, e164 in missing
            ])
            for number_id, index in session.execute(
                select(PhoneNumber.id, PhoneNumber.blind_index).where(
                    PhoneNumber.blind_index.in_([i for i, _ in missing])
                )
            ):
                ids[by_index[index]] = number_id
                created.add(by_index[index])
    return ids, created


def record_optouts(
    session: Session,
    actor: Principal,
    entries: Iterable[OptOutEntry],
    *,
    import_id: int | None = None,
    direct: bool = False,
) -> OptOutResult:
    """Record opt-outs set-based (batches of 5,000). `direct`: a person's explicit action (UI/API/CLI)."""
    result = OptOutResult()
    batch: list[OptOutEntry] = []
    for entry in entries:
        check_reason(entry.reason)
        batch.append(entry)
        if len(batch) >= BATCH:
            _record_batch(session, actor, batch, result, import_id, direct)
            batch = []
    if batch:
        _record_batch(session, actor, batch, result, import_id, direct)
    return result


def _record_batch(
    session: Session,
    actor: Principal,
    entries: list[OptOutEntry],
    result: OptOutResult,
    import_id: int | None,
    direct: bool,
) -> None:
    unique = list({e.e164: e for e in entries}.values())
    result.numbers += len(unique)
    ids, created = ensure_numbers(session, [e.e164 for e in unique])
    result.new_numbers += len(created)
    vault = get_vault()
    index_of = dict(zip((e.e164 for e in unique), vault.index_many([e.e164 for e in unique]), strict=True))
    current = {  # by blind index: an opt-out whose number was erased (no number_id) still counts
        bytes(row.blind_index): row
        for row in session.execute(
            select(NumberOptOut.id, NumberOptOut.number_id, NumberOptOut.blind_index, NumberOptOut.state,
                   NumberOptOut.lifted_at).where(NumberOptOut.blind_index.in_(list(index_of.values())))
        )
    }
    relinks = [{"id": row.id, "number_id": ids[e.e164]} for e in unique
               if (row := current.get(index_of[e.e164])) is not None and row.number_id != ids[e.e164]]
    if relinks:  # the number came back after an erasure: its opt-out points at it again
        session.execute(update(NumberOptOut), relinks)
    statuses = {
        row.id: (row.status, row.authority)
        for row in session.execute(
            select(PhoneNumber.id, PhoneNumber.status, PhoneNumber.authority).where(
                PhoneNumber.id.in_(list(ids.values()))
            )
        )
    }
    now = utcnow()
    inserts: list[dict[str, Any]] = []
    revives: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for entry in unique:
        number_id = ids[entry.e164]
        values = {
            "state": "active", "reason": entry.reason, "source": entry.source[:32],
            "detail": (entry.detail or None) and str(entry.detail)[:200], "opted_out_at": entry.at or now,
            "recorded_by": actor.username[:64], "import_id": import_id,
        }
        existing = current.get(index_of[entry.e164])
        if existing is None:
            inserts.append({"number_id": number_id, "blind_index": index_of[entry.e164], **values})
            result.touched.append((number_id, entry.e164 not in created, None))
        elif existing.state == "active":
            result.already += 1
            continue
        elif direct or (entry.at is not None and existing.lifted_at is not None and entry.at > existing.lifted_at):
            revives.append({"id": existing.id, **values, "number_id": number_id, "lifted_at": None, "lifted_by": None,
                            "lift_reason": None})
            result.touched.append((number_id, True, "lifted"))
        else:
            result.kept_lifted += 1
            continue
        result.recorded += 1
        status, authority = statuses.get(number_id, (None, None))
        events.append({
            "number_id": number_id, "at": now, "status": status, "previous_status": status,
            "authority": authority or "manual", "reason": entry.reason, "source": EVENT_SOURCE,
            "actor": actor.username[:64],
            "evidence": {"opt_out": entry.reason, "channel": entry.source, **({"detail": entry.detail} if entry.detail
                         else {}), **({"import_id": import_id} if import_id else {})},
        })
    if inserts:
        session.execute(insert(core_table(NumberOptOut)), inserts)
    if revives:
        session.execute(update(NumberOptOut), revives)
    if events:
        session.execute(insert(core_table(NumberEvent)), events)


def opted_out(session: Session, indexes: Sequence[bytes]) -> dict[bytes, str]:
    """Blind index -> opt-out reason for the active opt-outs among `indexes` (for cleaning and exports)."""
    found: dict[bytes, str] = {}
    unique = list(set(indexes))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        for index, reason in session.execute(
            select(NumberOptOut.blind_index, NumberOptOut.reason).where(
                NumberOptOut.blind_index.in_(chunk), NumberOptOut.state == "active"
            )
        ):
            found[index] = reason
    return found


def opted_out_raw(session: Session, values: Sequence[str], region: str) -> dict[str, str]:
    """Raw phone values (as a file or a provider gives them) -> opt-out reason, for those opted out."""
    from phoneops.numbers.normalize import normalize_column

    raws = [v for v in dict.fromkeys(values) if v]
    if not raws:
        return {}
    e164s = normalize_column(raws, region)["e164"].to_list()
    pairs = [(raw, e164) for raw, e164 in zip(raws, e164s, strict=True) if e164]
    indexes = get_vault().index_many([e164 for _, e164 in pairs])
    found = opted_out(session, indexes)
    return {raw: found[index] for (raw, _), index in zip(pairs, indexes, strict=True) if index in found}


def _row_for(session: Session, e164: str) -> tuple[PhoneNumber, NumberOptOut | None]:
    number = session.scalar(select(PhoneNumber).where(PhoneNumber.blind_index == get_vault().index(e164)))
    if number is None:
        raise NotFound(f"{mask(e164)} is not known")
    return number, session.scalar(select(NumberOptOut).where(NumberOptOut.blind_index == number.blind_index))


def add(
    session: Session,
    actor: Principal,
    raw: str,
    reason: str,
    *,
    region: str,
    source: str = "manual",
    detail: str | None = None,
) -> OptOutResult:
    """One opt-out recorded by a person (UI, API, CLI)."""
    from phoneops.numbers.lists import to_e164

    e164 = to_e164(raw, region)
    result = record_optouts(
        session, actor, [OptOutEntry(e164, check_reason(reason), source, detail or None)], direct=True
    )
    audit(session, actor, "numbers.optout.add", "number", mask(e164), {"reason": reason, "source": source})
    return result


def lift(session: Session, actor: Principal, raw: str, reason: str, *, region: str) -> dict[str, Any]:
    """Lift an opt-out: admins only, with a reason; audited and kept in the number's history."""
    from phoneops.numbers.lists import to_e164

    if not actor.can(Role.admin):
        raise Forbidden("only an admin can lift an opt-out")
    if not reason or not reason.strip():
        raise ValidationFailed("a reason is required to lift an opt-out")
    e164 = to_e164(raw, region)
    number, row = _row_for(session, e164)
    if row is None or row.state != "active":
        raise ValidationFailed(f"{mask(e164)} is not opted out")
    now = utcnow()
    row.state, row.lifted_at, row.lifted_by, row.lift_reason = "lifted", now, actor.username, reason.strip()[:200]
    session.add(NumberEvent(
        number_id=number.id, at=now, status=number.status, previous_status=number.status,
        authority=number.authority or "manual", reason="lifted", source=EVENT_SOURCE, actor=actor.username,
        evidence={"opt_out": "lifted", "was": row.reason, "why": reason.strip()[:200]},
    ))
    session.flush()
    audit(session, actor, "numbers.optout.lift", "number", mask(e164),
          {"was": row.reason, "source": row.source, "reason": reason.strip()})
    return {"number": mask(e164), "lifted": True, "was": row.reason}


def state_of(session: Session, number_id: int) -> dict[str, Any] | None:
    """A number's opt-out, for its page (None: never opted out). Found by blind index: an opt-out recorded
    before the number was erased and came back still shows."""
    index = select(PhoneNumber.blind_index).where(PhoneNumber.id == number_id).scalar_subquery()
    row = session.scalar(select(NumberOptOut).where(NumberOptOut.blind_index == index))
    if row is None:
        return None
    return {
        "active": row.state == "active", "reason": row.reason, "source": row.source, "detail": row.detail,
        "opted_out_at": row.opted_out_at.isoformat(), "recorded_by": row.recorded_by, "import_id": row.import_id,
        "lifted_at": row.lifted_at.isoformat() if row.lifted_at else None, "lifted_by": row.lifted_by,
        "lift_reason": row.lift_reason,
    }


def state_for(session: Session, e164: str) -> dict[str, Any] | None:
    number_id = session.scalar(select(PhoneNumber.id).where(PhoneNumber.blind_index == get_vault().index(e164)))
    return None if number_id is None else state_of(session, number_id)


def list_optouts(
    session: Session, actor: Principal, *, active: bool = True, limit: int = 100, after_id: int = 0
) -> list[dict[str, Any]]:
    """A page of opt-outs (plaintext for admins, masked for everyone else)."""
    rows = session.execute(
        select(NumberOptOut, PhoneNumber.sealed, PhoneNumber.blind_index, PhoneNumber.country)
        .outerjoin(PhoneNumber, PhoneNumber.blind_index == NumberOptOut.blind_index)
        .where(NumberOptOut.state == ("active" if active else "lifted"), NumberOptOut.id > after_id)
        .order_by(NumberOptOut.id)
        .limit(max(1, min(limit, 1000)))
    ).all()
    vault = get_vault()
    reveal = actor.can(Role.admin)
    out = []
    for row, sealed, index, country in rows:
        e164 = vault.open(sealed, index) if sealed is not None else None  # None: the number was erased
        shown = ERASED if e164 is None else e164 if reveal else mask(e164)
        out.append({
            "id": row.id, "number": shown, "key": row.blind_index.hex() if row.blind_index else "",
            "country": country, "reason": row.reason,
            "source": row.source, "detail": row.detail, "opted_out_at": row.opted_out_at.isoformat(),
            "recorded_by": row.recorded_by, "import_id": row.import_id,
            "lifted_at": row.lifted_at.isoformat() if row.lifted_at else None, "lifted_by": row.lifted_by,
            "lift_reason": row.lift_reason,
        })
    return out


def counts(session: Session) -> dict[str, int]:
    """Active opt-outs per reason, plus `total` and `lifted`."""
    out = dict.fromkeys(REASONS, 0)
    for reason, count in session.execute(
        select(NumberOptOut.reason, func.count()).where(NumberOptOut.state == "active").group_by(NumberOptOut.reason)
    ):
        out[str(reason)] = int(count)
    out["total"] = sum(out[r] for r in REASONS)
    out["lifted"] = int(
        session.scalar(select(func.count()).select_from(NumberOptOut).where(NumberOptOut.state == "lifted")) or 0
    )
    return out


def active_indexes() -> Any:
    """The blind indexes of numbers opted out now (a subquery with blind_index), for joins by blind index."""
    return select(NumberOptOut.blind_index.label("blind_index")).where(NumberOptOut.state == "active").distinct() \
        .subquery()
