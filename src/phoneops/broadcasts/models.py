"""Tables of the broadcasts domain: one stats row per broadcast, per campaign and day, per imported day, and
the cost pushed per campaign and day.

A broadcast is keyed by MessageWhiz's id: re-importing a day updates its rows in place. Voluum numbers on a
broadcast row cover that broadcast's campaign from the send hour to 24 h later (the original's window); the
campaign-day rows cover the union of those windows once, so analytics never count a visit twice.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow

MONEY = Numeric(14, 4)
PERCENT = Numeric(9, 2)
RATE = Numeric(18, 8)


class BroadcastStat(Base):
    """One broadcast of one day as last imported (MessageWhiz counts + the Voluum campaign behind its link)."""

    __tablename__ = "broadcast_stats"
    __table_args__ = (
        Index("ix_broadcast_stats_day_group_name", "day", "group_name"),
        Index("ix_broadcast_stats_campaign_id_day", "campaign_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    day: Mapped[date] = mapped_column(Date, index=True)  # the send day (UTC)
    name: Mapped[str] = mapped_column(String(255), default="")
    group_name: Mapped[str] = mapped_column(String(255), default="")  # the name before `_chunk`
    send_at: Mapped[datetime | None] = mapped_column(default=None)
    state: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(32), default="")
    link_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    link_url: Mapped[str] = mapped_column(String(1000), default="")  # the target URL without its query
    campaign_id: Mapped[str | None] = mapped_column(String(64), default=None)
    campaign_name: Mapped[str] = mapped_column(String(255), default="")
    price: Mapped[Decimal | None] = mapped_column(MONEY, default=None)  # real price, currency units
    estimated_price: Mapped[Decimal | None] = mapped_column(MONEY, default=None)
    counts_for_cost: Mapped[bool] = mapped_column(default=True)  # False for states 0 and 2
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    unique_clicks: Mapped[int] = mapped_column(Integer, default=0)
    total_clicks: Mapped[int] = mapped_column(Integer, default=0)
    ctr: Mapped[Decimal | None] = mapped_column(PERCENT, default=None)  # percent
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    undelivered: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    voluum_visits: Mapped[int | None] = mapped_column(Integer, default=None)
    voluum_unique_visits: Mapped[int | None] = mapped_column(Integer, default=None)
    voluum_regs: Mapped[int | None] = mapped_column(Integer, default=None)
    voluum_ftds: Mapped[int | None] = mapped_column(Integer, default=None)
    click_to_reg: Mapped[Decimal | None] = mapped_column(PERCENT, default=None)  # percent
    reg_to_ftd: Mapped[Decimal | None] = mapped_column(PERCENT, default=None)  # percent
    voluum_from: Mapped[datetime | None] = mapped_column(default=None)
    voluum_to: Mapped[datetime | None] = mapped_column(default=None)
    note: Mapped[str | None] = mapped_column(String(255), default=None)  # why something is missing
    message_body: Mapped[str] = mapped_column(Text, default="")
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class BroadcastCampaignDay(Base):
    """A campaign's broadcasts of one day, summed, with its Voluum numbers over the union of their windows."""

    __tablename__ = "broadcast_campaign_days"
    __table_args__ = (UniqueConstraint("day", "campaign_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    campaign_name: Mapped[str] = mapped_column(String(255), default="")
    broadcasts: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))  # broadcasts that count for cost
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    unique_clicks: Mapped[int] = mapped_column(Integer, default=0)
    total_clicks: Mapped[int] = mapped_column(Integer, default=0)
    delivered: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    undelivered: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    voluum_visits: Mapped[int | None] = mapped_column(Integer, default=None)
    voluum_unique_visits: Mapped[int | None] = mapped_column(Integer, default=None)
    voluum_regs: Mapped[int | None] = mapped_column(Integer, default=None)
    voluum_ftds: Mapped[int | None] = mapped_column(Integer, default=None)
    window_from: Mapped[datetime | None] = mapped_column(default=None)
    window_to: Mapped[datetime | None] = mapped_column(default=None)


class BroadcastDay(Base):
    """The latest import of one day: counts, history files, what Voluum said."""

    __tablename__ = "broadcast_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    broadcasts: Mapped[int] = mapped_column(Integer, default=0)
    with_notes: Mapped[int] = mapped_column(Integer, default=0)
    campaigns: Mapped[int] = mapped_column(Integer, default=0)
    # the day's cost (docs/money.md): every broadcast that counts, with or without a campaign, billed currency
    cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    unattributed_cost: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))  # part of `cost`, no campaign
    recipients: Mapped[int] = mapped_column(Integer, default=0)
    voluum: Mapped[str] = mapped_column(String(16), default="ok")  # ok | off | failed
    voluum_error: Mapped[str | None] = mapped_column(Text, default=None)
    csv_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    xlsx_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    imports: Mapped[int] = mapped_column(Integer, default=0)
    imported_by: Mapped[str] = mapped_column(String(64), default="system")
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class BroadcastCostPush(Base):
    """The day's broadcast cost of one campaign as last pushed to Voluum (one row per campaign and day)."""

    __tablename__ = "broadcast_cost_pushes"
    __table_args__ = (UniqueConstraint("day", "campaign_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    campaign_id: Mapped[str] = mapped_column(String(64))
    cost: Mapped[Decimal] = mapped_column(MONEY)  # in `currency`, the tracker's
    currency: Mapped[str] = mapped_column(String(3))
    billed_cost: Mapped[Decimal | None] = mapped_column(MONEY, default=None)  # in `billed_currency`
    billed_currency: Mapped[str | None] = mapped_column(String(3), default=None)
    rate: Mapped[Decimal | None] = mapped_column(RATE, default=None)  # tracker units per billed unit
    broadcasts: Mapped[int] = mapped_column(Integer, default=0)
    outcome: Mapped[str] = mapped_column(String(16))  # sent | unchanged | failed
    error: Mapped[str | None] = mapped_column(Text, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # pushes actually sent (not "unchanged")
    pushed_by: Mapped[str] = mapped_column(String(64))
    pushed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExchangeRate(Base):
    """An admin's rate for one day: how many units of the tracker's currency one billed unit is worth."""

    __tablename__ = "broadcast_exchange_rates"
    __table_args__ = (UniqueConstraint("day", "from_currency", "to_currency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, index=True)
    from_currency: Mapped[str] = mapped_column(String(3))  # MESSAGEWHIZ_CURRENCY
    to_currency: Mapped[str] = mapped_column(String(3))  # VOLUUM_CURRENCY
    rate: Mapped[Decimal] = mapped_column(RATE)
    set_by: Mapped[str] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
