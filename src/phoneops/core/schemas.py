"""API shapes of the core."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class ErrorResponse(BaseModel):
    error: ErrorBody


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    title: str
    status: str
    params: dict[str, Any]
    progress_done: int
    progress_total: int | None
    counters: dict[str, Any]
    result: dict[str, Any]
    message: str | None
    error: str | None
    created_by: int | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    username: str = Field(min_length=2, max_length=64)
    password: str = Field(min_length=10, max_length=256)
    role: str = "viewer"


class UserUpdate(BaseModel):
    role: Literal["viewer", "operator", "admin"] | None = Field(default=None, description="the new role")
    is_active: bool | None = Field(default=None, description="false disables (sessions end at once)")
    revoke_tokens: bool = Field(default=True, description="when disabling: also revoke the user's API tokens")


class PasswordReset(BaseModel):
    password: str = Field(min_length=10, max_length=256)
    revoke_tokens: bool = Field(default=False, description="also revoke the user's API tokens")


class PasswordChange(BaseModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=10, max_length=256)
    revoke_tokens: bool = Field(default=False, description="also revoke your API tokens")


class TokenCreate(BaseModel):
    name: str = Field(default="token", max_length=100)
    username: str | None = Field(default=None, description="Admins may create a token for another user")
    scopes: list[str] | None = Field(
        default=None,
        description="Any of read, numbers:write, cleaning, hlr:spend, imei:spend, admin, within the user's role; "
        "default: everything the role allows",
    )
    expires_in_days: int | None = Field(default=None, ge=1, le=3650, description="Default: never expires")


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    username: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    scopes: list[str] | None = Field(description="None: everything the user's role allows (a token made before scopes)")
    expires_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; store it now")


class FileOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str
    original_name: str
    size: int
    sha256: str | None
    status: str
    owner_id: int | None
    created_at: datetime


class SampleJobIn(BaseModel):
    steps: int = Field(default=20, ge=1, le=100_000)
    delay: float = Field(default=0.05, ge=0, le=10)


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    client_ip: str | None
    detail: dict[str, Any]
