"""MessageWhizClient against the MessageWhiz simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from phoneops.broadcasts.client import (
    Broadcast,
    MessageWhizAuthError,
    MessageWhizClient,
    MessageWhizError,
    MessageWhizPagingLimit,
)
from phoneops.core.http import ProviderAuthError, ProviderResponseError, ProviderUnavailable, RetryPolicy
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY

FAST = RetryPolicy(attempts=3, total_timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)
DAY = date(2024, 3, 13)  # the middle seeded day (see conftest.ANCHOR)
CAMPAIGN = "0b5d6a9e-1c2f-4e3a-9d8b-7f6e5d4c3b2a"
# The broadcast captured from the live API (shared/providers/messagewhiz.md), verbatim.
DOC_BROADCAST: dict[str, Any] = {
    "id": 395000001, "user_id": 200, "name": "IT_demo_list_chunk#7.csv", "type": 11,
    "message_body": "Your bonus is ready {{link:6800001}}", "enabled": 1, "trigger_id": None,
    "send_date": "2026-01-16T23:45:00.000Z", "state": 4, "parent_id": None,
    "real_price": 98.01, "estimated_price": 98.01, "create_date": "2026-01-16T21:19:10.000Z",
    "estimated_count": 27, "recipient_count": 27, "utc_offset": None, "next_segment_size": None, "eb_type": None,
    "company_name": "Demo LLC", "timezone": None, "send_now": False, "updated_at": None,
    "created_at": "2026-01-16T21:19:10.000Z", "created_by": "api+1@1.mmd", "updated_by": None,
    "department_id": 101, "department": {"id": 101, "name": "Team"},
    "dlr": {"broadcast_id": 395000001, "sent_count": 2, "delivered_count": 25, "undelivered_count": 0,
            "rejected_count": 0, "expired_count": 0, "failed_count": 0, "read_count": 0, "no_balance_count": None},
    "broadcastConversion": {"uniqueClicks": 9, "totalClicks": 11, "recipientCount": 217,
                            "conversion": "4.15", "broadcastId": 395000001, "segmented": True},
}


def mw(url: str, key: str = DEFAULT_API_KEY, **kw: Any) -> MessageWhizClient:
    return MessageWhizClient(url, key, timeout=5.0, retry=FAST, **kw)


def load(
    url: str, *, broadcasts: list[dict[str, Any]] | None = None, links: list[dict[str, Any]] | None = None
) -> None:
    """Replace the simulator's data with these broadcasts and links."""
    data = {"broadcasts": broadcasts or [], "links": links or [], "replace": True}
    response = httpx.post(f"{url}/_sim/data", json=data)
    response.raise_for_status()


def numbered(count: int) -> list[dict[str, Any]]:
    """`count` broadcasts one minute apart on DAY, ids 1..count."""
    return [{"id": n, "name": f"b{n}", "send_date": f"{DAY}T10:{n:02d}:00.000Z"} for n in range(1, count + 1)]


# --- the day import ------------------------------------------------------------------------------------


def test_broadcasts_for_day_is_exactly_that_day_newest_first(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    expected = [b["id"] for b in mw_sim.orders(day=DAY.isoformat())]
    assert len(expected) == 12
    with mw(mw_sim_url, page_size=5) as client:
        got = client.broadcasts_for_day(DAY)
    assert [b.id for b in got] == expected
    assert all(b.send_date is not None and b.send_date.date() == DAY for b in got)
    assert [b.send_date for b in got] == sorted((b.send_date for b in got if b.send_date), reverse=True)
    # 36 broadcasts over 3 days, newest first: the day ends inside page 6, so the older day is never paged through
    assert mw_sim.stats()["calls"]["broadcasts"] < 36 / 5


def test_seeded_day_has_chunks_prices_counts_and_links(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    with mw(mw_sim_url) as client:
        days = [client.broadcasts_for_day(date(2024, 3, d)) for d in (12, 13, 14)]
        links = {link.id: link for link in client.links()}
    broadcasts = [b for day in days for b in day]
    assert any("_chunk#" in b.name for b in broadcasts)
    assert any(b.link_id is None for b in broadcasts)  # kept by the import with a note, not a failure
    chunked = [b for b in broadcasts if "_chunk#" in b.name]
    assert all(b.group_name == b.name.split("_chunk")[0] for b in chunked)
    for b in broadcasts:
        assert b.estimated_price_cents is not None and b.recipient_count
        assert b.estimated_price == b.estimated_price_cents / 100
        assert Decimal("0.02") < b.estimated_price / b.recipient_count < Decimal("0.05")  # 2-5 cents an SMS
        if b.state == 4:
            assert b.delivered_count and b.unique_clicks is not None and b.ctr is not None
            assert b.total_clicks is not None and b.total_clicks >= b.unique_clicks
    linked = [links[b.link_id] for b in broadcasts if b.link_id is not None]  # every link id resolves
    assert sum(link.campaign_id is not None for link in linked) > len(linked) / 2


def test_fields_of_the_documented_broadcast(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    load(mw_sim_url, broadcasts=[DOC_BROADCAST])
    with mw(mw_sim_url) as client:
        (b,) = client.broadcasts(since=datetime(2026, 1, 16, tzinfo=UTC), until=datetime(2026, 1, 17, tzinfo=UTC))
    assert b == Broadcast(
        id=395000001, name="IT_demo_list_chunk#7.csv", send_date=datetime(2026, 1, 16, 23, 45, tzinfo=UTC), state=4,
        message_body="Your bonus is ready {{link:6800001}}", link_ids=(6800001,), price_cents=Decimal("98.01"),
        estimated_price_cents=Decimal("98.01"), recipient_count=27, estimated_count=27, delivered_count=25,
        sent_count=2, undelivered_count=0, rejected_count=0, expired_count=0, failed_count=0, unique_clicks=9,
        total_clicks=11, ctr=Decimal("4.15"), created_at=datetime(2026, 1, 16, 21, 19, 10, tzinfo=UTC), raw={},
    )
    assert b.price == Decimal("0.9801") and b.estimated_price == Decimal("0.9801")
    assert b.link_id == 6800001 and b.status == "completed" and b.counts_for_cost
    assert b.group_name == "IT_demo_list"
    assert b.raw == DOC_BROADCAST


def test_missing_sections_are_none_not_zero(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    load(mw_sim_url, broadcasts=[{"id": 1, "name": "plain.csv", "state": 2, "message_body": "no link here",
                                  "dlr": None, "broadcastConversion": None, "real_price": "12.5"}])
    with mw(mw_sim_url) as client:
        (b,) = client.broadcasts()
    assert b.delivered_count is None and b.unique_clicks is None and b.ctr is None
    assert b.link_id is None and b.link_ids == ()
    assert b.price == Decimal("0.125") and not b.counts_for_cost and b.status == "state 2"
    assert b.group_name == "plain"


def test_links_campaign_ids_and_lookup_stops_early(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    links = [
        {"id": 10 + n, "name": f"l{n}", "url": f"https://trk.example.com/{CAMPAIGN}?Phone={{recipient.phone}}"}
        for n in range(9)
    ] + [{"id": 9, "name": "static", "url": "https://www.example.com/promo?x=1"}]
    load(mw_sim_url, links=links)
    with mw(mw_sim_url, page_size=3) as client:
        found = client.links_by_id([18, 17, 404])  # 404 is unknown: every page is read
        calls_unknown = mw_sim.stats()["calls"]["links"]
        by_id = client.links_by_id([18])  # newest first: on the first page
        every = client.links()
    assert set(found) == {17, 18} and set(by_id) == {18}
    assert calls_unknown == 4  # 3 + 3 + 3 + 1 (the short page ends it)
    assert mw_sim.stats()["calls"]["links"] == calls_unknown + 1 + 4
    assert found[18].campaign_id == CAMPAIGN
    assert found[18].target_url == f"https://trk.example.com/{CAMPAIGN}"
    static = next(link for link in every if link.id == 9)
    assert static.campaign_id is None and static.target_url == "https://www.example.com/promo"


def test_senders(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    with mw(mw_sim_url) as client:
        senders = client.senders()
    assert [s.name for s in senders] == ["Promo", "Offers", "Info"]
    assert all(s.enabled for s in senders)


# --- paging ends -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("count", "calls"), [(10, 3), (7, 2), (0, 1)])
def test_paging_ends_on_short_or_empty_page(mw_sim: SimAdmin, mw_sim_url: str, count: int, calls: int) -> None:
    load(mw_sim_url, broadcasts=numbered(count))
    with mw(mw_sim_url, page_size=5) as client:
        assert [b.id for b in client.broadcasts()] == list(range(count, 0, -1))
    assert mw_sim.stats()["calls"]["broadcasts"] == calls


def test_paging_hard_cap_raises_instead_of_truncating(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    load(mw_sim_url, broadcasts=numbered(20))
    with mw(mw_sim_url, page_size=5, max_pages=2) as client, pytest.raises(MessageWhizPagingLimit) as info:
        client.broadcasts()
    assert isinstance(info.value, MessageWhizError)
    assert mw_sim.stats()["calls"]["broadcasts"] == 2


def test_window_ends_at_first_older_broadcast(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    load(mw_sim_url, broadcasts=numbered(30))
    since = datetime(DAY.year, DAY.month, DAY.day, 10, 27, tzinfo=UTC)
    until = datetime(DAY.year, DAY.month, DAY.day, 10, 29, tzinfo=UTC)
    with mw(mw_sim_url, page_size=5) as client:
        assert [b.id for b in client.broadcasts(since, until)] == [28, 27]
    assert mw_sim.stats()["calls"]["broadcasts"] == 1  # ids 30..26 on page 1, 25 is older: done


def test_items_repeated_across_pages_are_yielded_once() -> None:
    """The list grows at its head while we page: item 3 reappears at the top of page 2."""
    pages = {0: [{"id": 5}, {"id": 4}, {"id": 3}], 3: [{"id": 3}, {"id": 2}, {"id": 1}], 6: []}

    def handler(request: httpx.Request) -> httpx.Response:
        page = pages[int(request.url.params["start"])]
        return httpx.Response(200, json={"errorCode": 0, "errorMessage": "", "errorType": "", "result": page})

    with MessageWhizClient("http://mw.test", "k" * 16, transport=httpx.MockTransport(handler), page_size=3) as client:
        assert [b.id for b in client.broadcasts()] == [5, 4, 3, 2, 1]


# --- errors, retries, secrets ------------------------------------------------------------------------


def test_envelope_error_is_typed_and_not_retried(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    mw_sim.configure(envelope_error_next=1, envelope_error_code=1001, envelope_error_message="Bad date range")
    with mw(mw_sim_url) as client, pytest.raises(MessageWhizError) as info:
        client.broadcasts()
    assert not isinstance(info.value, MessageWhizAuthError)
    assert info.value.error_code == 1001 and info.value.error_type == "ApiError"
    assert "Bad date range" in str(info.value)
    assert mw_sim.stats()["calls"]["broadcasts"] == 1


def test_envelope_error_about_the_key_is_an_auth_error(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    mw_sim.configure(envelope_error_next=1, envelope_error_code=401, envelope_error_message="Invalid apikey")
    with mw(mw_sim_url) as client, pytest.raises(MessageWhizAuthError):
        client.links()


def test_wrong_key_is_an_auth_error_without_the_key(
    mw_sim: SimAdmin, mw_sim_url: str, logs: list[dict[str, Any]]
) -> None:
    secret = "wrong-key-5f1e2d3c4b5a"
    with mw(mw_sim_url, key=secret) as client, pytest.raises(MessageWhizAuthError) as info:
        client.broadcasts_for_day(DAY)
    assert isinstance(info.value, ProviderAuthError) and info.value.status == 401
    assert mw_sim.stats()["calls"]["broadcasts"] == 1  # a refused key is not retried
    assert mw_sim.stats()["auth_failures"] == 1
    for text in (str(info.value), repr(info.value), repr(client), str(info.value.details)):
        assert secret not in text
    assert logs and all(secret not in str(event) for event in logs)


def test_key_echoed_by_the_provider_is_scrubbed(mw_sim: SimAdmin, mw_sim_url: str, logs: list[dict[str, Any]]) -> None:
    mw_sim.configure(envelope_error_next=1, envelope_error_message=f"quota exceeded for {DEFAULT_API_KEY}")
    with mw(mw_sim_url) as client, pytest.raises(MessageWhizError) as info:
        client.broadcasts()
    assert "quota exceeded for ***" in str(info.value)
    assert DEFAULT_API_KEY not in str(info.value)
    assert any(e["event"] == "messagewhiz.error" for e in logs)
    assert all(DEFAULT_API_KEY not in str(event) for event in logs)


def test_reads_are_retried_then_succeed(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    mw_sim.configure(fail_next=2, fail_status=503)
    with mw(mw_sim_url) as client:
        assert len(client.broadcasts_for_day(DAY)) == 12
    assert mw_sim.stats()["faults"] == 2


def test_rate_limited_read_is_retried(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    mw_sim.configure(fail_next=1, fail_status=429, retry_after_s=0.01)
    with mw(mw_sim_url) as client:
        assert len(client.senders()) == 3
    assert mw_sim.stats()["calls"]["senders"] == 2


def test_retries_are_bounded(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    mw_sim.configure(fail_next=50, fail_status=502)
    with mw(mw_sim_url) as client, pytest.raises(ProviderUnavailable) as info:
        client.broadcasts()
    assert info.value.status == 502
    assert mw_sim.stats()["calls"]["broadcasts"] == FAST.attempts


def test_concurrency_cap_holds_across_threads(mw_sim: SimAdmin, mw_sim_url: str) -> None:
    mw_sim.configure(latency_ms=40)
    results: list[int] = []
    with mw(mw_sim_url, concurrency=2) as client:
        threads = [threading.Thread(target=lambda: results.append(len(client.senders()))) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [3] * 8
    assert mw_sim.stats()["max_in_flight"] == 2


def test_unreadable_answer_is_a_response_error() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>maintenance</html>"))
    with (
        MessageWhizClient("http://mw.test", "k" * 16, transport=transport) as client,
        pytest.raises(ProviderResponseError),
    ):
        client.links()


def test_constructor_refuses_missing_key() -> None:
    with pytest.raises(ValueError, match="api_key"):
        MessageWhizClient("http://mw.test", "")
