"""hlrlookup.com API v2 wire format (docs/providers/hlr_lookup.md): results, batches and their parsing.

Pure functions over JSON and CSV, no I/O. One result shape for both sources: a real-time `results[]` entry
(nested JSON) and a row of a batch results CSV (flattened dotted header, first column the submitted number)
both become an `HlrResult`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

MAX_NUMBERS_PER_REQUEST = 80
LOOKUP_PATH = "/apiv2/hlr"
BATCHES_PATH = "/batches/"
DEFAULT_API_URL = "https://api.hlrlookup.com"
DEFAULT_BATCH_URL = "https://batches.hlrlookup.com"

# Optional per-number parameters of a real-time request (docs/providers/hlr_lookup.md, real-time host).
LOOKUP_OPTIONS = frozenset({
    "cache_days_global", "cache_days_private", "save_to_cache", "input_format", "output_format",
    "get_ported_date", "get_landline_status", "usa_status",
})
# Batch results CSV: the first column (the submitted number, unnamed) and then these dotted keys.
RESULT_COLUMNS = (
    "error", "request_parameters.telephone_number", "request_parameters.cache_days_private",
    "request_parameters.cache_days_global", "request_parameters.save_to_cache", "request_parameters.output_format",
    "credits_spent", "detected_telephone_number", "formatted_telephone_number", "telephone_number_type",
    "live_status", "original_network", "original_network_details.name", "original_network_details.mccmnc",
    "original_network_details.country_name", "original_network_details.country_iso3",
    "original_network_details.area", "original_network_details.country_prefix", "current_network",
    "current_network_details.name", "current_network_details.mccmnc", "current_network_details.country_name",
    "current_network_details.country_iso3", "current_network_details.country_prefix", "is_ported", "timestamp",
)

LIVE_STATUSES = (
    "LIVE", "DEAD", "ABSENT_SUBSCRIBER", "NO_TELESERVICE_PROVISIONED", "NO_COVERAGE", "INCONCLUSIVE",
    "NOT_AVAILABLE_NETWORK_ONLY", "NOT_APPLICABLE",
)
BATCH_COMPLETE = frozenset({"COMPLETE", "COMPLETED"})
BATCH_FAILED = frozenset({"FAILED", "ERROR"})
_NON_DIGITS = re.compile(r"\D+")


class WireFormatError(ValueError):
    """An answer that does not have the documented shape."""


@dataclass(frozen=True)
class NetworkDetails:
    """`original_network_details` / `current_network_details` (present only when the network is AVAILABLE)."""

    name: str
    mccmnc: str
    country_name: str = ""
    country_iso3: str = ""
    country_prefix: str = ""
    area: str = ""  # sent for the original network only

    @property
    def mcc(self) -> str:
        return self.mccmnc[:3]

    @property
    def mnc(self) -> str:
        return self.mccmnc[3:]


@dataclass(frozen=True)
class HlrResult:
    """One number's answer. Status fields are the provider's upper-case codes ("" when absent).

    `number` is E.164 with '+' (from `detected_telephone_number`, else the formatted or requested one);
    `submitted` is what we sent (the request's number, or the first CSV column of a batch). `error` is the
    per-result code: `NONE`, `INSUFFICIENT_CREDIT`, `INTERNAL_ERROR`...; `detail` any text sent beside it.
    `is_ported` is None when the provider says UNKNOWN. `raw` is the provider's record (nested JSON).
    """

    number: str
    submitted: str
    error: str
    live_status: str
    number_type: str
    original_network_status: str  # AVAILABLE / NOT_AVAILABLE
    original_network: NetworkDetails | None
    current_network_status: str
    current_network: NetworkDetails | None
    is_ported: bool | None
    credits_spent: Decimal
    uuid: str = ""
    timestamp: datetime | None = None
    detail: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.error == "NONE"

    @property
    def is_live(self) -> bool:
        return self.ok and self.live_status == "LIVE"

    @property
    def original_network_name(self) -> str:
        return self.original_network.name if self.original_network else ""

    @property
    def original_mccmnc(self) -> str:
        return self.original_network.mccmnc if self.original_network else ""

    @property
    def current_network_name(self) -> str:
        return self.current_network.name if self.current_network else ""

    @property
    def current_mccmnc(self) -> str:
        return self.current_network.mccmnc if self.current_network else ""

    @property
    def network(self) -> NetworkDetails | None:
        """The network serving the number now: the current one when available, else the original."""
        return self.current_network or self.original_network


@dataclass(frozen=True)
class Batch:
    """A batch on the batch host. `status` as sent (COMPLETE/COMPLETED, FAILED/ERROR, anything else: running)."""

    id: str
    status: str
    num_items: int
    num_complete: int
    filename: str = ""
    batch_type: str = ""
    creation_date: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, hash=False, compare=False, repr=False)

    @property
    def is_complete(self) -> bool:
        return self.status.upper() in BATCH_COMPLETE

    @property
    def is_failed(self) -> bool:
        return self.status.upper() in BATCH_FAILED

    @property
    def is_finished(self) -> bool:
        return self.is_complete or self.is_failed


@dataclass(frozen=True)
class BatchPage:
    total: int
    offset: int
    limit: int
    batches: tuple[Batch, ...]


# --- helpers ------------------------------------------------------------------------------------------


def digits(number: object) -> str:
    return _NON_DIGITS.sub("", str(number or ""))


def e164(number: object) -> str:
    """'+' and the digits of `number` ("" when it has none)."""
    found = digits(number)
    return f"+{found}" if found else ""


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _int(value: Any) -> int:
    try:
        return int(float(_text(value) or 0))
    except ValueError:
        return 0


def _decimal(value: Any) -> Decimal:
    try:
        amount = Decimal(_text(value) or "0")
    except InvalidOperation:
        return Decimal(0)
    return amount if amount.is_finite() else Decimal(0)


def _timestamp(value: Any) -> datetime | None:
    text = _text(value)
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _network(status: str, details: Any, *, original: bool) -> NetworkDetails | None:
    if status == "NOT_AVAILABLE" or not isinstance(details, Mapping):
        return None
    name, mccmnc = _text(details.get("name")), digits(details.get("mccmnc"))
    if not name and not mccmnc:
        return None
    return NetworkDetails(
        name=name,
        mccmnc=mccmnc,
        country_name=_text(details.get("country_name")),
        country_iso3=_text(details.get("country_iso3")),
        country_prefix=_text(details.get("country_prefix")),
        area=_text(details.get("area")) if original else "",
    )


def _ported(value: Any) -> bool | None:
    return {"YES": True, "NO": False, "TRUE": True, "FALSE": False}.get(_text(value).upper())


# --- results ------------------------------------------------------------------------------------------


def parse_result(record: Mapping[str, Any], submitted: str | None = None) -> HlrResult:
    """An `HlrResult` from one nested result record (JSON entry, or an unflattened CSV row)."""
    params = record.get("request_parameters")
    requested = _text(params.get("telephone_number")) if isinstance(params, Mapping) else ""
    sent = submitted if submitted is not None else requested
    number = e164(record.get("detected_telephone_number")) or e164(record.get("formatted_telephone_number"))
    original_status = _text(record.get("original_network")).upper()
    current_status = _text(record.get("current_network")).upper()
    return HlrResult(
        number=number or e164(requested) or e164(sent),
        submitted=sent,
        error=_text(record.get("error")).upper() or "NONE",
        live_status=_text(record.get("live_status")).upper(),
        number_type=_text(record.get("telephone_number_type")).upper(),
        original_network_status=original_status,
        original_network=_network(original_status, record.get("original_network_details"), original=True),
        current_network_status=current_status,
        current_network=_network(current_status, record.get("current_network_details"), original=False),
        is_ported=_ported(record.get("is_ported")),
        credits_spent=_decimal(record.get("credits_spent")),
        uuid=_text(record.get("uuid")),
        timestamp=_timestamp(record.get("timestamp")),
        detail=_text(record.get("message") or record.get("error_message") or record.get("detail")),
        raw=dict(record),
    )


def parse_lookup_response(body: Any, submitted: Sequence[str]) -> list[HlrResult]:
    """Results of one real-time call, `results` at the top level or under `body` (the docs' examples).

    Results come in request order, one per number: when the count matches, each is paired with the number
    we sent at its position; otherwise with the number it echoes in `request_parameters`.
    """
    container = body.get("body", body) if isinstance(body, Mapping) and "results" not in body else body
    results = container.get("results") if isinstance(container, Mapping) else None
    if not isinstance(results, list) or not all(isinstance(r, Mapping) for r in results):
        raise WireFormatError("answer without a `results` list")
    if len(results) == len(submitted):
        return [parse_result(r, s) for r, s in zip(results, submitted, strict=True)]
    return [parse_result(r) for r in results]


def unflatten(row: Mapping[str, str]) -> dict[str, Any]:
    """`{"a.b": v}` -> `{"a": {"b": v}}` (one level is all the results CSV uses, any depth works)."""
    nested: dict[str, Any] = {}
    for key, value in row.items():
        *parents, leaf = key.split(".")
        node = nested
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[leaf] = value
    return nested


def parse_results_csv(content: bytes | str) -> list[HlrResult]:
    """A batch results CSV: first column the submitted number (unnamed), then the dotted keys."""
    text = content.decode("utf-8-sig") if isinstance(content, bytes) else content.lstrip("\ufeff")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if not header:
        return []
    keys = [k.strip() for k in header[1:]]
    results = []
    for row in reader:
        if not row or not any(cell.strip() for cell in row):
            continue
        record = unflatten(dict(zip(keys, row[1:], strict=False)))
        results.append(parse_result(record, row[0].strip()))
    return results


def source_csv(numbers: Iterable[str]) -> bytes:
    """The upload body for a batch: one number per line."""
    lines = []
    for number in numbers:
        text = str(number).strip()
        if not text or any(c in text for c in ",\r\n\"'"):
            raise ValueError(f"not a phone number line: {text!r}")
        lines.append(text)
    if not lines:
        raise ValueError("a batch needs at least one number")
    return ("\n".join(lines) + "\n").encode()


# --- batches ------------------------------------------------------------------------------------------


def parse_batch(body: Any) -> Batch:
    if not isinstance(body, Mapping) or _text(body.get("id")) == "":
        raise WireFormatError("batch answer without `id`")
    return Batch(
        id=_text(body.get("id")),
        status=_text(body.get("status")),
        num_items=_int(body.get("numItems")),
        num_complete=_int(body.get("numComplete")),
        filename=_text(body.get("filename")),
        batch_type=_text(body.get("type")),
        creation_date=_text(body.get("creationDate")),
        raw=dict(body),
    )


def parse_batch_page(body: Any) -> BatchPage:
    items = body.get("batches") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise WireFormatError("batch list answer without `batches`")
    return BatchPage(
        total=_int(body.get("total")),
        offset=_int(body.get("offset")),
        limit=_int(body.get("limit")),
        batches=tuple(parse_batch(item) for item in items),
    )


def lookup_request(numbers: Sequence[str], options: Mapping[str, object]) -> list[dict[str, object]]:
    """The `requests` array of a real-time call (options are validated, not the numbers)."""
    unknown = set(options) - LOOKUP_OPTIONS
    if unknown:
        raise ValueError(f"unknown lookup options: {sorted(unknown)}")
    if not 1 <= len(numbers) <= MAX_NUMBERS_PER_REQUEST:
        raise ValueError(f"one call takes 1 to {MAX_NUMBERS_PER_REQUEST} numbers, got {len(numbers)}")
    entries: list[dict[str, object]] = []
    for number in numbers:
        text = str(number).strip()
        if not digits(text):
            raise ValueError(f"not a phone number: {number!r}")
        entries.append({"telephone_number": text, **options})
    return entries
