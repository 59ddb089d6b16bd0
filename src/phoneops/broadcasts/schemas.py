"""API shapes of the broadcasts domain."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ImportIn(BaseModel):
    day: dt.date
    push_costs: bool = Field(default=True, description="Push the day's costs to Voluum after the import")


class CostPushIn(BaseModel):
    day: dt.date
    force: bool = Field(default=False, description="Send even the costs Voluum already has")


class RateIn(BaseModel):
    rate: Decimal | str = Field(description="Units of VOLUUM_CURRENCY one unit of MESSAGEWHIZ_CURRENCY is worth "
                                            "on that day (above 0, at most 8 decimals)")


class RateOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: dt.date
    from_currency: str
    to_currency: str
    rate: Decimal
    set_by: str
    set_at: dt.datetime


class RatesOut(BaseModel):
    billing_currency: str
    tracker_currency: str
    needed: bool = Field(description="False when both currencies are the same (rate 1, no table)")
    rates: list[RateOut]


class DayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: dt.date
    broadcasts: int
    with_notes: int
    campaigns: int
    cost: Decimal
    unattributed_cost: Decimal
    recipients: int
    voluum: str
    voluum_error: str | None
    csv_file_id: str | None
    xlsx_file_id: str | None
    job_id: str | None
    imports: int
    imported_by: str
    imported_at: dt.datetime


class StatOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    broadcast_id: int
    day: dt.date
    name: str
    group_name: str
    send_at: dt.datetime | None
    state: int | None
    status: str
    link_id: int | None
    link_url: str
    campaign_id: str | None
    campaign_name: str
    price: Decimal | None
    estimated_price: Decimal | None
    counts_for_cost: bool
    recipients: int
    unique_clicks: int
    total_clicks: int
    ctr: Decimal | None
    delivered: int
    sent: int
    undelivered: int
    rejected: int
    voluum_visits: int | None
    voluum_unique_visits: int | None
    voluum_regs: int | None
    voluum_ftds: int | None
    click_to_reg: Decimal | None
    reg_to_ftd: Decimal | None
    voluum_from: dt.datetime | None
    voluum_to: dt.datetime | None
    note: str | None
    message_body: str
    imported_at: dt.datetime


class CampaignDayOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: dt.date
    campaign_id: str
    campaign_name: str
    broadcasts: int
    cost: Decimal
    recipients: int
    unique_clicks: int
    total_clicks: int
    delivered: int
    sent: int
    undelivered: int
    rejected: int
    voluum_visits: int | None
    voluum_unique_visits: int | None
    voluum_regs: int | None
    voluum_ftds: int | None
    window_from: dt.datetime | None
    window_to: dt.datetime | None


class DayDetailOut(BaseModel):
    day: DayOut
    broadcasts: list[StatOut]
    campaigns: list[CampaignDayOut]


class CostPushOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    day: dt.date
    campaign_id: str
    cost: Decimal
    currency: str
    billed_cost: Decimal | None = Field(description="The cost in the billing currency, before conversion")
    billed_currency: str | None
    rate: Decimal | None = Field(description="Units of `currency` per unit of `billed_currency` used")
    broadcasts: int
    outcome: str
    error: str | None
    attempts: int
    pushed_by: str
    pushed_at: dt.datetime


class PointOut(BaseModel):
    key: str
    label: str
    broadcasts: int
    cost: str
    recipients: int
    unique_clicks: int
    total_clicks: int
    ctr: float
    delivered: int
    undelivered: int
    rejected: int
    delivery_rate: float
    visits: int
    unique_visits: int
    regs: int
    ftds: int
    cost_per_reg: str | None
    cost_per_ftd: str | None


class AnalyticsOut(BaseModel):
    from_: dt.date = Field(alias="from")
    to: dt.date
    campaign: str | None
    total: PointOut
    days: list[PointOut]
    campaigns: list[PointOut]

    model_config = ConfigDict(populate_by_name=True)


class StatusOut(BaseModel):
    configured: bool
    voluum_configured: bool
    last_day: dt.date | None
    daily_at: str = "05:00 UTC"
    extra: dict[str, Any] = Field(default_factory=dict)
