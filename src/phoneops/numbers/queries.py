"""What other domains read of the numbers store, as functions: they never import `numbers.models`
(docs/architecture.md, "a domain uses another domain's service functions")."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from phoneops.numbers.models import NumberOptOut, PhoneNumber

CHUNK = 5000  # blind indexes per IN (...) query


def list_members(session: Session, status: str, country: str | None = None) -> list[tuple[bytes, bytes, str | None]]:
    """(blind index, sealed number, country) of every number on a list, optionally of one country, oldest first."""
    query = select(PhoneNumber.blind_index, PhoneNumber.sealed, PhoneNumber.country).where(PhoneNumber.status == status)
    if country:
        query = query.where(PhoneNumber.country == country)
    return [(bytes(idx), bytes(sealed), c) for idx, sealed, c in session.execute(query.order_by(PhoneNumber.id))]


def indexes_with_a_verdict(session: Session, indexes: Sequence[bytes]) -> set[bytes]:
    """Those of `indexes` whose number is on a list or carries an HLR verdict."""
    found: set[bytes] = set()
    for start in range(0, len(indexes), CHUNK):
        found.update(bytes(i) for i in session.scalars(select(PhoneNumber.blind_index).where(
            PhoneNumber.blind_index.in_(indexes[start:start + CHUNK]),
            or_(PhoneNumber.status.is_not(None), PhoneNumber.hlr_status.is_not(None)),
        )))
    return found


def sealed_by_index(session: Session, indexes: Sequence[bytes]) -> dict[bytes, bytes]:
    """The sealed number of each of `indexes` the store holds (one not stored is absent), one query per `CHUNK`."""
    unique = list(dict.fromkeys(indexes))
    found: dict[bytes, bytes] = {}
    for start in range(0, len(unique), CHUNK):
        found.update((bytes(idx), bytes(sealed)) for idx, sealed in session.execute(
            select(PhoneNumber.blind_index, PhoneNumber.sealed).where(
                PhoneNumber.blind_index.in_(unique[start:start + CHUNK]))))
    return found


@dataclass(frozen=True)
class StoredNumber:
    id: int
    blind_index: bytes
    sealed: bytes


def numbers_among(session: Session, indexes: Select[Any], after: int, limit: int) -> list[StoredNumber]:
    """The stored numbers whose blind index the `indexes` subquery yields, by id, `limit` after id `after`
    (one query: the subquery runs inside it)."""
    rows = session.execute(
        select(PhoneNumber.id, PhoneNumber.blind_index, PhoneNumber.sealed)
        .where(PhoneNumber.id > after, PhoneNumber.blind_index.in_(indexes)).order_by(PhoneNumber.id).limit(limit)
    ).all()
    return [StoredNumber(r.id, bytes(r.blind_index), bytes(r.sealed)) for r in rows]


def count_among(session: Session, indexes: Select[Any]) -> int:
    """How many stored numbers have a blind index the `indexes` subquery yields."""
    return int(session.scalar(select(func.count()).select_from(PhoneNumber)
                              .where(PhoneNumber.blind_index.in_(indexes))) or 0)


def list_key_columns() -> tuple[str, ColumnElement[Any], ColumnElement[Any]]:
    """(table, blind index, list status) for matching a file against the lists in SQL (cleaning filters)."""
    table = PhoneNumber.__table__
    return PhoneNumber.__tablename__, table.c.blind_index, table.c.status


def optout_key_columns() -> tuple[str, ColumnElement[Any], ColumnElement[Any]]:
    """(table, blind index, opt-out state) for matching a file against the opt-outs in SQL (cleaning filters)."""
    table = NumberOptOut.__table__
    return NumberOptOut.__tablename__, table.c.blind_index, table.c.state
