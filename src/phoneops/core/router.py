"""Core API: who am I, jobs, users, tokens, files, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from phoneops.core import audit as audit_service
from phoneops.core import jobs, security, storage
from phoneops.core.deps import DbSession, admin, operator, viewer
from phoneops.core.errors import Forbidden, NotFound
from phoneops.core.models import ApiToken, StoredFile, User
from phoneops.core.sample import start_sample
from phoneops.core.schemas import (
    AuditOut,
    FileOut,
    JobOut,
    SampleJobIn,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
)
from phoneops.core.security import Principal, Role
from phoneops.settings import get_settings

router = APIRouter(prefix="/api", tags=["core"])


@router.get("/me")
def me(principal: Principal = Depends(viewer)) -> dict[str, object]:
    return {"user_id": principal.user_id, "username": principal.username, "role": principal.role.value}


# --- jobs --------------------------------------------------------------------------------------


@router.get("/jobs", response_model=list[JobOut])
def list_jobs(
    kind: str | None = None,
    status: str | None = Query(default=None, description="comma-separated statuses"),
    limit: int = Query(default=50, ge=1, le=500),
    session: Session = DbSession,
    _: Principal = Depends(viewer),
) -> list[JobOut]:
    return [JobOut.model_validate(j) for j in jobs.list_jobs(session, kind=kind, status=status, limit=limit)]


@router.get("/jobs/{job_id}", response_model=JobOut)
def get_job(job_id: str, session: Session = DbSession, _: Principal = Depends(viewer)) -> JobOut:
    return JobOut.model_validate(jobs.get_job(session, job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobOut)
def cancel_job(job_id: str, session: Session = DbSession, actor: Principal = Depends(operator)) -> JobOut:
    return JobOut.model_validate(jobs.cancel_job(session, actor, job_id))


@router.post("/jobs/sample", response_model=JobOut, status_code=202)
def sample_job(
    body: SampleJobIn, session: Session = DbSession, actor: Principal = Depends(operator)
) -> JobOut:
    return JobOut.model_validate(start_sample(session, actor, body.steps, body.delay))


# --- users and tokens --------------------------------------------------------------------------


@router.get("/users", response_model=list[UserOut])
def list_users(session: Session = DbSession, _: Principal = Depends(admin)) -> list[UserOut]:
    return [UserOut.model_validate(u) for u in security.list_users(session)]


@router.post("/users", response_model=UserOut, status_code=201)
def create_user(body: UserCreate, session: Session = DbSession, actor: Principal = Depends(admin)) -> UserOut:
    return UserOut.model_validate(security.create_user(session, actor, body.username, body.password, body.role))


@router.post("/users/{username}/disable", response_model=UserOut)
def disable_user(username: str, session: Session = DbSession, actor: Principal = Depends(admin)) -> UserOut:
    return UserOut.model_validate(security.set_user_active(session, actor, username, False))


@router.post("/users/{username}/enable", response_model=UserOut)
def enable_user(username: str, session: Session = DbSession, actor: Principal = Depends(admin)) -> UserOut:
    return UserOut.model_validate(security.set_user_active(session, actor, username, True))


def _token_fields(token: ApiToken, username: str) -> dict[str, object]:
    return {
        "id": token.id, "name": token.name, "prefix": token.prefix, "username": username,
        "created_at": token.created_at, "last_used_at": token.last_used_at, "revoked_at": token.revoked_at,
        "scopes": token.scopes, "expires_at": token.expires_at,
    }


def _token_out(token: ApiToken, username: str) -> TokenOut:
    return TokenOut.model_validate(_token_fields(token, username))


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(session: Session = DbSession, principal: Principal = Depends(viewer)) -> list[TokenOut]:
    user_id = None if principal.role is Role.admin else principal.user_id
    return [_token_out(t, u) for t, u in security.list_tokens(session, user_id)]


@router.post("/tokens", response_model=TokenCreated, status_code=201)
def create_token(
    body: TokenCreate, session: Session = DbSession, principal: Principal = Depends(viewer)
) -> TokenCreated:
    username = body.username or principal.username
    if username != principal.username and principal.role is not Role.admin:
        raise NotFound(f"no user {username!r}")
    token, plaintext = security.create_token(
        session, principal, username, body.name, scopes=body.scopes, expires_in_days=body.expires_in_days
    )
    return TokenCreated.model_validate({**_token_fields(token, username), "token": plaintext})


@router.delete("/tokens/{token_id}", response_model=TokenOut)
def revoke_token(token_id: int, session: Session = DbSession, principal: Principal = Depends(viewer)) -> TokenOut:
    token = security.revoke_token(session, principal, token_id)
    owner = session.get(User, token.user_id)
    return _token_out(token, owner.username if owner else "?")


# --- files -------------------------------------------------------------------------------------


# Who may fetch a stored file through the generic routes (/api/files/{id}/download, /files/{id}/download).
# Its owner always may; anyone else needs the role below. Raw uploads, imported lists and produced lists
# hold phone numbers, so they are for operators and up (DEFAULT_FILE_ROLE); exports and smart-cleaning
# results may hold plaintext numbers that only admins see, so admins; broadcast history holds no numbers.
# Kinds not listed get the default.
# Domain routes (numbers exports, Voluum runs, HLR and cleaning results, broadcast history) apply their own,
# masking-aware rules: they are how a viewer gets a masked copy.
DEFAULT_FILE_ROLE = Role.operator
FILE_ROLES: dict[str, Role] = {
    "export": Role.admin,
    "voluum-result": Role.admin,
    "broadcast_history": Role.viewer,  # per-campaign totals and message texts, no phone numbers
}


def may_download(principal: Principal, row: StoredFile) -> bool:
    if row.owner_id is not None and row.owner_id == principal.user_id:
        return True
    return principal.can(FILE_ROLES.get(row.kind, DEFAULT_FILE_ROLE))


def downloadable(session: Session, principal: Principal, file_id: str) -> StoredFile:
    """The file, if `principal` may fetch it through the generic routes (else 403; unknown ids 404)."""
    row = storage.get_file(session, file_id)
    if not may_download(principal, row):
        role = FILE_ROLES.get(row.kind, DEFAULT_FILE_ROLE)
        raise Forbidden(f"this file holds phone numbers: only its owner or the {role.value} role may download it")
    return row


@router.get("/files", response_model=list[FileOut])
def list_files(
    kind: str | None = None, session: Session = DbSession, principal: Principal = Depends(viewer)
) -> list[FileOut]:
    """Stored files the caller may download."""
    return [FileOut.model_validate(f) for f in storage.list_files(session, kind) if may_download(principal, f)]


@router.post("/files", response_model=FileOut, status_code=201)
async def upload_file(
    file: UploadFile, session: Session = DbSession, actor: Principal = Depends(operator)
) -> FileOut:
    async def chunks() -> AsyncIterator[bytes]:
        while block := await file.read(storage.CHUNK):
            yield block

    row = await storage.get_storage().save_stream(
        session, actor, chunks(), kind="upload", original_name=file.filename,
        content_type=file.content_type, max_bytes=get_settings().max_upload_bytes,
    )
    audit_service.audit(session, actor, "file.upload", "file", row.id, {"name": row.original_name, "size": row.size})
    return FileOut.model_validate(row)


@router.get("/files/{file_id}/download")
def download_file(
    file_id: str, request: Request, session: Session = DbSession, actor: Principal = Depends(viewer)
) -> StreamingResponse:
    return file_response(session, actor, downloadable(session, actor, file_id))


def file_response(session: Session, actor: Principal, row: StoredFile) -> StreamingResponse:
    """Stream a stored file with a safe Content-Disposition; the download is audited."""
    from urllib.parse import quote

    handle = storage.get_storage().open(row)  # fails now (404) rather than mid-stream

    def body() -> Iterator[bytes]:
        with handle:
            yield from iter(lambda: handle.read(storage.CHUNK), b"")

    name = storage.safe_name(row.original_name)
    ascii_name = name.encode("ascii", "replace").decode().replace("?", "_")
    audit_service.audit(session, actor, "file.download", "file", row.id, {"name": name})
    return StreamingResponse(
        body(),
        media_type=row.content_type or "application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
        },
    )


@router.get("/audit", response_model=list[AuditOut])
def audit_log(
    limit: int = Query(default=100, ge=1, le=1000),
    action: str | None = None,
    session: Session = DbSession,
    _: Principal = Depends(admin),
) -> list[AuditOut]:
    return [AuditOut.model_validate(e) for e in audit_service.recent_events(session, limit, action)]
