"""Sorting a table by a column the user clicked: the key is looked up in the table's own map, never put in SQL."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import asc, desc
from sqlalchemy.sql.elements import ColumnElement

from phoneops.core.errors import ValidationFailed


def _problem(sort: str, columns: Mapping[str, Any]) -> str | None:
    key = sort[1:] if sort.startswith("-") else sort
    if key in columns:
        return None
    return f"cannot sort by {sort!r}: sort by one of {', '.join(columns)} (a leading '-' sorts descending)"


def checked_sort(sort: str, columns: Mapping[str, Any], default: str) -> tuple[str, str | None]:
    """For a page: the sort asked for (empty = the default), or the default and the message saying why, so the
    table still shows."""
    problem = _problem(sort, columns) if sort else None
    return (default, problem) if problem else (sort or default, None)


def order_by(sort: str, columns: Mapping[str, Any], tiebreak: Any) -> list[ColumnElement[Any]]:
    """ORDER BY clauses for `sort` (a key of `columns`, "-" first for descending), then `tiebreak`, so that paging
    is stable. An unknown key is a ValidationFailed naming the keys there are."""
    problem = _problem(sort, columns)
    if problem:
        raise ValidationFailed(problem, code="bad_sort")
    column, descending = columns[sort.lstrip("-")], sort.startswith("-")
    return [desc(column) if descending else asc(column), desc(tiebreak) if descending else asc(tiebreak)]
