"""OngageClient / AsyncOngageClient against the Ongage simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

import phoneops.core.http as kit
from phoneops.core.http import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
    RateLimiter,
    RetryPolicy,
)
from phoneops.ongage.client import (
    AsyncOngageClient,
    ContactResult,
    OngageAuthError,
    OngageClient,
    OngageError,
    ongage_rate_limiter,
)
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.ongage import DEFAULT_ACCOUNT_CODE, DEFAULT_LIST_ID, DEFAULT_PASSWORD, DEFAULT_USERNAME

FAST = RetryPolicy(attempts=3, total_timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)
UNLIMITED = RateLimiter(rate=10_000, burst=1_000)  # Ongage's pace is tested on its own, without sleeping


def ongage(url: str, *, password: str = DEFAULT_PASSWORD, **kw: Any) -> OngageClient:
    options: dict[str, Any] = {"timeout": 5.0, "retry": FAST, "rate_limiter": UNLIMITED, **kw}
    return OngageClient(url, DEFAULT_LIST_ID, DEFAULT_USERNAME, password, DEFAULT_ACCOUNT_CODE, **options)


def contacts(count: int, prefix: str = "+4477009") -> list[dict[str, Any]]:
    return [
        {"email": f"{prefix}{n:05d}@yourmobile.com", "fields": {"mobile": f"{prefix}{n:05d}", "country": "GB"}}
        for n in range(count)
    ]


# --- per-contact results -----------------------------------------------------------------------------


def test_upsert_creates_then_updates(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    batch = contacts(3)
    with ongage(ongage_sim_url) as client:
        first = client.upsert_contacts(batch)
        second = client.upsert_contacts([{**batch[0], "fields": {"mobile": "changed"}}])
        stored = client.get_contact(batch[0]["email"])
        missing = client.get_contact("nobody@yourmobile.com")
    assert [r.email for r in first] == [c["email"] for c in batch]
    assert all(r.ok and r.outcome == "created" and r.error is None for r in first)
    assert all(r.contact_id and len(r.contact_id) == 24 for r in first)
    assert second == [ContactResult(batch[0]["email"], True, None, "updated", first[0].contact_id)]
    assert stored is not None and stored["mobile"] == "changed" and stored["id"] == first[0].contact_id
    assert missing is None
    assert ongage_sim.stats()["total_contacts_stored"] == 3


def test_partial_failure_marks_only_the_failed_contacts(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    batch = contacts(10)
    rejected = {batch[2]["email"], batch[5]["email"], batch[9]["email"]}
    ongage_sim.configure(fail_emails=sorted(rejected), fail_reason="Blocked domain")
    with ongage(ongage_sim_url) as client:
        results = client.upsert_contacts(batch)
    assert {r.email for r in results if not r.ok} == rejected
    assert all(r.error == "Blocked domain" and r.outcome == "failed" for r in results if not r.ok)
    assert sum(r.ok for r in results) == 7
    stats = ongage_sim.stats()
    assert stats["partial_failures"] == 1 and stats["total_contacts_stored"] == 7
    assert stats["calls"] == {"upsert": 1}  # a 412 is an answer: not retried


def test_three_percent_rejected_in_a_batch_of_500(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    ongage_sim.configure(fail_fraction=0.03)
    with ongage(ongage_sim_url) as client:
        results = client.upsert_contacts(contacts(500))
    failed = [r for r in results if not r.ok]
    assert 5 < len(failed) < 30
    assert len(failed) == ongage_sim.stats()["failed_contacts"]
    stored = {c["email"] for c in ongage_sim.orders()}
    assert stored == {r.email for r in results if r.ok}


def test_contacts_without_email_are_not_sent(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    with ongage(ongage_sim_url) as client:
        results = client.upsert_contacts([{"fields": {"mobile": "1"}}, {"email": "  "}, *contacts(1)])
        nothing = client.upsert_contacts([{"email": None}])
    assert [(r.ok, r.outcome) for r in results] == [(False, "not_sent"), (False, "not_sent"), (True, "created")]
    assert nothing == [ContactResult("", False, "missing email", "not_sent")]
    assert ongage_sim.stats()["contacts_received"] == 1 and ongage_sim.stats()["calls"] == {"upsert": 1}


def test_batch_larger_than_the_limit_is_refused_before_sending(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    with ongage(ongage_sim_url, max_batch=5) as client, pytest.raises(ValueError, match="at most 5"):
        client.upsert_contacts(contacts(6))
    assert ongage_sim.stats()["calls"] == {}


def test_overwrite_false_reports_existing_contacts(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    with ongage(ongage_sim_url) as client:
        client.upsert_contacts(contacts(1))
        (again,) = client.upsert_contacts(contacts(1), overwrite=False)
    assert not again.ok and again.error == "Email already exists"


def test_request_shape() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = {"metadata": {"error": False}, "payload": {"rows": 1, "success": 1, "failed": 0, "created": 0,
                "created_emails": [], "updated": 0, "updated_emails": [], "failed_emails": []}}
        return httpx.Response(200, json=body)

    client = OngageClient("http://ongage.test", "list 7", "user", "pass-word-9", "acc1",
                          transport=httpx.MockTransport(handler))
    with client:
        (result,) = client.upsert_contacts([{"email": "A@x.com", "name": "flat form"}])
    assert result == ContactResult("A@x.com", True, None, "accepted")  # not named, but nothing failed
    request = seen[0]
    assert request.url.raw_path == b"/list%207/api/v2/contacts/"
    assert request.headers["X_USERNAME"] == "user" and request.headers["X_PASSWORD"] == "pass-word-9"
    assert request.headers["X_ACCOUNT_CODE"] == "acc1"
    assert json.loads(request.content) == [{"email": "A@x.com", "name": "flat form", "overwrite": True}]


def test_412_without_per_contact_detail_is_an_error() -> None:
    body = {"metadata": {"error": True}, "payload": {"code": 412, "message": "Invalid list fields"}}
    transport = httpx.MockTransport(lambda request: httpx.Response(412, json=body))
    client = OngageClient("http://ongage.test", "1", "u", "p", "a", transport=transport)
    with client, pytest.raises(OngageError) as info:
        client.upsert_contacts(contacts(2))
    assert info.value.status == 412 and "Invalid list fields" in str(info.value) and info.value.maybe_sent


# --- errors, retries, secrets ------------------------------------------------------------------------


def test_wrong_password_is_an_auth_error_without_the_password(
    ongage_sim: SimAdmin, ongage_sim_url: str, logs: list[dict[str, Any]]
) -> None:
    secret = "wrong-password-8c7b6a5d"
    with ongage(ongage_sim_url, password=secret) as client, pytest.raises(OngageAuthError) as info:
        client.upsert_contacts(contacts(2))
    assert isinstance(info.value, ProviderAuthError) and info.value.status == 401
    assert ongage_sim.stats()["calls"] == {"upsert": 1}  # refused credentials are not retried
    for text in (str(info.value), repr(info.value), repr(client), str(info.value.details)):
        assert secret not in text
    assert logs and all(secret not in str(event) for event in logs)


def test_password_never_logged(ongage_sim: SimAdmin, ongage_sim_url: str, logs: list[dict[str, Any]]) -> None:
    ongage_sim.configure(fail_emails=[contacts(2)[1]["email"]], fail_next=1)
    with ongage(ongage_sim_url) as client:
        client.upsert_contacts(contacts(2))  # a 500, then a 412 partial failure
        client.get_contact("nobody@yourmobile.com")  # a 404
    events = {e["event"] for e in logs}
    assert {"provider.request", "ongage.upsert"} <= events
    assert all(DEFAULT_PASSWORD not in str(event) for event in logs)


def test_unknown_list_is_an_error(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    client = OngageClient(ongage_sim_url, "999", DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_ACCOUNT_CODE, retry=FAST)
    with client, pytest.raises(OngageError) as info:
        client.upsert_contacts(contacts(1))
    assert info.value.status == 404 and "List 999 not found" in str(info.value)


def test_upsert_is_retried_and_a_repeat_stores_nothing_twice(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    """The answer of the first call is lost after the contacts were stored: the retry updates them."""
    ongage_sim.configure(fail_next=1, fault_after_commit=True)
    with ongage(ongage_sim_url) as client:
        results = client.upsert_contacts(contacts(4))
    assert all(r.ok and r.outcome == "updated" for r in results)
    stats = ongage_sim.stats()
    assert stats["calls"] == {"upsert": 2} and stats["total_contacts_stored"] == 4


def test_retries_are_bounded(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    ongage_sim.configure(fail_next=50)
    with ongage(ongage_sim_url) as client, pytest.raises(ProviderUnavailable):
        client.upsert_contacts(contacts(1))
    assert ongage_sim.stats()["calls"] == {"upsert": FAST.attempts}


def test_without_overwrite_the_call_is_sent_once(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    ongage_sim.configure(fail_next=1)
    with ongage(ongage_sim_url) as client, pytest.raises(ProviderUnavailable) as info:
        client.upsert_contacts(contacts(1), overwrite=False)
    assert info.value.maybe_sent
    assert ongage_sim.stats()["calls"] == {"upsert": 1}


def test_rate_limited_by_ongage_then_recovers(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    ongage_sim.configure(calls_per_minute=2)
    with ongage(ongage_sim_url) as client:
        client.upsert_contacts(contacts(1, "+1"))
        client.upsert_contacts(contacts(1, "+2"))
        with pytest.raises(ProviderRateLimited):
            client.upsert_contacts(contacts(1, "+3"))
        assert ongage_sim.stats()["rate_limited"] == FAST.attempts
        ongage_sim.advance(61)
        assert client.upsert_contacts(contacts(1, "+3"))[0].ok


# --- Ongage's limits ---------------------------------------------------------------------------------


def test_async_client_never_exceeds_ten_in_flight(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    rejected = contacts(5, "+7")[3]["email"]
    ongage_sim.configure(latency_ms=30, fail_emails=[rejected])

    async def run() -> list[list[ContactResult]]:
        async with AsyncOngageClient(ongage_sim_url, DEFAULT_LIST_ID, DEFAULT_USERNAME, DEFAULT_PASSWORD,
                                     DEFAULT_ACCOUNT_CODE, retry=FAST, rate_limiter=UNLIMITED) as client:
            return await asyncio.gather(*(client.upsert_contacts(contacts(5, f"+{n}")) for n in range(40)))

    batches = asyncio.run(run())
    assert [r.email for batch in batches for r in batch if not r.ok] == [rejected]  # batch 7 was a 412
    stats = ongage_sim.stats()
    assert stats["max_in_flight"] == 10  # parallel up to the cap, never beyond
    assert stats["too_many_parallel"] == 0 and stats["total_contacts_stored"] == 199


def test_sync_client_shared_by_threads_never_exceeds_ten_in_flight(ongage_sim: SimAdmin, ongage_sim_url: str) -> None:
    ongage_sim.configure(latency_ms=30)
    with ongage(ongage_sim_url) as client, ThreadPoolExecutor(max_workers=25) as pool:
        batches = list(pool.map(lambda n: client.upsert_contacts(contacts(2, f"+{n}")), range(50)))
    assert all(r.ok for batch in batches for r in batch)
    assert ongage_sim.stats()["max_in_flight"] == 10 and ongage_sim.stats()["too_many_parallel"] == 0


def test_default_pace_keeps_any_minute_within_300_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [0.0]
    monkeypatch.setattr(kit.time, "sleep", lambda seconds: now.__setitem__(0, now[0] + seconds))
    limiter = ongage_rate_limiter(clock=lambda: now[0])  # a simulated clock: sleeping advances it
    starts = []
    for _ in range(900):
        limiter.acquire()
        starts.append(now[0])
    busiest = max(sum(1 for t in starts if s <= t < s + 60) for s in starts)
    assert 290 <= busiest <= 300
    assert starts[-1] < 190  # and not much slower than that: 900 calls in about three minutes
