# Over 400 lines: the one precedence table and its only writer; splitting it would split the rule.
"""Whitelist / monitor / blacklist: one status per number, decided by one precedence table.

The table is `docs/lists.md`; `precedence()` is its only implementation and `apply_verdicts()` the only
writer of list statuses (tracker syncs, live events, OS rule re-evaluation, HLR results, imports, UI, API,
CLI all call it). In short:
- a manual decision (UI, API, CLI, import) outranks every automatic one and stays until a manual change;
- the automatic sources are kept apart: the tracker's verdict (OS rules; the most severe one counts, only an
  OS rule re-evaluation may loosen it) and the newest HLR decision; the number's status is the more severe
  of the two, so an HLR result may add or tighten a status and lift only what HLR itself set, and "reachable"
  never lifts a tracker's blacklist;
- every verdict that is not a repeat of the number's previous one is a `NumberEvent`: what the source said,
  the resulting status, who (actor), what (authority, source), why (reason, evidence, note).
Work is set-based: numbers are matched by blind index in batches, never one query per number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import core_table, execute_many, utcnow
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.security import Principal, Role
from phoneops.numbers.models import NumberEvent, PhoneNumber
from phoneops.numbers.normalize import country_of, normalize, normalize_column
from phoneops.numbers.vault import get_vault, mask

LISTS = ("blacklist", "monitor", "whitelist")
SEVERITY = {None: 0, "whitelist": 1, "monitor": 2, "blacklist": 3}
BATCH = 5000


class Authority(StrEnum):
    auto = "auto"
    hlr = "hlr"
    manual = "manual"


@dataclass(frozen=True, slots=True)
class Verdict:
    """A decision about one number (already in E.164).

    `status` None means: from the tracker, no opinion (the number is only registered); from HLR, "reachable"
    (lift what HLR set); from a manual source, "on no list". `reevaluate` marks an OS rule re-evaluation,
    the one automatic verdict that replaces (and so may loosen) the tracker's earlier verdict."""

    e164: str
    status: str | None
    authority: Authority
    reason: str | None = None
    source: str | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    reevaluate: bool = False


@dataclass(frozen=True, slots=True)
class ListState:
    """What is stored about a number's lists: the status in force and each automatic source's own verdict."""

    status: str | None = None
    authority: str | None = None
    reason: str | None = None
    source: str | None = None
    auto_status: str | None = None
    auto_reason: str | None = None
    auto_source: str | None = None
    hlr_status: str | None = None
    hlr_reason: str | None = None


LAYER_FIELDS = ("auto_status", "auto_reason", "auto_source", "hlr_status", "hlr_reason")
STATE_FIELDS = ("status", "authority", "reason", "source", *LAYER_FIELDS)


def precedence(state: ListState, verdict: Verdict) -> tuple[ListState, str | None]:
    """The new state after `verdict` (docs/lists.md), and a note when the verdict did not prevail."""
    new = state
    if verdict.authority is Authority.manual:  # built directly: `replace` was ~7% of an import's apply_verdicts
        return ListState(verdict.status, Authority.manual.value, verdict.reason, verdict.source, state.auto_status,
                         state.auto_reason, state.auto_source, state.hlr_status, state.hlr_reason), None
    if verdict.authority is Authority.auto:
        if verdict.reevaluate or SEVERITY[verdict.status] > SEVERITY[state.auto_status]:
            new = replace(new, auto_status=verdict.status, auto_reason=verdict.reason, auto_source=verdict.source)
    else:
        new = replace(new, hlr_status=verdict.status, hlr_reason=verdict.reason)
    if state.authority == Authority.manual.value:
        return new, f"kept {state.status or 'no list'}: a manual decision outranks {verdict.authority.value}"
    auto, hlr = SEVERITY[new.auto_status], SEVERITY[new.hlr_status]
    if auto and auto >= hlr:
        new = replace(new, status=new.auto_status, authority=Authority.auto.value, reason=new.auto_reason,
                      source=new.auto_source)
    elif hlr:
        new = replace(new, status=new.hlr_status, authority=Authority.hlr.value, reason=new.hlr_reason,
                      source="HLR")
    else:
        new = replace(new, status=None, authority=None, reason=None, source=None)
    note = None
    if verdict.status != new.status and (verdict.status is not None or verdict.authority is Authority.hlr):
        holder = "the tracker" if new.authority == Authority.auto.value else "HLR"
        if verdict.authority is Authority.hlr:
            note = f"kept {new.status}: set by {holder}; HLR may add or tighten and lift only what HLR set"
        else:
            note = f"kept {new.status}: set by {holder}; a tracker verdict never loosens a status"
    return new, note


@dataclass
class ApplyResult:
    numbers: int = 0
    new_numbers: int = 0
    changed: int = 0
    unchanged: int = 0
    overruled: int = 0
    events: int = 0
    per_status: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "numbers": self.numbers,
            "new_numbers": self.new_numbers,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "overruled": self.overruled,
            "events": self.events,
            "per_status": dict(self.per_status),
        }


@dataclass(frozen=True, slots=True)
class Touched:
    """A number a call of `apply_verdicts` met: its state before the batch (None for a new number) with its
    `listed_at` and `last_verdict` then, and its state after. Imports record their undo data from these
    instead of reading each batch again before and after."""

    number_id: int
    before: ListState | None
    before_listed_at: datetime | None
    before_last_verdict: str | None
    after: ListState


def _check(verdict: Verdict) -> None:
    if verdict.status is not None and verdict.status not in LISTS:
        raise ValidationFailed(f"status must be one of {', '.join(LISTS)} (got {verdict.status!r})")
    if not verdict.e164.startswith("+"):
        raise ValidationFailed(f"not an E.164 number: {verdict.e164!r}")
    if verdict.reevaluate and verdict.authority is not Authority.auto:
        raise ValidationFailed("only an automatic verdict can be a re-evaluation")


def apply_verdicts(
    session: Session,
    actor: Principal,
    verdicts: Iterable[Verdict],
    *,
    indexes: Sequence[bytes] | None = None,
    countries: Sequence[str | None] | None = None,
    touched: list[Touched] | None = None,
) -> ApplyResult:
    """Apply many verdicts set-based (batches of 5,000 matched by blind index), in order.

    `indexes`: the verdicts' blind indexes, in order, when the caller has them already (an import's plan);
    `countries`: likewise their regions, as `normalize` gives them with the E.164 (a new number's country);
    `touched`: filled with every number met, once each in order of first appearance, before and after."""
    result = ApplyResult()
    batch: list[Verdict] = []
    known = iter(indexes) if indexes is not None else None
    regions = iter(countries) if countries is not None else None
    batch_indexes: list[bytes] = []
    batch_countries: list[str | None] = []
    for verdict in verdicts:
        _check(verdict)
        batch.append(verdict)
        if known is not None:
            index = next(known, None)
            if index is None:
                raise ValueError("fewer blind indexes than verdicts")
            batch_indexes.append(index)
        if regions is not None:
            region = next(regions, _NONE_LEFT)
            if region is not None and not isinstance(region, str):  # _NONE_LEFT
                raise ValueError("fewer countries than verdicts")
            batch_countries.append(region)
        if len(batch) >= BATCH:
            _apply_batch(session, actor, batch, result, batch_indexes if known is not None else None, touched,
                         batch_countries if regions is not None else None)
            batch, batch_indexes, batch_countries = [], [], []
    if known is not None and next(known, None) is not None:
        raise ValueError("more blind indexes than verdicts")
    if regions is not None and next(regions, _NONE_LEFT) is not _NONE_LEFT:
        raise ValueError("more countries than verdicts")
    if batch:
        _apply_batch(session, actor, batch, result, batch_indexes if known is not None else None, touched,
                     batch_countries if regions is not None else None)
    return result


def _countries(e164s: list[str]) -> list[str | None]:
    """`country_of` of each E.164 number, set-based: `normalize_column` reads a "+digits" value as
    `country_of` does (parse, valid, region); a number it writes differently or refuses is asked to
    `country_of` itself. Per number, `country_of` was the largest cost of storing many new numbers; under
    ~500 numbers the column's fixed cost (~20 ms) is more than theirs."""
    if len(e164s) < 500:
        return [country_of(e164) for e164 in e164s]
    frame = normalize_column(e164s, "GB")  # the region is never used: every value starts with "+"
    return [country if read == e164 else country_of(e164)
            for e164, read, country in zip(e164s, frame["e164"].to_list(), frame["country"].to_list(), strict=True)]


_NONE_LEFT = object()  # a sequence handed to apply_verdicts ran out (a country may itself be None)


# what a new number's row holds where no verdict of its batch wrote (every new row has the same columns)
_UNSET: dict[str, Any] = dict.fromkeys((*STATE_FIELDS, "listed_at", "last_verdict"))


def _signature(verdict: Verdict) -> str:
    parts = [verdict.authority.value, verdict.status or "-", verdict.reason or "", "R" * verdict.reevaluate]
    return "|".join(parts)[:160]


def _apply_batch(
    session: Session,
    actor: Principal,
    verdicts: list[Verdict],
    result: ApplyResult,
    known: list[bytes] | None = None,
    touched: list[Touched] | None = None,
    countries: list[str | None] | None = None,
) -> None:
    vault = get_vault()
    indexes = known if known is not None else vault.index_many([v.e164 for v in verdicts])
    columns = [getattr(PhoneNumber, name) for name in STATE_FIELDS]
    state: dict[bytes, tuple[int, ListState, str | None]] = {}
    listed: dict[bytes, datetime | None] = {}
    for row in session.execute(
        select(PhoneNumber.id, PhoneNumber.blind_index, *columns, PhoneNumber.last_verdict,
               PhoneNumber.listed_at).where(PhoneNumber.blind_index.in_(set(indexes)))
    ):
        state[row.blind_index] = (row.id, ListState(*row[2:-2]), row.last_verdict)
        listed[row.blind_index] = row.listed_at
    original = dict(state) if touched is not None else {}
    now = utcnow()
    fresh: dict[bytes, dict[str, Any]] = {}
    region_of: dict[bytes, str | None] = {}
    for at, (verdict, index) in enumerate(zip(verdicts, indexes, strict=True)):
        if index not in state and index not in fresh:
            fresh[index] = {
                "blind_index": index,
                "sealed": vault.seal(verdict.e164, index),
                "country": verdict.e164,  # its country below, for the batch at once
                "first_seen_at": now,
                "updated_at": now,
            }
            if countries is not None:
                region_of[index] = countries[at]
            state[index] = (0, ListState(), None)  # its id once it is inserted, below
    updates: dict[bytes, dict[str, Any]] = {}
    events: list[tuple[bytes, dict[str, Any]]] = []
    for verdict, index in zip(verdicts, indexes, strict=True):
        number_id, before, last = state[index]
        result.numbers += 1
        after, note = precedence(before, verdict)
        signature = _signature(verdict)
        if after.status != before.status:
            result.changed += 1
            key = after.status or "none"
            result.per_status[key] = result.per_status.get(key, 0) + 1
        elif note is not None:
            result.overruled += 1
        else:
            result.unchanged += 1
        tracker = verdict.authority is Authority.auto and not verdict.reevaluate
        no_opinion = tracker and verdict.status is None
        if after == before and (signature == last or (no_opinion and last is not None)
                                or (tracker and (last or "").startswith("auto|"))):
            # Nothing new: a repeat, a known number's "no opinion", or a tracker verdict that changes nothing
            # right after another tracker verdict (re-syncing days writes no events).
            continue
        values: dict[str, Any] = {"last_verdict": signature, "updated_at": now}
        values.update({name: getattr(after, name) for name in STATE_FIELDS})
        if after.status != before.status:
            values["listed_at"] = now if after.status else None
        updates[index] = {**updates.get(index, {}), **values}
        events.append((index, {
                "at": now,
                "status": after.status,
                "verdict": verdict.status,
                "previous_status": before.status,
                "authority": verdict.authority.value,
                "reason": verdict.reason,
                "source": verdict.source,
                "actor": actor.username[:64],
                "evidence": verdict.evidence,
                "note": note[:200] if note else None,
            }))
        state[index] = (number_id, after, signature)
    result.events += len(events)
    if fresh:
        # A new number is inserted once, with its state after the batch, not inserted empty and then
        # updated: one UPDATE (and its index changes) less per new number, most of an import's rows.
        new_rows = list(fresh.values())
        known_regions = [region_of[r["blind_index"]] for r in new_rows] if countries is not None else \
            _countries([r["country"] for r in new_rows])
        for new_row, country in zip(new_rows, known_regions, strict=True):
            new_row["country"] = country
            new_row.update(_UNSET)
            new_row.update(updates.pop(new_row["blind_index"], {}))
        execute_many(session, insert(core_table(PhoneNumber)), new_rows)
        for row in session.execute(
            select(PhoneNumber.id, PhoneNumber.blind_index).where(PhoneNumber.blind_index.in_(list(fresh)))
        ):
            state[row.blind_index] = (row.id, *state[row.blind_index][1:])
        result.new_numbers += len(fresh)
    if touched is not None:
        for index in dict.fromkeys(indexes):
            number_id, after, _ = state[index]
            was = original.get(index)
            touched.append(Touched(number_id, was[1] if was else None, listed.get(index),
                                   was[2] if was else None, after))
    # Core statements, not the ORM's bulk paths, run by `execute_many`: the same rows without the ORM's nor
    # SQLAlchemy's per-row parameter work (each had taken about half of an import's apply).
    if updates:
        table = core_table(PhoneNumber)
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}  # one statement per set of columns
        for index, values in updates.items():
            groups.setdefault(tuple(sorted(values)), []).append({"number_id": state[index][0], **values})
        for keys, same in groups.items():
            execute_many(session, update(table).where(table.c.id == bindparam("number_id")).values(
                {key: bindparam(key) for key in keys}), same)
    if events:
        execute_many(session, insert(core_table(NumberEvent)), [{"number_id": state[index][0], **event}
                                                                for index, event in events])


def set_status(
    session: Session,
    actor: Principal,
    raw: str,
    status: str | None,
    reason: str,
    *,
    region: str,
    source: str = "MANUAL",
    evidence: dict[str, Any] | None = None,
) -> ApplyResult:
    """A manual decision about one number (status None takes it off every list)."""
    if not reason or not reason.strip():
        raise ValidationFailed("a reason is required")
    e164 = to_e164(raw, region)
    result = apply_verdicts(
        session, actor, [Verdict(e164, status, Authority.manual, reason.strip()[:64], source[:32], evidence or {})]
    )
    audit(
        session,
        actor,
        "numbers.set_status",
        "number",
        mask(e164),
        {"status": status, "reason": reason, "source": source},
    )
    return result


def bulk_set_status(
    session: Session,
    actor: Principal,
    values: Sequence[str],
    status: str | None,
    reason: str,
    *,
    region: str,
    source: str = "MANUAL",
    authority: Authority = Authority.manual,
) -> tuple[ApplyResult, list[tuple[str, str]]]:
    """Set one status for a column of numbers; returns the result and the rejected inputs with reasons."""
    from phoneops.numbers.normalize import normalize_column

    frame = normalize_column(list(values), region)
    rejected = [(str(v), str(r)) for v, r in zip(values, frame["reason"].to_list(), strict=True) if r is not None]
    e164s = [e for e in frame["e164"].to_list() if e is not None]
    result = apply_verdicts(session, actor, (Verdict(e, status, authority, reason, source) for e in e164s))
    audit(
        session,
        actor,
        "numbers.bulk_set_status",
        "numbers",
        None,
        {"status": status, "reason": reason, "count": len(e164s), "rejected": len(rejected)},
    )
    return result, rejected


def to_e164(raw: str, region: str) -> str:
    normalized = normalize(raw, region)
    if normalized.e164 is None:
        raise ValidationFailed(
            f"not a valid phone number ({normalized.reason})", details={"reason": str(normalized.reason)}
        )
    return normalized.e164


@dataclass
class NumberView:
    number: str
    country: str | None
    status: str | None
    authority: str | None
    reason: str | None
    source: str | None
    listed_at: str | None
    first_seen_at: str
    history: list[dict[str, Any]]


def lookup(session: Session, actor: Principal, raw: str, region: str) -> NumberView:
    """A number's status and full history (the caller already knows the number)."""
    e164 = to_e164(raw, region)
    row = session.scalar(select(PhoneNumber).where(PhoneNumber.blind_index == get_vault().index(e164)))
    if row is None:
        raise NotFound(f"{e164} is not known", details={"number": e164})
    events = session.scalars(
        select(NumberEvent)
        .where(NumberEvent.number_id == row.id)
        .order_by(NumberEvent.at.desc(), NumberEvent.id.desc())
    )
    return NumberView(
        number=e164,
        country=row.country,
        status=row.status,
        authority=row.authority,
        reason=row.reason,
        source=row.source,
        listed_at=row.listed_at.isoformat() if row.listed_at else None,
        first_seen_at=row.first_seen_at.isoformat(),
        history=[
            {
                "at": e.at.isoformat(),
                "status": e.status,
                "verdict": e.verdict,
                "previous_status": e.previous_status,
                "authority": e.authority,
                "reason": e.reason,
                "source": e.source,
                "actor": e.actor,
                "evidence": e.evidence,
                "note": e.note,
            }
            for e in events
        ],
    )


def list_numbers(
    session: Session,
    actor: Principal,
    status: str,
    *,
    limit: int = 100,
    after_id: int = 0,
) -> list[dict[str, Any]]:
    """A page of one list; plaintext only for admins, masked for everyone else."""
    if status not in LISTS:
        raise ValidationFailed(f"status must be one of {', '.join(LISTS)}")
    rows = session.scalars(
        select(PhoneNumber)
        .where(PhoneNumber.status == status, PhoneNumber.id > after_id)
        .order_by(PhoneNumber.id)
        .limit(max(1, min(limit, 1000)))
    )
    vault = get_vault()
    reveal = actor.can(Role.admin)
    out = []
    for row in rows:
        e164 = vault.open(row.sealed, row.blind_index)
        out.append(
            {
                "id": row.id,
                "key": row.blind_index.hex(),  # the number page's address (numbers/story.py)
                "number": e164 if reveal else mask(e164),
                "country": row.country,
                "status": row.status,
                "authority": row.authority,
                "reason": row.reason,
                "source": row.source,
                "listed_at": row.listed_at.isoformat() if row.listed_at else None,
            }
        )
    return out


def list_counts(session: Session) -> dict[str, dict[str, int]]:
    """Per list: total, added in the last 24 hours and in the last 7 days."""
    now = utcnow()
    day, week = now - timedelta(days=1), now - timedelta(days=7)
    counts = {name: {"total": 0, "last_24h": 0, "last_7d": 0} for name in LISTS}
    rows = session.execute(
        select(
            PhoneNumber.status,
            func.count(PhoneNumber.id),
            func.count(PhoneNumber.id).filter(PhoneNumber.listed_at >= day),
            func.count(PhoneNumber.id).filter(PhoneNumber.listed_at >= week),
        )
        .where(PhoneNumber.status.is_not(None))
        .group_by(PhoneNumber.status)
    )
    for status, total, last_day, last_week in rows:
        counts[str(status)] = {"total": total, "last_24h": last_day, "last_7d": last_week}
    return counts


def status_of_indexes(session: Session, indexes: Sequence[bytes]) -> dict[bytes, str | None]:
    """Statuses for many blind indexes (for cleaning and other domains), in batches."""
    found: dict[bytes, str | None] = {}
    unique = list(set(indexes))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        for index, status in session.execute(
            select(PhoneNumber.blind_index, PhoneNumber.status).where(PhoneNumber.blind_index.in_(chunk))
        ):
            found[index] = status
    return found


def states_of_indexes(session: Session, indexes: Sequence[bytes]) -> dict[bytes, tuple[str | None, str | None]]:
    """(status, authority) for many blind indexes, in batches."""
    found: dict[bytes, tuple[str | None, str | None]] = {}
    unique = list(set(indexes))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start : start + BATCH]
        for index, status, authority in session.execute(
            select(PhoneNumber.blind_index, PhoneNumber.status, PhoneNumber.authority).where(
                PhoneNumber.blind_index.in_(chunk)
            )
        ):
            found[index] = (status, authority)
    return found


def list_states(session: Session, indexes: Sequence[bytes]) -> dict[bytes, ListState]:
    """The stored list state (status in force and each automatic source's verdict) of many numbers."""
    found: dict[bytes, ListState] = {}
    columns = [getattr(PhoneNumber, name) for name in STATE_FIELDS]
    unique = list(set(indexes))
    for start in range(0, len(unique), BATCH):
        for row in session.execute(
            select(PhoneNumber.blind_index, *columns).where(PhoneNumber.blind_index.in_(unique[start : start + BATCH]))
        ):
            found[row[0]] = ListState(*row[1:])
    return found


def iter_listed(
    session: Session, status: str, country: str, since: datetime, until: datetime, *, page: int = BATCH
) -> Iterator[tuple[bytes, str, datetime | None]]:
    """(blind index, E.164, listed_at) of one list's numbers of a country listed in [since, until).

    Plaintext: callers are provider syncs and admin-only outputs."""
    vault = get_vault()
    last_id = 0
    while True:
        rows = session.execute(
            select(PhoneNumber.id, PhoneNumber.blind_index, PhoneNumber.sealed, PhoneNumber.listed_at)
            .where(PhoneNumber.status == status, PhoneNumber.country == country, PhoneNumber.listed_at >= since,
                   PhoneNumber.listed_at < until, PhoneNumber.id > last_id)
            .order_by(PhoneNumber.id).limit(page)
        ).all()
        if not rows:
            return
        for row in rows:
            yield row.blind_index, vault.open(row.sealed, row.blind_index), row.listed_at
        last_id = rows[-1].id


def reveal(session: Session, indexes: Sequence[bytes]) -> dict[bytes, str]:
    """Plaintext E.164 for known blind indexes (unknown ones are absent)."""
    vault = get_vault()
    out: dict[bytes, str] = {}
    unique = list(set(indexes))
    for start in range(0, len(unique), BATCH):
        chunk = unique[start:start + BATCH]
        for index, sealed in session.execute(
            select(PhoneNumber.blind_index, PhoneNumber.sealed).where(PhoneNumber.blind_index.in_(chunk))
        ):
            out[index] = vault.open(sealed, index)
    return out
