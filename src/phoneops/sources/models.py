"""Source membership: which numbers (blind indexes, never plaintext) each labelled list brought in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow


class SourceNumber(Base):
    """One number of one source. A number in two sources' lists is a member of both."""

    __tablename__ = "source_numbers"
    __table_args__ = (Index("ix_source_numbers_blind_index", "blind_index"),)

    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    # kept by a cleaning of this source's list (imports and Ongage lists: every valid number is kept)
    kept: Mapped[bool] = mapped_column(Boolean, default=True)
    via: Mapped[str] = mapped_column(String(16))  # cleaning | import | ongage (how it first came in)
    first_at: Mapped[datetime] = mapped_column(default=utcnow)


class SourceList(Base):
    """One labelled list: a cleaning upload, a numbers import or an Ongage CSV, and what it brought."""

    __tablename__ = "source_lists"
    __table_args__ = (Index("ix_source_lists_via_ref", "via", "ref", unique=True),)

    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(64), index=True)
    via: Mapped[str] = mapped_column(String(16))  # cleaning | import | ongage
    ref: Mapped[str] = mapped_column(String(64))  # the cleaning file, import or Ongage CSV job id
    name: Mapped[str] = mapped_column(String(255), default="")
    numbers: Mapped[int] = mapped_column(Integer, default=0)  # distinct valid numbers recorded
    kept: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
