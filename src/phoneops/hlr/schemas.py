"""API shapes of HLR lookups, results, risky operators and outcome rules."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from phoneops.core.schemas import JobOut


class EstimateCreate(BaseModel):
    """An estimate of a lookup over a stored file, computed in a background job (its result: the estimate)."""

    file_id: str = Field(max_length=36, description="a stored file (POST /api/files)")
    phone_column: str | None = Field(default=None, max_length=200, description="header name or 1-based number")
    region: str | None = Field(default=None, min_length=2, max_length=2, description="default: DEFAULT_REGION")
    include_non_mobile: bool = Field(default=False, description="count numbers known not to be mobile as looked up")


class LookupCreate(BaseModel):
    """A lookup over a stored file (`file_id`, its phone column, the default region) or a list selection."""

    source: Literal["file", "list"] = "file"
    file_id: str | None = Field(default=None, max_length=36, description="a stored file (POST /api/files)")
    phone_column: str | None = Field(default=None, max_length=200, description="header name or 1-based number")
    region: str | None = Field(default=None, min_length=2, max_length=2, description="default: DEFAULT_REGION")
    status: Literal["blacklist", "monitor", "whitelist"] | None = Field(default=None, description="list selection")
    country: str | None = Field(default=None, min_length=2, max_length=2)
    mode: Literal["batch", "realtime"] = "batch"
    batch_size: int | None = Field(default=None, ge=1, le=100_000)
    confirm: bool = Field(default=False, description="confirm a cost above the budget right away")
    start: bool = Field(default=True, description="false: estimate only")
    include_non_mobile: bool = Field(
        default=False, description="also look up numbers whose line type is known not to be mobile (fixed line, "
        "toll-free, VoIP ...); opted-out numbers are always left out")


class EstimateOut(BaseModel):
    rows: int
    invalid: int
    duplicates: int
    numbers: int
    fresh: int
    to_lookup: int
    in_review: int = Field(description="of to_lookup: in review or in flight in another lookup (possibly paid)")
    recently_paid: int = Field(description="of to_lookup: paid within 30 days but older than the TTL (paid again)")
    credits_estimate: str
    opted_out: int = Field(description="left out: opted out (never looked up)")
    not_mobile: int = Field(description="left out: line type known not to be mobile (unless include_non_mobile)")
    not_mobile_types: dict[str, int] = Field(description="not_mobile per line type")
    include_non_mobile: bool
    credits_saved: str = Field(description="what the numbers left out would have cost (those without a fresh result)")
    budget: int
    ttl_days: int
    needs_confirmation: bool


class LookupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str
    status: str
    mode: str
    batch_size: int
    source_kind: str
    source: dict[str, Any]
    estimate: EstimateOut
    confirmed_by: str | None
    confirmed_at: datetime | None
    looked_up: int
    review: int
    failed: int
    credits_spent: str
    counts: dict[str, int]
    breakdown: dict[str, Any]
    clean_file_id: str | None
    raw_file_id: str | None
    message: str | None
    error: str | None
    created_by: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    job: JobOut | None


class ResultOut(BaseModel):
    id: int
    number: str
    state: str
    live_status: str | None
    number_type: str | None
    network: str | None
    mccmnc: str | None
    original_network: str | None
    ported: bool | None
    credits_spent: str | None
    looked_up_at: str | None
    outcome: str | None
    reason: str | None
    note: str | None
    lookup_id: int | None = None


class RiskyOperatorIn(BaseModel):
    name: str = Field(default="", max_length=200)
    mccmnc: str = Field(default="", max_length=8)
    note: str | None = Field(default=None, max_length=200)


class RiskyOperatorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    normalized: str
    mccmnc: str
    note: str | None
    source: str
    created_by: str
    created_at: datetime


class RuleIn(BaseModel):
    action: Literal["clean", "blacklist", "monitor", "ignore"]
    reason: str | None = Field(default=None, max_length=64)


class OutcomeRuleOut(BaseModel):
    live_status: str
    action: str
    reason: str | None
    default_action: str
    default_reason: str | None
    overridden: bool


class CountOut(BaseModel):
    count: int
