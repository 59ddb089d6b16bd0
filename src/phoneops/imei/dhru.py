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
from collections.abc import Sequence
from typing import Any

import httpx
import structlog

from phoneops.core.http import AsyncProviderClient, ProviderClient, ProviderConfig, RateLimiter, Redactor, RetryPolicy
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

    def _entries(self, response: httpx.Response, action: str, idempotent: bool) -> tuple[dict[str, Any], list[Any]]:
        data = parse_body(response.content, action=action, account=self.account, maybe_sent=not idempotent)
        return data, success(data, action=action, account=self.account, redactor=self.redactor)

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


class DhruClient(_DhruBase):
    """Synchronous DHRU client (thread-safe)."""

    def __init__(self, account: str, base_url: str, username: str, api_key: str, *, base64_parameters: bool = False,
                 timeout: float = 30.0, retry: RetryPolicy | None = None, transport: httpx.BaseTransport | None = None,
                 concurrency: int | None = None) -> None:
        super().__init__(account, base_url, username, api_key, base64_parameters=base64_parameters, timeout=timeout,
                         retry=retry)
        self._http = ProviderClient(self._config, transport=transport, max_concurrency=concurrency)
        self.bulk_supported: bool | None = None  # unknown until the server answered a bulk call

    def _call(
        self, action: str, params: dict[str, str] | None = None, *, idempotent: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        response = self._http.request("POST", API_PATH, data=self._form(action, params), idempotent=idempotent,
                                      log_fields={"action": action})
        return self._entries(response, action, idempotent)

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
        return parse_account(self._call("accountinfo", idempotent=True)[1], account=self.account)

    def imei_services(self) -> list[Service]:
        return parse_services(self._call("imeiservicelist", idempotent=True)[1])

    def place_order(self, imei: str, service_id: str | int, **fields: Any) -> PlacedOrder:
        params = self._order_params(imei, service_id, fields)
        data, entries = self._call("placeimeiorder", params, idempotent=False)
        return parse_placed(entries, params["IMEI"], account=self.account, raw=json.dumps(data, ensure_ascii=False))

    def get_order(self, reference: str) -> OrderStatus | None:
        """One order's status; None when the server does not know it ("No IMEI Found")."""
        try:
            data, entries = self._call("getimeiorder", {"ID": str(reference)}, idempotent=True)
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

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> DhruClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncDhruClient(_DhruBase):
    """Asyncio DHRU client for batch placement."""

    def __init__(self, account: str, base_url: str, username: str, api_key: str, *, base64_parameters: bool = False,
                 timeout: float = 30.0, retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, rate_limiter: RateLimiter | None = None,
                 concurrency: int | None = None) -> None:
        super().__init__(account, base_url, username, api_key, base64_parameters=base64_parameters, timeout=timeout,
                         retry=retry)
        self._http = AsyncProviderClient(self._config, transport=transport, rate_limiter=rate_limiter,
                                         max_concurrency=concurrency)

    async def _call(
        self, action: str, params: dict[str, str] | None = None, *, idempotent: bool
    ) -> tuple[dict[str, Any], list[Any]]:
        response = await self._http.request("POST", API_PATH, data=self._form(action, params), idempotent=idempotent,
                                            log_fields={"action": action})
        return self._entries(response, action, idempotent)

    async def account_info(self) -> AccountInfo:
        return parse_account((await self._call("accountinfo", idempotent=True))[1], account=self.account)

    async def place_order(self, imei: str, service_id: str | int, **fields: Any) -> PlacedOrder:
        params = self._order_params(imei, service_id, fields)
        data, entries = await self._call("placeimeiorder", params, idempotent=False)
        return parse_placed(entries, params["IMEI"], account=self.account, raw=json.dumps(data, ensure_ascii=False))

    async def aclose(self) -> None:
        await self._http.aclose()


__all__ = [
    "AccountInfo",
    "AsyncDhruClient",
    "DhruAuthError",
    "DhruClient",
    "DhruError",
    "DhruImeiAlreadyExists",
    "DhruInsufficientCredit",
]
