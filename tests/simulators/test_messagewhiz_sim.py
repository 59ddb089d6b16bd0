"""The MessageWhiz simulator's wire protocol and knobs, over real HTTP with a plain httpx client."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import httpx
import pytest

from phoneops.simulators import voluum_data
from phoneops.simulators.__main__ import add_config_arguments, config_from_args
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY, MessageWhizSimConfig, create_app

NOON = datetime(2024, 3, 14, 12, 0, tzinfo=UTC).timestamp()  # the simulator's clock starts here
KEY = {"apikey": DEFAULT_API_KEY}
ENVELOPE = {"errorCode", "errorMessage", "errorType", "executionTime", "result"}
DOC_KEYS = {
    "id", "user_id", "name", "type", "message_body", "enabled", "trigger_id", "send_date", "state", "parent_id",
    "real_price", "estimated_price", "create_date", "estimated_count", "recipient_count", "utc_offset",
    "next_segment_size", "eb_type", "company_name", "timezone", "send_now", "updated_at", "created_at", "created_by",
    "updated_by", "department_id", "department", "dlr", "broadcastConversion",
}


@pytest.fixture(scope="module")
def mw_url() -> Iterator[str]:
    config = MessageWhizSimConfig(anchor_date="2024-03-14", days=2, broadcasts_per_day=10)
    with serve_in_thread(create_app(config, clock=lambda: NOON)) as url:
        yield url


@pytest.fixture
def admin(mw_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(mw_url) as sim_admin:
        sim_admin.reset()
        yield sim_admin


@pytest.fixture
def mw_http(admin: SimAdmin, mw_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mw_url, timeout=10.0) as http:
        yield http


def everything(http: httpx.Client, path: str = "/api/3/Broadcast/List") -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = http.get(path, params={"start": 0, "limit": 1000}, headers=KEY).json()["result"]
    return result


def test_apikey_header_is_required(mw_http: httpx.Client, admin: SimAdmin) -> None:
    for headers in ({}, {"apikey": "not-the-key"}, {"Authorization": DEFAULT_API_KEY}):
        answer = mw_http.get("/api/3/Broadcast/List", headers=headers)
        assert answer.status_code == 401
        assert set(answer.json()) == ENVELOPE and answer.json()["errorCode"] == 401
    ok = mw_http.get("/api/3/Broadcast/List", headers=KEY)
    assert ok.status_code == 200 and set(ok.json()) == ENVELOPE and ok.json()["errorCode"] == 0
    assert admin.stats()["auth_failures"] == 3


def test_broadcasts_have_the_documented_shape(mw_http: httpx.Client) -> None:
    broadcasts = everything(mw_http)
    links = {link["id"]: link for link in everything(mw_http, "/api/3/Link")}
    assert len(broadcasts) == 20
    sent = [b for b in broadcasts if b["dlr"] is not None]
    assert sent and all(b.keys() >= DOC_KEYS for b in broadcasts)
    for b in sent:
        assert set(b["dlr"]) >= {"sent_count", "delivered_count", "undelivered_count", "rejected_count"}
        conversion = b["broadcastConversion"]
        assert re.fullmatch(r"\d+\.\d\d", conversion["conversion"])
        assert conversion["totalClicks"] >= conversion["uniqueClicks"]
        assert (
            sum(b["dlr"][k] for k in ("sent_count", "delivered_count", "undelivered_count", "rejected_count"))
            == (b["recipient_count"])
        )
    for b in broadcasts:  # prices in cents: 3-5 cents a message
        assert 3 * b["recipient_count"] <= b["estimated_price"] <= 5 * b["recipient_count"]
        for link_id in re.findall(r"\{\{link:(\d+)\}\}", b["message_body"]):
            assert int(link_id) in links
    assert any("_chunk#" in b["name"] for b in broadcasts)
    assert any("{{link:" not in b["message_body"] for b in broadcasts)
    dates = [b["send_date"] for b in broadcasts]
    assert dates == sorted(dates, reverse=True)  # newest first


def test_paging_with_start_and_limit(mw_http: httpx.Client, admin: SimAdmin) -> None:
    full = everything(mw_http)
    pages = [
        mw_http.get("/api/3/Broadcast/List", params={"start": s, "limit": 7}, headers=KEY).json()["result"]
        for s in (0, 7, 14, 21)
    ]
    assert [len(p) for p in pages] == [7, 7, 6, 0]
    assert [b["id"] for p in pages for b in p] == [b["id"] for b in full]
    admin.configure(max_limit=5)
    assert len(mw_http.get("/api/3/Broadcast/List", params={"limit": 50}, headers=KEY).json()["result"]) == 5
    bad = mw_http.get("/api/3/Broadcast/List", params={"start": -1}, headers=KEY)
    assert bad.status_code == 400 and bad.json()["errorCode"] == 400


def test_seed_is_reproducible_and_changes_the_data(mw_http: httpx.Client, admin: SimAdmin) -> None:
    first = everything(mw_http)
    admin.reset()
    assert everything(mw_http) == first
    admin.configure(seed=7)
    other = everything(mw_http)
    assert [b["name"] for b in other] != [b["name"] for b in first]


def test_links_point_at_the_voluum_simulators_campaigns(mw_http: httpx.Client, admin: SimAdmin) -> None:
    campaigns = [c["id"] for c in voluum_data.seed_dataset(0, date(2025, 12, 12), 1, 1).campaigns]
    urls = [link["url"] for link in everything(mw_http, "/api/3/Link")]
    in_urls = [m.group(1) for u in urls if (m := re.match(r"https://trk\.example\.com/([0-9a-f-]{36})\?", u))]
    assert sorted(in_urls) == sorted(campaigns)
    assert any("trk.example.com" not in u for u in urls)  # one link leads to no campaign
    admin.configure(campaign_ids=["11111111-2222-4333-8444-555555555555"], tracker_url="https://t.example.org")
    urls = [link["url"] for link in everything(mw_http, "/api/3/Link")]
    assert "https://t.example.org/11111111-2222-4333-8444-555555555555?Phone={recipient.phone}" in urls


def test_counts_grow_after_sending(mw_http: httpx.Client, admin: SimAdmin) -> None:
    pending = [b for b in everything(mw_http) if b["send_date"] > "2024-03-14T12:00"]
    assert pending
    target = pending[-1]  # the next one to go out
    assert target["state"] == 1 and target["dlr"] is None
    send = datetime.fromisoformat(target["send_date"]).timestamp()

    def seen() -> dict[str, Any]:
        return next(b for b in everything(mw_http) if b["id"] == target["id"])

    admin.advance(send - NOON + 3600)  # one hour after sending
    early = seen()
    admin.advance(24 * 3600)
    late = seen()
    assert early["state"] == 4
    assert 0 < early["dlr"]["delivered_count"] < late["dlr"]["delivered_count"]
    assert early["dlr"]["sent_count"] > late["dlr"]["sent_count"]
    assert early["broadcastConversion"]["totalClicks"] <= late["broadcastConversion"]["totalClicks"]
    admin.advance(3600)
    assert seen() == late  # fully grown after growth_hours


def test_fault_injection(mw_http: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(fail_next=2, fail_status=503)
    statuses = [mw_http.get("/api/3/Link", headers=KEY).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    admin.configure(rate_limit_rate=1.0, retry_after_s=2)
    limited = mw_http.get("/api/3/Link", headers=KEY)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    admin.configure(rate_limit_rate=0.0, error_rate=1.0, error_status=500)
    assert mw_http.get("/api/3/Link", headers=KEY).status_code == 500
    assert admin.stats()["faults"] == 4


def test_envelope_errors(mw_http: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(envelope_error_next=1, envelope_error_code=1001, envelope_error_message="Bad range")
    failed = mw_http.get("/api/3/Broadcast/List", headers=KEY)
    assert failed.status_code == 200
    assert failed.json()["errorCode"] == 1001 and failed.json()["errorMessage"] == "Bad range"
    assert failed.json()["result"] is None
    assert mw_http.get("/api/3/Broadcast/List", headers=KEY).json()["errorCode"] == 0


def test_load_explicit_data(mw_http: httpx.Client, admin: SimAdmin) -> None:
    data = {"broadcasts": [{"id": 5, "name": "X_list_chunk#1.csv", "real_price": 250}, {"name": "no id"}],
            "links": [{"id": 77, "url": "https://trk.example.com/abc"}], "replace": True}
    assert mw_http.post("/_sim/data", json=data).json() == {"broadcasts": 2, "links": 1}
    broadcasts = everything(mw_http)
    assert {b["id"] for b in broadcasts} == {5, 6}
    assert next(b for b in broadcasts if b["id"] == 5)["real_price"] == 250
    assert broadcasts[0].keys() >= DOC_KEYS
    more = mw_http.post("/_sim/data", json={"broadcasts": [{"id": 9}]}).json()
    assert more["broadcasts"] == 3  # added, not replaced
    assert mw_http.post("/_sim/data", json=[1, 2]).status_code == 422
    assert admin.stats()["broadcasts"] == 3


def test_stats_reset_and_config(mw_http: httpx.Client, admin: SimAdmin) -> None:
    everything(mw_http)
    everything(mw_http, "/api/3/Link")
    stats = admin.stats()
    assert stats["calls"] == {"broadcasts": 1, "links": 1} and stats["pages_served"] == 2
    assert stats["broadcasts"] == 20
    config = admin.config()
    assert DEFAULT_API_KEY not in str(config) and config["api_keys"] == ["***"]
    assert mw_http.post("/_sim/config", json={"nope": 1}).status_code == 422
    admin.configure(latency_ms=1)
    admin.reset()
    assert admin.stats()["calls"] == {} and admin.config()["latency_ms"] == 0


def test_other_documented_endpoints(mw_http: httpx.Client, admin: SimAdmin) -> None:
    sent = mw_http.post("/sms", json={"api_key": DEFAULT_API_KEY, "from": "Promo", "to": "447700900123", "text": "hi"})
    message_id = sent.json()["message_id"]
    assert sent.status_code == 200 and re.fullmatch(r"[0-9a-f]{32}", message_id)
    assert mw_http.get(f"/sms/{message_id}", headers=KEY).json()["to"] == "447700900123"
    log = mw_http.get("/sms/log", headers=KEY).json()
    assert isinstance(log, list) and log[0]["message_id"] == message_id  # a bare array, no envelope
    campaign = mw_http.post("/api/3/campaign", json={"name": "c", "start_date": "2024-03-01"}, headers=KEY).json()
    assert campaign["result"] == {"id": 1, "is_default": False, "name": "c", "start_date": "2024-03-01",
                                  "end_date": None, "enabled": True}
    assert [s["name"] for s in everything(mw_http, "/api/3/Sender/")] == ["Promo", "Offers", "Info"]
    assert mw_http.post("/sms", json={"to": "1"}).status_code == 401
    assert admin.stats()["sms_sent"] == 1


def test_command_line_knobs() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, MessageWhizSimConfig)
    args = parser.parse_args(["--anchor-date", "2024-03-14", "--campaign-ids", "a", "--campaign-ids", "b",
                              "--latency-ms", "5", "--retry-after-s", "1.5"])
    config = config_from_args(MessageWhizSimConfig, args)
    assert config.anchor_date == "2024-03-14" and config.campaign_ids == ("a", "b")
    assert config.latency_ms == 5.0 and config.retry_after_s == 1.5 and config.days == 3
