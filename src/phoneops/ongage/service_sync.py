# Over 400 lines: the conversion sync's claim/send/settle protocol, kept together.
"""Converted numbers sent to Ongage as contacts, each marked from its own result.

- Enrolment (set-based): every stored conversion of the configured countries (`ONGAGE_COUNTRIES`, default
  GB) from the last `LOOKBACK_DAYS` without a sync row gets one, `pending`.
- A run claims what is due (pending, or failed whose back-off has passed) with a lease, so two runs (the
  periodic tick and a manual job, or two workers) never send the same contact at once.
- The number comes from the number core (blind index -> sealed number, opened here only); a conversion
  without one is `invalid` (shown, never retried). Conversions of one number in one run make one contact
  whose fields are merged in postback order (a REG then its FTD: the FTD's fields win, both dates kept).
- Contacts go in batches (default 500) through one client per process: at most 300 calls a minute and 10
  at once. Each batch's answer is recorded in its own transaction as it arrives: a contact is `sent` when
  Ongage created, updated or revived it; a 412 partial failure marks only the contacts Ongage names as
  failed (the original marked everything sent on one success). A batch that fails as a whole fails each of
  its contacts, except a refused login, which stops the run and counts no attempt.
- A failed contact is retried after 1, 2, 4, 8, 16 ... minutes, up to the retry limit (default 5), then it
  is `gave_up` and shown until someone re-queues it.

An upsert with `overwrite: true` is idempotent at Ongage, so a contact sent twice after a crash is harmless.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import structlog
from sqlalchemy import Select, func, literal, or_, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import rowcount, session_scope, utcnow
from phoneops.core.errors import Conflict, ValidationFailed
from phoneops.core.http import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from phoneops.core.jobs import JobContext, RetryLater, active_job_for, create_job
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.numbers.optouts import opted_out as _opted_out
from phoneops.numbers.queries import count_among, numbers_among, sealed_by_index
from phoneops.numbers.vault import get_vault, mask
from phoneops.ongage.client import MAX_PARALLEL, ContactResult, OngageClient
from phoneops.ongage.models import OngageConversion, OngageSyncRun
from phoneops.ongage.provider import (
    SyncConfig,
    backoff,
    country_name,
    credentials,
    email_for,
    get_client,
    is_configured,
    sync_config,
)
from phoneops.settings import get_settings
from phoneops.voluum.queries import ConversionRecord, blind_indexes_of, conversions_by_id, conversions_since

log = structlog.get_logger("phoneops.ongage.sync")

KIND = "ongage.conversions"
LOOKBACK_DAYS = 30  # conversions older than this are not enrolled (a first run does not flood the list)
CLAIM_SECONDS = 900  # a claim older than this is free again (its run died)
MAX_PER_RUN = 20_000
CHUNK = 1000
STATUSES = ("pending", "sent", "failed", "gave_up", "invalid")
NO_NUMBER = "the conversion carries no phone number"
NOT_STORED = "the number is not in the number store"


@dataclass
class RunResult:
    enrolled: int = 0
    contacts: int = 0
    calls: int = 0
    sent: int = 0
    failed: int = 0
    gave_up: int = 0
    invalid: int = 0
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the contact of a conversion ------------------------------------------------------------------------


def _stamp(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S") if moment is not None else ""


def _raw(conversion: ConversionRecord, key: str) -> str:
    value = (conversion.raw or {}).get(key)
    return "" if value is None else str(value)


def contact_fields(conversion: ConversionRecord, phone: str, currency: str) -> dict[str, Any]:
    """The reference's field set for one conversion (`phone` = the number's digits, no `+`)."""
    ftd = conversion.kind == "FTD"
    country = conversion.country or ""
    fields: dict[str, Any] = {
        "mobile": phone, "country": country_name(country), "ip": _raw(conversion, "ip"),
        "language": _raw(conversion, "language"), "source": f"{country}_{conversion.kind}",
        "conversion_type": conversion.kind, "is_ftd": "true" if ftd else "false", "click_id": conversion.click_id,
        "campaign_name": conversion.campaign_name, "campaign_id": conversion.campaign_id,
        "offer_name": conversion.offer_name, "lander_name": _raw(conversion, "landerName"),
        "traffic_source_id": conversion.traffic_source_id,
        "traffic_source_name": _raw(conversion, "trafficSourceName"), "transaction_id": conversion.transaction_id,
        "device_type": _raw(conversion, "device"), "os": _raw(conversion, "os"),
        "browser": _raw(conversion, "browser"), "currency": currency, "external_id": _raw(conversion, "externalId"),
        "custom_var_1": phone, "custom_var_2": _raw(conversion, "customVariable2"),
        "custom_var_3": _raw(conversion, "customVariable3"), "offer_id": conversion.offer_id, "country_code": country,
        "conversion_date": _stamp(conversion.postback_at), "visit_timestamp": _stamp(conversion.visit_at),
    }
    if ftd:
        fields["revenue"] = format((conversion.revenue or Decimal(0)).normalize(), "f")
        fields["ftd_date"] = _stamp(conversion.postback_at)
    else:
        fields["registration_date"] = _stamp(conversion.postback_at)
    return fields


@dataclass
class Contact:
    email: str
    fields: dict[str, Any]
    ids: list[int] = field(default_factory=list)  # OngageConversion ids it carries

    def body(self) -> dict[str, Any]:
        return {"email": self.email, "fields": self.fields}


# --- enrolment and claims ---------------------------------------------------------------------------------


def _insert(session: Session) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(OngageConversion)


def enroll(session: Session, countries: Sequence[str], since: datetime, now: datetime | None = None) -> int:
    """Give every conversion of `countries` since `since` without a sync row a `pending` one (set-based)."""
    if not countries:
        return 0
    now = now or utcnow()
    recent = conversions_since(countries, since).subquery()
    source = (
        select(recent.c.id, recent.c.country, recent.c.kind, literal("pending"), literal(0), literal(now), literal(now))
        .outerjoin(OngageConversion, OngageConversion.conversion_id == recent.c.id)
        .where(OngageConversion.id.is_(None))
    )
    statement = _insert(session).from_select(
        ["conversion_id", "country", "kind", "status", "attempts", "created_at", "updated_at"], source
    ).on_conflict_do_nothing(index_elements=["conversion_id"]).returning(OngageConversion.id)
    added = len(session.execute(statement).all())
    session.flush()
    return added


def _due(now: datetime) -> Any:
    stale = now - timedelta(seconds=CLAIM_SECONDS)
    free = or_(OngageConversion.claimed_at.is_(None), OngageConversion.claimed_at < stale)
    waited = or_(OngageConversion.next_attempt_at.is_(None), OngageConversion.next_attempt_at <= now)
    return (OngageConversion.status.in_(("pending", "failed"))) & waited & free


def due_count(session: Session, now: datetime | None = None) -> int:
    return int(session.scalar(select(func.count(OngageConversion.id)).where(_due(now or utcnow()))) or 0)


def claim(session: Session, token: str, now: datetime, limit: int = MAX_PER_RUN) -> list[int]:
    """Take what is due (oldest first) for this run; rows another run took meanwhile are left to it."""
    ids = list(session.scalars(select(OngageConversion.id).where(_due(now)).order_by(OngageConversion.id).limit(limit)))
    for batch in _chunks(ids, CHUNK):
        session.execute(update(OngageConversion).where(OngageConversion.id.in_(batch), _due(now))
                        .values(claimed_by=token, claimed_at=now))
    session.flush()
    return list(session.scalars(select(OngageConversion.id).where(OngageConversion.claimed_by == token)
                                .order_by(OngageConversion.id)))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def build_contacts(session: Session, ids: Sequence[int], config: SyncConfig, now: datetime,
                   result: RunResult) -> list[Contact]:
    """The claimed conversions as contacts (one per number, fields merged in postback order); those without
    a number are marked `invalid` here."""
    vault = get_vault()
    currency = get_settings().voluum_currency
    found: list[tuple[OngageConversion, ConversionRecord]] = []
    for batch in _chunks(ids, CHUNK):  # a query for the sync rows and one for their conversions, per batch
        syncs = list(session.scalars(select(OngageConversion).where(OngageConversion.id.in_(batch))))
        conversions = conversions_by_id(session, [s.conversion_id for s in syncs])
        found.extend((s, conversions[s.conversion_id]) for s in syncs if s.conversion_id in conversions)
    found.sort(key=lambda item: (item[1].postback_at or item[1].synced_at, item[1].id))
    indexes = [c.blind_index for _, c in found if c.blind_index is not None]
    suppressed = _opted_out(session, indexes)
    stored = sealed_by_index(session, indexes)
    contacts: dict[str, Contact] = {}
    for sync, conversion in found:
        sealed = stored.get(conversion.blind_index) if conversion.blind_index is not None else None
        if conversion.blind_index is not None and conversion.blind_index in suppressed:
            # an opted-out number is never (re-)added to Ongage: shown as invalid, never retried
            sync.status, sync.last_error = "invalid", f"opted out ({suppressed[conversion.blind_index]}): not sent"
            sync.claimed_by, sync.claimed_at, sync.attempts = None, None, sync.attempts + 1
            result.invalid += 1
            continue
        if conversion.blind_index is None or sealed is None:
            sync.status, sync.last_error = "invalid", NO_NUMBER if conversion.blind_index is None else NOT_STORED
            sync.claimed_by, sync.claimed_at, sync.attempts = None, None, sync.attempts + 1
            result.invalid += 1
            continue
        e164 = vault.open(sealed, conversion.blind_index)
        email = email_for(e164, config.email_pattern)
        contact = contacts.setdefault(email.lower(), Contact(email=email, fields={}))
        contact.fields.update(contact_fields(conversion, e164.lstrip("+"), currency))
        contact.ids.append(sync.id)
    session.flush()
    return list(contacts.values())


# --- recording answers ------------------------------------------------------------------------------------


def record(session: Session, contacts: Sequence[Contact], results: Sequence[ContactResult | str], config: SyncConfig,
           now: datetime, result: RunResult) -> None:
    """Mark each contact's conversions from its own result (`str`: the whole call failed with that error)."""
    rows = {r.id: r for batch in _chunks([i for c in contacts for i in c.ids], CHUNK)
            for r in session.scalars(select(OngageConversion).where(OngageConversion.id.in_(batch)))}
    for contact, outcome in zip(contacts, results, strict=True):
        ok = isinstance(outcome, ContactResult) and outcome.ok
        error = outcome if isinstance(outcome, str) else (outcome.error or outcome.outcome or "failed")
        for row_id in contact.ids:
            row = rows[row_id]
            row.attempts += 1
            row.claimed_by, row.claimed_at = None, None
            if ok and isinstance(outcome, ContactResult):
                row.status, row.sent_at, row.last_error, row.next_attempt_at = "sent", now, None, None
                row.outcome, row.contact_id = outcome.outcome, outcome.contact_id
                result.sent += 1
            elif row.attempts >= config.retry_limit:
                row.status, row.last_error, row.next_attempt_at = "gave_up", error[:2000], None
                result.gave_up += 1
            else:
                row.status, row.last_error = "failed", error[:2000]
                row.next_attempt_at = now + backoff(row.attempts)
                result.failed += 1
    session.flush()


def release(session: Session, token: str) -> None:
    session.execute(update(OngageConversion).where(OngageConversion.claimed_by == token)
                    .values(claimed_by=None, claimed_at=None))


# --- a run ------------------------------------------------------------------------------------------------

Progress = Callable[[RunResult, int], None]


def run_sync(
    trigger: str = "manual",
    *,
    config: SyncConfig | None = None,
    client: OngageClient | None = None,
    now: datetime | None = None,
    job_id: str | None = None,
    progress: Progress | None = None,
    max_parallel: int = MAX_PARALLEL,
) -> OngageSyncRun:
    """One pass: enrol, claim what is due, send it in parallel batches, record each answer as it arrives."""
    config = config or sync_config()
    client = client or get_client()
    now = now or utcnow()
    token = uuid.uuid4().hex
    result = RunResult()
    with session_scope() as session:
        run = OngageSyncRun(trigger=trigger, job_id=job_id, started_at=now)
        session.add(run)
        result.enrolled = enroll(session, config.countries, now - timedelta(days=LOOKBACK_DAYS), now)
        session.flush()
        run_id = run.id
    with session_scope() as session:
        ids = claim(session, token, now)
    with session_scope() as session:
        contacts = build_contacts(session, ids, config, now, result)
    result.contacts = len(contacts)
    batches = [contacts[i : i + config.batch_size] for i in range(0, len(contacts), config.batch_size)]
    if progress is not None:
        progress(result, len(batches))
    lock = threading.Lock()
    outage: list[ProviderError] = []

    def send(batch: list[Contact]) -> None:
        if result.error is not None or outage:
            return
        try:
            answers: list[ContactResult | str] = list(client.upsert_contacts([c.body() for c in batch]))
        except ProviderAuthError as exc:
            result.error = exc.message
            return
        except (ProviderUnavailable, ProviderTimeout, ProviderRateLimited) as exc:
            # Ongage failing or down (after the kit's retries): not an attempt of these contacts, which stay
            # due (released below); the run stops sending and the caller waits for Ongage.
            outage.append(exc)
            return
        except ProviderError as exc:
            answers = [f"the call failed: {exc.message}"] * len(batch)
        with lock:  # one writer at a time: the counters and SQLite stay consistent
            with session_scope() as session:
                record(session, batch, answers, config, now, result)
                result.calls += 1
            if progress is not None:
                progress(result, len(batches))

    try:
        with ThreadPoolExecutor(max_workers=max(1, min(max_parallel, MAX_PARALLEL)),
                                thread_name_prefix="ongage-sync") as pool:
            list(pool.map(send, batches))
    finally:
        with session_scope() as session:
            release(session, token)  # what was not answered (auth refused, crash) is due again
            stored = session.get(OngageSyncRun, run_id)
            assert stored is not None
            run = stored
            for key in ("enrolled", "contacts", "calls", "sent", "failed", "gave_up", "invalid", "error"):
                setattr(run, key, getattr(result, key))
            run.status, run.finished_at = ("failed" if result.error or outage else "succeeded"), utcnow()
            if outage and not result.error:
                run.error = f"Ongage unavailable: {outage[0].message}"[:2000]
            session.flush()
            session.expunge(run)
    log.info("ongage.sync.done", trigger=trigger, **result.as_dict())
    if outage:
        raise outage[0]
    return run


def periodic_sync() -> OngageSyncRun | None:
    """The tick: nothing while Ongage is not configured or nothing is due and nothing new converted."""
    if not is_configured():
        return None
    config = sync_config()
    now = utcnow()
    with session_scope() as session:
        enrolled = enroll(session, config.countries, now - timedelta(days=LOOKBACK_DAYS), now)
        if not enrolled and not due_count(session, now):
            return None
    return run_sync("periodic", config=config, now=now)


# --- the manual job ---------------------------------------------------------------------------------------


def start_sync(session: Session, actor: Principal) -> Job:
    """Queue a sync run now (one at a time)."""
    credentials()
    running = active_job_for(session, KIND, "kind", "sync")
    if running is not None:
        raise Conflict(f"an Ongage sync is running already (job {running.id})", details={"job_id": running.id})
    job = create_job(session, actor, KIND, {"kind": "sync", "actor": actor.username}, title="Ongage conversion sync")
    audit(session, actor, "ongage.sync.start", "job", job.id, {})
    return job


def run_job(ctx: JobContext) -> dict[str, Any]:
    def progress(result: RunResult, batches: int) -> None:
        ctx.progress(done=result.calls, total=batches, counters=result.as_dict(),
                     message=f"{result.sent} sent, {result.failed + result.gave_up} failed")

    try:
        run = run_sync("manual", job_id=ctx.job_id, progress=progress)
    except (ProviderUnavailable, ProviderTimeout, ProviderRateLimited) as exc:
        raise RetryLater.outage(ctx, "Ongage", exc.message, exc.retry_after) from None
    if run.error:
        from phoneops.core.errors import UpstreamError

        raise UpstreamError(f"Ongage refused the call: {run.error}")
    summary: dict[str, Any] = {"run_id": run.id, "contacts": run.contacts}
    with session_scope() as session:  # a job that waited for Ongage made several runs: their totals
        runs = list(session.scalars(select(OngageSyncRun).where(OngageSyncRun.job_id == ctx.job_id)))
    for key in ("enrolled", "sent", "failed", "gave_up", "invalid"):
        summary[key] = sum(getattr(r, key) for r in runs)
    summary["runs"] = len(runs)
    return summary


# --- reading and fixing -----------------------------------------------------------------------------------


def counts(session: Session) -> dict[str, int]:
    found = dict(session.execute(select(OngageConversion.status, func.count(OngageConversion.id))
                                 .group_by(OngageConversion.status)).all())
    return {status: int(found.get(status, 0)) for status in STATUSES}


def recent_runs(session: Session, limit: int = 20) -> list[OngageSyncRun]:
    return list(session.scalars(select(OngageSyncRun).order_by(OngageSyncRun.id.desc()).limit(limit)))


@dataclass(frozen=True)
class Problem:
    id: int
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    kind: str
    country: str
    click_id: str
    campaign_name: str
    postback_at: datetime | None
    number: str  # masked
    key: str = ""  # the number's page address (`/numbers/n/{key}`), when the number core knows it


def problems(session: Session, statuses: Sequence[str] = ("failed", "gave_up", "invalid"), limit: int = 200
             ) -> list[Problem]:
    """Contacts that did not go through, newest first, the number masked."""
    bad = [s for s in statuses if s not in STATUSES]
    if bad:
        raise ValidationFailed(f"unknown status {bad[0]!r}; one of {', '.join(STATUSES)}")
    vault = get_vault()
    syncs = list(session.scalars(
        select(OngageConversion).where(OngageConversion.status.in_(list(statuses)))
        .order_by(OngageConversion.updated_at.desc(), OngageConversion.id.desc()).limit(max(1, min(limit, 5000)))
    ))
    conversions = conversions_by_id(session, [s.conversion_id for s in syncs])
    stored = sealed_by_index(session, [c.blind_index for c in conversions.values() if c.blind_index is not None])
    out = []
    for sync in syncs:
        conversion = conversions.get(sync.conversion_id)
        if conversion is None:  # deleted since (its sync row goes with it: ON DELETE CASCADE)
            continue
        sealed = stored.get(conversion.blind_index) if conversion.blind_index is not None else None
        number = mask(vault.open(sealed, conversion.blind_index)) if sealed and conversion.blind_index else ""
        out.append(Problem(sync.id, sync.status, sync.attempts, sync.last_error, sync.next_attempt_at, sync.kind,
                           sync.country, conversion.click_id, conversion.campaign_name, conversion.postback_at,
                           number, conversion.blind_index.hex() if number and conversion.blind_index else ""))
    return out


def requeue(session: Session, actor: Principal, ids: Sequence[int] | None = None) -> int:
    """Put given-up contacts (all, or `ids`) back in the queue with a fresh retry budget."""
    query = update(OngageConversion).where(OngageConversion.status == "gave_up")
    if ids:
        query = query.where(OngageConversion.id.in_(list(ids)))
    count = rowcount(session.execute(query.values(status="pending", attempts=0, next_attempt_at=None,
                                                  claimed_by=None, claimed_at=None)))
    audit(session, actor, "ongage.sync.requeue", "ongage_conversions", None,
          {"count": count, "ids": list(ids or [])[:50]})
    return count


# --- numbers we sent (the unsubscribe check asks Ongage about them) ---------------------------------------


def _sent() -> Select[Any]:
    """The blind indexes of the conversions sent to Ongage, as a subquery (the queries below are one each)."""
    return blind_indexes_of(select(OngageConversion.conversion_id).where(OngageConversion.status == "sent"))


def sent_numbers(session: Session, after: int, limit: int) -> list[tuple[int, bytes, bytes]]:
    """(phone number id, blind index, sealed) of the numbers with a conversion sent to Ongage, by number id."""
    return [(n.id, n.blind_index, n.sealed) for n in numbers_among(session, _sent(), after, limit)]


def sent_count(session: Session) -> int:
    return count_among(session, _sent())


def states_for_conversions(session: Session, conversion_ids: Sequence[int]) -> list[dict[str, Any]]:
    """Where each of these tracker conversions stands at Ongage (for a number's story page)."""
    if not conversion_ids:
        return []
    rows = session.scalars(
        select(OngageConversion).where(OngageConversion.conversion_id.in_(list(conversion_ids)))
        .order_by(OngageConversion.id)
    )
    return [{"conversion_id": r.conversion_id, "country": r.country, "kind": r.kind, "status": r.status,
             "attempts": r.attempts, "outcome": r.outcome, "last_error": r.last_error,
             "sent_at": r.sent_at.isoformat() if r.sent_at else None} for r in rows]
