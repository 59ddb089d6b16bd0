"""API shapes of the Voluum domain."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class RangeIn(BaseModel):
    """A range of whole days, `from` to `to` inclusive (`to` defaults to `from`)."""

    model_config = ConfigDict(populate_by_name=True)

    from_: dt.date = Field(alias="from")
    to: dt.date | None = None


class TrafficDayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: dt.date
    rows: int
    phone_rows: int
    numbers: int
    per_list: dict[str, int]
    skipped: int
    skipped_detail: dict[str, int]
    traffic_sources: list[str]
    job_id: str | None
    synced_by: str
    synced_at: dt.datetime


class ConversionSyncOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    trigger: str
    window_from: dt.datetime
    window_to: dt.datetime
    status: str
    rows: int
    inserted: int
    duplicates: int
    unknown_country: int
    error: str | None
    started_at: dt.datetime
    finished_at: dt.datetime | None


class OfferOut(BaseModel):
    id: str
    name: str
    REG: int = 0
    FTD: int = 0


class CampaignOut(BaseModel):
    id: str
    name: str
    country_code: str | None
    traffic_source_id: str
    deleted: bool
    refreshed_at: dt.datetime


class RefreshOut(BaseModel):
    campaigns: int
    offers: int
    new_campaigns: int
    new_offers: int


class CostItemIn(BaseModel):
    campaign_id: str = Field(min_length=1, max_length=64)
    cost: Decimal = Field(ge=0, description="In VOLUUM_CURRENCY")


class CostIn(BaseModel):
    day: dt.date
    items: list[CostItemIn] = Field(min_length=1, max_length=1000)
    force: bool = Field(default=False, description="Push again even when the same cost was already sent")


class CostResultOut(BaseModel):
    campaign_id: str
    day: str
    cost: str
    currency: str
    outcome: str
    error: str | None


class CostPushOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    campaign_id: str
    day: dt.date
    cost: Decimal
    currency: str
    status: str
    error: str | None
    attempts: int
    pushed_by: str
    pushed_at: dt.datetime


class IngestOut(BaseModel):
    messages: int
    events: int
    stored: int
    with_number: int
    numbers: int
    skipped: int
    dead_letters: int
    list_changes: int = 0


class LiveCountsOut(BaseModel):
    raw_events: int
    raw_events_24h: int
    numbers: int
    numbers_24h: int
    dead_letters: int


class DeadLetterOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    source: str
    message_id: str
    receive_count: int
    error: str
    body: str
    received_at: dt.datetime


class SmartCleanIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    offers: list[str] = Field(min_length=1, max_length=200, description="Offer ids or names")
    country: str = Field(min_length=2, max_length=2)
    from_: dt.date = Field(alias="from")
    to: dt.date
    filter_regs: bool = Field(default=False, description="Also drop numbers with a REG on those offers")
    filter_live: bool = Field(default=False, description="Also drop numbers seen live on those offers in 24 h")


class RegSearchIn(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    country: str = Field(min_length=2, max_length=7, description="ISO code, or 'unknown'")
    from_: dt.date = Field(alias="from")
    to: dt.date
    offers: list[str] = Field(default_factory=list, max_length=200, description="None: every offer")


class NumberReportOut(BaseModel):
    number: str
    country: str | None
    status: dict[str, Any] | None
    traffic_rows: int
    traffic: list[dict[str, Any]]
    conversions: list[dict[str, Any]]
    live: dict[str, Any] | None
    live_events: list[dict[str, Any]]
    hlr: list[dict[str, Any]]
    traffic_visits: int = 0
    traffic_clicks: int = 0
    first_day: str | None = None
    last_day: str | None = None
    optout: dict[str, Any] | None = None


class StatusOut(BaseModel):
    configured: bool
    sqs_configured: bool
    currency: str
    traffic_sources: list[str]
    last_traffic_day: dt.date | None
    last_conversion_sync: ConversionSyncOut | None
    live: LiveCountsOut
