"""hlrlookup.com bound to our settings: the client, the confirmation budget, provider errors for users.

The domain is split by meaning: `lookups` (sources, estimate, confirmation, runs), `jobs` (the crash-safe
engine that pays for each number once), `outcomes` (what a result means for the lists), `risky` (the
admin-edited risky-operator list) and `outputs` (clean and raw files, breakdowns, result pages).
"""

from __future__ import annotations

from decimal import Decimal

from phoneops.core.errors import ProviderNotConfigured
from phoneops.core.logging import register_secret
from phoneops.hlr.client import (
    HlrAuthError,
    HlrBadRequest,
    HlrClient,
    HlrError,
    HlrInsufficientCredit,
    HlrRateLimited,
    HlrTimeout,
    HlrUnavailable,
)
from phoneops.settings import Settings, get_settings

PROVIDER_NAME = "HLR lookup"
CREDENTIAL_VARIABLES = ["HLR_API_KEY", "HLR_API_SECRET"]
# Credits above which an operator must confirm a lookup. Read from `HLR_CONFIRM_ABOVE_CREDITS` once that
# setting exists (see the domain's notes); until then this default applies.
DEFAULT_CONFIRM_ABOVE_CREDITS = 1000
CREDITS_PER_LOOKUP = 1  # docs/providers/hlr_lookup.md: 1 credit per HLR lookup (NO_COVERAGE is free)


def credits_text(amount: Decimal | int | float) -> str:
    """Credits as people read them: `12`, `12.5` (whatever the database's scale)."""
    return f"{Decimal(str(amount)):.2f}".rstrip("0").rstrip(".")


def confirm_above_credits(settings: Settings | None = None) -> int:
    return (settings or get_settings()).hlr_confirm_above_credits


def is_configured(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).providers().get("hlr", False)


def require_configured(settings: Settings | None = None) -> None:
    if not is_configured(settings):
        raise ProviderNotConfigured(PROVIDER_NAME, list(CREDENTIAL_VARIABLES))


def client(settings: Settings | None = None, *, timeout: float = 60.0) -> HlrClient:
    """The client from settings, or `ProviderNotConfigured` (503) naming the missing variables."""
    settings = settings or get_settings()
    key = settings.hlr_api_key.get_secret_value() if settings.hlr_api_key else ""
    secret = settings.hlr_api_secret.get_secret_value() if settings.hlr_api_secret else ""
    if not key or not secret:
        raise ProviderNotConfigured(PROVIDER_NAME, list(CREDENTIAL_VARIABLES))
    register_secret(key, secret)
    return HlrClient(settings.hlr_base_url, key, secret, batch_base_url=settings.hlr_batch_base_url, timeout=timeout)


def describe(exc: HlrError) -> str:
    """One clear sentence for a provider failure (the client already scrubbed the provider's texts)."""
    detail = f" ({exc.provider_message})" if exc.provider_message else ""
    if isinstance(exc, HlrInsufficientCredit):
        return "the hlrlookup.com account is out of credit"
    if isinstance(exc, HlrAuthError):
        return f"hlrlookup.com rejected the API key or secret{detail}"
    if isinstance(exc, HlrBadRequest):
        return f"hlrlookup.com refused the request{detail}"
    if isinstance(exc, HlrRateLimited):
        return "hlrlookup.com is rate limiting us (HTTP 429)"
    if isinstance(exc, HlrTimeout):
        return "hlrlookup.com did not answer in time"
    if isinstance(exc, HlrUnavailable):
        return f"hlrlookup.com is unreachable or failing ({exc.message})"
    return f"hlrlookup.com answered something we cannot use ({exc.message})"
