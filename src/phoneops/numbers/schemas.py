"""API shapes of the numbers domain."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ListName = Literal["blacklist", "monitor", "whitelist"]


class StatusIn(BaseModel):
    number: str = Field(max_length=64)
    status: ListName | None = Field(description="null takes the number off every list")
    reason: str = Field(min_length=1, max_length=64)
    region: str | None = Field(default=None, min_length=2, max_length=2)


class BulkStatusIn(BaseModel):
    """Queued as an import (kind `bulk`): previewed first, applied by POST /api/numbers/imports/{id}/apply."""

    numbers: list[str] = Field(min_length=1, max_length=100_000)
    status: ListName | None
    reason: str = Field(min_length=1, max_length=64)
    region: str | None = Field(default=None, min_length=2, max_length=2)


class ApplyOut(BaseModel):
    numbers: int
    new_numbers: int
    changed: int
    unchanged: int
    overruled: int
    per_status: dict[str, int]


class BulkStatusOut(ApplyOut):
    rejected: list[dict[str, str]]


class NumberOut(BaseModel):
    number: str
    country: str | None
    status: str | None
    authority: str | None
    reason: str | None
    source: str | None
    listed_at: str | None
    first_seen_at: str
    history: list[dict[str, Any]]
    opt_out: dict[str, Any] | None = None


class NumberStoryOut(BaseModel):
    """Everything known about one number (`phoneops.numbers.story`)."""

    key: str
    number: str
    masked: str
    country: str | None
    known: bool
    status: dict[str, Any] | None
    voluum: dict[str, Any]
    hlr: list[dict[str, Any]]
    broadcasts: list[dict[str, Any]]
    ongage: list[dict[str, Any]]
    cleaning: dict[str, Any] | None
    imports: list[dict[str, Any]]
    erasures: list[dict[str, Any]]


class ListCounts(BaseModel):
    total: int
    last_24h: int
    last_7d: int


class RuleSetIn(BaseModel):
    rules: list[dict[str, Any]] = Field(min_length=1, max_length=200)
    note: str | None = Field(default=None, max_length=500)


class ImportOut(BaseModel):
    """An import: `status` previewing -> preview -> applying -> applied -> undoing -> undone (or failed /
    discarded). Counts: `added` new numbers, `changed`, `already_listed` unchanged, `rejected` refused."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    target: str
    original_name: str
    status: str
    rows: int
    added: int
    changed: int
    already_listed: int
    rejected: int
    new_numbers: int
    preview: dict[str, Any]
    result_file_id: str | None
    job_id: str | None
    error: str | None
    created_by: str
    created_at: datetime
    applied_at: datetime | None
    undone_at: datetime | None
    undone_by: str | None
    undo: dict[str, Any]


class OptOutIn(BaseModel):
    number: str = Field(max_length=64)
    reason: str = Field(description="sms_stop, email_unsubscribe, complaint or manual", max_length=32)
    detail: str | None = Field(default=None, max_length=200)
    region: str | None = Field(default=None, min_length=2, max_length=2)


class OptOutLiftIn(BaseModel):
    number: str = Field(max_length=64)
    reason: str = Field(min_length=1, max_length=200, description="why the opt-out no longer applies")
    region: str | None = Field(default=None, min_length=2, max_length=2)


class ExportIn(BaseModel):
    status: ListName


class TokensIn(BaseModel):
    values: list[str] = Field(min_length=1, max_length=10_000)
    region: str | None = Field(default=None, min_length=2, max_length=2)


class TokenResult(BaseModel):
    value: str
    result: str | None
    error: str | None
