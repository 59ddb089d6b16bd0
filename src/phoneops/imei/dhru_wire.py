"""DHRU Fusion wire format: request encoding, answer parsing and the typed errors (docs/providers/dhru.md).

Pure functions over form fields and decoded JSON; the clients in `phoneops.imei.dhru` send them.
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

import structlog

from phoneops.core.http import ProviderAuthError, ProviderResponseError, Redactor
from phoneops.imei.client import (
    DeviceCheckRefused,
    ImeiAlreadyExists,
    InsufficientCredit,
    OrderStatus,
    PlacedOrder,
    Service,
)
from phoneops.imei.parsing import COMPLETED, IN_PROCESS, PENDING, REJECTED

log = structlog.get_logger("phoneops.imei.dhru")  # one logger name for the provider

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
