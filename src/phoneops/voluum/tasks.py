"""Background work of the Voluum domain.

Jobs: traffic sync (`voluum.traffic`, one committed step per day), conversions over a range of days
(`voluum.conversions`), smart cleaning (`voluum.smart_clean`) and REG search (`voluum.reg_search`).
Periodic: conversions every 5 minutes over an overlapping window, and yesterday's traffic every day at 04:10
UTC (both do nothing while Voluum is not configured).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy import select

from phoneops.cleaning.filters import Filter, KeyedSource, register
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import AppError
from phoneops.core.jobs import ACTIVE, JobContext, job_handler, periodic
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.voluum import conversions, reclassify, smart, traffic
from phoneops.voluum.models import Conversion
from phoneops.voluum.provider import is_configured

log = structlog.get_logger("phoneops.voluum.tasks")

# List cleaning's "converted" filter: numbers that converted in Voluum are removed on request.
register(Filter("converted", "Numbers that converted (Voluum)", "converted",
                KeyedSource("voluum_conversions", Conversion.__table__.c.blind_index), order=30))


@job_handler(traffic.KIND, title="Voluum traffic sync", max_attempts=10, origin=lambda p: ("Voluum", "/voluum"))
def traffic_job(ctx: JobContext) -> dict[str, Any]:
    return traffic.run_job(ctx)


@job_handler(conversions.KIND, title="Voluum conversions sync", max_attempts=10,
             origin=lambda p: ("Voluum", "/voluum"))
def conversions_job(ctx: JobContext) -> dict[str, Any]:
    return conversions.run_job(ctx)


@job_handler(smart.SMART_KIND, title="Smart cleaning (Voluum)", max_attempts=3,
             origin=lambda p: ("Smart cleaning", "/voluum/smart"))
def smart_clean_job(ctx: JobContext) -> dict[str, Any]:
    return smart.run_smart_clean(ctx)


@job_handler(smart.REG_KIND, title="REG search", max_attempts=3, origin=lambda p: ("REG search", "/voluum/smart"))
def reg_search_job(ctx: JobContext) -> dict[str, Any]:
    return smart.run_reg_search(ctx)


@periodic("voluum.conversions", minute="*/5")
def conversions_tick() -> None:
    """Every 5 minutes: conversions from an hour before the current hour to its end."""
    conversions.periodic_sync()


@periodic("voluum.traffic_daily", minute="10", hour="4")
def traffic_daily_tick() -> None:
    """Every day at 04:10 UTC: queue yesterday's traffic sync (unless one is already running)."""
    if not is_configured():
        return
    yesterday = (utcnow() - timedelta(days=1)).date()
    with session_scope() as session:
        if session.scalar(select(Job.id).where(Job.kind == traffic.KIND, Job.status.in_(ACTIVE)).limit(1)):
            log.info("voluum.traffic_daily.skipped", reason="a traffic sync is running")
            return
        try:
            traffic.start_sync(session, SYSTEM, yesterday)
        except AppError as exc:
            log.warning("voluum.traffic_daily.failed", error=exc.message)


@job_handler(reclassify.KIND, title="Re-evaluate numbers under the OS rules", max_attempts=5,
             origin=lambda p: ("OS rules", "/numbers/rules"))
def reclassify_job(ctx: JobContext) -> dict[str, Any]:
    return reclassify.run_job(ctx)
