"""API shapes of the IMEI domain."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class ServiceOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    package_id: str
    kind: str = "imei"
    account: str = "gsm_fusion"
    category: str
    title: str
    price: Decimal
    delivery_time: str
    details: str


class ServicesOut(BaseModel):
    services: list[ServiceOut]
    categories: list[str]
    fetched_at: datetime | None
    stale: bool
    warning: str | None


class QuoteOut(BaseModel):
    count: int
    price: Decimal | None
    cost: Decimal
    spent_today: Decimal
    reserved: Decimal
    budget: Decimal
    remaining: Decimal
    over_budget: bool
    balance: str
    balances: list[dict[str, Any]] = Field(default_factory=list)
    balance_ok: bool = True


class OrderRowIn(BaseModel):
    imei: str = Field(min_length=1, max_length=40)
    service_id: str | None = Field(default=None, max_length=32)
    fields: dict[str, str] = Field(default_factory=dict)


class BatchIn(BaseModel):
    """IMEIs as a list, as text (one per line), or as rows with their own service and provider fields."""

    service_id: str | None = Field(default=None, max_length=32)
    imeis: list[str] = Field(default_factory=list, max_length=100_000)
    text: str | None = Field(default=None, max_length=2_000_000)
    rows: list[OrderRowIn] = Field(default_factory=list, max_length=100_000)
    fields: dict[str, str] = Field(default_factory=dict, description="optional placeorder fields for every IMEI")
    force: bool = Field(default=False, description="re-check IMEIs already ordered for this service (audited)")
    confirm_over_budget: bool = Field(default=False, description="admin only: send although over the daily budget")

    @model_validator(mode="after")
    def _something(self) -> BatchIn:
        if not (self.imeis or self.text or self.rows):
            raise ValueError("give imeis, text or rows")
        return self


class OrderIn(BaseModel):
    imei: str = Field(min_length=1, max_length=40)
    service_id: str = Field(min_length=1, max_length=32)
    fields: dict[str, str] = Field(default_factory=dict)
    force: bool = False
    confirm_over_budget: bool = False


class BatchOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    job_id: str | None
    service_id: str
    service_title: str
    price: Decimal
    source: str
    file_name: str | None
    status: str
    force: bool
    over_budget_confirmed: bool
    total_input: int
    to_send: int
    invalid: int
    duplicates_in_batch: int
    duplicates_in_history: int
    error: str | None
    balance_account: str | None = None
    balance_start: Decimal | None = None
    balance_end: Decimal | None = None
    balance_difference: Decimal | None = None
    created_at: datetime
    finished_at: datetime | None


class BatchDetail(BatchOut):
    summary: dict[str, Any]
    skipped: list[dict[str, Any]]
    quote: QuoteOut | None = None
    job_status: str | None = None
    progress_done: int | None = None
    progress_total: int | None = None


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    batch_id: int | None
    imei: str
    service_id: str | None
    service_title: str
    state: str
    order_id: str | None
    status: str | None
    credits: Decimal | None
    forced: bool
    attempts: int
    error: str | None
    code: str | None
    code_display: str | None
    carrier: str | None
    simlock: str | None
    model: str | None
    fmi: str | None
    imei2: str | None
    brand: str | None = None
    serial: str | None = None
    meid: str | None = None
    icloud: str | None = None
    blacklist: str | None = None
    warranty: str | None = None
    purchase_date: str | None = None
    purchased_on: date | None = None
    activation: str | None = None
    country: str | None = None
    fmi_on: bool | None = None
    blacklisted: bool | None = None
    sim_locked: bool | None = None
    result_extra: dict[str, str] | None = None
    raw_response: str | None = None
    notes: str | None
    source: str
    placed_at: datetime | None
    order_date: datetime | None
    synced_at: datetime | None
    created_at: datetime


class OrderPageOut(BaseModel):
    items: list[OrderOut]
    total: int
    page: int
    per_page: int
    pages: int


class OrderQuery(BaseModel):
    imei: str | None = None
    imeis: str | None = Field(default=None, description="many IMEIs, comma or newline separated")
    order_id: str | None = None
    status: str | None = Field(default=None, description="provider statuses, comma separated")
    state: str | None = Field(default=None, description="our states, comma separated")
    service_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    q: str | None = Field(default=None, max_length=200, description="free text")
    batch_id: int | None = None
    fmi: str | None = Field(default=None, max_length=10, description="Find My iPhone: on | off")
    blacklist: str | None = Field(default=None, max_length=12, description="GSMA blacklist: clean | blacklisted")
    simlock: str | None = Field(default=None, max_length=10, description="SIM lock: locked | unlocked")
    carrier: str | None = Field(default=None, max_length=100, description="carrier contains (any case)")
    model: str | None = Field(default=None, max_length=100, description="model contains (any case)")
    brand: str | None = Field(default=None, max_length=100, description="brand contains (any case)")
    country: str | None = Field(default=None, max_length=100, description="country contains (any case)")


class ImportOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    file_name: str
    rows_total: int
    rows_inserted: int
    rows_updated: int
    rows_skipped: int
    created_at: datetime


class BalanceOut(BaseModel):
    available: bool
    balance: Decimal | None
    message: str
    accounts: list[dict[str, Any]] = Field(default_factory=list)
