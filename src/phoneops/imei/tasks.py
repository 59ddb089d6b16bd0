"""Background work of the IMEI domain: the batch job, the on-demand sync job, the periodic status sync."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import func, select

from phoneops.core.db import session_scope, utcnow
from phoneops.core.http import ProviderError, ProviderRateLimited, ProviderTimeout, ProviderUnavailable
from phoneops.core.jobs import JobContext, RetryLater, job_handler, periodic
from phoneops.imei.models import ImeiOrder
from phoneops.imei.placing import run_batch
from phoneops.imei.provider import as_app_error, is_configured, provider_label
from phoneops.imei.submission import BATCH_KIND
from phoneops.imei.sync import count_open, sync_open_orders
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.imei.tasks")

SYNC_KIND = "imei.sync"


@job_handler(BATCH_KIND, title="IMEI batch", max_attempts=25,
             origin=lambda p: (f"IMEI batch {p['batch_id']}", f"/imei/batches/{int(p['batch_id'])}"))
def batch_job(ctx: JobContext) -> dict[str, Any]:
    return run_batch(ctx)


@job_handler(SYNC_KIND, title="IMEI status sync", origin=lambda p: ("Devices", "/imei"))
def sync_job(ctx: JobContext) -> dict[str, Any]:
    with session_scope() as session:
        total = count_open(session)
        ctx.step(session, total=total, done=0, message=f"refreshing {total} open orders")
    try:
        return sync_open_orders(progress=lambda done, counts: ctx.progress(done=done, counters=counts))
    except (ProviderUnavailable, ProviderTimeout, ProviderRateLimited) as exc:  # down: wait, then sync again
        raise RetryLater.outage(ctx, provider_label(exc), exc.message, exc.retry_after) from None
    except ProviderError as exc:
        raise as_app_error(exc) from None


@periodic("imei.status_sync", minute="*/5")
def status_sync_tick() -> None:
    """Every 5 minutes (or IMEI_SYNC_INTERVAL_MINUTES when longer): refresh Pending / In Process orders."""
    settings = get_settings()
    if not is_configured(settings):
        return
    if settings.imei_sync_interval_minutes > 5:
        with session_scope() as session:
            last = session.scalar(select(func.max(ImeiOrder.synced_at)))
        if last is not None and utcnow() - last < timedelta(minutes=settings.imei_sync_interval_minutes - 1):
            return
    try:
        sync_open_orders()
    except ProviderError as exc:
        log.warning("imei.periodic_sync_failed", error=exc.message)
        raise
