"""Tables of the Voluum domain: traffic rows and per-day results, conversions, lookups, cost pushes, live events.

Numbers are never stored in plaintext here: every row that concerns a phone number carries its blind index
(`phoneops.numbers.vault`) and, in `number_kind`, what the tracker sent (a phone, a link token, a placeholder
such as ``{{phoneNumber}}``, nothing, or something unreadable). Raw payloads are kept with the phone value
removed (`payload` / `raw`), so they can be shown and re-read without revealing numbers.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow

BIG_ID = BigInteger().with_variant(Integer, "sqlite")
MONEY = Numeric(14, 4)


class TrafficRow(Base):
    """One row of the traffic report (custom variable 1 x IP x browser version x OS version) for one day
    and traffic source. Re-syncing a day replaces all of that day's rows."""

    __tablename__ = "voluum_traffic_rows"
    __table_args__ = (
        Index("ix_voluum_traffic_rows_day", "day"),
        Index("ix_voluum_traffic_rows_blind_index_day", "blind_index", "day"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    traffic_source_id: Mapped[str] = mapped_column(String(64), default="")
    blind_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    # phone | token | placeholder | empty | invalid | bad_token
    number_kind: Mapped[str] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    ip: Mapped[str] = mapped_column(String(64), default="")
    os_version: Mapped[str] = mapped_column(String(120), default="")
    browser_version: Mapped[str] = mapped_column(String(120), default="")
    visits: Mapped[int] = mapped_column(Integer, default=0)
    unique_visits: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    conversions: Mapped[int] = mapped_column(Integer, default=0)
    revenue: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    # blacklist | monitor | whitelist | unknown (no rule matched) | skipped (no phone number)
    category: Mapped[str] = mapped_column(String(16))
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TrafficDay(Base):
    """The result of the latest sync of one day: rows, numbers per list, values skipped and why."""

    __tablename__ = "voluum_traffic_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    phone_rows: Mapped[int] = mapped_column(Integer, default=0)
    numbers: Mapped[int] = mapped_column(Integer, default=0)
    per_list: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    skipped_detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    traffic_sources: Mapped[list[str]] = mapped_column(JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    synced_by: Mapped[str] = mapped_column(String(64), default="system")
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class Conversion(Base):
    """One conversion postback; unique on (click id, transaction id, Voluum's conversion type)."""

    __tablename__ = "voluum_conversions"
    __table_args__ = (
        UniqueConstraint("click_id", "transaction_id", "conversion_type"),
        Index("ix_voluum_conversions_blind_index", "blind_index"),
        Index("ix_voluum_conversions_country_kind_postback_at", "country", "kind", "postback_at"),
        Index("ix_voluum_conversions_offer_id", "offer_id"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    click_id: Mapped[str] = mapped_column(String(64))
    transaction_id: Mapped[str] = mapped_column(String(128), default="")
    conversion_type: Mapped[str] = mapped_column(String(64), default="")  # as Voluum sent it
    kind: Mapped[str] = mapped_column(String(8))  # FTD when Voluum's type is FTD, else REG
    blind_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    number_kind: Mapped[str] = mapped_column(String(16))
    country: Mapped[str | None] = mapped_column(String(2), default=None)  # from the campaign-name rule
    campaign_id: Mapped[str] = mapped_column(String(64), default="")
    campaign_name: Mapped[str] = mapped_column(String(255), default="")
    offer_id: Mapped[str] = mapped_column(String(64), default="")
    offer_name: Mapped[str] = mapped_column(String(255), default="")
    traffic_source_id: Mapped[str] = mapped_column(String(64), default="")
    visitor_country: Mapped[str] = mapped_column(String(8), default="")  # Voluum's countryCode of the click
    visit_at: Mapped[datetime | None] = mapped_column(default=None)
    postback_at: Mapped[datetime | None] = mapped_column(default=None)
    revenue: Mapped[Decimal | None] = mapped_column(MONEY, default=None)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConversionSync(Base):
    """One conversions sync over a window: every 5 minutes (periodic) or on demand (manual)."""

    __tablename__ = "voluum_conversion_syncs"
    __table_args__ = (Index("ix_voluum_conversion_syncs_trigger_started_at", "trigger", "started_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # periodic | manual
    window_from: Mapped[datetime] = mapped_column()
    window_to: Mapped[datetime] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | succeeded | failed
    rows: Mapped[int] = mapped_column(Integer, default=0)
    inserted: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    unknown_country: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class Offer(Base):
    __tablename__ = "voluum_offers"

    offer_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    __tablename__ = "voluum_campaigns"

    campaign_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    country_code: Mapped[str | None] = mapped_column(String(2), default=None)
    traffic_source_id: Mapped[str] = mapped_column(String(64), default="")
    deleted: Mapped[bool] = mapped_column(default=False)
    refreshed_at: Mapped[datetime] = mapped_column(default=utcnow)


class CostPush(Base):
    """The cost of one campaign for one day as last pushed to Voluum (one row per campaign and day)."""

    __tablename__ = "voluum_cost_pushes"
    __table_args__ = (UniqueConstraint("campaign_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date, index=True)
    cost: Mapped[Decimal] = mapped_column(MONEY)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # sent | failed
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    pushed_by: Mapped[str] = mapped_column(String(64))
    pushed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveRawEvent(Base):
    """Every live event received (SNS -> SQS, or the HTTP endpoint), its phone value removed from `payload`.
    Unique on (message id, position): a message delivered twice is stored once."""

    __tablename__ = "voluum_live_raw_events"
    __table_args__ = (
        UniqueConstraint("message_id", "position"),
        Index("ix_voluum_live_raw_events_blind_index_event_at", "blind_index", "event_at"),
        Index("ix_voluum_live_raw_events_event_at", "event_at"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(8))  # sqs | http
    message_id: Mapped[str] = mapped_column(String(128))
    position: Mapped[int] = mapped_column(Integer, default=0)
    click_id: Mapped[str] = mapped_column(String(64), default="")
    campaign_id: Mapped[str] = mapped_column(String(64), default="")
    offer_id: Mapped[str] = mapped_column(String(64), default="")
    event_at: Mapped[datetime | None] = mapped_column(default=None)
    blind_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    number_kind: Mapped[str] = mapped_column(String(16))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class LiveEvent(Base):
    """The latest live event of each number."""

    __tablename__ = "voluum_live_events"

    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    click_id: Mapped[str] = mapped_column(String(64), default="")
    campaign_id: Mapped[str] = mapped_column(String(64), default="")
    offer_id: Mapped[str] = mapped_column(String(64), default="")
    event_at: Mapped[datetime] = mapped_column(index=True)
    country_code: Mapped[str] = mapped_column(String(8), default="")
    os: Mapped[str] = mapped_column(String(64), default="")
    os_version: Mapped[str] = mapped_column(String(120), default="")
    browser: Mapped[str] = mapped_column(String(120), default="")
    ip: Mapped[str] = mapped_column(String(64), default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeadLetter(Base):
    """A live-events message that could not be read; stored and deleted from the queue, not redelivered."""

    __tablename__ = "voluum_dead_letters"

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(8))
    message_id: Mapped[str] = mapped_column(String(128), default="")
    receive_count: Mapped[int] = mapped_column(Integer, default=1)
    error: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class RunState(Base):
    """A smart cleaning or REG search that its owner (or an admin) archived or deleted. The run itself is a row
    of the core `jobs` table; no row here means the run is listed as usual."""

    __tablename__ = "voluum_run_states"

    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # archived | deleted
    changed_by: Mapped[str] = mapped_column(String(64), default="")
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    files_removed: Mapped[int] = mapped_column(Integer, default=0)


class ConversionFact(Base):
    """What purged conversions leave behind (docs/retention.md): per number, kind, offer, country, campaign,
    postback day (UTC; the sync day when Voluum sent none) and visit day, how many there were and when.

    Every reader of conversions (list cleaning's "converted", smart cleaning, REG search, offers, the counts per
    country, a number's story) reads these beside the raw rows, so a purge changes no answer. Erasure removes
    the blind index, as it does on the raw rows.
    """

    __tablename__ = "voluum_conversion_facts"
    __table_args__ = (
        Index("ix_voluum_conversion_facts_blind_index", "blind_index"),
        Index("ix_voluum_conversion_facts_country_kind_first_at", "country", "kind", "first_at"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    blind_index: Mapped[bytes | None] = mapped_column(LargeBinary(32), default=None)
    kind: Mapped[str] = mapped_column(String(8))  # REG | FTD
    offer_id: Mapped[str] = mapped_column(String(64), default="")
    offer_name: Mapped[str] = mapped_column(String(255), default="")
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    campaign_id: Mapped[str] = mapped_column(String(64), default="")
    day: Mapped[date] = mapped_column(Date)
    visit_day: Mapped[date | None] = mapped_column(Date, default=None)
    conversions: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime | None] = mapped_column(default=None)  # earliest postback time
    last_at: Mapped[datetime | None] = mapped_column(default=None)
    # Voluum's revenue of the conversions; NULL on facts folded before revenue was kept (unknown, not zero)
    revenue: Mapped[Decimal | None] = mapped_column(MONEY, default=None)


class TrafficFact(Base):
    """What purged traffic rows of a number leave behind, per OS version seen: how many rows, visits and
    clicks, first and last day. The OS versions are what the OS rules classify (`reclassify`)."""

    __tablename__ = "voluum_traffic_facts"
    __table_args__ = (UniqueConstraint("blind_index", "os_version"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    os_version: Mapped[str] = mapped_column(String(120), default="")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    visits: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    first_day: Mapped[date] = mapped_column(Date)
    last_day: Mapped[date] = mapped_column(Date)


class TrafficDayFact(Base):
    """Clicks of a number's purged traffic rows per day, for reports by period (the sources report,
    docs/sources.md). Erasure deletes them with the number's other traffic facts."""

    __tablename__ = "voluum_traffic_day_facts"
    __table_args__ = (UniqueConstraint("blind_index", "day"), Index("ix_voluum_traffic_day_facts_day", "day"))

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    day: Mapped[date] = mapped_column(Date)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
