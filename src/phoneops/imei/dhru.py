"""DHRU Fusion API client (wire protocol only; docs/providers/dhru.md says what was confirmed where).

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

import base64
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any
from xml.sax.saxutils import escape

import httpx
import structlog

from phoneops.core.http import (
    AsyncProviderClient,
    ProviderAuthError,
    ProviderClient,
    ProviderConfig,
    ProviderResponseError,
    RateLimiter,
    Redactor,
    RetryPolicy,
)
from phoneops.imei.client import (
    DeviceCheckRefused,
    ImeiAlreadyExists,
    InsufficientCredit,
    OrderStatus,
    PlacedOrder,
    Service,
)
from phoneops.imei.parsing import COMPLETED, IN_PROCESS, PENDING, REJECTED

log = structlog.get_logger("phoneops.imei.dhru")

API_PATH = "/api/index.php"
BULK_ACTION = "getimeiorderbulk"
BULK_IDS_PER_CALL = 100
# How servers without an action say so ("Invalid Action" in the DHRU server templates).
_UNKNOWN_ACTION = ("invalid action", "unknown action", "action not", "not supported", "unsupported")
# getimeiorder STATUS: 0 waiting, 1 in process, 3 rejected, 4 completed (2 is unused by most servers; some
# use it for completed: treated as still open, the next sync asks again).
STATUS_BY_CODE = {"0": PENDING, "1": IN_PROCESS, "3": REJECTED, "4": COMPLETED}
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


class DhruError(DeviceCheckRefused):
    """An `ERROR` answer of a DHRU server."""

    code = "dhru_error"

    def __init__(self, provider_message: str, *, action: str, account: str) -> None:
        super().__init__(
            f"DHRU {account} {action}: {provider_message}",
            provider=f"dhru:{account}",
            details={"provider": "dhru", "account": account, "action": action, "provider_message": provider_message},
        )
        self.provider_message = provider_message
        self.action = action
        self.account = account


class DhruAuthError(DhruError, ProviderAuthError):
    code = "dhru_auth_failed"


class DhruImeiAlreadyExists(DhruError, ImeiAlreadyExists):
    status_code = 409
    code = "dhru_duplicate_imei"


class DhruInsufficientCredit(DhruError, InsufficientCredit):
    status_code = 402
    code = "dhru_insufficient_credit"


def error_for_message(message: str, *, action: str, account: str) -> DhruError:
    low = message.lower()
    cls: type[DhruError] = DhruError
    if any(w in low for w in ("authentication", "invalid user", "api key", "apikey", "access key", "invalid cred",
                              "not allowed", "username")):
        cls = DhruAuthError
    elif "duplicate" in low or "already exist" in low or "already ordered" in low:
        cls = DhruImeiAlreadyExists
    elif "insufficient" in low or "not enough" in low or "low balance" in low or "no credit" in low:
        cls = DhruInsufficientCredit
    return cls(message, action=action, account=account)


@dataclass(frozen=True)
class AccountInfo:
    credit: Decimal
    currency: str
    mail: str


# --- the wire format ----------------------------------------------------------------------------------


def encode_parameters(params: dict[str, str], *, base64_encoded: bool) -> str:
    if not params:
        return ""
    for name in params:
        if not _NAME.match(name):
            raise ValueError(f"invalid DHRU parameter name: {name!r}")
    xml = "<PARAMETERS>" + "".join(f"<{k.upper()}>{escape(v)}</{k.upper()}>" for k, v in params.items())
    xml += "</PARAMETERS>"
    return base64.b64encode(xml.encode()).decode() if base64_encoded else xml


def parse_body(content: bytes, *, action: str, account: str, maybe_sent: bool) -> dict[str, Any]:
    """The JSON object of an answer, whatever its content type; PHP notices before it are skipped."""
    text = content.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    start = text.find("{")
    try:
        if start < 0:
            raise ValueError("no JSON object")
        data = json.loads(text[start:])
        if not isinstance(data, dict):
            raise ValueError("not an object")
    except ValueError:
        raise ProviderResponseError(
            f"DHRU {account} {action}: unreadable answer (not JSON)", provider=f"dhru:{account}", maybe_sent=maybe_sent
        ) from None
    return data


def _messages(entries: Any) -> str:
    if isinstance(entries, str):
        return entries
    if isinstance(entries, dict):
        entries = [entries]
    texts = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            text = next((str(v) for k, v in entry.items() if k.lower() == "message" and v), "")
            texts.append(text or str(entry.get("FULL_DESCRIPTION", "")))
        elif entry:
            texts.append(str(entry))
    return "; ".join(t for t in texts if t) or "error without a message"


def success(data: dict[str, Any], *, action: str, account: str, redactor: Redactor) -> list[dict[str, Any]]:
    """The `SUCCESS` entries of an answer; an `ERROR` becomes its typed error."""
    error = next((v for k, v in data.items() if k.upper() == "ERROR"), None)
    if error:
        message = redactor.redact(" ".join(_messages(error).split()))
        raised = error_for_message(message, action=action, account=account)
        log.warning("dhru.error", account=account, action=action, error=raised.code, message=message)
        raise raised
    found = next((v for k, v in data.items() if k.upper() == "SUCCESS"), None)
    if isinstance(found, dict):
        found = [found]
    if not isinstance(found, list) or not all(isinstance(e, dict) for e in found):
        raise ProviderResponseError(f"DHRU {account} {action}: answer without SUCCESS", provider=f"dhru:{account}")
    return found


def _get(entry: dict[str, Any], *names: str) -> Any:
    wanted = {n.lower() for n in names}
    return next((v for k, v in entry.items() if k.lower() in wanted), None)


def parse_money(value: Any) -> Decimal | None:
    match = _NUMBER.search(str(value if value is not None else ""))
    if match is None:
        return None
    try:
        amount = Decimal(match.group(0).replace(",", ""))
    except InvalidOperation:
        return None
    return amount if amount.is_finite() else None


def parse_account(entries: list[dict[str, Any]], *, account: str) -> AccountInfo:
    for entry in entries:
        info = next((v for k, v in entry.items() if k.lower() in ("accoutinfo", "accountinfo")), None)
        if isinstance(info, dict):
            credit = parse_money(_get(info, "creditraw", "credit"))
            if credit is not None:
                return AccountInfo(credit, str(_get(info, "currency") or ""), str(_get(info, "mail") or ""))
    raise ProviderResponseError(f"DHRU {account} accountinfo: no credit in the answer", provider=f"dhru:{account}")


def _values(container: Any) -> list[Any]:
    if isinstance(container, dict):
        return list(container.values())
    return list(container) if isinstance(container, list) else []


def parse_services(entries: list[dict[str, Any]]) -> list[Service]:
    services: list[Service] = []
    for entry in entries:
        for group in _values(_get(entry, "LIST")):
            if not isinstance(group, dict):
                continue
            name = str(_get(group, "GROUPNAME") or "")
            for item in _values(_get(group, "SERVICES")):
                if not isinstance(item, dict):
                    continue
                service_id, price = str(_get(item, "SERVICEID") or "").strip(), parse_money(_get(item, "CREDIT"))
                if not service_id or price is None or price < 0 or len(service_id) > 16:
                    log.warning("dhru.service_skipped", service_id=service_id, reason="missing id or price")
                    continue
                services.append(Service(
                    package_id=service_id, category=name, title=str(_get(item, "SERVICENAME") or ""), price=price,
                    delivery_time=str(_get(item, "TIME") or ""), details=str(_get(item, "INFO") or ""),
                ))
    return services


def parse_placed(entries: list[dict[str, Any]], imei: str, *, account: str, raw: str = "") -> PlacedOrder:
    reference = str(_get(entries[0], "REFERENCEID") or "").strip() if entries else ""
    if not reference:
        raise ProviderResponseError(
            f"DHRU {account} placeimeiorder: answer without REFERENCEID", provider=f"dhru:{account}", maybe_sent=True
        )
    return PlacedOrder(order_id=reference, imei=imei, status=PENDING, raw=raw[:20_000])


def encode_bulk(references: Sequence[str]) -> str:
    """`getimeiorderbulk` parameters: base64 of the JSON object `{"<reference>": {"ID": "<reference>"}}`
    (each order keyed by its own reference, so the answer maps back without a second table)."""
    return base64.b64encode(json.dumps({r: {"ID": r} for r in references}).encode()).decode()


def is_unknown_action(exc: DhruError) -> bool:
    return any(marker in exc.provider_message.lower() for marker in _UNKNOWN_ACTION)


def parse_bulk(data: dict[str, Any], references: Sequence[str], *, account: str) -> list[OrderStatus] | None:
    """The statuses in a `getimeiorderbulk` answer, ids the server does not know left out; None when the
    answer holds none of the requested keys (not a bulk answer: the caller asks order by order)."""
    found: list[OrderStatus] = []
    answered = 0
    for reference in references:
        entry = data.get(reference)
        if not isinstance(entry, dict):
            continue
        answered += 1
        error = next((v for k, v in entry.items() if k.upper() == "ERROR"), None)
        entries = next((v for k, v in entry.items() if k.upper() == "SUCCESS"), None)
        if isinstance(entries, dict):
            entries = [entries]
        if error or not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            log.warning("dhru.order_unknown", account=account, reference=reference,
                        message=_messages(error) if error else "no SUCCESS in the bulk answer")
            continue
        found.append(parse_order(entry, entries, reference))
    return found if answered else None


def parse_order(data: dict[str, Any], entries: list[dict[str, Any]], reference: str) -> OrderStatus:
    entry = entries[0] if entries else {}
    code = str(_get(entry, "STATUS") if _get(entry, "STATUS") is not None else "").strip()
    return OrderStatus(
        order_id=reference, imei=str(_get(entry, "IMEI") or ""), package="",
        status=STATUS_BY_CODE.get(code, IN_PROCESS), code=str(_get(entry, "CODE") or ""), requested_at=None,
        raw=json.dumps(data, ensure_ascii=False)[:20_000],
    )


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
