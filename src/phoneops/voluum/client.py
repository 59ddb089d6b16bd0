# Over 400 lines: one client for the whole Voluum API (session, reports, conversions, entities, costs).
"""Voluum API client (wire protocol only; it knows nothing of our tables or settings).

- Session: `POST /auth/access/session` with the access id / key gives a token sent as `cwauth-token`. It is
  cached until shortly before its `expirationTimestamp` (`renew_before_s`, at most half its lifetime) and
  renewed once, never more, when a call answers 401. Concurrent callers share one renewal.
- Reads are retried by the provider kit on transport errors, 429 (honouring `Retry-After`) and 5xx, within
  its `RetryPolicy`; `push_cost` is sent once. A client-side rate limiter keeps us under Voluum's 15 req/s
  (default 12 req/s, bursts of 1).
- Paging (`iter_report_rows`, `iter_conversions`) moves the offset by the rows received and stops at an empty
  page, a short page, once `totalRows` is reached (as last reported), or after `max_pages` pages.
- HTTP errors become the typed errors of `phoneops.voluum.wire` with Voluum's own message; the access key
  and session tokens never appear in log lines or error texts.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog

from phoneops.core.http import (
    ProviderClient,
    ProviderConfig,
    ProviderError,
    RateLimiter,
    Redactor,
    RetryPolicy,
    SyncProviderAPI,
    tls_context,
)
from phoneops.voluum.wire import (
    AUTH_PATH,
    CAMPAIGN_PATH,
    CONVERSIONS_PATH,
    COST_PATH,
    DEFAULT_TZ,
    PROVIDER,
    REPORT_PATH,
    SECRET_FIELDS,
    TOKEN_HEADER,
    Campaign,
    Conversion,
    CostUpdate,
    Filters,
    Offer,
    ReportPage,
    VoluumAuthError,
    VoluumBadRequest,
    VoluumBadResponse,
    VoluumError,
    VoluumNotFound,
    VoluumRateLimited,
    VoluumUnavailable,
    When,
    error_from_answer,
    parse_envelope,
    parse_page,
    report_params,
)

log = structlog.get_logger("phoneops.voluum.client")

DEFAULT_RATE = 12.0  # requests per second; Voluum documents 15
DEFAULT_PAGE_SIZE = 10_000
DEFAULT_MAX_PAGES = 1_000
MAX_SKEW_S = 5.0  # beyond this gap between our clock and the server's `Date`, trust the server's


class _LastErrorAnswer(httpx.BaseTransport):
    """Remembers, per thread, the last HTTP error answer (the kit's errors carry no body, the envelope does)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner
        self._local = threading.local()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self._local.response = None
        response = self._inner.handle_request(request)
        if response.status_code >= 400:
            self._local.response = response  # httpx reads the body before the kit sees the answer
        return response

    def last(self) -> httpx.Response | None:
        response: httpx.Response | None = getattr(self._local, "response", None)
        return response

    def clear(self) -> None:
        self._local.response = None

    def close(self) -> None:
        self._inner.close()


@dataclass(frozen=True)
class _Session:
    token: str
    renew_at: float  # on the client's monotonic clock
    expires: datetime  # as Voluum reported it


class VoluumClient(SyncProviderAPI):
    """Synchronous Voluum client, thread-safe; share one per process.

    `requests_per_second=None` (and no `rate_limiter`) disables client-side limiting; `clock` (monotonic
    seconds) decides when the session is renewed.
    """

    def __init__(
        self,
        base_url: str,
        access_id: str,
        access_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        requests_per_second: float | None = DEFAULT_RATE,
        concurrency: int | None = None,
        renew_before_s: float = 60.0,
        page_size: int = DEFAULT_PAGE_SIZE,
        max_pages: int = DEFAULT_MAX_PAGES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not base_url or not access_id or not access_key:
            raise ValueError("Voluum needs base_url, access_id and access_key")
        if page_size < 1 or max_pages < 1 or renew_before_s < 0:
            raise ValueError("page_size and max_pages must be >= 1, renew_before_s >= 0")
        self.base_url = base_url.rstrip("/")
        self.access_id = access_id
        self._access_key = access_key
        self.renew_before_s = renew_before_s
        self.page_size = page_size
        self.max_pages = max_pages
        self._clock = clock
        config = ProviderConfig(
            name=PROVIDER, base_url=self.base_url, timeout=timeout, retry=retry or RetryPolicy(),
            secret_fields=SECRET_FIELDS, secret_values=(access_key,),
            headers={"Accept": "application/json"},
        )
        if rate_limiter is None and requests_per_second:
            rate_limiter = RateLimiter(requests_per_second, burst=1)
        pool = max(100, concurrency or 0)
        limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
        self._answers = _LastErrorAnswer(transport or httpx.HTTPTransport(verify=tls_context(), limits=limits))
        self._http = ProviderClient(
            config, transport=self._answers, rate_limiter=rate_limiter, max_concurrency=concurrency
        )
        self._session: _Session | None = None
        self._session_lock = threading.Lock()
        self._recent_tokens: deque[str] = deque(maxlen=4)  # scrubbed from error texts
        self._tokens_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"VoluumClient(base_url={self.base_url!r}, access_id={self.access_id!r})"

    # --- plumbing -----------------------------------------------------------------------------------

    def _redactor(self) -> Redactor:
        with self._tokens_lock:
            tokens = tuple(self._recent_tokens)
        return Redactor(SECRET_FIELDS, (self._access_key, *tokens))

    def _send(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> httpx.Response:
        """One kit request; HTTP errors become typed Voluum errors, transport errors stay the kit's."""
        self._answers.clear()
        try:
            return self._http.request(method, path, idempotent=idempotent, **kwargs)
        except ProviderError as exc:
            if exc.status is None:
                raise
            answer = self._answers.last()
            if answer is not None and answer.status_code != exc.status:
                answer = None
            envelope = parse_envelope(answer.content) if answer is not None else None
            where = f"{method} {path.partition('?')[0]}"
            error = error_from_answer(exc, envelope, where=where, redactor=self._redactor())
            log.warning("voluum.error", path=path, status=exc.status, voluum_code=error.voluum_code,
                        description=error.description, web_request_id=error.web_request_id)
            raise error from exc

    def _json(self, response: httpx.Response, where: str, *, maybe_sent: bool = False) -> Any:
        """The decoded body; None for an empty body (Voluum sometimes answers 200 with nothing)."""
        if not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            raise VoluumBadResponse(f"Voluum {where}: answer is not JSON", status=response.status_code,
                                    maybe_sent=maybe_sent) from None

    def _authenticate(self) -> _Session:
        response = self._send(
            "POST", AUTH_PATH, idempotent=True, json={"accessId": self.access_id, "accessKey": self._access_key},
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        data = self._json(response, "auth")
        token = data.get("token") if isinstance(data, dict) else None
        expires_text = data.get("expirationTimestamp") if isinstance(data, dict) else None
        try:
            expires = datetime.fromisoformat(str(expires_text))
        except ValueError:
            expires = None
        if not isinstance(token, str) or not token or expires is None:
            raise VoluumBadResponse("Voluum auth: answer holds no token and expirationTimestamp", status=200)
        expires = expires.replace(tzinfo=UTC) if expires.tzinfo is None else expires
        with self._tokens_lock:
            self._recent_tokens.append(token)
        lifetime = max(0.0, (expires - self._server_now(response)).total_seconds())
        margin = min(self.renew_before_s, lifetime / 2)
        log.info("voluum.session", expires=expires.isoformat(), lifetime_s=round(lifetime, 1))
        return _Session(token=token, renew_at=self._clock() + lifetime - margin, expires=expires)

    @staticmethod
    def _server_now(response: httpx.Response) -> datetime:
        """Our time, or the server's `Date` when the clocks disagree by more than `MAX_SKEW_S`."""
        now = datetime.now(UTC)
        try:
            server = parsedate_to_datetime(response.headers.get("Date", ""))
        except (TypeError, ValueError):
            return now
        server = server.replace(tzinfo=UTC) if server.tzinfo is None else server
        return server if abs((server - now).total_seconds()) > MAX_SKEW_S else now

    def _token(self) -> str:
        with self._session_lock:  # one renewal for all threads
            session = self._session
            if session is None or self._clock() >= session.renew_at:
                session = self._session = self._authenticate()
            return session.token

    def _forget(self, token: str) -> None:
        with self._session_lock:
            if self._session is not None and self._session.token == token:
                self._session = None

    def _call(self, method: str, path: str, *, idempotent: bool, **kwargs: Any) -> httpx.Response:
        """An authenticated call: on a 401 the session is renewed and the call sent once more."""
        headers = kwargs.pop("headers", {})
        token = self._token()
        try:
            return self._send(method, path, idempotent=idempotent, headers={**headers, TOKEN_HEADER: token}, **kwargs)
        except VoluumAuthError as exc:
            if exc.status != 401:
                raise
            log.info("voluum.session.refused", path=path)
            self._forget(token)
        headers = {**headers, TOKEN_HEADER: self._token()}
        return self._send(method, path, idempotent=idempotent, headers=headers, **kwargs)

    def _pages(self, fetch: Callable[[int, int], ReportPage], what: str, page_size: int | None,
               max_pages: int | None) -> Iterator[ReportPage]:
        size = page_size or self.page_size
        cap = max_pages or self.max_pages
        offset, rows, reason = 0, 0, "max_pages"
        previous: str | None = None
        for number in range(1, cap + 1):
            page = fetch(offset, size)
            fingerprint = json.dumps(page.rows, sort_keys=True, default=str) if page.rows else None
            if fingerprint is not None and fingerprint == previous:
                # The tracker ignored the offset and sent the last page again: storing it would duplicate rows
                # and lose the ones it never sent, so the whole sync fails instead.
                log.warning("voluum.paging.repeated", what=what, page=number, offset=offset)
                raise VoluumBadResponse(
                    f"Voluum sent the same {what} page again for offset {offset} (page {number}): it ignored "
                    "the offset, so its rows cannot be collected completely and none of them are stored"
                )
            previous = fingerprint
            yield page
            got = len(page.rows)
            offset += got
            rows += got
            limit = min(size, page.limit) if page.limit else size  # the server may cap `limit`
            if got == 0:
                reason = "empty_page"
            elif got < limit:
                reason = "short_page"
            elif page.total_rows is not None and offset >= page.total_rows:
                reason = "total_rows"
            else:
                continue
            log.info("voluum.paging.done", what=what, pages=number, rows=rows, reason=reason)
            return
        log.warning("voluum.paging.done", what=what, pages=cap, rows=rows, reason=reason)

    # --- reports ------------------------------------------------------------------------------------

    def report(
        self,
        from_: When,
        to: When,
        *,
        group_by: Sequence[str] = (),
        columns: Sequence[str] = (),
        currency: str | None = None,
        tz: str = DEFAULT_TZ,
        filters: Filters | None = None,
        limit: int | None = None,
        offset: int = 0,
        sort: str | None = None,
        direction: str | None = None,
        report_type: str | None = "table",
        include: str | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> ReportPage:
        """One page of `GET /report`. `group_by`/`filters` take camelCase or kebab-case dimensions
        (`customVariable1`, `trafficSourceId`); `filters` like `{"trafficSourceId": "<uuid>"}`."""
        params = report_params(
            from_, to, group_by=group_by, columns=columns, currency=currency, tz=tz, filters=filters,
            limit=limit or self.page_size, offset=offset, sort=sort, direction=direction,
            report_type=report_type, include=include, extra=extra,
        )
        fields = {"group_by": ",".join(group_by), "offset": offset, "limit": limit or self.page_size}
        response = self._call("GET", REPORT_PATH, idempotent=True, params=params, log_fields=fields)
        return parse_page(self._json(response, "report"), where="GET /report")

    def iter_report_pages(
        self, from_: When, to: When, *, page_size: int | None = None, max_pages: int | None = None, **options: Any
    ) -> Iterator[ReportPage]:
        """Every page of a report (`options` as for `report`, without limit/offset)."""

        def fetch(offset: int, limit: int) -> ReportPage:
            return self.report(from_, to, limit=limit, offset=offset, **options)

        return self._pages(fetch, "report", page_size, max_pages)

    def iter_report_rows(
        self, from_: When, to: When, *, page_size: int | None = None, max_pages: int | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Every row of a report, page after page (ends on an empty or short page, at `totalRows` or after
        `max_pages`). Rows may repeat or go missing if Voluum's data moves while we page."""
        for page in self.iter_report_pages(from_, to, page_size=page_size, max_pages=max_pages, **options):
            yield from page.rows

    # --- conversions --------------------------------------------------------------------------------

    def conversions(
        self,
        from_: When,
        to: When,
        *,
        columns: Sequence[str] = (),
        currency: str | None = None,
        tz: str = DEFAULT_TZ,
        limit: int | None = None,
        offset: int = 0,
    ) -> ReportPage:
        """One page of `GET /report/conversions` (all 49 columns when `columns` is empty)."""
        params = report_params(from_, to, columns=columns, currency=currency, tz=tz, limit=limit or self.page_size,
                               offset=offset, report_type=None)
        fields = {"offset": offset, "limit": limit or self.page_size}
        response = self._call("GET", CONVERSIONS_PATH, idempotent=True, params=params, log_fields=fields)
        return parse_page(self._json(response, "conversions"), where="GET /report/conversions")

    def iter_conversion_rows(
        self, from_: When, to: When, *, page_size: int | None = None, max_pages: int | None = None, **options: Any
    ) -> Iterator[dict[str, Any]]:
        """Every conversion row as sent (paged like `iter_report_rows`); duplicates are Voluum's."""

        def fetch(offset: int, limit: int) -> ReportPage:
            return self.conversions(from_, to, limit=limit, offset=offset, **options)

        for page in self._pages(fetch, "conversions", page_size, max_pages):
            yield from page.rows

    def iter_conversions(
        self, from_: When, to: When, *, page_size: int | None = None, max_pages: int | None = None, **options: Any
    ) -> Iterator[Conversion]:
        for row in self.iter_conversion_rows(from_, to, page_size=page_size, max_pages=max_pages, **options):
            yield Conversion.from_row(row)

    # --- entities -----------------------------------------------------------------------------------

    def _named(self, from_: When, to: When, entity: str, tz: str) -> Iterable[tuple[str, str]]:
        id_key, name_key = f"{entity}Id", f"{entity}Name"
        seen: set[str] = set()
        for row in self.iter_report_rows(
            from_, to, group_by=[entity], columns=[id_key, name_key], report_type="tree", include="ALL",
            direction="DESC", tz=tz,
        ):
            entity_id = str(row.get(id_key) or "")
            if entity_id and entity_id not in seen:
                seen.add(entity_id)
                yield entity_id, str(row.get(name_key) or "")

    def offers(self, from_: When, to: When, *, tz: str = DEFAULT_TZ) -> list[Offer]:
        """Offers (id, name) from the offer tree report over a window (`include=ALL`)."""
        return [Offer(offer_id=i, offer_name=n) for i, n in self._named(from_, to, "offer", tz)]

    def report_campaigns(self, from_: When, to: When, *, tz: str = DEFAULT_TZ) -> list[Campaign]:
        """Campaigns (id, name only) from the campaign tree report over a window."""
        return [Campaign(campaign_id=i, name=n) for i, n in self._named(from_, to, "campaign", tz)]

    def campaigns(self) -> list[Campaign]:
        """Every campaign from `GET /campaign`."""
        data = self._json(self._call("GET", CAMPAIGN_PATH, idempotent=True), "campaigns")
        items = data.get("campaigns") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise VoluumBadResponse("Voluum GET /campaign: answer holds no campaigns list", status=200)
        return [Campaign.from_entity(item) for item in items if isinstance(item, dict)]

    def campaign(self, campaign_id: str) -> Campaign:
        """One campaign (`GET /campaign/{id}`); `VoluumNotFound` when Voluum does not know it."""
        if not campaign_id or "/" in campaign_id:
            raise ValueError("campaign_id must be a non-empty id")
        response = self._call("GET", f"{CAMPAIGN_PATH}/{campaign_id}", idempotent=True)
        data = self._json(response, "campaign")
        if not isinstance(data, dict) or not data.get("id"):
            raise VoluumBadResponse("Voluum GET /campaign/{id}: answer holds no campaign", status=200)
        return Campaign.from_entity(data)

    # --- costs --------------------------------------------------------------------------------------

    def push_costs(self, updates: Sequence[CostUpdate]) -> Any:
        """`POST /report/cost` with every update in one call, sent exactly once (never retried; a failure
        with `maybe_sent` may still have been applied). Returns Voluum's decoded answer, if any."""
        if not updates:
            raise ValueError("push_costs needs at least one update")
        body = {"costUpdateRequests": [update.to_json() for update in updates]}
        fields = {"campaigns": ",".join(u.campaign_id for u in updates), "updates": len(updates)}
        response = self._call("POST", COST_PATH, idempotent=False, json=body, log_fields=fields)
        return self._json(response, "cost", maybe_sent=True)

    def push_cost(
        self, campaign_id: str, from_: When, to: When, cost: Decimal | float | int, currency: str,
        *, timezone: str = DEFAULT_TZ,
    ) -> Any:
        """Set one campaign's cost over [from_, to) in `currency` (see `push_costs`)."""
        return self.push_costs([CostUpdate(campaign_id, from_, to, cost, currency, timezone)])

    # --- lifecycle ----------------------------------------------------------------------------------

    @property
    def session_expires(self) -> datetime | None:
        """When the cached session expires (Voluum's time), None before the first call."""
        session = self._session
        return session.expires if session is not None else None


__all__ = [
    "Campaign", "Conversion", "CostUpdate", "Offer", "ReportPage", "VoluumAuthError", "VoluumBadRequest",
    "VoluumBadResponse", "VoluumClient", "VoluumError", "VoluumNotFound", "VoluumRateLimited", "VoluumUnavailable",
]
