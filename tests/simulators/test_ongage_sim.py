"""The Ongage simulator's wire protocol and knobs, over real HTTP with a plain httpx client."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from phoneops.simulators.__main__ import add_config_arguments, config_from_args
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.ongage import (
    DEFAULT_ACCOUNT_CODE,
    DEFAULT_LIST_ID,
    DEFAULT_PASSWORD,
    DEFAULT_USERNAME,
    OngageSimConfig,
    create_app,
)

AUTH = {"X_USERNAME": DEFAULT_USERNAME, "X_PASSWORD": DEFAULT_PASSWORD, "X_ACCOUNT_CODE": DEFAULT_ACCOUNT_CODE}
PATH = f"/{DEFAULT_LIST_ID}/api/v2/contacts/"
RATE_LIMITED = {
    "metadata": {"error": True},
    "payload": {"code": 429, "errors": [], "message": "Calls per minute exceeded"},
}


@pytest.fixture(scope="module")
def ongage_url() -> Iterator[str]:
    with serve_in_thread(create_app(OngageSimConfig(list_ids=(DEFAULT_LIST_ID, "200002")))) as url:
        yield url


@pytest.fixture
def admin(ongage_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(ongage_url) as sim_admin:
        sim_admin.reset()
        yield sim_admin


@pytest.fixture
def og_http(admin: SimAdmin, ongage_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=ongage_url, timeout=10.0, headers=AUTH) as http:
        yield http


def contact(email: str, **fields: Any) -> dict[str, Any]:
    return {"email": email, "overwrite": True, "fields": fields}


def test_the_three_headers_are_required(og_http: httpx.Client, admin: SimAdmin, ongage_url: str) -> None:
    for missing in AUTH:
        headers = {k: v for k, v in AUTH.items() if k != missing}
        refused = httpx.post(f"{ongage_url}{PATH}", json=[contact("a@b.co")], headers=headers)
        assert refused.status_code == 401 and refused.json()["metadata"]["error"] is True
    wrong = og_http.post(PATH, json=[contact("a@b.co")], headers={"X_PASSWORD": "nope"})
    assert wrong.status_code == 401
    assert admin.stats()["auth_failures"] == 4 and admin.stats()["total_contacts_stored"] == 0


def test_all_created_is_200_with_php_empty_maps(og_http: httpx.Client) -> None:
    answer = og_http.post(PATH, json=[contact("a@b.co", mobile="1"), contact("c@d.co")])
    assert answer.status_code == 200
    body = answer.json()
    assert body["metadata"] == {"error": False}
    payload = body["payload"]
    assert (payload["rows"], payload["success"], payload["failed"], payload["created"]) == (2, 2, 0, 2)
    assert set(payload["created_emails"]) == {"a@b.co", "c@d.co"}
    assert all(re.fullmatch(r"[0-9a-f]{24}", i) for i in payload["created_emails"].values())
    assert payload["updated_emails"] == [] and payload["failed_emails"] == [] and payload["revived_emails"] == []


def test_partial_failure_is_412_and_stores_the_others(og_http: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(fail_emails=["BAD@b.co"])
    answer = og_http.post(PATH, json=[contact("ok@b.co"), contact("bad@b.co"), contact("not-an-email")])
    assert answer.status_code == 412
    body = answer.json()
    assert body["metadata"]["error"] is True
    payload = body["payload"]
    assert payload["code"] == 412 and payload["message"] == "2 contacts out of 3 have failed"
    assert payload["failed_emails"] == {"bad@b.co": "Invalid email address", "not-an-email": "Invalid email address"}
    assert list(payload["created_emails"]) == ["ok@b.co"]
    assert [c["email"] for c in admin.orders()] == ["ok@b.co"]
    assert admin.stats()["partial_failures"] == 1 and admin.stats()["failed_contacts"] == 2


def test_fail_pattern_and_fraction(og_http: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(fail_pattern=r"^\+44", fail_reason="Blocked")
    payload = og_http.post(PATH, json=[contact("+447@x.co"), contact("+337@x.co")]).json()["payload"]
    assert payload["failed_emails"] == {"+447@x.co": "Blocked"}
    admin.configure(fail_pattern="", fail_fraction=0.2)
    emails = [f"user{n}@x.co" for n in range(400)]
    first = og_http.post(PATH, json=[contact(e) for e in emails]).json()["payload"]["failed_emails"]
    again = og_http.post(PATH, json=[contact(e) for e in emails]).json()["payload"]["failed_emails"]
    assert first == again and 50 < len(first) < 110  # the same emails every time, about a fifth


def test_overwrite_updates_and_its_absence_refuses(og_http: httpx.Client, admin: SimAdmin) -> None:
    og_http.post(PATH, json=contact("a@b.co", mobile="1"))  # one object, not an array
    updated = og_http.post(PATH, json=[contact("A@b.co", mobile="2")]).json()["payload"]
    assert list(updated["updated_emails"]) == ["A@b.co"] and updated["created"] == 0
    refused = og_http.post(PATH, json=[{"email": "a@b.co", "fields": {"mobile": "3"}}])
    assert refused.status_code == 412
    assert refused.json()["payload"]["failed_emails"] == {"a@b.co": "Email already exists"}
    found = og_http.get(f"/{DEFAULT_LIST_ID}/api/contacts/by_email/a@b.co").json()["payload"]
    assert found["mobile"] == "2" and found["ocx_status"] == "Active" and len(found["id"]) == 24
    assert og_http.get(f"/{DEFAULT_LIST_ID}/api/contacts/by_email/zz@b.co").status_code == 404


def test_flat_form_and_list_id_precedence(og_http: httpx.Client, admin: SimAdmin) -> None:
    og_http.post("/api/v2/contacts/", json={"email": "body@x.co", "name": "Flat", "list_id": "200002"})
    og_http.post("/api/v2/contacts/?list_id=200002", json=[contact("query@x.co")])
    og_http.post("/api/v2/contacts/", json=[contact("default@x.co")])
    og_http.post("/200002/api/v2/contacts/", json=[contact("route@x.co")])
    by_list = {(c["list_id"], c["email"]) for c in admin.orders()}
    assert by_list == {("200002", "body@x.co"), ("200002", "query@x.co"), (DEFAULT_LIST_ID, "default@x.co"),
                       ("200002", "route@x.co")}
    assert admin.orders(email="body@x.co")[0]["fields"] == {"name": "Flat"}
    missing = og_http.post("/404/api/v2/contacts/", json=[contact("a@b.co")])
    assert missing.status_code == 404 and missing.json()["payload"]["message"] == "List 404 not found"


def test_invalid_bodies_and_batch_limit(og_http: httpx.Client, admin: SimAdmin) -> None:
    assert og_http.post(PATH, json=[]).status_code == 400
    assert og_http.post(PATH, content=b"not json").status_code == 400
    admin.configure(max_batch=3)
    too_many = og_http.post(PATH, json=[contact(f"u{n}@x.co") for n in range(4)])
    assert too_many.status_code == 400 and "max 3" in too_many.json()["payload"]["message"]
    assert admin.stats()["contacts_received"] == 0


def test_calls_per_minute_limit(og_http: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(calls_per_minute=3)
    statuses = [og_http.post(PATH, json=[contact(f"u{n}@x.co")]).status_code for n in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert og_http.post(PATH, json=[contact("late@x.co")]).json() == RATE_LIMITED
    admin.advance(61)
    assert og_http.post(PATH, json=[contact("later@x.co")]).status_code == 200
    assert admin.stats()["rate_limited"] == 2


def test_parallel_limit(admin: SimAdmin, ongage_url: str) -> None:
    admin.configure(max_parallel=2, latency_ms=150)

    def post(n: int) -> int:
        return httpx.post(f"{ongage_url}{PATH}", json=[contact(f"p{n}@x.co")], headers=AUTH, timeout=10).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(post, range(6)))
    stats = admin.stats()
    assert statuses.count(200) >= 2 and statuses.count(429) == stats["too_many_parallel"] >= 1
    assert stats["max_in_flight"] > 2  # the peak counts the calls that were refused
    assert stats["total_contacts_stored"] == statuses.count(200)


def test_faults_before_and_after_commit(og_http: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(fail_next=1, fail_status=503, retry_after_s=1)
    lost = og_http.post(PATH, json=[contact("a@b.co")])
    assert lost.status_code == 503 and lost.headers["Retry-After"] == "1"
    assert admin.stats()["total_contacts_stored"] == 0
    admin.configure(fail_next=1, fault_after_commit=True)
    assert og_http.post(PATH, json=[contact("a@b.co")]).status_code == 503
    assert admin.stats()["total_contacts_stored"] == 1 and admin.stats()["faults"] == 2


def test_stats_orders_reset_and_config(og_http: httpx.Client, admin: SimAdmin) -> None:
    og_http.post(PATH, json=[contact("a@b.co")])
    og_http.post(PATH, json=[contact("a@b.co"), contact("c@b.co")])
    stats = admin.stats()
    assert stats["contacts_stored"] == {DEFAULT_LIST_ID: 2} and stats["contacts_received"] == 3
    assert stats["max_receipts_per_contact"] == 2 and stats["calls"] == {"upsert": 2}
    assert admin.orders(email="a@b.co")[0]["receipts"] == 2
    config = admin.config()
    assert config["password"] == "***" and DEFAULT_PASSWORD not in str(config)
    assert og_http.post("/_sim/config", json={"nope": 1}).status_code == 422
    assert og_http.post("/_sim/config", json={"fail_pattern": "("}).status_code == 422
    admin.reset()
    assert admin.stats()["total_contacts_stored"] == 0 and admin.orders() == []


def test_command_line_knobs() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, OngageSimConfig)
    args = parser.parse_args(["--list-ids", "1", "--list-ids", "2", "--fail-fraction", "0.03",
                              "--calls-per-minute", "60", "--fault-after-commit"])
    config = config_from_args(OngageSimConfig, args)
    assert config.list_ids == ("1", "2") and config.fail_fraction == 0.03
    assert config.calls_per_minute == 60 and config.fault_after_commit and config.max_parallel == 10
