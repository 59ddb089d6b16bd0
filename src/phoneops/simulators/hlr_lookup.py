# Over 400 lines: the provider's real-time and batch APIs with their fault knobs, one app.
"""hlrlookup.com API v2 simulator (docs/providers/hlr_lookup.md).

One app serves both hosts: real-time `POST /apiv2/hlr` (JSON body auth `api_key` / `api_secret`, up to 80
numbers, `results` in request order) and the batch host `/batches/...` (query auth `apikey` / `secret`:
create, upload CSV source, `PUT {"status": "PROCESSING"}`, poll `numComplete`, results CSV with the dotted
header). 400 / 401 / 429 bodies are the documented ones; 404 and 5xx have no body.

Outcomes are deterministic per number (a hash of `seed` and the number's digits picks the live status, the
network, the porting), with realistic network names per country, some of them on the original's
risky-operator list; `overrides` pins the result of given numbers. Each account has a credit balance: a
lookup costs `credits_per_lookup` (NO_COVERAGE is free) and a lookup without credit answers
`INSUFFICIENT_CREDIT` in its result. A batch is processed `batch_items_per_second` items per second of the
simulated clock (moved forward with `POST /_sim/advance`), paying as items complete.

Knobs (`HlrSimConfig`, `POST /_sim/config`): latency, 429 injection (next N calls, every Nth call, or a
share of calls; with `Retry-After`), 5xx injection (before or after the lookup is done and paid), the
fault scope (real-time, batch or both), batch speed and failure. Introspection, JSON under `/_sim/`:
`GET stats` (paid lookups per number, balances, calls), `GET orders` (the batches), `GET|POST config`,
`POST reset`, `POST advance`. `stats.lookups_per_number` counts every lookup performed (error NONE,
including the free NO_COVERAGE ones): a 4xx/429/5xx-before-commit or an `INSUFFICIENT_CREDIT` result is
not a lookup. `stats.charges_per_number` counts the credits charged per number.

The provider's caches (docs/providers/hlr_cache.md, from hlrlookup.com's public knowledge base): a performed
lookup is kept in the account's private cache (always; `save_to_cache` YES also shares it with other
accounts: the global cache). A request with `cache_days_private` > 0 is answered from the account's newest
private result younger than that many days, for free; else one with `cache_days_global` > 0 from the
newest global result of another account, for half a credit (the owner earns a quarter). Cache answers are
not lookups (`stats.private_cache_hits` / `global_cache_hits` per number). Outcomes and the record formats
live in `hlr_outcomes`, the batch state machine in `hlr_batches`.
"""

from __future__ import annotations

import dataclasses
import hmac
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from phoneops.simulators._kit import Clock, SimCore
from phoneops.simulators._server import introspection_routes
from phoneops.simulators.hlr_batches import BatchHost
from phoneops.simulators.hlr_outcomes import (
    DEFAULT_STATUS_WEIGHTS,
    BadRequest,
    digits,
    merge,
    outcome,
    validate_entry,
)

API_PATH = "/apiv2/hlr"
BATCHES_PATH = "/batches"
DEFAULT_API_KEY = "sim-hlr-demo-key-0001"  # the simulator's own demo credentials, not real ones
DEFAULT_API_SECRET = "sim-hlr-demo-secret-0001"  # noqa: S105

UNAUTHORIZED = {"error": "UNAUTHORIZED", "message": "Invalid api_key or api_secret"}
TOO_MANY_REQUESTS = {"error": "TOO_MANY_REQUESTS", "message": "Please try again later"}
_UNCHARGED_TYPES = ("UNKNOWN",)  # not a phone number: answered, not charged


@dataclass
class HlrSimConfig:
    """Every knob; `POST /_sim/config` changes them at runtime (`*_next` count down as they fire)."""

    accounts: dict[str, str] = field(default_factory=lambda: {DEFAULT_API_KEY: DEFAULT_API_SECRET})  # key->secret
    initial_credits: float = 10_000.0  # per account; `POST /_sim/config {"balance": n}` tops up
    credits_per_lookup: float = 1.0
    max_numbers_per_request: int = 80
    response_shape: Literal["results", "body"] = "results"  # top-level `results` (live) or `{"body": {...}}` (docs)
    seed: int = 0  # salts the outcome hash: same seed, same outcomes
    status_weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STATUS_WEIGHTS))
    risky_ratio: float = 0.15  # share of numbers served by a risky operator (where the country has one)
    ported_ratio: float = 0.12
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # digits -> fields merged on the result
    latency_ms: float = 0.0  # added to every provider call
    throttle_next: int = 0  # the next N calls answer 429
    throttle_every: int = 0  # every Nth call answers 429 (0: off)
    throttle_rate: float = 0.0  # share of calls answering 429
    retry_after_s: float | None = 1.0  # `Retry-After` on 429 answers
    error_next: int = 0  # the next N calls answer `error_status` (no body)
    error_rate: float = 0.0
    error_status: int = 500
    fault_after_commit: bool = False  # 5xx after the lookup was done and paid (the answer is lost)
    fault_scope: Literal["all", "realtime", "batch"] = "all"
    batch_items_per_second: float = 200.0  # on the simulated clock; <= 0: done at once
    fail_batches: bool = False  # started batches end FAILED
    first_batch_id: int = 1001
    unstarted_status: str = "NEW"  # a batch's status before it is started (the docs do not name it)
    restart_answer: Literal["batch", "already_started"] = "batch"  # a second start: the batch, or a 400


_CONFIG = TypeAdapter(HlrSimConfig)


class HlrSim(SimCore[HlrSimConfig]):
    """The simulator's state and behaviour. Every access goes through one lock (`SimCore`)."""

    adapter = _CONFIG
    accounts_knob = "accounts"

    def start(self) -> None:
        self.balances = dict.fromkeys(self.config.accounts, float(self.config.initial_credits))
        self.lookups: Counter[str] = Counter()
        self.numbers_per_call: list[int] = []
        self.charges: Counter[str] = Counter()
        self.private_hits: Counter[str] = Counter()
        self.global_hits: Counter[str] = Counter()
        # (account, number) -> (wall time, result); number -> (wall time, owner, result) for the global one
        self.private_cache: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}
        self.global_cache: dict[str, tuple[float, str, dict[str, Any]]] = {}
        self.credits_spent = 0.0
        self.host = BatchHost(self.config.first_batch_id, self.config.unstarted_status)
        self.rng = random.Random(self.config.seed)

    def configured(self) -> None:
        for key in self.config.accounts:
            self.balances.setdefault(key, float(self.config.initial_credits))
        self.host.unstarted_status = self.config.unstarted_status

    def amount(self, value: Any) -> float:
        return float(value)

    def wall(self) -> str:
        return (datetime.now(UTC) + timedelta(seconds=self.offset)).strftime("%Y-%m-%dT%H:%M:%SZ")

    def wall_seconds(self) -> float:
        return time.time() + self.offset

    # --- introspection (/_sim/) ------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        with self.lock:
            self._tick()
            return {
                "lookups_per_number": dict(self.lookups),
                "total_paid_lookups": sum(self.lookups.values()),
                "max_lookups_per_number": max(self.lookups.values(), default=0),
                "balance": dict(self.balances),
                "credits_spent": self.credits_spent,
                "calls": dict(self.calls),
                "numbers_per_call": list(self.numbers_per_call),
                "charges_per_number": dict(self.charges),
                "max_charges_per_number": max(self.charges.values(), default=0),
                "private_cache_hits": dict(self.private_hits),
                "global_cache_hits": dict(self.global_hits),
                **self.counters,
            }

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        """The batches (`?status=` filters)."""
        status = filters.get("status")
        with self.lock:
            self._tick()
            return [b.json() for b in self.host.batches.values() if status is None or b.status == status]

    # --- faults and auth -------------------------------------------------------------------------

    def begin(self, call: str) -> Literal["throttle", "error"] | None:
        """Count the call and decide its fault, if any."""
        with self.lock:
            self.calls[call] += 1
            cfg = self.config
            if cfg.fault_scope not in ("all", "realtime" if call == "hlr" else "batch"):
                return None
            self.counters["calls_in_scope"] += 1
            fault: Literal["throttle", "error"] | None = None
            if cfg.throttle_next > 0:
                self.config, fault = dataclasses.replace(cfg, throttle_next=cfg.throttle_next - 1), "throttle"
            elif cfg.error_next > 0:
                self.config, fault = dataclasses.replace(cfg, error_next=cfg.error_next - 1), "error"
            elif cfg.throttle_every > 0 and self.counters["calls_in_scope"] % cfg.throttle_every == 0:
                fault = "throttle"
            else:
                draw = self.rng.random()
                if draw < cfg.throttle_rate:
                    fault = "throttle"
                elif draw < cfg.throttle_rate + cfg.error_rate:
                    fault = "error"
            if fault:
                self.counters["throttled" if fault == "throttle" else "faults"] += 1
            return fault

    def authenticate(self, key: Any, secret: Any) -> str | None:
        """The account's key when `key` / `secret` match one (constant-time on the secret)."""
        if not isinstance(key, str) or not isinstance(secret, str):
            return None
        with self.lock:
            expected = self.config.accounts.get(key)
        if expected is None or not hmac.compare_digest(secret.encode(), expected.encode()):
            return None
        return key

    # --- lookups ---------------------------------------------------------------------------------

    def _cached(self, account: str, number: str, params: dict[str, Any]) -> dict[str, Any] | None:
        """The answer from a cache, when the request allows one and a young enough result exists (lock held)."""
        now, day = self.wall_seconds(), 86_400.0
        private_days = int(params.get("cache_days_private") or 0)
        found = self.private_cache.get((account, number))
        if private_days > 0 and found is not None and now - found[0] <= private_days * day:
            self.private_hits[number] += 1
            return {**found[1], "uuid": str(uuid.uuid4()), "credits_spent": 0, "request_parameters": params}
        global_days = int(params.get("cache_days_global") or 0)
        shared = self.global_cache.get(number)
        if global_days > 0 and shared is not None and shared[1] != account and now - shared[0] <= global_days * day:
            cost = self.config.credits_per_lookup / 2
            if self.balances.get(account, 0.0) < cost:
                return None  # answered as a lookup would be: INSUFFICIENT_CREDIT
            self.balances[account] -= cost
            self.balances[shared[1]] = self.balances.get(shared[1], 0.0) + cost / 2
            self.credits_spent += cost
            self.charges[number] += 1
            self.global_hits[number] += 1
            return {**shared[2], "uuid": str(uuid.uuid4()), "credits_spent": cost, "request_parameters": params}
        return None

    def _lookup(self, account: str, params: dict[str, Any]) -> dict[str, Any]:
        """One lookup charged to `account` (lock held); counted as paid when performed (`error` NONE)."""
        cfg, number = self.config, digits(params["telephone_number"])
        cached = self._cached(account, number, params)
        if cached is not None:
            return cached
        head = {"error": "NONE", "uuid": str(uuid.uuid4()), "credits_spent": 0, "request_parameters": params}
        if self.balances.get(account, 0.0) < cfg.credits_per_lookup:
            self.counters["insufficient_credit"] += 1
            blank = dict.fromkeys(("formatted_telephone_number", "telephone_number_type", "live_status",
                                   "original_network", "current_network", "is_ported"), "")
            details: dict[str, Any] = {"original_network_details": {}, "current_network_details": {}}
            return {**head, "error": "INSUFFICIENT_CREDIT", "detected_telephone_number": number, **blank,
                    **details, "timestamp": self.wall()}
        override = cfg.overrides.get(number, {})
        result = merge(
            outcome(number, seed=cfg.seed, weights=cfg.status_weights, risky_ratio=cfg.risky_ratio,
                    ported_ratio=cfg.ported_ratio),
            override,
        )
        fmt, kind = params.get("output_format", ""), result["telephone_number_type"]
        if fmt in ("E164", "PLUS_E164") and kind not in _UNCHARGED_TYPES:
            result["formatted_telephone_number"] = ("+" if fmt == "PLUS_E164" else "") + number
        error = str(result.pop("error", "NONE"))
        cost = 0.0
        if error == "NONE" and result["live_status"] != "NO_COVERAGE" and kind not in _UNCHARGED_TYPES:
            cost = cfg.credits_per_lookup + (params.get("usa_status") == "YES" and number.startswith("1"))
        cost = float(result.pop("credits_spent", cost))
        if error == "NONE":
            self.lookups[number] += 1
        if cost:
            self.charges[number] += 1
        self.balances[account] = self.balances.get(account, 0.0) - cost
        self.credits_spent += cost
        spent = int(cost) if cost.is_integer() else cost
        answer = {**head, "error": error, "credits_spent": spent, **result, "timestamp": self.wall(),
                  "sms_email": "", "mms_email": ""}
        if error == "NONE":
            stamp = self.wall_seconds()
            self.private_cache[(account, number)] = (stamp, answer)
            if params.get("save_to_cache", "YES") == "YES":
                self.global_cache[number] = (stamp, account, answer)
        return answer

    def realtime(self, body: Any) -> tuple[int, dict[str, Any]]:
        """Answer one `POST /apiv2/hlr`: (HTTP status, JSON body)."""
        if not isinstance(body, dict):
            raise BadRequest("Request body must be a JSON object")
        account = self.authenticate(body.get("api_key"), body.get("api_secret"))
        if account is None:
            return 401, UNAUTHORIZED
        unknown = sorted(set(body) - {"api_key", "api_secret", "requests"})
        if unknown:
            raise BadRequest(f"Unknown parameter: {unknown[0]}")
        requests = body.get("requests")
        if not isinstance(requests, list) or not requests:
            raise BadRequest("Missing parameter: requests")
        with self.lock:
            if len(requests) > self.config.max_numbers_per_request:
                raise BadRequest(f"Too many requests: at most {self.config.max_numbers_per_request} per call")
            entries = [validate_entry(item) for item in requests]
            self.numbers_per_call.append(len(entries))
            answer = {"results": [self._lookup(account, entry) for entry in entries]}
            return 200, {"body": answer} if self.config.response_shape == "body" else answer

    # --- batches ---------------------------------------------------------------------------------

    @contextmanager
    def batch_host(self) -> Iterator[BatchHost]:
        """The batch host under the lock, its running batches brought up to the simulated time."""
        with self.lock:
            self._tick()
            yield self.host

    def _tick(self) -> None:
        cfg = self.config
        self.host.tick(self.now(), cfg.batch_items_per_second, cfg.fail_batches, self._lookup)


# --- the ASGI app ------------------------------------------------------------------------------------

Handler = Callable[[Request], Awaitable[Response]]


def create_app(config: HlrSimConfig | None = None, *, clock: Clock = time.monotonic) -> Starlette:
    """The simulator as a Starlette app; its state is `app.state.sim` (an `HlrSim`)."""
    sim = HlrSim(config or HlrSimConfig(), clock)

    def endpoint(call: str, handler: Handler) -> Handler:
        async def serve(request: Request) -> Response:
            fault = sim.begin(call)
            cfg = sim.config
            await sim.delay()
            if fault == "throttle":
                headers = {"Retry-After": f"{cfg.retry_after_s:g}"} if cfg.retry_after_s is not None else None
                return JSONResponse(TOO_MANY_REQUESTS, status_code=429, headers=headers)
            if fault == "error" and not cfg.fault_after_commit:
                return Response(status_code=cfg.error_status)
            try:
                response = await handler(request)
            except BadRequest as exc:
                response = JSONResponse({"error": "BAD_REQUEST", "message": str(exc)}, status_code=400)
            return Response(status_code=cfg.error_status) if fault == "error" else response

        return serve

    async def _body(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError:
            raise BadRequest("Request body must be valid JSON") from None

    def _account(request: Request) -> str | None:
        return sim.authenticate(request.query_params.get("apikey"), request.query_params.get("secret"))

    def _answer(result: dict[str, Any] | None) -> Response:
        return Response(status_code=404) if result is None else JSONResponse(result)

    async def realtime(request: Request) -> Response:
        status, payload = sim.realtime(await _body(request))
        return JSONResponse(payload, status_code=status)

    def batch_call(call: str, action: Callable[[Request, str], Awaitable[Response]]) -> Handler:
        async def handler(request: Request) -> Response:
            account = _account(request)
            if account is None:
                return JSONResponse(UNAUTHORIZED, status_code=401)
            return await action(request, account)

        return endpoint(call, handler)

    async def create(request: Request, account: str) -> Response:
        body = await _body(request)
        with sim.batch_host() as host:
            return JSONResponse(host.create(account, body, sim.wall()))

    async def listing(request: Request, account: str) -> Response:
        try:
            offset = max(0, int(request.query_params.get("offset", 0)))
            limit = max(1, int(request.query_params.get("limit", 10)))
        except ValueError:
            raise BadRequest("Invalid offset or limit requested") from None
        with sim.batch_host() as host:
            return JSONResponse(host.page(account, offset, limit))

    async def source(request: Request, account: str) -> Response:
        content = await request.body()
        with sim.batch_host() as host:
            return _answer(host.upload(account, request.path_params["batch_id"], content))

    async def start(request: Request, account: str) -> Response:
        body = await _body(request)
        with sim.batch_host() as host:
            started = host.start(account, request.path_params["batch_id"], body, sim.now())
            again = host.restarted
        if again and sim.config.restart_answer == "already_started":
            raise BadRequest("Batch already started")
        return _answer(started)

    async def status(request: Request, account: str) -> Response:
        with sim.batch_host() as host:
            return _answer(host.get(account, request.path_params["batch_id"]))

    async def results(request: Request, account: str) -> Response:
        with sim.batch_host() as host:
            text = host.results_csv(account, request.path_params["batch_id"])
        return Response(status_code=404) if text is None else Response(text, media_type="text/csv")

    def both(path: str, call: str, action: Callable[[Request, str], Awaitable[Response]], method: str) -> list[Route]:
        return [Route(p, batch_call(call, action), methods=[method]) for p in (path, f"{path}/")]

    one = f"{BATCHES_PATH}/{{batch_id}}"
    routes = [
        Route(API_PATH, endpoint("hlr", realtime), methods=["POST"]),
        *both(BATCHES_PATH, "batch.create", create, "POST"),
        *both(BATCHES_PATH, "batch.list", listing, "GET"),
        *both(one, "batch.start", start, "PUT"),
        *both(one, "batch.status", status, "GET"),
        Route(f"{one}/source", batch_call("batch.upload", source), methods=["POST"]),
        Route(f"{one}/results", batch_call("batch.results", results), methods=["GET"]),
        *introspection_routes(sim),
    ]
    app = Starlette(routes=routes)
    app.state.sim = sim
    return app
