"""The hlrlookup.com simulator speaks the wire protocol of shared/providers/hlr_lookup.md (raw HTTP here)."""

from __future__ import annotations

import argparse
import csv
import io
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from phoneops.simulators.__main__ import add_config_arguments, config_from_args
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.hlr_lookup import (
    API_PATH,
    DEFAULT_API_KEY,
    DEFAULT_API_SECRET,
    HlrSimConfig,
    create_app,
)
from phoneops.simulators.hlr_outcomes import COUNTRIES, LIVE_STATUSES, normalized_name, risky_networks

AUTH = {"api_key": DEFAULT_API_KEY, "api_secret": DEFAULT_API_SECRET}
QUERY = {"apikey": DEFAULT_API_KEY, "secret": DEFAULT_API_SECRET}
# Entries of the original's app/utils/risky_operators.json (zentropix/optimizer-backend).
ORIGINAL_RISKY = {
    "skyuklimited", "truphonelimited", "wirelesslogiclimited", "truphonegmbh", "freemobiles.a.s.", "transatel",
    "societefrancaiseduradiotelephone-sfr", "iliaditalias.p.a.", "timtelecomitaliaspa", "postemobiles.p.a.",
    "telefonicamoviles(movistar)", "xferamoviles", "orangeespagne,s.a.u.", "p4sp.zo.o.(play)", "t-mobilepolskas.a.",
    "polkomtelsp.zo.o.(plus)",
}
RESULT_KEYS = [
    "error", "uuid", "credits_spent", "request_parameters", "detected_telephone_number",
    "formatted_telephone_number", "telephone_number_type", "live_status", "original_network",
    "original_network_details", "current_network", "current_network_details", "is_ported", "timestamp",
    "sms_email", "mms_email",
]


@pytest.fixture(scope="module")
def hlr_url() -> Iterator[str]:
    with serve_in_thread(create_app(HlrSimConfig(retry_after_s=2.0))) as url:
        yield url


@pytest.fixture
def admin(hlr_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(hlr_url) as sim:
        sim.reset()
        yield sim


@pytest.fixture
def raw(admin: SimAdmin, hlr_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hlr_url, timeout=10.0) as client:
        yield client


def lookup(raw: httpx.Client, *numbers: str, auth: dict[str, str] = AUTH, **options: Any) -> httpx.Response:
    requests = [{"telephone_number": n, **options} for n in numbers]
    return raw.post(API_PATH, json={**auth, "requests": requests})


def results(raw: httpx.Client, *numbers: str, **options: Any) -> list[dict[str, Any]]:
    response = lookup(raw, *numbers, **options)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["results"]
    return found


def uk(count: int, start: int = 0) -> list[str]:
    return [f"4477009{start + i:05d}" for i in range(count)]


# --- real time ------------------------------------------------------------------------------------------


def test_results_in_request_order_with_the_full_field_set(raw: httpx.Client, admin: SimAdmin) -> None:
    found = results(raw, "+44 (7700) 900-123", "447700900124")
    assert [r["detected_telephone_number"] for r in found] == ["447700900123", "447700900124"]
    first = found[0]
    assert list(first) == RESULT_KEYS
    assert first["request_parameters"] == {
        "telephone_number": "+44 (7700) 900-123", "input_format": "", "output_format": "", "save_to_cache": "YES",
        "cache_days_global": 0, "cache_days_private": 0, "get_ported_date": "NO", "get_landline_status": "NO",
        "usa_status": "NO",
    }
    assert first["error"] == "NONE" and first["live_status"] in LIVE_STATUSES
    assert first["timestamp"].endswith("Z") and len(first["uuid"]) == 36
    stats = admin.stats()
    assert stats["lookups_per_number"] == {"447700900123": 1, "447700900124": 1}
    assert stats["balance"][DEFAULT_API_KEY] == 10_000 - sum(r["credits_spent"] for r in found)


def test_outcomes_are_deterministic_realistic_and_seeded(raw: httpx.Client, admin: SimAdmin) -> None:
    numbers = uk(400) + [f"49151{i:07d}" for i in range(200)]
    found = [r for start in range(0, len(numbers), 80) for r in results(raw, *numbers[start : start + 80])]
    again = results(raw, *numbers[:80])
    keep = ("live_status", "telephone_number_type", "current_network_details", "original_network_details", "is_ported")
    assert [{k: r[k] for k in keep} for r in found[:80]] == [{k: r[k] for k in keep} for r in again]
    statuses = Counter(r["live_status"] for r in found)
    assert set(statuses) == set(LIVE_STATUSES) and statuses["LIVE"] > len(found) / 3
    names = {r["current_network_details"]["name"] for r in found if r["current_network"] == "AVAILABLE"}
    assert {"Sky UK Limited", "Truphone Limited", "EE Limited", "Telekom Deutschland GmbH"} <= names
    assert any(r["is_ported"] == "YES" for r in found)
    for r in found:
        if r["live_status"] == "NO_COVERAGE":
            assert r["credits_spent"] == 0
        if r["current_network"] == "AVAILABLE":
            assert (
                r["current_network_details"]["mccmnc"][:3]
                == {"44": "234", "49": "262"}[r["request_parameters"]["telephone_number"][:2]]
            )
        if r["live_status"] in ("DEAD", "NOT_APPLICABLE", "NOT_AVAILABLE_NETWORK_ONLY"):
            assert r["current_network"] == "NOT_AVAILABLE" and r["current_network_details"] == {}
    admin.configure(seed=7)
    reseeded = results(raw, *numbers[:80])
    assert [r["live_status"] for r in reseeded] != [r["live_status"] for r in found[:80]]


def test_risky_networks_are_on_the_originals_list() -> None:
    risky = risky_networks()
    assert len(risky) >= 10
    assert {normalized_name(n.name) for n in risky} <= ORIGINAL_RISKY
    plain = [n for c in COUNTRIES for n in c.networks if not n.risky]
    assert not {normalized_name(n.name) for n in plain} & ORIGINAL_RISKY


def test_overrides_pin_a_numbers_result(raw: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(overrides={"447700900001": {"live_status": "NO_COVERAGE", "current_network_details": {"name": "X"}},
                               "447700900002": {"error": "INTERNAL_ERROR"}})
    covered, broken = results(raw, "447700900001", "+447700900002", output_format="PLUS_E164")
    assert covered["live_status"] == "NO_COVERAGE" and covered["credits_spent"] == 0
    assert covered["formatted_telephone_number"] == "+447700900001"
    assert covered["current_network"] == "AVAILABLE"  # 447700900001 is LIVE on a network by its hash
    assert covered["current_network_details"]["name"] == "X"  # nested objects are merged key by key
    assert covered["current_network_details"]["mccmnc"].startswith("234")
    assert broken["error"] == "INTERNAL_ERROR" and broken["credits_spent"] == 0
    stats = admin.stats()
    assert stats["lookups_per_number"] == {"447700900001": 1} and stats["balance"][DEFAULT_API_KEY] == 10_000


def test_credit_runs_out_per_result_and_tops_up(raw: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(balance=2, status_weights={"LIVE": 1})
    found = results(raw, *uk(4))
    assert [r["error"] for r in found] == ["NONE", "NONE", "INSUFFICIENT_CREDIT", "INSUFFICIENT_CREDIT"]
    assert found[2]["credits_spent"] == 0 and found[2]["live_status"] == ""
    stats = admin.stats()
    assert stats["total_paid_lookups"] == 2 and stats["balance"][DEFAULT_API_KEY] == 0
    assert stats["insufficient_credit"] == 2
    admin.configure(balance=10)
    assert [r["error"] for r in results(raw, *uk(2, start=2))] == ["NONE", "NONE"]
    assert admin.stats()["max_lookups_per_number"] == 1


@pytest.mark.parametrize(
    ("auth", "requests"),
    [
        ({"api_key": DEFAULT_API_KEY, "api_secret": "nope"}, [{"telephone_number": "447700900001"}]),
        ({"api_key": "nope", "api_secret": DEFAULT_API_SECRET}, [{"telephone_number": "447700900001"}]),
        ({}, [{"telephone_number": "447700900001"}]),
    ],
)
def test_wrong_credentials_401(raw: httpx.Client, admin: SimAdmin, auth: dict[str, str], requests: Any) -> None:
    response = raw.post(API_PATH, json={**auth, "requests": requests})
    assert response.status_code == 401
    assert response.json() == {"error": "UNAUTHORIZED", "message": "Invalid api_key or api_secret"}
    assert admin.stats()["total_paid_lookups"] == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({**AUTH, "requests": [{"telephone_number": "447700900001", "output_format": "X"}]},
         "Invalid output_format requested"),
        ({**AUTH, "requests": [{"telephone_number": "447700900001", "roaming": "YES"}]}, "Unknown parameter: roaming"),
        ({**AUTH, "requests": [{"telephone_number": "447700900001", "cache_days_global": 31}]},
         "Invalid cache_days_global requested"),
        ({**AUTH, "requests": []}, "Missing parameter: requests"),
        ({**AUTH, "requests": [{"telephone_number": n} for n in uk(81)]}, "Too many requests: at most 80 per call"),
    ],
)
def test_bad_parameters_400(raw: httpx.Client, admin: SimAdmin, body: dict[str, Any], message: str) -> None:
    response = raw.post(API_PATH, json=body)
    assert response.status_code == 400
    assert response.json() == {"error": "BAD_REQUEST", "message": message}
    assert admin.stats()["total_paid_lookups"] == 0


def test_a_bad_number_is_a_200_result_not_a_400(raw: httpx.Client, admin: SimAdmin) -> None:
    [bad] = results(raw, "12")
    assert bad["error"] == "NONE" and bad["telephone_number_type"] == "UNKNOWN" and bad["credits_spent"] == 0


def test_429_injection_every_nth_call_with_retry_after(raw: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(throttle_every=3)
    codes = [lookup(raw, "447700900001").status_code for _ in range(6)]
    assert codes == [200, 200, 429, 200, 200, 429]
    admin.configure(throttle_every=0, throttle_next=1)
    response = lookup(raw, "447700900001")
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert response.json() == {"error": "TOO_MANY_REQUESTS", "message": "Please try again later"}
    stats = admin.stats()
    assert stats["throttled"] == 3 and stats["lookups_per_number"] == {"447700900001": 4}  # 429s are not charged


def test_5xx_injection_before_and_after_commit(raw: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(error_next=1, error_status=503)
    response = lookup(raw, "447700900001")
    assert response.status_code == 503 and response.content == b""
    assert admin.stats()["total_paid_lookups"] == 0
    admin.configure(error_next=1, fault_after_commit=True)
    assert lookup(raw, "447700900001").status_code == 503
    assert admin.stats()["total_paid_lookups"] == 1  # done and paid, the answer lost
    admin.configure(error_rate=1.0, fault_after_commit=False, fault_scope="batch")
    assert lookup(raw, "447700900001").status_code == 200  # the fault scope spares real-time calls


def test_body_shape_and_latency_knobs(raw: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(response_shape="body", latency_ms=120)
    started = time.perf_counter()
    response = lookup(raw, "447700900001")
    assert time.perf_counter() - started >= 0.12
    assert response.json()["body"]["results"][0]["detected_telephone_number"] == "447700900001"


def test_concurrent_lookups_keep_the_books_straight(raw: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(status_weights={"LIVE": 1})
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda i: lookup(raw, *uk(10, start=i * 10)).status_code, range(16)))
    assert answers == [200] * 16
    stats = admin.stats()
    assert stats["total_paid_lookups"] == 160 and stats["max_lookups_per_number"] == 1
    assert stats["balance"][DEFAULT_API_KEY] == 10_000 - 160 and stats["calls"]["hlr"] == 16


# --- batch host -----------------------------------------------------------------------------------------


def test_batch_flow_with_growing_num_complete(raw: httpx.Client, admin: SimAdmin) -> None:
    admin.configure(batch_items_per_second=5, status_weights={"LIVE": 1})
    created = raw.post("/batches/", params=QUERY, json={"filename": "abc.csv", "type": "HLR_V2",
                       "batchArguments": {"cache_days_private": 30, "cache_days_global": 30, "save_to_cache": "YES"}})
    assert created.status_code == 200
    batch = created.json()
    assert {"id", "filename", "numColumns", "ownerName", "type", "batchArguments", "scheduledStart", "creationDate",
            "numItems", "numComplete", "status"} == set(batch)
    path = f"/batches/{batch['id']}"
    source = "phone_number\n" + "\n".join(uk(20)) + "\n"
    uploaded = raw.post(f"{path}/source", params=QUERY, content=source, headers={"Content-Type": "text/csv"})
    assert uploaded.json()["numItems"] == 20
    assert raw.put(f"{path}/", params=QUERY, json={"status": "PROCESSING"}).json()["status"] == "PROCESSING"
    seen = []
    for _ in range(5):
        seen.append(raw.get(path, params=QUERY).json()["numComplete"])
        admin.advance(1.0)
    final = raw.get(path, params=QUERY).json()
    assert seen == sorted(seen) and seen[-1] > seen[0] and final["status"] == "COMPLETE"
    assert final["numComplete"] == 20 and admin.stats()["total_paid_lookups"] == 20
    assert raw.put(path, params=QUERY, json={"status": "PROCESSING"}).status_code == 200  # no second payment
    text = raw.get(f"{path}/results", params=QUERY)
    assert text.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(text.text)))
    assert rows[0][0] == "" and rows[0][1:4] == ["error", "request_parameters.telephone_number",
                                                 "request_parameters.cache_days_private"]
    assert "original_network_details.name" in rows[0] and rows[0][-1] == "timestamp" and len(rows) == 21
    record = dict(zip(rows[0], rows[1], strict=True))
    assert record[""] == uk(1)[0] and record["request_parameters.cache_days_private"] == "30"
    assert record["live_status"] == "LIVE" and record["current_network_details.mccmnc"].startswith("234")
    assert admin.stats()["total_paid_lookups"] == 20
    listing = raw.get("/batches/", params={**QUERY, "limit": 5}).json()
    assert listing["total"] == 1 and listing["limit"] == 5 and listing["batches"][0]["id"] == batch["id"]


def test_batch_errors(raw: httpx.Client, admin: SimAdmin) -> None:
    assert raw.get("/batches/", params={"apikey": DEFAULT_API_KEY, "secret": "x"}).status_code == 401
    batch = raw.post("/batches", params=QUERY, json={"filename": "a.csv", "type": "HLR_V2"}).json()
    path = f"/batches/{batch['id']}"
    started = raw.put(path, params=QUERY, json={"status": "PROCESSING"})
    assert started.status_code == 400 and started.json()["message"] == "Batch has no numbers"
    assert raw.put(path, params=QUERY, json={"status": "PAUSED"}).status_code == 400
    assert raw.get("/batches/424242", params=QUERY).status_code == 404
    admin.configure(accounts={DEFAULT_API_KEY: DEFAULT_API_SECRET, "other": "other-secret"})
    assert raw.get(path, params={"apikey": "other", "secret": "other-secret"}).status_code == 404  # not theirs
    raw.post(f"{path}/source", params=QUERY, content="447700900001\n")
    admin.configure(fail_batches=True)
    raw.put(path, params=QUERY, json={"status": "PROCESSING"})
    assert raw.get(path, params=QUERY).json()["status"] == "FAILED"
    again = raw.post(f"{path}/source", params=QUERY, content="447700900002\n")
    assert again.status_code == 400 and again.json()["message"] == "Batch already started"
    assert admin.stats()["total_paid_lookups"] == 0


# --- introspection and CLI ------------------------------------------------------------------------------


def test_sim_endpoints_reset_and_config(raw: httpx.Client, admin: SimAdmin) -> None:
    results(raw, "447700900001")
    assert admin.stats()["total_paid_lookups"] == 1
    config = admin.config()
    assert config["accounts"] == {DEFAULT_API_KEY: "***"} and DEFAULT_API_SECRET not in str(config)
    assert raw.post("/_sim/config", json={"no_such_knob": 1}).status_code == 422
    admin.reset()
    stats = admin.stats()
    assert stats["lookups_per_number"] == {} and stats["total_paid_lookups"] == 0
    assert stats["max_lookups_per_number"] == 0 and stats["balance"] == {DEFAULT_API_KEY: 10_000}


def test_every_scalar_knob_is_a_cli_flag() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, HlrSimConfig)
    args = parser.parse_args(["--latency-ms", "5", "--accounts", "k:s", "--fault-scope", "batch", "--fail-batches"])
    config = config_from_args(HlrSimConfig, args)
    assert config.latency_ms == 5 and config.accounts == {"k": "s"}
    assert config.fault_scope == "batch" and config.fail_batches is True
