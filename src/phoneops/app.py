"""FastAPI factory: mounts the core, every domain's router and pages, errors, health and metrics."""

from __future__ import annotations

import importlib.resources
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import DataError, OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from phoneops import __version__
from phoneops.core import db, idempotency
from phoneops.core.deps import LoginRequired, page_viewer, viewer
from phoneops.core.errors import AppError, ServiceBusy, ValidationFailed
from phoneops.core.idempotency import IdempotencyMiddleware
from phoneops.core.logging import configure_logging, register_settings_secrets, scrub, scrub_value
from phoneops.core.security import Principal
from phoneops.registry import domain_modules, load_domains
from phoneops.settings import Settings, get_settings

log = structlog.get_logger("phoneops.http")


def _error(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status)


def _wants_html(request: Request) -> bool:
    return not request.url.path.startswith("/api") and "text/html" in request.headers.get("accept", "")


class EmptyQueryIsUnset:
    """ASGI middleware: a query parameter sent empty (`?date_from=`, what a browser sends for an empty form
    field) is treated as not sent, on every page and API route, so it takes its default instead of failing
    validation."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            raw: bytes = scope["query_string"]
            kept = b"&".join(p for p in raw.split(b"&") if p and not (p.endswith(b"=") and p.count(b"=") == 1))
            if kept != raw:
                scope = {**scope, "query_string": kept}
        await self.app(scope, receive, send)


def _describe(details: list[dict[str, Any]]) -> str:
    parts = []
    for d in details:
        loc = [str(part) for part in d["loc"] if part not in ("query", "body", "path", "form")]
        parts.append(f"{'.'.join(loc) or 'request'}: {d['msg']}")
    return "; ".join(parts)


def html_validation_error(request: Request, details: list[dict[str, Any]]) -> Response:
    """A page never answers raw JSON for a bad value: the form is shown again with the message.

    GET: back to the same page without the fields that were not valid (the others kept), the message as a
    flash. POST: back to the page the form was on (same site only), with the message. Otherwise (a bad path
    value) the error page, with the navigation.
    """
    from urllib.parse import urlencode, urlparse

    from phoneops.ui.flash import flash
    from phoneops.ui.render import error_page

    message = "Not a valid value — " + _describe(details)
    if request.method == "GET" and all(d["loc"] and d["loc"][0] == "query" for d in details):
        bad = {str(d["loc"][1]) for d in details if len(d["loc"]) > 1}
        kept = [(k, v) for k, v in request.query_params.multi_items() if k not in bad]
        if len(kept) < len(request.query_params.multi_items()):
            target = request.url.path + (f"?{urlencode(kept)}" if kept else "")
            return flash(RedirectResponse(target, status_code=303), message, "error")
    if request.method == "POST":
        referer = urlparse(request.headers.get("referer", ""))
        if referer.netloc == request.url.netloc and referer.path and referer.path != request.url.path:
            target = referer.path + (f"?{referer.query}" if referer.query else "")
            return flash(RedirectResponse(target, status_code=303), message, "error")
    return error_page(request, 422, message)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)

    @app.exception_handler(AppError)
    async def app_error(request: Request, exc: AppError) -> Response:
        response: Response
        if _wants_html(request) and exc.status_code in (403, 404, 409, 413, 422, 429, 503):
            from phoneops.ui.render import error_page

            response = error_page(request, exc.status_code, exc.message)
        else:
            response = _error(exc.status_code, exc.code, scrub(exc.message), scrub_value(exc.details))
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return response

    @app.exception_handler(OverflowError)
    @app.exception_handler(DataError)
    async def out_of_range(request: Request, exc: Exception) -> Response:
        # A value the database cannot hold (an id beyond its integer range, a NUL in text on PostgreSQL ...):
        # bad input, refused like any other; the request's transaction is rolled back by get_db.
        log.warning("http.out_of_range", path=request.url.path, error=type(exc).__name__)
        return await app_error(request, ValidationFailed("a value is out of range or cannot be stored"))

    @app.exception_handler(OperationalError)
    async def database_busy(request: Request, exc: OperationalError) -> Response:
        text_ = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        if "locked" in text_ or "busy" in text_:  # SQLite: another writer held the database past the timeout
            log.warning("http.database_busy", path=request.url.path)
            return await app_error(request, ServiceBusy("the database is busy; retry in a moment", retry_after=2))
        return await unexpected(request, exc)

    @app.exception_handler(SQLAlchemyTimeoutError)
    async def pool_timeout(request: Request, exc: SQLAlchemyTimeoutError) -> Response:
        log.warning("http.pool_timeout", path=request.url.path)
        return await app_error(request, ServiceBusy("the server is busy; retry in a moment", retry_after=1))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        details = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
            for e in exc.errors()
        ]
        if _wants_html(request):
            return html_validation_error(request, details)
        return _error(422, "validation_error", "request is not valid", details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        if _wants_html(request) and exc.status_code == 404:
            from phoneops.ui.render import error_page

            return error_page(request, 404, "page not found")
        return _error(exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("http.unhandled", path=request.url.path)
        return _error(500, "internal_error", "internal error; it has been logged")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_json, settings.log_level)
    register_settings_secrets(settings)
    db.configure(settings.database_url)
    load_domains()

    app = FastAPI(
        title="phoneops",
        version=__version__,
        description="Phone-number audience hygiene and IMEI device checks.",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    install_error_handlers(app)
    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(EmptyQueryIsUnset)

    @app.middleware("http")
    async def request_context(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        try:
            response = await call_next(request)
        finally:
            structlog.contextvars.unbind_contextvars("request_id")
        response.headers["X-Request-ID"] = request_id
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        log.info(
            "http.request", method=request.method, path=request.url.path, status=response.status_code,
            elapsed_ms=round((time.perf_counter() - started) * 1000, 1), request_id=request_id,
        )
        return response

    @app.get("/health", tags=["core"])
    async def health() -> JSONResponse:
        """Database and job queue, answered within a second (its own threads and connection, never queued
        behind requests: core.load)."""
        from phoneops.core.load import health_checks

        checks = await health_checks()
        providers = {name: ("configured" if ok else "not configured") for name, ok in settings.providers().items()}
        ok = bool(checks["database"]["ok"] and checks["jobs"]["ok"])
        if ok and "backend" not in checks["database"]:
            checks["database"]["backend"] = db.get_engine().dialect.name
        return JSONResponse(
            {"status": "ok" if ok else "degraded", "version": __version__, **checks, "providers": providers},
            status_code=200 if ok else 503,
        )

    @app.get("/metrics", tags=["core"], include_in_schema=False)
    def metrics(_: Principal = Depends(viewer)) -> Response:
        from phoneops.core.metrics import render_metrics

        body, content_type = render_metrics([module.collect for module in domain_modules("metrics")])
        return Response(body, media_type=content_type)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: Principal = Depends(viewer)) -> JSONResponse:
        return JSONResponse(app.openapi())

    plain_openapi = app.openapi

    def openapi_with_idempotency() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = idempotency.document(plain_openapi())
        return app.openapi_schema

    app.openapi = openapi_with_idempotency  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    def docs(_: Principal = Depends(page_viewer)) -> HTMLResponse:
        # Swagger UI 5 (renders OpenAPI 3.1) from the fastapi-offline package: no CDN, nothing vendored here.
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="phoneops API",
            swagger_js_url="/static/swagger/swagger-ui-bundle.js",
            swagger_css_url="/static/swagger/swagger-ui.css",
            swagger_favicon_url="/static/favicon.svg",
            swagger_ui_parameters={"persistAuthorization": False, "tryItOutEnabled": False},
        )

    swagger_ui_path = str(importlib.resources.files("fastapi_offline") / "static")

    from phoneops.core.router import router as core_router
    from phoneops.ui.render import STATIC_DIR
    from phoneops.ui.views import add_dashboard_cards
    from phoneops.ui.views import router as ui_router

    app.mount("/static/swagger", StaticFiles(directory=swagger_ui_path), name="swagger")
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(core_router)
    for module in domain_modules("router"):
        app.include_router(module.router)
    app.include_router(ui_router)
    for module in domain_modules("views"):
        app.include_router(module.router)
    add_dashboard_cards(app, [module.dashboard_cards for module in domain_modules("views")
                              if hasattr(module, "dashboard_cards")])
    from phoneops.core.load import InflightLimit, default_limit

    # outermost: a request refused for load costs nothing but this answer
    app.add_middleware(InflightLimit,
                       limit=settings.api_max_inflight or default_limit(db.pool_capacity(settings.database_url)),
                       wait=settings.api_queue_seconds)
    return app
