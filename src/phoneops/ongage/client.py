"""Ongage contacts API client (wire protocol only; docs/providers/ongage.md).

- `POST {base}/{list_id}/api/v2/contacts/` with an array of `{"email", "overwrite", "fields"}` objects,
  authenticated by the three headers `X_USERNAME`, `X_PASSWORD`, `X_ACCOUNT_CODE` (constructor arguments; the
  password is scrubbed from every log line and error message).
- The answer is read per contact: HTTP 200 when none failed, HTTP **412** when some did, with the others
  created or updated all the same. `upsert_contacts` returns one `ContactResult` per contact, in input order,
  and only the contacts named in `failed_emails` come back failed (the original marked the whole queue sent
  on one success). 412 is an answer, not an error; every other refusal raises `OngageError` (or
  `OngageAuthError`), as does a 412 whose body says nothing per contact.
- Retry decision: an upsert with `overwrite: true` (the default) is keyed by email and leaves the same
  contact behind however often it is sent, and it costs nothing, so it is sent as **idempotent**: the kit
  retries it on transport errors, timeouts, 429 and 5xx, boundedly. With `overwrite=False` a repeat would
  turn a lost-answer success into "Email already exists", so such a call is sent once (`idempotent=False`).
- Limits: Ongage allows 300 calls per minute and 10 in parallel per account. The default rate limiter keeps
  any 60 s window within `calls_per_minute` (burst + rate x 60 <= 300) and `max_parallel` caps requests in
  flight. Both hold per client object: share one client per process, and give each process its share.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import structlog

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
    tls_context,
)

log = structlog.get_logger("phoneops.ongage.client")

PROVIDER = "ongage"
CALLS_PER_MINUTE = 300
MAX_PARALLEL = 10
DEFAULT_MAX_BATCH = 500  # the original's batch size (Ongage's docs suggest ~20 per call, /api/import for bulk)
OUTCOMES = ("created", "updated", "revived")
_ERROR_BODY = "phoneops.ongage.error_body"  # request extension: where the transport keeps a 4xx answer
_POOL = httpx.Limits(max_connections=100, max_keepalive_connections=100)


# --- errors -------------------------------------------------------------------------------------------


class OngageError(ProviderError):
    """Ongage refused a call; `provider_message` is its (scrubbed) `payload.message`."""

    code = "ongage_error"

    def __init__(self, message: str, *, what: str, status: int | None = None, maybe_sent: bool = False) -> None:
        super().__init__(
            f"Ongage {what}: {message}" + (f" (HTTP {status})" if status else ""),
            provider=PROVIDER,
            status=status,
            maybe_sent=maybe_sent,
            details={"provider": PROVIDER, "what": what, "status": status},
        )
        self.provider_message = message


class OngageAuthError(OngageError, ProviderAuthError):
    """The credentials (username / password / account code) were refused."""

    code = "ongage_auth_error"


# --- results ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactResult:
    """One contact's outcome. `outcome`: created / updated / revived / accepted (the answer said nothing
    failed but did not name it) / failed / unknown (a partial failure that does not name it) / not_sent."""

    email: str
    ok: bool
    error: str | None = None
    outcome: str = ""
    contact_id: str | None = None


def ongage_rate_limiter(
    calls_per_minute: int = CALLS_PER_MINUTE, burst: int = MAX_PARALLEL, *, clock: Callable[[], float] = time.monotonic
) -> RateLimiter:
    """A token bucket that never allows more than `calls_per_minute` calls in any 60 s window."""
    if not 0 < burst < calls_per_minute:
        raise ValueError("burst must be between 1 and calls_per_minute - 1")
    return RateLimiter(rate=(calls_per_minute - burst) / 60, burst=burst, clock=clock)


# --- the wire format ----------------------------------------------------------------------------------


def _email_map(value: Any) -> dict[str, str]:
    """`{email: id-or-reason}` keyed by lower-cased email; PHP serialises an empty map as `[]`."""
    if isinstance(value, Mapping):
        return {str(k).strip().lower(): "" if v is None else str(v) for k, v in value.items()}
    if isinstance(value, list):
        return {str(v).strip().lower(): "" for v in value if isinstance(v, str)}
    return {}


def payload_of(content: bytes) -> dict[str, Any] | None:
    """The `payload` object of an answer, None when the body is not one."""
    try:
        body = json.loads(content)
    except ValueError:
        return None
    payload = body.get("payload") if isinstance(body, dict) else None
    return payload if isinstance(payload, dict) else None


def has_contact_results(payload: Mapping[str, Any]) -> bool:
    return any(f"{name}_emails" in payload for name in (*OUTCOMES, "failed"))


def contact_results(payload: Mapping[str, Any], emails: Sequence[str], *, all_ok: bool) -> list[ContactResult]:
    """One result per email, in order. `all_ok`: the call as a whole succeeded (HTTP 200, nothing failed)."""
    failed = _email_map(payload.get("failed_emails"))
    done = {email: (name, cid) for name in OUTCOMES for email, cid in _email_map(payload.get(f"{name}_emails")).items()}
    results = []
    for email in emails:
        key = email.strip().lower()
        if key in failed:
            results.append(ContactResult(email, False, failed[key] or "failed", "failed"))
        elif key in done:
            outcome, contact_id = done[key]
            results.append(ContactResult(email, True, None, outcome, contact_id or None))
        elif all_ok:
            results.append(ContactResult(email, True, None, "accepted"))
        else:
            results.append(ContactResult(email, False, "not named in Ongage's answer", "unknown"))
    return results


def _count(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _email(contact: Mapping[str, Any]) -> str:
    email = contact.get("email")
    return email.strip() if isinstance(email, str) else ""


# --- transports that keep a 4xx answer (the kit raises on 4xx; a 412 carries the per-contact outcome) --


class _KeepErrorBody(httpx.BaseTransport):
    def __init__(self, inner: httpx.BaseTransport) -> None:
        self._inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        box = request.extensions.get(_ERROR_BODY)
        if isinstance(box, list) and 400 <= response.status_code < 500:
            box.append(response.read())
        return response

    def close(self) -> None:
        self._inner.close()


class _AsyncKeepErrorBody(httpx.AsyncBaseTransport):
    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        box = request.extensions.get(_ERROR_BODY)
        if isinstance(box, list) and 400 <= response.status_code < 500:
            box.append(await response.aread())
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


# --- the clients --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Upsert:
    """One prepared upsert call: the body to send and the emails it carries, in input order."""

    body: list[dict[str, Any]]
    emails: list[str]
    results: list[ContactResult | None]  # None: sent, outcome pending; else decided locally


class _OngageBase:
    """What the sync and async clients share: credentials, paths, batching and reading answers. `transport` is an
    `httpx.BaseTransport` for `OngageClient`, an `httpx.AsyncBaseTransport` for `AsyncOngageClient` (tests)."""

    def __init__(
        self,
        base_url: str,
        list_id: str,
        username: str,
        password: str,
        account_code: str,
        *,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: Any = None,
        rate_limiter: RateLimiter | None = None,
        max_parallel: int = MAX_PARALLEL,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if not all((base_url, list_id, username, password, account_code)):
            raise ValueError("Ongage needs base_url, list_id, username, password and account_code")
        self.base_url = base_url.rstrip("/")
        self.list_id = str(list_id)
        self.max_batch = max_batch
        self._config = ProviderConfig(
            name=PROVIDER,
            base_url=self.base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            secret_fields=frozenset({"X_PASSWORD", "password"}),
            secret_values=(password,),
            headers={"X_USERNAME": username, "X_PASSWORD": password, "X_ACCOUNT_CODE": account_code},
        )
        self.redactor = Redactor(self._config.secret_fields, self._config.secret_values)
        self.contacts_path = f"/{quote(self.list_id, safe='')}/api/v2/contacts/"
        self._connect(transport, rate_limiter or ongage_rate_limiter(), max_parallel)

    def _connect(self, transport: Any, rate_limiter: RateLimiter, max_parallel: int) -> None:
        raise NotImplementedError

    def _contact_path(self, email: str) -> str:
        return f"/{quote(self.list_id, safe='')}/api/contacts/by_email/{quote(email, safe='@+')}"

    def _prepare(self, contacts: Sequence[Mapping[str, Any]], overwrite: bool) -> _Upsert:
        prepared = _Upsert([], [], [])
        for contact in contacts:
            email = _email(contact) if isinstance(contact, Mapping) else ""
            if not email:
                prepared.results.append(ContactResult(email, False, "missing email", "not_sent"))
                continue
            prepared.body.append({**contact, "email": email, "overwrite": overwrite})
            prepared.emails.append(email)
            prepared.results.append(None)
        if len(prepared.body) > self.max_batch:
            raise ValueError(f"at most {self.max_batch} contacts per call, got {len(prepared.body)}")
        return prepared

    def _settle(self, prepared: _Upsert, payload: Mapping[str, Any], *, all_ok: bool) -> list[ContactResult]:
        sent = iter(contact_results(payload, prepared.emails, all_ok=all_ok))
        results = [r if r is not None else next(sent) for r in prepared.results]
        failed = sum(not r.ok for r in results)
        log.info("ongage.upsert", list_id=self.list_id, contacts=len(results), failed=failed)
        return results

    def _answered(self, prepared: _Upsert, response: httpx.Response) -> list[ContactResult]:
        payload = payload_of(response.content)
        if payload is None:
            raise ProviderResponseError("Ongage upsert: unreadable answer", provider=PROVIDER, maybe_sent=True)
        all_ok = not _email_map(payload.get("failed_emails")) and not _count(payload.get("failed"))
        return self._settle(prepared, payload, all_ok=all_ok)

    def _upsert(self, prepared: _Upsert, overwrite: bool) -> ProviderCall[list[ContactResult]]:
        """The upsert call, described once; a 412 partial failure is settled, any other refusal typed."""
        box: list[bytes] = []

        def recover(exc: ProviderError) -> list[ContactResult]:
            if not isinstance(exc, ProviderAuthError | ProviderResponseError):
                raise exc
            payload = payload_of(box[-1]) if box else None
            if exc.status == 412 and payload is not None and has_contact_results(payload):
                return self._settle(prepared, payload, all_ok=False)
            raise self._refusal(exc, box, "upsert") from exc

        return ProviderCall("POST", self.contacts_path, lambda response: self._answered(prepared, response),
                            idempotent=overwrite, log_fields={"contacts": len(prepared.body)},
                            options={"json": prepared.body, "extensions": {_ERROR_BODY: box}}, recover=recover)

    def _get_contact(self, email: str) -> ProviderCall[dict[str, Any] | None]:
        box: list[bytes] = []

        def recover(exc: ProviderError) -> dict[str, Any] | None:
            if not isinstance(exc, ProviderAuthError | ProviderResponseError):
                raise exc
            if exc.status == 404:
                return None
            raise self._refusal(exc, box, "get contact") from exc

        return ProviderCall("GET", self._contact_path(email), lambda response: payload_of(response.content),
                            idempotent=True, options={"extensions": {_ERROR_BODY: box}}, recover=recover)

    def _refusal(self, exc: ProviderError, box: list[bytes], what: str) -> OngageError:
        payload = (payload_of(box[-1]) if box else None) or {}
        message = self.redactor.redact(str(payload.get("message") or "refused"))
        cls = OngageAuthError if isinstance(exc, ProviderAuthError) else OngageError
        return cls(message, what=what, status=exc.status, maybe_sent=exc.maybe_sent or exc.status == 412)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, list_id={self.list_id!r})"


class OngageClient(_OngageBase, SyncProviderAPI):
    """Synchronous Ongage client (thread-safe; `max_parallel` caps requests in flight across threads)."""

    _http: ProviderClient

    def _connect(self, transport: Any, rate_limiter: RateLimiter, max_parallel: int) -> None:
        self._http = ProviderClient(
            self._config,
            transport=_KeepErrorBody(transport or httpx.HTTPTransport(verify=tls_context(), limits=_POOL)),
            rate_limiter=rate_limiter,
            max_concurrency=max_parallel,
        )

    def upsert_contacts(self, contacts: Sequence[Mapping[str, Any]], *, overwrite: bool = True) -> list[ContactResult]:
        """Create or update contacts in one call; one `ContactResult` per contact, in input order.

        A contact is `{"email": ..., "fields": {...}}` (or Ongage's flat form); `overwrite` is set on each
        from the argument, whatever the contact says. Contacts without an email are not sent (`not_sent`).
        Raises `OngageError` / `ProviderError` when the call as a whole failed (then no contact is known to
        be stored; with `maybe_sent` some may be).
        """
        prepared = self._prepare(contacts, overwrite)
        if not prepared.body:
            return self._settle(prepared, {}, all_ok=True)
        return self._http.call(self._upsert(prepared, overwrite))

    def get_contact(self, email: str) -> dict[str, Any] | None:
        """The contact's `payload` from `GET .../contacts/by_email/<email>`, None when Ongage has none."""
        return self._http.call(self._get_contact(email))


class AsyncOngageClient(_OngageBase, AsyncProviderAPI):
    """Asyncio Ongage client: gather many `upsert_contacts` calls, at most `max_parallel` run at once."""

    _http: AsyncProviderClient

    def _connect(self, transport: Any, rate_limiter: RateLimiter, max_parallel: int) -> None:
        self._http = AsyncProviderClient(
            self._config,
            transport=_AsyncKeepErrorBody(transport or httpx.AsyncHTTPTransport(verify=tls_context(), limits=_POOL)),
            rate_limiter=rate_limiter,
            max_concurrency=max_parallel,
        )

    async def upsert_contacts(
        self, contacts: Sequence[Mapping[str, Any]], *, overwrite: bool = True
    ) -> list[ContactResult]:
        """Async twin of `OngageClient.upsert_contacts`."""
        prepared = self._prepare(contacts, overwrite)
        if not prepared.body:
            return self._settle(prepared, {}, all_ok=True)
        return await self._http.call(self._upsert(prepared, overwrite))

    async def get_contact(self, email: str) -> dict[str, Any] | None:
        return await self._http.call(self._get_contact(email))
