"""API shapes of the Ongage domain."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SyncRunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger: str
    status: str
    enrolled: int
    contacts: int
    calls: int
    sent: int
    failed: int
    gave_up: int
    invalid: int
    error: str | None
    job_id: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None


class StatusOut(BaseModel):
    configured: bool
    countries: list[str]
    email_pattern: str
    batch_size: int
    retry_limit: int
    counts: dict[str, int]
    last_run: SyncRunOut | None


class ProblemOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str
    attempts: int
    last_error: str | None
    next_attempt_at: dt.datetime | None
    kind: str
    country: str
    click_id: str
    campaign_name: str
    postback_at: dt.datetime | None
    number: str = Field(description="masked")


class RequeueIn(BaseModel):
    ids: list[int] = Field(default_factory=list, max_length=10_000, description="none: every given-up contact")


class RequeueOut(BaseModel):
    requeued: int


class PaceIn(BaseModel):
    interval_seconds: float | None = Field(default=None, description="Seconds between two sends (1 to 86400)")
    lower_limit: int | None = Field(default=None, description="Rows per send, at least")
    upper_limit: int | None = Field(default=None, description="Rows per send, at most")
    batch_size: int | None = Field(default=None, description="Contacts per Ongage call (1 to 500)")


class CsvJobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    file_id: str | None
    status: str
    interval_seconds: float
    lower_limit: int
    upper_limit: int
    batch_size: int
    rows_total: int
    rows_sent: int
    rows_failed: int
    worker_job_id: str | None
    error: str | None
    created_by: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    next_run_at: dt.datetime | None
    finished_at: dt.datetime | None


class CsvJobDetailOut(CsvJobOut):
    counts: dict[str, int]


class CsvRowOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    row_no: int
    list_id: str
    email: str
    fields: dict[str, Any]
    status: str
    error: str | None
    outcome: str | None
    contact_id: str | None
    sent_at: dt.datetime | None
