"""GSM Fusion XML API simulator (docs/providers/gsm_fusion.md).

`POST|GET|PUT {base}/gsmfusion_api/index.php` with form fields `apiKey`, `userId`, `action`; HTTP 200 and
`application/xml` for every answer, errors as a root `<error>Text!</error>`. Knobs (`GsmFusionSimConfig`):
latency, a concurrency cap (reject with 503, or queue), random or scheduled faults (5xx/429 or timeouts,
before or after the order is committed), duplicate scope, batch behaviour (all IMEIs vs only the last),
order lifecycle timing, credit balances and the `<?phpxml` prolog quirk.

Introspection for tests and benches only, JSON under `/_sim/`: `GET stats`, `GET orders`, `GET|POST config`,
`POST reset`, `POST advance` (move the simulated clock). The provider endpoint offers no lookup by IMEI,
like the real one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import random
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html import escape
from typing import Any, Literal

from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from stdnum import luhn

from phoneops.simulators._kit import Clock, SimCore
from phoneops.simulators._server import introspection_routes

API_PATH = "/gsmfusion_api/index.php"
DEFAULT_USER = "demo"
DEFAULT_API_KEY = "SIMU-LATO-RDEM-OKEY-0001"  # the simulator's own demo credential, not a real one


@dataclass(frozen=True)
class SimService:
    package_id: str
    category: str
    title: str
    price: Decimal
    time_taken: str
    must_read: str = ""


DEFAULT_IMEI_SERVICES = (
    SimService("1739", "Apple", "iPhone Carrier + SimLock + FMI Check", Decimal("0.08"), "1-5 Minutes",
               "Carrier, SIM lock and Find My iPhone status. <b>No refund for wrong IMEI.</b>"),
    SimService("1740", "Apple", "iPhone Full Info (Model, Carrier, FMI, IMEI2)", Decimal("0.20"),
               "1-10 Minutes", "Model, carrier, SIM lock, FMI and second IMEI."),
    SimService("2101", "Samsung", "Samsung Info + Carrier Check", Decimal("0.05"), "Instant",
               "Model and original carrier."),
    SimService("2250", "Generic", "Blacklist Status (GSMA)", Decimal("0.03"), "Instant",
               "Lost/stolen status from the GSMA database."),
    SimService("3001", "Unlock", "AT&T USA iPhone Unlock - Clean IMEI", Decimal("15.00"), "1-3 Days",
               "Clean IMEIs only; blacklisted devices are rejected."),
)
DEFAULT_FILE_SERVICES = (
    SimService("5001", "File Services", "Samsung QCN Repair File", Decimal("2.50"), "1-2 Hours",
               "Upload the device backup as a .zip file."),
)

_MODELS = ("iPhone 13 Pro", "iPhone 14", "iPhone 12 mini", "iPhone 15 Pro Max", "iPhone SE (2022)")
_CARRIERS = ("AT&T USA", "T-Mobile USA", "Verizon USA", "Unlocked", "Vodafone UK", "Orange France")
_REJECT_TEXT = "No records found for this IMEI.<br>Order rejected."


@dataclass
class GsmFusionSimConfig:
    """Every knob; `POST /_sim/config` changes them at runtime (`fail_next` counts down as it fires)."""

    users: dict[str, str] = field(default_factory=lambda: {DEFAULT_USER: DEFAULT_API_KEY})
    initial_balance: Decimal = Decimal("1000.00")
    imei_services: tuple[SimService, ...] = DEFAULT_IMEI_SERVICES
    file_services: tuple[SimService, ...] = DEFAULT_FILE_SERVICES
    latency_ms: float = 0.0  # added to every provider call
    max_concurrency: int | None = None  # provider calls in flight; beyond it: `overload`
    overload: Literal["reject", "queue"] = "reject"  # reject = HTTP 503 at once; queue = wait for a slot
    error_rate: float = 0.0  # share of calls answered with `error_status`
    error_status: int = 503
    retry_after_s: float | None = None  # `Retry-After` header on fault answers
    timeout_rate: float = 0.0  # share of calls held for `timeout_delay_s` seconds
    timeout_delay_s: float = 30.0
    fail_next: int = 0  # the next N calls fault for sure ...
    fail_kind: Literal["status", "timeout"] = "status"  # ... with this fault
    fault_actions: tuple[str, ...] = ()  # faults only hit these actions (empty: all)
    fault_after_commit: bool = False  # True: the call takes effect, then the answer is lost
    prolog_quirk: bool = False  # `<?phpxml ...?>` declaration, as the live server sends
    batch_mode: Literal["all", "last"] = "last"  # comma-joined placeorder: every IMEI or only the last
    duplicate_scope: Literal["user_service", "user", "global", "off"] = "user_service"
    pending_seconds: float = 30.0
    in_process_seconds: float = 90.0
    reject_ratio: float = 0.1  # share of IMEIs (by hash, so deterministic) whose orders end Rejected
    insufficient_credit_text: str = "Insufficient Credit!"
    results: dict[str, tuple[str, str]] = field(default_factory=dict)  # IMEI → (final status, result text)
    first_order_id: int = 900001
    seed: int = 0


_CONFIG = TypeAdapter(GsmFusionSimConfig)


@dataclass
class _Order:
    order_id: str
    user: str
    imei: str
    service: SimService
    created: float
    requested_at: str


def _error(text: str) -> str:
    return f"<error>{escape(text, quote=False)}</error>"


def _leaf(tag: str, text: object) -> str:
    return f"<{tag}>{escape(str(text), quote=False)}</{tag}>"


def _digest(imei: str) -> bytes:
    return hashlib.sha256(imei.encode()).digest()


def result_code(imei: str) -> str:
    """The deterministic `Completed` result text for an IMEI (raw, with `<br>`; escaped on the wire)."""
    h = _digest(imei)
    body14 = imei[:8] + f"{(int(imei[8:14]) + 1) % 10**6:06d}"
    locked = h[2] % 3 == 0
    lock = f'<font color="{"red" if locked else "green"}">{"Locked" if locked else "Unlocked"}</font>'
    variant = h[4] % 2
    lines = [
        f"Model: {_MODELS[h[0] % len(_MODELS)]}",
        f"IMEI: {imei}",
        f"{('IMEI2 Number', 'IMEI 2')[variant]}: {body14 + luhn.calc_check_digit(body14)}",
        f"Carrier: {_CARRIERS[h[1] % len(_CARRIERS)]}",
        f"{('SimLock', 'SIM Lock')[variant]}: {lock}",
        f"{('Find My iPhone', 'FMI')[variant]}: {'ON' if h[3] % 2 else 'OFF'}",
    ]
    return "<br>".join(lines)


class GsmFusionSim(SimCore[GsmFusionSimConfig]):
    """The simulator's state and behaviour. Every access goes through one lock (`SimCore`)."""

    adapter = _CONFIG

    def __init__(self, config: GsmFusionSimConfig, clock: Clock = time.monotonic) -> None:
        self._queue: tuple[int, asyncio.Semaphore] | None = None
        super().__init__(config, clock)

    def start(self) -> None:
        self.orders: dict[str, _Order] = {}
        self.by_key: dict[tuple[str, str, str], str] = {}
        self.orders_per_imei: Counter[str] = Counter()
        self.balances = dict.fromkeys(self.config.users, self.config.initial_balance)
        self.next_id = self.config.first_order_id
        self.in_flight = 0
        self.rng = random.Random(self.config.seed)

    def amount(self, value: Any) -> Decimal:
        return Decimal(str(value))

    # --- introspection (/_sim/) ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "orders_per_imei": dict(self.orders_per_imei),
                "total_orders": len(self.orders),
                "max_orders_per_imei": max(self.orders_per_imei.values(), default=0),
                "balance": {user: str(amount) for user, amount in self.balances.items()},
                "calls": dict(self.calls),
                "in_flight": self.in_flight,
                **self.counters,
            }

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        imei, user = filters.get("imei"), filters.get("user")
        with self.lock:
            now = self.now()
            return [
                {"order_id": o.order_id, "user": o.user, "imei": o.imei, "package_id": o.service.package_id,
                 "status": self._status(o, now), "requested_at": o.requested_at}
                for o in self.orders.values()
                if (imei is None or o.imei == imei) and (user is None or o.user == user)
            ]

    # --- traffic control -------------------------------------------------------------------------

    def admit(self) -> bool:
        with self.lock:
            cap = self.config.max_concurrency
            if cap and self.in_flight >= cap and self.config.overload == "reject":
                self.counters["overload_rejections"] += 1
                return False
            self.in_flight += 1
            self.counters["max_in_flight"] = max(self.counters["max_in_flight"], self.in_flight)
            return True

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def queue(self) -> asyncio.Semaphore | None:
        """The waiting line in `queue` mode (used on the server's event loop only)."""
        cap = self.config.max_concurrency
        if not cap or self.config.overload != "queue":
            return None
        if self._queue is None or self._queue[0] != cap:
            self._queue = (cap, asyncio.Semaphore(cap))
        return self._queue[1]

    def begin(self, action: str) -> Literal["status", "timeout"] | None:
        """Count the call and decide its fault, if any."""
        with self.lock:
            self.calls[action or "(none)"] += 1
            cfg = self.config
            if cfg.fault_actions and action not in cfg.fault_actions:
                return None
            fault: Literal["status", "timeout"] | None = None
            if cfg.fail_next > 0:
                self.config = dataclasses.replace(cfg, fail_next=cfg.fail_next - 1)
                fault = cfg.fail_kind
            else:
                draw = self.rng.random()
                if draw < cfg.error_rate:
                    fault = "status"
                elif draw < cfg.error_rate + cfg.timeout_rate:
                    fault = "timeout"
            if fault:
                self.counters["faults"] += 1
            return fault

    # --- the provider protocol -------------------------------------------------------------------

    def handle(self, fields: Mapping[str, str]) -> str:
        """The XML body (without declaration) answering one provider call."""
        with self.lock:
            users = self.config.users
            user = fields.get("userId", "").strip()
            if user not in users:
                return _error("Invalid User!")
            if not hmac.compare_digest(fields.get("apiKey", "").encode(), users[user].encode()):
                return _error("Invalid API Key!")
            action = fields.get("action", "").strip().lower()
            if action == "imeiservices":
                return self._packages(self.config.imei_services)
            if action in ("fileservices", "serverservices"):
                return self._packages(self.config.file_services if action == "fileservices" else ())
            if action == "placeorder":
                return self._place(user, fields)
            if action == "getimeis":
                return self._get(user, fields.get("orderIds", ""))
            return _error("Invalid Action!")

    @staticmethod
    def _packages(services: tuple[SimService, ...]) -> str:
        items = "".join(
            "<Package>" + _leaf("PackageId", s.package_id) + _leaf("Category", s.category)
            + _leaf("PackageTitle", s.title) + _leaf("PackagePrice", f"{s.price:.2f}")
            + _leaf("TimeTaken", s.time_taken) + _leaf("MustRead", s.must_read) + "</Package>"
            for s in services
        )
        return f"<Packages>{items}</Packages>"

    def _dup_key(self, user: str, service: SimService, imei: str) -> tuple[str, str, str] | None:
        scope = self.config.duplicate_scope
        if scope == "off":
            return None
        package = service.package_id if scope == "user_service" else ""
        return (user if scope != "global" else "", package, imei)

    def _place(self, user: str, fields: Mapping[str, str]) -> str:
        network = fields.get("networkId", "").strip()
        service = next((s for s in self.config.imei_services if s.package_id == network), None)
        if service is None:
            return _error("Invalid Network ID!")
        imeis = list(dict.fromkeys(i.strip() for i in fields.get("imei", "").split(",") if i.strip()))
        if not imeis:
            return _error("IMEI is required!")
        if self.config.batch_mode == "last":
            imeis = imeis[-1:]
        imeis = [i for i in imeis if len(i) == 15 and i.isdigit() and luhn.is_valid(i)]
        if not imeis:
            return _error("Invalid IMEI!")
        duplicates = [i for i in imeis if self._dup_key(user, service, i) in self.by_key]
        fresh = [i for i in imeis if i not in duplicates]
        self.counters["duplicates_refused"] += len(duplicates)
        if not fresh:
            return _error("IMEI already exists!")
        if self.balances.setdefault(user, self.config.initial_balance) < service.price * len(fresh):
            return _error(self.config.insufficient_credit_text)
        now, wall = self.now(), datetime.now(UTC) + timedelta(seconds=self.offset)
        parts = []
        for imei in fresh:
            order = _Order(str(self.next_id), user, imei, service, now, wall.strftime("%Y-%m-%d %H:%M:%S"))
            self.next_id += 1
            self.orders[order.order_id] = order
            if (key := self._dup_key(user, service, imei)) is not None:
                self.by_key[key] = order.order_id
            self.orders_per_imei[imei] += 1
            self.balances[user] -= service.price
            parts.append(f"<imeis>{_leaf('id', order.order_id)}{_leaf('imei', imei)}<status>Pending</status></imeis>")
        if duplicates:
            parts.append(f"<imeiduplicates>{_leaf('imei', ','.join(duplicates))}</imeiduplicates>")
        return f"<result>{''.join(parts)}</result>"

    def _status(self, order: _Order, now: float) -> str:
        age = now - order.created
        if age < self.config.pending_seconds:
            return "Pending"
        if age < self.config.pending_seconds + self.config.in_process_seconds:
            return "In Process"
        if order.imei in self.config.results:
            return self.config.results[order.imei][0]
        rejected = int.from_bytes(_digest(order.imei)[5:9], "big") / 2**32 < self.config.reject_ratio
        return "Rejected" if rejected else "Completed"

    def _get(self, user: str, order_ids: str) -> str:
        now, parts = self.now(), []
        for order_id in (i.strip() for i in order_ids.split(",") if i.strip()):
            order = self.orders.get(order_id)
            if order is None or order.user != user:
                continue
            status = self._status(order, now)
            code = {"Completed": result_code(order.imei), "Rejected": _REJECT_TEXT}.get(status, "")
            if order.imei in self.config.results and status not in ("Pending", "In Process"):
                code = self.config.results[order.imei][1]
            parts.append(
                "<imeis>" + _leaf("id", order.order_id) + _leaf("package", order.service.title)
                + _leaf("imei", order.imei) + _leaf("status", status) + _leaf("code", code)
                + _leaf("requestedat", order.requested_at) + "</imeis>"
            )
        return f"<result>{''.join(parts)}</result>"


# --- the ASGI app ------------------------------------------------------------------------------------


def _xml(body: str, quirk: bool) -> Response:
    declaration = f'<?{"phpxml" if quirk else "xml"} version="1.0" encoding="utf-8"?>'
    return Response(f"{declaration}\n{body}".encode(), media_type="application/xml")


def _fault(status: int, retry_after: float | None) -> Response:
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    page = f"<html><body><h1>{status} Service Unavailable</h1></body></html>"
    return Response(page, status_code=status, media_type="text/html", headers=headers)


def create_app(config: GsmFusionSimConfig | None = None, *, clock: Clock = time.monotonic) -> Starlette:
    """The simulator as a Starlette app; its state is `app.state.sim` (a `GsmFusionSim`)."""
    sim = GsmFusionSim(config or GsmFusionSimConfig(), clock)

    async def provider(request: Request) -> Response:
        fields = dict(request.query_params.items())
        if request.method != "GET":
            form = await request.form()
            fields.update({k: v for k, v in form.items() if isinstance(v, str)})
        queue = sim.queue()
        if queue is not None:
            async with queue:
                return await _serve(fields)
        return await _serve(fields)

    async def _serve(fields: dict[str, str]) -> Response:
        if not sim.admit():
            return _fault(503, sim.config.retry_after_s)
        try:
            cfg = sim.config
            await sim.delay()
            fault = sim.begin(fields.get("action", "").strip().lower())
            body = sim.handle(fields) if fault is None or cfg.fault_after_commit else None
            if fault == "timeout":
                await asyncio.sleep(cfg.timeout_delay_s)
            if fault == "status" or body is None:
                return _fault(cfg.error_status if fault == "status" else 504, cfg.retry_after_s)
            return _xml(body, cfg.prolog_quirk)
        finally:
            sim.leave()

    app = Starlette(
        routes=[
            Route(API_PATH, provider, methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            *introspection_routes(sim),
        ]
    )
    app.state.sim = sim
    return app
