"""Ongage bound to our settings, and what the conversion sync and the CSV jobs share.

The domain is split by meaning: `service_sync` (converted numbers sent as contacts, per-contact outcomes,
retries with backoff) and `service_csv` (uploaded CSVs sent at a pace by a resumable worker).

Settings not in `Settings` yet are read with a default here (`ONGAGE_EMAIL_PATTERN`, `ONGAGE_BATCH_SIZE`,
`ONGAGE_RETRY_LIMIT`): once the fields exist, their values are used.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from phoneops.core.errors import ProviderNotConfigured, ValidationFailed
from phoneops.core.http import ClientCache, RateLimiter
from phoneops.core.jobs import JobContext
from phoneops.core.logging import register_secret
from phoneops.core.security import Principal, Role
from phoneops.ongage.client import DEFAULT_MAX_BATCH, OngageClient, ongage_rate_limiter
from phoneops.settings import Settings, get_settings

PROVIDER_NAME = "Ongage"
DEFAULT_EMAIL_PATTERN = "+{phone}@yourmobile.com"  # the original's synthetic address
DEFAULT_BATCH_SIZE = 500  # contacts per call, as the original sent them
DEFAULT_RETRY_LIMIT = 5  # attempts per contact before it is shown as given up
BACKOFF_MINUTES = (1, 2, 4, 8, 16, 32, 60)  # Ongage's suggested back-off, then hourly


@dataclass(frozen=True)
class Credentials:
    base_url: str
    list_id: str
    username: str
    password: str
    account_code: str


def is_configured(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).providers().get("ongage", False)


def credentials(settings: Settings | None = None) -> Credentials:
    """The account's credentials, or `ProviderNotConfigured` (503) naming the missing variables."""
    settings = settings or get_settings()
    password = settings.ongage_password.get_secret_value() if settings.ongage_password else ""
    values = {"ONGAGE_LIST_ID": settings.ongage_list_id, "ONGAGE_USERNAME": settings.ongage_username,
              "ONGAGE_PASSWORD": password, "ONGAGE_ACCOUNT_CODE": settings.ongage_account_code}
    missing = [name for name, value in values.items() if not value]
    if missing:
        raise ProviderNotConfigured(PROVIDER_NAME, missing)
    register_secret(password)
    return Credentials(settings.ongage_base_url, str(settings.ongage_list_id), str(settings.ongage_username),
                       password, str(settings.ongage_account_code))


_clients: ClientCache[OngageClient] = ClientCache()
_limiters: dict[Credentials, RateLimiter] = {}
_lock = threading.Lock()


def account_limiter(settings: Settings | None = None) -> RateLimiter:
    """The account's rate limiter (Ongage counts 300 calls per minute per account), shared in this process."""
    creds = credentials(settings)
    with _lock:
        return _limiters.setdefault(creds, ongage_rate_limiter())


def get_client(list_id: str | None = None, settings: Settings | None = None, *, self_paced: bool = False
               ) -> OngageClient:
    """One client per process, account and list; every list of an account shares the account's rate limiter.

    `self_paced`: the caller takes a token from `account_limiter()` itself before each call, so that the wait
    for the rate limit happens before it records a call as in flight (the CSV worker), not inside the call.
    """
    creds = credentials(settings)
    wanted = (list_id or "").strip() or creds.list_id
    limiter = account_limiter(settings)
    return _clients.get((creds, wanted, self_paced), lambda: OngageClient(
        creds.base_url, wanted, creds.username, creds.password, creds.account_code,
        rate_limiter=_UNLIMITED if self_paced else limiter, max_batch=DEFAULT_MAX_BATCH,
    ))


_UNLIMITED = RateLimiter(rate=1e9, burst=1_000_000)  # for self-paced clients: the caller holds the real limiter


def reset_clients() -> None:
    """Close and forget the cached clients (tests, or after credentials change)."""
    _clients.reset()
    with _lock:
        _limiters.clear()


# --- what the sync is configured to do ---------------------------------------------------------------


@dataclass(frozen=True)
class SyncConfig:
    countries: tuple[str, ...]
    email_pattern: str
    batch_size: int
    retry_limit: int


def check_pattern(pattern: str) -> str:
    if pattern.count("{phone}") != 1 or "@" not in pattern:
        raise ValidationFailed("the Ongage email pattern needs one {phone} and an @, e.g. +{phone}@yourmobile.com")
    return pattern


def sync_config(
    settings: Settings | None = None,
    *,
    countries: Sequence[str] | None = None,
    email_pattern: str | None = None,
    batch_size: int | None = None,
    retry_limit: int | None = None,
) -> SyncConfig:
    """The sync's settings (`ONGAGE_COUNTRIES`, email pattern, batch size, retry limit), each overridable."""
    settings = settings or get_settings()
    chosen = countries or settings.ongage_countries or ["GB"]
    pattern = email_pattern or settings.ongage_email_pattern or DEFAULT_EMAIL_PATTERN
    batch = int(batch_size or settings.ongage_batch_size or DEFAULT_BATCH_SIZE)
    limit = int(retry_limit or settings.ongage_retry_limit or DEFAULT_RETRY_LIMIT)
    if not 1 <= batch <= DEFAULT_MAX_BATCH:
        raise ValidationFailed(f"the Ongage batch size must be between 1 and {DEFAULT_MAX_BATCH}")
    if limit < 1:
        raise ValidationFailed("the Ongage retry limit must be at least 1")
    codes = tuple(sorted({c.strip().upper() for c in chosen if c.strip()}))
    return SyncConfig(codes, check_pattern(str(pattern)), batch, limit)


def email_for(e164: str, pattern: str = DEFAULT_EMAIL_PATTERN) -> str:
    """The synthetic address of a number: `{phone}` is its digits (E.164 without the `+`)."""
    return pattern.replace("{phone}", e164.lstrip("+"))


def backoff(attempts: int) -> timedelta:
    """How long a contact waits after its `attempts`-th failure."""
    return timedelta(minutes=BACKOFF_MINUTES[min(max(attempts, 1), len(BACKOFF_MINUTES)) - 1])


@lru_cache(maxsize=512)
def country_name(code: str | None) -> str:
    """The English name of a country code (`GB` -> `United Kingdom`), the code itself when unknown."""
    if not code:
        return ""
    from phonenumbers.geocoder import _region_display_name

    return str(_region_display_name(code.upper(), "en") or code.upper())


def job_actor(ctx: JobContext) -> Principal:
    return Principal(ctx.created_by, str(ctx.params.get("actor") or "system"), Role.operator, via="job")
