# Over 400 lines: one provider's whole API surface (auth, reports, conversions, entities, costs) in one app.
"""Voluum API simulator (docs/providers/voluum.md).

Provider endpoints: `POST /auth/access/session` (tokens with `expirationTimestamp`), `GET /report` (groupBy,
column, filterN/filterNValue, sort/direction, limit/offset, totals, totalRows), `GET /report/conversions`
(49 columns, AM/PM timestamps), `GET /campaign`, `GET /campaign/{id}`, `GET /offer`, `GET /traffic-source`,
`POST /report/cost` (recorded, and reflected in later reports as `costSources: ["MANUAL_UPDATE"]`). Every
call but auth needs a live `cwauth-token`; every error is Voluum's envelope
`{"error": {"code", "description", "messages", "webRequestId", "time"}}`.

Knobs (`VoluumSimConfig`): token lifetime, the seeded dataset (`phoneops.simulators.voluum_data`), paging
quirks (`shift_total_rows`, `empty_page_at`, `ignore_offset`, `empty_body_next`, `max_limit`), a rate limit
(429 with `Retry-After`), fault injection (`fail_next`, `error_rate`, `error_status`, `fault_endpoints`),
latency, and `leaky_errors` (error texts echo the caller's key or token, to prove the client scrubs them).

Introspection for tests and benches only, JSON under `/_sim/`: `GET stats`, `GET orders` (the cost pushes),
`GET|POST config`, `POST reset`, `POST advance` (moves the simulated clock: tokens expire), `GET|POST data`
(`{"visits": [...], "conversions": [...], "campaigns": [...], "offers": [...], "append": false}`).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from phoneops.simulators import voluum_data as vd
from phoneops.simulators._kit import Clock, SimState
from phoneops.simulators._server import introspection_routes

DEFAULT_ACCESS_ID = "00000000-5111-4a7e-9000-00000000000a"
DEFAULT_ACCESS_KEY = "sim-voluum-access-key-0001"  # the simulator's own demo credential, not a real one
TOKEN_HEADER = "cwauth-token"  # noqa: S105 (a header name)
CODES = {400: "BAD_REQUEST", 401: "UNAUTHORIZED", 403: "LOCKED", 404: "NOT_FOUND", 417: "NO_VISITS_PERIOD",
         429: "TOO_MANY_REQUESTS", 500: "INTERNAL_SERVER_ERROR", 502: "BAD_GATEWAY", 503: "SERVICE_UNAVAILABLE",
         504: "GATEWAY_TIMEOUT"}
DESCRIPTIONS = {403: "Quota limit (10) of requests exceeded", 429: "Too many requests",
                500: "Internal server error", 503: "Service temporarily unavailable"}
_SEED_KNOBS = ("seed", "start_date", "days", "visits_per_day", "token_key", "token_ratio")


@dataclass
class VoluumSimConfig:
    """Every knob; `POST /_sim/config` changes them at runtime (`fail_next`/`empty_body_next` count down)."""

    access_keys: dict[str, str] = field(default_factory=lambda: {DEFAULT_ACCESS_ID: DEFAULT_ACCESS_KEY})
    token_ttl_s: float = 14_400.0  # session lifetime (4 h live); small values test renewal
    seed: int = 0
    start_date: str = "2025-12-12"  # first seeded day (UTC)
    days: int = 3
    visits_per_day: int = 200
    token_key: str | None = None  # urlsafe-base64 AES-256 key: seeded phones become link tokens ...
    token_ratio: float = 0.5  # ... this share of them
    valid_numbers: bool = False  # seed phones the phone library accepts (the demo) instead of fictional ranges
    default_limit: int = 100
    max_limit: int = 10_000  # a larger `limit` is capped (the answer's `limit` says so)
    require_hour_aligned: bool = True  # from/to must be whole hours (400 otherwise)
    shift_total_rows: int = 0  # totalRows reported on page k (k >= 1) is off by k * this
    empty_page_at: int | None = None  # page index answered with no rows (totalRows unchanged)
    ignore_offset: bool = False  # every page is the first page
    empty_body_next: int = 0  # the next N report/conversion answers are 200 with an empty body
    latency_ms: float = 0.0
    rate_limit_per_s: int | None = 15  # admitted requests per rolling second; beyond: 429
    retry_after_s: float = 1.0  # `Retry-After` on 429 and injected faults
    error_rate: float = 0.0  # share of calls answered with `error_status`
    error_status: int = 503
    fail_next: int = 0  # the next N calls answer `error_status` for sure
    fault_endpoints: tuple[str, ...] = ()  # faults only hit these (auth, report, conversions, campaign, cost...)
    reject_integer_cost: bool = True  # `"cost": 1` -> 400 "HTTP message not readable", as seen live
    leaky_errors: bool = False  # error descriptions echo the caller's access key / token


_CONFIG = TypeAdapter(VoluumSimConfig)


class VoluumSim(SimState[VoluumSimConfig]):
    """The simulator's state and behaviour. Every access goes through one lock (`SimState`)."""

    adapter = _CONFIG

    def __init__(self, config: VoluumSimConfig, clock: Clock = time.time) -> None:
        super().__init__(config, clock)

    def start(self) -> None:
        self._seed()
        self.tokens: dict[str, float] = {}
        self.costs: list[dict[str, Any]] = []
        self.statuses: Counter[int] = Counter()
        self.arrivals: deque[float] = deque()
        self.admitted: deque[float] = deque()

    def _seed(self) -> None:
        cfg = self.config
        key = vd.decode_key(cfg.token_key) if cfg.token_key else None
        start = date.fromisoformat(cfg.start_date)
        table = vd.DEMO_COUNTRIES if cfg.valid_numbers else vd.COUNTRIES
        self.data = vd.seed_dataset(cfg.seed, start, cfg.days, cfg.visits_per_day, token_key=key,
                                    token_ratio=cfg.token_ratio, countries_table=table)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock() + self.offset, UTC)

    # --- introspection (/_sim/) ------------------------------------------------------------------

    def patch_config(self, changes: Mapping[str, Any]) -> None:
        with self.lock:
            self.config = self.changed(changes)
            if set(changes) & set(_SEED_KNOBS):
                self._seed()

    def config_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _CONFIG.dump_python(self.config, mode="json")
        data["access_keys"] = dict.fromkeys(self.config.access_keys, "***")
        data["token_key"] = "***" if self.config.token_key else None
        return data

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "calls": dict(self.calls),
                "statuses": {str(k): v for k, v in self.statuses.items()},
                "costs": [dict(c) for c in self.costs],
                "tokens_issued": self.counters["tokens_issued"],
                "requests_per_second_peak": self.counters["peak"],
                **{k: v for k, v in self.counters.items() if k not in ("tokens_issued", "peak")},
            }

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        """The recorded cost pushes (optionally `?campaignId=`)."""
        wanted = filters.get("campaignId")
        with self.lock:
            return [dict(c) for c in self.costs if wanted is None or c["campaignId"] == wanted]

    def dump(self) -> dict[str, Any]:
        with self.lock:
            return {name: [dict(item) for item in getattr(self.data, name)]
                    for name in ("visits", "conversions", "campaigns", "offers", "traffic_sources")}

    def load(self, payload: Mapping[str, Any]) -> dict[str, int]:
        """Replace (or with `"append": true` extend) the given collections; returns their sizes."""
        append = bool(payload.get("append", False))
        names = ("visits", "conversions", "campaigns", "offers", "traffic_sources")
        unknown = set(payload) - {*names, "append"}
        if unknown:
            raise ValueError(f"unknown collections: {sorted(unknown)}")
        with self.lock:
            for name in names:
                items = payload.get(name)
                if items is None:
                    continue
                if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
                    raise ValueError(f"{name} must be a list of objects")
                fresh = [vd.conversion_row(i) if name == "conversions" else dict(i) for i in items]
                setattr(self.data, name, ([*getattr(self.data, name)] if append else []) + fresh)
            return {name: len(getattr(self.data, name)) for name in names}

    # --- traffic control -------------------------------------------------------------------------

    def arrive(self, endpoint: str) -> Response | None:
        """Count the call; a 429 or an injected fault answers it at once."""
        with self.lock:
            cfg, moment = self.config, time.monotonic()
            self.calls[endpoint] += 1
            for window in (self.arrivals, self.admitted):
                while window and moment - window[0] >= 1.0:
                    window.popleft()
            self.arrivals.append(moment)
            self.counters["peak"] = max(self.counters["peak"], len(self.arrivals))
            if cfg.rate_limit_per_s and len(self.admitted) >= cfg.rate_limit_per_s:
                return self._refuse(429, headers={"Retry-After": f"{cfg.retry_after_s:g}"})
            self.admitted.append(moment)
            if cfg.fault_endpoints and endpoint not in cfg.fault_endpoints:
                return None
            fault = cfg.fail_next > 0
            if fault:
                self.config = dataclasses.replace(cfg, fail_next=cfg.fail_next - 1)
            elif cfg.error_rate and secrets.randbelow(10**6) < cfg.error_rate * 10**6:
                fault = True
            if not fault:
                return None
            self.counters["faults"] += 1
            return self._refuse(cfg.error_status, headers={"Retry-After": f"{cfg.retry_after_s:g}"})

    def _refuse(self, status: int, description: str = "", *, messages: tuple[str, ...] = (),
                headers: Mapping[str, str] | None = None) -> Response:
        self.statuses[status] += 1
        error = {"code": CODES.get(status, "ERROR"), "description": description or DESCRIPTIONS.get(status, ""),
                 "messages": list(messages), "webRequestId": f"req-vlm-{secrets.token_urlsafe(6)}",
                 "time": self.now().isoformat(timespec="milliseconds")}
        body = {"error": error}
        return JSONResponse(body, status_code=status, headers=dict(headers or {}))

    def _ok(self, body: Any) -> Response:
        self.statuses[200] += 1
        return JSONResponse(body)

    def refuse(self, status: int, description: str = "", **kw: Any) -> Response:
        with self.lock:
            return self._refuse(status, description, **kw)

    # --- the provider protocol -------------------------------------------------------------------

    def authenticate(self, body: bytes) -> Response:
        with self.lock:
            try:
                data = json.loads(body)
                access_id, access_key = str(data["accessId"]), str(data["accessKey"])
            except (ValueError, TypeError, KeyError):
                return self._refuse(400, "HTTP message not readable")
            known = self.config.access_keys.get(access_id)
            if known is None or not secrets.compare_digest(known.encode(), access_key.encode()):
                leak = f" (access key {access_key})" if self.config.leaky_errors else ""
                return self._refuse(401, f"Invalid access id or access key{leak}")
            token = secrets.token_hex(16)
            expires = self.now() + timedelta(seconds=self.config.token_ttl_s)
            self.tokens[token] = expires.timestamp()
            self.counters["tokens_issued"] += 1
            return self._ok({"token": token, "expirationTimestamp": vd.iso(expires), "inaugural": False})

    def check_token(self, token: str) -> Response | None:
        with self.lock:
            expires = self.tokens.get(token)
            if expires is not None and self.now().timestamp() < expires:
                return None
            self.counters["unauthorized"] += 1
            leak = f": {token}" if self.config.leaky_errors and token else ""
            problem = "missing" if not token else "unknown" if expires is None else "expired"
            return self._refuse(401, f"Session token {problem}{leak}")

    def _window(self, params: QueryParams) -> tuple[datetime, datetime] | Response:
        start, end = vd.parse_when(params.get("from")), vd.parse_when(params.get("to"))
        if start is None or end is None or start >= end:
            return self._refuse(400, "Parameters 'from' and 'to' must be valid times, from before to")
        if self.config.require_hour_aligned and any(t.minute or t.second or t.microsecond for t in (start, end)):
            return self._refuse(400, "Parameters 'from' and 'to' must be whole hours")
        return start, end

    def _paging(self, params: QueryParams) -> tuple[int, int] | Response:
        try:
            limit, offset = int(params.get("limit") or self.config.default_limit), int(params.get("offset") or 0)
        except ValueError:
            return self._refuse(400, "Parameters 'limit' and 'offset' must be integers")
        if limit < 1 or offset < 0:
            return self._refuse(400, "Parameter 'limit' must be positive and 'offset' not negative")
        return min(limit, self.config.max_limit), offset

    def _page(self, rows: list[dict[str, Any]], limit: int, offset: int, extra: dict[str, Any]) -> Response:
        cfg = self.config
        if cfg.empty_body_next > 0:
            self.config = dataclasses.replace(cfg, empty_body_next=cfg.empty_body_next - 1)
            self.statuses[200] += 1
            return Response(b"", status_code=200, media_type="application/json")
        index = offset // limit
        start = 0 if cfg.ignore_offset else offset
        page = [] if cfg.empty_page_at == index else rows[start : start + limit]
        total = max(0, len(rows) + cfg.shift_total_rows * index)
        return self._ok({"limit": limit, "offset": offset, "truncated": False, "messages": [], "totalRows": total,
                         **extra, "rows": page})

    def report(self, params: QueryParams) -> Response:
        with self.lock:
            window = self._window(params)
            if isinstance(window, Response):
                return window
            paging = self._paging(params)
            if isinstance(paging, Response):
                return paging
            group_by = params.getlist("groupBy")
            filters: list[tuple[str, str]] = []
            for n in range(1, 10):
                name = params.get(f"filter{n}")
                if name is not None:
                    filters.append((name, params.get(f"filter{n}Value", "")))
            bad = [g for g in group_by if g not in vd.DIMENSIONS] + [f for f, _ in filters if f not in vd.FILTERS]
            if bad:
                return self._refuse(400, f"Unsupported dimension: {', '.join(bad)}")
            selected = [
                (pos, fact) for pos, fact in enumerate(self.data.visits)
                if vd.within(fact.get("timestamp"), window) and all(fact.get(vd.FILTERS[f]) == v for f, v in filters)
            ]
            cost = vd.pushed_costs(self.data.visits, self.costs)
            extra = {i: cost[pos] for i, (pos, _) in enumerate(selected) if pos in cost}
            entities = {"offer": self.data.offers, "campaign": self.data.campaigns,
                        "traffic-source": self.data.traffic_sources}
            listed = entities.get(group_by[0], []) if params.get("include") == "ALL" and len(group_by) == 1 else []
            rows, totals = vd.aggregate([f for _, f in selected], group_by, extra, entities=[] if filters else listed)
            columns = params.getlist("column")
            if columns:
                keep = set(columns) | {k for g in group_by for k in vd.DIMENSIONS[g]}
                rows = [{k: v for k, v in row.items() if k in keep} for row in rows]
            sort = params.get("sort")
            if sort and rows and sort in rows[0]:
                rows.sort(key=lambda r: _sortable(r.get(sort)), reverse=params.get("direction") == "DESC")
            return self._page(rows, *paging, {"totals": totals})

    def conversions(self, params: QueryParams) -> Response:
        with self.lock:
            window = self._window(params)
            if isinstance(window, Response):
                return window
            paging = self._paging(params)
            if isinstance(paging, Response):
                return paging
            rows = [r for r in self.data.conversions if vd.within(r.get("postbackTimestamp"), window)]
            rows.sort(key=lambda r: vd.parse_when(r.get("postbackTimestamp")) or datetime.min.replace(tzinfo=UTC))
            columns = params.getlist("column")
            if columns:
                rows = [{k: r.get(k, "") for k in columns} for r in rows]
            return self._page(rows, *paging, {})

    def entities(self, kind: str, entity_id: str | None = None) -> Response:
        with self.lock:
            items = {"campaigns": self.data.campaigns, "offers": self.data.offers,
                     "trafficSources": self.data.traffic_sources}[kind]
            if entity_id is None:
                return self._ok({kind: [dict(i) for i in items]})
            found = next((i for i in items if i.get("id") == entity_id), None)
            if found is None:
                return self._refuse(404, f"Entity {entity_id} not found")
            return self._ok(dict(found))

    def push_cost(self, body: bytes) -> Response:
        with self.lock:
            try:
                updates = json.loads(body)["costUpdateRequests"]
                if not isinstance(updates, list) or not updates:
                    raise ValueError("no updates")
                parsed = [vd.cost_update(u, self.config.reject_integer_cost) for u in updates]
            except (ValueError, TypeError, KeyError, AttributeError):
                return self._refuse(400, "HTTP message not readable")
            known = {c["id"] for c in self.data.campaigns}
            missing = [u["campaignId"] for u in parsed if u["campaignId"] not in known]
            if missing:
                return self._refuse(404, "Campaign not found", messages=tuple(missing))
            received = vd.iso(self.now())
            self.costs.extend({**u, "received_at": received} for u in parsed)
            return self._ok({})


def _sortable(value: Any) -> tuple[int, float, str]:
    return (0, float(value), "") if isinstance(value, int | float) else (1, 0.0, str(value))


# --- the ASGI app ------------------------------------------------------------------------------------


def create_app(config: VoluumSimConfig | None = None, *, clock: Clock = time.time) -> Starlette:
    """The simulator as a Starlette app; its state is `app.state.sim` (a `VoluumSim`)."""
    sim = VoluumSim(config or VoluumSimConfig(), clock)
    Handler = Callable[[Request], Awaitable[Response]]

    def endpoint(name: str, serve: Callable[[Request, bytes], Response], *, authenticated: bool = True) -> Handler:
        async def handle(request: Request) -> Response:
            early = sim.arrive(name)
            if early is not None:
                return early
            await sim.delay()
            if authenticated and (refused := sim.check_token(request.headers.get(TOKEN_HEADER, ""))) is not None:
                return refused
            return serve(request, await request.body())

        return handle

    async def data(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(sim.dump())
        try:
            payload = await request.json()
            if not isinstance(payload, dict):
                raise TypeError("a JSON object of collections is expected")
            return JSONResponse(sim.load(payload))
        except (ValueError, TypeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)

    app = Starlette(
        routes=[
            Route("/auth/access/session", endpoint("auth", lambda r, b: sim.authenticate(b), authenticated=False),
                  methods=["POST"]),
            Route("/report", endpoint("report", lambda r, b: sim.report(r.query_params)), methods=["GET"]),
            Route("/report/conversions", endpoint("conversions", lambda r, b: sim.conversions(r.query_params)),
                  methods=["GET"]),
            Route("/report/cost", endpoint("cost", lambda r, b: sim.push_cost(b)), methods=["POST"]),
            Route("/campaign", endpoint("campaign", lambda r, b: sim.entities("campaigns")), methods=["GET"]),
            Route("/campaign/{campaign_id}",
                  endpoint("campaign", lambda r, b: sim.entities("campaigns", r.path_params["campaign_id"])),
                  methods=["GET"]),
            Route("/offer", endpoint("offer", lambda r, b: sim.entities("offers")), methods=["GET"]),
            Route("/traffic-source", endpoint("traffic-source", lambda r, b: sim.entities("trafficSources")),
                  methods=["GET"]),
            *introspection_routes(sim),
            Route("/_sim/data", data, methods=["GET", "POST"]),
        ]
    )
    app.state.sim = sim
    return app
