"""Ongage pages: the conversion sync (counts, failures, runs) and CSV jobs (upload, pace, start/pause/resume/
cancel, progress)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core import storage
from phoneops.core.deps import DbSession, page_operator, page_viewer
from phoneops.core.errors import AppError
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.numbers.links import linked
from phoneops.ongage import service_csv, service_sync
from phoneops.ongage.provider import is_configured, sync_config
from phoneops.settings import get_settings
from phoneops.sources.service import normalise_label
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import form_error, render
from phoneops.ui.views import Card

router = APIRouter(include_in_schema=False)
DB = DbSession  # commit before the response is sent


def dashboard_cards(session: Session) -> list[Card]:
    counts = service_sync.counts(session)
    if not any(counts.values()):
        return [Card("Ongage contacts", "none yet", "/ongage")]
    problems = counts["failed"] + counts["gave_up"]
    return [Card("Ongage contacts sent", f"{counts['sent']:,}", "/ongage",
                 chart={k: float(v) for k, v in counts.items() if v})] + (
        [Card("Ongage contacts failing", f"{problems:,}", "/ongage")] if problems else [])


def _sync_jobs(session: Session) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.kind == service_sync.KIND)
                                .order_by(Job.created_at.desc()).limit(5)))


def _overview(request: Request, session: Session, principal: Principal, *, error: str | None = None,
              message: str | None = None, status_code: int = 200) -> Response:
    try:
        config = sync_config()
        config_error = None
    except AppError as exc:
        config, config_error = None, exc.message
    problems = service_sync.problems(session, limit=100)
    return render(
        request, "ongage/overview.html", principal, status_code=status_code, error=error or config_error,
        message=message, configured=is_configured(), config=config, counts=service_sync.counts(session),
        problems=problems, runs=service_sync.recent_runs(session, 15), jobs=_sync_jobs(session),
        linked=linked(session, [p.key for p in problems]),
    )


@router.get("/ongage")
def overview(request: Request, session: Session = DB, principal: Principal = Depends(page_viewer)
             ) -> Response:
    return _overview(request, session, principal)


@router.post("/ongage/sync")
def start_sync(request: Request, session: Session = DB, principal: Principal = Depends(page_operator)
               ) -> Response:
    try:
        job = service_sync.start_sync(session, principal)
    except AppError as exc:
        return form_error(session, exc, _overview, request, session, principal)
    return redirect_with("/ongage", "Ongage sync started: converted numbers are sent to the list.",
                         link=("Follow the job", f"/jobs/{job.id}"))


@router.post("/ongage/requeue")
def requeue(request: Request, session: Session = DB, principal: Principal = Depends(page_operator)
            ) -> Response:
    count = service_sync.requeue(session, principal)
    return redirect_with("/ongage", f"{count} contact(s) queued again: the next sync sends them.")


# --- CSV jobs ------------------------------------------------------------------------------------------


def _jobs_page(request: Request, session: Session, principal: Principal, *, error: str | None = None,
               status_code: int = 200) -> Response:
    return render(request, "ongage/csv_jobs.html", principal, status_code=status_code, error=error,
                  jobs=service_csv.list_csv_jobs(session), required=service_csv.REQUIRED,
                  configured=is_configured())


@router.get("/ongage/csv-jobs")
def csv_jobs(request: Request, session: Session = DB, principal: Principal = Depends(page_viewer)
             ) -> Response:
    return _jobs_page(request, session, principal)


@router.post("/ongage/csv-jobs")
async def upload(
    request: Request,
    file: UploadFile = File(...),
    interval_seconds: float = Form(60.0),
    lower_limit: int = Form(1),
    upper_limit: int = Form(1),
    batch_size: int = Form(500),
    source_label: str = Form(""),
    session: Session = DB,
    principal: Principal = Depends(page_operator),
) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(storage.CHUNK):
            yield block

    try:
        pace = service_csv.Pace(interval_seconds, lower_limit, upper_limit, batch_size).checked()
        label = normalise_label(source_label)
        row = await storage.get_storage().save_stream(
            session, principal, chunks(), kind=service_csv.FILE_KIND, original_name=file.filename,
            content_type=file.content_type, max_bytes=get_settings().max_upload_bytes,
        )
        job = service_csv.create_csv_job(session, principal, row, pace, source_label=label)
    except AppError as exc:
        return form_error(session, exc, _jobs_page, request, session, principal)
    return redirect_with(f"/ongage/csv-jobs/{job.id}", f"CSV job {job.id} created from {file.filename}.")


def _job_page(request: Request, session: Session, principal: Principal, job_id: int, *, error: str | None = None,
              status_code: int = 200, show: str = "") -> Response:
    job = service_csv.get_csv_job(session, job_id)
    worker = session.get(Job, job.worker_job_id) if job.worker_job_id else None
    return render(
        request, "ongage/csv_job.html", principal, status_code=status_code, error=error, job=job, worker=worker,
        counts=service_csv.row_counts(session, job.id), show=show,
        rows=service_csv.shown_rows(session, principal, job.id, show or None, limit=100),
        actions=[a for a, (allowed, _) in service_csv.TRANSITIONS.items() if job.status in allowed],
    )


@router.get("/ongage/csv-jobs/{job_id}")
def csv_job(request: Request, job_id: int, show: str = "", session: Session = DB,
            principal: Principal = Depends(page_viewer)) -> Response:
    wanted = show if show in service_csv.ROW_STATUSES else ""
    return _job_page(request, session, principal, job_id, show=wanted)


@router.post("/ongage/csv-jobs/{job_id}/pace")
def set_pace(
    request: Request,
    job_id: int,
    interval_seconds: float = Form(...),
    lower_limit: int = Form(...),
    upper_limit: int = Form(...),
    batch_size: int = Form(...),
    session: Session = DB,
    principal: Principal = Depends(page_operator),
) -> Response:
    try:
        service_csv.set_pace(session, principal, job_id, interval_seconds=interval_seconds, lower_limit=lower_limit,
                             upper_limit=upper_limit, batch_size=batch_size)
    except AppError as exc:
        return form_error(session, exc, _job_page, request, session, principal, job_id)
    return redirect_with(f"/ongage/csv-jobs/{job_id}", "Pace saved: the next batches follow it.")


@router.post("/ongage/csv-jobs/{job_id}/{action}")
def move(request: Request, job_id: int, action: str, session: Session = DB,
         principal: Principal = Depends(page_operator)) -> Response:
    try:
        job = service_csv.transition(session, principal, job_id, action)
    except AppError as exc:
        return form_error(session, exc, _job_page, request, session, principal, job_id)
    return redirect_with(f"/ongage/csv-jobs/{job_id}", f"CSV job {job_id} is now {job.status}.")
