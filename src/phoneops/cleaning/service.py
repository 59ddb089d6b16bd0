"""Runs: start one (one per file at a time), read them, their stats and result files.

The one-run-at-a-time rule is a conditional UPDATE of the file row from an idle status to ``running``:
whatever the number of API processes, only one request can win it (PostgreSQL makes the others wait for
the row lock and re-check; SQLite serialises writers); the losers answer 409. The job handler puts the
file back to done / failed when the run ends, however it ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from phoneops.cleaning import filters as filter_registry
from phoneops.cleaning.models import CleaningFile, CleaningRun
from phoneops.cleaning.reading import check_region, resolve_column
from phoneops.cleaning.upload import IDLE, get_cleaning_file
from phoneops.core.audit import audit
from phoneops.core.db import rowcount, utcnow
from phoneops.core.errors import Conflict, Forbidden, NotFound, ValidationFailed
from phoneops.core.jobs import TERMINAL, create_job
from phoneops.core.models import Job, StoredFile
from phoneops.core.security import Principal, Role
from phoneops.core.storage import get_file

CLEAN_KIND = "cleaning.run"
ENCRYPT_KIND = "cleaning.encrypt"  # encrypts or decrypts a file
KINDS = {"clean": CLEAN_KIND, "encrypt": ENCRYPT_KIND, "decrypt": ENCRYPT_KIND}


def _release_if_stale(session: Session, record: CleaningFile) -> bool:
    """A file left `running` by a run whose job already ended (a crash between the two) is freed."""
    if record.status != "running" or record.active_run_id is None:
        return False
    run = session.get(CleaningRun, record.active_run_id)
    job = session.get(Job, run.job_id) if run is not None and run.job_id else None
    if job is not None and job.status not in TERMINAL:
        return False
    if run is not None and run.status in ("queued", "running"):
        run.status, run.error, run.finished_at = "failed", "the run's job ended without finishing", utcnow()
    record.status, record.active_run_id = "failed", None
    session.flush()
    return True


def _claim(session: Session, record: CleaningFile) -> None:
    if record.status == "archived":
        raise Conflict("the file is archived; restore it before running it")
    for _ in range(2):
        result = session.execute(
            update(CleaningFile)
            .where(CleaningFile.id == record.id, CleaningFile.status.in_(IDLE))
            .values(status="running", error=None, updated_at=utcnow())
        )
        if rowcount(result) == 1:
            session.refresh(record)
            return
        session.refresh(record)
        if not _release_if_stale(session, record):
            break
    raise Conflict(f"{record.original_name} is already being processed; wait for that run to end",
                   code="run_in_progress", details={"run_id": record.active_run_id})


def _start(session: Session, actor: Principal, record: CleaningFile, kind: str, options: dict[str, Any],
           total: int | None = None) -> CleaningRun:
    _claim(session, record)
    run = CleaningRun(file_id=record.id, kind=kind, status="queued", options=options, stats={},
                      created_by=actor.username)
    session.add(run)
    session.flush()
    title = f"{'Clean' if kind == 'clean' else kind.capitalize()} {record.original_name}"
    job = create_job(session, actor, KINDS[kind], {"run_id": run.id, "file_id": record.id}, title=title,
                     total=total)
    run.job_id = job.id
    record.active_run_id = run.id
    audit(session, actor, f"cleaning.{kind}.start", "cleaning_file", record.id, {"run_id": run.id, **options})
    return run


def _phone_column(record: CleaningFile, phone_column: str | int | None) -> int:
    if phone_column not in (None, ""):
        return resolve_column(record.columns, phone_column)
    if record.phone_column is None:
        return resolve_column(record.columns, None)  # 422: choose it
    return record.phone_column


def start_clean(
    session: Session, actor: Principal, file_id: int, *, phone_column: str | int | None = None,
    region: str | None = None, filters: list[str] | None = None, add_to_used: bool = False,
    line_type: bool = False, sms_only: bool = False, sms_types: list[str] | None = None,
) -> CleaningRun:
    """Queue a cleaning run; 409 while another run of the file is in progress. `line_type` adds the
    number's line type (phonenumbers metadata) to the cleaned file; `sms_only` keeps only the line types in
    `sms_types` (default: mobile, fixed line or mobile), the others rejected as cannot_receive_sms."""
    record = get_cleaning_file(session, file_id, "clean")
    column = _phone_column(record, phone_column)
    code = check_region(region, record.region)
    chosen = filter_registry.resolve(filters if filters is not None else
                                     [f.name for f in filter_registry.registered() if f.default])
    options = {"phone_column": column, "phone_column_name": record.columns[column], "region": code,
               "filters": [f.name for f in chosen], "add_to_used": bool(add_to_used), "line_type": bool(line_type)}
    if sms_only:
        options["sms_types"] = check_sms_types(sms_types)
    return _start(session, actor, record, "clean", options)


def check_sms_types(types: list[str] | None) -> list[str]:
    """The line types the SMS filter keeps (default mobile, fixed line or mobile); 422 on unknown names."""
    from phoneops.numbers.normalize import LINE_TYPES, SMS_CAPABLE

    chosen = [t.strip() for t in (types or []) if t and t.strip()] or list(SMS_CAPABLE)
    known = sorted(set(LINE_TYPES.values()))
    unknown = [t for t in chosen if t not in known]
    if unknown:
        raise ValidationFailed(f"unknown line types {unknown}: choose among {', '.join(known)}",
                               code="invalid_line_type", details={"allowed": known})
    return sorted(set(chosen))


def start_encryption(
    session: Session, actor: Principal, file_id: int, direction: str = "encrypt", *,
    phone_column: str | int | None = None, region: str | None = None,
) -> CleaningRun:
    """Turn the phone column into link tokens (encrypt), or tokens back into numbers (decrypt: admin)."""
    if direction not in ("encrypt", "decrypt"):
        raise ValidationFailed("direction must be encrypt or decrypt")
    if direction == "decrypt" and not actor.can(Role.admin):
        raise Forbidden("decrypting reveals phone numbers: this needs the admin role")
    record = get_cleaning_file(session, file_id, "encrypt")
    if direction == "decrypt" and phone_column in (None, ""):
        column = _token_column(record)
    else:
        column = _phone_column(record, phone_column)
    options = {"phone_column": column, "phone_column_name": record.columns[column],
               "region": check_region(region, record.region)}
    return _start(session, actor, record, direction, options)


def _token_column(record: CleaningFile) -> int:
    """The column holding link tokens, from the rows seen at upload; 422 when none does."""
    from phoneops.cleaning.upload import sample_rows
    from phoneops.numbers.crypto import looks_like_token

    shares = [sum(1 for row in sample_rows(record) if j < len(row) and looks_like_token(row[j]))
              for j in range(len(record.columns))]
    if not shares or max(shares) == 0:
        return resolve_column(record.columns, None)
    return shares.index(max(shares))


def get_run(session: Session, run_id: int) -> CleaningRun:
    run = session.get(CleaningRun, run_id)
    if run is None:
        raise NotFound(f"no run {run_id}")
    return run


def list_runs(session: Session, file_id: int, limit: int = 50) -> list[CleaningRun]:
    return list(session.scalars(select(CleaningRun).where(CleaningRun.file_id == file_id)
                                .order_by(CleaningRun.id.desc()).limit(limit)))


def last_run(session: Session, record: CleaningFile) -> CleaningRun | None:
    run_id = record.active_run_id or record.last_run_id
    return session.get(CleaningRun, run_id) if run_id else None


WHICH = ("clean", "rejected", "output")


def result_file(session: Session, actor: Principal, run_id: int, which: str) -> StoredFile:
    """A run's result file; decrypted numbers are for admins only."""
    run = get_run(session, run_id)
    if which not in WHICH:
        raise ValidationFailed(f"which must be one of {', '.join(WHICH)}")
    if run.kind == "decrypt" and not actor.can(Role.admin):
        raise Forbidden("decrypted files reveal phone numbers: this needs the admin role")
    stored_id = run.rejected_file_id if which == "rejected" else run.output_file_id
    if stored_id is None:
        raise NotFound(f"run {run_id} has no {which} file" + ("" if run.status == "succeeded" else f" ({run.status})"))
    stored = get_file(session, stored_id)
    if stored.status == "deleted":
        raise NotFound("that file was deleted")
    return stored


@dataclass(frozen=True)
class ChartData:
    outcomes: dict[str, float]
    countries: dict[str, float]


OUTCOME_ORDER = ("kept", "invalid", "duplicate", "opted_out", "blacklisted", "monitored", "converted", "already_used")


def chart_data(run: CleaningRun, top: int = 12) -> ChartData:
    stats = run.stats or {}
    outcomes: dict[str, int] = stats.get("outcomes", {})
    ordered = {k: float(outcomes[k]) for k in OUTCOME_ORDER if outcomes.get(k)}
    ordered.update({k: float(v) for k, v in outcomes.items() if k not in ordered and v})
    countries: dict[str, dict[str, int]] = stats.get("countries", {})
    kept = {c: float(v.get("kept", 0)) for c, v in countries.items() if v.get("kept")}
    best = dict(sorted(kept.items(), key=lambda kv: -kv[1])[:top])
    return ChartData(ordered, best)
