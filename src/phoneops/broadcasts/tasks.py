"""Background work of the broadcasts domain.

Job `broadcasts.import_day`: import one day (one committed step, with its checkpoint), then push the day's
costs to Voluum (a second step; skipped with a message while Voluum is not configured). A worker killed in
between resumes at the cost push; a provider that is down parks the job (`RetryLater`), and so does a day with
no exchange rate while the currencies differ (docs/money.md): the job waits, saying so, until an admin sets it.
Periodic: every day at 05:00 UTC, yesterday's import and cost push (nothing while MessageWhiz is not
configured; skipped when that day is being imported already).
"""

from __future__ import annotations

from datetime import date
from typing import Any

import structlog

from phoneops.broadcasts import costs, days, unsubscribers  # noqa: F401  (unsubscribers: its job and tick)
from phoneops.broadcasts.money import RateMissing
from phoneops.broadcasts.provider import is_configured, job_actor, park_or_fail, parse_day, yesterday
from phoneops.core.db import session_scope
from phoneops.core.errors import AppError
from phoneops.core.http import ProviderError
from phoneops.core.jobs import JobContext, RetryLater, active_job_for, job_handler, periodic
from phoneops.core.security import SYSTEM

log = structlog.get_logger("phoneops.broadcasts.tasks")

RATE_WAIT_SECONDS = 600.0  # a push waiting for its day's exchange rate looks again this often


@job_handler(days.KIND, title="Broadcast day import", max_attempts=10,
             origin=lambda p: (f"Broadcasts of {p['day']}", f"/broadcasts/days/{date.fromisoformat(p['day'])}"))
def import_day_job(ctx: JobContext) -> dict[str, Any]:
    day = parse_day(ctx.params["day"])
    actor = job_actor(ctx)
    push = bool(ctx.params.get("push_costs", True))
    total = 2 if push else 1
    imported: dict[str, Any] | None = ctx.checkpoint.get("imported")
    if imported is None:
        try:
            with session_scope() as session:
                imported = days.import_day(session, actor, day, job_id=ctx.job_id).as_dict()
                ctx.step(session, checkpoint={**ctx.checkpoint, "imported": imported}, done=1, total=total,
                         counters={"broadcasts": imported["broadcasts"], "with_notes": imported["with_notes"]},
                         message=f"{imported['broadcasts']} broadcasts, {imported['with_notes']} with a note")
        except ProviderError as exc:
            raise park_or_fail(ctx, exc) from exc
    result: dict[str, Any] = {"day": day.isoformat(), **{k: imported[k] for k in (
        "broadcasts", "with_notes", "campaigns", "cost", "unattributed_cost", "voluum", "csv_file_id",
        "xlsx_file_id")}}
    if not push:
        return result
    from phoneops.voluum.provider import is_configured as voluum_configured

    if not voluum_configured():
        ctx.progress(done=total, message="Voluum is not configured: costs not pushed")
        return {**result, "costs": "Voluum is not configured: costs not pushed"}
    try:
        with session_scope() as session:
            try:  # a day with costs to push and no rate waits for an admin's rate rather than guess one
                pushed = costs.push_day_costs(session, actor, day)
            except RateMissing as exc:
                raise RetryLater(exc.message, RATE_WAIT_SECONDS) from exc
            outcome = costs.summary(pushed)
            ctx.step(session, done=total, counters={**(ctx.checkpoint.get("counters") or {}), **outcome},
                     message=f"costs: {outcome['sent']} sent, {outcome['unchanged']} unchanged, "
                             f"{outcome['failed']} failed")
    except ProviderError as exc:
        raise park_or_fail(ctx, exc) from exc
    return {**result, "costs": outcome}


@periodic("broadcasts.daily", minute="0", hour="5")
def daily_tick() -> None:
    """Every day at 05:00 UTC: queue yesterday's import and cost push."""
    if not is_configured():
        return
    day = yesterday()
    with session_scope() as session:
        if active_job_for(session, days.KIND, "day", day.isoformat()) is not None:
            log.info("broadcasts.daily.skipped", day=str(day), reason="already being imported")
            return
        try:
            days.start_import(session, SYSTEM, day, push_costs=True)
        except AppError as exc:
            log.warning("broadcasts.daily.failed", day=str(day), error=exc.message)
