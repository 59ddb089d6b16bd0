# Over 400 lines: the paced, resumable CSV worker and its job rows, one protocol.
"""Ongage CSV jobs: an uploaded CSV of contacts sent to Ongage at a chosen pace by a resumable worker.

- Upload: the header must hold the original's columns (List_ID, Email, Country, Source, Mobile,
  conversion_type, Original_source, HLR_Status, Uuid; matched loosely: case, spaces and underscores aside).
  A file missing one, or without a row, is refused and leaves nothing behind (no job, no rows, no file).
  Rows are stored as given; a row without an email is stored as failed at once.
- Pace: every `interval_seconds`, between `lower_limit` and `upper_limit` rows (a random count in that range)
  are sent, in calls of at most `batch_size` contacts, grouped by List_ID (empty: the configured list).
- States: draft -> running (start) <-> paused (pause / resume) -> done (the worker, when no row is left);
  cancelled from any state but done and cancelled; failed when Ongage refuses our login (resume retries).
  Any other move is refused with 409.
- The worker is a background job (`ongage.csv_job`) carrying one CSV job (`worker_job_id`). Before a call,
  its rows are committed as `sending` with a send id; after it, each row is marked from its own result
  (`sent`, or `failed` with Ongage's reason). A worker killed between the two leaves `sending` rows: the next
  worker asks Ongage for each of them (`by_email`) and marks those it has `sent` instead of sending them
  again, so an accepted contact reaches Ongage once. Ongage down: the rows go back to `pending` (or stay
  `sending` when the call may have reached it) and the worker parks and comes back (`RetryLater`).
- Pausing or cancelling takes effect between two calls; the worker's job then ends and resume starts a new
  one (or lets the running one go on when it has not ended yet).
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.csvio import TableError, csv_lines, iter_rows, normalise_header, sniff_table
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import Conflict, NotFound, ValidationFailed
from phoneops.core.http import ProviderAuthError, ProviderError
from phoneops.core.jobs import TERMINAL, JobContext, RetryLater, check_cancel, create_job
from phoneops.core.models import Job, StoredFile
from phoneops.core.security import Principal
from phoneops.core.storage import get_storage
from phoneops.numbers.optouts import opted_out_raw
from phoneops.ongage.client import DEFAULT_MAX_BATCH, ContactResult
from phoneops.ongage.models import OngageCsvJob, OngageCsvRow
from phoneops.ongage.provider import account_limiter, credentials, get_client, job_actor
from phoneops.settings import get_settings
from phoneops.sources import service as sources

log = structlog.get_logger("phoneops.ongage.csv")

KIND = "ongage.csv_job"
FILE_KIND = "ongage_csv"
REQUIRED = ("List_ID", "Email", "Country", "Source", "Mobile", "conversion_type", "Original_source", "HLR_Status",
            "Uuid")
FIELD_COLUMNS = REQUIRED[2:]  # sent as list fields (lower-cased names); List_ID and Email drive the call
MAX_ROWS = 1_000_000
INSERT_CHUNK = 5000
MIN_INTERVAL, MAX_INTERVAL = 1.0, 86_400.0
MAX_PER_SEND = 100_000
STATUSES = ("draft", "running", "paused", "done", "cancelled", "failed")
ROW_STATUSES = ("pending", "sending", "sent", "failed")
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "start": (frozenset({"draft"}), "running"),
    "pause": (frozenset({"running"}), "paused"),
    "resume": (frozenset({"paused", "failed"}), "running"),
    "cancel": (frozenset({"draft", "running", "paused", "failed"}), "cancelled"),
}
NO_EMAIL = "no email in the row"


@dataclass(frozen=True)
class Pace:
    interval_seconds: float = 60.0
    lower_limit: int = 1
    upper_limit: int = 1
    batch_size: int = DEFAULT_MAX_BATCH

    def checked(self) -> Pace:
        if not MIN_INTERVAL <= self.interval_seconds <= MAX_INTERVAL:
            raise ValidationFailed(f"interval_seconds must be between {MIN_INTERVAL:g} and {MAX_INTERVAL:g}")
        if self.lower_limit < 1 or self.upper_limit < self.lower_limit or self.upper_limit > MAX_PER_SEND:
            raise ValidationFailed(f"limits must satisfy 1 <= lower_limit <= upper_limit <= {MAX_PER_SEND}")
        if not 1 <= self.batch_size <= DEFAULT_MAX_BATCH:
            raise ValidationFailed(f"batch_size must be between 1 and {DEFAULT_MAX_BATCH}")
        return self


# --- upload -------------------------------------------------------------------------------------------


def _header_map(header: Sequence[str]) -> dict[str, int]:
    found = {normalise_header(name): index for index, name in reversed(list(enumerate(header)))}
    missing = [name for name in REQUIRED if normalise_header(name) not in found]
    if missing:
        raise ValidationFailed(f"the file lacks the column(s) {', '.join(missing)}; required: {', '.join(REQUIRED)}",
                               details={"missing": missing, "required": list(REQUIRED)})
    return {name: found[normalise_header(name)] for name in REQUIRED}


def read_rows(path: Path) -> Iterator[dict[str, Any]]:
    """The file's rows as row dicts (row numbers from 1); raises ValidationFailed for a file we refuse."""
    try:
        info = sniff_table(path)
        rows = iter_rows(path, info)
        header = next(rows, None)
    except TableError as exc:
        raise ValidationFailed(f"the file cannot be read: {exc}") from None
    if header is None:
        raise ValidationFailed("the file is empty")
    columns = _header_map(header)
    number = 0
    for values in rows:
        if not any(v.strip() for v in values):
            continue
        number += 1
        if number > MAX_ROWS:
            raise ValidationFailed(f"at most {MAX_ROWS:,} rows per job")

        def cell(name: str, values: list[str] = values) -> str:
            index = columns[name]
            return values[index].strip() if index < len(values) else ""

        yield {"row_no": number, "list_id": cell("List_ID")[:32], "email": cell("Email")[:255],
               "fields": {name.lower(): cell(name) for name in FIELD_COLUMNS}}


def create_csv_job(session: Session, actor: Principal, upload: StoredFile, pace: Pace | None = None, *,
                   source_label: str | None = None) -> OngageCsvJob:
    """A draft job from an uploaded file (stored as `upload`); a refused file is deleted with nothing left.
    With `source_label` its valid mobile numbers count for that source (docs/sources.md), by blind index."""
    pace = (pace or Pace()).checked()
    storage = get_storage()
    try:
        job = OngageCsvJob(
            name=upload.original_name[:255], file_id=upload.id, status="draft", created_by=actor.username[:64],
            interval_seconds=pace.interval_seconds, lower_limit=pace.lower_limit, upper_limit=pace.upper_limit,
            batch_size=pace.batch_size,
        )
        session.add(job)
        session.flush()
        total = failed = 0
        labelled = sources.label_list(session, actor, source_label, "ongage", job.id, job.name) is not None
        mobiles: list[str] = []
        chunk: list[dict[str, Any]] = []
        with storage.local_path(upload) as path:
            for row in read_rows(path):
                row["csv_job_id"] = job.id
                if labelled and row["fields"].get("mobile"):
                    mobiles.append(str(row["fields"]["mobile"]))
                if not row["email"]:
                    row["status"], row["error"] = "failed", NO_EMAIL
                    failed += 1
                chunk.append(row)
                total += 1
                if len(chunk) >= INSERT_CHUNK:
                    session.execute(insert(OngageCsvRow), chunk)
                    chunk = []
        if chunk:
            session.execute(insert(OngageCsvRow), chunk)
        if total == 0:
            raise ValidationFailed("the file has a header but no row")
        job.rows_total, job.rows_failed = total, failed
        if labelled:
            sources.record(session, "ongage", job.id, ((i, True) for i in indexes_of(mobiles)))
        upload.kind = FILE_KIND
        session.flush()
    except BaseException:
        storage.discard(upload)
        raise
    audit(session, actor, "ongage.csv.create", "ongage_csv_job", job.id,
          {"name": job.name, "rows": total, "file_id": upload.id})
    log.info("ongage.csv.created", csv_job_id=job.id, rows=total)
    return job


# --- states and pace --------------------------------------------------------------------------------------


def get_csv_job(session: Session, job_id: int, *, lock: bool = False) -> OngageCsvJob:
    query = select(OngageCsvJob).where(OngageCsvJob.id == job_id)
    found = session.scalars(query.with_for_update() if lock else query).first()
    if found is None:
        raise NotFound(f"no Ongage CSV job {job_id}")
    return found


def list_csv_jobs(session: Session, limit: int = 100, include_cancelled: bool = True) -> list[OngageCsvJob]:
    query = select(OngageCsvJob).order_by(OngageCsvJob.id.desc()).limit(max(1, min(limit, 1000)))
    if not include_cancelled:
        query = query.where(OngageCsvJob.status != "cancelled")
    return list(session.scalars(query))


def set_pace(session: Session, actor: Principal, job_id: int, *, interval_seconds: float | None = None,
             lower_limit: int | None = None, upper_limit: int | None = None, batch_size: int | None = None,
             ) -> OngageCsvJob:
    """Change the pace of a job not finished yet (a running worker follows from its next send)."""
    job = get_csv_job(session, job_id, lock=True)
    if job.status in ("done", "cancelled"):
        raise Conflict(f"job {job_id} is {job.status}; its pace cannot change")
    pace = Pace(
        interval_seconds=job.interval_seconds if interval_seconds is None else float(interval_seconds),
        lower_limit=job.lower_limit if lower_limit is None else int(lower_limit),
        upper_limit=job.upper_limit if upper_limit is None else int(upper_limit),
        batch_size=job.batch_size if batch_size is None else int(batch_size),
    ).checked()
    job.interval_seconds, job.lower_limit, job.upper_limit, job.batch_size = (
        pace.interval_seconds, pace.lower_limit, pace.upper_limit, pace.batch_size)
    audit(session, actor, "ongage.csv.pace", "ongage_csv_job", job.id, {
        "interval_seconds": pace.interval_seconds, "lower_limit": pace.lower_limit,
        "upper_limit": pace.upper_limit, "batch_size": pace.batch_size})
    return job


def transition(session: Session, actor: Principal, job_id: int, action: str) -> OngageCsvJob:
    """start / pause / resume / cancel; 409 when the job's state does not allow it."""
    if action not in TRANSITIONS:
        raise ValidationFailed(f"unknown action {action!r}; one of {', '.join(TRANSITIONS)}")
    allowed, target = TRANSITIONS[action]
    job = get_csv_job(session, job_id, lock=True)
    if action == "cancel":
        check_cancel(actor, job.created_by, "ongage.csv")  # who started it, or an admin
    if action == "resume" and job.status == "running" and not _worker_alive(session, job):
        allowed = allowed | {"running"}  # its worker ended without letting go (cancelled or gave up): restart
    if job.status not in allowed:
        raise Conflict(f"cannot {action} job {job_id}: it is {job.status}",
                       details={"status": job.status, "action": action})
    if target == "running":
        credentials()  # 503 now rather than a worker failing
    before = job.status
    job.status = target
    now = utcnow()
    if target == "running":
        job.error = None
        job.started_at = job.started_at or now
        job.next_run_at = now
        _ensure_worker(session, actor, job)
    elif target == "cancelled":
        job.finished_at, job.next_run_at = now, None
    else:
        job.next_run_at = None
    session.flush()
    audit(session, actor, f"ongage.csv.{action}", "ongage_csv_job", job.id, {"from": before, "to": target})
    return job


def _worker_alive(session: Session, job: OngageCsvJob) -> bool:
    if job.worker_job_id is None:
        return False
    current = session.get(Job, job.worker_job_id)
    return current is not None and current.status not in TERMINAL


def _ensure_worker(session: Session, actor: Principal, job: OngageCsvJob) -> None:
    """A background job carries this CSV job: the current one while it has not ended, else a new one."""
    if _worker_alive(session, job):
        return
    worker = create_job(session, actor, KIND, {"csv_job_id": job.id, "actor": actor.username},
                        title=f"Ongage CSV: {job.name}"[:200], total=job.rows_total)
    job.worker_job_id = worker.id


def row_counts(session: Session, job_id: int) -> dict[str, int]:
    found = dict(session.execute(
        select(OngageCsvRow.status, func.count(OngageCsvRow.id)).where(OngageCsvRow.csv_job_id == job_id)
        .group_by(OngageCsvRow.status)).all())
    return {status: int(found.get(status, 0)) for status in ROW_STATUSES}


def list_rows(session: Session, job_id: int, status: str | None = None, limit: int = 100, offset: int = 0
              ) -> list[OngageCsvRow]:
    if status is not None and status not in ROW_STATUSES:
        raise ValidationFailed(f"unknown row status {status!r}; one of {', '.join(ROW_STATUSES)}")
    get_csv_job(session, job_id)
    query = select(OngageCsvRow).where(OngageCsvRow.csv_job_id == job_id).order_by(OngageCsvRow.row_no)
    if status is not None:
        query = query.where(OngageCsvRow.status == status)
    return list(session.scalars(query.offset(max(0, offset)).limit(max(1, min(limit, 5000)))))


def shown_rows(session: Session, actor: Principal, job_id: int, status: str | None = None, limit: int = 100,
               offset: int = 0) -> list[dict[str, Any]]:
    """The rows as `actor` may see them (phoneops.core.access, job rows): e-mails and every number-like field
    masked below the operator role. Plain dicts: the stored rows are never touched."""
    from phoneops.core import access

    job = get_csv_job(session, job_id)
    reveal = access.reveals(actor, access.Obj.job_rows, job.created_by)
    shown = []
    for row in list_rows(session, job_id, status, limit, offset):
        fields = dict(row.fields or {})
        email = row.email
        if not reveal:
            email = access.mask_email(email)
            fields = {k: access.mask_cell(v) if isinstance(v, str) else v for k, v in fields.items()}
        shown.append({"row_no": row.row_no, "list_id": row.list_id, "email": email, "fields": fields,
                      "status": row.status, "error": row.error, "outcome": row.outcome,
                      "contact_id": row.contact_id, "sent_at": row.sent_at})
    return shown


def rows_csv(session: Session, actor: Principal, job_id: int) -> Iterator[str]:
    """Every row with its outcome as CSV (formulas neutralised), audited as an export; the lines are read in
    their own transaction as they are consumed (a large job is never held in memory)."""
    job = get_csv_job(session, job_id)
    audit(session, actor, "ongage.csv.export", "ongage_csv_job", job.id, {"rows": job.rows_total})

    def rows() -> Iterator[list[Any]]:
        with session_scope() as reader:
            found = reader.execute(
                select(OngageCsvRow.row_no, OngageCsvRow.list_id, OngageCsvRow.email, OngageCsvRow.status,
                       OngageCsvRow.outcome, OngageCsvRow.error, OngageCsvRow.sent_at)
                .where(OngageCsvRow.csv_job_id == job_id).order_by(OngageCsvRow.row_no)
                .execution_options(yield_per=5000)
            )
            for number, list_id, email, status, outcome, error, sent_at in found:
                yield [number, list_id, email, status, outcome or "", error or "",
                       sent_at.isoformat() if sent_at else ""]

    return csv_lines(("row", "list_id", "email", "status", "outcome", "error", "sent_at"), rows())


def _refresh_counts(session: Session, job: OngageCsvJob) -> dict[str, int]:
    counts = row_counts(session, job.id)
    job.rows_sent, job.rows_failed = counts["sent"], counts["failed"]
    return counts


# --- the worker -----------------------------------------------------------------------------------------


class _Stop(Exception):
    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


def _running(ctx: JobContext, csv_id: int) -> OngageCsvJob:
    """The CSV job while this worker may go on carrying it, detached; `_Stop` otherwise (the worker lets go,
    committed before it stops, so a resume that comes after starts a new worker)."""
    with session_scope() as session:
        job = session.scalars(select(OngageCsvJob).where(OngageCsvJob.id == csv_id).with_for_update()).first()
        if job is None:
            stop = "deleted"
        elif job.worker_job_id != ctx.job_id:
            stop = "carried by another worker"
        elif job.status != "running":
            job.worker_job_id = None
            stop = job.status
        else:
            session.expunge(job)
            return job
    raise _Stop(stop)


def _step(ctx: JobContext, session: Session, job_id: int, message: str | None = None) -> dict[str, int]:
    job = get_csv_job(session, job_id)
    counts = _refresh_counts(session, job)
    ctx.step(session, done=counts["sent"] + counts["failed"], total=job.rows_total, counters=counts,
             message=message)
    return counts


def _drop_opted_out(session: Session, rows: list[OngageCsvRow]) -> list[OngageCsvRow]:
    """Rows whose mobile is opted out (numbers/optouts.py) fail here, before any call: never sent to Ongage."""
    found = opted_out_raw(session, [str((r.fields or {}).get("mobile") or "") for r in rows],
                          get_settings().default_region)
    kept = []
    for row in rows:
        reason = found.get(str((row.fields or {}).get("mobile") or ""))
        if reason is None:
            kept.append(row)
        else:
            row.status, row.error = "failed", f"opted out ({reason}): not sent"
    return kept


def _contact(row: OngageCsvRow) -> dict[str, Any]:
    return {"email": row.email, "fields": dict(row.fields or {})}


def reconcile(ctx: JobContext, csv_id: int) -> int:
    """Rows left `sending` by a worker that died mid-call: sent when Ongage has the contact, else pending."""
    with session_scope() as session:
        rows = list(session.scalars(select(OngageCsvRow).where(OngageCsvRow.csv_job_id == csv_id,
                                                               OngageCsvRow.status == "sending")))
        for row in rows:
            session.expunge(row)
    if not rows:
        return 0
    log.info("ongage.csv.reconcile", csv_job_id=csv_id, rows=len(rows))
    found: dict[int, dict[str, Any] | None] = {}
    limiter = account_limiter()
    for row in rows:
        limiter.acquire()
        found[row.id] = get_client(row.list_id or None, self_paced=True).get_contact(row.email)
    with session_scope() as session:
        now = utcnow()
        for row in rows:
            payload = found[row.id]
            values: dict[str, Any] = {"send_id": None}
            if payload is not None:
                values.update(status="sent", outcome="reconciled", contact_id=str(payload.get("id") or "")[:32] or None,
                              sent_at=now, error=None)
            else:
                values.update(status="pending")
            session.execute(update(OngageCsvRow).where(OngageCsvRow.id == row.id, OngageCsvRow.status == "sending")
                            .values(**values))
        _step(ctx, session, csv_id, message=f"reconciled {len(rows)} rows left in flight")
    return len(rows)


def _mark(session: Session, rows: Sequence[OngageCsvRow], results: Sequence[ContactResult | str]) -> None:
    """Each row from its own result, in one executemany; only rows still carrying this call's send id."""
    now = utcnow()
    values: list[dict[str, Any]] = []
    for row, result in zip(rows, results, strict=True):
        if isinstance(result, ContactResult) and result.ok:
            values.append({"id": row.id, "status": "sent", "outcome": result.outcome, "contact_id": result.contact_id,
                           "sent_at": now, "error": None, "send_id": None})
        else:
            error = result if isinstance(result, str) else (result.error or result.outcome or "failed")
            values.append({"id": row.id, "status": "failed", "outcome": None if isinstance(result, str)
                           else result.outcome, "contact_id": None, "sent_at": None, "error": error[:2000],
                           "send_id": None})
    send_ids = {row.send_id for row in rows}
    assert len(send_ids) == 1, "one call, one send id"
    statement = update(OngageCsvRow).where(OngageCsvRow.send_id == send_ids.pop())
    session.execute(statement.execution_options(synchronize_session=False), values)


def _send(ctx: JobContext, job: OngageCsvJob, rows: list[OngageCsvRow]) -> None:
    """One call: wait for the rate limit, commit the rows as `sending`, send, mark each from its result."""
    send_id = str(uuid.uuid4())
    ids = [r.id for r in rows]
    account_limiter().acquire()  # the wait happens while the rows are still pending: a kill here costs nothing
    with session_scope() as session:
        session.execute(update(OngageCsvRow).where(OngageCsvRow.id.in_(ids), OngageCsvRow.status == "pending")
                        .values(status="sending", send_id=send_id))
        ctx.step(session)  # the intent commits with the lease still ours
    for row in rows:
        row.send_id = send_id
    try:
        results: list[ContactResult | str] = list(get_client(rows[0].list_id or None, self_paced=True).upsert_contacts(
            [_contact(r) for r in rows]))
    except ProviderAuthError as exc:
        _give_back(rows, send_id)
        raise _Failed(f"Ongage refused the login: {exc.message}") from exc
    except ProviderError as exc:
        if exc.status in (400, 404, 413, 422):  # this call's data or list is refused: the rows fail
            results = [f"Ongage refused the call: {exc.message}"] * len(rows)
        else:
            if not exc.maybe_sent:
                _give_back(rows, send_id)
            raise  # the caller parks the worker; rows still `sending` are reconciled first
    with session_scope() as session:
        _mark(session, rows, results)
        failed = sum(1 for r in results if not (isinstance(r, ContactResult) and r.ok))
        _step(ctx, session, job.id, message=f"sent {len(rows) - failed} of {len(rows)} (list {rows[0].list_id or '-'})")


class _Failed(Exception):
    pass


def _give_back(rows: Sequence[OngageCsvRow], send_id: str) -> None:
    with session_scope() as session:
        session.execute(update(OngageCsvRow).where(OngageCsvRow.id.in_([r.id for r in rows]),
                                                   OngageCsvRow.send_id == send_id)
                        .values(status="pending", send_id=None))


def _wait(ctx: JobContext, csv_id: int, seconds: float) -> None:
    """Sleep until the next send, waking up early when the job is paused or cancelled."""
    deadline = time.monotonic() + seconds
    with session_scope() as session:
        session.execute(update(OngageCsvJob).where(OngageCsvJob.id == csv_id)
                        .values(next_run_at=utcnow() + timedelta(seconds=seconds)))
    while (left := deadline - time.monotonic()) > 0:
        time.sleep(min(1.0, left))
        with session_scope() as session:
            status = session.scalar(select(OngageCsvJob.status).where(OngageCsvJob.id == csv_id))
        if status != "running":
            return


def _finish(ctx: JobContext, csv_id: int) -> dict[str, int] | None:
    """Mark the job done when no row is left to send; None otherwise."""
    with session_scope() as session:
        job = get_csv_job(session, csv_id, lock=True)
        counts = _refresh_counts(session, job)
        if counts["pending"] or counts["sending"]:
            return None
        job.status, job.finished_at, job.next_run_at, job.worker_job_id = "done", utcnow(), None, None
        ctx.step(session, done=counts["sent"] + counts["failed"], total=job.rows_total, counters=counts,
                 message=f"done: {counts['sent']} sent, {counts['failed']} failed")
        audit(session, job_actor(ctx), "ongage.csv.done", "ongage_csv_job", job.id, counts)
        return counts


def _fail_job(csv_id: int, message: str) -> None:
    with session_scope() as session:
        job = get_csv_job(session, csv_id, lock=True)
        if job.status == "running":
            job.status, job.error, job.next_run_at, job.worker_job_id = "failed", message[:2000], None, None


def run_worker(ctx: JobContext, *, rng: random.Random | None = None) -> dict[str, Any]:
    """The background job carrying one CSV job until it is done, paused, cancelled or failed."""
    csv_id = int(ctx.params["csv_job_id"])
    rng = rng or random.Random()
    try:
        while True:
            job = _running(ctx, csv_id)
            try:
                reconcile(ctx, csv_id)
                if _finish(ctx, csv_id) is not None:
                    return {"csv_job_id": csv_id, "stopped": "done"}
                count = rng.randint(job.lower_limit, job.upper_limit)
                with session_scope() as session:
                    rows = list(session.scalars(
                        select(OngageCsvRow).where(OngageCsvRow.csv_job_id == csv_id, OngageCsvRow.status == "pending")
                        .order_by(OngageCsvRow.row_no).limit(count)))
                    rows = _drop_opted_out(session, rows)
                    for row in rows:
                        session.expunge(row)
                by_list: dict[str, list[OngageCsvRow]] = {}
                for row in rows:
                    by_list.setdefault(row.list_id, []).append(row)
                for group in by_list.values():
                    for start in range(0, len(group), job.batch_size):
                        _running(ctx, csv_id)  # a pause between two calls takes effect here
                        _send(ctx, job, group[start : start + job.batch_size])
                if ctx.checkpoint.get("parked"):
                    ctx.progress(checkpoint={**ctx.checkpoint, "parked": 0})
            except ProviderError as exc:
                raise _park(ctx, exc) from exc
            if _finish(ctx, csv_id) is not None:
                return {"csv_job_id": csv_id, "stopped": "done"}
            _wait(ctx, csv_id, job.interval_seconds)
    except _Stop as stop:
        log.info("ongage.csv.worker_stopped", csv_job_id=csv_id, reason=stop.status)
        return {"csv_job_id": csv_id, "stopped": stop.status}
    except _Failed as exc:
        _fail_job(csv_id, str(exc))
        from phoneops.core.errors import UpstreamError

        raise UpstreamError(str(exc)) from exc


def _park(ctx: JobContext, exc: ProviderError) -> RetryLater:
    """Ongage is unavailable: the worker waits (growing delay, as long as the outage lasts) and comes back."""
    return RetryLater.outage(ctx, "Ongage", exc.message, exc.retry_after)


def indexes_of(values: list[str]) -> list[bytes]:
    """Blind indexes of the valid numbers among raw mobile values (read with DEFAULT_REGION)."""
    from phoneops.numbers.normalize import normalize_column
    from phoneops.numbers.vault import get_vault

    raws = [v for v in dict.fromkeys(values) if v]
    if not raws:
        return []
    e164s = [e for e in normalize_column(raws, get_settings().default_region)["e164"].to_list() if e]
    return get_vault().index_many(e164s)
