"""Every paid call, manual sync, order refresh and login is audited with who acted, what, on what and how it
ended (docs/operations.md, "The audit log"). Each entry point is driven as a person or script would (the API,
the CLI, the login form) against the provider simulators over real HTTP; then its audit line is read back
through /api/audit and the admin's audit page.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from stdnum import luhn
from typer.testing import CliRunner

from phoneops.settings import reset_settings_cache
from phoneops.simulators._server import serve_in_thread
from support import login, login_form

OPERATIONS_DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"


def imei(serial: int) -> str:
    body = f"35661100{serial:06d}"
    return body + luhn.calc_check_digit(body)


@dataclass
class Env:
    client: Any
    users: Any
    stack: ExitStack
    monkeypatch: pytest.MonkeyPatch
    db_url: str

    def use(self, values: dict[str, str], drop: tuple[str, ...] = ()) -> None:
        for name in drop:
            self.monkeypatch.delenv(name, raising=False)
        for name, value in values.items():
            self.monkeypatch.setenv(name, value)
        reset_settings_cache()

    def serve(self, app: Any) -> str:
        return str(self.stack.enter_context(serve_in_thread(app)))

    def ok(self, response: Any, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        body: dict[str, Any] = response.json()
        return body


@dataclass
class Expected:
    actor: str
    action: str
    target_type: str | None
    target_id: str | None
    outcome: str
    detail: dict[str, Any] | None = None  # keys whose values must match too
    check: Callable[[dict[str, Any]], bool] | None = None  # and this holds for the detail


# --- the providers ---------------------------------------------------------------------------------------


def gsm(env: Env) -> None:
    from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER, GsmFusionSimConfig, create_app

    url = env.serve(create_app(GsmFusionSimConfig(pending_seconds=60, in_process_seconds=120, reject_ratio=0.0)))
    env.use({"GSM_FUSION_BASE_URL": url, "GSM_FUSION_USERNAME": DEFAULT_USER, "GSM_FUSION_API_KEY": DEFAULT_API_KEY})


def dhru(env: Env) -> None:
    from phoneops.simulators.dhru import DEFAULT_API_KEY, DEFAULT_USER, DhruSimConfig, create_app

    url = env.serve(create_app(DhruSimConfig(reject_ratio=0.0)))
    env.use({"DHRU_ACCOUNTS": json.dumps([{"name": "alpha", "base_url": url, "username": DEFAULT_USER,
                                           "api_key": DEFAULT_API_KEY}])}, drop=("GSM_FUSION_USERNAME",))


def hlr(env: Env) -> None:
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM
    from phoneops.hlr import risky
    from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET, HlrSimConfig, create_app

    url = env.serve(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0)))
    env.use({"HLR_BASE_URL": url, "HLR_BATCH_BASE_URL": url, "HLR_API_KEY": DEFAULT_API_KEY,
             "HLR_API_SECRET": DEFAULT_API_SECRET, "HLR_POLL_EVERY_SECONDS": "0.02", "HLR_POLL_MAX_SECONDS": "20"})
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)


# --- the entry points ------------------------------------------------------------------------------------


def imei_order(service: str, setup: Callable[[Env], None]) -> Callable[[Env], Expected]:
    def act(env: Env) -> Expected:
        setup(env)
        op = env.users.headers("operator")
        batch = env.ok(env.client.post("/api/imei/orders", headers=op, json={"imei": imei(1), "service_id": service}),
                       202)
        order = env.ok(env.client.get("/api/imei/orders", params={"imei": imei(1)}, headers=op), 200)["items"][0]
        assert order["state"] == "placed" and order["order_id"]
        return Expected("operator-user", "imei.order.place", "imei_order", str(order["id"]), "placed",
                        {"imei": imei(1), "order_id": order["order_id"], "batch_id": batch["id"]})

    return act


def imei_batch(env: Env) -> Expected:
    gsm(env)
    op = env.users.headers("operator")
    batch = env.ok(env.client.post("/api/imei/batches", headers=op,
                                   json={"imeis": [imei(2), imei(3), "000000000000000"], "service_id": "1739"}), 202)
    cost = Decimal(str(batch["quote"]["cost"]))
    assert cost > 0
    return Expected("operator-user", "imei.batch.run", "imei_batch", str(batch["id"]), "done",
                    {"placed": 2, "run": {"placed": 2, "duplicates_at_provider": 0, "failed": 0, "needs_review": 0}},
                    check=lambda d: Decimal(d["run"]["charged"]) == Decimal(d["spend"]) == cost)


def _placed_order(env: Env) -> dict[str, Any]:
    gsm(env)
    op = env.users.headers("operator")
    env.ok(env.client.post("/api/imei/orders", headers=op, json={"imei": imei(4), "service_id": "1739"}), 202)
    order: dict[str, Any] = env.ok(env.client.get("/api/imei/orders", params={"imei": imei(4)}, headers=op),
                                   200)["items"][0]
    return order


def imei_refresh(env: Env) -> Expected:
    order = _placed_order(env)
    refreshed = env.ok(env.client.post(f"/api/imei/orders/{order['id']}/refresh",
                                       headers=env.users.headers("operator")), 200)
    return Expected("operator-user", "imei.order.refresh", "imei_order", str(order["id"]), "ok",
                    {"status": refreshed["status"], "via": "api"})


def imei_refresh_failed(env: Env) -> Expected:
    order = _placed_order(env)
    env.use({"GSM_FUSION_API_KEY": "BAD0-BAD0-BAD0-BAD0-BAD0"})
    refused = env.client.post(f"/api/imei/orders/{order['id']}/refresh", headers=env.users.headers("operator"))
    assert refused.status_code >= 400, refused.text
    return Expected("operator-user", "imei.order.refresh", "imei_order", str(order["id"]), "failed",
                    {"error": refused.json()["error"]["message"]})


def imei_sync_api(env: Env) -> Expected:
    _placed_order(env)
    job = env.ok(env.client.post("/api/imei/sync", headers=env.users.headers("operator")), 202)
    return Expected("operator-user", "job.end", "job", job["id"], "succeeded",
                    {"kind": "imei.sync", "started_by": "imei.sync", "result": {"checked": 1}})


def imei_sync_cli(env: Env) -> Expected:
    from phoneops.core.logging import configure_logging
    from phoneops.imei.cli import app
    from phoneops.settings import get_settings

    _placed_order(env)
    env.use({"DATABASE_URL": env.db_url})
    result = CliRunner().invoke(app, ["sync"], catch_exceptions=False)
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)  # the runner's captured stderr is closed now
    assert result.exit_code == 0, result.output
    return Expected("cli", "imei.sync", None, None, "ok", {"via": "cli", "checked": 1})


def imei_order_cli(env: Env) -> Expected:
    from phoneops.core.logging import configure_logging
    from phoneops.imei.cli import app
    from phoneops.settings import get_settings

    gsm(env)
    env.use({"DATABASE_URL": env.db_url})
    result = CliRunner().invoke(app, ["submit", imei(5), "--service", "1739"], catch_exceptions=False)
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)  # the runner's captured stderr is closed now
    assert result.exit_code == 0, result.output
    order = env.ok(env.client.get("/api/imei/orders", params={"imei": imei(5)}, headers=env.users.headers("viewer")),
                   200)["items"][0]
    return Expected("cli", "imei.order.place", "imei_order", str(order["id"]), "placed",
                    {"imei": imei(5), "order_id": order["order_id"]})


def hlr_lookup(mode: str) -> Callable[[Env], Expected]:
    def act(env: Env) -> Expected:
        hlr(env)
        op = env.users.headers("operator")
        body = ("msisdn\n" + "".join(f"+447911{n:06d}\n" for n in range(4000, 4006))).encode()
        stored = env.ok(env.client.post("/api/files", files={"file": ("l.csv", body, "text/csv")}, headers=op), 201)
        lookup = env.ok(env.client.post("/api/hlr/lookups", headers=op,
                                        json={"file_id": stored["id"], "phone_column": "msisdn", "mode": mode}), 201)
        return Expected("operator-user", "hlr.lookup_run", "hlr_lookup", str(lookup["id"]), "succeeded",
                        {"mode": mode, "counts": {"done": 6}, "run_credits": "6"})

    return act


def voluum_sync(env: Env) -> Expected:
    from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, VoluumSimConfig, create_app

    url = env.serve(create_app(VoluumSimConfig(rate_limit_per_s=None, retry_after_s=0.0, days=2, visits_per_day=5)))
    env.use({"VOLUUM_BASE_URL": url, "VOLUUM_ACCESS_ID": DEFAULT_ACCESS_ID, "VOLUUM_ACCESS_KEY": DEFAULT_ACCESS_KEY})
    job = env.ok(env.client.post("/api/voluum/traffic/sync", json={"from": "2025-12-31"},
                                 headers=env.users.headers("operator")), 202)
    return Expected("operator-user", "job.end", "job", job["id"], "succeeded",
                    {"kind": "voluum.traffic", "started_by": "voluum.traffic.start"})


def ongage_sync(env: Env) -> Expected:
    from phoneops.simulators.ongage import (
        DEFAULT_ACCOUNT_CODE,
        DEFAULT_LIST_ID,
        DEFAULT_PASSWORD,
        DEFAULT_USERNAME,
        OngageSimConfig,
        create_app,
    )

    url = env.serve(create_app(OngageSimConfig()))
    env.use({"ONGAGE_BASE_URL": url, "ONGAGE_LIST_ID": DEFAULT_LIST_ID, "ONGAGE_USERNAME": DEFAULT_USERNAME,
             "ONGAGE_PASSWORD": DEFAULT_PASSWORD, "ONGAGE_ACCOUNT_CODE": DEFAULT_ACCOUNT_CODE,
             "ONGAGE_COUNTRIES": "GB"})
    job = env.ok(env.client.post("/api/ongage/sync", headers=env.users.headers("operator")), 202)
    return Expected("operator-user", "job.end", "job", job["id"], "succeeded",
                    {"kind": "ongage.conversions", "started_by": "ongage.sync.start"})


def messagewhiz_sync(env: Env) -> Expected:
    from phoneops.simulators.messagewhiz import DEFAULT_API_KEY, MessageWhizSimConfig, create_app

    url = env.serve(create_app(MessageWhizSimConfig(anchor_date="2024-03-14", days=1, broadcasts_per_day=2)))
    env.use({"MESSAGEWHIZ_BASE_URL": url, "MESSAGEWHIZ_API_KEY": DEFAULT_API_KEY})
    job = env.ok(env.client.post("/api/broadcasts/unsubscribers/sync", headers=env.users.headers("operator")), 202)
    return Expected("operator-user", "job.end", "job", job["id"], "succeeded",
                    {"kind": "broadcasts.unsubscribers", "started_by": "broadcasts.unsubscribers.sync"})


def login_success(env: Env) -> Expected:
    env.users.create("viewer", "vera")
    login(env.client, "vera")
    user_id = env.ok(env.client.get("/api/me"), 200)["user_id"]
    return Expected("vera", "login.success", "user", str(user_id), "ok")


def login_failure(env: Env) -> Expected:
    env.users.create("viewer", "vera")
    refused = env.client.post("/login", data={"username": "vera", "password": "wrong-horse-battery",
                                              **login_form(env.client)}, follow_redirects=False)
    assert refused.status_code == 401 and "phoneops_session" not in refused.cookies
    return Expected("vera", "login.failure", "user", None, "refused", {"reason": "unauthorized"})


def logout(env: Env) -> Expected:
    env.users.create("viewer", "vera")
    csrf = login(env.client, "vera")
    user_id = env.ok(env.client.get("/api/me"), 200)["user_id"]
    assert env.client.post("/logout", data={"csrf_token": csrf}, follow_redirects=False).status_code == 303
    assert env.client.get("/api/me").status_code == 401  # the session ended
    return Expected("vera", "logout", "user", str(user_id), "ok")


ENTRY_POINTS: dict[str, Callable[[Env], Expected]] = {
    "imei-single-order-gsm-fusion": imei_order("1739", gsm),
    "imei-single-order-dhru": imei_order("alpha:201", dhru),
    "imei-single-order-cli": imei_order_cli,
    "imei-batch-run": imei_batch,
    "imei-order-refresh": imei_refresh,
    "imei-order-refresh-failed": imei_refresh_failed,
    "imei-sync-api": imei_sync_api,
    "imei-sync-cli": imei_sync_cli,
    "hlr-realtime": hlr_lookup("realtime"),
    "hlr-batch": hlr_lookup("batch"),
    "voluum-traffic-sync": voluum_sync,
    "ongage-sync": ongage_sync,
    "messagewhiz-unsubscribers-sync": messagewhiz_sync,
    "login-success": login_success,
    "login-failure": login_failure,
    "logout": logout,
}


@pytest.fixture
def env(client: Any, users: Any, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with ExitStack() as stack:
        yield Env(client, users, stack, monkeypatch, db_url)
    reset_settings_cache()


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_each_paid_call_sync_and_login_is_audited(entry_point: str, env: Env, inline_jobs: list[str]) -> None:
    expected = ENTRY_POINTS[entry_point](env)
    assert f"`{expected.action}`" in OPERATIONS_DOC.read_text(), "list the action in docs/operations.md"
    env.client.cookies.clear()  # the admin reads the log with a token, whoever was logged in
    admin = env.users.headers("admin")
    events = env.ok(env.client.get("/api/audit", params={"action": expected.action}, headers=admin), 200)
    assert isinstance(events, list)
    mine = [e for e in events if e["target_id"] == expected.target_id and e["actor"] == expected.actor]
    assert len(mine) == 1, (expected, events)
    event = mine[0]
    assert event["target_type"] == expected.target_type
    assert event["detail"]["outcome"] == expected.outcome, event
    for key, value in (expected.detail or {}).items():
        if isinstance(value, dict):
            assert {k: event["detail"][key].get(k) for k in value} == value, event
        else:
            assert event["detail"][key] == value, event
    assert expected.check is None or expected.check(event["detail"]), event
    page = env.client.get("/admin/audit", params={"action": expected.action}, headers=admin)
    assert page.status_code == 200 and f'"outcome": "{expected.outcome}"' in page.text
    assert expected.actor in page.text
