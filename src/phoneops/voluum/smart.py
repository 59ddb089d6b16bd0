# Over 400 lines: smart cleaning and REG search share their reading, matching and result writing.
"""Smart cleaning (the original's "smart cleaning (Voluum)") and REG search, as background jobs.

Smart cleaning takes numbers from one of two sources:
- a country and a date range: the whitelisted numbers of that country put on the whitelist in those days;
- an uploaded list (CSV/TSV/xlsx; the phone column and a header row are detected): its rows, in input order.
It then drops, for the chosen offers, numbers that converted (FTD always, REG when asked) and, when asked,
numbers seen in live events on those offers in the last 24 hours. The result keeps the input order (an
uploaded list's own rows, header included; later duplicates of a number and unreadable numbers are dropped
and counted).

REG search: the numbers with a REG for a country and the chosen offers (all of the country's when none are
chosen) inside a window, minus those with an FTD on those offers (at any time: the original only looked inside
the window, so a number that deposited later came back as "REG only").

Numbers come out in full for admins and masked for everyone else (as list exports do), except an uploaded
list's own rows, which belong to whoever uploaded them. Offers are given by id or by name.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core import storage
from phoneops.core.audit import audit
from phoneops.core.csvio import TableError, check_table, csv_lines, iter_rows, sniff_table
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import ValidationFailed
from phoneops.core.jobs import JobContext, create_job
from phoneops.core.models import Job
from phoneops.core.security import Principal, Role
from phoneops.numbers.lists import iter_listed
from phoneops.numbers.lists import reveal as reveal_numbers
from phoneops.numbers.vault import mask
from phoneops.settings import get_settings
from phoneops.voluum.conversions import FTD, REG, UNKNOWN, country_filter
from phoneops.voluum.facts import conversion_events
from phoneops.voluum.models import LiveRawEvent, Offer
from phoneops.voluum.provider import (
    PhoneReader,
    PhoneValue,
    chunks,
    day_range,
    day_start,
    job_actor,
    parse_day,
    region_or_default,
)

SMART_KIND = "voluum.smart_clean"
REG_KIND = "voluum.reg_search"
LIVE_WINDOW = timedelta(hours=24)
CHUNK = 5000
SNIFF_ROWS = 50
MAX_OFFERS = 200


# --- offers --------------------------------------------------------------------------------------------


def offers_for(
    session: Session, country: str | None = None, start: date | None = None, end: date | None = None
) -> list[dict[str, Any]]:
    """Offers to choose from: those with conversions (for a country / window when given), with their REG and FTD
    counts, then every other known offer."""
    events = conversion_events()  # purged conversions too (docs/retention.md)
    query = select(events.c.offer_id, func.max(events.c.offer_name), events.c.kind, func.sum(events.c.n))
    if country:
        query = query.where(country_filter(country, events.c.country))
    if start is not None:
        query = query.where(events.c.at >= day_start(start))
    if end is not None:
        query = query.where(events.c.at < day_start(end) + timedelta(days=1))
    found: dict[str, dict[str, Any]] = {}
    for offer_id, name, kind, count in session.execute(query.group_by(events.c.offer_id, events.c.kind)):
        if not offer_id:
            continue
        entry = found.setdefault(offer_id, {"id": offer_id, "name": name or "", REG: 0, FTD: 0})
        entry[str(kind)] = int(count)
    names = {o.offer_id: o.name for o in session.scalars(select(Offer))}
    for entry in found.values():
        entry["name"] = names.get(entry["id"]) or entry["name"]
    ranked = sorted(found.values(), key=lambda e: (-(e[REG] + e[FTD]), e["name"]))
    others = [{"id": i, "name": n, REG: 0, FTD: 0} for i, n in sorted(names.items(), key=lambda x: x[1])
              if i not in found and not country]
    return ranked + others


def resolve_offers(session: Session, offers: Sequence[str]) -> tuple[list[str], list[str]]:
    """Offer ids for offers given by id or name (case-insensitive); ValidationFailed names the unknown ones."""
    wanted = list(dict.fromkeys(o.strip() for o in offers if o and o.strip()))
    if not wanted:
        raise ValidationFailed("choose at least one offer")
    if len(wanted) > MAX_OFFERS:
        raise ValidationFailed(f"at most {MAX_OFFERS} offers")
    known: dict[str, str] = {o.offer_id: o.name for o in session.scalars(select(Offer))}
    events = conversion_events()
    for offer_id, name in session.execute(select(events.c.offer_id, func.max(events.c.offer_name))
                                          .group_by(events.c.offer_id)):
        if offer_id:
            known.setdefault(offer_id, name or "")
    by_name: dict[str, list[str]] = {}
    for offer_id, name in known.items():
        by_name.setdefault(name.casefold(), []).append(offer_id)
    ids: list[str] = []
    unknown: list[str] = []
    for item in wanted:
        if item in known:
            ids.append(item)
        elif item.casefold() in by_name:
            ids.extend(by_name[item.casefold()])
        else:
            unknown.append(item)
    if unknown:
        raise ValidationFailed(f"unknown offers: {', '.join(unknown[:10])}", details={"unknown": unknown})
    ids = list(dict.fromkeys(ids))
    return ids, [known[i] for i in ids]


def _offer_clause(offer_ids: Sequence[str], column: Any) -> Any:
    return column.in_(list(offer_ids))


# --- filters -------------------------------------------------------------------------------------------


def _converted(session: Session, indexes: Sequence[bytes], offer_ids: Sequence[str],
               kinds: Sequence[str]) -> set[bytes]:
    events = conversion_events()  # purged conversions too (docs/retention.md)
    query = select(events.c.blind_index).where(
        events.c.blind_index.in_(list(indexes)), events.c.kind.in_(list(kinds)),
        _offer_clause(offer_ids, events.c.offer_id),
    )
    return {i for i in session.scalars(query.distinct()) if i is not None}


def _seen_live(session: Session, indexes: Sequence[bytes], offer_ids: Sequence[str], since: datetime) -> set[bytes]:
    query = select(LiveRawEvent.blind_index).where(
        LiveRawEvent.blind_index.in_(list(indexes)), LiveRawEvent.event_at >= since,
        LiveRawEvent.offer_id.in_(list(offer_ids)),
    )
    return {i for i in session.scalars(query.distinct()) if i is not None}


# --- starting ------------------------------------------------------------------------------------------


def _country(country: str | None, *, allow_unknown: bool = False) -> str:
    value = (country or "").strip()
    if allow_unknown and value.lower() == UNKNOWN:
        return UNKNOWN
    if value.upper() not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(f"country must be an ISO 3166 code such as GB (got {country!r})")
    return value.upper()


def _window(start: date | str | None, end: date | str | None) -> tuple[date, date]:
    if start is None or end is None or start == "" or end == "":
        raise ValidationFailed("give a date range: from and to")
    first, last = parse_day(start, "from"), parse_day(end, "to")
    day_range(first, last, allow_future=True)  # order and size checks
    return first, last


def start_smart_clean(
    session: Session,
    actor: Principal,
    *,
    offers: Sequence[str],
    country: str | None = None,
    date_from: date | str | None = None,
    date_to: date | str | None = None,
    file_id: str | None = None,
    region: str | None = None,
    filter_regs: bool = False,
    filter_live: bool = False,
) -> Job:
    """Queue a smart cleaning of a country's whitelist over a date range, or of an uploaded list (`file_id`)."""
    offer_ids, offer_names = resolve_offers(session, offers)
    params: dict[str, Any] = {"offers": offer_ids, "offer_names": offer_names, "filter_regs": bool(filter_regs),
                              "filter_live": bool(filter_live), "actor": actor.username}
    if file_id:
        if country:
            raise ValidationFailed("give either an uploaded list or a country and dates, not both")
        stored = storage.get_file(session, file_id)
        try:
            with storage.get_storage().local_path(stored) as path:
                check_table(path)  # an empty, binary, encrypted or damaged file: 422 now, not a failed job
        except (TableError, OSError) as exc:
            raise ValidationFailed(f"the uploaded list cannot be read: {exc}") from None
        params.update(mode="file", file_id=stored.id, file_name=stored.original_name, region=region_or_default(region),
                      plaintext=True)
        title = f"Smart cleaning of {stored.original_name}"
    else:
        code = _country(country)
        first, last = _window(date_from, date_to)
        params.update(mode="country", country=code, **{"from": first.isoformat(), "to": last.isoformat()},
                      plaintext=actor.can(Role.admin))
        title = f"Smart cleaning {code} {first} to {last}"
    job = create_job(session, actor, SMART_KIND, params, title=title)
    audit(session, actor, "voluum.smart_clean.start", "job", job.id,
          {k: v for k, v in params.items() if k != "offer_names"})
    return job


def start_reg_search(
    session: Session,
    actor: Principal,
    *,
    country: str,
    date_from: date | str,
    date_to: date | str,
    offers: Sequence[str] = (),
) -> Job:
    """Queue a REG search: numbers with a REG but no FTD for a country and offers inside a window."""
    code = _country(country, allow_unknown=True)
    first, last = _window(date_from, date_to)
    offer_ids, offer_names = resolve_offers(session, offers) if any(o.strip() for o in offers) else ([], [])
    params = {"country": code, "from": first.isoformat(), "to": last.isoformat(), "offers": offer_ids,
              "offer_names": offer_names, "plaintext": actor.can(Role.admin), "actor": actor.username}
    job = create_job(session, actor, REG_KIND, params, title=f"REG search {code} {first} to {last}")
    audit(session, actor, "voluum.reg_search.start", "job", job.id, {"country": code, "from": str(first),
                                                                     "to": str(last), "offers": offer_ids})
    return job


# --- running -------------------------------------------------------------------------------------------


@dataclass
class _Entry:
    row: list[str]
    value: PhoneValue | None  # None for the header row


def _detect(sample: list[list[str]], reader: PhoneReader) -> tuple[int, bool]:
    """(phone column, whether the first row is a header) from the first rows."""
    width = max((len(r) for r in sample), default=0)
    if width == 0:
        raise ValidationFailed("the uploaded list is empty")
    scores = [sum(1 for r in sample[1:] if c < len(r) and reader.read(r[c]).ok) for c in range(width)]
    column = max(range(width), key=lambda c: (scores[c], -c))
    if scores[column] == 0 and not (column < len(sample[0]) and reader.read(sample[0][column]).ok):
        raise ValidationFailed("no column of the uploaded list holds phone numbers")
    header = column < len(sample[0]) and not reader.read(sample[0][column]).ok and scores[column] > 0
    return column, header


def _file_entries(path: Path, reader: PhoneReader) -> Iterator[_Entry]:
    try:
        info = sniff_table(path)
        rows = iter_rows(path, info)
        sample: list[list[str]] = []
        for row in rows:
            sample.append(row)
            if len(sample) >= SNIFF_ROWS:
                break
    except TableError as exc:
        raise ValidationFailed(f"the uploaded list cannot be read: {exc}") from None
    column, header = _detect(sample, reader)

    def every() -> Iterator[list[str]]:
        yield from sample
        yield from rows

    for number, row in enumerate(every()):
        if number == 0 and header:
            yield _Entry(row, None)
            continue
        if not any(cell.strip() for cell in row):
            continue
        yield _Entry(row, reader.read(row[column]) if column < len(row) else reader.read(""))


def _country_entries(session: Session, params: dict[str, Any], reveal: bool) -> Iterator[_Entry]:
    first, last = parse_day(params["from"]), parse_day(params["to"])
    for index, e164, listed_at in iter_listed(session, "whitelist", params["country"], day_start(first),
                                                  day_start(last) + timedelta(days=1)):
        value = PhoneValue(e164, index, params["country"], "phone")
        shown = e164 if reveal else mask(e164)
        yield _Entry([shown, params["country"], listed_at.isoformat() if listed_at else ""], value)


def run_smart_clean(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    offer_ids = list(params["offers"])
    kinds = [FTD, REG] if params.get("filter_regs") else [FTD]
    since = utcnow() - LIVE_WINDOW
    counts = {"input": 0, "kept": 0, "invalid": 0, "duplicates": 0, "converted": 0, "live_24h": 0}
    seen: set[bytes] = set()
    actor = job_actor(ctx)
    reader = PhoneReader(params.get("region") or get_settings().default_region)
    with session_scope() as session, ExitStack() as files:
        if params["mode"] == "file":
            stored = storage.get_file(session, params["file_id"])
            entries = _file_entries(files.enter_context(storage.get_storage().local_path(stored)), reader)
            header: list[str] | None = None
            name = f"smart_{Path(stored.original_name).stem}.csv"
        else:
            entries = _country_entries(session, params, bool(params.get("plaintext")))
            header = ["number", "country", "listed_at"]
            name = f"smart_{params['country']}_{params['from']}_{params['to']}.csv"

        def kept_rows() -> Iterator[list[str]]:
            for batch in chunks(entries, CHUNK):
                candidates: list[_Entry] = []
                for entry in batch:
                    if entry.value is None:
                        yield entry.row  # the upload's header row
                        continue
                    counts["input"] += 1
                    index = entry.value.index
                    if index is None:
                        counts["invalid"] += 1
                    elif index in seen:
                        counts["duplicates"] += 1
                    else:
                        seen.add(index)
                        candidates.append(entry)
                indexes = [e.value.index for e in candidates if e.value is not None and e.value.index is not None]
                converted = _converted(session, indexes, offer_ids, kinds) if indexes else set()
                live = (_seen_live(session, indexes, offer_ids, since)
                        if indexes and params.get("filter_live") else set())
                for entry in candidates:
                    index = entry.value.index if entry.value is not None else None
                    if index in converted:
                        counts["converted"] += 1
                    elif index in live:
                        counts["live_24h"] += 1
                    else:
                        counts["kept"] += 1
                        yield entry.row
                ctx.progress(done=counts["input"], counters=dict(counts))

        file_id = _write(session, actor, name, header, kept_rows())
    return {"file_id": file_id, **counts}


def _write(session: Session, actor: Principal, name: str, header: list[str] | None,
           rows: Iterator[list[str]]) -> str:
    with storage.get_storage().writer(session, actor, kind="voluum-result", original_name=name,
                                      content_type="text/csv") as (out, created):
        lines = csv_lines(header or [], rows)
        first = next(lines)
        if header:
            out.write(first.encode("utf-8"))
        for line in lines:
            out.write(line.encode("utf-8"))
    return created[0].id


def run_reg_search(ctx: JobContext) -> dict[str, Any]:
    params = ctx.params
    first, last = parse_day(params["from"]), parse_day(params["to"])
    country = params["country"]
    offer_ids = list(params.get("offers") or [])
    reveal = bool(params.get("plaintext"))
    actor = job_actor(ctx)
    start, end = day_start(first), day_start(last) + timedelta(days=1)
    with session_scope() as session:
        ev = conversion_events()  # purged conversions too (docs/retention.md)
        where = [country_filter(country, ev.c.country), ev.c.blind_index.is_not(None)]
        if offer_ids:
            where.append(_offer_clause(offer_ids, ev.c.offer_id))
        regs = session.execute(
            select(ev.c.blind_index, func.min(ev.c.at), func.sum(ev.c.n), func.min(ev.c.offer_name))
            .where(*where, ev.c.kind == REG, ev.c.at >= start, ev.c.at < end)
            .group_by(ev.c.blind_index)
            .order_by(func.min(ev.c.at), ev.c.blind_index)
        ).all()
        ftd: set[bytes] = set()
        for batch in chunks([r[0] for r in regs], CHUNK):
            query = select(ev.c.blind_index).where(*where, ev.c.kind == FTD, ev.c.blind_index.in_(batch))
            ftd.update(i for i in session.scalars(query.distinct()) if i is not None)
        only = [r for r in regs if r[0] not in ftd]
        numbers = reveal_numbers(session, [r[0] for r in only if r[0] is not None])
        counts = {"regs": len(regs), "with_ftd": len(regs) - len(only), "reg_only": len(only),
                  "not_available": sum(1 for r in only if r[0] not in numbers)}

        def rows() -> Iterator[list[str]]:
            for index, first_reg, count, offer in only:
                e164 = numbers.get(index) if index is not None else None
                if e164 is None:
                    continue
                yield [e164 if reveal else mask(e164), country, first_reg.isoformat() if first_reg else "",
                       str(count), offer or ""]

        name = f"reg_only_{country}_{params['from']}_{params['to']}.csv"
        file_id = _write(session, actor, name, ["number", "country", "first_reg_at", "regs", "offer"], rows())
        ctx.step(session, done=len(only), total=len(only), counters=counts)
    return {"file_id": file_id, "rows": counts["reg_only"] - counts["not_available"], **counts}


def result_file(job: Job, actor: Principal) -> str:
    """The file id of a finished smart cleaning / REG search, checked against who asks."""
    from phoneops.core import access
    from phoneops.core.errors import NotFound

    if job.kind not in (SMART_KIND, REG_KIND):
        raise NotFound(f"no smart cleaning or REG search {job.id}")
    if job.status != "succeeded" or "file_id" not in job.result:
        raise NotFound(f"job {job.id} is {job.status}; nothing to download" + (f": {job.error}" if job.error else ""))
    # numbers in full: an admin's plaintext run, or an uploaded list's own rows (phoneops.core.access: the
    # user who started the run or an admin; masked results go to anyone who may see the runs)
    holds_plaintext = bool(job.params.get("plaintext")) or job.params.get("mode") == "file"
    access.check(actor, access.Obj.run, access.Act.download, job.created_by, plaintext=holds_plaintext,
                 what="result")
    return str(job.result["file_id"])

