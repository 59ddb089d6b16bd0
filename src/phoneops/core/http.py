# Over 400 lines: the provider kit: config, retries, rate limits, redaction, sync and async clients.
"""The provider kit: one httpx setup shared by every provider client.

`ProviderClient` (sync) and `AsyncProviderClient` (async) wrap an httpx client with explicit timeouts, a
client-side rate limiter, an optional concurrency cap, typed errors, canonical log lines without secrets and,
for calls marked idempotent only, bounded retries (stamina: exponential backoff with jitter, `Retry-After`
honoured, a stop after `attempts` tries or `total_timeout` seconds, whichever comes first).

A provider's client describes each call once, as a `ProviderCall` (method, path, httpx options, how to read the
answer); its sync and async classes (on `SyncProviderAPI` / `AsyncProviderAPI`) differ only in how they send it.

Paid calls (`idempotent=False`) are sent exactly once. When such a call fails, the error's `maybe_sent` says
whether the provider may have received, and acted on, the request:

- `maybe_sent=False`: the request never left (connection refused, connect/pool timeout) or the provider
  refused it outright (429, 401/403, other 4xx). Sending it again cannot pay twice.
- `maybe_sent=True`: the request may have been processed (read/write timeout, connection dropped mid-way,
  5xx, unreadable answer). Do not resend: reconcile with the provider first (docs/paid-calls.md).

This module knows nothing of settings: domains build a `ProviderConfig` from theirs.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import functools
import re
import ssl
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Generic, Protocol, Self, TypeVar
from urllib.parse import quote, quote_plus

import httpx
import stamina
import structlog

from phoneops.core.errors import UpstreamError

log = structlog.get_logger("phoneops.provider")

# An upper bound on every provider call's timeout, applied when a client is built (None: each client's own).
# Fault-injection tests lower it so that a simulator holding an answer makes the call really time out.
TIMEOUT_CAP_SECONDS: float | None = None

REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter values are only scrubbed by field name, never by value


# --- errors -------------------------------------------------------------------------------------------


class ProviderError(UpstreamError):
    """A provider call failed. `maybe_sent`: the provider may have acted on it (see module docstring)."""

    code = "provider_error"

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        status: int | None = None,
        maybe_sent: bool = False,
        retry_after: float | None = None,
        details: Any = None,
    ) -> None:
        super().__init__(message, details=details if details is not None else {"provider": provider})
        self.provider = provider
        self.status = status
        self.maybe_sent = maybe_sent
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.message!r}, provider={self.provider!r}, "
            f"status={self.status!r}, maybe_sent={self.maybe_sent!r})"
        )


class ProviderUnavailable(ProviderError):
    """Transport failure or 5xx (after the retries, for idempotent calls)."""

    code = "provider_unavailable"


class ProviderRateLimited(ProviderError):
    """The provider answered 429; `retry_after` holds its `Retry-After` in seconds when given."""

    status_code = 503
    code = "provider_rate_limited"


class ProviderAuthError(ProviderError):
    """The provider refused our credentials."""

    code = "provider_auth_error"


class ProviderTimeout(ProviderError):
    """No answer in time."""

    status_code = 504
    code = "provider_timeout"


class ProviderResponseError(ProviderError):
    """An answer we cannot use: unexpected 4xx, malformed body, missing fields."""

    code = "provider_bad_response"


_RETRYABLE = (ProviderUnavailable, ProviderRateLimited, ProviderTimeout)
# httpx errors raised before a single byte of the request reached the provider.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)


# --- redaction ----------------------------------------------------------------------------------------


class Redactor:
    """Scrubs secret values (raw and URL-encoded) and the values of secret fields from text."""

    def __init__(self, fields: Iterable[str] = (), values: Iterable[str] = ()) -> None:
        self.fields = frozenset(fields)
        secrets = {v for v in values if v and len(v) >= MIN_SECRET_LENGTH}
        variants = {form for v in secrets for form in (v, quote_plus(v), quote(v, safe=""))}
        alternatives = sorted(variants, key=len, reverse=True)
        self._values = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None
        names = "|".join(re.escape(f) for f in sorted(self.fields, key=len, reverse=True))
        # `apiKey=v`, `apiKey: v`, `"apiKey": "v"`, `<apiKey>v</apiKey>`
        self._fields = (
            re.compile(rf"""(?i)(["'<]?\b(?:{names})\b["'>]?\s*[:=>]\s*["']?)([^&\s"'<,;}}]+)""") if names else None
        )

    def redact(self, text: str) -> str:
        if self._values is not None:
            text = self._values.sub(REDACTED, text)
        if self._fields is not None:
            text = self._fields.sub(lambda m: m.group(1) + REDACTED, text)
        return text

    __call__ = redact

    def redact_mapping(self, data: Mapping[str, Any]) -> dict[str, Any]:
        """A copy of `data` with secret fields masked and secret values scrubbed from strings."""
        return {
            key: REDACTED if key in self.fields else (self.redact(v) if isinstance(v, str) else v)
            for key, v in data.items()
        }


def redact(text: str, *, values: Iterable[str] = (), fields: Iterable[str] = ()) -> str:
    """One-off `Redactor(fields, values).redact(text)`."""
    return Redactor(fields, values).redact(text)


# --- rate limiting ------------------------------------------------------------------------------------


class RateLimiter:
    """Token bucket: `rate` requests per second on average, bursts of up to `burst`.

    Thread-safe, and usable from asyncio (`acquire_async`) at the same time: each caller reserves a token
    under a short lock (the balance may go negative, which queues callers in arrival order) and then
    sleeps outside the lock until its token is due. Returns the time waited.
    """

    def __init__(self, rate: float, burst: int = 1, *, clock: Callable[[], float] = time.monotonic) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def _reserve(self) -> float:
        with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= 1.0
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self) -> float:
        wait = self._reserve()
        if wait > 0:
            time.sleep(wait)
        return wait

    async def acquire_async(self) -> float:
        wait = self._reserve()
        if wait > 0:
            await asyncio.sleep(wait)
        return wait


# --- configuration ------------------------------------------------------------------------------------


@functools.cache
def tls_context() -> ssl.SSLContext:
    """The TLS settings of every provider client of the process (httpx's default: certifi's CA bundle, or
    SSL_CERT_FILE / SSL_CERT_DIR). Built once: building one reads and parses the CA bundle, ~28 ms of CPU that
    each new client and transport paid again."""
    return httpx.create_ssl_context()


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for idempotent calls: at most `attempts` tries within `total_timeout` seconds."""

    attempts: int = 3
    total_timeout: float = 30.0
    wait_initial: float = 0.2
    wait_max: float = 5.0
    wait_jitter: float = 0.5
    max_retry_after: float = 30.0  # a longer Retry-After stops the retries and raises at once

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.total_timeout <= 0:
            raise ValueError("attempts must be >= 1 and total_timeout > 0")


@dataclass(frozen=True)
class ProviderConfig:
    """What the kit needs to know about one provider. `secret_*` are scrubbed from logs and errors."""

    name: str
    base_url: str
    timeout: float | httpx.Timeout = 30.0
    connect_timeout: float = 5.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    secret_fields: frozenset[str] = frozenset()
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    user_agent: str = "phoneops"

    def httpx_timeout(self) -> httpx.Timeout:
        if isinstance(self.timeout, httpx.Timeout):
            return self.timeout
        seconds = self.timeout if TIMEOUT_CAP_SECONDS is None else min(self.timeout, TIMEOUT_CAP_SECONDS)
        return httpx.Timeout(seconds, connect=min(seconds, self.connect_timeout))


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


# --- the clients --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    method: str
    path: str
    idempotent: bool
    kwargs: dict[str, Any]
    log_fields: Mapping[str, object] | None

    @property
    def shown(self) -> str:
        return self.path.partition("?")[0]  # a query string is never logged


T = TypeVar("T")


@dataclass(frozen=True)
class ProviderCall(Generic[T]):
    """One provider call, described once: what to send (`options` go to httpx: `params`, `data`, `json`,
    `headers`, ...) and how to read the answer (`parse`, which raises the provider's typed errors; `recover`,
    when given, turns a failed call's `ProviderError` into an answer or the provider's own error).
    `ProviderClient.call` sends it and returns what `parse` made of the answer; `AsyncProviderClient.call`
    is its awaitable twin."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    idempotent: bool
    log_fields: Mapping[str, object] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    recover: Callable[[ProviderError], T] | None = None  # a failed call's answer after all, or raises


class _KitBase:
    """What the sync and async clients share: error mapping, retry decisions, logging."""

    def __init__(self, config: ProviderConfig, rate_limiter: RateLimiter | None) -> None:
        self.config = config
        self.rate_limiter = rate_limiter
        self.redactor = Redactor(config.secret_fields, config.secret_values)

    @property
    def name(self) -> str:
        return self.config.name

    def redact(self, text: str) -> str:
        return self.redactor.redact(text)

    def _httpx_kwargs(self, max_concurrency: int | None) -> dict[str, Any]:
        pool = max(100, max_concurrency or 0)
        return {
            "verify": tls_context(),
            "base_url": self.config.base_url,
            "timeout": self.config.httpx_timeout(),
            "headers": {"User-Agent": self.config.user_agent, **self.config.headers},
            "limits": httpx.Limits(max_connections=pool, max_keepalive_connections=pool),
            "follow_redirects": False,
        }

    def _retry_decision(self, exc: BaseException) -> bool | float:
        """stamina backoff hook: retry transport errors, timeouts, 429 and 5xx; obey Retry-After."""
        if not isinstance(exc, _RETRYABLE):
            return False
        if exc.retry_after is not None:
            return exc.retry_after if exc.retry_after <= self.config.retry.max_retry_after else False
        return True

    def _retrying(self) -> Any:
        policy = self.config.retry
        return stamina.retry_context(
            on=self._retry_decision,
            attempts=policy.attempts,
            timeout=policy.total_timeout,
            wait_initial=policy.wait_initial,
            wait_max=policy.wait_max,
            wait_jitter=policy.wait_jitter,
        )

    def _failed(self, call: _Call, attempt: int, started: float, exc: httpx.HTTPError) -> ProviderError:
        where = f"{self.name} {call.method} {call.shown}"
        sent = not isinstance(exc, _NOT_SENT)
        kind = type(exc).__name__
        error: ProviderError
        if isinstance(exc, httpx.TimeoutException):
            error = ProviderTimeout(f"{where}: timed out ({kind})", provider=self.name, maybe_sent=sent)
        elif isinstance(exc, httpx.TransportError):
            error = ProviderUnavailable(f"{where}: {kind}", provider=self.name, maybe_sent=sent)
        else:
            error = ProviderResponseError(f"{where}: {kind}", provider=self.name, maybe_sent=sent)
        self._log(call, attempt, started, None, error)
        return error

    def _answered(self, call: _Call, attempt: int, started: float, resp: httpx.Response) -> httpx.Response:
        status = resp.status_code
        error: ProviderError | None = None
        if status >= 400:
            text = f"{self.name} {call.method} {call.shown}: HTTP {status}"
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            kw: dict[str, Any] = {"provider": self.name, "status": status, "retry_after": retry_after}
            if status == 429:
                error = ProviderRateLimited(text, **kw)
            elif status in (401, 403):
                error = ProviderAuthError(text, **kw)
            elif status >= 500:
                error = ProviderUnavailable(text, maybe_sent=True, **kw)
            else:
                error = ProviderResponseError(text, **kw)
        self._log(call, attempt, started, status, error)
        if error is not None:
            raise error
        return resp

    def _log(self, call: _Call, attempt: int, started: float, status: int | None, error: ProviderError | None) -> None:
        fields: dict[str, object] = {
            "provider": self.name,
            "method": call.method,
            "path": call.shown,
            "status": status,
            "elapsed_ms": round((time.perf_counter() - started) * 1000, 1),
            "attempt": attempt,
            "idempotent": call.idempotent,
        }
        if call.log_fields:
            fields.update(self.redactor.redact_mapping(call.log_fields))
        if error is None:
            log.info("provider.request", **fields)
        else:
            log.warning("provider.request", error=type(error).__name__, maybe_sent=error.maybe_sent, **fields)


class ProviderClient(_KitBase):
    """Synchronous provider client. Thread-safe; share one per provider per process."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__(config, rate_limiter)
        self._client = httpx.Client(transport=transport, **self._httpx_kwargs(max_concurrency))
        self._slots = threading.BoundedSemaphore(max_concurrency) if max_concurrency else None

    def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        log_fields: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Send once (`idempotent=False`) or with bounded retries; raises a `ProviderError` on failure.

        `kwargs` go to httpx (`params`, `data`, `json`, `headers`, ...); `log_fields` are extra
        non-secret fields for the log line (their values are scrubbed all the same).
        """
        call = _Call(method, path, idempotent, kwargs, log_fields)
        if not idempotent:
            return self._send(call, 1)
        for attempt in self._retrying():
            with attempt:
                return self._send(call, attempt.num)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    def call(self, spec: ProviderCall[T]) -> T:
        """Send a described call (see `request`) and return its parsed answer."""
        try:
            response = self.request(spec.method, spec.path, idempotent=spec.idempotent, log_fields=spec.log_fields,
                                    **spec.options)
        except ProviderError as exc:
            if spec.recover is None:
                raise
            return spec.recover(exc)
        return spec.parse(response)

    def _send(self, call: _Call, attempt: int) -> httpx.Response:
        with self._slots if self._slots is not None else contextlib.nullcontext():
            if self.rate_limiter is not None:
                self.rate_limiter.acquire()
            started = time.perf_counter()
            try:
                response = self._client.request(call.method, call.path, **call.kwargs)
            except httpx.HTTPError as exc:
                raise self._failed(call, attempt, started, exc) from exc
        return self._answered(call, attempt, started, response)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


class AsyncProviderClient(_KitBase):
    """Asyncio provider client; `max_concurrency` caps in-flight requests. Use it from one event loop."""

    def __init__(
        self,
        config: ProviderConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        max_concurrency: int | None = None,
    ) -> None:
        super().__init__(config, rate_limiter)
        self._client = httpx.AsyncClient(transport=transport, **self._httpx_kwargs(max_concurrency))
        self._slots = asyncio.Semaphore(max_concurrency) if max_concurrency else None

    async def request(
        self,
        method: str,
        path: str,
        *,
        idempotent: bool,
        log_fields: Mapping[str, object] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """Async twin of `ProviderClient.request`."""
        call = _Call(method, path, idempotent, kwargs, log_fields)
        if not idempotent:
            return await self._send(call, 1)
        async for attempt in self._retrying():
            with attempt:
                return await self._send(call, attempt.num)
        raise AssertionError("unreachable: stamina re-raises the last error")  # pragma: no cover

    async def call(self, spec: ProviderCall[T]) -> T:
        """Async twin of `ProviderClient.call`."""
        try:
            response = await self.request(spec.method, spec.path, idempotent=spec.idempotent,
                                          log_fields=spec.log_fields, **spec.options)
        except ProviderError as exc:
            if spec.recover is None:
                raise
            return spec.recover(exc)
        return spec.parse(response)

    async def _send(self, call: _Call, attempt: int) -> httpx.Response:
        async with self._slots if self._slots is not None else contextlib.nullcontext():
            if self.rate_limiter is not None:
                await self.rate_limiter.acquire_async()
            started = time.perf_counter()
            try:
                response = await self._client.request(call.method, call.path, **call.kwargs)
            except httpx.HTTPError as exc:
                raise self._failed(call, attempt, started, exc) from exc
        return self._answered(call, attempt, started, response)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.aclose()


class SyncProviderAPI:
    """Base of a provider's synchronous client: it owns `_http` (a `ProviderClient`) and closes it."""

    _http: ProviderClient

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncProviderAPI:
    """Base of a provider's asyncio client: it owns `_http` (an `AsyncProviderClient`) and closes it."""

    _http: AsyncProviderClient

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class _Closable(Protocol):
    def close(self) -> None: ...


C = TypeVar("C", bound=_Closable)


class ClientCache(Generic[C]):
    """One provider client per process and key (credentials, list, ...), shared by every thread that asks:
    a client's session token, connection pool and concurrency cap are the process's, not a caller's."""

    def __init__(self) -> None:
        self._clients: dict[Hashable, C] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, build: Callable[[], C]) -> C:
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = self._clients[key] = build()
            return client

    def reset(self) -> None:
        """Close and forget every client (tests, or after credentials change)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()
