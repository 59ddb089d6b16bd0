# Over 400 lines: the job protocol: leases, heartbeats, retries, outages, cancellation, one state machine.
"""Background jobs: the `jobs` row is the truth; Huey only carries "run job X" messages.

A job is created in the caller's transaction and enqueued after that transaction commits. A worker
claims it with a conditional UPDATE (lease owner + heartbeat), runs its handler, and settles it.
A worker that dies leaves a lease that stops beating; the reaper puts the job back on the queue and
the handler resumes from the checkpoint it committed with its last effects.
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from phoneops.core import access
from phoneops.core.db import after_commit, rowcount, session_scope, utcnow
from phoneops.core.errors import AppError, Conflict, NotFound
from phoneops.core.http import ProviderRateLimited, ProviderTimeout, ProviderUnavailable
from phoneops.core.models import AuditEvent, Job, PeriodicRun
from phoneops.core.security import Principal, Role
from phoneops.core.sorting import order_by

log = structlog.get_logger("phoneops.jobs")

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")


# A provider that stays down parks its jobs with a growing delay: FIRST, 2 x FIRST, ... up to MAX seconds
# (read at each park, so tests may lower them). A provider's Retry-After is honoured within MAX.
OUTAGE_FIRST_DELAY_SECONDS = 5.0
OUTAGE_MAX_DELAY_SECONDS = 60.0
OUTAGE_WAITS_KEY = "parked"  # consecutive parks and when the last one was, in the job's checkpoint
OUTAGE_SINCE_KEY = "parked_at"


def outage_delay(waits: int, retry_after: float | None = None) -> float:
    """Seconds to wait before the `waits`-th consecutive try of a job whose provider is unavailable."""
    grown = OUTAGE_FIRST_DELAY_SECONDS * 2 ** min(max(waits - 1, 0), 16)
    return float(min(OUTAGE_MAX_DELAY_SECONDS, max(grown, retry_after or 0.0)))


def _next_wait(checkpoint: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The number of this park (1 again when the last park is long past: a new outage) and the checkpoint
    recording it."""
    waits = int(checkpoint.get(OUTAGE_WAITS_KEY, 0) or 0)
    last = checkpoint.get(OUTAGE_SINCE_KEY)
    now = utcnow()
    try:
        stale = last is None or (now - datetime.fromisoformat(str(last))).total_seconds() > 3 * OUTAGE_MAX_DELAY_SECONDS
    except ValueError:
        stale = True
    waits = 1 if stale and waits else waits + 1
    return waits, {**checkpoint, OUTAGE_WAITS_KEY: waits, OUTAGE_SINCE_KEY: now.isoformat()}


class RetryLater(Exception):
    """Raised by a handler to park the job and resume it later (e.g. a provider is down).

    `reason` is shown to users (job message, JSON and pages) as "waiting — <reason>, next try at HH:MM:SS".
    The park does not count as an attempt.
    """

    def __init__(self, reason: str, delay_seconds: float = 60.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.delay_seconds = delay_seconds

    @classmethod
    def outage(cls, ctx: JobContext, provider: str, detail: str, retry_after: float | None = None) -> RetryLater:
        """Park `ctx`'s job while `provider` is unavailable, with the growing delay (`outage_delay`)."""
        waits, checkpoint = _next_wait(ctx.checkpoint)
        ctx.progress(checkpoint=checkpoint)
        return cls(f"{provider} unavailable: {detail}", outage_delay(waits, retry_after))


def waiting_message(reason: str, run_after: datetime) -> str:
    return f"waiting — {reason}, next try at {run_after:%H:%M:%S} UTC"


class LeaseLost(Exception):
    """Another worker owns this job now; stop without touching it."""


class JobCancelled(Exception):
    """The job was cancelled by a user; the handler stops at its next step."""


@dataclass
class JobContext:
    job_id: str
    kind: str
    params: dict[str, Any]
    checkpoint: dict[str, Any]
    worker: str
    created_by: int | None
    attempt: int
    lease_seconds: int

    def _guarded(self, session: Session, values: dict[str, Any]) -> None:
        values = {**values, "heartbeat_at": utcnow()}
        result = session.execute(
            update(Job)
            .where(Job.id == self.job_id, Job.lease_owner == self.worker, Job.status == "running")
            .values(**values)
        )
        if rowcount(result) != 1:
            current = session.get(Job, self.job_id)
            if current is not None and current.status == "cancelled":
                raise JobCancelled(self.job_id)
            raise LeaseLost(self.job_id)

    def step(
        self,
        session: Session,
        *,
        checkpoint: dict[str, Any] | None = None,
        done: int | None = None,
        total: int | None = None,
        counters: dict[str, Any] | None = None,
        message: str | None = None,
    ) -> None:
        """Record progress in `session` — commit it together with the step's own effects."""
        values: dict[str, Any] = {}
        if checkpoint is not None:
            self.checkpoint = checkpoint
            values["checkpoint"] = checkpoint
        if done is not None:
            values["progress_done"] = done
        if total is not None:
            values["progress_total"] = total
        if counters is not None:
            values["counters"] = counters
        if message is not None:
            values["message"] = message
        self._guarded(session, values)

    def progress(self, **kwargs: Any) -> None:
        """Record progress in its own short transaction."""
        with session_scope() as session:
            self.step(session, **kwargs)


Handler = Callable[[JobContext], dict[str, Any] | None]


@dataclass(frozen=True)
class JobSpec:
    kind: str
    handler: Handler
    title: str
    max_attempts: int = 10
    # False for work that must never stop half-way (a privacy erasure): cancelling it is refused; a
    # crashed or parked run resumes to completion instead
    cancellable: bool = True
    # Where a job of this kind comes from: its params -> (label, page path), shown on the job's page as a
    # link back (the HLR lookup, the IMEI batch, the cleaned file ...); None when it has no page of its own.
    origin: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None


@dataclass(frozen=True)
class PeriodicSpec:
    name: str
    handler: Callable[[], None]
    minute: str = "*"
    hour: str = "*"
    slot_format: str = "%Y-%m-%dT%H:%M"


_jobs: dict[str, JobSpec] = {}
_periodic: dict[str, PeriodicSpec] = {}


def job_handler(kind: str, *, title: str = "", max_attempts: int = 10, cancellable: bool = True,
                origin: Callable[[dict[str, Any]], tuple[str, str] | None] | None = None,
                ) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        _jobs[kind] = JobSpec(kind=kind, handler=fn, title=title or kind, max_attempts=max_attempts,
                              cancellable=cancellable, origin=origin)
        return fn

    return register


def job_origin(job: Job) -> tuple[str, str] | None:
    """(label, page path) of what started `job` (its kind's `origin`), or None."""
    spec = _jobs.get(job.kind)
    if spec is None or spec.origin is None:
        return None
    try:
        return spec.origin(dict(job.params or {}))
    except (KeyError, TypeError, ValueError):  # params of an older version: no link rather than an error
        return None


def finished_since(session: Session, user_id: int, since: datetime, *, limit: int = 5) -> list[Job]:
    """The user's jobs that ended (succeeded, failed or cancelled) after `since`, newest first."""
    return list(session.scalars(
        select(Job).where(Job.created_by == user_id, Job.status.in_(TERMINAL), Job.finished_at > since)
        .order_by(Job.finished_at.desc()).limit(limit)
    ))


def periodic(name: str, *, minute: str = "*", hour: str = "*") -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register a periodic task (cron fields); it runs once per schedule slot across all workers."""

    def register(fn: Callable[[], None]) -> Callable[[], None]:
        _periodic[name] = PeriodicSpec(name=name, handler=fn, minute=minute, hour=hour)
        return fn

    return register


def registered_jobs() -> dict[str, JobSpec]:
    return dict(_jobs)


def registered_periodic() -> dict[str, PeriodicSpec]:
    return dict(_periodic)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# --- creating and reading jobs -----------------------------------------------------------------


def create_job(
    session: Session,
    actor: Principal,
    kind: str,
    params: dict[str, Any] | None = None,
    *,
    title: str = "",
    total: int | None = None,
) -> Job:
    """Create a job in the caller's transaction; it is enqueued once that transaction commits."""
    if kind not in _jobs:
        raise NotFound(f"unknown job kind {kind!r}")
    job = Job(
        id=str(uuid.uuid4()),
        kind=kind,
        title=(title or _jobs[kind].title)[:200],
        params=params or {},
        created_by=actor.user_id,
        progress_total=total,
        counters={},
        checkpoint={},
        result={},
    )
    session.add(job)
    session.flush()
    job_id = job.id
    after_commit(session, lambda: enqueue(job_id))
    return job


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound(f"no job {job_id}")
    return job


def cancelled_run_seconds_left(job: Job | None) -> int | None:
    """Seconds during which a cancelled job's worker may still be inside a call, or None when none is left.

    A cancel ends the job at once, but its worker learns it only at its next step: a provider call already
    made is still answered to it, and it settles it. Until the run's lease (`JOB_LEASE_SECONDS`) would have
    run out, as long as a killed worker's wait, a new run of the same work could act on that call's intent
    too: callers refuse to start one meanwhile."""
    from phoneops.settings import get_settings

    if job is None or job.status != "cancelled" or job.finished_at is None:
        return None
    left = (job.finished_at + timedelta(seconds=get_settings().job_lease_seconds) - utcnow()).total_seconds()
    return max(1, math.ceil(left)) if left > 0 else None


def _job_filters(kind: str | None, status: str | None, user_id: int | None = None,
                 since: datetime | None = None, until: datetime | None = None) -> list[Any]:
    where: list[Any] = []
    if kind:
        where.append(Job.kind == kind)
    if status:
        where.append(Job.status.in_(status.split(",")))
    if user_id is not None:
        where.append(Job.created_by == user_id)
    if since is not None:
        where.append(Job.created_at >= since)
    if until is not None:
        where.append(Job.created_at < until)
    return where


JOB_SORTS = {"title": Job.title, "status": Job.status, "kind": Job.kind, "created": Job.created_at,
             "finished": Job.finished_at}
JOB_DEFAULT_SORT = "-created"


def list_jobs(
    session: Session, *, kind: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0,
    user_id: int | None = None, since: datetime | None = None, until: datetime | None = None,
    sort: str = JOB_DEFAULT_SORT,
) -> list[Job]:
    """Filtered jobs, sorted by a key of `JOB_SORTS` ("-" first for descending; ValidationFailed otherwise)."""
    query = (select(Job).where(*_job_filters(kind, status, user_id, since, until))
             .order_by(*order_by(sort, JOB_SORTS, Job.id)).limit(max(1, min(limit, 10_000))).offset(max(0, offset)))
    return list(session.scalars(query))


def count_jobs(
    session: Session, *, kind: str | None = None, status: str | None = None, user_id: int | None = None,
    since: datetime | None = None, until: datetime | None = None,
) -> int:
    where = _job_filters(kind, status, user_id, since, until)
    return int(session.scalar(select(func.count(Job.id)).where(*where)) or 0)


def job_kinds(session: Session) -> list[str]:
    return [str(k) for k in session.scalars(select(Job.kind).distinct().order_by(Job.kind))]


def job_counts(session: Session) -> dict[str, int]:
    rows = session.execute(select(Job.status, func.count(Job.id)).group_by(Job.status)).all()
    return {str(status): int(count) for status, count in rows}


def _already_ended(job: Job) -> Conflict:
    return Conflict(f"job {job.id} already ended ({job.status}): there is nothing to cancel")


def cancel_job(session: Session, actor: Principal, job_id: str) -> Job:
    """Cancel a queued or running job; its handler stops at its next step (`JobContext.step`). Written only
    while the job has not ended: a job that ended after this request read it (its worker's own conditional
    write) keeps its end and the cancel is refused, as for any ended job; one a worker claimed meanwhile is
    cancelled all the same (lease included)."""
    from phoneops.core.audit import audit

    job = get_job(session, job_id)
    check_cancel(actor, job.created_by, job.kind)
    if job.status in TERMINAL:
        raise _already_ended(job)
    cancelled = rowcount(session.execute(
        update(Job).where(Job.id == job.id, Job.status.in_(ACTIVE))
        .values(status="cancelled", finished_at=utcnow(), lease_owner=None)
        .execution_options(synchronize_session=False)
    ))
    session.expire(job)  # read again: as written, or as the job ended
    if cancelled != 1:
        raise _already_ended(job)
    audit(session, actor, "job.cancel", "job", job.id, {"kind": job.kind})
    return job


def check_cancel(actor: Principal, created_by: int | str | None, kind: str) -> None:
    """Only the user who started a job or an admin may cancel it (phoneops.core.access); kinds registered
    with cancellable=False (a privacy erasure) are never cancelled."""
    access.check(actor, access.Obj.job, access.Act.cancel, created_by)
    spec = _jobs.get(kind)
    if spec is not None and not spec.cancellable:
        raise Conflict(f"{spec.title!r} runs to completion (stopping half-way would leave it partly done); "
                       "it cannot be cancelled")


def active_job_for(session: Session, kind: str, key: str, value: Any) -> Job | None:
    """A queued/running job of `kind` whose params[key] == value (one-run-at-a-time checks)."""
    for job in session.scalars(select(Job).where(Job.kind == kind, Job.status.in_(ACTIVE))):
        if job.params.get(key) == value:
            return job
    return None


# --- running -----------------------------------------------------------------------------------


def _claim(job_id: str, worker: str) -> JobContext | None:
    now = utcnow()
    with session_scope() as session:
        job = session.get(Job, job_id)
        if job is None or job.status != "queued":
            return None
        if job.run_after is not None and job.run_after > now:
            return None
        spec = _jobs.get(job.kind)
        result = session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(
                status="running",
                lease_owner=worker,
                heartbeat_at=now,
                attempts=Job.attempts + 1,
                started_at=func.coalesce(Job.started_at, now),
                run_after=None,
            )
        )
        if rowcount(result) != 1:
            return None
        session.refresh(job)
        if spec is None:
            job.status, job.error, job.finished_at, job.lease_owner = "failed", f"unknown kind {job.kind}", now, None
            return None
        if job.attempts > spec.max_attempts:
            job.status, job.finished_at, job.lease_owner = "failed", now, None
            job.error = f"gave up after {spec.max_attempts} attempts (worker lost each time)"
            return None
        from phoneops.settings import get_settings

        return JobContext(
            job_id=job.id,
            kind=job.kind,
            params=dict(job.params),
            checkpoint=dict(job.checkpoint or {}),
            worker=worker,
            created_by=job.created_by,
            attempt=job.attempts,
            lease_seconds=get_settings().job_lease_seconds,
        )


def _settle(ctx: JobContext, **values: Any) -> None:
    with session_scope() as session:
        result = session.execute(
            update(Job)
            .where(Job.id == ctx.job_id, Job.lease_owner == ctx.worker, Job.status == "running")
            .values(lease_owner=None, **values)
        )
        settled = rowcount(result) == 1
        if settled and values.get("status") in ("succeeded", "failed"):
            _audit_end(session, ctx, str(values["status"]), values.get("error"), values.get("result"))
    if settled and values.get("status") in ("succeeded", "failed"):
        _tell_listeners(ctx, str(values["status"]), values.get("error"))


def _audit_end(session: Session, ctx: JobContext, status: str, error: Any, result: Any) -> None:
    """A job whose start was audited (a manual sync, a paid batch...) has its end audited too, in the same
    transaction as the end itself: `job.end` with the outcome, for the same actor (docs/operations.md)."""
    from phoneops.core.audit import audit

    created = session.scalar(select(Job.created_at).where(Job.id == ctx.job_id))
    if created is None:
        return
    near = timedelta(minutes=5)  # the start is audited in the job's creating transaction (the `at` index)
    start = session.execute(
        select(AuditEvent.actor_id, AuditEvent.actor, AuditEvent.action)
        .where(AuditEvent.at >= created - near, AuditEvent.at <= created + near, AuditEvent.target_type == "job",
               AuditEvent.target_id == ctx.job_id).order_by(AuditEvent.id).limit(1)
    ).first()
    if start is None:
        return
    summary = {k: v for k, v in (result or {}).items()
               if isinstance(v, bool | int | float) or (isinstance(v, str) and len(v) <= 200)}
    actor = Principal(user_id=start.actor_id, username=start.actor, role=Role.viewer, via="job")
    audit(session, actor, "job.end", "job", ctx.job_id,
          {"kind": ctx.kind, "started_by": start.action, "error": None if error is None else str(error)[:500],
           "result": summary}, outcome=status)


# --- job-end listeners (e.g. webhooks) ---------------------------------------------------------

EndListener = Callable[[Session, str, str, str, "str | None"], None]
_end_listeners: list[EndListener] = []


def on_job_end(listener: EndListener) -> EndListener:
    """Register `listener(session, job_id, kind, status, error)`, called once a job succeeded or failed.

    It runs in its own transaction after the job's end is committed: whatever it does or raises, the job's
    outcome stands (a listener's failure is logged, never the job's)."""
    _end_listeners.append(listener)
    return listener


def _tell_listeners(ctx: JobContext, status: str, error: Any) -> None:
    for listener in _end_listeners:
        try:
            with session_scope() as session:
                listener(session, ctx.job_id, ctx.kind, status, str(error) if error is not None else None)
        except Exception:
            log.exception("jobs.end_listener_failed", job_id=ctx.job_id, listener=getattr(listener, "__name__", "?"))


def _heartbeat(ctx: JobContext, stop: threading.Event) -> None:
    interval = max(1.0, ctx.lease_seconds / 3)
    while not stop.wait(interval):
        try:
            with session_scope() as session:
                session.execute(
                    update(Job)
                    .where(Job.id == ctx.job_id, Job.lease_owner == ctx.worker, Job.status == "running")
                    .values(heartbeat_at=utcnow())
                )
        except Exception:  # a missed beat is retried at the next interval
            log.warning("jobs.heartbeat_failed", job_id=ctx.job_id, exc_info=True)


def run_job(job_id: str, worker: str | None = None) -> str | None:
    """Run one job to its end (or until it parks). Returns the final status, None if not claimed."""
    worker = worker or worker_id()
    ctx = _claim(job_id, worker)
    if ctx is None:
        return None
    spec = _jobs[ctx.kind]
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(ctx, stop), daemon=True, name=f"heartbeat-{job_id[:8]}")
    beat.start()
    log.info("jobs.start", job_id=job_id, kind=ctx.kind, attempt=ctx.attempt, worker=worker)
    try:
        result = spec.handler(ctx)
    except RetryLater as exc:
        return _park(ctx, exc.reason, exc.delay_seconds)
    except (ProviderUnavailable, ProviderTimeout, ProviderRateLimited) as exc:
        # A temporary outage that escaped the handler: wait and resume from the last checkpoint (handlers
        # are crash-safe, so this is a resume like any other), never a failure.
        waits, checkpoint = _next_wait(ctx.checkpoint)
        delay = outage_delay(waits, exc.retry_after)
        return _park(ctx, f"{exc.provider} unavailable: {exc.message}", delay, checkpoint=checkpoint)
    except (LeaseLost, JobCancelled) as exc:
        log.info("jobs.stopped", job_id=job_id, reason=type(exc).__name__)
        return None
    except AppError as exc:
        _settle(ctx, status="failed", error=exc.message, finished_at=utcnow())
        log.info("jobs.failed", job_id=job_id, error=exc.message)
        return "failed"
    except Exception as exc:
        _settle(ctx, status="failed", error=f"internal error: {type(exc).__name__}: {exc}", finished_at=utcnow())
        log.exception("jobs.crashed", job_id=job_id)
        return "failed"
    finally:
        stop.set()
    _settle(ctx, status="succeeded", result=result or {}, finished_at=utcnow(), message=None)
    log.info("jobs.done", job_id=job_id, kind=ctx.kind)
    return "succeeded"


def _park(ctx: JobContext, reason: str, delay: float, **values: Any) -> str:
    """Back to `queued` until `delay` seconds from now, with the reason; the run is not an attempt."""
    run_after = utcnow() + timedelta(seconds=delay)
    message = waiting_message(reason, run_after)
    _settle(ctx, status="queued", run_after=run_after, message=message, attempts=Job.attempts - 1, **values)
    enqueue(ctx.job_id, delay=delay)
    log.info("jobs.parked", job_id=ctx.job_id, reason=reason, delay=delay)
    return "queued"


def reap_expired(now: datetime | None = None) -> list[str]:
    """Requeue running jobs whose lease stopped beating, and queued jobs whose message was lost."""
    from phoneops.settings import get_settings

    now = now or utcnow()
    lease = get_settings().job_lease_seconds
    expired = now - timedelta(seconds=lease)
    requeued: list[str] = []
    with session_scope() as session:
        stale = session.scalars(
            select(Job.id).where(Job.status == "running", Job.heartbeat_at < expired)
        ).all()
        for job_id in stale:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == "running", Job.heartbeat_at < expired)
                .values(status="queued", lease_owner=None, message="worker lost; resuming from checkpoint")
            )
            if rowcount(result) == 1:
                requeued.append(job_id)
        lost = session.scalars(
            select(Job.id).where(
                Job.status == "queued",
                Job.updated_at < expired,
                (Job.run_after.is_(None)) | (Job.run_after <= now),
            )
        ).all()
        for job_id in lost:
            session.execute(update(Job).where(Job.id == job_id).values(updated_at=now))
        requeued.extend(j for j in lost if j not in requeued)
    for job_id in requeued:
        enqueue(job_id)
    if requeued:
        log.info("jobs.reaped", count=len(requeued))
    return requeued


def run_periodic(name: str, when: datetime | None = None) -> bool:
    """Run periodic task `name` for the current slot unless another worker already took it."""
    spec = _periodic[name]
    slot = (when or utcnow()).strftime(spec.slot_format)
    me = worker_id()
    try:
        with session_scope() as session:
            session.add(PeriodicRun(name=name, slot=slot, worker=me))
    except IntegrityError:
        return False
    error: str | None = None
    try:
        spec.handler()
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("jobs.periodic_failed", name=name)
    with session_scope() as session:
        session.execute(
            update(PeriodicRun)
            .where(PeriodicRun.name == name, PeriodicRun.slot == slot)
            .values(finished_at=utcnow(), error=error)
        )
    return error is None


# --- the queue ---------------------------------------------------------------------------------

_enqueue_hook: Callable[[str, float | None], None] | None = None
_sender: Callable[[str, float | None], None] | None = None


def set_enqueue_hook(hook: Callable[[str, float | None], None] | None) -> None:
    """Replace how jobs reach workers (tests use it to run jobs inline)."""
    global _enqueue_hook
    _enqueue_hook = hook


def set_sender(send: Callable[[str, float | None], None]) -> None:
    """The queue's "run job X" sender (`phoneops.core.queue.send`), installed by the entry points through
    `phoneops.registry.load_domains()`: the queue runs jobs, so jobs must not import the queue."""
    global _sender
    _sender = send


def enqueue(job_id: str, delay: float | None = None) -> None:
    if _enqueue_hook is not None:
        _enqueue_hook(job_id, delay)
        return
    if _sender is None:  # a process that never loaded the domains: the reaper sends the job later
        log.error("jobs.no_queue", job_id=job_id, hint="call phoneops.registry.load_domains() at start-up")
        return
    try:
        _sender(job_id, delay)
    except Exception:  # the reaper re-sends queued jobs whose message never arrived
        log.warning("jobs.enqueue_failed", job_id=job_id, exc_info=True)


@dataclass
class Reaper:
    """A thread in each worker process that requeues jobs of dead workers."""

    interval: float
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._loop, daemon=True, name="job-reaper").start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                reap_expired()
            except Exception:
                log.warning("jobs.reaper_failed", exc_info=True)

    def stop(self) -> None:
        self._stop.set()


def wait_for(job_id: str, timeout: float = 60.0, poll: float = 0.2) -> Job:
    """Block until a job reaches a terminal state (CLI and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        with session_scope() as session:
            job = get_job(session, job_id)
            if job.status in TERMINAL or time.monotonic() > deadline:
                session.expunge(job)
                return job
        time.sleep(poll)
