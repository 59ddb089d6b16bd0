"""Webhook API shapes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class EndpointIn(BaseModel):
    url: str = Field(min_length=8, max_length=500)
    secret: str = Field(min_length=16, max_length=200, description="Shared secret for the HMAC-SHA256 signature")
    events: list[str] = Field(min_length=1, description="job.finished, job.failed, batch.paused, budget.reached, "
                              "review.needed, import.applied, import.undone, ping")


class EndpointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    url: str
    events: list[str]
    active: bool
    created_by: str
    created_at: datetime


class AttemptOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    at: datetime
    status_code: int | None
    error: str | None
    elapsed_ms: int


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    endpoint_id: int
    event: str
    payload: dict[str, Any]
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    job_id: str | None
    created_at: datetime
    delivered_at: datetime | None


class DeliveryDetail(DeliveryOut):
    attempt_log: list[AttemptOut]
