# Over 400 lines: the provider's broadcast, stats and unsubscriber endpoints with fault knobs, one app.
"""MessageWhiz (MMD Smart) SMS API simulator (docs/providers/messagewhiz.md).

Provider endpoints, all behind the `apikey` header (401 and an error envelope otherwise):
`GET /api/3/Broadcast/List`, `GET /api/3/Link`, `GET /api/3/Sender/` (envelope, `start`/`limit` paging,
newest first), `POST /api/3/campaign`, `POST /sms` (key also as `api_key` in the body or `Authorization`),
`GET /sms/{id}` and `GET /sms/log` (a bare array); unsubscribe lists: `GET /api/3/unsubscribeList` (id, name,
enabled, unsubscribers_amount) and `GET|POST /api/3/unsubscribeList/{id}/members` (`phone_number` items, newest
first; POST `{"numbers": [...]}` adds), as docs/providers/messagewhiz_unsubscribers.md records.

Seeded data (`MessageWhizSimConfig`): `broadcasts_per_day` broadcasts for each of `days` days ending at
`anchor_date` (today, UTC, when empty), from `seed`. Lists are often split into chunks (`NAME_chunk#N.csv`),
some bodies carry no `{{link:N}}`, prices are in cents, and the links point at tracker URLs ending in a Voluum
campaign id (`campaign_ids`; by default the Voluum simulator's campaigns for the same seed, so the two agree).
Delivery reports and clicks grow linearly over `growth_hours` after `send_date`; a broadcast not yet sent is
in state 1 without `dlr`. Knobs for latency, 5xx/429 injection (random or the next N calls) and envelope
errors (HTTP 200 with a non-zero `errorCode`).

Introspection (tests and benches only) under `/_sim/`: `GET stats`, `GET orders` (the broadcasts, `?day=`),
`GET|POST config`, `POST reset`, `POST advance` (`{"seconds": n}` moves the clock), `POST data`
(`{"broadcasts": [...], "links": [...], "unsubscribers": {"list name": ["4479...", ...]}, "replace": false}`
loads explicit, static broadcasts and links, and unsubscribe list members).
"""

from __future__ import annotations

import dataclasses
import hmac
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from phoneops.simulators import voluum_data
from phoneops.simulators._kit import Clock, SimState
from phoneops.simulators._server import introspection_routes

DEFAULT_API_KEY = "sim-messagewhiz-demo-key-0001"  # the simulator's own demo credential, not a real one
TRACKER_URL = "https://trk.example.com"
FIRST_BROADCAST_ID = 395000001
FIRST_LINK_ID = 7000001
FIRST_UNSUBSCRIBE_LIST_ID = 901
_COUNTRIES = ("UK", "IT", "NL", "DE", "ES", "FR")
_WORDS = ("demo", "promo", "bonus", "vip", "winback", "reg")
_SENDERS = ("Promo", "Offers", "Info")


@dataclass
class MessageWhizSimConfig:
    """Every knob; `POST /_sim/config` changes them at runtime (a changed data knob re-seeds the data)."""

    api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)
    seed: int = 0
    days: int = 3  # seeded days, ending at anchor_date
    anchor_date: str = ""  # YYYY-MM-DD; empty: today (UTC) at reset
    broadcasts_per_day: int = 12
    chunk_ratio: float = 0.6  # share of lists sent as several `_chunk#N.csv` broadcasts (>= 1 a day if > 0)
    no_link_ratio: float = 0.15  # share of lists whose body has no `{{link:N}}` (at least one a day if > 0)
    no_campaign_ratio: float = 0.05  # share of lists linking to a URL without a campaign id
    cancelled_ratio: float = 0.05  # share of broadcasts in state 2
    campaign_ids: tuple[str, ...] = ()  # Voluum campaign ids behind the links; empty: the Voluum simulator's
    # seeded campaigns for the same `seed`, so the two simulators agree out of the box
    tracker_url: str = TRACKER_URL
    growth_hours: float = 6.0  # DLRs and clicks reach their final values this long after send_date
    max_limit: int = 1000  # a larger `limit` is cut to this
    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of calls answered `error_status`
    rate_limit_rate: float = 0.0  # share of calls answered 429
    error_status: int = 503
    retry_after_s: float | None = None  # Retry-After on 5xx/429 answers
    fail_next: int = 0  # the next N calls are answered `fail_status`
    fail_status: int = 503
    envelope_error_next: int = 0  # the next N /api/3 calls: HTTP 200, errorCode `envelope_error_code`
    envelope_error_code: int = 1001
    envelope_error_message: str = "Internal error"
    unsubscribers: int = 0  # seeded members of the account's unsubscribe list (GB mobiles, from `seed`)


_CONFIG = TypeAdapter(MessageWhizSimConfig)
_DATA_KNOBS = ("seed", "days", "anchor_date", "broadcasts_per_day", "chunk_ratio", "no_link_ratio", "no_campaign_ratio",
               "cancelled_ratio", "campaign_ids", "tracker_url")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _parse(value: Any) -> datetime:
    try:
        parsed = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def voluum_campaigns(seed: int) -> list[tuple[str, str]]:
    """(id, name) of the Voluum simulator's seeded campaigns for `seed` (they do not depend on its dates)."""
    data = voluum_data.seed_dataset(seed, date(2000, 1, 1), 0, 0)
    return [(str(c["id"]), str(c["name"])) for c in data.campaigns]


def envelope(result: Any, error_code: int = 0, message: str = "", error_type: str = "") -> dict[str, Any]:
    return {"errorCode": error_code, "errorMessage": message, "errorType": error_type,
            "executionTime": 0.0123, "result": result}


def default_broadcast(broadcast_id: int, at: datetime | None = None) -> dict[str, Any]:
    """A complete `Broadcast/List` item (sent `at`, default now); explicit broadcasts are merged onto it."""
    now = _iso(at or datetime.now(UTC))
    return {
        "id": broadcast_id, "user_id": 200, "name": f"broadcast_{broadcast_id}.csv", "type": 11,
        "message_body": "Hello", "enabled": 1, "trigger_id": None, "send_date": now, "state": 4, "parent_id": None,
        "real_price": 0, "estimated_price": 0, "create_date": now, "estimated_count": 0, "recipient_count": 0,
        "utc_offset": None, "next_segment_size": None, "eb_type": None, "company_name": "Demo LLC", "timezone": None,
        "send_now": False, "updated_at": None, "created_at": now, "created_by": "api+1@1.mmd", "updated_by": None,
        "department_id": 101, "department": {"id": 101, "name": "Team"}, "dlr": None, "broadcastConversion": None,
    }


@dataclass
class _Seeded:
    """A seeded broadcast: its fixed part and the final counts it grows towards."""

    item: dict[str, Any]
    send: datetime
    final: dict[str, int]


class MessageWhizSim(SimState[MessageWhizSimConfig]):
    """State and behaviour; every access goes through one lock (`SimState`)."""

    adapter = _CONFIG

    def __init__(self, config: MessageWhizSimConfig, clock: Clock = time.time) -> None:
        super().__init__(config, clock)

    def start(self) -> None:
        self.in_flight = 0
        self.rng = random.Random(self.config.seed)
        self.static: dict[int, dict[str, Any]] = {}
        self.sms: dict[str, dict[str, Any]] = {}
        self.campaigns: list[dict[str, Any]] = []
        self.unsubscribe_lists: dict[int, dict[str, Any]] = {}
        self._seed()
        self._seed_unsubscribers()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock() + self.offset, UTC)

    def _seed(self) -> None:
        cfg, rng = self.config, random.Random(self.config.seed)
        campaigns = [(c, f"Campaign {n + 1}") for n, c in enumerate(cfg.campaign_ids)] or voluum_campaigns(cfg.seed)
        self.links: dict[int, dict[str, Any]] = {}
        for n, (campaign_id, name) in enumerate(campaigns):
            url = f"{cfg.tracker_url.rstrip('/')}/{campaign_id}?Phone={{recipient.phone}}"
            self._add_link(FIRST_LINK_ID + n, name, url)
        ids = [c for c, _ in campaigns]
        no_campaign = self._add_link(FIRST_LINK_ID + len(ids), "Static page", "https://www.example.com/promo")
        link_ids = [*self.links][: len(ids)] or [no_campaign]
        anchor = date.fromisoformat(cfg.anchor_date) if cfg.anchor_date else self.now().date()
        self.seeded: dict[int, _Seeded] = {}
        next_id = FIRST_BROADCAST_ID
        for back in range(cfg.days - 1, -1, -1):
            day, made, linked_only = anchor - timedelta(days=back), 0, True
            while made < cfg.broadcasts_per_day:
                base = f"{rng.choice(_COUNTRIES)}_{rng.choice(_WORDS)}_list_{rng.randint(100, 999)}"
                chunked = rng.random() < cfg.chunk_ratio or (made == 0 and cfg.chunk_ratio > 0)  # >= 1 a day
                chunks = min(rng.randint(2, 4), cfg.broadcasts_per_day - made) if chunked else 0
                names = [f"{base}_chunk#{k}.csv" for k in range(1, chunks + 1)] or [f"{base}.csv"]
                last = made + len(names) >= cfg.broadcasts_per_day
                draw = rng.random()
                if draw < cfg.no_link_ratio or (last and linked_only and cfg.no_link_ratio > 0):  # >= 1 a day
                    link, linked_only = None, False
                else:
                    link = no_campaign if draw < cfg.no_link_ratio + cfg.no_campaign_ratio else rng.choice(link_ids)
                start = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 22 * 60))
                for k, name in enumerate(names):
                    self._seed_broadcast(rng, next_id, name, link, start + timedelta(minutes=15 * k))
                    next_id += 1
                made += len(names)

    def _seed_unsubscribers(self) -> None:
        rng = random.Random(self.config.seed + 16)
        numbers = [f"447{rng.randint(400000000, 999999999)}" for _ in range(self.config.unsubscribers)]
        if numbers:
            self.add_unsubscribers("Default unsubscribe list", numbers)

    def add_unsubscribers(self, list_name: str, numbers: list[str]) -> int:
        """Members added to the unsubscribe list named `list_name` (created when new); returns its id."""
        found = next((lst for lst in self.unsubscribe_lists.values() if lst["name"] == list_name), None)
        if found is None:
            list_id = FIRST_UNSUBSCRIBE_LIST_ID + len(self.unsubscribe_lists)
            found = self.unsubscribe_lists[list_id] = {"id": list_id, "name": list_name, "enabled": 1, "members": []}
        known = {m["phone_number"] for m in found["members"]}
        for number in numbers:
            value = str(number).lstrip("+")
            if value not in known:
                known.add(value)
                found["members"].insert(0, {"phone_number": value, "created_at": _iso(self.now())})  # newest first
        return int(found["id"])

    def _add_link(self, link_id: int, name: str, url: str) -> int:
        stamp = _iso(datetime(2026, 1, 1, tzinfo=UTC))
        self.links[link_id] = {
            "id": link_id, "name": name, "url": url, "type": 0, "enabled": True, "platform_based_links": None,
            "expiration_time": None, "expiration_url": None, "created_at": stamp, "updated_at": stamp,
            "created_by": "user@example.com", "updated_by": "user@example.com", "department_id": 101,
        }
        return link_id

    def _seed_broadcast(self, rng: random.Random, bid: int, name: str, link: int | None, send: datetime) -> None:
        recipients = rng.randint(20, 3000)
        price = round(recipients * rng.choice((3.2, 3.63, 4.1)), 2)
        cancelled = rng.random() < self.config.cancelled_ratio
        delivered = int(recipients * rng.uniform(0.85, 0.95))
        undelivered = int(recipients * rng.uniform(0.01, 0.03))
        rejected = int(recipients * rng.uniform(0.0, 0.02))  # the rest stays `sent` (no final DLR)
        unique = int(recipients * rng.uniform(0.01, 0.08))
        body = "Your bonus is ready " + (f"{{{{link:{link}}}}}" if link is not None else "at the shop. Reply STOP")
        item = default_broadcast(bid) | {
            "name": name, "message_body": body, "send_date": _iso(send), "state": 2 if cancelled else 4,
            "real_price": 0 if cancelled else price, "estimated_price": price, "estimated_count": recipients,
            "recipient_count": recipients, "create_date": _iso(send - timedelta(hours=2)),
            "created_at": _iso(send - timedelta(hours=2)),
        }
        final = {"delivered": delivered, "undelivered": undelivered, "rejected": rejected, "unique": unique,
                 "total": int(unique * rng.uniform(1.0, 1.4))}
        self.seeded[bid] = _Seeded(item, send, dict.fromkeys(final, 0) if cancelled else final)

    def _render(self, seeded: _Seeded, now: datetime) -> dict[str, Any]:
        item, recipients = dict(seeded.item), seeded.item["recipient_count"]
        if now < seeded.send:
            return item | {"state": 1 if item["state"] == 4 else item["state"], "dlr": None,
                           "broadcastConversion": None}
        hours = (now - seeded.send).total_seconds() / 3600
        share = 1.0 if self.config.growth_hours <= 0 else min(1.0, hours / self.config.growth_hours)
        got = {key: int(value * share) for key, value in seeded.final.items()}
        settled = got["delivered"] + got["undelivered"] + got["rejected"]
        item["dlr"] = {"broadcast_id": item["id"], "sent_count": 0 if item["state"] == 2 else recipients - settled,
                       "delivered_count": got["delivered"], "undelivered_count": got["undelivered"],
                       "rejected_count": got["rejected"], "expired_count": 0, "failed_count": 0, "read_count": 0,
                       "no_balance_count": None}
        ctr = f"{got['unique'] / recipients * 100:.2f}"
        item["broadcastConversion"] = {"uniqueClicks": got["unique"], "totalClicks": got["total"],
                                       "recipientCount": recipients, "conversion": ctr, "broadcastId": item["id"],
                                       "segmented": True}
        return item

    def broadcasts(self) -> list[dict[str, Any]]:
        """Every broadcast as the provider shows it now, newest first."""
        now = self.now()
        items = [self._render(s, now) for s in self.seeded.values()] + [dict(b) for b in self.static.values()]
        return sorted(items, key=lambda b: (_parse(b.get("send_date")), b.get("id", 0)), reverse=True)

    # --- introspection (/_sim/) ------------------------------------------------------------------

    def patch_config(self, changes: Mapping[str, Any]) -> None:
        with self.lock:
            before = self.config
            self.config = self.changed(changes)
            if any(getattr(before, k) != getattr(self.config, k) for k in _DATA_KNOBS):
                self._seed()  # explicit broadcasts loaded through /_sim/data stay

    def config_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _CONFIG.dump_python(self.config, mode="json")
        data["api_keys"] = ["***" for _ in self.config.api_keys]
        return data

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {"calls": dict(self.calls), "broadcasts": len(self.seeded) + len(self.static),
                    "links": len(self.links), "sms_sent": len(self.sms), "campaigns": len(self.campaigns),
                    "in_flight": self.in_flight, "now": _iso(self.now()), **self.counters}

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        day = filters.get("day")
        with self.lock:
            return [b for b in self.broadcasts() if not day or str(b.get("send_date", "")).startswith(day)]

    def load(self, data: Mapping[str, Any]) -> dict[str, int]:
        """`POST /_sim/data`: explicit broadcasts (static, merged onto defaults) and links."""
        broadcasts, links = data.get("broadcasts") or [], data.get("links") or []
        unsubscribers = data.get("unsubscribers") or {}
        if not isinstance(broadcasts, list) or not isinstance(links, list):
            raise TypeError("broadcasts and links must be lists of objects")
        if not isinstance(unsubscribers, dict):
            raise TypeError("unsubscribers must map a list name to numbers")
        with self.lock:
            for list_name, numbers in unsubscribers.items():
                self.add_unsubscribers(str(list_name), [str(n) for n in numbers])
            if data.get("replace"):
                self.seeded, self.static, self.links = {}, {}, {}
            for raw in broadcasts:
                bid = int(raw.get("id") or max([*self.seeded, *self.static], default=FIRST_BROADCAST_ID - 1) + 1)
                self.static[bid] = default_broadcast(bid, self.now()) | dict(raw) | {"id": bid}
            for raw in links:
                link_id = int(raw["id"])
                self.links[link_id] = self.links.get(link_id, {}) | dict(raw)
            return {"broadcasts": len(self.seeded) + len(self.static), "links": len(self.links)}

    # --- traffic control -------------------------------------------------------------------------

    def enter(self, key: str) -> None:
        with self.lock:
            self.calls[key] += 1
            self.in_flight += 1
            self.counters["max_in_flight"] = max(self.counters["max_in_flight"], self.in_flight)

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def fault(self) -> int | None:
        """The status of an injected fault for this call, if any."""
        with self.lock:
            cfg = self.config
            status: int | None = None
            if cfg.fail_next > 0:
                self.config = dataclasses.replace(cfg, fail_next=cfg.fail_next - 1)
                status = cfg.fail_status
            else:
                draw = self.rng.random()
                if draw < cfg.error_rate:
                    status = cfg.error_status
                elif draw < cfg.error_rate + cfg.rate_limit_rate:
                    status = 429
            if status is not None:
                self.counters["faults"] += 1
            return status

    def authorised(self, key: str) -> bool:
        ok = any(hmac.compare_digest(key.encode(), k.encode()) for k in self.config.api_keys if key)
        if not ok:
            with self.lock:
                self.counters["auth_failures"] += 1
        return ok

    def envelope_fault(self) -> dict[str, Any] | None:
        with self.lock:
            cfg = self.config
            if cfg.envelope_error_next <= 0:
                return None
            self.config = dataclasses.replace(cfg, envelope_error_next=cfg.envelope_error_next - 1)
            self.counters["envelope_errors"] += 1
            return envelope(None, cfg.envelope_error_code, cfg.envelope_error_message, "ApiError")


# --- the ASGI app ------------------------------------------------------------------------------------

Handler = Callable[[Request, Mapping[str, Any]], Any]


def _page(request: Request, items: list[dict[str, Any]], max_limit: int) -> list[dict[str, Any]] | None:
    try:
        start = int(request.query_params.get("start", "0"))
        limit = int(request.query_params.get("limit", "100"))
    except ValueError:
        return None
    if start < 0 or limit < 1:
        return None
    return items[start : start + min(limit, max_limit)]


async def _body(request: Request) -> Mapping[str, Any]:
    if request.method != "POST":
        return {}
    try:
        parsed = await request.json()
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def create_app(config: MessageWhizSimConfig | None = None, *, clock: Clock = time.time) -> Starlette:
    """The simulator as a Starlette app; its state is `app.state.sim` (a `MessageWhizSim`)."""
    sim = MessageWhizSim(config or MessageWhizSimConfig(), clock)

    def provider(key: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler in what every provider call goes through: latency, faults, auth, envelope errors."""

        async def endpoint(request: Request) -> Response:
            body = await _body(request)
            sim.enter(key)
            try:
                cfg = sim.config
                await sim.delay()
                if (status := sim.fault()) is not None:
                    headers = {"Retry-After": f"{cfg.retry_after_s:g}"} if cfg.retry_after_s is not None else None
                    return JSONResponse({"message": "Service Unavailable"}, status_code=status, headers=headers)
                api_key = request.headers.get("apikey", "")
                if request.url.path.startswith("/sms"):
                    api_key = api_key or str(body.get("api_key") or "") or request.headers.get("authorization", "")
                if not sim.authorised(api_key):
                    return JSONResponse(envelope(None, 401, "Unauthorized", "AuthenticationError"), status_code=401)
                if request.url.path.startswith("/api/3") and (failure := sim.envelope_fault()) is not None:
                    return JSONResponse(failure)
                result = handler(request, body)
                return result if isinstance(result, Response) else JSONResponse(result)
            finally:
                sim.leave()

        return endpoint

    def listing(source: Callable[[], list[dict[str, Any]]]) -> Handler:
        def answer(request: Request, body: Mapping[str, Any]) -> Any:
            with sim.lock:
                page = _page(request, source(), sim.config.max_limit)
                sim.counters["pages_served"] += page is not None
            if page is None:
                error = envelope(None, 400, "start must be >= 0 and limit >= 1", "ValidationError")
                return JSONResponse(error, status_code=400)
            return envelope(page)

        return answer

    def links() -> list[dict[str, Any]]:
        return sorted(sim.links.values(), key=lambda link: -int(link["id"]))

    def senders() -> list[dict[str, Any]]:
        return [{"id": n + 1, "name": name, "enabled": True} for n, name in enumerate(_SENDERS)]

    def create_campaign(request: Request, body: Mapping[str, Any]) -> Any:
        with sim.lock:
            campaign = {"id": len(sim.campaigns) + 1, "is_default": False, "name": str(body.get("name", "")),
                        "start_date": body.get("start_date"), "end_date": body.get("end_date"),
                        "enabled": True}
            sim.campaigns.append(campaign)
        return envelope(campaign)

    def send_sms(request: Request, body: Mapping[str, Any]) -> Any:
        with sim.lock:
            message_id = uuid.UUID(int=sim.rng.getrandbits(128), version=4).hex
            sim.sms[message_id] = {"message_id": message_id, "from": body.get("from"), "to": body.get("to"),
                                   "text": body.get("text"), "client_ref": body.get("client_ref"),
                                   "status": "DELIVRD", "created_at": _iso(sim.now())}
        return {"message_id": message_id}

    def sms_status(request: Request, body: Mapping[str, Any]) -> Any:
        message = sim.sms.get(request.path_params["message_id"])
        return message or JSONResponse({"error": "not found"}, status_code=404)

    def unsubscribe_lists() -> list[dict[str, Any]]:
        return [{"id": lst["id"], "name": lst["name"], "enabled": lst["enabled"],
                 "unsubscribers_amount": len(lst["members"])}
                for lst in sorted(sim.unsubscribe_lists.values(), key=lambda lst: -int(lst["id"]))]

    def members(request: Request, body: Mapping[str, Any]) -> Any:
        try:
            found = sim.unsubscribe_lists.get(int(request.path_params["list_id"]))
        except ValueError:
            found = None
        if found is None:
            return JSONResponse(envelope(None, 404, "Unsubscribe list not found", "NotFoundError"), status_code=404)
        return listing(lambda: list(found["members"]))(request, body)

    def add_members(request: Request, body: Mapping[str, Any]) -> Any:
        numbers = body.get("numbers")
        if not isinstance(numbers, list) or not numbers:
            return JSONResponse(envelope(None, 400, "numbers must be a non-empty list", "ValidationError"),
                                status_code=400)
        with sim.lock:
            found = sim.unsubscribe_lists.get(int(request.path_params["list_id"]))
            if found is None:
                return JSONResponse(envelope(None, 404, "Unsubscribe list not found", "NotFoundError"),
                                    status_code=404)
            sim.add_unsubscribers(found["name"], [str(n) for n in numbers])
            return envelope({"id": found["id"], "unsubscribers_amount": len(found["members"])})

    async def load_data(request: Request) -> Response:
        try:
            data = await request.json()
            if not isinstance(data, dict):
                raise TypeError("a JSON object is expected")
            return JSONResponse(sim.load(data))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            return JSONResponse({"error": str(exc)}, status_code=422)

    app = Starlette(
        routes=[
            Route("/api/3/Broadcast/List", provider("broadcasts", listing(sim.broadcasts)), methods=["GET"]),
            Route("/api/3/Link", provider("links", listing(links)), methods=["GET"]),
            Route("/api/3/Sender/", provider("senders", listing(senders)), methods=["GET"]),
            Route("/api/3/campaign", provider("campaign", create_campaign), methods=["POST"]),
            Route("/api/3/unsubscribeList", provider("unsubscribe_lists", listing(unsubscribe_lists)),
                  methods=["GET"]),
            Route("/api/3/unsubscribeList/{list_id:int}/members", provider("unsubscribers", members), methods=["GET"]),
            Route("/api/3/unsubscribeList/{list_id:int}/members", provider("unsubscribers_add", add_members),
                  methods=["POST"]),
            Route("/sms/log", provider("sms_log", lambda r, b: list(sim.sms.values())), methods=["GET"]),
            Route("/sms", provider("sms", send_sms), methods=["POST"]),
            Route("/sms/{message_id}", provider("sms_status", sms_status), methods=["GET"]),
            Route("/_sim/data", load_data, methods=["POST"]),
            *introspection_routes(sim),
        ]
    )
    app.state.sim = sim
    return app
