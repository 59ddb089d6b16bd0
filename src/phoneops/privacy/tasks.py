"""Background work of privacy: the erasure job, the retention purge (on demand and daily at 03:40 UTC)."""

from __future__ import annotations

from typing import Any

from phoneops.core.errors import AppError
from phoneops.core.jobs import JobCancelled, JobContext, LeaseLost, RetryLater, job_handler, periodic
from phoneops.core.security import SYSTEM, Principal, Role
from phoneops.privacy import erase, retention

PURGE_KIND = "privacy.purge"


@job_handler(erase.KIND, title="Erase a number", max_attempts=10, cancellable=False,  # never stops half-way
             origin=lambda p: ("Privacy", "/privacy"))
def erase_job(ctx: JobContext) -> dict[str, Any]:
    try:
        return erase.run_erasure(ctx)
    except (RetryLater, LeaseLost):
        raise
    except JobCancelled:
        erase.mark_failed(int(ctx.params["erasure_id"]), "cancelled")
        raise
    except AppError as exc:
        erase.mark_failed(int(ctx.params["erasure_id"]), exc.message)
        raise
    except Exception as exc:
        erase.mark_failed(int(ctx.params["erasure_id"]), f"{type(exc).__name__}: {exc}")
        raise


@job_handler(PURGE_KIND, title="Retention purge", max_attempts=3, origin=lambda p: ("Privacy", "/privacy"))
def purge_job(ctx: JobContext) -> dict[str, Any]:
    actor = Principal(ctx.created_by, str(ctx.params.get("actor") or "system"), Role.admin, via="job")
    return retention.purge(actor, dry_run=bool(ctx.params.get("dry_run"))).as_dict()


@periodic("privacy.retention", minute="40", hour="3")
def daily_retention() -> None:
    """Purge raw rows past their retention; nothing happens while both settings are 0."""
    tracker, hlr = retention.cutoffs()
    if tracker is None and hlr is None:
        return
    retention.purge(SYSTEM)
