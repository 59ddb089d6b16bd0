# Over 400 lines: one client for the whole MessageWhiz API (broadcasts, stats, unsubscribers).
"""MessageWhiz (MMD Smart) SMS API client (wire protocol only; docs/providers/messagewhiz.md).

- Auth: the `apikey` header, from the constructor only (the original had a key hard-coded in its source).
  The key is scrubbed from every log line and error message by the provider kit.
- Every `/api/3/*` answer is the envelope `{"errorCode", "errorMessage", "errorType", "executionTime",
  "result"}`: a non-zero `errorCode` becomes `MessageWhizError` (`MessageWhizAuthError` when it is about the
  key), HTTP 401/403 becomes `MessageWhizAuthError`, an unreadable answer `ProviderResponseError`.
- Lists page with `start` (offset) / `limit`, newest first. A listing ends on an empty page, a short page
  (fewer items than asked), or, for broadcasts, at the first item sent before the wanted window; more than
  `max_pages` pages raises `MessageWhizPagingLimit` rather than returning a silently truncated list. Items
  repeated across pages (the list grows at its head while we page) are yielded once.
- Only reads are implemented, and they are idempotent: the kit retries them on transport errors, timeouts,
  429 and 5xx, boundedly (`RetryPolicy`). `concurrency` caps requests in flight per client.
- Prices arrive in cents (fractions of a cent included): `price_cents` keeps them, `price` is the amount in
  currency units (cents / 100), both `Decimal`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import httpx
import structlog

from phoneops.core.http import (
    ProviderAuthError,
    ProviderClient,
    ProviderConfig,
    ProviderError,
    ProviderResponseError,
    RateLimiter,
    Redactor,
    RetryPolicy,
    SyncProviderAPI,
)

log = structlog.get_logger("phoneops.broadcasts.client")

PROVIDER = "messagewhiz"
BROADCASTS_PATH = "/api/3/Broadcast/List"
LINKS_PATH = "/api/3/Link"
SENDERS_PATH = "/api/3/Sender/"
UNSUBSCRIBE_LISTS_PATH = "/api/3/unsubscribeList"
UNSUBSCRIBERS_PATH = "/api/3/unsubscribeList/{list_id}/members"  # docs/providers/messagewhiz_unsubscribers.md
DEFAULT_PAGE_SIZE = 100  # what the original used in production
DEFAULT_MAX_PAGES = 2000
COMPLETED_STATE = 4
STATES_WITHOUT_COST = frozenset({0, 2})  # the original left these out of the cost push (draft/cancelled?)
_LINK_TOKEN = re.compile(r"\{\{\s*link:(\d+)\s*\}\}")
_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_AUTH_WORDS = ("apikey", "api key", "api_key", "unauthori", "forbidden", "authenticat")


# --- errors -------------------------------------------------------------------------------------------


class MessageWhizError(ProviderError):
    """MessageWhiz refused a call; `error_code` / `error_type` / `provider_message` are from its envelope."""

    code = "messagewhiz_error"

    def __init__(
        self, message: str, *, what: str, error_code: Any = None, error_type: str = "", status: int | None = None
    ) -> None:
        super().__init__(
            f"MessageWhiz {what}: {message or 'error'}" + (f" (errorCode {error_code})" if error_code else ""),
            provider=PROVIDER,
            status=status,
            details={"provider": PROVIDER, "what": what, "error_code": error_code, "error_type": error_type},
        )
        self.provider_message = message
        self.error_code = error_code
        self.error_type = error_type


class MessageWhizAuthError(MessageWhizError, ProviderAuthError):
    """The API key was refused (HTTP 401/403, or an envelope error about the key)."""

    code = "messagewhiz_auth_error"


class MessageWhizPagingLimit(MessageWhizError):
    """A listing did not end within `max_pages` pages; nothing partial is returned."""

    code = "messagewhiz_paging_limit"


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broadcast:
    """One `Broadcast/List` item. Counts are None when the provider sent no `dlr` / `broadcastConversion`."""

    id: int
    name: str
    send_date: datetime | None
    state: int | None
    message_body: str
    link_ids: tuple[int, ...]
    price_cents: Decimal | None  # real_price
    estimated_price_cents: Decimal | None
    recipient_count: int | None
    estimated_count: int | None
    delivered_count: int | None
    sent_count: int | None
    undelivered_count: int | None
    rejected_count: int | None
    expired_count: int | None
    failed_count: int | None
    unique_clicks: int | None
    total_clicks: int | None
    ctr: Decimal | None  # percent, e.g. Decimal("4.15") (the provider's `conversion`)
    created_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def link_id(self) -> int | None:
        """The first `{{link:N}}` of the message body (the original's rule), None without a link."""
        return self.link_ids[0] if self.link_ids else None

    @property
    def price(self) -> Decimal | None:
        """The real price in currency units."""
        return None if self.price_cents is None else self.price_cents / 100

    @property
    def estimated_price(self) -> Decimal | None:
        return None if self.estimated_price_cents is None else self.estimated_price_cents / 100

    @property
    def status(self) -> str:
        return "completed" if self.state == COMPLETED_STATE else f"state {self.state}"

    @property
    def counts_for_cost(self) -> bool:
        """False for the states the original left out of the cost push (0 and 2)."""
        return self.state not in STATES_WITHOUT_COST

    @property
    def group_name(self) -> str:
        """The list name: the name before `_chunk` (chunks of one list share it), without `.csv`."""
        base = self.name.partition("_chunk")[0]
        return base.removesuffix(".csv")


@dataclass(frozen=True)
class Link:
    id: int
    name: str
    url: str
    enabled: bool | None
    created_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)

    @property
    def target_url(self) -> str:
        """The URL without query string or fragment."""
        parts = urlsplit(self.url)
        return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))

    @property
    def campaign_id(self) -> str | None:
        """The Voluum campaign id: the URL's last path segment when it is a UUID, else None."""
        segment = urlsplit(self.url).path.rstrip("/").rpartition("/")[2]
        return segment.lower() if _UUID.match(segment) else None


@dataclass(frozen=True)
class UnsubscribeList:
    id: int
    name: str
    enabled: bool
    amount: int | None


@dataclass(frozen=True)
class Unsubscriber:
    """A member of an unsubscribe list: the number as MessageWhiz writes it (international, no `+`)."""

    phone_number: str
    created_at: datetime | None = None


@dataclass(frozen=True)
class Sender:
    id: int
    name: str
    enabled: bool | None
    raw: Mapping[str, Any] = field(repr=False, compare=False)


# --- the wire format ----------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _decimal(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = Decimal(str(value).strip().rstrip("%"))  # str(float) is its shortest exact repr
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _datetime(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _bool(value: Any) -> bool | None:
    return None if value is None else bool(value)


def _section(item: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = item.get(key)
    return value if isinstance(value, Mapping) else {}


def parse_envelope(response: httpx.Response, *, what: str, redactor: Redactor) -> Any:
    """The envelope's `result`; a non-zero `errorCode` raises the typed error."""
    try:
        body = response.json()
    except ValueError:
        raise ProviderResponseError(f"MessageWhiz {what}: answer is not JSON", provider=PROVIDER) from None
    if not isinstance(body, dict) or not ({"errorCode", "result"} & body.keys()):
        raise ProviderResponseError(f"MessageWhiz {what}: answer is not an /api/3 envelope", provider=PROVIDER)
    error_code = body.get("errorCode")
    if error_code not in (None, 0, "0", ""):
        message = redactor.redact(str(body.get("errorMessage") or ""))
        error_type = redactor.redact(str(body.get("errorType") or ""))
        text = f"{error_code} {error_type} {message}".lower()
        is_auth = str(error_code) in ("401", "403") or any(word in text for word in _AUTH_WORDS)
        cls = MessageWhizAuthError if is_auth else MessageWhizError
        log.warning("messagewhiz.error", what=what, error_code=error_code, error_type=error_type, message=message)
        raise cls(message, what=what, error_code=error_code, error_type=error_type, status=response.status_code)
    if "result" not in body:
        raise ProviderResponseError(f"MessageWhiz {what}: envelope without result", provider=PROVIDER)
    return body["result"]


def parse_broadcast(item: Mapping[str, Any]) -> Broadcast | None:
    broadcast_id = _int(item.get("id"))
    if broadcast_id is None:
        return None
    dlr, conversion = _section(item, "dlr"), _section(item, "broadcastConversion")
    body = str(item.get("message_body") or "")
    return Broadcast(
        id=broadcast_id,
        name=str(item.get("name") or ""),
        send_date=_datetime(item.get("send_date")),
        state=_int(item.get("state")),
        message_body=body,
        link_ids=tuple(dict.fromkeys(int(n) for n in _LINK_TOKEN.findall(body))),
        price_cents=_decimal(item.get("real_price")),
        estimated_price_cents=_decimal(item.get("estimated_price")),
        recipient_count=_int(item.get("recipient_count")),
        estimated_count=_int(item.get("estimated_count")),
        delivered_count=_int(dlr.get("delivered_count")),
        sent_count=_int(dlr.get("sent_count")),
        undelivered_count=_int(dlr.get("undelivered_count")),
        rejected_count=_int(dlr.get("rejected_count")),
        expired_count=_int(dlr.get("expired_count")),
        failed_count=_int(dlr.get("failed_count")),
        unique_clicks=_int(conversion.get("uniqueClicks")),
        total_clicks=_int(conversion.get("totalClicks")),
        ctr=_decimal(conversion.get("conversion")),
        created_at=_datetime(item.get("create_date") or item.get("created_at")),
        raw=dict(item),
    )


def parse_link(item: Mapping[str, Any]) -> Link | None:
    link_id = _int(item.get("id"))
    if link_id is None:
        return None
    return Link(
        id=link_id,
        name=str(item.get("name") or ""),
        url=str(item.get("url") or ""),
        enabled=_bool(item.get("enabled")),
        created_at=_datetime(item.get("created_at")),
        raw=dict(item),
    )


def parse_unsubscribe_list(item: Mapping[str, Any]) -> UnsubscribeList | None:
    list_id = _int(item.get("id"))
    if list_id is None:
        return None
    enabled = item.get("enabled")
    return UnsubscribeList(list_id, str(item.get("name") or ""), enabled in (None, True, 1, "1", "true"),
                           _int(item.get("unsubscribers_amount")))


def parse_unsubscriber(item: Mapping[str, Any]) -> Unsubscriber | None:
    phone = str(item.get("phone_number") or "").strip()
    if not phone:
        return None
    return Unsubscriber(phone, _datetime(item.get("created_at")))


def parse_sender(item: Mapping[str, Any]) -> Sender | None:
    sender_id = _int(item.get("id"))
    if sender_id is None:
        return None
    return Sender(id=sender_id, name=str(item.get("name") or ""), enabled=_bool(item.get("enabled")), raw=dict(item))


def day_window(day: date) -> tuple[datetime, datetime]:
    """[00:00, 24:00) UTC of `day`."""
    start = datetime.combine(day, time(), tzinfo=UTC)
    return start, start + timedelta(days=1)


class _HasId(Protocol):
    @property
    def id(self) -> int: ...


T = TypeVar("T", bound=_HasId)


# --- the client ---------------------------------------------------------------------------------------


class MessageWhizClient(SyncProviderAPI):
    """Synchronous MessageWhiz client (thread-safe); `concurrency` caps requests in flight."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        concurrency: int | None = 5,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
    ) -> None:
        if not base_url or not api_key:
            raise ValueError("MessageWhiz needs base_url and api_key")
        if page_size < 1 or max_pages < 1:
            raise ValueError("page_size and max_pages must be >= 1")
        self.base_url = base_url.rstrip("/")
        self.page_size, self.max_pages = page_size, max_pages
        config = ProviderConfig(
            name=PROVIDER,
            base_url=self.base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            secret_fields=frozenset({"apikey", "api_key"}),
            secret_values=(api_key,),
            headers={"apikey": api_key, "Accept": "application/json"},
        )
        self.redactor = Redactor(config.secret_fields, config.secret_values)
        self._http = ProviderClient(config, transport=transport, rate_limiter=rate_limiter, max_concurrency=concurrency)

    def _get(self, path: str, params: dict[str, int]) -> Any:
        try:
            response = self._http.request("GET", path, params=params, idempotent=True, log_fields=params)
        except ProviderAuthError as exc:
            raise MessageWhizAuthError(f"API key refused (HTTP {exc.status})", what=path, status=exc.status) from exc
        return parse_envelope(response, what=path, redactor=self.redactor)

    def _iterate(self, path: str, parse: Callable[[Mapping[str, Any]], T | None]) -> Iterator[T]:
        """Every item of a listing, once, in the provider's order; ends on a short or empty page."""
        start, seen = 0, set()
        for _ in range(self.max_pages):
            page = self._get(path, {"start": start, "limit": self.page_size})
            if not isinstance(page, list):
                raise ProviderResponseError(f"MessageWhiz {path}: result is not a list", provider=PROVIDER)
            for raw in page:
                item = parse(raw) if isinstance(raw, Mapping) else None
                if item is None:
                    log.warning("messagewhiz.item_skipped", path=path, reason="not an object with an id")
                elif item.id not in seen:  # the list grows at its head while we page: items shift down
                    seen.add(item.id)
                    yield item
            if len(page) < self.page_size:
                return
            start += len(page)
        raise MessageWhizPagingLimit(f"more than {self.max_pages} pages", what=path)

    def iter_broadcasts(self, since: datetime | None = None, until: datetime | None = None) -> Iterator[Broadcast]:
        """Broadcasts sent in [since, until), newest first, as their pages arrive.

        Newest first means the first item sent before `since` ends the listing (the original's rule).
        With a bound given, broadcasts without a send date are left out.
        """
        for broadcast in self._iterate(BROADCASTS_PATH, parse_broadcast):
            sent = broadcast.send_date
            if since is None and until is None:
                yield broadcast
            elif sent is None or (until is not None and sent >= until):
                continue
            elif since is not None and sent < since:
                return
            else:
                yield broadcast

    def broadcasts(self, since: datetime | None = None, until: datetime | None = None) -> list[Broadcast]:
        return list(self.iter_broadcasts(since, until))

    def broadcasts_for_day(self, day: date) -> list[Broadcast]:
        """The broadcasts sent on `day` (UTC), newest first."""
        return self.broadcasts(*day_window(day))

    def iter_links(self) -> Iterator[Link]:
        return self._iterate(LINKS_PATH, parse_link)

    def links(self) -> list[Link]:
        return list(self.iter_links())

    def links_by_id(self, link_ids: Iterable[int]) -> dict[int, Link]:
        """The wanted links; pages only until all are found. Unknown ids are absent from the answer."""
        wanted, found = set(link_ids), {}
        if wanted:
            for link in self.iter_links():
                if link.id in wanted:
                    found[link.id] = link
                    if len(found) == len(wanted):
                        break
        return found

    def senders(self) -> list[Sender]:
        return list(self._iterate(SENDERS_PATH, parse_sender))

    def unsubscribe_lists(self) -> list[UnsubscribeList]:
        """The account's unsubscribe lists (`GET /api/3/unsubscribeList`)."""
        return list(self._iterate(UNSUBSCRIBE_LISTS_PATH, parse_unsubscribe_list))

    def iter_unsubscribers(self, list_id: int) -> Iterator[Unsubscriber]:
        """Every member of one unsubscribe list, once (`GET /api/3/unsubscribeList/{id}/members`, paged)."""
        path = UNSUBSCRIBERS_PATH.format(list_id=int(list_id))
        start, seen = 0, set()
        for _ in range(self.max_pages):
            page = self._get(path, {"start": start, "limit": self.page_size})
            if not isinstance(page, list):
                raise ProviderResponseError(f"MessageWhiz {path}: result is not a list", provider=PROVIDER)
            fresh = 0
            for raw in page:
                member = parse_unsubscriber(raw) if isinstance(raw, Mapping) else None
                if member is None:
                    log.warning("messagewhiz.item_skipped", path=path, reason="no phone_number")
                elif member.phone_number not in seen:
                    seen.add(member.phone_number)
                    fresh += 1
                    yield member
            # a short page ends it; so does a page of nothing new (a server that ignores `start`)
            if len(page) < self.page_size or not fresh:
                return
            start += len(page)
        raise MessageWhizPagingLimit(f"more than {self.max_pages} pages", what=path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"
