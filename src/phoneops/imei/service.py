"""GSM Fusion bound to our settings: building clients, and provider errors explained to users.

The domain's logic is split by meaning: `catalogue` (services cache), `submission` (input, duplicates,
cost guard, batches), `placing` (the crash-safe batch engine), `sync` (status refresh) and `history`
(search, statistics, exports, imports). Every other module gets its provider client from here.
"""

from __future__ import annotations

from dataclasses import dataclass

from phoneops.core.errors import AppError, ProviderNotConfigured, UpstreamError
from phoneops.core.http import (
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimiter,
)
from phoneops.core.logging import register_secret
from phoneops.imei.client import (
    AsyncGsmFusionClient,
    GsmFusionClient,
    GsmFusionError,
    GsmImeiAlreadyExists,
    GsmInsufficientCredit,
    GsmInvalidApiKey,
    GsmInvalidUser,
)
from phoneops.settings import Settings, get_settings

PROVIDER_NAME = "GSM Fusion"
CREDENTIAL_VARIABLES = ["GSM_FUSION_USERNAME", "GSM_FUSION_API_KEY"]
BALANCE_NOT_AVAILABLE = "not available from the provider"


@dataclass(frozen=True)
class Credentials:
    base_url: str
    username: str
    api_key: str


def credentials(settings: Settings | None = None) -> Credentials:
    """The configured credentials, or `ProviderNotConfigured` (503) naming the missing variables."""
    settings = settings or get_settings()
    key = settings.gsm_fusion_api_key.get_secret_value() if settings.gsm_fusion_api_key else ""
    if not settings.gsm_fusion_username or not key:
        raise ProviderNotConfigured(PROVIDER_NAME, list(CREDENTIAL_VARIABLES))
    register_secret(key)
    return Credentials(settings.gsm_fusion_base_url, settings.gsm_fusion_username, key)


def is_configured(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).providers().get("gsm_fusion", False)


def sync_client(settings: Settings | None = None, *, timeout: float = 30.0) -> GsmFusionClient:
    settings = settings or get_settings()
    creds = credentials(settings)
    return GsmFusionClient(
        creds.base_url, creds.username, creds.api_key, timeout=timeout, concurrency=settings.imei_concurrency
    )


def async_client(settings: Settings | None = None, *, timeout: float = 30.0) -> AsyncGsmFusionClient:
    """The batch client: `IMEI_CONCURRENCY` requests in flight, `IMEI_RATE_PER_SECOND` on average."""
    settings = settings or get_settings()
    creds = credentials(settings)
    limiter = RateLimiter(settings.imei_rate_per_second, burst=settings.imei_concurrency)
    return AsyncGsmFusionClient(
        creds.base_url, creds.username, creds.api_key, timeout=timeout,
        concurrency=settings.imei_concurrency, rate_limiter=limiter,
    )  # fmt: skip


# --- errors, as users read them -----------------------------------------------------------------------


def describe(exc: ProviderError) -> str:
    """One clear sentence for a provider failure (no secret: the client scrubs provider texts)."""
    if isinstance(exc, GsmInvalidApiKey):
        return f"GSM Fusion rejected the API key ({exc.provider_message})"
    if isinstance(exc, GsmInvalidUser):
        return f"GSM Fusion rejected the user name ({exc.provider_message})"
    if isinstance(exc, GsmInsufficientCredit):
        return f"GSM Fusion: not enough credit on the account ({exc.provider_message})"
    if isinstance(exc, GsmImeiAlreadyExists):
        return f"GSM Fusion: duplicate — this IMEI was already ordered for this service ({exc.provider_message})"
    if isinstance(exc, GsmFusionError):
        return f"GSM Fusion refused the request ({exc.provider_message})"
    if isinstance(exc, ProviderRateLimited):
        return "GSM Fusion is rate limiting us (HTTP 429); try again shortly"
    if isinstance(exc, ProviderTimeout):
        return "GSM Fusion did not answer in time"
    if isinstance(exc, ProviderUnavailable):
        return f"GSM Fusion is unreachable or failing ({exc.message})"
    return f"GSM Fusion answered something we cannot use ({exc.message})"


def as_app_error(exc: ProviderError) -> AppError:
    """The API/UI error for a provider failure met while serving a request (502/402/409...)."""
    error = UpstreamError(describe(exc), code=exc.code, details=exc.details)
    if isinstance(exc, GsmInsufficientCredit | GsmImeiAlreadyExists):
        error.status_code = exc.status_code
    return error
