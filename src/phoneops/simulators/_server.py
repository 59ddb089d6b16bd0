"""Serve an ASGI app over real HTTP: in a background thread (tests) or in its own process (benches).

Also the `/_sim/` introspection endpoints every simulator offers (`introspection_routes`) and `SimAdmin`,
their client. They exist for tests and benches only and are never part of a provider's protocol:
`GET stats`, `GET orders?filter=...`, `GET|POST config` (JSON knobs), `POST reset`, `POST advance`
(`{"seconds": n}` moves the simulated clock).

Every simulator served here (`serve_in_thread`, `run`) also takes two shared knobs through `POST config`,
applied by `FaultMiddleware` to every provider call (never to `/_sim/`): `faults` (a `FaultPlan`: random
5xx / 429 / timeouts at a seeded rate, before the call is handled or after it, answer lost) and `down`
(`true`: every provider call answers 503 until `false`). `GET stats` reports them under `injected`.
"""

from __future__ import annotations

import asyncio
import functools
import json
import random
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import uvicorn
from pydantic import TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LOCALHOST = "127.0.0.1"
ASGIApp = Callable[..., Any]  # any ASGI application (Starlette, FastAPI, ...)


def _config(app: ASGIApp, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        FaultMiddleware(app),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
        backlog=4096,
    )


@contextmanager
def serve_in_thread(
    app: ASGIApp,
    *,
    host: str = LOCALHOST,
    port: int = 0,
    log_level: str = "warning",
    startup_timeout: float = 10.0,
) -> Iterator[str]:
    """Run `app` with uvicorn in a daemon thread; yields its base URL (`port=0` picks a free port)."""
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and without
    # it every keep-alive response waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    bound_host, bound_port = sock.getsockname()[:2]
    server = uvicorn.Server(_config(app, host, bound_port, log_level))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"sim-{bound_port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    try:
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"simulator on {bound_host}:{bound_port} did not start")
            time.sleep(0.01)
        yield f"http://{bound_host}:{bound_port}"
    finally:
        server.should_exit = True
        thread.join(timeout=startup_timeout)
        sock.close()


def run(app: ASGIApp, host: str = LOCALHOST, port: int = 8901, log_level: str = "info") -> None:
    """Serve `app` in the foreground of this process until interrupted (SIGINT/SIGTERM)."""
    uvicorn.Server(_config(app, host, port, log_level)).run()


@functools.cache
def _tls() -> ssl.SSLContext:
    """One TLS context for this module's clients (building one reads and parses the CA bundle: ~21 ms of CPU)."""
    return httpx.create_ssl_context()


def wait_until_up(base_url: str, timeout: float = 10.0) -> None:
    """Poll `GET {base_url}/_sim/stats` until it answers (for a simulator started in another process)."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=1.0, verify=_tls()) as client:  # one client: each new one cost ~21 ms of CPU
        while True:
            try:
                client.get(f"{base_url}/_sim/stats").raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)


# --- fault injection ----------------------------------------------------------------------------------

FAULT_KINDS = ("500", "502", "503", "504", "429", "timeout")
_FAULTS_KEY = "_sim_fault_injector"


@dataclass(frozen=True)
class FaultPlan:
    """Random faults on provider calls (`/_sim/` endpoints are never faulted).

    `rate`: share of calls that fault; `kinds`: drawn uniformly ("5xx" codes, "429", "timeout"); a 5xx or
    timeout hits BEFORE the call is handled (nothing happened) or, for a share `after` of them, AFTER it
    (the provider did the work and charged, but the answer is lost). A 429 is always before. A "timeout"
    holds the answer `timeout_s` seconds, then answers 504. `seed` makes the draws reproducible; `paths`
    limits faults to path prefixes (empty: every provider path).
    """

    rate: float = 0.0
    kinds: tuple[str, ...] = ("500", "503", "timeout", "429")
    after: float = 0.5
    timeout_s: float = 2.0
    retry_after_s: float | None = None
    seed: int = 0
    paths: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0 or not 0.0 <= self.after <= 1.0:
            raise ValueError("faults.rate and faults.after are shares between 0 and 1")
        if not self.kinds or any(k not in FAULT_KINDS for k in self.kinds):
            raise ValueError(f"faults.kinds: a non-empty list of {list(FAULT_KINDS)}")
        if self.timeout_s < 0:
            raise ValueError("faults.timeout_s must be >= 0")


_PLAN = TypeAdapter(FaultPlan)


@dataclass(frozen=True)
class Fault:
    kind: str  # one of FAULT_KINDS, or "down"
    after: bool  # the call is handled first, then its answer is lost


class FaultInjector:
    """The `faults` and `down` knobs of one simulator, and what they did (`stats()["injected"]`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.plan = FaultPlan()
            self.down = False
            self.down_retry_after: float | None = None
            self._rng = random.Random(0)
            self.counters: Counter[str] = Counter()

    def configure(self, changes: dict[str, Any]) -> None:
        """Pop the `faults` / `down` / `down_retry_after_s` knobs out of a `/_sim/config` body."""
        faults = changes.pop("faults", None)
        down = changes.pop("down", None)
        down_retry_after = changes.pop("down_retry_after_s", None)
        plan = _PLAN.validate_python(faults) if faults is not None else None
        if down is not None and not isinstance(down, bool):
            raise TypeError("down: true or false")
        with self._lock:
            if plan is not None:
                self.plan = plan
                self._rng = random.Random(plan.seed)
            if down is not None:
                self.down = down
            if down_retry_after is not None:
                self.down_retry_after = float(down_retry_after) if down_retry_after != "" else None

    def as_json(self) -> dict[str, Any]:
        with self._lock:
            return {"faults": _PLAN.dump_python(self.plan, mode="json"), "down": self.down,
                    "down_retry_after_s": self.down_retry_after}

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counters)

    def draw(self, path: str) -> Fault | None:
        with self._lock:
            self.counters["calls"] += 1
            if self.down:
                self.counters["down"] += 1
                return Fault("down", after=False)
            plan = self.plan
            if plan.rate <= 0 or (plan.paths and not path.startswith(plan.paths)):
                return None
            if self._rng.random() >= plan.rate:
                return None
            kind = self._rng.choice(plan.kinds)
            after = kind != "429" and self._rng.random() < plan.after
            self.counters[f"{kind}_{'after' if after else 'before'}"] += 1
            self.counters["faults"] += 1
            return Fault(kind, after)


def faults_of(sim: object) -> FaultInjector:
    """The fault injector of a simulator's state object (created on first use)."""
    injector = getattr(sim, _FAULTS_KEY, None)
    if injector is None:
        injector = FaultInjector()
        setattr(sim, _FAULTS_KEY, injector)
    return injector


class FaultMiddleware:
    """ASGI wrapper injecting `FaultInjector` faults into every call of `app` outside `prefix`.

    The injector is the one of `app.state.sim` (every simulator keeps its state there); an app without
    one is served untouched.
    """

    def __init__(self, app: ASGIApp, prefix: str = "/_sim") -> None:
        self.app = app
        self.prefix = prefix

    def _injector(self) -> FaultInjector | None:
        sim = getattr(getattr(self.app, "state", None), "sim", None)
        return faults_of(sim) if sim is not None else None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        injector = self._injector() if scope["type"] == "http" else None
        if injector is None or str(scope.get("path", "")).startswith(self.prefix):
            await self.app(scope, receive, send)
            return
        fault = injector.draw(str(scope.get("path", "")))
        if fault is None:
            await self.app(scope, receive, send)
            return
        if fault.after:
            async def lost(message: dict[str, Any]) -> None:  # the provider answered; the answer is lost
                return None

            await self.app(scope, receive, lost)
        plan = injector.plan
        status, retry_after = 503, None
        if fault.kind == "down":
            retry_after = injector.down_retry_after
        elif fault.kind == "timeout":
            await asyncio.sleep(plan.timeout_s)
            status = 504
        else:
            status = int(fault.kind)
            retry_after = plan.retry_after_s
        await _send_fault(send, status, retry_after, fault.kind)


async def _send_fault(send: Any, status: int, retry_after: float | None, kind: str) -> None:
    body = json.dumps({"error": "injected fault", "kind": kind, "status": status}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if retry_after is not None:
        headers.append((b"retry-after", f"{retry_after:g}".encode()))
    try:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except OSError:  # the client gave up waiting (a timeout fault): nothing to answer
        return


# --- introspection ------------------------------------------------------------------------------------


class Introspectable(Protocol):
    def stats(self) -> dict[str, Any]: ...

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]: ...

    def config_json(self) -> dict[str, Any]: ...

    def patch_config(self, changes: Mapping[str, Any]) -> None: ...

    def reset(self) -> None: ...

    def advance(self, seconds: float) -> None: ...


def introspection_routes(sim: Introspectable, prefix: str = "/_sim") -> list[Route]:
    """The JSON `/_sim/` endpoints over a simulator's state object."""

    injector = faults_of(sim)

    async def stats(request: Request) -> Response:
        return JSONResponse({**sim.stats(), "injected": injector.stats()})

    async def orders(request: Request) -> Response:
        return JSONResponse(sim.list_orders(request.query_params))

    async def config(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise TypeError("a JSON object of knobs is expected")
                injector.configure(changes)  # takes the `faults` / `down` knobs out
                if changes:
                    sim.patch_config(changes)
            except (ValueError, TypeError, ValidationError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse({**sim.config_json(), **injector.as_json()})

    async def reset(request: Request) -> Response:
        sim.reset()
        injector.reset()
        return JSONResponse({"ok": True})

    async def advance(request: Request) -> Response:
        try:
            sim.advance(float((await request.json())["seconds"]))
        except (ValueError, TypeError, KeyError) as exc:
            return JSONResponse({"error": f"expected {{'seconds': number}}: {exc}"}, status_code=422)
        return JSONResponse({"ok": True})

    return [
        Route(f"{prefix}/stats", stats, methods=["GET"]),
        Route(f"{prefix}/orders", orders, methods=["GET"]),
        Route(f"{prefix}/config", config, methods=["GET", "POST"]),
        Route(f"{prefix}/reset", reset, methods=["POST"]),
        Route(f"{prefix}/advance", advance, methods=["POST"]),
    ]


class SimAdmin:
    """Talks to a simulator's `/_sim/` endpoints (tests and benches only; never the provider protocol)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/_sim", timeout=timeout, verify=_tls())

    def _json(self, response: httpx.Response) -> Any:
        response.raise_for_status()
        return response.json()

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._http.get("/stats"))
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._http.get("/config"))
        return result

    def configure(self, **knobs: Any) -> dict[str, Any]:
        result: dict[str, Any] = self._json(self._http.post("/config", json=knobs))
        return result

    def reset(self) -> None:
        self._json(self._http.post("/reset"))

    def advance(self, seconds: float) -> None:
        self._json(self._http.post("/advance", json={"seconds": seconds}))

    def orders(self, **filters: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json(self._http.get("/orders", params=filters))
        return result

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> SimAdmin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
