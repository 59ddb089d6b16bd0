"""GsmFusionClient / AsyncGsmFusionClient against the simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from stdnum import luhn

from phoneops.core.http import (
    ProviderAuthError,
    ProviderRateLimited,
    ProviderResponseError,
    ProviderTimeout,
    ProviderUnavailable,
    RateLimiter,
    RetryPolicy,
)
from phoneops.imei.client import (
    AsyncGsmFusionClient,
    GsmError,
    GsmFusionClient,
    GsmFusionError,
    GsmImeiAlreadyExists,
    GsmInsufficientCredit,
    GsmInvalidApiKey,
    GsmInvalidUser,
    error_for_message,
)
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

FAST = RetryPolicy(attempts=3, total_timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)
SERVICE = "1739"  # iPhone Carrier + SimLock + FMI Check, 0.08


def imei(serial: int) -> str:
    body = f"35693803{serial:06d}"
    return body + luhn.calc_check_digit(body)


def other_client(url: str, **kw: Any) -> GsmFusionClient:
    options: dict[str, Any] = {"timeout": 5.0, "retry": FAST}
    options.update(kw)
    user, key = options.pop("user", DEFAULT_USER), options.pop("key", DEFAULT_API_KEY)
    return GsmFusionClient(url, user, key, **options)


def xml_transport(body: str, seen: list[httpx.Request] | None = None) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return httpx.Response(200, text=body, headers={"Content-Type": "application/xml"})

    return httpx.MockTransport(handler)


# --- happy paths ---------------------------------------------------------------------------------------


def test_imei_and_file_services(gsm_client: GsmFusionClient) -> None:
    services = gsm_client.imei_services()
    assert len(services) >= 5
    first = next(s for s in services if s.package_id == SERVICE)
    assert first.price == Decimal("0.08")
    assert first.category == "Apple"
    assert first.delivery_time == "1-5 Minutes"
    assert "<b>" in first.details  # MustRead keeps the provider's markup
    assert [s.package_id for s in gsm_client.file_services()] == ["5001"]


def test_place_order_charges_once_and_is_pending(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    order = gsm_client.place_order(imei(1), SERVICE)
    assert order.imei == imei(1)
    assert order.status == "Pending"
    assert order.order_id.isdigit()
    stats = gsm_sim.stats()
    assert stats["orders_per_imei"] == {imei(1): 1}
    assert stats["balance"][DEFAULT_USER] == "999.92"


def test_place_order_sends_optional_fields(gsm_sim_url: str) -> None:
    seen: list[httpx.Request] = []
    body = "<result><imeis><id>7</id><imei>356938035643809</imei><status>Pending</status></imeis></result>"
    with other_client(gsm_sim_url, transport=xml_transport(body, seen)) as c:
        c.place_order("356938035643809", 1739, model_no="A2633", serviceId="9", pin=None)
    form = dict(httpx.QueryParams(seen[0].content.decode()))
    assert form["modelNo"] == "A2633"
    assert form["serviceId"] == "9"
    assert "pin" not in form
    assert form["action"] == "placeorder"
    assert form["networkId"] == "1739"


def test_place_order_refuses_batches_and_unknown_fields(gsm_client: GsmFusionClient) -> None:
    with pytest.raises(ValueError, match="one IMEI"):
        gsm_client.place_order(f"{imei(1)},{imei(2)}", SERVICE)
    with pytest.raises(ValueError, match="unknown placeorder field"):
        gsm_client.place_order(imei(1), SERVICE, colour="red")


# --- typed errors --------------------------------------------------------------------------------------


def test_duplicate_is_already_exists_and_not_charged(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    gsm_client.place_order(imei(2), SERVICE)
    with pytest.raises(GsmImeiAlreadyExists) as info:
        gsm_client.place_order(imei(2), SERVICE)
    assert info.value.provider_message == "IMEI already exists!"
    assert info.value.status_code == 409
    assert info.value.maybe_sent is False
    stats = gsm_sim.stats()
    assert stats["orders_per_imei"][imei(2)] == 1
    assert stats["balance"][DEFAULT_USER] == "999.92"


def test_invalid_user_is_checked_before_the_key(gsm_sim: SimAdmin, gsm_sim_url: str) -> None:
    with other_client(gsm_sim_url, user="nobody", key="WRONG-KEY0-0000") as c, pytest.raises(GsmInvalidUser):
        c.imei_services()
    with other_client(gsm_sim_url, key="WRONG-KEY0-0000") as c, pytest.raises(GsmInvalidApiKey) as info:
        c.imei_services()
    assert isinstance(info.value, ProviderAuthError)
    assert isinstance(info.value, GsmFusionError)
    assert gsm_sim.stats()["calls"]["imeiservices"] == 2  # auth errors are not retried


def test_insufficient_credit(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(balance="0.05")
    with pytest.raises(GsmInsufficientCredit) as info:
        gsm_client.place_order(imei(3), SERVICE)
    assert info.value.status_code == 402
    assert gsm_sim.stats()["total_orders"] == 0


def test_other_provider_error(gsm_client: GsmFusionClient) -> None:
    with pytest.raises(GsmError) as info:
        gsm_client.place_order(imei(4), "999999")
    assert info.value.provider_message == "Invalid Network ID!"
    assert type(info.value) is GsmError


def test_nested_error_is_raised(gsm_sim_url: str) -> None:
    body = "<result><imeis><error>Invalid IMEI!</error></imeis></result>"
    with other_client(gsm_sim_url, transport=xml_transport(body)) as c, pytest.raises(GsmError, match="Invalid"):
        c.place_order(imei(5), SERVICE)


def test_listed_duplicate_without_order_is_already_exists(gsm_sim_url: str) -> None:
    body = f"<result><imeiduplicates><imei>{imei(6)}</imei></imeiduplicates></result>"
    with other_client(gsm_sim_url, transport=xml_transport(body)) as c, pytest.raises(GsmImeiAlreadyExists):
        c.place_order(imei(6), SERVICE)


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("Invalid User!", GsmInvalidUser),
        ("Invalid API Key!", GsmInvalidApiKey),
        ("IMEI already exists!", GsmImeiAlreadyExists),
        ("Insufficient balance", GsmInsufficientCredit),
        ("Insufficient Credit!", GsmInsufficientCredit),
        ("Invalid IMEI", GsmError),
    ],
)
def test_error_texts_map_to_types(text: str, kind: type[GsmFusionError]) -> None:
    assert type(error_for_message(text, action="x")) is kind


def test_malformed_xml_is_a_response_error(gsm_sim_url: str) -> None:
    with other_client(gsm_sim_url, transport=xml_transport("<result><imeis>")) as c:
        with pytest.raises(ProviderResponseError) as info:
            c.place_order(imei(7), SERVICE)
        assert info.value.maybe_sent is True  # a paid call with an unreadable answer may have been placed
        with pytest.raises(ProviderResponseError):
            c.imei_services()


def test_prolog_quirk_is_tolerated(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(prolog_quirk=True)
    assert gsm_client.imei_services()
    order = gsm_client.place_order(imei(8), SERVICE)
    assert gsm_client.get_imeis([order.order_id])[0].imei == imei(8)


# --- retries: never for placeorder, bounded for reads --------------------------------------------------


def test_placeorder_is_not_retried_on_5xx(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(fail_next=1, fault_actions=["placeorder"])
    with pytest.raises(ProviderUnavailable) as info:
        gsm_client.place_order(imei(9), SERVICE)
    assert info.value.maybe_sent is True
    assert gsm_sim.stats()["calls"]["placeorder"] == 1


def test_placeorder_timeout_is_not_retried_and_may_have_been_placed(gsm_sim: SimAdmin, gsm_sim_url: str) -> None:
    gsm_sim.configure(
        fail_next=1, fail_kind="timeout", timeout_delay_s=1.0, fault_actions=["placeorder"], fault_after_commit=True
    )
    with other_client(gsm_sim_url, timeout=0.3) as c:
        with pytest.raises(ProviderTimeout) as info:
            c.place_order(imei(10), SERVICE)
        assert info.value.maybe_sent is True
        stats = gsm_sim.stats()
        assert stats["calls"]["placeorder"] == 1
        assert stats["orders_per_imei"] == {imei(10): 1}  # the provider took it although we saw a timeout
        # Reconciliation: re-placing answers "already exists", so the IMEI is known to be placed.
        with pytest.raises(GsmImeiAlreadyExists):
            c.place_order(imei(10), SERVICE)
    assert gsm_sim.stats()["orders_per_imei"] == {imei(10): 1}


def test_reads_are_retried_on_5xx(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    order = gsm_client.place_order(imei(11), SERVICE)
    gsm_sim.configure(fail_next=2, fault_actions=["getimeis"])
    assert gsm_client.get_imeis([order.order_id])[0].order_id == order.order_id
    assert gsm_sim.stats()["calls"]["getimeis"] == 3


def test_reads_are_retried_on_429(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(fail_next=1, error_status=429, retry_after_s=0, fault_actions=["imeiservices"])
    assert gsm_client.imei_services()
    assert gsm_sim.stats()["calls"]["imeiservices"] == 2


def test_read_retries_are_bounded(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(fail_next=50, fault_actions=["imeiservices"])
    with pytest.raises(ProviderUnavailable):
        gsm_client.imei_services()
    assert gsm_sim.stats()["calls"]["imeiservices"] == FAST.attempts
    gsm_sim.configure(fail_next=50, error_status=429, retry_after_s=0)
    with pytest.raises(ProviderRateLimited):
        gsm_client.imei_services()
    assert gsm_sim.stats()["calls"]["imeiservices"] == 2 * FAST.attempts


# --- secrets -------------------------------------------------------------------------------------------


def test_api_key_never_logged_nor_in_errors(gsm_sim: SimAdmin, gsm_sim_url: str, logs: list[dict[str, Any]]) -> None:
    wrong = "ZZZZ-YYYY-XXXX-WWWW-VVVV"
    errors: list[BaseException] = []
    with other_client(gsm_sim_url) as c:
        c.imei_services()
        c.place_order(imei(12), SERVICE)
        for call in (lambda: c.place_order(imei(12), SERVICE), lambda: c.place_order(imei(13), "1")):
            with pytest.raises(GsmFusionError) as info:
                call()
            errors.append(info.value)
        gsm_sim.configure(fail_next=5, fault_actions=["getimeis"])
        with pytest.raises(ProviderUnavailable) as unavailable:
            c.get_imeis(["900001"])
        errors.append(unavailable.value)
    with other_client(gsm_sim_url, key=wrong) as c, pytest.raises(GsmInvalidApiKey) as bad_key:
        c.imei_services()
    errors.append(bad_key.value)
    requests = [e for e in logs if e["event"] == "provider.request"]
    assert {e["action"] for e in requests} == {"imeiservices", "placeorder", "getimeis"}
    assert all({"provider", "method", "path", "status", "elapsed_ms", "attempt"} <= e.keys() for e in requests)
    text = repr(logs) + "".join(f"{e} {e!r} {getattr(e, 'details', '')}" for e in errors)
    assert DEFAULT_API_KEY not in text
    assert wrong not in text
    assert "apiKey" not in text
    assert DEFAULT_API_KEY not in repr(c)


# --- getimeis, lifecycle, parsing ----------------------------------------------------------------------


def test_get_imeis_is_chunked(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    ids = [gsm_client.place_order(imei(20 + n), SERVICE).order_id for n in range(5)]
    statuses = gsm_client.get_imeis([*ids, "123", ids[0]], chunk_size=2)  # unknown id and a repeat
    assert [s.order_id for s in statuses] == ids
    assert gsm_sim.stats()["calls"]["getimeis"] == 3  # 6 distinct ids in chunks of 2
    assert gsm_client.get_imeis([]) == []


def test_lifecycle_and_result_parsing(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    order = gsm_client.place_order(imei(30), SERVICE)
    pending = gsm_client.get_imeis([order.order_id])[0]
    assert (pending.status, pending.code) == ("Pending", "")
    assert pending.package == "iPhone Carrier + SimLock + FMI Check"
    assert pending.requested_at is not None
    gsm_sim.advance(61)
    assert gsm_client.get_imeis([order.order_id])[0].status == "In Process"
    gsm_sim.advance(120)
    done = gsm_client.get_imeis([order.order_id])[0]
    assert done.status == "Completed"
    assert "<br>" in done.code
    result = done.result
    assert result.carrier and result.model and result.simlock in ("Locked", "Unlocked")
    assert result.fmi in ("ON", "OFF")
    assert result.imei2 and len(result.imei2) == 15 and result.imei2 != imei(30)
    assert "<" not in result.display and result.display.count("\n") == 5


def test_rejected_orders(gsm_client: GsmFusionClient, gsm_sim: SimAdmin) -> None:
    gsm_sim.configure(reject_ratio=1.0, pending_seconds=0, in_process_seconds=0)
    order = gsm_client.place_order(imei(31), SERVICE)
    status = gsm_client.get_imeis([order.order_id])[0]
    assert status.status == "Rejected"
    assert status.result.carrier is None and status.result.display


# --- rate limit and async ------------------------------------------------------------------------------


def test_rate_limiter_paces_calls(gsm_sim: SimAdmin, gsm_sim_url: str) -> None:
    with other_client(gsm_sim_url, rate_limiter=RateLimiter(rate=50, burst=1)) as c:
        started = time.monotonic()
        for _ in range(11):
            c.imei_services()
        assert time.monotonic() - started >= 10 / 50 * 0.9


def test_async_client_places_concurrently_within_the_cap(gsm_sim: SimAdmin, gsm_sim_url: str) -> None:
    gsm_sim.configure(latency_ms=30)
    imeis = [imei(100 + n) for n in range(40)]

    async def scenario() -> tuple[list[str], list[str], int]:
        async with AsyncGsmFusionClient(gsm_sim_url, DEFAULT_USER, DEFAULT_API_KEY, retry=FAST, concurrency=8) as c:
            placed = await asyncio.gather(*(c.place_order(i, SERVICE) for i in imeis))
            statuses = await c.get_imeis([p.order_id for p in placed], chunk_size=7)
            services = await c.imei_services()
        return [p.imei for p in placed], [s.imei for s in statuses], len(services)

    placed, statuses, services = asyncio.run(scenario())
    assert placed == imeis and statuses == imeis and services >= 5
    stats = gsm_sim.stats()
    assert stats["max_in_flight"] <= 8
    assert stats["max_in_flight"] >= 4  # it really ran concurrently
    assert stats["max_orders_per_imei"] == 1 and stats["total_orders"] == 40
    assert stats["calls"]["getimeis"] == 6


def test_async_errors_are_typed(gsm_sim: SimAdmin, gsm_sim_url: str) -> None:
    async def scenario() -> None:
        async with AsyncGsmFusionClient(gsm_sim_url, DEFAULT_USER, "BAD0-KEY0", retry=FAST) as c:
            await c.imei_services()

    with pytest.raises(GsmInvalidApiKey):
        asyncio.run(scenario())
