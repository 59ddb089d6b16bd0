"""hlrlookup.com errors: every failure of `HlrClient` is an `HlrError`, itself a provider-kit `ProviderError`.

Each subclass also derives from the kit error it refines (`HlrRateLimited` is a `ProviderRateLimited`...),
so code written against the kit keeps working.
"""

from __future__ import annotations

from phoneops.core.http import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
)
from phoneops.hlr.wire import HlrResult

PROVIDER = "hlr_lookup"


class HlrError(ProviderError):
    """An hlrlookup.com call failed.

    `provider_message` is the provider's (scrubbed) error text. For real-time lookups, `results` holds the
    results obtained before the failure (already paid for: keep them), `unprocessed` the numbers surely not
    looked up, and `in_doubt` those of a call that may have been processed (`maybe_sent`): reconcile them
    before sending them again.
    """

    code = "hlr_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        maybe_sent: bool = False,
        retry_after: float | None = None,
        provider_message: str = "",
    ) -> None:
        details = {"provider": PROVIDER, "provider_message": provider_message} if provider_message else None
        super().__init__(
            message, provider=PROVIDER, status=status, maybe_sent=maybe_sent, retry_after=retry_after, details=details
        )
        self.provider_message = provider_message
        self.results: tuple[HlrResult, ...] = ()
        self.unprocessed: tuple[str, ...] = ()
        self.in_doubt: tuple[str, ...] = ()


class HlrBadRequest(HlrError, ProviderResponseError):
    """HTTP 400 `BAD_REQUEST`: bad, missing or unknown parameters (never a badly formatted number)."""

    status_code = 502
    code = "hlr_bad_request"


class HlrAuthError(HlrError, ProviderAuthError):
    """HTTP 401 `UNAUTHORIZED`: wrong api key or secret."""

    code = "hlr_auth_error"


class HlrRateLimited(HlrError, ProviderRateLimited):
    """HTTP 429 `TOO_MANY_REQUESTS` (not charged); `retry_after` holds the provider's hint when sent."""

    code = "hlr_rate_limited"


class HlrInsufficientCredit(HlrError):
    """A result came back `INSUFFICIENT_CREDIT`: the account is out of credit (top up, then resume).

    `maybe_sent` is True because the call went through for the numbers in `results` (they are paid);
    the numbers in `unprocessed` got no result and can be sent again after a top-up.
    """

    status_code = 402
    code = "hlr_insufficient_credit"


class HlrUnavailable(HlrError, ProviderUnavailable):
    """5xx or a transport failure."""

    code = "hlr_unavailable"


class HlrTimeout(HlrError, ProviderTimeout):
    code = "hlr_timeout"


class HlrResponseError(HlrError, ProviderResponseError):
    """An answer we cannot use (unexpected status, malformed body)."""

    code = "hlr_bad_response"


_TRANSLATION: tuple[tuple[type[ProviderError], type[HlrError]], ...] = (
    (ProviderRateLimited, HlrRateLimited),
    (ProviderAuthError, HlrAuthError),
    (ProviderTimeout, HlrTimeout),
    (ProviderUnavailable, HlrUnavailable),
)


def translate(exc: ProviderError, provider_message: str = "") -> HlrError:
    """The `HlrError` for a kit error (a 400 is `HlrBadRequest`); `provider_message` is appended."""
    cls = next((hlr for kit, hlr in _TRANSLATION if isinstance(exc, kit)), None)
    if cls is None:
        cls = HlrBadRequest if exc.status == 400 else HlrResponseError
    message = f"{exc.message}: {provider_message}" if provider_message else exc.message
    return cls(
        message,
        status=exc.status,
        maybe_sent=exc.maybe_sent,
        retry_after=exc.retry_after,
        provider_message=provider_message,
    )
