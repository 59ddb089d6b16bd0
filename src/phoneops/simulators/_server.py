"""Serve an ASGI app over real HTTP: in a background thread (tests) or in its own process (benches).

Also the `/_sim/` introspection endpoints every simulator offers (`introspection_routes`) and `SimAdmin`,
their client. They exist for tests and benches only and are never part of a provider's protocol:
`GET stats`, `GET orders?filter=...`, `GET|POST config` (JSON knobs), `POST reset`, `POST advance`
(`{"seconds": n}` moves the simulated clock).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

import httpx
import uvicorn
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

LOCALHOST = "127.0.0.1"
ASGIApp = Callable[..., Any]  # any ASGI application (Starlette, FastAPI, ...)


def _config(app: ASGIApp, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
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


def wait_until_up(base_url: str, timeout: float = 10.0) -> None:
    """Poll `GET {base_url}/_sim/stats` until it answers (for a simulator started in another process)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            httpx.get(f"{base_url}/_sim/stats", timeout=1.0).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Introspectable(Protocol):
    def stats(self) -> dict[str, Any]: ...

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]: ...

    def config_json(self) -> dict[str, Any]: ...

    def patch_config(self, changes: Mapping[str, Any]) -> None: ...

    def reset(self) -> None: ...

    def advance(self, seconds: float) -> None: ...


def introspection_routes(sim: Introspectable, prefix: str = "/_sim") -> list[Route]:
    """The JSON `/_sim/` endpoints over a simulator's state object."""

    async def stats(request: Request) -> Response:
        return JSONResponse(sim.stats())

    async def orders(request: Request) -> Response:
        return JSONResponse(sim.list_orders(request.query_params))

    async def config(request: Request) -> Response:
        if request.method == "POST":
            try:
                changes = await request.json()
                if not isinstance(changes, dict):
                    raise TypeError("a JSON object of knobs is expected")
                sim.patch_config(changes)
            except (ValueError, TypeError, ValidationError) as exc:
                return JSONResponse({"error": str(exc)}, status_code=422)
        return JSONResponse(sim.config_json())

    async def reset(request: Request) -> Response:
        sim.reset()
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
        self._http = httpx.Client(base_url=f"{base_url.rstrip('/')}/_sim", timeout=timeout)

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
