"""DHRU Fusion reseller API simulator (docs/providers/dhru.md).

`POST {base}/api/index.php` with form fields `username`, `apiaccesskey`, `action`, `requestformat=JSON` and
`parameters` (XML `<PARAMETERS><ID>…</ID><IMEI>…</IMEI></PARAMETERS>`, plain or base64). Answers are JSON
`{"SUCCESS": [...], "apiversion": "2.0.0"}` or `{"ERROR": [{"MESSAGE": ...}], ...}`, HTTP 200 either way,
served as `text/html` like most live servers (knob `content_type`). Actions: `accountinfo`,
`imeiservicelist`, `placeimeiorder`, `getimeiorder` and `getimeiorderbulk` (its `parameters` a base64 JSON
object `{"<key>": {"ID": "<reference>"}, ...}`, answered per key: `{"<key>": {"ID": ..., "SUCCESS": [...]}}` or
`{"<key>": {"ID": ..., "ERROR": [...]}}`; knob `bulk_status=false` makes it an unknown action, as on servers
without it). Order status: 0 waiting, 1 in process, 4 completed, 3 rejected, over simulated time.

Knobs (`DhruSimConfig`, `POST /_sim/config`): latency, users and balance, someone else's spending on the
account beside each order (`other_spend_per_order`, for the balance guard), services, duplicate scope,
`parameters_encoding` (accept plain XML, base64 or both), the content type, lifecycle timing, fixed results
per IMEI; the shared `faults` / `down` knobs come from `phoneops.simulators._server`. Introspection under
`/_sim/` (stats with every user's balance and charges, orders, reset, advance).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException
from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from stdnum import luhn

from phoneops.simulators._kit import Clock, SimCore
from phoneops.simulators._server import introspection_routes
from phoneops.simulators.gsm_fusion import result_code

API_PATH = "/api/index.php"
DEFAULT_USER = "dhru-demo"
DEFAULT_API_KEY = "SIM-DHRU-DEMO-KEY-0001"  # the simulator's own demo credential, not a real one
APIVERSION = "2.0.0"


@dataclass(frozen=True)
class DhruSimService:
    service_id: str
    group: str
    name: str
    credit: Decimal
    time: str
    info: str = ""


DEFAULT_SERVICES = (
    DhruSimService("101", "Apple iCloud & FMI", "iPhone FMI ON/OFF + iCloud Clean/Lost", Decimal("0.06"),
                   "1-5 Minutes"),
    DhruSimService("102", "Apple iCloud & FMI", "iPhone Full GSX Report (Carrier, SIM Lock, Warranty)",
                   Decimal("0.35"), "5-30 Minutes", "Model, carrier, SIM lock, warranty, purchase date."),
    DhruSimService("201", "Blacklist", "GSMA Blacklist Check (Worldwide)", Decimal("0.04"), "Instant"),
    DhruSimService("301", "Samsung", "Samsung Info + Carrier + Warranty", Decimal("0.10"), "1-10 Minutes"),
)


@dataclass
class DhruSimConfig:
    users: dict[str, str] = field(default_factory=lambda: {DEFAULT_USER: DEFAULT_API_KEY})
    initial_balance: Decimal = Decimal("500.00")
    currency: str = "USD"
    services: tuple[DhruSimService, ...] = DEFAULT_SERVICES
    latency_ms: float = 0.0
    content_type: str = "text/html"  # what live DHRU servers send for their JSON
    parameters_encoding: Literal["plain", "base64", "any"] = "any"
    duplicate_scope: Literal["ever", "active", "off"] = "ever"  # refuse an IMEI already ordered for a service
    pending_seconds: float = 30.0
    in_process_seconds: float = 60.0
    reject_ratio: float = 0.1
    results: dict[str, tuple[str, str]] = field(default_factory=dict)  # IMEI → ("4"|"3", result text)
    first_reference_id: int = 5001
    bulk_status: bool = True  # offers `getimeiorderbulk`; off: "Invalid Action", as servers without it answer
    bulk_max_ids: int = 500  # more ids in one bulk call: "Invalid Parameters"
    other_spend_per_order: Decimal = Decimal(0)  # someone else's spending on the account beside each order
    seed: int = 0


_CONFIG = TypeAdapter(DhruSimConfig)


@dataclass
class _Order:
    reference: str
    user: str
    imei: str
    service: DhruSimService
    created: float


def _answer(**body: Any) -> str:
    return json.dumps({**body, "apiversion": APIVERSION})


def _error(message: str) -> str:
    return _answer(ERROR=[{"MESSAGE": message, "FULL_DESCRIPTION": ""}])


ACTIONS = frozenset({"accountinfo", "imeiservicelist", "placeimeiorder", "getimeiorder", "getimeiorderbulk"})


def _bulk_parameters(raw: str) -> dict[str, str] | None:
    """`getimeiorderbulk`'s base64 JSON `{"<key>": {"ID": "<reference>"}}` as key -> reference; None if unreadable."""
    try:
        data = json.loads(base64.b64decode(raw.strip(), validate=True).decode("utf-8"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(data, dict) or not data:
        return None
    found: dict[str, str] = {}
    for key, entry in data.items():
        if not isinstance(entry, dict) or not str(entry.get("ID", "")).strip():
            return None
        found[str(key)] = str(entry["ID"]).strip()
    return found


class DhruSim(SimCore[DhruSimConfig]):
    """State and behaviour; every access under one lock (`SimCore`)."""

    adapter = _CONFIG

    def start(self) -> None:
        self.orders: dict[str, _Order] = {}
        self.balances = dict.fromkeys(self.config.users, self.config.initial_balance)
        self.charged: dict[str, Decimal] = {}
        self.other_spent: dict[str, Decimal] = {}
        self.orders_per_imei: Counter[str] = Counter()
        self.next_id = self.config.first_reference_id

    def amount(self, value: Any) -> Decimal:
        return Decimal(str(value))

    # --- introspection -------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "total_orders": len(self.orders),
                "orders_per_imei": dict(self.orders_per_imei),
                "max_orders_per_imei": max(self.orders_per_imei.values(), default=0),
                "balance": {u: str(v) for u, v in self.balances.items()},
                "charged": {u: str(v) for u, v in self.charged.items()},
                "other_spent": {u: str(v) for u, v in self.other_spent.items()},
                "calls": dict(self.calls),
                **self.counters,
            }

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        imei = filters.get("imei")
        with self.lock:
            now = self.now()
            return [
                {"reference_id": o.reference, "user": o.user, "imei": o.imei, "service_id": o.service.service_id,
                 "status": self._status(o, now), "credit": str(o.service.credit)}
                for o in self.orders.values() if imei is None or o.imei == imei
            ]

    # --- the protocol --------------------------------------------------------------------------------

    def _parameters(self, raw: str) -> dict[str, str] | str:
        """The `<PARAMETERS>` children (upper-case names), or an error text."""
        text = raw.strip()
        encoding = self.config.parameters_encoding
        if text and not text.startswith("<"):
            if encoding == "plain":
                return "Invalid Parameters"
            try:
                text = base64.b64decode(text, validate=True).decode("utf-8").strip()
            except (binascii.Error, UnicodeDecodeError):
                return "Invalid Parameters"
        elif text and encoding == "base64":
            return "Invalid Parameters"
        if not text:
            return {}
        try:
            root = SafeET.fromstring(text)
        except (SafeET.ParseError, DefusedXmlException):
            return "Invalid Parameters"
        return {child.tag.upper(): (child.text or "").strip() for child in root if isinstance(child.tag, str)}

    def handle(self, fields: Mapping[str, str]) -> str:
        action = fields.get("action", "").strip().lower()
        with self.lock:
            self.calls[action or "(none)"] += 1
            user = fields.get("username", "").strip()
            key = fields.get("apiaccesskey", "")
            if user not in self.config.users or not hmac.compare_digest(key.encode(), self.config.users[user].encode()):
                return _error("Authentication Failed")
            if action not in ACTIONS or (action == "getimeiorderbulk" and not self.config.bulk_status):
                return _error("Invalid Action")
            if action == "getimeiorderbulk":
                return self._get_bulk(user, fields.get("parameters", ""))
            params = self._parameters(fields.get("parameters", ""))
            if isinstance(params, str):
                return _error(params)
            if action == "accountinfo":
                credit = self.balances.setdefault(user, self.config.initial_balance)
                info = {"credit": f"{credit:.2f}", "mail": f"{user}@example.invalid", "currency": self.config.currency}
                return _answer(SUCCESS=[{"message": "Your Account Info", "AccoutInfo": info}])
            if action == "imeiservicelist":
                return self._service_list()
            if action == "placeimeiorder":
                return self._place(user, params)
            return _answer(**self._get(user, params.get("ID", "")))

    def _service_list(self) -> str:
        groups: dict[str, dict[str, Any]] = {}
        for s in self.config.services:
            group = groups.setdefault(s.group, {"GROUPNAME": s.group, "SERVICES": {}})
            group["SERVICES"][s.service_id] = {
                "SERVICEID": s.service_id, "SERVICENAME": s.name, "CREDIT": f"{s.credit:.2f}", "TIME": s.time,
                "INFO": s.info, "Requires.Network": "None", "Requires.Mobile": "None",
            }
        return _answer(SUCCESS=[{"MESSAGE": "IMEI Service List", "LIST": groups}])

    def _place(self, user: str, params: Mapping[str, str]) -> str:
        service = next((s for s in self.config.services if s.service_id == params.get("ID", "")), None)
        if service is None:
            return _error("Invalid IMEI tool.")
        imei = params.get("IMEI", "").strip()
        if not imei:
            return _error("No IMEI found.")
        if len(imei) != 15 or not imei.isdigit() or not luhn.is_valid(imei):
            return _error(f"Invalid IMEI![{imei}]")
        scope = self.config.duplicate_scope
        if scope != "off":
            now = self.now()
            for order in self.orders.values():
                same = order.user == user and order.imei == imei and order.service is service
                if same and (scope == "ever" or self._status(order, now) in ("0", "1")):
                    self.counters["duplicates_refused"] += 1
                    return _error(f"Duplicate IMEI[{imei}]")
        if self.balances.setdefault(user, self.config.initial_balance) < service.credit:
            return _error("Insufficient Credits")
        reference = str(self.next_id)
        self.next_id += 1
        self.orders[reference] = _Order(reference, user, imei, service, self.now())
        self.balances[user] -= service.credit
        self.charged[user] = self.charged.get(user, Decimal(0)) + service.credit
        if self.config.other_spend_per_order:
            self.balances[user] -= self.config.other_spend_per_order
            self.other_spent[user] = self.other_spent.get(user, Decimal(0)) + self.config.other_spend_per_order
        self.orders_per_imei[imei] += 1
        return _answer(SUCCESS=[{"MESSAGE": "Order received", "REFERENCEID": reference}])

    def _status(self, order: _Order, now: float) -> str:
        age = now - order.created
        if age < self.config.pending_seconds:
            return "0"
        if age < self.config.pending_seconds + self.config.in_process_seconds:
            return "1"
        if order.imei in self.config.results:
            return self.config.results[order.imei][0]
        rejected = int(order.imei[-6:]) % 1000 < self.config.reject_ratio * 1000
        return "3" if rejected else "4"

    def _get(self, user: str, reference: str) -> dict[str, Any]:
        """One order's answer (without `apiversion`): `{"ID", "SUCCESS": [...]}` or `{"ID", "ERROR": [...]}`."""
        order = self.orders.get(reference.strip())
        if order is None or order.user != user:
            return {"ID": reference, "ERROR": [{"MESSAGE": "No IMEI Found"}]}
        status = self._status(order, self.now())
        code = ""
        if status in ("3", "4"):
            fixed = self.config.results.get(order.imei)
            code = fixed[1] if fixed else (result_code(order.imei) if status == "4" else "Invalid IMEI / no records")
        entry = {"IMEI": order.imei, "STATUS": status, "CODE": code, "COMMENTS": ""}
        return {"ID": reference, "SUCCESS": [entry]}

    def _get_bulk(self, user: str, raw: str) -> str:
        wanted = _bulk_parameters(raw)
        if wanted is None or len(wanted) > self.config.bulk_max_ids:
            return _error("Invalid Parameters")
        self.counters["bulk_ids"] += len(wanted)
        return _answer(**{key: self._get(user, reference) for key, reference in wanted.items()})


def create_app(config: DhruSimConfig | None = None, *, clock: Clock = time.monotonic) -> Starlette:
    """The simulator as a Starlette app; its state is `app.state.sim` (a `DhruSim`)."""
    sim = DhruSim(config or DhruSimConfig(), clock)

    async def provider(request: Request) -> Response:
        fields = dict(request.query_params.items())
        if request.method != "GET":
            form = await request.form()
            fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        await sim.delay()
        return Response(sim.handle(fields).encode(), media_type=sim.config.content_type)

    app = Starlette(routes=[Route(API_PATH, provider, methods=["GET", "POST"]), *introspection_routes(sim)])
    app.state.sim = sim
    return app
