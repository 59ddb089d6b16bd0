"""The HLR estimate of a stored file as a background job: what a lookup of the file would cost, without
storing anything but the job row (its progress and, at the end, its result).

`lookups.create_lookup` reads a file inside the request and stores its numbers before it can tell what they
cost; for a file of millions that is slow. `start_estimate` checks the source and creates an
`ESTIMATE_KIND` job; the job (`compute_estimate`) reads the phone column once and works on columns:
normalisation to E.164, de-duplication and line types are polars expressions (`numbers.normalize`), the
blind indexes one batch call per chunk (`numbers.vault.index_many`), the stored facts (fresh results,
opt-outs, numbers in review or recently paid) one scan each (`stored_facts`) met on polars `is_in`, and the
counts polars aggregations. The result has the keys of `lookups.estimate` with the same rules: opted-out numbers and
numbers of a line type known not to be mobile (unless `include_non_mobile`) are left out with the credits
that saves. Measured by `bench/hlr_estimate.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import polars as pl
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core import jobs, storage
from phoneops.core.audit import audit
from phoneops.core.csvio import TableError, iter_rows, sniff_table
from phoneops.core.db import utcnow
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.hlr.lookups import MAY_BE_MOBILE, PRIVATE_CACHE_DAYS, FileSource, _column, check_region
from phoneops.hlr.models import REVIEW, HlrLookupItem, HlrResult
from phoneops.hlr.provider import CREDITS_PER_LOOKUP, confirm_above_credits, credits_text
from phoneops.numbers.normalize import line_types, normalize_column
from phoneops.numbers.optouts import active_indexes
from phoneops.numbers.vault import get_vault
from phoneops.settings import get_settings

ESTIMATE_KIND = "hlr.estimate"
HASH_CHUNK = 100_000  # numbers hashed between two progress reports
STAGES = ("reading", "normalising", "hashing", "checking stored results", "counting")

Report = Callable[[int, str], None]  # (stage index, message)


def _quiet(stage: int, message: str) -> None:
    return None


def read_column(session: Session, source: FileSource) -> tuple[list[str], dict[str, Any]]:
    """The phone column's values (stripped, blank rows skipped) and the source as `create_lookup` records it."""
    row = storage.get_file(session, source.file_id)
    if row.status == "deleted":
        raise NotFound(f"file {row.id} was deleted")
    region = check_region(source.region)
    try:
        with storage.get_storage().local_path(row) as path:  # NotFound when the file is missing from storage
            rows = iter_rows(path, sniff_table(path))
            first = next((r for r in rows if any(cell.strip() for cell in r)), None)
            if first is None:
                raise ValidationFailed(f"{row.original_name} has no rows")
            index, header = _column(first, source.phone_column)
            values = [] if header else [first[index].strip() if index < len(first) else ""]
            values.extend(r[index].strip() if index < len(r) else "" for r in rows if any(c.strip() for c in r))
    except TableError as exc:
        raise ValidationFailed(f"cannot read {row.original_name}: {exc}") from None
    column = first[index] if header and index < len(first) else f"column {index + 1}"
    return values, {"file_id": row.id, "file_name": row.original_name, "phone_column": column, "region": region}


def _hash(e164: pl.Series, report: Report) -> pl.Series:
    vault = get_vault()
    out: list[bytes] = []
    for start in range(0, e164.len(), HASH_CHUNK):
        out.extend(vault.index_many(e164.slice(start, HASH_CHUNK).to_list()))
        report(2, f"hashing: {min(start + HASH_CHUNK, e164.len()):,} of {e164.len():,} numbers")
    return pl.Series("idx", out, dtype=pl.Binary)


def _indexes(session: Session, query: Any) -> pl.Series:
    return pl.Series([bytes(i) for i in session.scalars(query)], dtype=pl.Binary)


def stored_facts(session: Session, ttl_days: int) -> dict[str, pl.Series]:
    """The blind indexes that decide an estimate, each set read in one scan (not one query per chunk of the
    file's numbers): results younger than `ttl_days` (fresh), active opt-outs, numbers in review or in flight
    in any lookup, and numbers paid within the provider's private-cache window but older than `ttl_days`.
    The same rules as `lookups.fresh_results`, `paid_elsewhere` and `numbers.optouts.opted_out`."""
    now = utcnow()
    cutoff, window = now - timedelta(days=max(ttl_days, 0)), now - timedelta(days=PRIVATE_CACHE_DAYS)
    fresh = (select(HlrResult.blind_index).where(HlrResult.looked_up_at >= cutoff).distinct() if ttl_days > 0
             else None)
    return {
        "fresh": _indexes(session, fresh) if fresh is not None else pl.Series([], dtype=pl.Binary),
        "opted_out": _indexes(session, select(active_indexes().c.blind_index)),
        "in_review": _indexes(session, select(HlrLookupItem.blind_index).where(
            HlrLookupItem.state.in_((REVIEW, "sending"))).distinct()),
        "recently_paid": _indexes(session, select(HlrResult.blind_index).where(
            HlrResult.looked_up_at >= window, HlrResult.looked_up_at < cutoff, HlrResult.credits_spent > 0
        ).distinct()),
    }


def compute_estimate(session: Session, source: FileSource, *, include_non_mobile: bool = False,
                     report: Report = _quiet) -> dict[str, Any]:
    """The estimate of a lookup of `source`, computed on columns; nothing is stored."""
    report(0, "reading the file")
    values, described = read_column(session, source)
    report(1, f"normalising {len(values):,} rows")
    frame = normalize_column(pl.Series(values, dtype=pl.String), described["region"])
    valid = frame.filter(pl.col("e164").is_not_null())
    invalid = frame.height - valid.height
    distinct = valid.unique(subset="e164", keep="first", maintain_order=True).select("e164", "country")
    if distinct.is_empty():
        raise ValidationFailed("no valid phone number in the source", details={"rows": len(values),
                                                                               "invalid": invalid})
    kinds = line_types(distinct["e164"], distinct["country"]).alias("kind")
    idx = _hash(distinct["e164"], report)
    report(3, f"checking {idx.len():,} numbers against stored results and opt-outs")
    ttl = get_settings().hlr_cache_ttl_days
    facts = stored_facts(session, ttl)
    numbers = pl.DataFrame([idx, kinds]).with_columns(
        fresh=idx.is_in(facts["fresh"].implode()), stopped=idx.is_in(facts["opted_out"].implode()),
        in_review=idx.is_in(facts["in_review"].implode()), recent=idx.is_in(facts["recently_paid"].implode()),
    )
    numbers = numbers.with_columns(
        not_mobile=~pl.col("stopped") & pl.lit(not include_non_mobile) & ~pl.col("kind").is_in(MAY_BE_MOBILE)
    ).with_columns(kept=~pl.col("stopped") & ~pl.col("not_mobile"))
    report(4, "counting")
    left = numbers.filter(~pl.col("kept"))
    kept = numbers.filter(pl.col("kept"))
    per_type = left.filter(pl.col("not_mobile")).group_by("kind").len().sort(["len", "kind"], descending=[True, False])
    not_mobile = dict(zip(per_type["kind"].to_list(), per_type["len"].to_list(), strict=True))
    stopped, saved = int(numbers["stopped"].sum()), int((~left["fresh"]).sum())
    if kept.is_empty():
        raise ValidationFailed(
            f"nothing to look up: {stopped:,} opted out, {sum(not_mobile.values()):,} not mobile"
            + ("" if not not_mobile else " (include_non_mobile looks them up anyway)"),
            code="nothing_to_look_up", details={"rows": len(values), "invalid": invalid, "opted_out": stopped,
                                                "not_mobile": not_mobile})
    fresh = int(kept["fresh"].sum())
    to_lookup = kept.height - fresh
    paid = kept.filter(~pl.col("fresh"))
    in_review, recently_paid = int(paid["in_review"].sum()), int((paid["recent"] & ~paid["in_review"]).sum())
    budget = confirm_above_credits()
    credits = Decimal(to_lookup * CREDITS_PER_LOOKUP)
    return {
        "rows": len(values), "invalid": invalid, "duplicates": len(values) - invalid - distinct.height,
        "numbers": kept.height, "fresh": fresh, "to_lookup": to_lookup, "in_review": in_review,
        "recently_paid": recently_paid, "credits_estimate": credits_text(credits),
        "opted_out": stopped, "not_mobile": sum(not_mobile.values()), "not_mobile_types": not_mobile,
        "include_non_mobile": include_non_mobile, "credits_saved": credits_text(saved * CREDITS_PER_LOOKUP),
        "budget": budget, "ttl_days": ttl,
        "needs_confirmation": credits > budget or in_review > 0 or recently_paid > 0,
        "source": described,
    }


def start_estimate(session: Session, actor: Principal, source: FileSource, *,
                   include_non_mobile: bool = False) -> Job:
    """Check the source (the file exists, the region is known) and create the estimate job."""
    row = storage.get_file(session, source.file_id)
    if row.status == "deleted":
        raise NotFound(f"file {row.id} was deleted")
    region = check_region(source.region)
    params = {"file_id": row.id, "phone_column": source.phone_column, "region": region,
              "include_non_mobile": include_non_mobile}
    job = jobs.create_job(session, actor, ESTIMATE_KIND, params, title=f"HLR estimate of {row.original_name}",
                          total=len(STAGES))
    audit(session, actor, "hlr.estimate_start", "job", job.id, params)
    return job


def run_estimate(ctx: jobs.JobContext) -> dict[str, Any]:
    """The job: progress by stage (done = stages finished of `STAGES`), the estimate as its result."""
    from phoneops.core.db import session_scope

    def report(stage: int, message: str) -> None:
        ctx.progress(done=stage, total=len(STAGES), message=message)

    params = ctx.params
    source = FileSource(str(params["file_id"]), params.get("phone_column"), params.get("region"))
    with session_scope() as session:
        result = compute_estimate(session, source, include_non_mobile=bool(params.get("include_non_mobile")),
                                  report=report)
    ctx.progress(done=len(STAGES), total=len(STAGES), message=None)
    return result
