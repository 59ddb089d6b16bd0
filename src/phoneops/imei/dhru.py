"""DHRU Fusion API clients (the wire format is in `dhru_wire`; docs/providers/dhru.md says what was confirmed
where).

One endpoint, `POST {base}/api/index.php`, form fields `username`, `apiaccesskey`, `action`,
`requestformat=JSON` and `parameters`: an XML `<PARAMETERS>` document whose children are the action's
parameters in upper case (`<ID>`, `<IMEI>`), base64-encoded for servers that want it (`base64_parameters`).
Answers are JSON, HTTP 200 for errors too, usually served as `text/html`: `{"SUCCESS": [...]}` or
`{"ERROR": [{"MESSAGE": ...}]}`.

- `accountinfo`, `imeiservicelist`, `getimeiorder` and `getimeiorderbulk` are reads (retried by the kit);
- `placeimeiorder` costs money: one IMEI, sent once, never retried (`maybe_sent` on transport errors).

Status of many orders: `getimeiorderbulk`, whose `parameters` is NOT the XML document but base64 JSON
`{"<key>": {"ID": "<reference>"}, ...}`, answered per key (`{"<key>": {"SUCCESS": [...]} | {"ERROR": [...]}}`).
A server without it answers `Invalid Action`; the client then asks each order with `getimeiorder` and
remembers, for its lifetime, not to try the bulk action again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import httpx
import structlog

from phoneops.core.http import (
    AsyncProviderAPI,
    AsyncProviderClient,
    ProviderCall,
    ProviderClient,
    ProviderConfig,
    RateLimiter,
    Redactor,
    RetryPolicy,
    SyncProviderAPI,
)
from phoneops.imei.client import OrderStatus, PlacedOrder, Service
from phoneops.imei.dhru_wire import (
    API_PATH,
    BULK_ACTION,
    BULK_IDS_PER_CALL,
    AccountInfo,
    DhruAuthError,
    DhruError,
    DhruImeiAlreadyExists,
    DhruInsufficientCredit,
    encode_bulk,
    encode_parameters,
    is_unknown_action,
    parse_account,
    parse_body,
    parse_bulk,
    parse_order,
    parse_placed,
    parse_services,
    success,
)

log = structlog.get_logger("phoneops.imei.dhru")
T = TypeVar("T")

# --- the clients --------------------------------------------------------------------------------------


class _DhruBase:
    def __init__(self, account: str, base_url: str, username: str, api_key: str, *, base64_parameters: bool,
                 timeout: float, retry: RetryPolicy | None) -> None:
        if not base_url or not username or not api_key:
            raise ValueError("a DHRU account needs base_url, username and api_key")
        self.account = account
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._api_key = api_key
        self.base64_parameters = base64_parameters
        self._config = ProviderConfig(
            name=f"dhru:{account}", base_url=self.base_url, timeout=timeout, retry=retry or RetryPolicy(),
            secret_fields=frozenset({"apiaccesskey"}), secret_values=(api_key,),
        )
        self.redactor = Redactor(self._config.secret_fields, self._config.secret_values)

    def _form(self, action: str, params: dict[str, str] | None) -> dict[str, str]:
        return {
            "username": self.username, "apiaccesskey": self._api_key, "action": action, "requestformat": "JSON",
            "parameters": encode_parameters(params or {}, base64_encoded=self.base64_parameters),
        }

    def _action(self, action: str, read: Callable[[dict[str, Any], list[Any]], T],
                params: dict[str, str] | None = None, *, idempotent: bool) -> ProviderCall[T]:
        """One action described once (`ProviderCall`): the sync and async clients below only send it."""

        def parse(response: httpx.Response) -> T:
            data = parse_body(response.content, action=action, account=self.account, maybe_sent=not idempotent)
            return read(data, success(data, action=action, account=self.account, redactor=self.redactor))

        return ProviderCall("POST", API_PATH, parse, idempotent=idempotent, log_fields={"action": action},
                            options={"data": self._form(action, params)})

    def _account_info(self) -> ProviderCall[AccountInfo]:
        return self._action("accountinfo", lambda _, entries: parse_account(entries, account=self.account),
                            idempotent=True)

    def _place_order(self, imei: str, service_id: str | int, fields: dict[str, Any]) -> ProviderCall[PlacedOrder]:
        params = self._order_params(imei, service_id, fields)

        def read(data: dict[str, Any], entries: list[Any]) -> PlacedOrder:
            raw = json.dumps(data, ensure_ascii=False)
            return parse_placed(entries, params["IMEI"], account=self.account, raw=raw)

        return self._action("placeimeiorder", read, params, idempotent=False)

    @staticmethod
    def _order_params(imei: str, service_id: str | int, fields: dict[str, Any]) -> dict[str, str]:
        imei = imei.strip()
        if not imei or "," in imei:
            raise ValueError("place_order takes exactly one IMEI (no commas)")
        params = {"IMEI": imei, "ID": str(service_id)}
        params.update({k.upper(): str(v) for k, v in fields.items() if v is not None and str(v) != ""})
        return params

    def __repr__(self) -> str:
        return f"{type(self).__name__}(account={self.account!r}, base_url={self.base_url!r})"


class DhruClient(_DhruBase, SyncProviderAPI):
    """Synchronous DHRU client (thread-safe)."""

    def __init__(self, account: str, base_url: str, username: str, api_key: str, *, base64_parameters: bool = False,
                 timeout: float = 30.0, retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None,
                 concurrency: int | None = None) -> None:
        super().__init__(account, base_url, username, api_key, base64_parameters=base64_parameters, timeout=timeout,
                         retry=retry)
        self._http = ProviderClient(self._config, transport=transport, max_concurrency=concurrency)
        self.bulk_supported: bool | None = None  # unknown until the server answered a bulk call

    def _bulk(self, references: Sequence[str]) -> list[OrderStatus] | None:
        """One `getimeiorderbulk` call; None when the server does not answer it as a bulk (ask one by one)."""
        form = {**self._form(BULK_ACTION, None), "parameters": encode_bulk(references)}
        response = self._http.request("POST", API_PATH, data=form, idempotent=True,
                                      log_fields={"action": BULK_ACTION, "ids": len(references)})
        data = parse_body(response.content, action=BULK_ACTION, account=self.account, maybe_sent=False)
        error = next((v for k, v in data.items() if k.upper() == "ERROR"), None)
        if error and not any(r in data for r in references):
            try:
                success(data, action=BULK_ACTION, account=self.account, redactor=self.redactor)
            except DhruAuthError:
                raise
            except DhruError as exc:
                if is_unknown_action(exc):
                    self.bulk_supported = False
                    log.info("dhru.bulk_unsupported", account=self.account, message=exc.provider_message)
                return None
        found = parse_bulk(data, references, account=self.account)
        if found is None:
            log.warning("dhru.bulk_unusable", account=self.account, keys=sorted(data)[:5])
        else:
            self.bulk_supported = True
        return found

    def account_info(self) -> AccountInfo:
        return self._http.call(self._account_info())

    def imei_services(self) -> list[Service]:
        return self._http.call(self._action("imeiservicelist", lambda _, entries: parse_services(entries),
                                            idempotent=True))

    def place_order(self, imei: str, service_id: str | int, **fields: Any) -> PlacedOrder:
        return self._http.call(self._place_order(imei, service_id, fields))

    def get_order(self, reference: str) -> OrderStatus | None:
        """One order's status; None when the server does not know it ("No IMEI Found")."""
        try:
            data, entries = self._http.call(self._action("getimeiorder", lambda d, e: (d, e), {"ID": str(reference)},
                                                         idempotent=True))
        except DhruError as exc:
            if isinstance(exc, DhruAuthError):
                raise
            log.warning("dhru.order_unknown", account=self.account, reference=reference, message=exc.provider_message)
            return None
        return parse_order(data, entries, str(reference))

    def get_imeis(self, order_ids: Sequence[str | int], chunk_size: int = BULK_IDS_PER_CALL) -> list[OrderStatus]:
        """Statuses of many orders: `getimeiorderbulk`, `chunk_size` ids a call, where the server offers it,
        else one `getimeiorder` each. Unknown ids are simply absent."""
        references = list(dict.fromkeys(str(i).strip() for i in order_ids if str(i).strip()))
        size = max(1, min(chunk_size or BULK_IDS_PER_CALL, BULK_IDS_PER_CALL))
        found: list[OrderStatus] = []
        for start in range(0, len(references), size):
            chunk = references[start:start + size]
            statuses = self._bulk(chunk) if self.bulk_supported is not False else None
            if statuses is None:
                statuses = [s for s in (self.get_order(r) for r in chunk) if s is not None]
            found.extend(statuses)
        return found


class AsyncDhruClient(_DhruBase, AsyncProviderAPI):
    """Asyncio DHRU client for batch placement."""

    def __init__(self, account: str, base_url: str, username: str, api_key: str, *, base64_parameters: bool = False,
                 timeout: float = 30.0, retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, rate_limiter: RateLimiter | None = None,
                 concurrency: int | None = None) -> None:
        super().__init__(account, base_url, username, api_key, base64_parameters=base64_parameters, timeout=timeout,
                         retry=retry)
        self._http = AsyncProviderClient(self._config, transport=transport, rate_limiter=rate_limiter,
                                         max_concurrency=concurrency)

    async def account_info(self) -> AccountInfo:
        return await self._http.call(self._account_info())

    async def place_order(self, imei: str, service_id: str | int, **fields: Any) -> PlacedOrder:
        return await self._http.call(self._place_order(imei, service_id, fields))


__all__ = [
    "AccountInfo",
    "AsyncDhruClient",
    "DhruAuthError",
    "DhruClient",
    "DhruError",
    "DhruImeiAlreadyExists",
    "DhruInsufficientCredit",
]
