"""The device-check providers bound to our settings (GSM Fusion and the DHRU accounts): building clients per
account, and provider errors explained to users in the name of the account that answered.

The domain's logic is split by meaning: `catalogue` (services cache), `submission` (input, duplicates,
cost guard, batches), `placing` (the crash-safe batch engine), `sync` (status refresh) and `history`
(search, statistics, exports, imports). Every other module gets its provider client from here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Protocol

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
    DeviceCheckRefused,
    GsmFusionClient,
    GsmInvalidApiKey,
    GsmInvalidUser,
    ImeiAlreadyExists,
    InsufficientCredit,
    OrderStatus,
    PlacedOrder,
    Service,
)
from phoneops.imei.dhru import AccountInfo, AsyncDhruClient, DhruAuthError, DhruClient
from phoneops.settings import DhruAccount, Settings, get_settings

PROVIDER_NAME = "GSM Fusion"
CREDENTIAL_VARIABLES = ["GSM_FUSION_USERNAME", "GSM_FUSION_API_KEY"]
ANY_PROVIDER_VARIABLES = [*CREDENTIAL_VARIABLES, "DHRU_ACCOUNTS"]
BALANCE_NOT_AVAILABLE = "not available from the provider"
GSM = "gsm_fusion"  # the account name of GSM Fusion; DHRU accounts are named in DHRU_ACCOUNTS


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
    """Any device-check provider configured (GSM Fusion or a DHRU account)."""
    providers = (settings or get_settings()).providers()
    return providers.get("gsm_fusion", False) or providers.get("dhru", False)


def require_configured(settings: Settings | None = None) -> None:
    """`ProviderNotConfigured` (503) when neither GSM Fusion nor any DHRU account is configured."""
    if not is_configured(settings):
        raise ProviderNotConfigured("GSM Fusion or DHRU", list(ANY_PROVIDER_VARIABLES))


# --- accounts: which provider account serves a service or an order ------------------------------------


def split_id(value: str | None) -> tuple[str, str]:
    """`(account, provider's id)` of one of our service or order ids: DHRU ids carry `account:` in front,
    GSM Fusion ids are the provider's own (digits, never a colon)."""
    text = (value or "").strip()
    account, sep, remote = text.partition(":")
    return (account, remote) if sep else (GSM, text)


def join_id(account: str, remote: str) -> str:
    return remote if account == GSM else f"{account}:{remote}"


def accounts(settings: Settings | None = None) -> list[str]:
    """Configured account names: `gsm_fusion` (when configured) and every DHRU account."""
    settings = settings or get_settings()
    names = [GSM] if settings.providers().get("gsm_fusion") else []
    return names + [a.name for a in settings.dhru_accounts]


def _find_dhru(name: str, settings: Settings | None) -> DhruAccount | None:
    return next((a for a in (settings or get_settings()).dhru_accounts if a.name == name), None)


def dhru_account(name: str, settings: Settings | None = None) -> DhruAccount:
    account = _find_dhru(name, settings)
    if account is None:
        raise ProviderNotConfigured(f"DHRU account {name!r}", ["DHRU_ACCOUNTS"])
    register_secret(account.api_key.get_secret_value())
    return account


def account_title(name: str, settings: Settings | None = None) -> str:
    """How users read an account's name: "GSM Fusion", a DHRU account's label, or "DHRU <name>"."""
    if name == GSM:
        return PROVIDER_NAME
    account = _find_dhru(name, settings)
    return account.title if account else f"DHRU {name}"


def dhru_client_options(name: str, settings: Settings, *, timeout: float) -> dict[str, Any]:
    """The constructor arguments of a DHRU account's client (sync or async): credentials and limits."""
    a = dhru_account(name, settings)
    return {"account": a.name, "base_url": a.base_url, "username": a.username,
            "api_key": a.api_key.get_secret_value(), "base64_parameters": a.base64_parameters,
            "timeout": timeout, "concurrency": settings.imei_concurrency}


def has_balance(name: str) -> bool:
    """Whether the provider reports a balance (DHRU `accountinfo`; GSM Fusion has no such action)."""
    return name != GSM


def sync_account_client(
    name: str, settings: Settings | None = None, *, timeout: float = 30.0
) -> GsmFusionClient | DhruClient:
    settings = settings or get_settings()
    if name == GSM:
        return sync_client(settings, timeout=timeout)
    return DhruClient(**dhru_client_options(name, settings, timeout=timeout))


class StatusSource(Protocol):
    """What the status sync needs: statuses of many order ids (a client, or the pool of every account)."""

    def get_imeis(self, order_ids: Sequence[str | int], chunk_size: int = ...) -> list[OrderStatus]: ...

    def close(self) -> None: ...


@dataclass
class SyncPool:
    """Synchronous clients of every account, created on first use; order ids namespaced per account."""

    settings: Settings
    timeout: float = 30.0
    _clients: dict[str, GsmFusionClient | DhruClient] = field(default_factory=dict)

    def client(self, account: str) -> GsmFusionClient | DhruClient:
        if account not in self._clients:
            self._clients[account] = sync_account_client(account, self.settings, timeout=self.timeout)
        return self._clients[account]

    def get_imeis(self, order_ids: Sequence[str | int], chunk_size: int = 100) -> list[OrderStatus]:
        by_account: dict[str, list[str]] = {}
        for order_id in order_ids:
            account, remote = split_id(str(order_id))
            by_account.setdefault(account, []).append(remote)
        found: list[OrderStatus] = []
        for account, remotes in by_account.items():
            for status in self.client(account).get_imeis(remotes, chunk_size=chunk_size):
                found.append(replace(status, order_id=join_id(account, status.order_id)))
        return found

    def imei_services(self, account: str) -> list[Service]:
        return self.client(account).imei_services()

    def file_services(self, account: str) -> list[Service] | None:
        """GSM Fusion's `fileservices`; None for DHRU accounts (their file services are not used here)."""
        client = self.client(account)
        return client.file_services() if isinstance(client, GsmFusionClient) else None

    def balance(self, account: str) -> AccountInfo | None:
        client = self.client(account)
        return client.account_info() if isinstance(client, DhruClient) else None

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def __enter__(self) -> SyncPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def sync_pool(settings: Settings | None = None, *, timeout: float = 30.0) -> SyncPool:
    settings = settings or get_settings()
    require_configured(settings)
    return SyncPool(settings, timeout)


@dataclass
class AsyncPool:
    """The batch engine's clients, one per account (created on first use). `place_order` takes OUR service
    id and answers with OUR order id (`account:reference` for DHRU), so the engine is the same for every
    provider: intents, reconciliation and settlement know nothing of accounts."""

    settings: Settings
    timeout: float = 30.0
    _clients: dict[str, AsyncGsmFusionClient | AsyncDhruClient] = field(default_factory=dict)

    def client(self, account: str) -> AsyncGsmFusionClient | AsyncDhruClient:
        if account not in self._clients:
            s = self.settings
            limiter = RateLimiter(s.imei_rate_per_second, burst=s.imei_concurrency)
            if account == GSM:
                self._clients[account] = async_client(s, timeout=self.timeout)
            else:
                options = dhru_client_options(account, s, timeout=self.timeout)
                self._clients[account] = AsyncDhruClient(**options, rate_limiter=limiter)
        return self._clients[account]

    async def place_order(self, imei: str, service_id: str, **fields: Any) -> PlacedOrder:
        account, remote = split_id(service_id)
        placed = await self.client(account).place_order(imei, remote, **fields)
        return replace(placed, order_id=join_id(account, placed.order_id))

    async def balance(self, account: str) -> AccountInfo | None:
        if not has_balance(account):
            return None
        client = self.client(account)
        return await client.account_info() if isinstance(client, AsyncDhruClient) else None

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        await asyncio.gather(*(c.aclose() for c in clients), return_exceptions=True)


def async_pool(settings: Settings | None = None, *, timeout: float = 30.0) -> AsyncPool:
    settings = settings or get_settings()
    require_configured(settings)
    return AsyncPool(settings, timeout)


def read_balance(account: str, settings: Settings | None = None) -> Decimal | None:
    """The account's balance now (DHRU `accountinfo`), None when the provider reports none."""
    if not has_balance(account):
        return None
    with SyncPool(settings or get_settings(), timeout=15.0) as pool:
        info = pool.balance(account)
    return info.credit if info else None


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
    )


# --- errors, as users read them -----------------------------------------------------------------------


def provider_label(exc: ProviderError) -> str:
    """The account that answered, as users read it ("GSM Fusion", a DHRU account's label)."""
    provider = getattr(exc, "provider", None) or ""
    if provider.startswith("dhru:"):
        return account_title(provider.partition(":")[2])
    return PROVIDER_NAME


# What users read, first match wins: `label` is the account that answered, `said` the provider's (scrubbed) text
# for refusals, our transport's message otherwise.
_REFUSALS: tuple[tuple[type[DeviceCheckRefused], str], ...] = (
    (GsmInvalidApiKey, "{label} rejected the API key ({said})"),
    (GsmInvalidUser, "{label} rejected the user name ({said})"),
    (DhruAuthError, "{label} rejected the credentials ({said})"),
    (InsufficientCredit, "{label}: not enough credit on the account ({said})"),
    (ImeiAlreadyExists, "{label}: duplicate — this IMEI was already ordered for this service ({said})"),
    (DeviceCheckRefused, "{label} refused the request ({said})"),
)
_FAILURES: tuple[tuple[type[ProviderError], str], ...] = (
    (ProviderRateLimited, "{label} is rate limiting us (HTTP 429); try again shortly"),
    (ProviderTimeout, "{label} did not answer in time"),
    (ProviderUnavailable, "{label} is unreachable or failing ({said})"),
    (ProviderError, "{label} answered something we cannot use ({said})"),
)


def describe(exc: ProviderError) -> str:
    """One clear sentence for a provider failure, naming the account that answered (no secret: the clients
    scrub provider texts)."""
    said = exc.provider_message if isinstance(exc, DeviceCheckRefused) else exc.message
    table = _REFUSALS if isinstance(exc, DeviceCheckRefused) else _FAILURES
    template = next(text for kind, text in table if isinstance(exc, kind))
    return template.format(label=provider_label(exc), said=said)


def as_app_error(exc: ProviderError) -> AppError:
    """The API/UI error for a provider failure met while serving a request (502/402/409...)."""
    error = UpstreamError(describe(exc), code=exc.code, details=exc.details)
    if isinstance(exc, InsufficientCredit | ImeiAlreadyExists):
        error.status_code = exc.status_code
    return error
