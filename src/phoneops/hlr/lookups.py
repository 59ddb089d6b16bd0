# Over 400 lines: a lookup's life before the job: sources, estimate, budget, start, resume.
"""Lookups: read the numbers of a source, estimate, ask for confirmation above the budget, start and resume.

A lookup's source is a stored file (core `files`: a cleaned file, a direct upload...; its phone column and
default region) or a list selection (a list status and, optionally, a country). Creating a lookup reads
the source once, set-based: numbers are normalised to E.164 as a column, de-duplicated by blind index and
stored as items (sealed at rest, as in the number core). Left out first, never paid for: opted-out numbers
(`numbers.optouts`) and, unless the user asks for them, numbers whose line type (`numbers.normalize.line_types`,
from the phone library's metadata, free) is known not to be mobile; the estimate counts them apart with the
credits that saves (docs/paid-calls.md). The estimate counts the numbers, those with a
result younger than `HLR_CACHE_TTL_DAYS` (not looked up again) and the credits the rest will cost. Of
those, it counts apart the numbers in review (or in flight) in another lookup — possibly paid already; the
calls ask the provider's private cache first, so they are free if so — and those paid within the
provider's 30-day private-cache window but older than the TTL (paid again). Above the confirmation budget,
or when either count is not zero, nothing is paid until an operator confirms.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import phonenumbers
import polars as pl
from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.orm import Session

from phoneops.core import jobs, storage
from phoneops.core.audit import audit
from phoneops.core.csvio import TableError, iter_rows, normalise_header, sniff_table
from phoneops.core.db import rowcount, utcnow
from phoneops.core.errors import Conflict, NotFound, ValidationFailed
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.hlr.models import (
    AWAITING_CONFIRMATION,
    CACHED,
    CANCELLED,
    NEEDS_CREDIT,
    PENDING,
    READY,
    RESUMABLE,
    REVIEW,
    RUNNING,
    SENDING,
    HlrCall,
    HlrLookup,
    HlrLookupItem,
    HlrResult,
)
from phoneops.hlr.provider import CREDITS_PER_LOOKUP, confirm_above_credits, credits_text, require_configured
from phoneops.numbers.lists import LISTS
from phoneops.numbers.normalize import line_types, normalize_column
from phoneops.numbers.optouts import opted_out
from phoneops.numbers.queries import list_members
from phoneops.numbers.vault import get_vault
from phoneops.settings import get_settings
from phoneops.webhooks import service as webhooks

KIND = "hlr.lookup"
MODES = ("batch", "realtime")
DEFAULT_BATCH_SIZE = 10_000
MAX_BATCH_SIZE = 100_000
CHUNK = 5000
CANCEL_ATTEMPTS = 3  # reads of a lookup that other requests keep starting before a cancel gives up (Conflict)
PHONE_HEADERS = {"phone", "phonenumber", "number", "msisdn", "mobile", "tel", "telephone", "e164",
                 "customvariable1", "telephonenumber"}
OPEN_BATCH_STATES = ("new", "created", "uploaded", "starting", "started")
# line types an HLR may answer for: the rest (fixed line, toll-free, VoIP, ...) is left out unless asked for
MAY_BE_MOBILE = ("mobile", "fixed_line_or_mobile", "unknown")
PRIVATE_CACHE_DAYS = 30  # the provider keeps our results this long in our private cache (docs/providers/hlr_cache.md)


@dataclass(frozen=True)
class FileSource:
    file_id: str
    phone_column: str | None = None  # a header name, or a 1-based column number; None: detected
    region: str | None = None  # default region for national numbers; None: DEFAULT_REGION


@dataclass(frozen=True)
class ListSource:
    status: str
    country: str | None = None


@dataclass(frozen=True)
class Collected:
    rows: int
    invalid: int
    duplicates: int
    items: list[tuple[bytes, bytes, str | None]]  # blind index, sealed number, country
    source: dict[str, Any]
    title: str
    line_types: list[str | None]  # of each item (numbers.normalize.LINE_TYPES names)


def check_region(region: str | None) -> str:
    value = (region or get_settings().default_region).strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(f"unknown region code {value!r} (use an ISO 3166 code such as GB or US)")
    return value


# --- reading sources ---------------------------------------------------------------------------------


def _column(first: list[str], wanted: str | None) -> tuple[int, bool]:
    """(column index, first row is a header)."""
    names = [normalise_header(cell) for cell in first]
    if wanted:
        key = normalise_header(wanted)
        if key in names:
            return names.index(key), True
        if wanted.strip().isdigit() and 1 <= int(wanted) <= max(len(first), 1):
            index = int(wanted) - 1
            cell = first[index] if index < len(first) else ""
            return index, not any(ch.isdigit() for ch in cell)
        raise ValidationFailed(
            f"no column {wanted!r} in the file (its first row: {', '.join(first[:20])})", details={"columns": first}
        )
    for index, name in enumerate(names):
        if name in PHONE_HEADERS:
            return index, True
    cell = first[0] if first else ""
    return 0, not any(ch.isdigit() for ch in cell)


def _collect_numbers(values: Sequence[str], region: str) -> tuple[int, list[tuple[str, str | None]], list[str | None]]:
    """(invalid count, distinct valid (E.164, country) in first-seen order, their line types)."""
    frame = normalize_column(pl.Series(values, dtype=pl.String), region)
    valid = frame.filter(pl.col("e164").is_not_null())
    invalid = frame.height - valid.height
    distinct = valid.unique(subset="e164", keep="first", maintain_order=True)
    types = line_types(distinct["e164"], distinct["country"]).to_list()
    return invalid, list(zip(distinct["e164"].to_list(), distinct["country"].to_list(), strict=True)), types


def collect_file(session: Session, source: FileSource) -> Collected:
    row = storage.get_file(session, source.file_id)
    if row.status == "deleted":
        raise NotFound(f"file {row.id} was deleted")
    region = check_region(source.region)
    try:
        with storage.get_storage().local_path(row) as path:  # NotFound when the file is missing from storage
            table = [r for r in iter_rows(path, sniff_table(path)) if any(cell.strip() for cell in r)]
    except TableError as exc:
        raise ValidationFailed(f"cannot read {row.original_name}: {exc}") from None
    if not table:
        raise ValidationFailed(f"{row.original_name} has no rows")
    index, header = _column(table[0], source.phone_column)
    data = table[1:] if header else table
    values = [r[index].strip() if index < len(r) else "" for r in data]
    invalid, numbers, types = _collect_numbers(values, region)
    vault = get_vault()
    indexes = vault.index_many([e164 for e164, _ in numbers])
    items = [(idx, vault.seal(e164, idx), country) for (e164, country), idx in zip(numbers, indexes, strict=True)]
    column = table[0][index] if header and index < len(table[0]) else f"column {index + 1}"
    return Collected(
        rows=len(values), invalid=invalid, duplicates=len(values) - invalid - len(items), items=items,
        source={"file_id": row.id, "file_name": row.original_name, "phone_column": column, "region": region},
        title=f"HLR lookup of {row.original_name}", line_types=types,
    )


def collect_list(session: Session, source: ListSource) -> Collected:
    if source.status not in LISTS:
        raise ValidationFailed(f"status must be one of {', '.join(LISTS)}")
    country = (source.country or "").strip().upper() or None
    if country is not None and country not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(f"unknown country code {country!r}")
    items = list_members(session, source.status, country)
    vault = get_vault()
    e164s = pl.Series([vault.open(sealed, idx) for idx, sealed, _ in items], dtype=pl.String)
    types = line_types(e164s, normalize_column(e164s, "GB")["country"]).to_list() if items else []
    return Collected(
        rows=len(items), invalid=0, duplicates=0, items=items,
        source={"status": source.status, "country": country},
        title=f"HLR lookup of the {source.status}" + (f" ({country})" if country else ""), line_types=types,
    )


def fresh_results(session: Session, indexes: Sequence[bytes], ttl_days: int) -> dict[bytes, int]:
    """The newest result id per blind index among results younger than `ttl_days`."""
    if ttl_days <= 0:
        return {}
    cutoff = utcnow() - timedelta(days=ttl_days)
    found: dict[bytes, int] = {}
    unique = list(set(indexes))
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        rows = session.execute(
            select(HlrResult.blind_index, func.max(HlrResult.id))
            .where(HlrResult.blind_index.in_(chunk), HlrResult.looked_up_at >= cutoff)
            .group_by(HlrResult.blind_index)
        )
        found.update({bytes(idx): int(rid) for idx, rid in rows})
    return found


def paid_elsewhere(session: Session, lookup_id: int, indexes: Sequence[bytes], ttl_days: int) -> tuple[int, int]:
    """(numbers in review or in flight in another lookup, numbers paid within the provider's private-cache
    window — 30 days — but older than `ttl_days`) among `indexes` (none of them fresh)."""
    unique = list(set(indexes))
    now = utcnow()
    window, cutoff = now - timedelta(days=PRIVATE_CACHE_DAYS), now - timedelta(days=max(ttl_days, 0))
    review: set[bytes] = set()
    recent: set[bytes] = set()
    for start in range(0, len(unique), CHUNK):
        chunk = unique[start : start + CHUNK]
        review.update(bytes(i) for i in session.scalars(
            select(HlrLookupItem.blind_index).where(
                HlrLookupItem.blind_index.in_(chunk), HlrLookupItem.lookup_id != lookup_id,
                HlrLookupItem.state.in_((REVIEW, "sending")))
        ))
        recent.update(bytes(i) for i in session.scalars(
            select(HlrResult.blind_index).where(
                HlrResult.blind_index.in_(chunk), HlrResult.looked_up_at >= window,
                HlrResult.looked_up_at < cutoff, HlrResult.credits_spent > 0)
        ))
    return len(review), len(recent - review)


# --- creating and starting ---------------------------------------------------------------------------


def create_lookup(
    session: Session,
    actor: Principal,
    source: FileSource | ListSource,
    *,
    mode: str = "batch",
    batch_size: int | None = None,
    confirm: bool = False,
    start: bool = True,
    include_non_mobile: bool = False,
) -> HlrLookup:
    """Read the source, leave out what is never worth paying for, store the rest, estimate; start the job
    unless the estimate needs confirmation (or `start` is False).

    Left out before anything is paid: opted-out numbers (always: nothing is sent to them) and numbers whose
    line type is known not to be mobile (fixed line, toll-free, VoIP ...: an HLR only answers for mobiles),
    unless `include_non_mobile`. Numbers of type mobile, fixed-line-or-mobile or unknown are looked up."""
    if mode not in MODES:
        raise ValidationFailed(f"mode must be one of {', '.join(MODES)}")
    size = batch_size or DEFAULT_BATCH_SIZE
    if not 1 <= size <= MAX_BATCH_SIZE:
        raise ValidationFailed(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
    collected = collect_file(session, source) if isinstance(source, FileSource) else collect_list(session, source)
    if not collected.items:
        raise ValidationFailed("no valid phone number in the source", details={"rows": collected.rows,
                                                                               "invalid": collected.invalid})
    ttl = get_settings().hlr_cache_ttl_days
    fresh = fresh_results(session, [idx for idx, _, _ in collected.items], ttl)
    stopped = opted_out(session, [idx for idx, _, _ in collected.items])
    kept: list[tuple[bytes, bytes, str | None]] = []
    left_out, not_mobile = 0, dict[str, int]()
    for item, kind in zip(collected.items, collected.line_types, strict=True):
        if item[0] in stopped:
            pass
        elif not include_non_mobile and kind not in MAY_BE_MOBILE:
            not_mobile[str(kind)] = not_mobile.get(str(kind), 0) + 1
        else:
            kept.append(item)
            continue
        left_out += item[0] not in fresh  # would have been paid
    if not kept:
        raise ValidationFailed(
            f"nothing to look up: {len(stopped):,} opted out, {sum(not_mobile.values()):,} not mobile"
            + ("" if not not_mobile else " (include_non_mobile looks them up anyway)"),
            code="nothing_to_look_up", details={"rows": collected.rows, "invalid": collected.invalid,
                                                "opted_out": len(stopped), "not_mobile": not_mobile})
    lookup = HlrLookup(
        title=collected.title[:200], mode=mode, batch_size=size,
        source_kind="file" if isinstance(source, FileSource) else "list", source=collected.source,
        rows=collected.rows, invalid=collected.invalid, duplicates=collected.duplicates,
        numbers=len(kept), budget=confirm_above_credits(), ttl_days=ttl, created_by=actor.username,
        breakdown={}, opted_out=len(stopped), not_mobile=sum(not_mobile.values()),
        not_mobile_types=dict(sorted(not_mobile.items(), key=lambda kv: -kv[1])),
        include_non_mobile=include_non_mobile, credits_saved=Decimal(left_out * CREDITS_PER_LOOKUP),
    )
    session.add(lookup)
    session.flush()
    collected = Collected(collected.rows, collected.invalid, collected.duplicates, kept, collected.source,
                          collected.title, [])
    rows = [
        {"lookup_id": lookup.id, "blind_index": idx, "sealed": sealed, "country": country,
         "state": CACHED if idx in fresh else PENDING, "result_id": fresh.get(idx)}
        for idx, sealed, country in collected.items
    ]
    for begin in range(0, len(rows), CHUNK):
        session.execute(insert(HlrLookupItem), rows[begin : begin + CHUNK])
    lookup.fresh = sum(1 for idx, _, _ in collected.items if idx in fresh)
    lookup.to_lookup = lookup.numbers - lookup.fresh
    lookup.in_review, lookup.recently_paid = paid_elsewhere(
        session, lookup.id, [idx for idx, _, _ in collected.items if idx not in fresh], ttl
    )
    lookup.credits_estimate = Decimal(lookup.to_lookup * CREDITS_PER_LOOKUP)
    audit(session, actor, "hlr.lookup_create", "hlr_lookup", lookup.id, {**estimate(lookup), "mode": mode,
                                                                            "source": collected.source})
    if not start:
        lookup.status = AWAITING_CONFIRMATION if needs_confirmation(lookup) else READY
    elif needs_confirmation(lookup) and not confirm:
        lookup.status = AWAITING_CONFIRMATION
        lookup.message = confirmation_reason(lookup)
    else:
        _start(session, actor, lookup, confirmed=confirm)
    if lookup.status == AWAITING_CONFIRMATION and lookup.credits_estimate > lookup.budget:
        webhooks.notify(session, "budget.reached", {
            "domain": "hlr", "lookup_id": lookup.id, "credits_estimate": credits_text(lookup.credits_estimate),
            "budget": lookup.budget, "reason": confirmation_reason(lookup), "page": f"/hlr/lookups/{lookup.id}"})
    return lookup


def needs_confirmation(lookup: HlrLookup) -> bool:
    return lookup.credits_estimate > lookup.budget or lookup.in_review > 0 or lookup.recently_paid > 0


def confirmation_reason(lookup: HlrLookup) -> str:
    """Why the lookup waits for an operator, in words."""
    reasons = []
    if lookup.credits_estimate > lookup.budget:
        reasons.append(f"{lookup.to_lookup:,} lookups cost about {lookup.credits_estimate:,.0f} credits, above the "
                       f"confirmation budget of {lookup.budget:,}")
    if lookup.in_review:
        reasons.append(
            f"{lookup.in_review:,} numbers are in review or being looked up in another lookup (possibly "
            "paid already; asked through the provider's private cache, free if they were)"
        )
    if lookup.recently_paid:
        reasons.append(
            f"{lookup.recently_paid:,} numbers were paid for within 30 days but are older than the "
            f"{lookup.ttl_days}-day freshness limit (HLR_CACHE_TTL_DAYS): they will be paid again"
        )
    return "; ".join(reasons) + ": confirm to start"


def estimate(lookup: HlrLookup) -> dict[str, Any]:
    return {
        "rows": lookup.rows, "invalid": lookup.invalid, "duplicates": lookup.duplicates, "numbers": lookup.numbers,
        "fresh": lookup.fresh, "to_lookup": lookup.to_lookup, "in_review": lookup.in_review,
        "recently_paid": lookup.recently_paid, "credits_estimate": credits_text(lookup.credits_estimate),
        "opted_out": lookup.opted_out, "not_mobile": lookup.not_mobile,
        "not_mobile_types": dict(lookup.not_mobile_types or {}), "include_non_mobile": lookup.include_non_mobile,
        "credits_saved": credits_text(lookup.credits_saved),
        "budget": lookup.budget, "ttl_days": lookup.ttl_days, "needs_confirmation": needs_confirmation(lookup),
    }


def _start(session: Session, actor: Principal, lookup: HlrLookup, *, confirmed: bool) -> None:
    """Give the lookup a new job: once (`_claim_start`), and never over a cancelled run still in its call
    (`_check_cancelled_run`)."""
    _check_cancelled_run(session, lookup)
    _claim_start(session, lookup)
    remaining = session.scalar(
        select(func.count(HlrLookupItem.id)).where(
            HlrLookupItem.lookup_id == lookup.id, HlrLookupItem.state.in_((PENDING, "sending"))
        )
    )
    if remaining:
        require_configured()
    if confirmed and lookup.confirmed_at is None:
        lookup.confirmed_by, lookup.confirmed_at = actor.username, utcnow()
    job = jobs.create_job(session, actor, KIND, {"lookup_id": lookup.id}, title=lookup.title, total=lookup.numbers)
    lookup.job_id = job.id
    lookup.status = RUNNING
    lookup.error = None
    lookup.message = None
    lookup.started_at = lookup.started_at or utcnow()
    lookup.finished_at = None


def _check_cancelled_run(session: Session, lookup: HlrLookup) -> None:
    """Refuse to start while the lookup's cancelled run may still be inside a paid call
    (`core.jobs.cancelled_run_seconds_left`): it settles that call when the answer comes, and a new run
    would find the call's intent still open and ask its numbers again; both runs would then settle the one
    call, its numbers and credits counted twice, charged twice if the provider handles both at once."""
    wait = jobs.cancelled_run_seconds_left(lookup_job(session, lookup))
    if wait is None:
        return
    open_calls = session.scalar(select(func.count(HlrCall.id)).where(
        HlrCall.lookup_id == lookup.id, HlrCall.state.in_((SENDING, "settling", *OPEN_BATCH_STATES))))
    if open_calls:
        raise Conflict(f"HLR lookup {lookup.id} was cancelled a moment ago and its run may still be in a paid "
                       f"call: start it again in {wait} s", retry_after=wait)


def _claim_start(session: Session, lookup: HlrLookup) -> None:
    """Start only if nobody started the lookup since the caller read it (its status and job as checked).

    Confirm, resume and release-review read the lookup, check it may start, then start a job: two requests
    at once (two clicks, two pages) could both pass the checks, and two jobs of one lookup claim and pay the
    same numbers. This conditional UPDATE, on the values the checks saw, lets exactly one of them through:
    it sees every commit before it (SQLite: the write lock is ours from that statement on; PostgreSQL: it
    waits for a rival's row lock and re-checks its condition on the committed row)."""
    claimed = rowcount(session.execute(
        update(HlrLookup)
        .where(*_as_seen(lookup))
        .values(status=RUNNING)
        .execution_options(synchronize_session=False)
    ))
    if claimed != 1:
        raise Conflict(f"HLR lookup {lookup.id} was just started by another request; reload it")


def _as_seen(lookup: HlrLookup) -> list[ColumnElement[bool]]:
    """The lookup's row as the caller read it (its status and its job): the condition of a write that must not
    land over a change committed since."""
    seen_job = HlrLookup.job_id.is_(None) if lookup.job_id is None else HlrLookup.job_id == lookup.job_id
    return [HlrLookup.id == lookup.id, HlrLookup.status == lookup.status, seen_job]


def get_lookup(session: Session, lookup_id: int) -> HlrLookup:
    lookup = session.get(HlrLookup, lookup_id)
    if lookup is None:
        raise NotFound(f"no HLR lookup {lookup_id}")
    return lookup


def lookup_job(session: Session, lookup: HlrLookup) -> Job | None:
    return session.get(Job, lookup.job_id) if lookup.job_id else None


def effective_status(lookup: HlrLookup, job: Job | None) -> str:
    """The lookup's status, corrected by its job's when the job ended without telling the lookup
    (cancelled from the jobs page, crashed, gave up)."""
    if lookup.status == RUNNING and job is not None and job.status in ("failed", "cancelled"):
        return "failed" if job.status == "failed" else CANCELLED
    return lookup.status


def list_lookups(session: Session, limit: int = 50, status: str | None = None) -> list[HlrLookup]:
    query = select(HlrLookup).order_by(HlrLookup.id.desc()).limit(max(1, min(limit, 500)))
    if status:
        query = query.where(HlrLookup.status.in_(status.split(",")))
    return list(session.scalars(query))


def confirm_lookup(session: Session, actor: Principal, lookup_id: int) -> HlrLookup:
    """Start a lookup that waits for confirmation (or was estimated only)."""
    lookup = get_lookup(session, lookup_id)
    if lookup.status not in (AWAITING_CONFIRMATION, READY):
        raise Conflict(f"HLR lookup {lookup_id} is {lookup.status}; only a lookup waiting to start can be confirmed")
    audit(session, actor, "hlr.lookup_confirm", "hlr_lookup", lookup.id, estimate(lookup))
    _start(session, actor, lookup, confirmed=True)
    return lookup


def resume_lookup(session: Session, actor: Principal, lookup_id: int) -> HlrLookup:
    """Continue a stopped lookup (out of credit, failed, cancelled): nothing settled is sent again; an open
    batch is polled again for a new `HLR_POLL_MAX_SECONDS`."""
    lookup = get_lookup(session, lookup_id)
    job = lookup_job(session, lookup)
    status = effective_status(lookup, job)
    if job is not None and job.status in jobs.ACTIVE:
        raise Conflict(f"HLR lookup {lookup_id} is already running")
    if status not in RESUMABLE:
        raise Conflict(f"HLR lookup {lookup_id} is {status}; only a stopped lookup can be resumed")
    session.execute(
        update(HlrCall).where(HlrCall.lookup_id == lookup.id, HlrCall.state == "started").values(poll_since=utcnow())
    )
    audit(session, actor, "hlr.lookup_resume", "hlr_lookup", lookup.id, {"from": status})
    _start(session, actor, lookup, confirmed=lookup.confirmed_at is not None)
    return lookup


def release_review(session: Session, actor: Principal, lookup_id: int) -> HlrLookup:
    """An operator's explicit decision to look the numbers in review up again, knowing that some of them may
    have been paid already (their call's outcome is unknown); then the lookup runs again for them."""
    lookup = get_lookup(session, lookup_id)
    jobs.check_cancel(actor, lookup.created_by, "hlr.lookup")  # who started it, or an admin
    job = lookup_job(session, lookup)
    if job is not None and job.status in jobs.ACTIVE:
        raise Conflict(f"HLR lookup {lookup_id} is running; release its numbers in review once it has stopped")
    if effective_status(lookup, job) in (AWAITING_CONFIRMATION, READY):
        raise Conflict(f"HLR lookup {lookup_id} has not started")
    released = rowcount(session.execute(
        update(HlrLookupItem)
        .where(HlrLookupItem.lookup_id == lookup.id, HlrLookupItem.state == REVIEW)
        .values(state=PENDING, call_id=None, note=f"in doubt; sent again by decision of {actor.username}"[:200])
    ))
    if not released:
        raise Conflict(f"HLR lookup {lookup_id} has no number in review")
    lookup.review = max(0, lookup.review - int(released))
    audit(session, actor, "hlr.review_release", "hlr_lookup", lookup.id, {"numbers": int(released)})
    _start(session, actor, lookup, confirmed=True)
    return lookup


def lookups_in_review(session: Session, limit: int = 200) -> list[dict[str, Any]]:
    """Lookups with numbers in review (their call's outcome is unknown), newest first."""
    rows = session.execute(
        select(HlrLookup.id, HlrLookup.title, HlrLookup.status, func.count(HlrLookupItem.id))
        .join(HlrLookupItem, HlrLookupItem.lookup_id == HlrLookup.id)
        .where(HlrLookupItem.state == REVIEW)
        .group_by(HlrLookup.id, HlrLookup.title, HlrLookup.status)
        .order_by(HlrLookup.id.desc())
        .limit(max(1, min(limit, 1000)))
    )
    return [{"lookup_id": i, "title": t, "status": s, "numbers": int(n)} for i, t, s, n in rows]


def write_off_review(session: Session, actor: Principal, lookup_id: int, reason: str) -> HlrLookup:
    """Close a lookup's numbers in review without looking them up again, with the reason (audited): they
    end `failed` with that note; nothing is paid."""
    text = (reason or "").strip()
    if not text:
        raise ValidationFailed("say why the numbers are written off (a reason is required)")
    if len(text) > 500:
        raise ValidationFailed("the reason is at most 500 characters")
    lookup = get_lookup(session, lookup_id)
    job = lookup_job(session, lookup)
    if job is not None and job.status in jobs.ACTIVE:
        raise Conflict(f"HLR lookup {lookup_id} is running; write its numbers in review off once it has stopped")
    closed = rowcount(session.execute(
        update(HlrLookupItem)
        .where(HlrLookupItem.lookup_id == lookup.id, HlrLookupItem.state == REVIEW)
        .values(state="failed", note=f"written off by {actor.username}: {text}"[:200])
    ))
    if not closed:
        raise Conflict(f"HLR lookup {lookup_id} has no number in review")
    lookup.review = max(0, lookup.review - int(closed))
    lookup.failed = lookup.failed + int(closed)
    audit(session, actor, "hlr.review_write_off", "hlr_lookup", lookup.id, {"numbers": int(closed), "reason": text})
    return lookup


def _not_cancellable(lookup: HlrLookup) -> str:
    if lookup.status == NEEDS_CREDIT:
        return (f"HLR lookup {lookup.id} is stopped until the account has credit: nothing runs to cancel "
                "(resume it after a top-up, or leave it)")
    return f"HLR lookup {lookup.id} already ended ({lookup.status}): there is nothing to cancel"


def cancel_lookup(session: Session, actor: Principal, lookup_id: int) -> HlrLookup:
    """Stop a lookup: its job stops at its next step; an open intent stays open for reconciliation.

    "Cancelled" is written only over the lookup as this request read it (`_as_seen`). A confirm, resume or
    release committed in between has given it a job this request did not see: the cancel used to write over
    that start and leave its job to run and pay. Now the lookup is read again and that job cancelled too."""
    for _ in range(CANCEL_ATTEMPTS):
        lookup = get_lookup(session, lookup_id)
        jobs.check_cancel(actor, lookup.created_by, "hlr.lookup")  # who started it, or an admin
        job = lookup_job(session, lookup)
        if job is not None and job.status in jobs.ACTIVE:
            try:
                jobs.cancel_job(session, actor, job.id)
            except Conflict:  # the job ended after this request read it: read the lookup again
                session.rollback()
                continue
        elif lookup.status not in (AWAITING_CONFIRMATION, READY, RUNNING):
            raise Conflict(_not_cancellable(lookup))
        cancelled = rowcount(session.execute(
            update(HlrLookup).where(*_as_seen(lookup)).values(status=CANCELLED, finished_at=utcnow())
            .execution_options(synchronize_session=False)
        ))
        session.expire(lookup)  # read again: as written, or as changed by the request that came first
        if cancelled == 1:
            audit(session, actor, "hlr.lookup_cancel", "hlr_lookup", lookup.id, {})
            return lookup
        if job is not None:
            session.expire(job)
    raise Conflict(f"HLR lookup {lookup_id} kept changing while it was being cancelled; reload it and cancel again")


def item_counts(session: Session, lookup_id: int) -> dict[str, int]:
    rows = session.execute(
        select(HlrLookupItem.state, func.count(HlrLookupItem.id))
        .where(HlrLookupItem.lookup_id == lookup_id)
        .group_by(HlrLookupItem.state)
    )
    return {str(state): int(count) for state, count in rows}


def describe_lookup(session: Session, lookup: HlrLookup) -> dict[str, Any]:
    """Everything the API, the pages and the CLI show of a lookup (plain values)."""
    job = lookup_job(session, lookup)
    return {
        "id": lookup.id, "title": lookup.title, "status": effective_status(lookup, job), "mode": lookup.mode,
        "batch_size": lookup.batch_size, "source_kind": lookup.source_kind, "source": dict(lookup.source),
        "estimate": estimate(lookup), "confirmed_by": lookup.confirmed_by, "confirmed_at": lookup.confirmed_at,
        "looked_up": lookup.looked_up, "review": lookup.review, "failed": lookup.failed,
        "credits_spent": credits_text(lookup.credits_spent), "counts": item_counts(session, lookup.id),
        "breakdown": dict(lookup.breakdown or {}), "clean_file_id": lookup.clean_file_id,
        "raw_file_id": lookup.raw_file_id, "message": lookup.message, "error": lookup.error,
        "created_by": lookup.created_by, "created_at": lookup.created_at, "started_at": lookup.started_at,
        "finished_at": lookup.finished_at, "job": job,
    }
