"""MessageWhiz bound to our settings, and what every part of the broadcasts domain shares.

The domain is split by meaning: `days` (a day's import: stats rows and history files), `costs` (the cost push
to Voluum), `live` (today's broadcasts as server-sent events) and `analytics` (over time and per campaign).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from phoneops.broadcasts.client import MessageWhizClient
from phoneops.core.dates import parse_day as parse_day  # a day, as the domain's callers read it
from phoneops.core.errors import ProviderNotConfigured, ValidationFailed
from phoneops.core.http import (
    ClientCache,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from phoneops.core.jobs import JobContext, RetryLater
from phoneops.core.logging import register_secret
from phoneops.core.security import Principal, Role
from phoneops.settings import Settings, get_settings

PROVIDER_NAME = "MessageWhiz"
CREDENTIAL_VARIABLES = ["MESSAGEWHIZ_API_KEY"]
MAX_RANGE_DAYS = 92


def is_configured(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).providers().get("messagewhiz", False)


def credentials(settings: Settings | None = None) -> tuple[str, str]:
    """(base URL, API key), or `ProviderNotConfigured` (503) naming the missing variable."""
    settings = settings or get_settings()
    key = settings.messagewhiz_api_key.get_secret_value() if settings.messagewhiz_api_key else ""
    if not key:
        raise ProviderNotConfigured(PROVIDER_NAME, list(CREDENTIAL_VARIABLES))
    register_secret(key)
    return settings.messagewhiz_base_url, key


_clients: ClientCache[MessageWhizClient] = ClientCache()


def get_client(settings: Settings | None = None) -> MessageWhizClient:
    """One client per process and credentials (its concurrency cap is shared)."""
    creds = credentials(settings)
    return _clients.get(creds, lambda: MessageWhizClient(*creds))


reset_clients = _clients.reset


STATE_TEXT = {0: "draft", 1: "scheduled", 2: "cancelled", 4: "completed"}


def state_text(state: int | None) -> str:
    """What a broadcast's `state` means (4 completed; 0 and 2 are left out of the cost, as the original did)."""
    return STATE_TEXT.get(state, f"state {state}") if state is not None else "unknown"


def today() -> date:
    return datetime.now(UTC).date()


def yesterday() -> date:
    return today() - timedelta(days=1)


def past_day(value: str | date, field: str = "day") -> date:
    """A day that has begun (today included), as the import and cost push need."""
    day = parse_day(value, field)
    if day > today():
        raise ValidationFailed(f"{day} is in the future; the last day possible is {today()}")
    return day


def day_span(start: date, end: date) -> list[date]:
    if end < start:
        raise ValidationFailed(f"the range ends ({end}) before it starts ({start})")
    count = (end - start).days + 1
    if count > MAX_RANGE_DAYS:
        raise ValidationFailed(f"at most {MAX_RANGE_DAYS} days at once (asked for {count})")
    return [start + timedelta(days=n) for n in range(count)]


def job_actor(ctx: JobContext) -> Principal:
    """Who a background job acts for (its creator's name, as written in the job's params)."""
    return Principal(ctx.created_by, str(ctx.params.get("actor") or "system"), Role.operator, via="job")


# --- jobs that meet a provider error --------------------------------------------------------------------

def is_transient(exc: ProviderError) -> bool:
    return isinstance(exc, ProviderUnavailable | ProviderRateLimited | ProviderTimeout)


def park_or_fail(ctx: JobContext, exc: ProviderError) -> RetryLater:
    """A `RetryLater` while the provider is down (the job waits, with a growing delay, as long as the outage
    lasts); any other provider error is raised as is and fails the job with the provider's message."""
    if not is_transient(exc):
        raise exc
    return RetryLater.outage(ctx, exc.provider, exc.message, exc.retry_after)
