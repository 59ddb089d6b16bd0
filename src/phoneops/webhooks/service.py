"""Webhook endpoints and deliveries: register, record events, sign, deliver once, resend (docs/api.md).

A delivery is a row first (in the transaction of the event) and a job second: it is sent from the job queue,
never from a request thread, retried with a growing delay for `RETRY_WINDOW`, every attempt recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import httpx
import structlog
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.http import tls_context
from phoneops.core.jobs import RetryLater, create_job
from phoneops.core.security import SYSTEM, Principal
from phoneops.settings import get_settings
from phoneops.webhooks.models import WebhookAttempt, WebhookDelivery, WebhookEndpoint

DELIVER_KIND = "webhooks.deliver"
EVENTS: tuple[str, ...] = (
    "job.finished", "job.failed", "batch.paused", "budget.reached", "review.needed", "import.applied",
    "import.undone", "ping",
)
SIGNATURE_HEADER = "Phoneops-Signature"
RETRY_WINDOW = timedelta(hours=24)
RETRY_FIRST_SECONDS = 10.0  # then doubling, at most RETRY_MAX_SECONDS
RETRY_MAX_SECONDS = 3600.0
TIMEOUT_SECONDS = 10.0
MIN_SECRET = 16
log = structlog.get_logger(__name__)


# --- secrets at rest ---------------------------------------------------------------------------


def _key() -> bytes:
    secret = get_settings().session_secret.get_secret_value().encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"phoneops.webhooks.secret").derive(secret)


def _seal(secret: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_key()).encrypt(nonce, secret.encode(), b"webhook")


def _unseal(sealed: bytes) -> str:
    return AESGCM(_key()).decrypt(sealed[:12], sealed[12:], b"webhook").decode()


# --- signing ------------------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`, as Stripe-style receivers verify it."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: str, header: str, body: bytes, *, tolerance_seconds: int = 300, now: float | None = None) -> bool:
    """What a receiver does (docs/api.md shows the same in a few lines): check the MAC and the timestamp's age."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((now if now is not None else time.time()) - timestamp) > tolerance_seconds:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


# --- endpoints ---------------------------------------------------------------------------------


def register(session: Session, actor: Principal, url: str, secret: str, events: list[str]) -> WebhookEndpoint:
    url = url.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname or len(url) > 500:
        raise ValidationFailed("the URL must be an http(s) address with a host, at most 500 characters")
    if len(secret) < MIN_SECRET:
        raise ValidationFailed(f"the secret must have at least {MIN_SECRET} characters")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown or not events:
        raise ValidationFailed(f"events must be one or more of: {', '.join(EVENTS)}"
                               + (f" (unknown: {', '.join(unknown)})" if unknown else ""))
    endpoint = WebhookEndpoint(url=url, secret_sealed=_seal(secret), events=[e for e in EVENTS if e in events],
                               created_by=actor.username)
    session.add(endpoint)
    session.flush()
    audit(session, actor, "webhook.register", "webhook", endpoint.id, {"url": url, "events": endpoint.events})
    return endpoint


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def set_active(session: Session, actor: Principal, endpoint_id: int, active: bool) -> WebhookEndpoint:
    endpoint = get_endpoint(session, endpoint_id)
    endpoint.active = active
    audit(session, actor, "webhook.enable" if active else "webhook.disable", "webhook", endpoint.id, {})
    return endpoint


def remove(session: Session, actor: Principal, endpoint_id: int) -> None:
    """Delete an endpoint with its deliveries and their attempts (pending ones are never sent)."""
    endpoint = get_endpoint(session, endpoint_id)
    ids = select(WebhookDelivery.id).where(WebhookDelivery.endpoint_id == endpoint_id)
    session.execute(delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(ids)))
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    audit(session, actor, "webhook.remove", "webhook", endpoint.id, {"url": endpoint.url})
    session.delete(endpoint)
    session.flush()


# --- deliveries --------------------------------------------------------------------------------


def _enqueue(session: Session, endpoint: WebhookEndpoint, event: str, payload: dict[str, Any]) -> WebhookDelivery:
    delivery = WebhookDelivery(endpoint_id=endpoint.id, event=event, payload=payload)
    session.add(delivery)
    session.flush()
    job = create_job(session, SYSTEM, DELIVER_KIND, {"delivery_id": delivery.id},
                     title=f"webhook {event} → {urlparse(endpoint.url).hostname}")
    delivery.job_id = job.id
    return delivery


def emit(session: Session, event: str, payload: dict[str, Any]) -> list[WebhookDelivery]:
    """Record `event` for every active endpoint that listens to it; each is sent by its own job."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event!r}")
    endpoints = [e for e in list_endpoints(session) if e.active and event in e.events]
    return [_enqueue(session, endpoint, event, payload) for endpoint in endpoints]


def notify(session: Session, event: str, payload: dict[str, Any]) -> None:
    """What a domain calls in its own transaction: `emit` inside a savepoint, so recording the event can never
    fail or block the work that caused it (a failure is logged and the event lost; the work stands)."""
    try:
        with session.begin_nested():
            emit(session, event, payload)
    except Exception:
        log.exception("webhooks.emit_failed", event=event)


def send_test(session: Session, actor: Principal, endpoint_id: int) -> WebhookDelivery:
    endpoint = get_endpoint(session, endpoint_id)
    audit(session, actor, "webhook.test", "webhook", endpoint.id, {})
    return _enqueue(session, endpoint, "ping", {"message": "a test delivery from phoneops", "by": actor.username})


def resend(session: Session, actor: Principal, delivery_id: int) -> WebhookDelivery:
    """A new delivery of the same event and payload (the old one keeps its history)."""
    old = get_delivery(session, delivery_id)
    endpoint = get_endpoint(session, old.endpoint_id)
    delivery = _enqueue(session, endpoint, old.event, dict(old.payload))
    audit(session, actor, "webhook.resend", "webhook_delivery", old.id, {"new_delivery": delivery.id})
    return delivery


def get_delivery(session: Session, delivery_id: int) -> WebhookDelivery:
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return delivery


def list_deliveries(session: Session, endpoint_id: int | None = None, limit: int = 100) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).order_by(WebhookDelivery.id.desc()).limit(limit)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    return list(session.scalars(query))


def delivery_count(session: Session, endpoint_id: int) -> int:
    return int(session.scalar(select(func.count()).select_from(WebhookDelivery)
                              .where(WebhookDelivery.endpoint_id == endpoint_id)) or 0)


def attempts_of(session: Session, delivery_id: int) -> list[WebhookAttempt]:
    return list(session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id == delivery_id).order_by(WebhookAttempt.id)
    ))


def body_of(delivery: WebhookDelivery) -> bytes:
    return json.dumps({"id": delivery.id, "event": delivery.event, "created_at": delivery.created_at.isoformat(),
                       "data": delivery.payload}, separators=(",", ":"), sort_keys=True).encode()


def retry_delay(attempts: int) -> float:
    return float(min(RETRY_FIRST_SECONDS * 2.0 ** max(attempts - 1, 0), RETRY_MAX_SECONDS))


def deliver(delivery_id: int) -> str:
    """One attempt (called by the delivery job). Returns the final status, or raises RetryLater to wait."""
    with session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            return "removed"  # its endpoint was removed while it waited
        if delivery.status != "pending":
            return delivery.status
        endpoint = get_endpoint(session, delivery.endpoint_id)
        url, secret, body = endpoint.url, _unseal(endpoint.secret_sealed), body_of(delivery)
        event, created_at, active = delivery.event, delivery.created_at, endpoint.active
    status_code: int | None = None
    error: str | None = None
    started = time.monotonic()
    if not active:
        error = "endpoint disabled"
    else:
        headers = {"Content-Type": "application/json", "User-Agent": "phoneops-webhooks",
                   SIGNATURE_HEADER: sign(secret, int(time.time()), body), "Phoneops-Event": event,
                   "Phoneops-Delivery": str(delivery_id)}
        try:
            response = httpx.post(url, content=body, headers=headers, timeout=TIMEOUT_SECONDS, follow_redirects=False,
                                  verify=tls_context())  # the process's TLS context, not a new one per delivery
            status_code = response.status_code
            if not 200 <= status_code < 300:
                error = f"answered HTTP {status_code}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
    ok = error is None
    now = utcnow()
    with session_scope() as session:
        found = session.get(WebhookDelivery, delivery_id)
        if found is None:
            return "removed"
        delivery = found
        session.add(WebhookAttempt(delivery_id=delivery_id, at=now, status_code=status_code, error=error,
                                   elapsed_ms=int((time.monotonic() - started) * 1000)))
        delivery.attempts += 1
        delivery.last_status_code, delivery.last_error = status_code, error
        if ok:
            delivery.status, delivery.delivered_at = "delivered", now
            return "delivered"
        if not active or now - created_at >= RETRY_WINDOW:
            delivery.status = "failed"
            return "failed"
        attempts = delivery.attempts
    raise RetryLater(f"webhook receiver: {error}", retry_delay(attempts))
