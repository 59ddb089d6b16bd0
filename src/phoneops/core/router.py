"""Core API: who am I, jobs, users, tokens, files, audit."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

from fastapi import APIRouter, Depends, Query, Request, UploadFile
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session

from phoneops.core import access, jobs, security, storage
from phoneops.core import audit as audit_service
from phoneops.core.access import Act, Obj
from phoneops.core.deps import DbSession, admin, operator, viewer
from phoneops.core.errors import NotFound
from phoneops.core.models import ApiToken, StoredFile, User
from phoneops.core.sample import start_sample
from phoneops.core.schemas import (
    AuditOut,
    FileOut,
    JobOut,
    PasswordChange,
    PasswordReset,
    SampleJobIn,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
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
def disable_user(username: str, revoke_tokens: bool = True, session: Session = DbSession,
                 actor: Principal = Depends(admin)) -> UserOut:
    """Disable a user: their sessions end at once; their API tokens are revoked unless revoke_tokens=false."""
    return UserOut.model_validate(security.set_user_active(session, actor, username, False,
                                                           revoke_tokens=revoke_tokens))


@router.patch("/users/{username}", response_model=UserOut)
def update_user(username: str, body: UserUpdate, session: Session = DbSession,
                actor: Principal = Depends(admin)) -> UserOut:
    """Change a user's role and/or disable or enable them (audited); 409 for the last active admin."""
    user = security.get_user(session, username)
    if body.role is not None:
        user = security.set_role(session, actor, username, body.role)
    if body.is_active is not None:
        user = security.set_user_active(session, actor, username, body.is_active, revoke_tokens=body.revoke_tokens)
    return UserOut.model_validate(user)


@router.post("/users/{username}/password", response_model=UserOut)
def reset_password(username: str, body: PasswordReset, session: Session = DbSession,
                   actor: Principal = Depends(admin)) -> UserOut:
    """An admin sets a user's password: every session of the user ends at once (tokens when asked)."""
    return UserOut.model_validate(security.set_password(session, actor, username, body.password,
                                                        revoke_tokens=body.revoke_tokens))


@router.post("/me/password", response_model=UserOut)
def change_own_password(body: PasswordChange, session: Session = DbSession,
                        principal: Principal = Depends(viewer)) -> UserOut:
    """Change your own password (the current one is checked): every session of yours ends, and your API
    tokens too when revoke_tokens is true (else the token making this call keeps working)."""
    return UserOut.model_validate(security.change_password(session, principal, body.current_password,
                                                           body.new_password, revoke_tokens=body.revoke_tokens))


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
    return [_token_out(t, u) for t, u in security.list_tokens(session, user_id)
            if access.allowed(principal, Obj.token, Act.read, t.user_id)]


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
    token = security.revoke_token(session, principal, access.token_for(session, principal, token_id))
    owner = session.get(User, token.user_id)
    return _token_out(token, owner.username if owner else "?")


# --- files -------------------------------------------------------------------------------------


# Who may fetch a stored file is decided by phoneops.core.access (FILE_ROLES there, re-exported here).
DEFAULT_FILE_ROLE = access.DEFAULT_FILE_ROLE
FILE_ROLES = access.FILE_ROLES


def may_download(principal: Principal, row: StoredFile) -> bool:
    return access.allowed(principal, Obj.file, Act.download, row.owner_id, file_kind=row.kind)


def downloadable(session: Session, principal: Principal, file_id: str) -> StoredFile:
    """The file, if `principal` may fetch it through the generic routes (else 403; unknown ids 404)."""
    row = storage.get_file(session, file_id)
    access.check(principal, Obj.file, Act.download, row.owner_id, file_kind=row.kind)
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
