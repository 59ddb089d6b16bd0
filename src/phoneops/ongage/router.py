"""Ongage API: the conversion sync (runs, contacts that failed, re-queue) and CSV jobs."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, Form, Query, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from phoneops.core import storage
from phoneops.core.deps import DbSession, operator, viewer
from phoneops.core.schemas import JobOut
from phoneops.core.security import Principal
from phoneops.ongage import service_csv, service_sync
from phoneops.ongage.provider import is_configured, sync_config
from phoneops.ongage.schemas import (
    CsvJobDetailOut,
    CsvJobOut,
    CsvRowOut,
    PaceIn,
    ProblemOut,
    RequeueIn,
    RequeueOut,
    StatusOut,
    SyncRunOut,
)
from phoneops.settings import get_settings
from phoneops.sources.service import normalise_label

router = APIRouter(prefix="/api/ongage", tags=["ongage"])
DB = DbSession  # commit before the response is sent


# --- conversion sync -----------------------------------------------------------------------------------


@router.get("/status", response_model=StatusOut)
def status(session: Session = DB, _: Principal = Depends(viewer)) -> StatusOut:
    config = sync_config()
    runs = service_sync.recent_runs(session, 1)
    return StatusOut(
        configured=is_configured(), countries=list(config.countries), email_pattern=config.email_pattern,
        batch_size=config.batch_size, retry_limit=config.retry_limit, counts=service_sync.counts(session),
        last_run=SyncRunOut.model_validate(runs[0]) if runs else None,
    )


@router.post("/sync", response_model=JobOut, status_code=202)
def start_sync(session: Session = DB, actor: Principal = Depends(operator)) -> JobOut:
    """Run the conversion sync now (it also runs every minute on its own)."""
    return JobOut.model_validate(service_sync.start_sync(session, actor))


@router.post("/unsubscribes/check", response_model=JobOut, status_code=202)
def check_unsubscribes(session: Session = DB, actor: Principal = Depends(operator)) -> JobOut:
    """Ask Ongage which contacts we sent have unsubscribed; record them as opt-outs (docs/optouts.md)."""
    from phoneops.ongage.unsubscribes import start_check

    return JobOut.model_validate(start_check(session, actor))


@router.get("/sync/runs", response_model=list[SyncRunOut])
def sync_runs(
    limit: int = Query(default=20, ge=1, le=500), session: Session = DB, _: Principal = Depends(viewer)
) -> list[SyncRunOut]:
    return [SyncRunOut.model_validate(r) for r in service_sync.recent_runs(session, limit)]


@router.get("/contacts", response_model=list[ProblemOut])
def problem_contacts(
    status: str = Query(default="failed,gave_up,invalid", description="comma-separated statuses"),
    limit: int = Query(default=200, ge=1, le=5000),
    session: Session = DB,
    _: Principal = Depends(viewer),
) -> list[ProblemOut]:
    """Converted numbers whose contact did not go through (numbers masked)."""
    statuses = [s.strip() for s in status.split(",") if s.strip()]
    return [ProblemOut.model_validate(p) for p in service_sync.problems(session, statuses, limit)]


@router.post("/contacts/requeue", response_model=RequeueOut)
def requeue(body: RequeueIn, session: Session = DB, actor: Principal = Depends(operator)) -> RequeueOut:
    """Give given-up contacts (all, or `ids`) a fresh retry budget."""
    return RequeueOut(requeued=service_sync.requeue(session, actor, body.ids or None))


# --- CSV jobs ------------------------------------------------------------------------------------------


def _detail(session: Session, job: object) -> CsvJobDetailOut:
    out = CsvJobOut.model_validate(job)
    return CsvJobDetailOut(**out.model_dump(), counts=service_csv.row_counts(session, out.id))


@router.post("/csv-jobs", response_model=CsvJobDetailOut, status_code=201)
async def upload_csv(
    file: UploadFile,
    interval_seconds: float = Form(60.0),
    lower_limit: int = Form(1),
    upper_limit: int = Form(1),
    batch_size: int = Form(500),
    source_label: str = Form("", description="which list this is (the sources page, docs/sources.md)"),
    session: Session = DB,
    actor: Principal = Depends(operator),
) -> CsvJobDetailOut:
    """Upload a CSV (List_ID, Email, Country, Source, Mobile, conversion_type, Original_source, HLR_Status,
    Uuid) as a draft job; a file missing a column is refused and leaves nothing behind."""
    pace = service_csv.Pace(interval_seconds, lower_limit, upper_limit, batch_size).checked()
    label = normalise_label(source_label)  # refused before anything is stored

    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(storage.CHUNK):
            yield block

    upload = await storage.get_storage().save_stream(
        session, actor, chunks(), kind=service_csv.FILE_KIND, original_name=file.filename,
        content_type=file.content_type, max_bytes=get_settings().max_upload_bytes,
    )
    job = service_csv.create_csv_job(session, actor, upload, pace, source_label=label)
    return _detail(session, job)


@router.get("/csv-jobs", response_model=list[CsvJobOut])
def list_csv_jobs(
    limit: int = Query(default=100, ge=1, le=1000), session: Session = DB, _: Principal = Depends(viewer)
) -> list[CsvJobOut]:
    return [CsvJobOut.model_validate(j) for j in service_csv.list_csv_jobs(session, limit)]


@router.get("/csv-jobs/{job_id}", response_model=CsvJobDetailOut)
def get_csv_job(job_id: int, session: Session = DB, _: Principal = Depends(viewer)) -> CsvJobDetailOut:
    return _detail(session, service_csv.get_csv_job(session, job_id))


@router.patch("/csv-jobs/{job_id}", response_model=CsvJobDetailOut)
def set_pace(job_id: int, body: PaceIn, session: Session = DB, actor: Principal = Depends(operator)
             ) -> CsvJobDetailOut:
    """Change the pace (interval, rows per send, contacts per call) of a job not finished yet."""
    job = service_csv.set_pace(session, actor, job_id, **body.model_dump())
    return _detail(session, job)


def _move(session: Session, actor: Principal, job_id: int, action: str) -> CsvJobDetailOut:
    return _detail(session, service_csv.transition(session, actor, job_id, action))


@router.post("/csv-jobs/{job_id}/start", response_model=CsvJobDetailOut)
def start(job_id: int, session: Session = DB, actor: Principal = Depends(operator)) -> CsvJobDetailOut:
    """draft -> running (409 from any other state)."""
    return _move(session, actor, job_id, "start")


@router.post("/csv-jobs/{job_id}/pause", response_model=CsvJobDetailOut)
def pause(job_id: int, session: Session = DB, actor: Principal = Depends(operator)) -> CsvJobDetailOut:
    """running -> paused (takes effect between two calls)."""
    return _move(session, actor, job_id, "pause")


@router.post("/csv-jobs/{job_id}/resume", response_model=CsvJobDetailOut)
def resume(job_id: int, session: Session = DB, actor: Principal = Depends(operator)) -> CsvJobDetailOut:
    """paused or failed -> running."""
    return _move(session, actor, job_id, "resume")


@router.post("/csv-jobs/{job_id}/cancel", response_model=CsvJobDetailOut)
def cancel(job_id: int, session: Session = DB, actor: Principal = Depends(operator)) -> CsvJobDetailOut:
    """Any state but done and cancelled -> cancelled."""
    return _move(session, actor, job_id, "cancel")


@router.get("/csv-jobs/{job_id}/rows", response_model=list[CsvRowOut])
def rows(
    job_id: int,
    status: str | None = Query(default=None, description="pending, sending, sent or failed"),
    limit: int = Query(default=100, ge=1, le=5000),
    offset: int = Query(default=0, ge=0),
    session: Session = DB,
    actor: Principal = Depends(viewer),
) -> list[CsvRowOut]:
    """The job's rows; e-mails and numbers masked for viewers (phoneops.core.access)."""
    return [CsvRowOut.model_validate(r) for r in service_csv.shown_rows(session, actor, job_id, status, limit, offset)]


@router.get("/csv-jobs/{job_id}/rows.csv", response_class=StreamingResponse)
def rows_csv(job_id: int, session: Session = DB, actor: Principal = Depends(operator)
             ) -> StreamingResponse:
    """Every row with its outcome (the emails of the upload included; operators only)."""
    lines = service_csv.rows_csv(session, actor, job_id)
    return StreamingResponse(lines, media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="ongage_job_{job_id}.csv"'})
