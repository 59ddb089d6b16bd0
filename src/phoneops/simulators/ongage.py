"""Ongage contacts API simulator (docs/providers/ongage.md).

Provider endpoints, behind the three headers `X_USERNAME`, `X_PASSWORD`, `X_ACCOUNT_CODE` (401 otherwise):
`POST /{list_id}/api/v2/contacts/` (also `/api/v2/contacts/` with `list_id` in the body or query, else the
default list; an unknown list is 404) takes one contact object or an array, and answers per contact:
created / updated (with `overwrite: true`) / failed with a reason, HTTP 200 when none failed, else **412** with
`metadata.error` true and `"<n> contacts out of <m> have failed"`; contact ids are 24-hex strings and empty
maps serialise as `[]`, as PHP does. `GET /{list_id}/api/contacts/by_email/{email}` returns one contact.

Knobs (`OngageSimConfig`): credentials and lists; which contacts fail (`fail_emails`, a `fail_pattern` regex,
or a deterministic `fail_fraction` by hash of the email); Ongage's limits, enforced with 429 and its body
(`calls_per_minute` accepted calls in any 60 s, `max_parallel` calls at once); `max_batch`; latency; 5xx
injection (random or the next N calls, optionally after the contacts were stored).

Introspection (tests and benches only) under `/_sim/`: `GET stats` (contacts stored per list, contacts
received, calls, max concurrency seen, 429s, ...), `GET orders` (the stored contacts with how often each was
received; `?email=`, `?list_id=`), `GET|POST config`, `POST reset`, `POST advance` (moves the rate window clock).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import hmac
import random
import re
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from phoneops.simulators._kit import Clock, SimState
from phoneops.simulators._server import introspection_routes

# The simulator's own demo credentials, not real ones.
DEFAULT_USERNAME = "sim-user@example.com"
DEFAULT_PASSWORD = "sim-ongage-password-0001"  # noqa: S105 - the simulator's demo credential
DEFAULT_ACCOUNT_CODE = "simaccount01"
DEFAULT_LIST_ID = "100001"
RATE_WINDOW_S = 60.0
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_RESERVED = ("email", "overwrite", "fields", "list_id")


@dataclass
class OngageSimConfig:
    """Every knob; `POST /_sim/config` changes them at runtime (`fail_next` counts down as it fires)."""

    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    account_code: str = DEFAULT_ACCOUNT_CODE
    list_ids: tuple[str, ...] = (DEFAULT_LIST_ID,)
    default_list_id: str = DEFAULT_LIST_ID  # the account's default list, for calls that name none
    unsubscribed_emails: tuple[str, ...] = ()  # these contacts read back unsubscribed (`ocx_unsubscribe_date` set)
    fail_emails: tuple[str, ...] = ()  # these contacts fail (case-insensitive) ...
    fail_pattern: str = ""  # ... and those whose email matches this regex (re.search) ...
    fail_fraction: float = 0.0  # ... and this share of all emails, chosen by hash (the same ones every time)
    fail_reason: str = "Invalid email address"
    calls_per_minute: int = 300  # accepted calls in any 60 s; beyond: 429 (0: no limit)
    max_parallel: int = 10  # calls at once; beyond: 429 (0: no limit)
    max_batch: int = 500  # contacts per call; beyond: 400
    latency_ms: float = 0.0
    error_rate: float = 0.0  # share of calls answered `error_status`
    error_status: int = 500
    fail_next: int = 0  # the next N upserts are answered `fail_status`
    fail_status: int = 500
    fault_after_commit: bool = False  # True: a faulted upsert stores its contacts, then the answer is lost
    retry_after_s: float | None = None  # Retry-After on 429 and fault answers


_CONFIG = TypeAdapter(OngageSimConfig)


def error_body(code: int, message: str) -> dict[str, Any]:
    return {"metadata": {"error": True}, "payload": {"code": code, "errors": [], "message": message}}


def contact_id(list_id: str, email: str) -> str:
    return hashlib.sha256(f"{list_id}:{email.lower()}".encode()).hexdigest()[:24]


@dataclass
class _Contact:
    id: str
    email: str
    fields: dict[str, Any]
    created: int


class OngageSim(SimState[OngageSimConfig]):
    """State and behaviour; every access goes through one lock (`SimState`)."""

    adapter = _CONFIG

    def start(self) -> None:
        self.contacts: dict[str, dict[str, _Contact]] = {}
        self.receipts: Counter[tuple[str, str]] = Counter()
        self.window: collections.deque[float] = collections.deque()
        self.in_flight = 0
        self.rng = random.Random(0)

    def now(self) -> float:
        return self.clock() + self.offset

    # --- introspection (/_sim/) ------------------------------------------------------------------

    def patch_config(self, changes: Mapping[str, Any]) -> None:
        with self.lock:
            config = self.changed(changes)
            try:
                re.compile(config.fail_pattern)
            except re.error as exc:
                raise ValueError(f"fail_pattern: {exc}") from None
            self.config = config

    def config_json(self) -> dict[str, Any]:
        data: dict[str, Any] = _CONFIG.dump_python(self.config, mode="json")
        data["password"] = "***"  # noqa: S105 - a mask, not a password
        return data

    def stats(self) -> dict[str, Any]:
        with self.lock:
            return {
                "contacts_stored": {list_id: len(stored) for list_id, stored in self.contacts.items()},
                "total_contacts_stored": sum(len(stored) for stored in self.contacts.values()),
                "contacts_received": sum(self.receipts.values()),
                "max_receipts_per_contact": max(self.receipts.values(), default=0),
                "calls": dict(self.calls),
                "in_flight": self.in_flight,
                **{key: self.counters[key] for key in ("max_in_flight", "rate_limited", "too_many_parallel",
                                                       "partial_failures", "failed_contacts", "faults",
                                                       "auth_failures")},
            }

    def list_orders(self, filters: Mapping[str, str]) -> list[dict[str, Any]]:
        email, wanted = filters.get("email", "").lower(), filters.get("list_id")
        with self.lock:
            return [
                {"list_id": list_id, "email": c.email, "id": c.id, "fields": c.fields,
                 "receipts": self.receipts[(list_id, key)]}
                for list_id, stored in self.contacts.items() if wanted in (None, list_id)
                for key, c in stored.items() if email in ("", key)
            ]

    # --- traffic control -------------------------------------------------------------------------

    def admit(self, key: str) -> str | None:
        """Count the call; the reason to refuse it with 429, if any (it then holds no slot)."""
        with self.lock:
            cfg = self.config
            self.calls[key] += 1
            self.in_flight += 1
            self.counters["max_in_flight"] = max(self.counters["max_in_flight"], self.in_flight)
            if cfg.max_parallel and self.in_flight > cfg.max_parallel:
                self.counters["too_many_parallel"] += 1
                self.in_flight -= 1
                return "Too many parallel calls"
            now = self.now()
            while self.window and self.window[0] <= now - RATE_WINDOW_S:
                self.window.popleft()
            if cfg.calls_per_minute and len(self.window) >= cfg.calls_per_minute:
                self.counters["rate_limited"] += 1
                self.in_flight -= 1
                return "Calls per minute exceeded"
            self.window.append(now)
            return None

    def leave(self) -> None:
        with self.lock:
            self.in_flight -= 1

    def authorised(self, headers: Mapping[str, str]) -> bool:
        cfg = self.config
        expected = {"x_username": cfg.username, "x_password": cfg.password, "x_account_code": cfg.account_code}
        ok = all(hmac.compare_digest(headers.get(k, "").encode(), v.encode()) for k, v in expected.items())
        if not ok:
            with self.lock:
                self.counters["auth_failures"] += 1
        return ok

    def fault(self) -> int | None:
        with self.lock:
            cfg = self.config
            status: int | None = None
            if cfg.fail_next > 0:
                self.config = dataclasses.replace(cfg, fail_next=cfg.fail_next - 1)
                status = cfg.fail_status
            elif self.rng.random() < cfg.error_rate:
                status = cfg.error_status
            self.counters["faults"] += status is not None
            return status

    # --- the provider protocol -------------------------------------------------------------------

    def _failure(self, email: str) -> str | None:
        cfg = self.config
        key = email.lower()
        if not _EMAIL.match(email):
            return "Invalid email address"
        listed = key in {e.strip().lower() for e in cfg.fail_emails}
        if listed or (cfg.fail_pattern and re.search(cfg.fail_pattern, email)):
            return cfg.fail_reason
        share = int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") / 2**32
        return cfg.fail_reason if share < cfg.fail_fraction else None

    def upsert(self, list_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """Create or update contacts; (HTTP status, answer)."""
        items = [body] if isinstance(body, dict) else body
        if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
            return 400, error_body(400, "Invalid data: a contact object or a non-empty array of them is expected")
        with self.lock:
            if len(items) > self.config.max_batch:
                return 400, error_body(400, f"Too many contacts in one call (max {self.config.max_batch})")
            stored = self.contacts.setdefault(list_id, {})
            created: dict[str, str] = {}
            updated: dict[str, str] = {}
            failed: dict[str, str] = {}
            for item in items:
                email = str(item.get("email") or "").strip()
                key = email.lower()
                self.receipts[(list_id, key)] += 1
                reason = self._failure(email)
                given = item.get("fields")  # else the flat form: every other key is a field
                fields = dict(given) if isinstance(given, dict) else {k: item[k] for k in item if k not in _RESERVED}
                existing = stored.get(key)
                if reason is None and existing is not None and item.get("overwrite") not in (True, "true", 1):
                    reason = "Email already exists"
                if reason is not None:
                    failed[email] = reason
                elif existing is not None:
                    existing.fields.update(fields)
                    updated[email] = existing.id
                else:
                    stored[key] = _Contact(contact_id(list_id, key), email, fields, int(time.time()))
                    created[email] = stored[key].id
            self.counters["failed_contacts"] += len(failed)
            self.counters["partial_failures"] += bool(failed)
        rows = len(items)
        payload: dict[str, Any] = {
            "rows": rows, "success": rows - len(failed), "failed": len(failed),
            "created": len(created), "created_emails": created or [],
            "updated": len(updated), "updated_emails": updated or [],
            "revived": 0, "revived_emails": [],
            "failed_emails": failed or [],
            "code": 412 if failed else 200,
            "message": f"{len(failed)} contacts out of {rows} have failed" if failed else f"{rows} contacts processed",
        }
        return (412 if failed else 200), {"metadata": {"error": bool(failed)}, "payload": payload}

    def contact(self, list_id: str, email: str) -> dict[str, Any] | None:
        with self.lock:
            found = self.contacts.get(list_id, {}).get(email.strip().lower())
            if found is None:
                return None
            gone = found.email.lower() in {e.lower() for e in self.config.unsubscribed_emails}
            return {"email": found.email, **found.fields, "id": found.id,
                    "ocx_status": "Unsubscribed" if gone else "Active", "ocx_created_date": found.created,
                    "ocx_unsubscribe_date": found.created + 3600 if gone else None}


# --- the ASGI app ------------------------------------------------------------------------------------


def create_app(config: OngageSimConfig | None = None, *, clock: Clock = time.monotonic) -> Starlette:
    """The simulator as a Starlette app; its state is `app.state.sim` (an `OngageSim`)."""
    sim = OngageSim(config or OngageSimConfig(), clock)

    def refuse(status: int, message: str) -> JSONResponse:
        retry_after = sim.config.retry_after_s
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None and status >= 429 else None
        return JSONResponse(error_body(status, message), status_code=status, headers=headers)

    def list_id_of(request: Request, body: Any) -> str:
        in_body = body.get("list_id") if isinstance(body, dict) else None
        return str(in_body or request.query_params.get("list_id") or request.path_params.get("list_id")
                   or sim.config.default_list_id)

    async def handle(request: Request, key: str) -> Response:
        refusal = sim.admit(key)
        if refusal is not None:
            return refuse(429, refusal)
        try:
            await sim.delay()
            if not sim.authorised(request.headers):
                return refuse(401, "Unauthorized: wrong username, password or account code")
            body: Any = None
            if request.method == "POST":
                try:
                    body = await request.json()
                except ValueError:
                    return refuse(400, "Invalid data: the body is not JSON")
            list_id = list_id_of(request, body)
            if list_id not in sim.config.list_ids:
                return refuse(404, f"List {list_id} not found")
            if key == "get_contact":
                found = sim.contact(list_id, request.path_params["email"])
                if found is None:
                    return refuse(404, "Contact not found")
                return JSONResponse({"metadata": {"error": False}, "payload": found})
            fault = sim.fault()
            if fault is not None and not sim.config.fault_after_commit:
                return refuse(fault, "General error")
            status, answer = sim.upsert(list_id, body)
            return refuse(fault, "General error") if fault is not None else JSONResponse(answer, status_code=status)
        finally:
            sim.leave()

    async def contacts(request: Request) -> Response:
        return await handle(request, "upsert")

    async def by_email(request: Request) -> Response:
        return await handle(request, "get_contact")

    app = Starlette(
        routes=[
            Route("/api/v2/contacts/", contacts, methods=["POST"]),
            Route("/api/v2/contacts", contacts, methods=["POST"]),
            Route("/api/contacts/by_email/{email}", by_email, methods=["GET"]),
            Route("/{list_id}/api/v2/contacts/", contacts, methods=["POST"]),
            Route("/{list_id}/api/v2/contacts", contacts, methods=["POST"]),
            Route("/{list_id}/api/contacts/by_email/{email}", by_email, methods=["GET"]),
            *introspection_routes(sim),
        ]
    )
    app.state.sim = sim
    return app
