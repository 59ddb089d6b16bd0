"""The GSM Fusion simulator speaks the wire protocol of shared/providers/gsm_fusion.md (raw HTTP here)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import defusedxml.ElementTree as SafeET
import httpx
import pytest
from stdnum import luhn

from phoneops.simulators.__main__ import build_parser, config_from_args
from phoneops.simulators._server import SimAdmin, serve_in_thread, wait_until_up
from phoneops.simulators.gsm_fusion import (
    API_PATH,
    DEFAULT_API_KEY,
    DEFAULT_USER,
    GsmFusionSim,
    GsmFusionSimConfig,
    create_app,
)

AUTH = {"apiKey": DEFAULT_API_KEY, "userId": DEFAULT_USER}


def imei(serial: int) -> str:
    body = f"35332211{serial:06d}"
    return body + luhn.calc_check_digit(body)


def call(http: httpx.Client, action: str, method: str = "POST", **params: str) -> httpx.Response:
    fields = {**AUTH, "action": action, **params}
    if method == "GET":
        return http.get(API_PATH, params=fields)
    return http.request(method, API_PATH, data=fields)


def root(response: httpx.Response) -> Any:
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/xml"
    return SafeET.fromstring(response.content)


def error_text(response: httpx.Response) -> str:
    element = root(response)
    assert element.tag == "error"
    return str(element.text)


# --- transport, auth, catalogue ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT"])
def test_any_method_answers_xml(http: httpx.Client, method: str) -> None:
    assert root(call(http, "imeiservices", method)).tag == "Packages"


def test_auth_order_and_exact_texts(http: httpx.Client) -> None:
    assert error_text(http.post(API_PATH, data={"action": "imeiservices"})) == "Invalid User!"
    bad_both = {"apiKey": "nope", "userId": "ghost", "action": "imeiservices"}
    assert error_text(http.post(API_PATH, data=bad_both)) == "Invalid User!"
    bad_key = {"apiKey": "nope", "userId": DEFAULT_USER, "action": "imeiservices"}
    assert error_text(http.post(API_PATH, data=bad_key)) == "Invalid API Key!"
    assert error_text(call(http, "nosuchaction")) == "Invalid Action!"


def test_packages_have_the_six_fields(http: httpx.Client) -> None:
    packages = root(call(http, "imeiservices")).findall("Package")
    assert len(packages) >= 5
    for package in packages:
        assert [child.tag for child in package] == [
            "PackageId", "Category", "PackageTitle", "PackagePrice", "TimeTaken", "MustRead",
        ]
        Decimal(package.findtext("PackagePrice") or "")
    assert root(call(http, "fileservices")).findall("Package")


def test_prolog_quirk_toggle(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    assert call(http, "imeiservices").text.startswith('<?xml version="1.0"')
    gsm_sim.configure(prolog_quirk=True)
    assert call(http, "imeiservices").text.startswith('<?phpxml version="1.0" encoding="utf-8"?>')


# --- orders --------------------------------------------------------------------------------------------


def test_placeorder_and_duplicates(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    placed = root(call(http, "placeorder", imei=imei(1), networkId="1739"))
    assert placed.tag == "result"
    entry = placed.find("imeis")
    assert entry is not None
    assert (entry.findtext("imei"), entry.findtext("status")) == (imei(1), "Pending")
    assert entry.findtext("id") == "900001"
    assert error_text(call(http, "placeorder", imei=imei(1), networkId="1739")) == "IMEI already exists!"
    # per user + service by default: another service is a new order
    assert root(call(http, "placeorder", imei=imei(1), networkId="2250")).find("imeis") is not None
    stats = gsm_sim.stats()
    assert stats["orders_per_imei"] == {imei(1): 2}
    assert stats["duplicates_refused"] == 1
    assert stats["balance"][DEFAULT_USER] == str(Decimal("1000.00") - Decimal("0.08") - Decimal("0.03"))


def test_duplicate_scope_global_and_off(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(duplicate_scope="global")
    call(http, "placeorder", imei=imei(2), networkId="1739")
    assert error_text(call(http, "placeorder", imei=imei(2), networkId="2250")) == "IMEI already exists!"
    gsm_sim.configure(duplicate_scope="off")
    assert root(call(http, "placeorder", imei=imei(2), networkId="1739")).find("imeis") is not None
    assert gsm_sim.stats()["max_orders_per_imei"] == 2


def test_batch_mode_last_places_only_the_last_imei(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    placed = root(call(http, "placeorder", imei=f"{imei(3)},{imei(4)},{imei(5)}", networkId="1739"))
    assert [e.findtext("imei") for e in placed.findall("imeis")] == [imei(5)]
    assert gsm_sim.stats()["total_orders"] == 1


def test_batch_mode_all_lists_duplicates(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(batch_mode="all")
    call(http, "placeorder", imei=imei(6), networkId="1739")
    placed = root(call(http, "placeorder", imei=f"{imei(6)},{imei(7)},{imei(8)}", networkId="1739"))
    assert [e.findtext("imei") for e in placed.findall("imeis")] == [imei(7), imei(8)]
    assert placed.findtext("imeiduplicates/imei") == imei(6)


def test_placeorder_errors(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    assert error_text(call(http, "placeorder", imei=imei(9), networkId="42")) == "Invalid Network ID!"
    assert error_text(call(http, "placeorder", networkId="1739")) == "IMEI is required!"
    assert error_text(call(http, "placeorder", imei="123456789012345", networkId="1739")) == "Invalid IMEI!"
    gsm_sim.configure(balance={DEFAULT_USER: "14.99"})
    assert error_text(call(http, "placeorder", imei=imei(9), networkId="3001")) == "Insufficient Credit!"
    assert gsm_sim.stats()["total_orders"] == 0


def test_lifecycle_and_escaped_code(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    ids = [
        root(call(http, "placeorder", imei=imei(n), networkId="1739")).findtext("imeis/id") or "" for n in range(10, 30)
    ]
    order_ids = ",".join([*ids, "1", "abc"])  # unknown ids are left out

    def statuses() -> list[str]:
        return [e.findtext("status") or "" for e in root(call(http, "getimeis", orderIds=order_ids)).iter("imeis")]

    assert statuses() == ["Pending"] * 20
    gsm_sim.advance(60)
    assert statuses() == ["In Process"] * 20
    gsm_sim.advance(120)
    final = statuses()
    assert set(final) == {"Completed", "Rejected"}  # 20 IMEIs, 10 % rejected by hash
    assert final == statuses()  # deterministic
    response = call(http, "getimeis", orderIds=ids[final.index("Completed")])
    assert "&lt;br&gt;" in response.text  # entity-escaped on the wire
    entry = root(response).find("imeis")
    assert entry is not None
    code = entry.findtext("code") or ""
    for label in ("Carrier:", "Model:", "IMEI"):
        assert label in code
    assert "<br>" in code
    assert [child.tag for child in entry] == ["id", "package", "imei", "status", "code", "requestedat"]
    assert time.strptime(entry.findtext("requestedat") or "", "%Y-%m-%d %H:%M:%S")


def test_orders_are_per_user(gsm_sim: SimAdmin, http: httpx.Client) -> None:
    gsm_sim.configure(users={DEFAULT_USER: DEFAULT_API_KEY, "other": "OTHER-KEY"})
    order_id = root(call(http, "placeorder", imei=imei(31), networkId="1739")).findtext("imeis/id")
    theirs = http.post(API_PATH, data={"apiKey": "OTHER-KEY", "userId": "other", "action": "getimeis",
                                       "orderIds": str(order_id)})
    assert root(theirs).findall("imeis") == []
    assert gsm_sim.orders(imei=imei(31))[0]["user"] == DEFAULT_USER


# --- faults, latency, concurrency ----------------------------------------------------------------------


def test_error_rate_and_fault_after_commit(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(error_rate=1.0, retry_after_s=3)
    response = call(http, "placeorder", imei=imei(40), networkId="1739")
    assert response.status_code == 503 and response.headers["Retry-After"] == "3"
    assert gsm_sim.stats()["total_orders"] == 0
    gsm_sim.configure(fault_after_commit=True, error_status=500)
    assert call(http, "placeorder", imei=imei(40), networkId="1739").status_code == 500
    stats = gsm_sim.stats()
    assert stats["orders_per_imei"] == {imei(40): 1} and stats["faults"] == 2


def test_forced_timeout_holds_the_answer(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(fail_next=1, fail_kind="timeout", timeout_delay_s=0.3)
    started = time.monotonic()
    assert call(http, "imeiservices").status_code == 504
    assert time.monotonic() - started >= 0.3
    assert call(http, "imeiservices").status_code == 200  # only the next one


def test_latency(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(latency_ms=100)
    started = time.monotonic()
    call(http, "imeiservices")
    assert time.monotonic() - started >= 0.1


def _parallel(url: str, n: int, action: str = "imeiservices") -> list[int]:
    def one(_: int) -> int:
        with httpx.Client(base_url=url, timeout=10) as c:
            return call(c, action).status_code

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(one, range(n)))


def test_concurrency_cap_rejects(gsm_sim: SimAdmin, gsm_sim_url: str) -> None:
    gsm_sim.configure(max_concurrency=2, latency_ms=200)
    codes = _parallel(gsm_sim_url, 6)
    assert codes.count(200) >= 2 and codes.count(503) >= 1
    stats = gsm_sim.stats()
    assert stats["max_in_flight"] == 2 and stats["overload_rejections"] == codes.count(503)


def test_concurrency_cap_queues(gsm_sim: SimAdmin, gsm_sim_url: str) -> None:
    gsm_sim.configure(max_concurrency=2, latency_ms=100, overload="queue")
    started = time.monotonic()
    assert _parallel(gsm_sim_url, 6) == [200] * 6
    assert time.monotonic() - started >= 0.3  # 6 calls, 2 at a time, 0.1 s each
    assert gsm_sim.stats()["max_in_flight"] == 2


def test_state_is_safe_under_concurrent_duplicates(gsm_sim_url: str, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(latency_ms=5)

    def place(_: int) -> str:
        with httpx.Client(base_url=gsm_sim_url, timeout=10) as c:
            answer = root(call(c, "placeorder", imei=imei(50), networkId="1739"))
            return "placed" if answer.tag == "result" else str(answer.text)

    with ThreadPoolExecutor(20) as pool:
        tags = list(pool.map(place, range(40)))
    assert tags.count("placed") == 1 and tags.count("IMEI already exists!") == 39
    stats = gsm_sim.stats()
    assert stats["orders_per_imei"] == {imei(50): 1} and stats["duplicates_refused"] == 39


def test_in_process_state_is_thread_safe() -> None:
    sim = GsmFusionSim(GsmFusionSimConfig(duplicate_scope="off"))
    form = {**AUTH, "action": "placeorder", "imei": imei(60), "networkId": "2250"}
    threads = [threading.Thread(target=lambda: [sim.handle(form) for _ in range(100)]) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = sim.stats()
    assert stats["total_orders"] == 800 and len({o["order_id"] for o in sim.list_orders({})}) == 800
    assert stats["balance"][DEFAULT_USER] == str(Decimal("1000.00") - 800 * Decimal("0.03"))


# --- /_sim/ --------------------------------------------------------------------------------------------


def test_introspection(http: httpx.Client, gsm_sim: SimAdmin) -> None:
    call(http, "placeorder", imei=imei(70), networkId="1739")
    stats = gsm_sim.stats()
    assert stats["total_orders"] == 1 and stats["calls"] == {"placeorder": 1}
    assert gsm_sim.orders(imei=imei(70))[0]["status"] == "Pending"
    assert gsm_sim.orders(imei=imei(71)) == []
    assert gsm_sim.config()["users"] == {DEFAULT_USER: "***"}
    assert http.post("/_sim/config", json={"no_such_knob": 1}).status_code == 422
    assert http.post("/_sim/config", json={"overload": "explode"}).status_code == 422
    assert http.post("/_sim/advance", json={}).status_code == 422
    gsm_sim.configure(latency_ms=1)
    gsm_sim.reset()
    assert gsm_sim.stats()["total_orders"] == 0
    assert gsm_sim.config()["latency_ms"] == 0  # reset restores the knobs it was created with


# --- its own process -----------------------------------------------------------------------------------


def test_cli_knobs_map_to_the_config() -> None:
    args = build_parser().parse_args(
        ["gsm_fusion", "--port", "9", "--latency-ms", "100", "--max-concurrency", "30", "--prolog-quirk",
         "--users", "a:KEY-A", "--fault-actions", "placeorder", "--initial-balance", "5.5"]
    )
    config = config_from_args(GsmFusionSimConfig, args)
    assert (args.port, config.latency_ms, config.max_concurrency, config.prolog_quirk) == (9, 100.0, 30, True)
    assert config.users == {"a": "KEY-A"} and config.fault_actions == ("placeorder",)
    assert config.initial_balance == Decimal("5.5") and config.batch_mode == "last"


def test_runs_in_its_own_process(tmp_path: Any) -> None:
    with serve_in_thread(create_app()) as url:  # borrow a free port, then hand it over
        port = int(url.rsplit(":", 1)[1])
    process = subprocess.Popen(
        [sys.executable, "-m", "phoneops.simulators", "gsm_fusion", "--port", str(port), "--latency-ms", "5"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(base, timeout=20)
        with httpx.Client(base_url=base) as http:
            elapsed = []
            for _ in range(3):
                started = time.monotonic()
                assert root(call(http, "imeiservices")).tag == "Packages"
                elapsed.append(time.monotonic() - started)
            assert min(elapsed[1:]) < 0.035  # keep-alive calls stay near the 5 ms latency (no delayed-ACK stall)
        with SimAdmin(base) as admin:
            assert admin.stats()["calls"]["imeiservices"] == 3
    finally:
        process.terminate()
        process.wait(timeout=10)
