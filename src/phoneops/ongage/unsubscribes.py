"""Ongage unsubscribes -> opt-outs (docs/optouts.md).

Ongage marks a contact that unsubscribed with `ocx_unsubscribe_date` (unix seconds; null while subscribed) on
`GET /<list_id>/api/contacts/by_email/<email>` (docs/providers/ongage.md, confirmed in Ongage's Contacts API
documentation). A job asks for each number we sent (conversions synced `sent`), within the account's rate limit,
and records those unsubscribed as `email_unsubscribe` opt-outs from source `ongage`, dated by Ongage. Progress
is committed every 200 numbers with a checkpoint (a killed worker resumes there); an outage parks the job.
Re-running is harmless: already opted out numbers are unchanged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope
from phoneops.core.errors import AppError
from phoneops.core.http import ProviderError, ProviderRateLimited, ProviderTimeout, ProviderUnavailable
from phoneops.core.jobs import JobContext, RetryLater, active_job_for, create_job, job_handler
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.numbers.optouts import OptOutEntry, record_optouts
from phoneops.numbers.vault import get_vault
from phoneops.ongage.provider import credentials, email_for, get_client, job_actor, sync_config
from phoneops.ongage.service_sync import sent_count, sent_numbers

KIND = "ongage.unsubscribes"
STEP = 200


def start_check(session: Session, actor: Principal) -> Job:
    """Queue the unsubscribe check (one at a time: a running one is returned)."""
    credentials()  # 503 naming the missing settings when Ongage is not configured
    running = active_job_for(session, KIND, "what", "unsubscribes")
    if running is not None:
        return running
    job = create_job(session, actor, KIND, {"what": "unsubscribes", "actor": actor.username},
                     title="Ongage unsubscribes -> opt-outs")
    audit(session, actor, "ongage.unsubscribes.check", "job", job.id, {})
    return job


def _unsubscribed_at(payload: dict[str, Any] | None) -> datetime | None:
    value = (payload or {}).get("ocx_unsubscribe_date")
    if value in (None, "", 0, "0"):
        return None
    try:
        return datetime.fromtimestamp(int(float(value)), UTC)
    except (TypeError, ValueError, OverflowError):
        return datetime.now(UTC)  # set but unreadable: it is still an unsubscribe


@job_handler(KIND, title="Ongage unsubscribes", max_attempts=10, origin=lambda p: ("Opt-outs", "/numbers/optouts"))
def check_job(ctx: JobContext) -> dict[str, Any]:
    actor = job_actor(ctx)
    config = sync_config()
    vault = get_vault()
    after = int(ctx.checkpoint.get("after", 0))
    counters: dict[str, int] = dict(ctx.checkpoint.get("counters") or {"checked": 0, "unsubscribed": 0,
                                                                         "recorded": 0, "not_found": 0})
    with session_scope() as session:
        total = sent_count(session)
    client = get_client()
    while True:
        with session_scope() as session:
            numbers = sent_numbers(session, after, STEP)
        if not numbers:
            break
        entries = []
        try:
            for _, index, sealed in numbers:
                e164 = vault.open(sealed, index)
                payload = client.get_contact(email_for(e164, config.email_pattern))
                counters["checked"] += 1
                if payload is None:
                    counters["not_found"] += 1
                    continue
                at = _unsubscribed_at(payload)
                if at is not None:
                    counters["unsubscribed"] += 1
                    entries.append(OptOutEntry(e164, "email_unsubscribe", "ongage", "Ongage contact unsubscribed", at))
        except (ProviderUnavailable, ProviderRateLimited, ProviderTimeout) as exc:
            raise RetryLater.outage(ctx, "Ongage", exc.message, exc.retry_after) from exc
        except ProviderError as exc:
            raise AppError(f"Ongage refused the unsubscribe check: {exc.message}") from exc
        with session_scope() as session:
            counters["recorded"] += record_optouts(session, actor, entries).recorded
            after = numbers[-1][0]
            ctx.step(session, checkpoint={"after": after, "counters": counters}, done=counters["checked"],
                     total=max(total, counters["checked"]), counters=dict(counters),
                     message=f"{counters['checked']:,} contacts checked, {counters['unsubscribed']:,} unsubscribed")
    ctx.progress(done=counters["checked"], total=counters["checked"], counters=dict(counters),
                 message=f"{counters['checked']:,} contacts checked, {counters['recorded']:,} new opt-outs")
    return counters
