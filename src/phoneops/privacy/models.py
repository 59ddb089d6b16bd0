"""The erasure ledger: one row per erasure request, keyed by the number's blind index (never its plaintext).

While the erasure job runs, `sealed` holds the number sealed at rest (AES-GCM bound to the blind index): the job
needs it to recognise the number in files and free text. It is cleared when the job finishes, so afterwards the
ledger only tells that a number with this blind index was erased, by whom and when.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class Erasure(Base):
    __tablename__ = "privacy_erasures"
    __table_args__ = (Index("ix_privacy_erasures_blind_index", "blind_index"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32))
    masked: Mapped[str] = mapped_column(String(32))  # country code and last two digits, as non-admins see numbers
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    region: Mapped[str] = mapped_column(String(2))  # the default region the request was read with
    sealed: Mapped[bytes | None] = mapped_column(LargeBinary(128), default=None)  # only while the job runs
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
