"""The "main database": numbers already used, keyed by blind index. Set-based inserts only."""

from __future__ import annotations

from typing import Any

import polars as pl
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from phoneops.cleaning.models import UsedNumber
from phoneops.core.db import utcnow

CHUNK = 20_000


def used_count(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(UsedNumber)) or 0)


def add_used(session: Session, kept: pl.DataFrame, run_id: int | None) -> int:
    """Add numbers (columns bi = blind index, country) to the main database; returns how many were new."""
    numbers = kept.unique(subset="bi", keep="first").drop_nulls("bi")
    if numbers.is_empty():
        return 0
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = insert(UsedNumber).on_conflict_do_nothing(index_elements=["blind_index"])
    before = used_count(session)
    now = utcnow()
    for part in numbers.iter_slices(CHUNK):
        values: list[dict[str, Any]] = [
            {"blind_index": bi, "country": c, "run_id": run_id, "added_at": now}
            for bi, c in part.select("bi", "country").iter_rows()
        ]
        session.execute(statement, values)
    return used_count(session) - before


def used_entry(session: Session, blind_index: bytes) -> dict[str, Any] | None:
    """Whether one number is in the main database, since when, and the cleaning run (and file) that put it
    there (for a number's story page)."""
    from phoneops.cleaning.models import CleaningFile, CleaningRun

    row = session.execute(
        select(UsedNumber.added_at, UsedNumber.run_id, CleaningRun.status, CleaningRun.file_id,
               CleaningFile.original_name)
        .outerjoin(CleaningRun, CleaningRun.id == UsedNumber.run_id)
        .outerjoin(CleaningFile, CleaningFile.id == CleaningRun.file_id)
        .where(UsedNumber.blind_index == blind_index)
    ).first()
    if row is None:
        return None
    return {"added_at": row.added_at.isoformat(), "run_id": row.run_id, "run_status": row.status,
            "file_id": row.file_id, "file_name": row.original_name}
