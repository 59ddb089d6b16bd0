"""API shapes of privacy: erasure requests and the ledger, retention, purge."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EraseIn(BaseModel):
    number: str = Field(min_length=1, max_length=64, description="The number in any writing")
    region: str | None = Field(default=None, max_length=2, description="Default region for national writings")


class ErasureOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    masked: str
    country: str | None
    region: str
    status: str
    job_id: str | None
    counts: dict[str, Any]
    error: str | None
    requested_by: str
    requested_at: datetime
    finished_at: datetime | None


class ErasedOut(BaseModel):
    erased: bool
    last_erased_at: str | None
    requests: int


class RetentionOut(BaseModel):
    tracker_events_days: int
    hlr_raw_days: int
    tracker_cutoff: str | None
    hlr_cutoff: str | None


class PurgeIn(BaseModel):
    dry_run: bool = False
