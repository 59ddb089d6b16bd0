"""Tables of HLR live checks: lookups (runs), their numbers, paid-call intents, results, risky operators.

- `HlrLookup` is one run over a stored file or a list selection: its estimate, its confirmation, its
  counters, its output files. Its job does the work; the row is what the pages show.
- `HlrLookupItem` is one distinct number of a run (blind index + the number sealed at rest, as in the
  number core). Its `state` says where it is: `cached` (a result younger than the TTL exists, not paid
  again), `pending`, `sending` (part of an open intent), `done`, `review` (its call is in doubt: it may
  have been looked up and paid, so it is reported and never resent) or `failed`. At most one item per
  number is `sending` across all lookups (`IN_FLIGHT_INDEX`, a partial unique index): two lookups never
  have one number at the provider at once (`phoneops.hlr.jobs`, `LookupRunner.claim`).
- `HlrCall` is the intent of one paid provider call: a real-time call (<= 80 numbers) or a batch. It is
  committed before the call and settled after it (see `phoneops.hlr.jobs`).
- `HlrResult` is one number's answer, kept per number (also the cache that spares paying twice within
  `HLR_CACHE_TTL_DAYS`). No plaintext: the provider's record is stored without its number fields.
- `HlrRiskyOperator` and `HlrOutcomeRule` are the admin-editable data of the outcome mapping.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow

CREDITS = Numeric(14, 2)
BIGINT = BigInteger().with_variant(Integer, "sqlite")

# Item states
CACHED, PENDING, SENDING, DONE, REVIEW, FAILED = "cached", "pending", "sending", "done", "review", "failed"
# Lookup statuses (what users see; the job carries the progress)
READY = "ready"  # estimated, not started
AWAITING_CONFIRMATION = "awaiting_confirmation"  # estimated above the budget: an operator must confirm
RUNNING = "running"
SUCCEEDED = "succeeded"
NEEDS_CREDIT = "needs_credit"  # stopped: the account ran out of credit; resume after a top-up
LOOKUP_FAILED = "failed"
CANCELLED = "cancelled"
RESUMABLE = (NEEDS_CREDIT, LOOKUP_FAILED, CANCELLED)
# At most one item per number in flight (`sending`) across every lookup; the claim's conditional UPDATE keeps to
# it, this partial unique index is the backstop when two claims pass that condition at once (PostgreSQL)
IN_FLIGHT_INDEX = "uq_hlr_lookup_items_in_flight"
_IN_FLIGHT = text("state = 'sending'")


class HlrLookup(Base):
    __tablename__ = "hlr_lookups"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(24), default=READY, index=True)
    mode: Mapped[str] = mapped_column(String(16), default="batch")  # batch | realtime
    batch_size: Mapped[int] = mapped_column(Integer, default=10_000)
    source_kind: Mapped[str] = mapped_column(String(8))  # file | list
    source: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    # the estimate
    rows: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    numbers: Mapped[int] = mapped_column(Integer, default=0)
    fresh: Mapped[int] = mapped_column(Integer, default=0)
    to_lookup: Mapped[int] = mapped_column(Integer, default=0)
    # of `to_lookup`: numbers in review in another lookup (possibly paid), and numbers paid within the
    # provider's private-cache window but older than our TTL (paid again): shown apart, confirmed explicitly
    in_review: Mapped[int] = mapped_column(Integer, default=0)
    recently_paid: Mapped[int] = mapped_column(Integer, default=0)
    credits_estimate: Mapped[Decimal] = mapped_column(CREDITS, default=Decimal(0))
    # left out of the lookup before anything is paid (not among `numbers`): opted out (always), and known not
    # mobile by the line type (fixed line, toll-free ...: unless `include_non_mobile`); `credits_saved` is
    # what those of them without a fresh result would have cost
    opted_out: Mapped[int] = mapped_column(Integer, default=0)
    not_mobile: Mapped[int] = mapped_column(Integer, default=0)
    not_mobile_types: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    include_non_mobile: Mapped[bool] = mapped_column(Boolean, default=False)
    credits_saved: Mapped[Decimal] = mapped_column(CREDITS, default=Decimal(0))
    budget: Mapped[int] = mapped_column(Integer, default=0)
    ttl_days: Mapped[int] = mapped_column(Integer, default=30)
    confirmed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    confirmed_at: Mapped[datetime | None] = mapped_column(default=None)
    # the outcome
    looked_up: Mapped[int] = mapped_column(Integer, default=0)
    review: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    credits_spent: Mapped[Decimal] = mapped_column(CREDITS, default=Decimal(0))
    breakdown: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    clean_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    raw_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    message: Mapped[str | None] = mapped_column(Text, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HlrCall(Base):
    """The intent of one paid call. Real-time: `sending` -> `settled` | `unsent` | `in_doubt` (answer lost) ->
    `settling` (asked again through the provider's private cache) -> `settled` | `in_doubt_review` (too old).
    Batch: `new` -> `created` -> `uploaded` -> `starting` -> `started` -> `settled` | `failed` | `abandoned`."""

    __tablename__ = "hlr_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    lookup_id: Mapped[int] = mapped_column(ForeignKey("hlr_lookups.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # realtime | batch
    state: Mapped[str] = mapped_column(String(16))
    numbers: Mapped[int] = mapped_column(Integer, default=0)
    provider_batch_id: Mapped[str | None] = mapped_column(String(64), default=None)
    num_complete: Mapped[int] = mapped_column(Integer, default=0)
    credits: Mapped[Decimal] = mapped_column(CREDITS, default=Decimal(0))
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)  # batch: when it was started (paid)
    poll_since: Mapped[datetime | None] = mapped_column(default=None)  # batch: the polling clock
    settled_at: Mapped[datetime | None] = mapped_column(default=None)


class HlrResult(Base):
    """One number's answer from hlrlookup.com (error NONE results only: those are the paid lookups)."""

    __tablename__ = "hlr_results"
    __table_args__ = (Index("ix_hlr_results_blind_index_looked_up_at", "blind_index", "looked_up_at"),)

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    lookup_id: Mapped[int | None] = mapped_column(ForeignKey("hlr_lookups.id", ondelete="SET NULL"), default=None)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("hlr_calls.id", ondelete="SET NULL"), default=None)
    looked_up_at: Mapped[datetime] = mapped_column(default=utcnow)
    live_status: Mapped[str] = mapped_column(String(32), default="")
    number_type: Mapped[str] = mapped_column(String(32), default="")
    original_network: Mapped[str] = mapped_column(String(200), default="")
    original_mccmnc: Mapped[str] = mapped_column(String(8), default="")
    current_network: Mapped[str] = mapped_column(String(200), default="")
    current_mccmnc: Mapped[str] = mapped_column(String(8), default="")
    country_iso3: Mapped[str] = mapped_column(String(3), default="")
    ported: Mapped[bool | None] = mapped_column(default=None)
    credits_spent: Mapped[Decimal] = mapped_column(CREDITS, default=Decimal(0))
    provider_uuid: Mapped[str] = mapped_column(String(64), default="")
    provider_time: Mapped[datetime | None] = mapped_column(default=None)
    raw: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class HlrLookupItem(Base):
    __tablename__ = "hlr_lookup_items"
    __table_args__ = (
        UniqueConstraint("lookup_id", "blind_index"),
        Index("ix_hlr_lookup_items_lookup_id_state", "lookup_id", "state"),
        Index(IN_FLIGHT_INDEX, "blind_index", unique=True, sqlite_where=_IN_FLIGHT, postgresql_where=_IN_FLIGHT),
    )

    id: Mapped[int] = mapped_column(BIGINT, primary_key=True)
    lookup_id: Mapped[int] = mapped_column(ForeignKey("hlr_lookups.id", ondelete="CASCADE"))
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    sealed: Mapped[bytes] = mapped_column(LargeBinary(128))
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    state: Mapped[str] = mapped_column(String(12), default=PENDING)
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("hlr_calls.id", ondelete="SET NULL"), default=None, index=True
    )
    result_id: Mapped[int | None] = mapped_column(ForeignKey("hlr_results.id", ondelete="SET NULL"), default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)  # clean | blacklist | monitor | ignore
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    note: Mapped[str | None] = mapped_column(String(200), default=None)


class HlrRiskyOperator(Base):
    """A network whose live numbers are blacklisted (`HLR_RISKY_NETWORK`): by normalised name, by MCC-MNC, or both
    ("" when not given; an entry with both matches either)."""

    __tablename__ = "hlr_risky_operators"
    __table_args__ = (UniqueConstraint("normalized", "mccmnc"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    normalized: Mapped[str] = mapped_column(String(200), default="", index=True)
    mccmnc: Mapped[str] = mapped_column(String(8), default="", index=True)
    note: Mapped[str | None] = mapped_column(String(200), default=None)
    source: Mapped[str] = mapped_column(String(16), default="admin")  # seed (the original's list) | admin
    created_by: Mapped[str] = mapped_column(String(64), default="system")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class HlrOutcomeRule(Base):
    """An override of the default outcome for one live status (or `LIVE_RISKY`)."""

    __tablename__ = "hlr_outcome_rules"

    live_status: Mapped[str] = mapped_column(String(40), primary_key=True)
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    updated_by: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
