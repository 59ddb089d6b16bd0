"""MessageWhiz unsubscribers -> opt-outs (docs/optouts.md; wire format: docs/providers/messagewhiz_unsubscribers.md).

A job reads every enabled unsubscribe list of the account, page by page, and records each member as an
`sms_stop` opt-out from source `messagewhiz` (numbers.optouts.record_optouts, set-based), 5,000 at a time,
each batch committed with the job's progress. Numbers MessageWhiz writes without `+` are read as international;
a value that is not a valid number is counted and skipped. Re-running is harmless (already opted out: unchanged;
an opt-out an admin lifted comes back only if MessageWhiz dates it after the lift). A provider outage parks the
job (`RetryLater`), a refused key fails it. An hourly tick queues it when MessageWhiz is configured.
"""

from __future__ import annotations

from typing import Any

import structlog
from sqlalchemy.orm import Session

from phoneops.broadcasts.provider import get_client, is_configured, job_actor, park_or_fail
from phoneops.core.audit import audit
from phoneops.core.db import session_scope
from phoneops.core.errors import AppError
from phoneops.core.http import ProviderError
from phoneops.core.jobs import JobContext, active_job_for, create_job, job_handler, periodic
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM, Principal
from phoneops.numbers.normalize import normalize_column
from phoneops.numbers.optouts import OptOutEntry, record_optouts
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.broadcasts.unsubscribers")

KIND = "broadcasts.unsubscribers"
BATCH = 5000


def start_sync(session: Session, actor: Principal) -> Job:
    """Queue a sync of MessageWhiz unsubscribers (one at a time: a running one is returned)."""
    from phoneops.broadcasts.provider import credentials

    credentials()  # 503 naming the missing setting when MessageWhiz is not configured
    running = active_job_for(session, KIND, "what", "unsubscribers")
    if running is not None:
        return running
    job = create_job(session, actor, KIND, {"what": "unsubscribers", "actor": actor.username},
                     title="MessageWhiz unsubscribers -> opt-outs")
    audit(session, actor, "broadcasts.unsubscribers.sync", "job", job.id, {})
    return job


def _record(ctx: JobContext, actor: Principal, batch: list[tuple[str, Any]], list_name: str,
            counters: dict[str, int]) -> None:
    region = get_settings().default_region
    frame = normalize_column(["+" + raw.lstrip("+") if raw.lstrip("+").isdigit() else raw for raw, _ in batch],
                             region)
    entries = []
    for (_, at), e164 in zip(batch, frame["e164"].to_list(), strict=True):
        if e164 is None:
            counters["invalid"] += 1
        else:
            entries.append(OptOutEntry(e164, "sms_stop", "messagewhiz", f"unsubscribe list {list_name}"[:200], at))
    with session_scope() as session:
        result = record_optouts(session, actor, entries)
        counters["recorded"] += result.recorded
        counters["already"] += result.already
        counters["kept_lifted"] += result.kept_lifted
        counters["members"] += len(batch)
        ctx.step(session, done=counters["members"], counters=dict(counters),
                 message=f"{counters['members']:,} unsubscribers read, {counters['recorded']:,} new opt-outs")


@job_handler(KIND, title="MessageWhiz unsubscribers", max_attempts=10,
             origin=lambda p: ("Opt-outs", "/numbers/optouts"))
def sync_job(ctx: JobContext) -> dict[str, Any]:
    actor = job_actor(ctx)
    counters = {"lists": 0, "members": 0, "recorded": 0, "already": 0, "kept_lifted": 0, "invalid": 0}
    try:
        client = get_client()
        for unsubscribe_list in client.unsubscribe_lists():
            if not unsubscribe_list.enabled:
                continue
            counters["lists"] += 1
            batch: list[tuple[str, Any]] = []
            for member in client.iter_unsubscribers(unsubscribe_list.id):
                batch.append((member.phone_number, member.created_at))
                if len(batch) >= BATCH:
                    _record(ctx, actor, batch, unsubscribe_list.name, counters)
                    batch = []
            if batch:
                _record(ctx, actor, batch, unsubscribe_list.name, counters)
    except ProviderError as exc:
        raise park_or_fail(ctx, exc) from exc
    ctx.progress(done=counters["members"], total=counters["members"], counters=dict(counters),
                 message=f"{counters['lists']} lists, {counters['members']:,} unsubscribers, "
                         f"{counters['recorded']:,} new opt-outs")
    return counters


@periodic("broadcasts.unsubscribers", minute="23")
def hourly_tick() -> None:
    """Every hour: queue the unsubscribers sync when MessageWhiz is configured."""
    if not is_configured():
        return
    with session_scope() as session:
        try:
            start_sync(session, SYSTEM)
        except AppError as exc:
            log.warning("broadcasts.unsubscribers.failed", error=exc.message)
