"""IMEI tables: the cached services catalogue, batches, orders (history and submission intents), imports.

An `ImeiOrder` row is both the submission intent and the order history entry. Its `state` says where
the paid call stands:

    queued ──► sending ──► placed      provider accepted: `order_id` set, credits charged
      (intent committed      ├──► duplicate   provider said "IMEI already exists!" on a first attempt
       before placeorder)    ├──► failed      provider refused it (definitely not placed)
                             └──► review      needs a human, never resent (`review_reason` says why)
    review ──► placed (order id attached) | imported (matched from an export) | written_off (with a reason)
    imported                 from a provider export (no order id)

`review_reason`: `no_order_id` — proven placed (and paid: `placed_at` is set, the spend counts it) but its
order id is unknown; `second_order_id` — the provider gave a second order id for an IMEI and service;
`unsettled` — an answer we could not read. At most one `queued`/`sending` row per IMEI and service exists
(a partial unique index): two batches, a single order and an API call cannot race to order it twice.

`attempts` counts placeorder sends; it is incremented in the same commit that marks the intent, so a
restarted worker knows which rows may have reached the provider.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow

MONEY = Numeric(12, 4)
_BIGINT = BigInteger().with_variant(Integer, "sqlite")

# Order states (ours) — the provider's status (Pending, In Process, Completed, Rejected) is `status`.
QUEUED = "queued"
SENDING = "sending"
PLACED = "placed"
DUPLICATE = "duplicate"
FAILED = "failed"
REVIEW = "review"
IMPORTED = "imported"
WRITTEN_OFF = "written_off"
ORDER_STATES = (QUEUED, SENDING, PLACED, DUPLICATE, FAILED, REVIEW, IMPORTED, WRITTEN_OFF)
# Rows that stand for an order that exists (or may exist) at the provider for this IMEI and service.
ORDER_LIKE_STATES = (SENDING, PLACED, REVIEW, IMPORTED, WRITTEN_OFF)
# Rows whose credits were (or may have been) charged: spend per day counts those with `placed_at` (set when
# the provider accepted the order or proved it exists).
PAID_STATES = (PLACED, IMPORTED, REVIEW, WRITTEN_OFF)
ACTIVE_STATES = (QUEUED, SENDING)  # an intent in progress: at most one per IMEI and service
NO_ORDER_ID, SECOND_ORDER_ID, UNSETTLED = "no_order_id", "second_order_id", "unsettled"


class ImeiService(Base):
    """One provider package, as last fetched (`imeiservices`). Gone from the list → `active` False."""

    __tablename__ = "imei_services"

    package_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), default="imei")
    # The provider account serving it: "gsm_fusion" or a DHRU account name (whose ids read "name:id").
    account: Mapped[str] = mapped_column(String(32), default="gsm_fusion", server_default="gsm_fusion", index=True)
    category: Mapped[str] = mapped_column(String(255), default="")
    title: Mapped[str] = mapped_column(String(255), default="")
    price: Mapped[Decimal] = mapped_column(MONEY)
    delivery_time: Mapped[str] = mapped_column(String(100), default="")
    details: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    fetched_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ImeiBatch(Base):
    """One submission (a single IMEI is a batch of one): what was asked, and its running summary."""

    __tablename__ = "imei_batches"

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), index=True, default=None)
    service_id: Mapped[str] = mapped_column(String(32))
    service_title: Mapped[str] = mapped_column(String(255), default="")
    price: Mapped[Decimal] = mapped_column(MONEY)
    source: Mapped[str] = mapped_column(String(16), default="text")
    file_name: Mapped[str | None] = mapped_column(String(255), default=None)
    # queued | running | done | failed
    status: Mapped[str] = mapped_column(String(16), default="queued")
    force: Mapped[bool] = mapped_column(Boolean, default=False)
    over_budget_confirmed: Mapped[bool] = mapped_column(Boolean, default=False)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    total_input: Mapped[int] = mapped_column(Integer, default=0)
    to_send: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    duplicates_in_batch: Mapped[int] = mapped_column(Integer, default=0)
    duplicates_in_history: Mapped[int] = mapped_column(Integer, default=0)
    # Rows not sent (invalid input, duplicates caught before spending), capped: [{"value", "reason"}].
    skipped: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Balance guard (providers that report a balance): the account, its balance when the batch started and
    # when it ended, and (start - end) - the spend we recorded: not zero means money we cannot account for.
    balance_account: Mapped[str | None] = mapped_column(String(32), default=None)
    balance_start: Mapped[Decimal | None] = mapped_column(MONEY, default=None)
    balance_end: Mapped[Decimal | None] = mapped_column(MONEY, default=None)
    balance_difference: Mapped[Decimal | None] = mapped_column(MONEY, default=None)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class ImeiOrder(Base):
    """An order (or the intent to place one) for one IMEI and one service."""

    __tablename__ = "imei_orders"
    __table_args__ = (
        UniqueConstraint("batch_id", "imei"),
        Index("ix_imei_orders_service_imei", "service_id", "imei"),
        Index("ix_imei_orders_batch_state", "batch_id", "state"),
        Index("ix_imei_orders_state_status", "state", "status"),
        Index("ix_imei_orders_result_flags", "fmi_on", "blacklisted", "sim_locked"),
    )

    id: Mapped[int] = mapped_column(_BIGINT, primary_key=True)
    batch_id: Mapped[int | None] = mapped_column(ForeignKey("imei_batches.id", ondelete="SET NULL"), default=None)
    imei: Mapped[str] = mapped_column(String(15), index=True)
    service_id: Mapped[str | None] = mapped_column(String(32), default=None)
    service_title: Mapped[str] = mapped_column(String(255), default="")
    state: Mapped[str] = mapped_column(String(16), default=QUEUED)
    order_id: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    status: Mapped[str | None] = mapped_column(String(16), default=None, index=True)
    credits: Mapped[Decimal | None] = mapped_column(MONEY, default=None)
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    forced: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    code: Mapped[str | None] = mapped_column(Text, default=None)
    code_display: Mapped[str | None] = mapped_column(Text, default=None)
    carrier: Mapped[str | None] = mapped_column(String(255), default=None)
    simlock: Mapped[str | None] = mapped_column(String(255), default=None)
    model: Mapped[str | None] = mapped_column(String(255), default=None)
    fmi: Mapped[str | None] = mapped_column(String(64), default=None)
    imei2: Mapped[str | None] = mapped_column(String(32), default=None)
    # Result columns (phoneops.imei.parsing): texts as the provider wrote them, flags and date for filtering.
    brand: Mapped[str | None] = mapped_column(String(255), default=None)
    serial: Mapped[str | None] = mapped_column(String(64), default=None)
    meid: Mapped[str | None] = mapped_column(String(32), default=None)
    icloud: Mapped[str | None] = mapped_column(String(255), default=None)
    blacklist: Mapped[str | None] = mapped_column(String(255), default=None)
    warranty: Mapped[str | None] = mapped_column(String(255), default=None)
    purchase_date: Mapped[str | None] = mapped_column(String(255), default=None)
    purchased_on: Mapped[date | None] = mapped_column(Date, default=None)
    activation: Mapped[str | None] = mapped_column(String(255), default=None)
    country: Mapped[str | None] = mapped_column(String(255), default=None)
    fmi_on: Mapped[bool | None] = mapped_column(Boolean, default=None)
    blacklisted: Mapped[bool | None] = mapped_column(Boolean, default=None)
    sim_locked: Mapped[bool | None] = mapped_column(Boolean, default=None)
    result_extra: Mapped[dict[str, str] | None] = mapped_column(JSON, default=dict)  # labels we have no column for
    raw_response: Mapped[str | None] = mapped_column(Text, default=None)  # the provider's last answer for it
    notes: Mapped[str | None] = mapped_column(Text, default=None)
    review_reason: Mapped[str | None] = mapped_column(String(24), default=None)
    resolved_by: Mapped[str | None] = mapped_column(String(64), default=None)
    resolved_at: Mapped[datetime | None] = mapped_column(default=None)
    source: Mapped[str] = mapped_column(String(16), default="batch")
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    placed_at: Mapped[datetime | None] = mapped_column(default=None, index=True)
    order_date: Mapped[datetime | None] = mapped_column(default=None, index=True)
    synced_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ImeiImport(Base):
    """One provider export imported into history."""

    __tablename__ = "imei_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_name: Mapped[str] = mapped_column(String(255))
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_inserted: Mapped[int] = mapped_column(Integer, default=0)
    rows_updated: Mapped[int] = mapped_column(Integer, default=0)
    rows_skipped: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
