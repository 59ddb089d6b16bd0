"""The Voluum simulator speaks the wire protocol of shared/providers/voluum.md (raw HTTP here)."""

from __future__ import annotations

import argparse
import base64
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from phoneops.simulators.__main__ import add_config_arguments, config_from_args
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, VoluumSimConfig, create_app
from phoneops.simulators.voluum_data import CONVERSION_COLUMNS, NOT_A_PHONE

DAY = {"from": "2025-12-12T00:00:00.000Z", "to": "2025-12-13T00:00:00.000Z"}
ALL_DAYS = {"from": "2025-12-12T00:00:00.000Z", "to": "2025-12-15T00:00:00.000Z"}
TRAFFIC = [("groupBy", g) for g in ("custom-variable-1", "ip", "browser-version", "os-version")]
TOKEN_KEY = base64.urlsafe_b64encode(b"\x09" * 32).decode()
AMPM = re.compile(r"^\d{4}-\d\d-\d\d (0\d|1[0-2]):\d\d:\d\d [AP]M$")


@pytest.fixture(scope="module")
def vsim_url() -> Iterator[str]:
    with serve_in_thread(create_app(VoluumSimConfig(rate_limit_per_s=None, retry_after_s=0.5))) as url:
        yield url


@pytest.fixture
def vsim(vsim_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(vsim_url) as admin:
        admin.reset()
        yield admin


@pytest.fixture
def api(vsim: SimAdmin, vsim_url: str) -> Iterator[httpx.Client]:
    """A plain HTTP client holding a fresh session token."""
    with httpx.Client(base_url=vsim_url, timeout=10.0) as client:
        client.headers["cwauth-token"] = login(client).json()["token"]
        yield client


def login(client: httpx.Client, access_id: str = DEFAULT_ACCESS_ID, key: str = DEFAULT_ACCESS_KEY) -> httpx.Response:
    return client.post("/auth/access/session", json={"accessId": access_id, "accessKey": key})


def envelope(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    assert set(error) == {"code", "description", "messages", "webRequestId", "time"}
    assert error["code"] == code
    assert error["webRequestId"].startswith("req-vlm-")
    return error


def report(api: httpx.Client, *extra: tuple[str, str], window: dict[str, str] = DAY) -> dict[str, Any]:
    response = api.get("/report", params=[*window.items(), *extra])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- session -------------------------------------------------------------------------------------------


def test_session_tokens(vsim: SimAdmin, vsim_url: str) -> None:
    with httpx.Client(base_url=vsim_url) as client:
        answer = login(client)
        assert answer.status_code == 200
        body = answer.json()
        assert set(body) == {"token", "expirationTimestamp", "inaugural"}
        assert len(body["token"]) == 32 and body["inaugural"] is False
        expires = datetime.fromisoformat(body["expirationTimestamp"])
        assert abs((expires - datetime.now(UTC)) - timedelta(hours=4)) < timedelta(seconds=5)
        assert login(client).json()["token"] != body["token"]
        error = envelope(login(client, key="nope-nope"), 401, "UNAUTHORIZED")
        assert "nope-nope" not in error["description"]
        bad = client.post("/auth/access/session", content=b"{not json", headers={"Content-Type": "application/json"})
        assert envelope(bad, 400, "BAD_REQUEST")["description"] == "HTTP message not readable"
        for headers, problem in (({}, "missing"), ({"cwauth-token": "f" * 32}, "unknown")):
            assert envelope(client.get("/campaign", headers=headers), 401, "UNAUTHORIZED")["description"].endswith(
                problem
            )
        assert client.get("/campaign", headers={"cwauth-token": body["token"]}).status_code == 200
        vsim.advance(4 * 3600)
        expired = client.get("/campaign", headers={"cwauth-token": body["token"]})
        assert envelope(expired, 401, "UNAUTHORIZED")["description"] == "Session token expired"
    stats = vsim.stats()
    assert stats["tokens_issued"] == 2
    assert stats["unauthorized"] == 3


def test_concurrent_logins_are_all_counted(vsim: SimAdmin, vsim_url: str) -> None:
    with httpx.Client(base_url=vsim_url) as client, ThreadPoolExecutor(8) as pool:
        tokens = list(pool.map(lambda _: login(client).json()["token"], range(40)))
    assert len(set(tokens)) == 40
    assert vsim.stats()["tokens_issued"] == 40


# --- the seeded dataset and reports --------------------------------------------------------------------


def test_seeded_traffic_looks_like_voluums(api: httpx.Client) -> None:
    body = report(api, *TRAFFIC, ("limit", "10000"), window=ALL_DAYS)
    rows = body["rows"]
    assert body["totalRows"] == len(rows) > 300
    assert {"limit", "offset", "truncated", "messages", "totalRows", "totals", "rows"} <= set(body)
    versions = {r["osVersion"] for r in rows}
    assert {"IOS 18.6", "Android 15.0", "Windows 10", "MacOS 10.15", "Linux"} <= versions
    values = [r["customVariable1"] for r in rows]
    assert NOT_A_PHONE in values and "" in values
    assert any(re.fullmatch(r"447700900\d{3}", v) for v in values)
    assert {0, 1} <= {r["uniqueVisits"] for r in rows} and max(r["uniqueVisits"] for r in rows) >= 2
    assert body["totals"]["visits"] == sum(r["visits"] for r in rows)
    assert body["totals"]["uniqueVisits"] == sum(r["uniqueVisits"] for r in rows)


def test_seed_is_reproducible_and_tokens_decrypt(vsim: SimAdmin, api: httpx.Client) -> None:
    first = report(api, *TRAFFIC, ("limit", "10000"))["rows"]
    vsim.reset()  # forgets sessions too
    api.headers["cwauth-token"] = login(api).json()["token"]
    again = report(api, *TRAFFIC, ("limit", "10000"))["rows"]
    assert first == again
    vsim.configure(seed=7)
    assert report(api, *TRAFFIC, ("limit", "10000"))["rows"] != first
    vsim.configure(token_key=TOKEN_KEY, token_ratio=1.0)
    values = [r["customVariable1"] for r in report(api, *TRAFFIC, ("limit", "10000"))["rows"]]
    tokens = [v for v in values if len(v) >= 25]
    assert tokens
    for token in tokens:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        phone = AESGCM(b"\x09" * 32).decrypt(raw[:12], raw[12:], None).decode()
        assert re.fullmatch(r"(447700900|61491570)\d{3}|120255501\d\d", phone)
    assert vsim.config()["token_key"] == "***"


def test_report_grouping_filters_and_columns(api: httpx.Client) -> None:
    campaigns = api.get("/campaign").json()["campaigns"]
    source = campaigns[0]["trafficSource"]["id"]
    by_campaign = report(api, ("groupBy", "campaign"), ("filter1", "traffic-source"), ("filter1Value", source))
    expected = {c["id"] for c in campaigns if c["trafficSource"]["id"] == source}
    assert {r["campaignId"] for r in by_campaign["rows"]} <= expected
    assert all(" - " in r["campaignName"] or r["campaignName"] == "Legacy test campaign" for r in by_campaign["rows"])
    whole = report(api, ("groupBy", "campaign"))
    assert whole["totals"]["visits"] > by_campaign["totals"]["visits"]
    narrow = report(api, ("groupBy", "os-version"), ("column", "visits"), ("sort", "visits"), ("direction", "DESC"))
    assert set(narrow["rows"][0]) == {"osVersion", "visits"}
    counts = [r["visits"] for r in narrow["rows"]]
    assert counts == sorted(counts, reverse=True)
    offers = report(api, ("groupBy", "offer"), ("column", "offerId"), ("column", "offerName"), ("reportType", "tree"),
                    ("include", "ALL"), window={"from": "2030-01-01T00:00:00Z", "to": "2030-01-02T00:00:00Z"})
    assert len(offers["rows"]) == 5 and all(r["offerName"].startswith("Offer ") for r in offers["rows"])


def test_report_refusals(api: httpx.Client) -> None:
    cases = [
        {**DAY, "groupBy": "planet"},
        {**DAY, "filter1": "planet", "filter1Value": "x"},
        {"from": "2025-12-12T00:30:00.000Z", "to": DAY["to"]},
        {"from": DAY["to"], "to": DAY["from"]},
        {"to": DAY["to"]},
        {**DAY, "limit": "ten"},
        {**DAY, "offset": "-1"},
    ]
    for params in cases:
        assert envelope(api.get("/report", params=params), 400, "BAD_REQUEST")["description"]


def test_paging_and_its_quirks(vsim: SimAdmin, vsim_url: str, api: httpx.Client) -> None:
    rows = [
        {"customVariable1": f"44770090{i:04d}", "osVersion": "Android 14", "uniqueVisits": i % 3} for i in range(25)
    ]
    assert httpx.post(f"{vsim_url}/_sim/data", json={"visits": rows}).json()["visits"] == 25
    group = ("groupBy", "custom-variable-1")
    pages = [report(api, group, ("limit", "10"), ("offset", str(o))) for o in (0, 10, 20, 30)]
    assert [len(p["rows"]) for p in pages] == [10, 10, 5, 0]
    assert {p["totalRows"] for p in pages} == {25}
    assert sorted(r["customVariable1"] for p in pages for r in p["rows"]) == sorted(r["customVariable1"] for r in rows)
    assert [r["uniqueVisits"] for r in pages[0]["rows"]][:3] == [0, 1, 2]
    vsim.configure(max_limit=7)
    assert report(api, group, ("limit", "10"))["limit"] == 7
    vsim.configure(max_limit=10_000, shift_total_rows=4)
    assert [report(api, group, ("limit", "10"), ("offset", str(o)))["totalRows"] for o in (0, 10, 20)] == [25, 29, 33]
    vsim.configure(shift_total_rows=0, empty_page_at=1)
    assert report(api, group, ("limit", "10"), ("offset", "10"))["rows"] == []
    vsim.configure(empty_page_at=None, ignore_offset=True)
    assert report(api, group, ("limit", "10"), ("offset", "20"))["rows"] == pages[0]["rows"]
    vsim.configure(empty_body_next=1)
    empty = api.get("/report", params=[*DAY.items(), group])
    assert (empty.status_code, empty.content) == (200, b"")
    assert report(api, group)["rows"]


def test_loaded_rows_append_and_dump(vsim: SimAdmin, vsim_url: str) -> None:
    sizes = httpx.post(f"{vsim_url}/_sim/data", json={"visits": [{"customVariable1": "1"}], "append": True}).json()
    assert sizes["visits"] == 3 * 200 + 1
    assert httpx.get(f"{vsim_url}/_sim/data").json()["visits"][-1] == {"customVariable1": "1"}
    refused = httpx.post(f"{vsim_url}/_sim/data", json={"visits": "nope"})
    assert refused.status_code == 422
    assert httpx.post(f"{vsim_url}/_sim/data", json={"planets": []}).status_code == 422


# --- conversions, entities, costs ----------------------------------------------------------------------


def test_conversions(api: httpx.Client, vsim: SimAdmin, vsim_url: str) -> None:
    body = api.get("/report/conversions", params={**ALL_DAYS, "limit": "10000"}).json()
    rows = body["rows"]
    assert body["totalRows"] == len(rows) > 10
    assert all(tuple(r) == CONVERSION_COLUMNS for r in rows) and len(CONVERSION_COLUMNS) == 49
    assert all(AMPM.match(r["postbackTimestamp"]) and AMPM.match(r["visitTimestamp"]) for r in rows)
    assert {r["conversionType"] for r in rows} == {"REG", "FTD"}
    keys = [(r["clickId"], r["transactionId"], r["conversionType"]) for r in rows]
    assert len(set(keys)) == len(keys) - 1  # one duplicated postback
    picked = api.get("/report/conversions", params={**ALL_DAYS, "column": ["clickId", "conversionType"]}).json()
    assert set(picked["rows"][0]) == {"clickId", "conversionType"}
    late = {
        "clickId": "c1",
        "transactionId": "t1",
        "conversionType": "FTD",
        "postbackTimestamp": "2025-12-12T10:59:59Z",
    }
    httpx.post(f"{vsim_url}/_sim/data", json={"conversions": [late]})
    hour = api.get("/report/conversions", params={"from": "2025-12-12T10:00:00Z", "to": "2025-12-12T11:00:00Z"})
    assert [r["postbackTimestamp"] for r in hour.json()["rows"]] == ["2025-12-12 10:59:59 AM"]
    assert api.get("/report/conversions", params={"from": "2025-12-12T11:00:00Z", "to": "2025-12-12T12:00:00Z"}).json()[
        "totalRows"] == 0


def test_entities(api: httpx.Client) -> None:
    campaigns = api.get("/campaign").json()["campaigns"]
    assert len(campaigns) == 7
    first = campaigns[0]
    assert {"id", "name", "url", "country", "trafficSource", "costModel", "workspace", "deleted"} <= set(first)
    assert first["url"].startswith(f"https://trk.example.com/{first['id']}")
    assert api.get(f"/campaign/{first['id']}").json() == first
    envelope(api.get("/campaign/unknown"), 404, "NOT_FOUND")
    assert len(api.get("/offer").json()["offers"]) == 5
    assert len(api.get("/traffic-source").json()["trafficSources"]) == 2


def test_cost_pushes(api: httpx.Client, vsim: SimAdmin) -> None:
    campaign = api.get("/campaign").json()["campaigns"][0]["id"]
    update = {"campaignId": campaign, "from": "2025-12-12T00:00:00Z", "to": "2025-12-13T00:00:00Z",
              "timezone": "Etc/GMT", "cost": 249.2, "currency": "EUR"}
    assert api.post("/report/cost", json={"costUpdateRequests": [update]}).status_code == 200
    body = report(api, ("groupBy", "campaign"))
    row = next(r for r in body["rows"] if r["campaignId"] == campaign)
    assert row["cost"] == pytest.approx(249.2) and row["costSources"] == ["MANUAL_UPDATE"]
    assert body["totals"]["cost"] == pytest.approx(249.2)
    for broken in ({**update, "cost": 1}, {**update, "currency": "EURO"}, {**update, "to": update["from"]}, {}):
        refused = api.post("/report/cost", json={"costUpdateRequests": [broken]})
        assert envelope(refused, 400, "BAD_REQUEST")["description"] == "HTTP message not readable"
    unknown = api.post("/report/cost", json={"costUpdateRequests": [{**update, "campaignId": "x"}]})
    assert envelope(unknown, 404, "NOT_FOUND")["messages"] == ["x"]
    stats = vsim.stats()
    assert [c["cost"] for c in stats["costs"]] == [249.2]
    assert stats["calls"]["cost"] == 6
    assert vsim.orders(campaignId=campaign)[0]["from"] == "2025-12-12T00:00:00.000Z"


# --- traffic control -----------------------------------------------------------------------------------


def test_rate_limit(api: httpx.Client, vsim: SimAdmin) -> None:
    vsim.configure(rate_limit_per_s=5)
    answers = [api.get("/campaign") for _ in range(12)]
    limited = [a for a in answers if a.status_code == 429]
    assert len(limited) >= 6
    assert limited[0].headers["Retry-After"] == "0.5"
    envelope(limited[0], 429, "TOO_MANY_REQUESTS")
    stats = vsim.stats()
    assert stats["requests_per_second_peak"] >= 12
    assert stats["statuses"]["429"] == len(limited)
    time.sleep(1.0)
    assert api.get("/campaign").status_code == 200


def test_fault_injection_and_latency(api: httpx.Client, vsim: SimAdmin) -> None:
    vsim.configure(fail_next=2, error_status=500, fault_endpoints=["cost"])
    assert api.get("/campaign").status_code == 200  # not a faulty endpoint
    assert [api.post("/report/cost", json={}).status_code for _ in range(3)] == [500, 500, 400]
    vsim.configure(fault_endpoints=[], error_rate=1.0, error_status=403)
    assert envelope(api.get("/campaign"), 403, "LOCKED")["description"] == "Quota limit (10) of requests exceeded"
    vsim.configure(error_rate=0.0, latency_ms=150)
    started = time.monotonic()
    assert api.get("/offer").status_code == 200
    assert time.monotonic() - started >= 0.15
    assert vsim.stats()["faults"] == 3


def test_leaky_errors_echo_secrets(vsim: SimAdmin, vsim_url: str) -> None:
    vsim.configure(leaky_errors=True)
    with httpx.Client(base_url=vsim_url) as client:
        assert "wrong-key-1" in login(client, key="wrong-key-1").json()["error"]["description"]
        assert "f" * 32 in client.get("/offer", headers={"cwauth-token": "f" * 32}).json()["error"]["description"]


def test_config_knobs_from_the_command_line() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, VoluumSimConfig)
    args = parser.parse_args(["--token-ttl-s", "5", "--access-keys", "id:key", "--fault-endpoints", "cost",
                              "--rate-limit-per-s", "15", "--no-require-hour-aligned"])
    config = config_from_args(VoluumSimConfig, args)
    assert (config.token_ttl_s, config.access_keys, config.fault_endpoints) == (5.0, {"id": "key"}, ("cost",))
    assert (config.rate_limit_per_s, config.require_hour_aligned, config.days) == (15, False, 3)


def test_reset_and_config(vsim: SimAdmin, api: httpx.Client) -> None:
    vsim.configure(token_ttl_s=1, fail_next=3)
    assert vsim.config()["access_keys"] == {DEFAULT_ACCESS_ID: "***"}
    vsim.reset()
    assert vsim.config()["token_ttl_s"] == 14_400 and vsim.config()["fail_next"] == 0
    assert vsim.stats()["calls"] == {} and vsim.stats()["tokens_issued"] == 0
    with pytest.raises(httpx.HTTPStatusError):
        vsim.configure(planet=1)
