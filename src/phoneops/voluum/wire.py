# Over 400 lines: the whole Voluum wire vocabulary (errors, parameters, row types) in one place.
"""The Voluum wire format: typed errors from the error envelope, request parameters, pages and rows.

Pure functions and value types, no I/O (the client in `phoneops.voluum.client` does the calls). Names follow
docs/providers/voluum.md: dimensions are kebab-case in `groupBy`/`filterN` (`custom-variable-1`), columns
and row keys camelCase (`customVariable1`), times ISO UTC (`2025-12-12T00:00:00.000Z`), conversion
timestamps `2025-10-01 04:20:43 AM`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

from phoneops.core.http import (
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderUnavailable,
    Redactor,
)

PROVIDER = "voluum"
AUTH_PATH = "/auth/access/session"
REPORT_PATH = "/report"
CONVERSIONS_PATH = "/report/conversions"
CAMPAIGN_PATH = "/campaign"
COST_PATH = "/report/cost"
TOKEN_HEADER = "cwauth-token"  # noqa: S105 (a header name, not a secret)
DEFAULT_TZ = "Etc/GMT"
SECRET_FIELDS = frozenset({"accessKey", "token", TOKEN_HEADER})

When = datetime | date | str
Filters = Mapping[str, str] | Sequence[tuple[str, str]]


# --- errors -------------------------------------------------------------------------------------------


class VoluumError(ProviderError):
    """Voluum answered with an HTTP error. `voluum_code`, `description`, `web_request_id` come from its
    error envelope (empty when the answer had none); every text is scrubbed of the access key and tokens."""

    code = "voluum_error"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        maybe_sent: bool = False,
        retry_after: float | None = None,
        voluum_code: str = "",
        description: str = "",
        web_request_id: str = "",
        messages: Sequence[str] = (),
    ) -> None:
        details = {"provider": PROVIDER, "status": status, "voluum_code": voluum_code,
                   "description": description, "web_request_id": web_request_id}
        super().__init__(
            message, provider=PROVIDER, status=status, maybe_sent=maybe_sent, retry_after=retry_after, details=details
        )
        self.voluum_code = voluum_code
        self.description = description
        self.web_request_id = web_request_id
        self.messages = tuple(messages)


class VoluumAuthError(VoluumError, ProviderAuthError):
    """401/403: bad access id/key, a session token refused twice, or an endpoint closed to access keys."""

    code = "voluum_auth_error"


class VoluumBadRequest(VoluumError, ProviderResponseError):
    """400/417/422: Voluum refused the request as sent (bad parameter, `NO_VISITS_PERIOD`, ...)."""

    code = "voluum_bad_request"


class VoluumNotFound(VoluumError, ProviderResponseError):
    code = "voluum_not_found"


class VoluumRateLimited(VoluumError, ProviderRateLimited):
    """429, or 403 `LOCKED` (request quota exceeded)."""

    code = "voluum_rate_limited"


class VoluumUnavailable(VoluumError, ProviderUnavailable):
    """5xx after the kit's retries (reads) or at once (cost pushes)."""

    code = "voluum_unavailable"


class VoluumBadResponse(VoluumError, ProviderResponseError):
    """A 2xx answer we cannot read (not JSON, missing fields)."""

    code = "voluum_bad_response"


@dataclass(frozen=True)
class Envelope:
    """`{"error": {"code", "description", "messages", "webRequestId", "time"}}`."""

    code: str
    description: str
    messages: tuple[str, ...] = ()
    web_request_id: str = ""
    time: str = ""


def parse_envelope(content: bytes) -> Envelope | None:
    """The error envelope in an answer body, or None when the body holds none."""
    try:
        data = json.loads(content)
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    if not isinstance(error, dict):
        return None
    messages = error.get("messages")
    return Envelope(
        code=str(error.get("code") or ""),
        description=str(error.get("description") or ""),
        messages=tuple(str(m) for m in messages) if isinstance(messages, list) else (),
        web_request_id=str(error.get("webRequestId") or ""),
        time=str(error.get("time") or ""),
    )


def error_class(status: int, voluum_code: str = "") -> type[VoluumError]:
    if status == 429 or voluum_code == "LOCKED":
        return VoluumRateLimited
    if status in (401, 403):
        return VoluumAuthError
    if status == 404:
        return VoluumNotFound
    if status >= 500:
        return VoluumUnavailable
    if status in (400, 417, 422):
        return VoluumBadRequest
    return VoluumError


def error_from_answer(
    cause: ProviderError, envelope: Envelope | None, *, where: str, redactor: Redactor
) -> VoluumError:
    """The typed error for an HTTP error answer (`cause` is the kit's error for it)."""
    status = cause.status or 0
    env = envelope or Envelope(code="", description="")
    description = redactor.redact(env.description)
    messages = tuple(redactor.redact(m) for m in env.messages)
    text = f"Voluum {where}: HTTP {status}"
    if env.code:
        text += f" {redactor.redact(env.code)}"
    if description:
        text += f": {description}"
    if messages:
        text += f" ({'; '.join(messages)})"
    return error_class(status, env.code)(
        text, status=status, maybe_sent=cause.maybe_sent, retry_after=cause.retry_after,
        voluum_code=redactor.redact(env.code), description=description,
        web_request_id=env.web_request_id, messages=messages,
    )


# --- parameters ---------------------------------------------------------------------------------------

_ENTITY_IDS = re.compile(r"(?<=[a-z])Id$")
_WORDS = re.compile(r"(?<=[a-z])(?=[A-Z])|(?<=[A-Za-z])(?=\d)")


def dimension(name: str) -> str:
    """A dimension in Voluum's kebab-case: `customVariable1` -> `custom-variable-1`, `trafficSourceId` ->
    `traffic-source`, `osVersion` -> `os-version`; kebab-case names pass through unchanged."""
    if "-" in name or name.islower():
        return name
    return _WORDS.sub("-", _ENTITY_IDS.sub("", name)).lower()


def format_time(value: When, *, millis: bool = True) -> str:
    """ISO UTC as Voluum takes it; naive datetimes are UTC, a date is its midnight UTC, text passes through."""
    if isinstance(value, str):
        return value
    moment = value if isinstance(value, datetime) else datetime.combine(value, time(), tzinfo=UTC)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{moment.microsecond // 1000:03d}Z" if millis else f"{text}Z"


def filter_params(filters: Filters | None) -> list[tuple[str, str]]:
    """`{"trafficSourceId": id}` -> `filter1=traffic-source&filter1Value=id` (numbered in order)."""
    pairs = list(filters.items()) if isinstance(filters, Mapping) else list(filters or ())
    params: list[tuple[str, str]] = []
    for number, (name, value) in enumerate(pairs, start=1):
        params += [(f"filter{number}", dimension(name)), (f"filter{number}Value", str(value))]
    return params


def report_params(
    from_: When,
    to: When,
    *,
    group_by: Iterable[str] = (),
    columns: Iterable[str] = (),
    currency: str | None = None,
    tz: str = DEFAULT_TZ,
    filters: Filters | None = None,
    limit: int,
    offset: int = 0,
    sort: str | None = None,
    direction: str | None = None,
    report_type: str | None = "table",
    include: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> list[tuple[str, str]]:
    """Query parameters of `GET /report` (repeatable ones repeated)."""
    if limit < 1 or offset < 0:
        raise ValueError("limit must be >= 1 and offset >= 0")
    params = [("from", format_time(from_)), ("to", format_time(to)), ("tz", tz)]
    params += [("groupBy", dimension(g)) for g in group_by]
    params += [("column", c) for c in columns]
    params += filter_params(filters)
    optional = {"currency": currency, "sort": sort, "direction": direction, "reportType": report_type,
                "include": include}
    params += [(key, value) for key, value in optional.items() if value]
    params += [("limit", str(limit)), ("offset", str(offset))]
    params += list((extra or {}).items())
    return params


# --- answers ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportPage:
    """One page of `/report` or `/report/conversions`. `rows` are dicts keyed as Voluum sends them;
    `total_rows`/`limit` are None when the answer lacks them (an empty 200 body is an empty page)."""

    rows: list[dict[str, Any]]
    total_rows: int | None = None
    offset: int = 0
    limit: int | None = None
    totals: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False
    messages: list[Any] = field(default_factory=list)


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def parse_page(data: Any, *, where: str) -> ReportPage:
    """A page from a decoded JSON body (`None` for an empty body)."""
    if data is None:
        return ReportPage(rows=[], total_rows=0)
    rows = data.get("rows", []) if isinstance(data, dict) else None
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise VoluumBadResponse(f"Voluum {where}: answer holds no list of rows", status=200)
    totals = data.get("totals")
    messages = data.get("messages")
    return ReportPage(
        rows=rows,
        total_rows=_int(data.get("totalRows")),
        offset=_int(data.get("offset")) or 0,
        limit=_int(data.get("limit")),
        totals=totals if isinstance(totals, dict) else {},
        truncated=bool(data.get("truncated", False)),
        messages=messages if isinstance(messages, list) else [],
    )


_TIME_FORMATS = ("%Y-%m-%d %I:%M:%S %p", "%Y-%m-%d %H:%M:%S")


def parse_time(value: Any) -> datetime | None:
    """`2025-10-01 04:20:43 AM` (or ISO) as an aware UTC datetime; None when absent or unreadable.

    Voluum writes timestamps in the report's time zone; the client asks for `Etc/GMT` by default."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for fmt in _TIME_FORMATS:
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def parse_decimal(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool) or value == "":
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _text(row: Mapping[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


@dataclass(frozen=True)
class Conversion:
    """One `/report/conversions` row, typed; `raw` keeps every column as sent. `key` identifies it
    (Voluum may send the same postback twice)."""

    click_id: str
    transaction_id: str
    conversion_type: str
    conversion_type_id: str
    campaign_id: str
    campaign_name: str
    offer_id: str
    offer_name: str
    traffic_source_id: str
    country_code: str
    country_name: str
    visit_time: datetime | None
    postback_time: datetime | None
    revenue: Decimal | None
    cost: Decimal | None
    custom_variable_1: str
    ip: str
    os: str
    os_version: str
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.click_id, self.transaction_id, self.conversion_type)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Conversion:
        return cls(
            click_id=_text(row, "clickId"),
            transaction_id=_text(row, "transactionId"),
            conversion_type=_text(row, "conversionType"),
            conversion_type_id=_text(row, "conversionTypeId"),
            campaign_id=_text(row, "campaignId"),
            campaign_name=_text(row, "campaignName"),
            offer_id=_text(row, "offerId"),
            offer_name=_text(row, "offerName"),
            traffic_source_id=_text(row, "trafficSourceId"),
            country_code=_text(row, "countryCode"),
            country_name=_text(row, "countryName"),
            visit_time=parse_time(row.get("visitTimestamp")),
            postback_time=parse_time(row.get("postbackTimestamp")),
            revenue=parse_decimal(row.get("revenue")),
            cost=parse_decimal(row.get("cost")),
            custom_variable_1=_text(row, "customVariable1"),
            ip=_text(row, "ip"),
            os=_text(row, "os"),
            os_version=_text(row, "osVersion"),
            raw=dict(row),
        )


@dataclass(frozen=True)
class Offer:
    offer_id: str
    offer_name: str


@dataclass(frozen=True)
class Campaign:
    """A campaign from `GET /campaign` (every field) or from a campaign report (id and name only)."""

    campaign_id: str
    name: str
    country_code: str = ""
    country_name: str = ""
    traffic_source_id: str = ""
    url: str = ""
    deleted: bool = False
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_entity(cls, data: Mapping[str, Any]) -> Campaign:
        country, source = data.get("country"), data.get("trafficSource")
        country = country if isinstance(country, dict) else {}
        source = source if isinstance(source, dict) else {}
        return cls(
            campaign_id=_text(data, "id"),
            name=_text(data, "name"),
            country_code=_text(country, "code"),
            country_name=_text(country, "name"),
            traffic_source_id=_text(source, "id"),
            url=_text(data, "url"),
            deleted=bool(data.get("deleted", False)),
            raw=dict(data),
        )


@dataclass(frozen=True)
class CostUpdate:
    """One entry of `POST /report/cost`: a campaign's cost over [from_, to) in `currency`."""

    campaign_id: str
    from_: When
    to: When
    cost: Decimal | float | int
    currency: str
    timezone: str = DEFAULT_TZ

    def to_json(self) -> dict[str, Any]:
        cost = float(self.cost)
        if not self.campaign_id or not math.isfinite(cost) or cost < 0:
            raise ValueError("a cost update needs a campaign id and a finite cost >= 0")
        if not re.fullmatch(r"[A-Z]{3}", self.currency):
            raise ValueError(f"currency must be an ISO code like EUR, got {self.currency!r}")
        # `cost` always goes out as a JSON float (`1.0`): an integer `1` was once refused as unreadable.
        return {"campaignId": self.campaign_id, "from": format_time(self.from_, millis=False),
                "to": format_time(self.to, millis=False), "timezone": self.timezone, "cost": cost,
                "currency": self.currency}
