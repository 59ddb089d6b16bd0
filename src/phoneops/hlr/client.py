"""hlrlookup.com API v2 client (wire protocol only; it knows nothing of our tables or settings).

Two hosts (docs/providers/hlr_lookup.md):

- real-time `POST {api}/apiv2/hlr`, credentials `api_key` / `api_secret` in the JSON body, up to 80 numbers
  per call. Every call is PAID: it is sent exactly once (`idempotent=False`), never retried, and a 429, 5xx
  or timeout surfaces as a typed error whose `maybe_sent` says whether the provider may have acted on it.
- the batch host `{batches}/batches/...`, credentials `apikey` / `secret` in the query string. Create,
  upload and start are separate calls so a job can checkpoint between them (the batch id comes back from
  `create_batch`); start is paid and never retried; status, list and results are reads, retried with
  bounded backoff on 429 / 5xx / transport errors (the provider kit, `Retry-After` honoured).

Every failure is an `HlrError` (a `ProviderError`). A per-result `INSUFFICIENT_CREDIT` raises
`HlrInsufficientCredit` carrying the results obtained before it. The key and secret never appear in logs
or error texts (the kit's redactor scrubs them; query strings and bodies are never logged).
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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
from phoneops.hlr.errors import (
    PROVIDER,
    HlrAuthError,
    HlrBadRequest,
    HlrError,
    HlrInsufficientCredit,
    HlrRateLimited,
    HlrResponseError,
    HlrTimeout,
    HlrUnavailable,
    translate,
)
from phoneops.hlr.wire import (
    BATCHES_PATH,
    LOOKUP_PATH,
    MAX_NUMBERS_PER_REQUEST,
    Batch,
    BatchPage,
    HlrResult,
    WireFormatError,
    lookup_request,
    parse_batch,
    parse_batch_page,
    parse_lookup_response,
    parse_results_csv,
    source_csv,
)

__all__ = [
    "INSUFFICIENT_CREDIT", "Batch", "BatchPage", "HlrAuthError", "HlrBadRequest", "HlrClient", "HlrError",
    "HlrInsufficientCredit", "HlrRateLimited", "HlrResponseError", "HlrResult", "HlrTimeout", "HlrUnavailable",
]

log = structlog.get_logger("phoneops.hlr.client")

INSUFFICIENT_CREDIT = "INSUFFICIENT_CREDIT"
_CAPTURE = "phoneops.hlr.error_body"  # request extension through which the transport hands back 4xx bodies
_BATCH_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# A refused start that proves the batch had started ("Batch already started", "... is running/complete").
_ALREADY = re.compile(r"\balready\b", re.IGNORECASE)


class _ErrorBodyTransport(httpx.BaseTransport):
    """Hands the body of a 4xx answer to the caller (the kit raises on 4xx without keeping the body)."""

    def __init__(self, inner: httpx.BaseTransport, *, owned: bool) -> None:
        self._inner = inner
        self._owned = owned

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        box = request.extensions.get(_CAPTURE)
        if isinstance(box, list) and 400 <= response.status_code < 500:
            box.append(response.read()[:4096])
        return response

    def close(self) -> None:
        if self._owned:
            self._inner.close()


def _provider_message(captured: list[bytes], redactor: Redactor) -> str:
    """`ERROR_CODE: message` from a captured `{"error": ..., "message": ...}` body ("" when none)."""
    if not captured:
        return ""
    try:
        body = json.loads(captured[-1])
    except ValueError:
        return ""
    if not isinstance(body, dict):
        return ""
    parts = [str(body[key]).strip() for key in ("error", "message") if body.get(key)]
    return redactor.redact(": ".join(parts))


def _chunks(numbers: Sequence[str], size: int, options: Mapping[str, object]) -> list[list[str]]:
    """The calls to make, every one validated before the first is sent (no paid call, then a ValueError)."""
    if not 1 <= size <= MAX_NUMBERS_PER_REQUEST:
        raise ValueError(f"chunk_size must be 1..{MAX_NUMBERS_PER_REQUEST}")
    chunks = [list(numbers[start : start + size]) for start in range(0, len(numbers), size)]
    for chunk in chunks:
        lookup_request(chunk, options)
    return chunks


def _batch_path(batch_id: str, suffix: str = "") -> str:
    if not _BATCH_ID.match(str(batch_id)):
        raise ValueError(f"not a batch id: {batch_id!r}")
    return f"{BATCHES_PATH}{batch_id}{suffix}"


# --- the client ---------------------------------------------------------------------------------------


class HlrClient(SyncProviderAPI):
    """Synchronous hlrlookup.com client (thread-safe; share one per process).

    `base_url` is the real-time host (https://api.hlrlookup.com), `batch_base_url` the batch host
    (https://batches.hlrlookup.com; defaults to `base_url`, as the simulator serves both). `rate_limiter`
    paces real-time calls, `batch_rate_limiter` batch calls.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        api_secret: str,
        *,
        batch_base_url: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        rate_limiter: RateLimiter | None = None,
        batch_rate_limiter: RateLimiter | None = None,
        concurrency: int | None = None,
    ) -> None:
        if not base_url or not api_key or not api_secret:
            raise ValueError("hlrlookup.com needs base_url, api_key and api_secret")
        self.base_url = base_url.rstrip("/")
        self.batch_base_url = (batch_base_url or base_url).rstrip("/")
        self._api_key = api_key
        self._api_secret = api_secret
        config = ProviderConfig(
            name=PROVIDER,
            base_url=self.base_url,
            timeout=timeout,
            retry=retry or RetryPolicy(),
            secret_fields=frozenset({"api_key", "api_secret", "apikey", "secret"}),
            secret_values=(api_key, api_secret),
        )
        self.redactor = Redactor(config.secret_fields, config.secret_values)
        self._http, self._batch_http = (
            ProviderClient(
                dataclasses.replace(config, base_url=url),
                transport=_ErrorBodyTransport(transport or httpx.HTTPTransport(verify=tls_context()),
                                              owned=transport is None),
                rate_limiter=limiter,
                max_concurrency=concurrency,
            )
            for url, limiter in ((self.base_url, rate_limiter), (self.batch_base_url, batch_rate_limiter))
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r}, batch_base_url={self.batch_base_url!r})"

    # --- plumbing ------------------------------------------------------------------------------------

    def _request(
        self, http: ProviderClient, method: str, path: str, *, idempotent: bool, **kwargs: Any
    ) -> httpx.Response:
        captured: list[bytes] = []
        try:
            return http.request(method, path, idempotent=idempotent, extensions={_CAPTURE: captured}, **kwargs)
        except HlrError:
            raise
        except ProviderError as exc:
            error = translate(exc, _provider_message(captured, self.redactor))
            raise error from None

    def _batch_call(
        self, method: str, path: str, *, idempotent: bool, params: dict[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        auth = {"apikey": self._api_key, "secret": self._api_secret}
        return self._request(
            self._batch_http, method, path, idempotent=idempotent, params={**auth, **(params or {})}, **kwargs
        )

    def _json(self, response: httpx.Response, what: str, *, paid: bool) -> Any:
        try:
            return response.json()
        except ValueError:
            raise HlrResponseError(
                f"{PROVIDER} {what}: answer is not JSON", status=response.status_code, maybe_sent=paid
            ) from None

    # --- real-time lookups (paid) --------------------------------------------------------------------

    def lookup_call(self, numbers: Sequence[str], **options: object) -> list[HlrResult]:
        """ONE paid call for 1..80 numbers; results in request order, one per number.

        `options` are the documented per-number parameters (`cache_days_private=30`, `output_format=...`).
        A result with `INSUFFICIENT_CREDIT` raises `HlrInsufficientCredit` whose `results` are the other
        results of the call and `unprocessed` the numbers that got no result.
        """
        entries = lookup_request(numbers, options)
        sent = [str(entry["telephone_number"]) for entry in entries]
        body = {"api_key": self._api_key, "api_secret": self._api_secret, "requests": entries}
        try:
            response = self._request(
                self._http, "POST", LOOKUP_PATH, idempotent=False, json=body, log_fields={"numbers": len(sent)}
            )
            try:
                results = parse_lookup_response(self._json(response, "lookup", paid=True), sent)
            except WireFormatError as exc:
                raise HlrResponseError(f"{PROVIDER} lookup: {exc}", maybe_sent=True) from None
        except HlrError as error:
            if error.maybe_sent:
                error.in_doubt = tuple(sent)
            else:
                error.unprocessed = tuple(sent)
            raise
        if len(results) != len(sent):  # paired by the echoed number instead of by position
            log.warning("hlr.result_count_mismatch", sent=len(sent), received=len(results))
        short = [r for r in results if r.error == INSUFFICIENT_CREDIT]
        spent = sum((r.credits_spent for r in results), start=0)
        log.info("hlr.lookup", numbers=len(sent), results=len(results), credits_spent=str(spent), short=len(short))
        if short:
            short_error = HlrInsufficientCredit(
                f"{PROVIDER} lookup: insufficient credit for {len(short)} of {len(sent)} numbers",
                maybe_sent=True,
                provider_message=INSUFFICIENT_CREDIT,
            )
            short_error.results = tuple(r for r in results if r.error != INSUFFICIENT_CREDIT)
            short_error.unprocessed = tuple(r.submitted for r in short)
            raise short_error
        return results

    def iter_lookup(
        self, numbers: Sequence[str], *, chunk_size: int = MAX_NUMBERS_PER_REQUEST, **options: object
    ) -> Iterator[list[HlrResult]]:
        """One paid call per chunk, yielding each chunk's results before the next call is sent."""
        for chunk in _chunks(numbers, chunk_size, options):
            yield self.lookup_call(chunk, **options)

    def lookup(
        self, numbers: Sequence[str], *, chunk_size: int = MAX_NUMBERS_PER_REQUEST, **options: object
    ) -> list[HlrResult]:
        """Look up any number of numbers, `chunk_size` (<= 80) per paid call, in order.

        On failure the `HlrError` carries every result obtained so far in `results`, and the numbers
        not looked up in `unprocessed` (plus `in_doubt` for a call that may have gone through).
        """
        numbers = list(numbers)
        results: list[HlrResult] = []
        done = 0
        try:
            for chunk in _chunks(numbers, chunk_size, options):
                try:
                    results.extend(self.lookup_call(chunk, **options))
                finally:
                    done += len(chunk)
        except HlrError as error:
            error.results = (*results, *error.results)
            error.unprocessed = (*error.unprocessed, *numbers[done:])
            raise
        return results

    # --- the batch host ------------------------------------------------------------------------------

    def create_batch(
        self,
        filename: str,
        *,
        batch_type: str = "HLR_V2",
        cache_days_private: int = 30,
        cache_days_global: int = 30,
        save_to_cache: str = "YES",
    ) -> Batch:
        """Create an empty batch (free; sent once so that no stray batch is left behind). Keep its `id`."""
        body = {
            "filename": filename,
            "type": batch_type,
            "batchArguments": {
                "cache_days_private": cache_days_private,
                "cache_days_global": cache_days_global,
                "save_to_cache": save_to_cache,
            },
        }
        response = self._batch_call("POST", BATCHES_PATH, idempotent=False, json=body)
        try:
            batch = parse_batch(self._json(response, "create batch", paid=False))
        except WireFormatError as exc:
            raise HlrResponseError(f"{PROVIDER} create batch: {exc}", maybe_sent=True) from None
        log.info("hlr.batch_created", batch_id=batch.id)
        return batch

    def upload_source(self, batch_id: str, numbers: Iterable[str] | bytes) -> int:
        """Upload the numbers (or a ready CSV body, one number per line); returns the lines sent.

        Sent once: were the provider to append on a second upload, a retry would pay twice.
        """
        content = numbers if isinstance(numbers, bytes) else source_csv(numbers)
        lines = sum(1 for line in content.splitlines() if line.strip())
        self._batch_call(
            "POST", _batch_path(batch_id, "/source"), idempotent=False, content=content,
            headers={"Content-Type": "text/csv"}, log_fields={"lines": lines},
        )
        return lines

    def start_batch(self, batch_id: str) -> bool:
        """Start processing (PAID: the batch's numbers are looked up). Sent once, never retried.

        Starting a started batch pays nothing more (a batch is processed once), so a start whose fate is
        unknown is settled by sending it again: True when this call started it (or the provider answered the
        batch as it is), False when the provider refused it as already started / running / complete.
        """
        try:
            self._batch_call("PUT", _batch_path(batch_id, "/"), idempotent=False, json={"status": "PROCESSING"})
        except HlrBadRequest as exc:
            if _ALREADY.search(exc.provider_message or exc.message):
                log.info("hlr.batch_already_started", batch_id=batch_id)
                return False
            raise
        log.info("hlr.batch_started", batch_id=batch_id)
        return True

    def get_batch(self, batch_id: str) -> Batch:
        response = self._batch_call("GET", _batch_path(batch_id), idempotent=True)
        try:
            return parse_batch(self._json(response, "batch status", paid=False))
        except WireFormatError as exc:
            raise HlrResponseError(f"{PROVIDER} batch status: {exc}") from None

    def list_batches(self, *, offset: int = 0, limit: int = 10) -> BatchPage:
        response = self._batch_call("GET", BATCHES_PATH, idempotent=True, params={"offset": offset, "limit": limit})
        try:
            return parse_batch_page(self._json(response, "list batches", paid=False))
        except WireFormatError as exc:
            raise HlrResponseError(f"{PROVIDER} list batches: {exc}") from None

    def fetch_results_csv(self, batch_id: str) -> bytes:
        """The raw results CSV (first column the submitted number, then the dotted header)."""
        return self._batch_call("GET", _batch_path(batch_id, "/results"), idempotent=True).content

    def fetch_results(self, batch_id: str) -> list[HlrResult]:
        return parse_results_csv(self.fetch_results_csv(batch_id))

    def wait_for_batch(
        self,
        batch_id: str,
        *,
        poll_every: float = 5.0,
        max_wait: float = 5 * 3600.0,
        on_progress: Callable[[Batch], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> Batch:
        """Poll until the batch is complete or failed, at most `max_wait` seconds; returns the last status
        (check `is_finished`: a batch still running after `max_wait` is returned as it is)."""
        deadline = clock() + max_wait
        while True:
            batch = self.get_batch(batch_id)
            if on_progress is not None:
                on_progress(batch)
            if batch.is_finished or clock() + poll_every > deadline:
                return batch
            sleep(poll_every)

    # --- lifecycle -----------------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()
        self._batch_http.close()
