"""Numbers at rest: one row per number keyed by its blind index, every status change as an event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from phoneops.core.db import Base, utcnow


class PhoneNumber(Base):
    """A number stored once: `blind_index` = HMAC-SHA256(E.164), `sealed` = AES-256-GCM of it (key id inside)."""

    __tablename__ = "phone_numbers"
    # (status, blind_index): a cleaning run's scan of the lists reads this index in key ranges, not the
    # table's whole rows (migration 0017_i20_list_scan_index; `queries.list_key_columns`)
    __table_args__ = (Index("ix_phone_numbers_status_listed_at", "status", "listed_at"),
                      Index("ix_phone_numbers_status_blind_index", "status", "blind_index"))

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary(128))
    country: Mapped[str | None] = mapped_column(String(2), index=True, default=None)
    # The one list status: blacklist | monitor | whitelist, or None (known but on no list).
    status: Mapped[str | None] = mapped_column(String(16), default=None)
    # Who decided it: auto (tracker verdicts) < hlr < manual.
    authority: Mapped[str | None] = mapped_column(String(8), default=None)
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    source: Mapped[str | None] = mapped_column(String(32), default=None)
    listed_at: Mapped[datetime | None] = mapped_column(default=None)
    # What the automatic sources said, kept apart so that none can launder another (docs/lists.md):
    # the tracker's strongest verdict (OS rules) and the newest HLR decision; a manual status masks both.
    auto_status: Mapped[str | None] = mapped_column(String(16), default=None)
    auto_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    auto_source: Mapped[str | None] = mapped_column(String(32), default=None)
    hlr_status: Mapped[str | None] = mapped_column(String(16), default=None)
    hlr_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    # The newest verdict applied ("authority|verdict|source|reason"): a repeat of it writes no event.
    last_verdict: Mapped[str | None] = mapped_column(String(160), default=None)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NumberEvent(Base):
    """One change of a number's list status, with what it was based on."""

    __tablename__ = "number_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status: Mapped[str | None] = mapped_column(String(16))  # the number's status after this event
    # What the source said (it may differ from `status`: a lower authority is recorded but kept out).
    verdict: Mapped[str | None] = mapped_column(String(16), default=None)
    note: Mapped[str | None] = mapped_column(String(200), default=None)
    previous_status: Mapped[str | None] = mapped_column(String(16), default=None)
    authority: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str | None] = mapped_column(String(64), default=None)
    source: Mapped[str | None] = mapped_column(String(32), default=None)
    actor: Mapped[str] = mapped_column(String(64))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OsRuleSet(Base):
    """A version of the OS classification rules; the newest row is in force."""

    __tablename__ = "os_rule_sets"

    id: Mapped[int] = mapped_column(primary_key=True)
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    note: Mapped[str | None] = mapped_column(Text, default=None)


class ManualImport(Base):
    """One list import (a CSV into a list, an opt-out file, inbound STOP replies, an API bulk set).

    Life: `previewing` -> `preview` (nothing changed yet) -> `applying` -> `applied` -> `undoing` -> `undone`;
    `failed` (with `error`) or `discarded` end it early. Rows from before previews existed are `done`."""

    __tablename__ = "manual_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    target: Mapped[str] = mapped_column(String(16))
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), nullable=True)
    result_file_id: Mapped[str | None] = mapped_column(ForeignKey("files.id", ondelete="SET NULL"), default=None)
    original_name: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(16), default="done")
    rows: Mapped[int] = mapped_column(Integer, default=0)
    added: Mapped[int] = mapped_column(Integer, default=0)
    already_listed: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # list | optout | inbound | bulk (see numbers/imports.py)
    kind: Mapped[str] = mapped_column(String(16), default="list")
    region: Mapped[str | None] = mapped_column(String(2), default=None)
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    preview: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    changed: Mapped[int] = mapped_column(Integer, default=0)
    new_numbers: Mapped[int] = mapped_column(Integer, default=0)
    job_id: Mapped[str | None] = mapped_column(String(36), default=None)
    applied_at: Mapped[datetime | None] = mapped_column(default=None)
    # the newest number event when the apply committed: a later event on a touched number is a later change
    last_event_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    undone_at: Mapped[datetime | None] = mapped_column(default=None)
    undone_by: Mapped[str | None] = mapped_column(String(64), default=None)
    undo: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ImportChange(Base):
    """What one applied import changed on one number: enough to put it back exactly."""

    __tablename__ = "import_changes"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    import_id: Mapped[int] = mapped_column(ForeignKey("manual_imports.id", ondelete="CASCADE"), index=True)
    number_id: Mapped[int] = mapped_column(ForeignKey("phone_numbers.id", ondelete="CASCADE"), index=True)
    what: Mapped[str] = mapped_column(String(8))  # list | optout
    existed: Mapped[bool] = mapped_column(Boolean, default=True)  # the number was known before the import
    before_status: Mapped[str | None] = mapped_column(String(16), default=None)
    before_authority: Mapped[str | None] = mapped_column(String(8), default=None)
    before_reason: Mapped[str | None] = mapped_column(String(64), default=None)
    before_source: Mapped[str | None] = mapped_column(String(32), default=None)
    before_listed_at: Mapped[datetime | None] = mapped_column(default=None)
    before_last_verdict: Mapped[str | None] = mapped_column(String(160), default=None)
    after_status: Mapped[str | None] = mapped_column(String(16), default=None)
    after_authority: Mapped[str | None] = mapped_column(String(8), default=None)


class NumberOptOut(Base):
    """A suppression kept per number (one row per number): while `state` is `active`, nothing is sent to it.

    Keyed by the number's blind index (as `phone_numbers`), so cleaning matches it like the lists, and it
    outlives the erasure of the number (the row keeps the blind index, reason, source and dates). Only
    `numbers.optouts.lift` (an admin, with a reason, audited) or the undo of the import that recorded it sets
    `lifted`; list statuses, imports, syncs and tracker verdicts never touch this table."""

    __tablename__ = "number_optouts"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    # None once privacy erased the number: the opt-out then lives on by its blind index alone, so the number
    # is still refused if it comes back (docs/optouts.md, "Erasure"); re-recording it links the new row
    number_id: Mapped[int | None] = mapped_column(
        ForeignKey("phone_numbers.id", ondelete="SET NULL"), unique=True, default=None
    )
    blind_index: Mapped[bytes] = mapped_column(LargeBinary(32), index=True)
    state: Mapped[str] = mapped_column(String(8), default="active")  # active | lifted
    reason: Mapped[str] = mapped_column(String(24))  # sms_stop | email_unsubscribe | complaint | manual
    source: Mapped[str] = mapped_column(String(32))  # messagewhiz | ongage | inbound_csv | import | api | ui ...
    detail: Mapped[str | None] = mapped_column(String(200), default=None)
    opted_out_at: Mapped[datetime] = mapped_column(default=utcnow)
    recorded_by: Mapped[str] = mapped_column(String(64))
    import_id: Mapped[int | None] = mapped_column(
        ForeignKey("manual_imports.id", ondelete="SET NULL"), default=None
    )
    lifted_at: Mapped[datetime | None] = mapped_column(default=None)
    lifted_by: Mapped[str | None] = mapped_column(String(64), default=None)
    lift_reason: Mapped[str | None] = mapped_column(String(200), default=None)
