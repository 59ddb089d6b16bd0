"""Tables of list cleaning: uploaded files, runs (one execution with its options and results), used numbers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow


class CleaningFile(Base):
    """An uploaded table and what was learnt about it at upload (encoding, delimiter, header, columns).

    `status` is the one-run-at-a-time guard: a run starts with a conditional UPDATE from an idle status
    (ready / done / failed) to `running`, which only one request can win, whatever the process.
    """

    __tablename__ = "cleaning_files"

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(16), default="clean", index=True)  # clean | encrypt
    upload_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    original_name: Mapped[str] = mapped_column(String(255))
    # ready | running | done | failed | archived | deleted
    status: Mapped[str] = mapped_column(String(16), default="ready", index=True)
    table_kind: Mapped[str] = mapped_column(String(8), default="csv")  # csv | xlsx
    encoding: Mapped[str] = mapped_column(String(16), default="utf-8")
    delimiter: Mapped[str] = mapped_column(String(1), default=",")
    has_header: Mapped[bool] = mapped_column(Boolean, default=False)
    columns: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone_column: Mapped[int | None] = mapped_column(Integer, default=None)  # 0-based, detected or chosen
    region: Mapped[str] = mapped_column(String(2), default="GB")
    # first rows, shown on the file page: sealed with the numbers vault (cleaning.upload.sample_rows opens
    # them); `sample` is the plaintext of files uploaded before, cleared by migration 0009_i21
    sample: Mapped[list[list[str]]] = mapped_column(JSON, default=list)
    sample_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    active_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    last_run_id: Mapped[int | None] = mapped_column(Integer, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class CleaningRun(Base):
    """One execution on a file: its options, its job, its outcome, result files and stats."""

    __tablename__ = "cleaning_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("cleaning_files.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="clean")  # clean | encrypt | decrypt
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), default=None)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|succeeded|failed|cancelled
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    stats: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    output_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    rejected_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class UsedNumber(Base):
    """The "main database": numbers already used in a campaign, keyed by blind index (no plaintext)."""

    __tablename__ = "used_numbers"

    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    country: Mapped[str | None] = mapped_column(String(2), default=None)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("cleaning_runs.id", ondelete="SET NULL"), default=None)
    added_at: Mapped[datetime] = mapped_column(default=utcnow)
