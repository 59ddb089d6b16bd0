"""Tables of the Ongage domain: the sync state of each converted number's conversion, sync runs, CSV jobs and
their rows.

No phone number or synthetic email (it holds the number) is stored in plaintext for the conversion sync: the
contact is rebuilt from the number core (blind index -> sealed number) at send time. CSV job rows keep the
uploaded values as given (they are the job's input, like the uploaded file itself).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow

BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class OngageConversion(Base):
    """One conversion of a configured country and where its contact stands at Ongage.

    status: pending (to send) | sent | failed (will be retried at `next_attempt_at`) | gave_up (retry limit
    reached; shown, re-queued by hand) | invalid (no number to send, never retried).
    """

    __tablename__ = "ongage_conversions"
    __table_args__ = (Index("ix_ongage_conversions_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    conversion_id: Mapped[int] = mapped_column(ForeignKey("voluum_conversions.id", ondelete="CASCADE"), unique=True)
    country: Mapped[str] = mapped_column(String(2))
    kind: Mapped[str] = mapped_column(String(8))  # REG | FTD
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    next_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)  # created | updated | revived | ...
    contact_id: Mapped[str | None] = mapped_column(String(32), default=None)
    claimed_by: Mapped[str | None] = mapped_column(String(64), default=None)
    claimed_at: Mapped[datetime | None] = mapped_column(default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OngageSyncRun(Base):
    """One pass of the conversion sync: what it enrolled, sent, and what failed."""

    __tablename__ = "ongage_sync_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    trigger: Mapped[str] = mapped_column(String(16))  # periodic | manual
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | succeeded | failed
    enrolled: Mapped[int] = mapped_column(Integer, default=0)
    contacts: Mapped[int] = mapped_column(Integer, default=0)
    calls: Mapped[int] = mapped_column(Integer, default=0)
    sent: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    gave_up: Mapped[int] = mapped_column(Integer, default=0)
    invalid: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class OngageCsvJob(Base):
    """An uploaded CSV of contacts sent to Ongage at a pace.

    status: draft -> running <-> paused -> done; cancelled from any of them but done; failed when the worker
    met an error it cannot get past (resume retries). `worker_job_id` is the background job now carrying it.
    """

    __tablename__ = "ongage_csv_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(255))
    file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="draft")
    interval_seconds: Mapped[float] = mapped_column(Float, default=60.0)  # between two sends
    lower_limit: Mapped[int] = mapped_column(Integer, default=1)  # rows per send, at least ...
    upper_limit: Mapped[int] = mapped_column(Integer, default=1)  # ... and at most
    batch_size: Mapped[int] = mapped_column(Integer, default=500)  # contacts per Ongage call
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_sent: Mapped[int] = mapped_column(Integer, default=0)
    rows_failed: Mapped[int] = mapped_column(Integer, default=0)
    worker_job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    next_run_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class OngageCsvRow(Base):
    """One row of a CSV job. status: pending | sending (handed to Ongage, answer not recorded yet: reconciled
    with Ongage before anything is sent again) | sent | failed."""

    __tablename__ = "ongage_csv_rows"
    __table_args__ = (
        UniqueConstraint("csv_job_id", "row_no"),
        Index("ix_ongage_csv_rows_csv_job_id_status_row_no", "csv_job_id", "status", "row_no"),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    csv_job_id: Mapped[int] = mapped_column(ForeignKey("ongage_csv_jobs.id", ondelete="CASCADE"))
    row_no: Mapped[int] = mapped_column(Integer)  # 1 = the first row after the header
    list_id: Mapped[str] = mapped_column(String(32), default="")
    email: Mapped[str] = mapped_column(String(255))
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    send_id: Mapped[str | None] = mapped_column(String(36), default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    outcome: Mapped[str | None] = mapped_column(String(16), default=None)
    contact_id: Mapped[str | None] = mapped_column(String(32), default=None)
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
