"""Days as people and providers write them: one parser, one message for a bad one."""

from __future__ import annotations

from datetime import date, datetime

from phoneops.core.errors import ValidationFailed


def parse_day(value: str | date, field: str = "day") -> date:
    """A day from ISO text (anything after the date is ignored), a date, or a datetime's date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ValidationFailed(f"{field} must be a date like 2025-12-31 (got {value!r})") from None
