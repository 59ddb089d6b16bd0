"""Cleaning API: upload files, start runs (409 while one runs), read stats, download results."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TypeVar

from fastapi import APIRouter, Depends, Form, Query, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from phoneops.cleaning import filters, service, upload
from phoneops.cleaning.models import CleaningFile
from phoneops.cleaning.schemas import CleanIn, EncryptIn, FileDetail, FileOut, FilterOut, RunOut
from phoneops.core.deps import DbSession, operator, viewer
from phoneops.core.router import file_response
from phoneops.core.security import Principal
from phoneops.core.storage import CHUNK

router = APIRouter(prefix="/api/cleaning", tags=["cleaning"])


def _chunks(file: UploadFile) -> AsyncIterator[bytes]:
    async def read() -> AsyncIterator[bytes]:
        while block := await file.read(CHUNK):
            yield block

    return read()


Out = TypeVar("Out")


def _commit(session: Session, value: Out) -> Out:
    """Commit before answering: `get_db` commits after the response is sent (FastAPI's default scope for
    yield dependencies), so a client acting on a 2xx (or polling the run) must not race that commit."""
    session.commit()
    return value


def detail(session: Session, record: CleaningFile, actor: Principal) -> FileDetail:
    out = FileDetail.model_validate(record)
    out.sample = upload.shown_sample(record, actor)  # masked for viewers (phoneops.core.access)
    out.runs = [RunOut.model_validate(r) for r in service.list_runs(session, out.id)]
    return out


@router.get("/filters", response_model=list[FilterOut])
def list_filters(_: Principal = Depends(viewer)) -> list[FilterOut]:
    return [FilterOut(name=f.name, label=f.label, outcome=f.outcome, required=f.required, default=f.default)
            for f in filters.registered()]


@router.post("/files", response_model=FileDetail, status_code=201)
async def upload_file(
    file: UploadFile,
    purpose: str = Form("clean"),
    region: str | None = Form(None),
    phone_column: str | None = Form(None),
    header: str | None = Form(None, description="auto, yes or no"),
    source_label: str | None = Form(None, description="which list this is (the sources page, docs/sources.md)"),
    session: Session = DbSession,
    actor: Principal = Depends(operator),
) -> FileDetail:
    """Upload a CSV, TSV or .xlsx (streamed to storage, size-limited); 422 when it cannot be read."""
    record = await upload.upload_stream(
        session, actor, _chunks(file), filename=file.filename, content_type=file.content_type, purpose=purpose,
        region=region, phone_column=phone_column, header=header, source_label=source_label,
    )
    out = detail(session, record, actor)
    session.commit()  # before answering (get_db commits after the response is sent)
    return out


@router.get("/files", response_model=list[FileOut])
def list_files(
    purpose: str = "clean", archived: bool = False, limit: int = Query(default=100, ge=1, le=1000),
    session: Session = DbSession, _: Principal = Depends(viewer),
) -> list[FileOut]:
    return [FileOut.model_validate(f) for f in upload.list_cleaning_files(session, purpose, archived=archived,
                                                                          limit=limit)]


@router.get("/files/{file_id}", response_model=FileDetail)
def get_file(file_id: int, session: Session = DbSession, actor: Principal = Depends(viewer)) -> FileDetail:
    return detail(session, upload.get_cleaning_file(session, file_id), actor)


@router.post("/files/{file_id}/runs", response_model=RunOut, status_code=202)
def start_run(
    file_id: int, body: CleanIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> RunOut:
    """Start cleaning; 409 while another run of this file is in progress."""
    run = service.start_clean(session, actor, file_id, phone_column=body.phone_column, region=body.region,
                              filters=body.filters, add_to_used=body.add_to_used, line_type=body.line_type,
                              sms_only=body.sms_only, sms_types=body.sms_types)
    return _commit(session, RunOut.model_validate(run))


@router.post("/files/{file_id}/encrypt", response_model=RunOut, status_code=202)
def encrypt(file_id: int, body: EncryptIn, session: Session = DbSession,
            actor: Principal = Depends(operator)) -> RunOut:
    """Turn the phone column into link tokens (other columns kept)."""
    return _commit(session, RunOut.model_validate(service.start_encryption(
        session, actor, file_id, "encrypt", phone_column=body.phone_column, region=body.region)))


@router.post("/files/{file_id}/decrypt", response_model=RunOut, status_code=202)
def decrypt(file_id: int, body: EncryptIn, session: Session = DbSession,
            actor: Principal = Depends(operator)) -> RunOut:
    """Turn link tokens back into numbers (admin only: it reveals plaintext)."""
    return _commit(session, RunOut.model_validate(service.start_encryption(
        session, actor, file_id, "decrypt", phone_column=body.phone_column, region=body.region)))


@router.get("/files/{file_id}/runs", response_model=list[RunOut])
def list_runs(file_id: int, session: Session = DbSession, _: Principal = Depends(viewer)) -> list[RunOut]:
    upload.get_cleaning_file(session, file_id)
    return [RunOut.model_validate(r) for r in service.list_runs(session, file_id)]


@router.post("/files/{file_id}/archive", response_model=FileOut)
def archive(file_id: int, session: Session = DbSession, actor: Principal = Depends(operator)) -> FileOut:
    return _commit(session, FileOut.model_validate(upload.archive_file(session, actor, file_id)))


@router.post("/files/{file_id}/restore", response_model=FileOut)
def restore(file_id: int, session: Session = DbSession, actor: Principal = Depends(operator)) -> FileOut:
    return _commit(session, FileOut.model_validate(upload.restore_file(session, actor, file_id)))


@router.delete("/files/{file_id}", response_model=FileOut)
def delete(file_id: int, session: Session = DbSession, actor: Principal = Depends(operator)) -> FileOut:
    """Delete the file, its upload and every result file (audited)."""
    return _commit(session, FileOut.model_validate(upload.delete_file(session, actor, file_id)))


@router.get("/runs/{run_id}", response_model=RunOut)
def get_run(run_id: int, session: Session = DbSession, _: Principal = Depends(viewer)) -> RunOut:
    return RunOut.model_validate(service.get_run(session, run_id))


@router.get("/runs/{run_id}/stats")
def run_stats(run_id: int, session: Session = DbSession, _: Principal = Depends(viewer)) -> dict[str, object]:
    run = service.get_run(session, run_id)
    return {"run_id": run.id, "status": run.status, **run.stats}


@router.get("/runs/{run_id}/download/{which}")
def download(run_id: int, which: str, session: Session = DbSession,
             actor: Principal = Depends(operator)) -> StreamingResponse:
    """which: clean | rejected (cleaning runs), output (encryption runs); named after the original file."""
    return file_response(session, actor, service.result_file(session, actor, run_id, which))
