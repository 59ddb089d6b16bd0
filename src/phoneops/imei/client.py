# Over 400 lines: every GSM Fusion action described once for the sync and async clients.
"""GSM Fusion XML API client (wire protocol only; it knows nothing of our tables).

One endpoint, `POST {base}/gsmfusion_api/index.php`, form fields `apiKey`, `userId`, `action` plus the
action's parameters; the answer is XML with HTTP 200 even for errors (docs/providers/gsm_fusion.md).

- Reads (`imeiservices`, `fileservices`, `getimeis`) are idempotent and retried by the provider kit.
- `placeorder` costs money: it carries ONE IMEI, is sent exactly once, and a timeout or transport error
  surfaces as `ProviderTimeout` / `ProviderUnavailable` with `maybe_sent` (see `phoneops.core.http`).
- A root or nested `<error>` becomes a typed `GsmFusionError`; the API key is scrubbed from every log
  line and error message.
"""

from __future__ import annotations

import asyncio
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, TypeVar

import defusedxml.ElementTree as SafeET
import httpx
import structlog
from defusedxml import DefusedXmlException

from phoneops.core.http import (
    AsyncProviderAPI,
    AsyncProviderClient,
    ProviderAuthError,
    ProviderCall,
    ProviderClient,
    ProviderConfig,
    ProviderError,
    ProviderResponseError,
    RateLimiter,
    Redactor,
    RetryPolicy,
    SyncProviderAPI,
)
from phoneops.imei.parsing import ParsedResult, normalize_status, parse_code

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

log = structlog.get_logger("phoneops.imei.client")
T = TypeVar("T")

PROVIDER = "gsm_fusion"
API_PATH = "/gsmfusion_api/index.php"
DEFAULT_CHUNK_SIZE = 100
# Optional placeorder fields, in the provider's spelling; snake_case spellings are accepted too.
ORDER_FIELDS = (
    "modelNo", "operatorId", "serviceId", "modelId", "providerId", "mobileId", "mep", "serialNo",
    "prd", "pin", "kbh", "zte", "otherId", "other", "network", "type", "locks",
)
_FIELD_NAMES = {re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower(): name for name in ORDER_FIELDS} | {
    name: name for name in ORDER_FIELDS
}
_PROLOG = re.compile(rb"^(?:\xef\xbb\xbf)?\s*<\?(?:php)?xml\b[^>]*\?>", re.IGNORECASE)


# --- errors -------------------------------------------------------------------------------------------


class DeviceCheckRefused(ProviderError):
    """A device-check provider (GSM Fusion, a DHRU account) answered with an error text; `provider_message`
    is that (scrubbed) text. Subclasses below say what the placement engine must do with it."""

    code = "device_check_refused"
    provider_message: str
    action: str


class ImeiAlreadyExists(DeviceCheckRefused):
    """The IMEI was already ordered for this service at the provider (not charged again)."""

    status_code = 409
    code = "imei_already_exists"


class InsufficientCredit(DeviceCheckRefused):
    status_code = 402
    code = "insufficient_credit"


class GsmFusionError(DeviceCheckRefused):
    """The provider answered with an `<error>`; `provider_message` is its (scrubbed) text."""

    code = "gsm_fusion_error"

    def __init__(self, provider_message: str, *, action: str) -> None:
        super().__init__(
            f"GSM Fusion {action}: {provider_message}",
            provider=PROVIDER,
            details={"provider": PROVIDER, "action": action, "provider_message": provider_message},
        )
        self.provider_message = provider_message
        self.action = action


class GsmInvalidUser(GsmFusionError, ProviderAuthError):
    code = "gsm_invalid_user"


class GsmInvalidApiKey(GsmFusionError, ProviderAuthError):
    code = "gsm_invalid_api_key"


class GsmImeiAlreadyExists(GsmFusionError, ImeiAlreadyExists):
    """The IMEI was already ordered for this service: a duplicate, not a failure (it was not charged)."""

    status_code = 409
    code = "gsm_imei_already_exists"


class GsmInsufficientCredit(GsmFusionError, InsufficientCredit):
    status_code = 402
    code = "gsm_insufficient_credit"


class GsmError(GsmFusionError):
    """Any other provider error text (unknown service, invalid IMEI, ...)."""


def error_for_message(message: str, *, action: str) -> GsmFusionError:
    """The typed error for a provider error text (matched loosely: case, punctuation, wording)."""
    low = message.lower()
    cls: type[GsmFusionError] = GsmError
    if "invalid user" in low:
        cls = GsmInvalidUser
    elif "api key" in low or "apikey" in low:
        cls = GsmInvalidApiKey
    elif "already exist" in low:
        cls = GsmImeiAlreadyExists
    elif "insufficient" in low or "not enough" in low or "low balance" in low:
        cls = GsmInsufficientCredit
    return cls(message, action=action)


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    package_id: str
    category: str
    title: str
    price: Decimal
    delivery_time: str
    details: str


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    imei: str
    status: str
    raw: str = ""  # the provider's answer, as received


@dataclass(frozen=True)
class OrderStatus:
    """One `getimeis` entry. `code` is the raw result text; `requested_at` is provider-local time."""

    order_id: str
    imei: str
    package: str
    status: str
    code: str
    requested_at: datetime | None
    raw: str = ""  # the provider's answer for this order, as received

    @property
    def result(self) -> ParsedResult:
        return parse_code(self.code)


# --- the wire format ----------------------------------------------------------------------------------


def parse_xml(content: bytes, *, action: str, maybe_sent: bool = False) -> Element:
    """Parse an answer safely (defusedxml), tolerating the live server's `<?phpxml ...?>` prolog."""
    body = _PROLOG.sub(b"", content.strip(), count=1).strip()
    try:
        if not body:
            raise ValueError("empty body")
        return SafeET.fromstring(body)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as exc:
        raise ProviderResponseError(
            f"GSM Fusion {action}: unreadable XML ({type(exc).__name__})",
            provider=PROVIDER,
            maybe_sent=maybe_sent,
        ) from None


def json_error_message(content: bytes) -> str | None:
    """The error text of a JSON answer — `{"ERROR": [{"MESSAGE": "Invalid User!"}]}` (DHRU style) or
    `{"error": "..."}` — or None when the answer is not a JSON error. The Content-Type is not trusted."""
    body = content.strip().lstrip(b"\xef\xbb\xbf").strip()
    if not body.startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    found = next((data[k] for k in data if str(k).lower() == "error"), None)
    if isinstance(found, list) and found:
        found = found[0]
    if isinstance(found, dict):
        found = next((v for k, v in found.items() if str(k).lower() in ("message", "msg", "full_description")), None)
    if found is None or isinstance(found, dict | list):
        return None
    text = " ".join(str(found).split())
    return text or None


def _tag(element: Element) -> str:
    return element.tag.lower() if isinstance(element.tag, str) else ""


def _child(element: Element, *names: str) -> str:
    wanted = {n.lower() for n in names}
    for child in element:
        if _tag(child) in wanted:
            return "".join(child.itertext()).strip()
    return ""


def raise_for_error(root: Element, *, action: str, redactor: Redactor) -> None:
    """Raise the typed error for a root `<error>` or for any nested, non-empty `<error>`."""
    for node in root.iter():
        if _tag(node) != "error":
            continue
        text = redactor.redact(" ".join("".join(node.itertext()).split()))
        if text or node is root:
            error = error_for_message(text or "empty error", action=action)
            log.warning("gsm_fusion.error", action=action, error=error.code, message=text)
            raise error


def _parse_price(text: str) -> Decimal | None:
    try:
        price = Decimal(text.replace("$", "").replace(",", "").strip())
    except InvalidOperation:
        return None
    return price if price.is_finite() and price >= 0 else None


def parse_services(root: Element) -> list[Service]:
    services = []
    for package in (el for el in root.iter() if _tag(el) == "package"):
        package_id = _child(package, "PackageId")
        price = _parse_price(_child(package, "PackagePrice"))
        if not package_id or price is None:
            log.warning("gsm_fusion.package_skipped", package_id=package_id, reason="missing id or price")
            continue
        services.append(
            Service(
                package_id=package_id,
                category=_child(package, "Category"),
                title=_child(package, "PackageTitle"),
                price=price,
                delivery_time=_child(package, "TimeTaken"),
                details=_child(package, "MustRead"),
            )
        )
    return services


def parse_placed(root: Element, imei: str) -> PlacedOrder:
    """The order created for `imei`; a listed duplicate is `GsmImeiAlreadyExists`."""
    orders = [el for el in root.iter() if _tag(el) == "imeis"]
    duplicates = {
        value.strip()
        for el in root.iter()
        if _tag(el) == "imeiduplicates"
        for value in "".join(el.itertext()).split(",")
    }
    placed = [o for o in orders if _child(o, "imei") == imei] or orders
    if not placed:
        if imei in duplicates:
            raise error_for_message("IMEI already exists!", action="placeorder")
        raise ProviderResponseError("GSM Fusion placeorder: answer holds no order", provider=PROVIDER, maybe_sent=True)
    order_id = _child(placed[0], "id")
    if not order_id:
        raise ProviderResponseError("GSM Fusion placeorder: order without id", provider=PROVIDER, maybe_sent=True)
    status = normalize_status(_child(placed[0], "status")) or "Pending"
    return PlacedOrder(order_id=order_id, imei=_child(placed[0], "imei") or imei, status=status,
                       raw=ET.tostring(root, encoding="unicode")[:20_000])


def _parse_datetime(text: str) -> datetime | None:
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(text, fmt)  # provider-local time, zone unknown
        except ValueError:
            continue
    return None


def parse_statuses(root: Element) -> list[OrderStatus]:
    return [
        OrderStatus(
            order_id=_child(el, "id"),
            imei=_child(el, "imei"),
            package=_child(el, "package"),
            status=normalize_status(_child(el, "status")),
            code=_child(el, "code"),
            requested_at=_parse_datetime(_child(el, "requestedat")),
            raw=ET.tostring(el, encoding="unicode")[:20_000],
        )
        for el in root.iter()
        if _tag(el) == "imeis" and _child(el, "id")
    ]


def _order_form(imei: str, network_id: str | int, fields: dict[str, Any]) -> dict[str, str]:
    imei = imei.strip()
    if not imei or "," in imei:
        raise ValueError("place_order takes exactly one IMEI (no commas)")
    form = {"imei": imei, "networkId": str(network_id)}
    for key, value in fields.items():
        if key not in _FIELD_NAMES:
            raise ValueError(f"unknown placeorder field: {key}")
        if value is not None and str(value) != "":
            form[_FIELD_NAMES[key]] = str(value)
    return form


def _chunks(order_ids: Iterable[str | int], size: int) -> list[str]:
    if size < 1:
        raise ValueError("chunk_size must be >= 1")
    ids = list(dict.fromkeys(str(i).strip() for i in order_ids if str(i).strip()))
    if any("," in i for i in ids):
        raise ValueError("order ids cannot contain commas")
    return [",".join(ids[start : start + size]) for start in range(0, len(ids), size)]


# --- the clients --------------------------------------------------------------------------------------


class _GsmFusionBase:
    """Each call described once (`ProviderCall`); the sync and async clients below only send them."""

    def __init__(
        self,
        base_url: str,
        user_id: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: Any = None,
        rate_limiter: RateLimiter | None = None,
        concurrency: int | None = None,
    ) -> None:
        """`transport`: an `httpx.BaseTransport` for the sync client, an `httpx.AsyncBaseTransport` for the async
        one (tests); `concurrency` caps requests in flight."""
        if not base_url or not user_id or not api_key:
            raise ValueError("GSM Fusion needs base_url, user_id and api_key")
        self.base_url = base_url.rstrip("/")
        self.user_id = user_id
        self._api_key = api_key
        self._config = ProviderConfig(
            name=PROVIDER,
            base_url=self.base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            secret_fields=frozenset({"apiKey"}),
            secret_values=(api_key,),
        )
        self.redactor = Redactor(self._config.secret_fields, self._config.secret_values)
        self._connect(transport, rate_limiter, concurrency)

    def _connect(self, transport: Any, rate_limiter: RateLimiter | None, concurrency: int | None) -> None:
        raise NotImplementedError

    def _action(
        self, action: str, read: Callable[[Element], T], params: dict[str, str] | None = None, *, idempotent: bool
    ) -> ProviderCall[T]:
        form = {"apiKey": self._api_key, "userId": self.user_id, "action": action, **(params or {})}
        return ProviderCall("POST", API_PATH, lambda response: read(self._root(response, action, idempotent)),
                            idempotent=idempotent, log_fields={"action": action}, options={"data": form})

    def _root(self, response: httpx.Response, action: str, idempotent: bool) -> Element:
        json_error = json_error_message(response.content)
        if json_error is not None:  # a JSON error (DHRU style), whatever its Content-Type (the live one: text/html)
            text = self.redactor.redact(json_error)
            error = error_for_message(text, action=action)
            log.warning("gsm_fusion.error", action=action, error=error.code, message=text, format="json")
            raise error
        root = parse_xml(response.content, action=action, maybe_sent=not idempotent)
        raise_for_error(root, action=action, redactor=self.redactor)
        return root

    def _services(self, action: str) -> ProviderCall[list[Service]]:
        return self._action(action, parse_services, idempotent=True)

    def _place_order(self, imei: str, network_id: str | int, fields: dict[str, Any]) -> ProviderCall[PlacedOrder]:
        form = _order_form(imei, network_id, fields)
        return self._action("placeorder", lambda root: parse_placed(root, form["imei"]), form, idempotent=False)

    def _get_imeis(self, chunk: str) -> ProviderCall[list[OrderStatus]]:
        return self._action("getimeis", parse_statuses, {"orderIds": chunk}, idempotent=True)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, user_id={self.user_id!r})"


class GsmFusionClient(_GsmFusionBase, SyncProviderAPI):
    """Synchronous GSM Fusion client (thread-safe). `concurrency` caps requests in flight."""

    def _connect(self, transport: httpx.BaseTransport | None, rate_limiter: RateLimiter | None,
                 concurrency: int | None) -> None:
        self._http = ProviderClient(self._config, transport=transport, rate_limiter=rate_limiter,
                                    max_concurrency=concurrency)

    def imei_services(self) -> list[Service]:
        return self._http.call(self._services("imeiservices"))

    def file_services(self) -> list[Service]:
        return self._http.call(self._services("fileservices"))

    def place_order(self, imei: str, network_id: str | int, **fields: Any) -> PlacedOrder:
        """Order one IMEI. Sent once, never retried: on `maybe_sent` errors reconcile, do not resend."""
        return self._http.call(self._place_order(imei, network_id, fields))

    def get_imeis(self, order_ids: Sequence[str | int], chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[OrderStatus]:
        """Statuses of many orders, `chunk_size` ids per call; unknown ids are simply absent."""
        chunks = _chunks(order_ids, chunk_size)
        return [status for chunk in chunks for status in self._http.call(self._get_imeis(chunk))]


class AsyncGsmFusionClient(_GsmFusionBase, AsyncProviderAPI):
    """Asyncio GSM Fusion client for batch work; `concurrency` caps requests in flight (e.g. 30)."""

    def _connect(self, transport: httpx.AsyncBaseTransport | None, rate_limiter: RateLimiter | None,
                 concurrency: int | None) -> None:
        self._http = AsyncProviderClient(self._config, transport=transport, rate_limiter=rate_limiter,
                                         max_concurrency=concurrency)

    async def imei_services(self) -> list[Service]:
        return await self._http.call(self._services("imeiservices"))

    async def file_services(self) -> list[Service]:
        return await self._http.call(self._services("fileservices"))

    async def place_order(self, imei: str, network_id: str | int, **fields: Any) -> PlacedOrder:
        """Order one IMEI. Sent once, never retried: on `maybe_sent` errors reconcile, do not resend."""
        return await self._http.call(self._place_order(imei, network_id, fields))

    async def get_imeis(
        self, order_ids: Sequence[str | int], chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> list[OrderStatus]:
        """Statuses of many orders; chunks are fetched concurrently (within `concurrency`), in order."""
        calls = (self._http.call(self._get_imeis(chunk)) for chunk in _chunks(order_ids, chunk_size))
        answers = await asyncio.gather(*calls, return_exceptions=True)  # no call is left running on failure
        results: list[OrderStatus] = []
        for answer in answers:
            if isinstance(answer, BaseException):
                raise answer
            results.extend(answer)
        return results
