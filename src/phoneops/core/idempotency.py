"""Idempotency keys: a client that retries a POST after a timeout never gets the work done twice.

Every state-changing API request (POST, PUT, PATCH, DELETE under `/api`) may carry an `Idempotency-Key`
header. The key is kept per caller (per API token, or per user for a browser session) in the database, so
it holds across API processes:

- the first request with a key runs; a successful answer (status < 400) is kept with the key;
- the same key with the same request (method, path, query and body) replays the kept answer, status and
  body, with `Idempotent-Replayed: true`, without doing the work again;
- while the first request is still running, the same key answers 409 `idempotency_in_progress`;
- the same key with a different request answers 422 `idempotency_key_reused`;
- an answer of 400 or more is not kept: a failed request rolls its transaction back, so a retry with the
  same key runs it again;
- a first request that never finished (its process died) is never re-run automatically, since it may have
  done its work: the key answers 409 `idempotency_outcome_unknown` until it expires.

Keys live `IDEMPOTENCY_KEY_HOURS` hours (default 24). See docs/api.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import anyio
import structlog
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from phoneops.core.db import session_scope, utcnow
from phoneops.core.models import IdempotencyKey
from phoneops.core.security import SESSION_COOKIE, SessionCodec
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.idempotency")

HEADER = "idempotency-key"
METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,200}$")  # visible ASCII, as the IETF draft's examples use
MAX_KEPT_BODY = 4 * 1024 * 1024  # an answer larger than this is not replayed (see `_finish`)
SPOOL_IN_MEMORY = 8 * 1024 * 1024  # request bodies past this go to a temporary file while hashed
STALE_AFTER = timedelta(minutes=15)  # a first request still "running" after this has died with its process
PURGE_EVERY_SECONDS = 600.0

_last_purge = 0.0


@dataclass(frozen=True)
class _Kept:
    status: int
    content_type: str
    body: bytes


def _scope_of(headers: dict[str, str]) -> str | None:
    """Whose key space this request uses: the API token's hash, or the session's user id."""
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return "t:" + hashlib.sha256(auth[7:].strip().encode()).hexdigest()[:40]
    cookie = _cookie(headers.get("cookie", ""), SESSION_COOKIE)
    if cookie:
        settings = get_settings()
        data = SessionCodec(settings.session_secret.get_secret_value(), settings.session_max_age_seconds).read(cookie)
        if data is not None:
            return f"u:{int(data['uid'])}"
    return None  # anonymous: the route refuses it anyway; nothing to keep


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


def _error(status: int, code: str, message: str) -> _Kept:
    """An answer in the API's JSON error shape."""
    return _Kept(status, "application/json", json.dumps({"error": {"code": code, "message": message}}).encode())


async def _send_kept(send: Send, kept: _Kept, *, replayed: bool, retry_after: int | None = None) -> None:
    headers = [(b"content-type", kept.content_type.encode()), (b"content-length", str(len(kept.body)).encode())]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": kept.status, "headers": headers})
    await send({"type": "http.response.body", "body": kept.body})


def _claim(scope_key: str, key: str, fingerprint: str) -> tuple[str, Any]:
    """Insert the key as running, or say what an existing row means. Runs in a worker thread."""
    now = utcnow()
    hours = get_settings().idempotency_key_hours
    for _ in range(2):
        try:
            with session_scope() as session:
                session.add(IdempotencyKey(
                    scope=scope_key, key=key, request_hash=fingerprint, status="running",
                    created_at=now, expires_at=now + timedelta(hours=hours),
                ))
            return "run", None
        except IntegrityError:
            pass
        with session_scope() as session:
            row = session.scalar(
                select(IdempotencyKey).where(IdempotencyKey.scope == scope_key, IdempotencyKey.key == key)
            )
            if row is None:
                continue  # deleted (released or expired) between the two statements: claim again
            if row.expires_at <= now:
                session.delete(row)
                continue
            if row.request_hash != fingerprint:
                return "mismatch", None
            if row.status == "done":
                return "replay", _Kept(row.response_status or 200, row.content_type or "application/json",
                                       row.response_body or b"")
            if now - row.created_at > STALE_AFTER:
                return "unknown", None
            return "running", None
    return "running", None


def _finish(scope_key: str, key: str, status: int, content_type: str, body: bytes | None) -> None:
    """Keep a successful answer with its key; release the key when the request failed (nothing was done)."""
    with session_scope() as session:
        row = session.scalar(select(IdempotencyKey).where(IdempotencyKey.scope == scope_key, IdempotencyKey.key == key))
        if row is None:
            return
        if status >= 400:
            session.delete(row)
            return
        row.status = "done"
        row.response_status = status
        row.content_type = content_type
        row.response_body = body
        row.finished_at = utcnow()


def _release(scope_key: str, key: str) -> None:
    with session_scope() as session:
        session.execute(delete(IdempotencyKey).where(IdempotencyKey.scope == scope_key, IdempotencyKey.key == key))


def purge_expired() -> int:
    """Delete expired keys; returns how many. Called now and then by the middleware itself."""
    with session_scope() as session:
        result = session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
        return int(getattr(result, "rowcount", 0) or 0)


def _maybe_purge() -> None:
    global _last_purge
    now = time.monotonic()
    if now - _last_purge < PURGE_EVERY_SECONDS:
        return
    _last_purge = now
    try:
        removed = purge_expired()
    except Exception:  # a purge that fails must never fail the request; the next one tries again
        log.warning("idempotency.purge_failed", exc_info=True)
        return
    if removed:
        log.info("idempotency.purged", removed=removed)


def _normalised_content_type(value: str) -> tuple[str, bytes | None]:
    """The content type without a multipart boundary, and the boundary (a client draws a new one per try)."""
    media, _, params = value.partition(";")
    boundary = None
    for param in params.split(";"):
        name, _, raw = param.strip().partition("=")
        if name.lower() == "boundary" and raw:
            boundary = raw.strip('"').encode()
    return media.strip().lower(), boundary


class IdempotencyMiddleware:
    """Pure ASGI middleware (request bodies and answers stream through untouched when no key is given)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        key = headers.get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        if not KEY_PATTERN.match(key):
            await _send_kept(send, _error(422, "idempotency_key_invalid",
                                          "Idempotency-Key must be 1-200 visible ASCII characters"), replayed=False)
            return
        scope_key = _scope_of(headers)
        if scope_key is None:
            await self.app(scope, receive, send)
            return

        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - closed in finally
        try:
            fingerprint = await self._read_body(scope, headers, receive, spool)
            state, kept = await anyio.to_thread.run_sync(_claim, scope_key, key, fingerprint)
            if state == "mismatch":
                await _send_kept(send, _error(422, "idempotency_key_reused",
                                              "this Idempotency-Key was used for a different request"), replayed=False)
                return
            if state == "replay":
                await _send_kept(send, kept, replayed=True)
                return
            if state == "running":
                await _send_kept(send, _error(409, "idempotency_in_progress",
                                              "a request with this Idempotency-Key is still running; retry later"),
                                 replayed=False, retry_after=1)
                return
            if state == "unknown":
                await _send_kept(send, _error(409, "idempotency_outcome_unknown",
                                              "the first request with this Idempotency-Key never finished; it may have "
                                              "done its work: check before retrying with a new key"), replayed=False)
                return
            await self._run(scope, receive, spool, send, scope_key, key)
        finally:
            spool.close()
        await anyio.to_thread.run_sync(_maybe_purge)

    async def _read_body(self, scope: Scope, headers: dict[str, str], receive: Receive, spool: Any) -> str:
        media, boundary = _normalised_content_type(headers.get("content-type", ""))
        digest = hashlib.sha256()
        query = "&".join(sorted(scope.get("query_string", b"").decode("latin-1").split("&")))
        digest.update(f"{scope['method']}\0{scope['path']}\0{query}\0{media}\0".encode())
        body = hashlib.sha256()
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            spool.write(chunk)
            chunks.append(chunk) if boundary else body.update(chunk)
            if not message.get("more_body", False):
                break
        if boundary:  # hash the body with the per-try boundary taken out (it may straddle chunks)
            body.update(b"".join(chunks).replace(boundary, b"<boundary>"))
        digest.update(body.digest())
        spool.seek(0)
        return digest.hexdigest()

    async def _run(self, scope: Scope, receive: Receive, spool: Any, send: Send, scope_key: str, key: str) -> None:
        done = False

        async def replay_body() -> Message:
            nonlocal done
            if done:
                return await receive()  # after the body, the client's own channel (a disconnect, when it comes)
            chunk = spool.read(64 * 1024)
            more = len(chunk) == 64 * 1024
            done = not more
            return {"type": "http.request", "body": chunk, "more_body": more}

        status = 500
        content_type = "application/json"
        captured: list[bytes] = []
        size = 0

        async def capture(message: Message) -> None:
            nonlocal status, content_type, size
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
                if size <= MAX_KEPT_BODY:
                    captured.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(_release, scope_key, key)
            raise
        body = b"".join(captured) if size <= MAX_KEPT_BODY else None
        if body is None and status < 400:
            # kept as done without a body: a replay says the work was done once rather than doing it again
            body = json.dumps({"error": {"code": "idempotency_answer_not_kept",
                                         "message": "the first answer was too large to keep; the work was done once"}}
                              ).encode()
            status, content_type = 409, "application/json"
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_finish, scope_key, key, status, content_type, body)


def document(openapi: dict[str, Any]) -> dict[str, Any]:
    """Add the optional `Idempotency-Key` header to every state-changing `/api` operation of a schema."""
    parameter = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "Retry-safe requests: the same key with the same request replays the first successful answer "
            "without doing the work again (409 while the first is still running, 422 when the key was used "
            "for a different request). Kept per API token or user for IDEMPOTENCY_KEY_HOURS (default 24)."
        ),
        "schema": {"type": "string", "minLength": 1, "maxLength": 200},
    }
    for path, operations in openapi.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for method, operation in operations.items():
            if method.upper() in METHODS and isinstance(operation, dict):
                params = operation.setdefault("parameters", [])
                if not any(p.get("name") == "Idempotency-Key" for p in params if isinstance(p, dict)):
                    params.append(parameter)
    return openapi
