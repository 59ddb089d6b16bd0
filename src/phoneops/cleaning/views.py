"""Cleaning pages: files and upload, a file with its runs (live progress, stats chart, downloads), encryption."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Depends, Form, Request, UploadFile
from fastapi.responses import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.cleaning import filters, service, upload
from phoneops.cleaning.models import CleaningFile, CleaningRun
from phoneops.cleaning.router import _chunks
from phoneops.cleaning.used import used_count
from phoneops.core.deps import DbSession, page_operator, page_viewer
from phoneops.core.errors import AppError
from phoneops.core.jobs import get_job
from phoneops.core.models import Job
from phoneops.core.router import file_response
from phoneops.core.security import Principal
from phoneops.numbers.links import linked
from phoneops.settings import get_settings
from phoneops.ui.flash import redirect_with
from phoneops.ui.render import form_error, render
from phoneops.ui.views import Card

router = APIRouter(include_in_schema=False)


def dashboard_cards(session: Session) -> list[Card]:
    files = session.scalar(select(func.count(CleaningFile.id)).where(CleaningFile.purpose == "clean",
                                                                     CleaningFile.status != "deleted")) or 0
    return [Card("Lists cleaned", f"{files:,}", "/cleaning"), Card("Main database", f"{used_count(session):,}")]


def _committed(session: Session, location: str, message: str) -> Response:
    """Commit before answering: `get_db` commits after the response is sent (FastAPI's default scope for
    yield dependencies), and the page the browser loads next must see this change (and its job queued)."""
    session.commit()
    return redirect_with(location, message)


def _name(record: CleaningFile, file_id: int) -> str:
    return record.original_name or f"file {file_id}"


@dataclass
class FilePage:
    """What the file page shows: the file, its runs, the run in focus (live job, stats, chart)."""

    file: CleaningFile
    runs: list[CleaningRun]
    current: CleaningRun | None
    job: Job | None
    outcomes: dict[str, float] = field(default_factory=dict)
    countries: dict[str, float] = field(default_factory=dict)


def _file_page(session: Session, file_id: int) -> FilePage:
    record = upload.get_cleaning_file(session, file_id)
    runs = service.list_runs(session, record.id)
    current = service.last_run(session, record) or (runs[0] if runs else None)
    job = get_job(session, current.job_id) if current is not None and current.job_id else None
    page = FilePage(record, runs, current, job)
    if current is not None and current.kind == "clean" and current.status == "succeeded":
        chart = service.chart_data(current)
        page.outcomes, page.countries = chart.outcomes, chart.countries
    return page


def _render_file(request: Request, session: Session, principal: Principal, file_id: int, *,
                 error: str | None = None, status_code: int = 200) -> Response:
    page = _file_page(session, file_id)
    from phoneops.numbers.normalize import LINE_TYPES, SMS_CAPABLE

    keys = upload.sample_keys(page.file)
    return render(request, "cleaning/file.html", principal, status_code=status_code, page=page, error=error,
                  filters=filters.registered(), sample=upload.shown_sample(page.file, principal),
                  sample_keys=keys, linked=linked(session, keys),
                  line_types=list(LINE_TYPES.values()), sms_default=SMS_CAPABLE)


def _list(request: Request, session: Session, principal: Principal, purpose: str, *, archived: bool = False,
          error: str | None = None, status_code: int = 200) -> Response:
    template = "cleaning/index.html" if purpose == "clean" else "cleaning/encryption.html"
    return render(request, template, principal, status_code=status_code,
                  files=upload.list_cleaning_files(session, purpose, archived=archived), archived=archived,
                  error=error, region=get_settings().default_region,
                  max_mb=get_settings().max_upload_mb)


@router.get("/cleaning")
def index(request: Request, archived: bool = False, session: Session = DbSession,
          principal: Principal = Depends(page_viewer)) -> Response:
    return _list(request, session, principal, "clean", archived=archived)


@router.get("/cleaning/encryption")
def encryption(request: Request, session: Session = DbSession,
               principal: Principal = Depends(page_viewer)) -> Response:
    return _list(request, session, principal, "encrypt")


@router.post("/cleaning/upload")
async def upload_page(
    request: Request, file: UploadFile, purpose: str = Form("clean"), region: str = Form(""),
    phone_column: str = Form(""), header: str = Form("auto"), source_label: str = Form(""),
    session: Session = DbSession, principal: Principal = Depends(page_operator),
) -> Response:
    try:
        record = await upload.upload_stream(
            session, principal, _chunks(file), filename=file.filename, content_type=file.content_type,
            purpose=purpose if purpose in upload.PURPOSES else "clean", region=region or None,
            phone_column=phone_column or None, header=header, source_label=source_label,
        )
    except AppError as exc:
        return form_error(session, exc, _list, request, session, principal,
                          purpose if purpose in upload.PURPOSES else "clean")
    return _committed(session, f"/cleaning/files/{record.id}", f"Uploaded {record.original_name}: choose how to "
                      f"{'clean' if record.purpose == 'clean' else 'encrypt or decrypt'} it below.")


@router.get("/cleaning/files/{file_id}")
def file_page(request: Request, file_id: int, session: Session = DbSession,
              principal: Principal = Depends(page_viewer)) -> Response:
    return _render_file(request, session, principal, file_id)


@router.post("/cleaning/files/{file_id}/run")
async def run_page(request: Request, file_id: int, session: Session = DbSession,
                   principal: Principal = Depends(page_operator)) -> Response:
    form = await request.form()
    values: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    chosen = [v for v in form.getlist("filters") if isinstance(v, str)]
    try:
        record = upload.get_cleaning_file(session, file_id)
        if record.purpose == "clean":
            service.start_clean(session, principal, file_id, phone_column=values.get("phone_column") or None,
                                region=values.get("region") or None, filters=chosen,
                                add_to_used=values.get("add_to_used") == "on",
                                line_type=values.get("line_type") == "on", sms_only=values.get("sms_only") == "on",
                                sms_types=[v for v in form.getlist("sms_types") if isinstance(v, str)] or None)
        else:
            service.start_encryption(session, principal, file_id, values.get("direction", "encrypt"),
                                     phone_column=values.get("phone_column") or None,
                                     region=values.get("region") or None)
    except AppError as exc:
        return form_error(session, exc, _render_file, request, session, principal, file_id)
    return _committed(session, f"/cleaning/files/{file_id}", "Started: the run's progress shows below.")


@router.post("/cleaning/files/{file_id}/archive")
def archive_page(file_id: int, session: Session = DbSession,
                 principal: Principal = Depends(page_operator)) -> Response:
    record = upload.archive_file(session, principal, file_id)
    return _committed(session, "/cleaning", f"Archived {_name(record, file_id)}.")


@router.post("/cleaning/files/{file_id}/restore")
def restore_page(file_id: int, session: Session = DbSession,
                 principal: Principal = Depends(page_operator)) -> Response:
    record = upload.restore_file(session, principal, file_id)
    return _committed(session, f"/cleaning/files/{file_id}", f"Restored {_name(record, file_id)}.")


@router.post("/cleaning/files/{file_id}/delete")
def delete_page(file_id: int, session: Session = DbSession,
                principal: Principal = Depends(page_operator)) -> Response:
    record = upload.delete_file(session, principal, file_id)
    return _committed(session, "/cleaning" if record.purpose == "clean" else "/cleaning/encryption",
                      f"Deleted {_name(record, file_id)} and its results.")


@router.get("/cleaning/runs/{run_id}/download/{which}")
def download_page(run_id: int, which: str, session: Session = DbSession,
                  principal: Principal = Depends(page_operator)) -> Response:
    return file_response(session, principal, service.result_file(session, principal, run_id, which))
