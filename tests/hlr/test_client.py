"""HlrClient against the hlrlookup.com simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import httpx
import pytest

from phoneops.core.http import ProviderAuthError, ProviderRateLimited, ProviderResponseError, RetryPolicy
from phoneops.hlr.client import (
    HlrAuthError,
    HlrBadRequest,
    HlrClient,
    HlrError,
    HlrInsufficientCredit,
    HlrRateLimited,
    HlrResponseError,
    HlrResult,
    HlrTimeout,
    HlrUnavailable,
)
from phoneops.hlr.wire import parse_lookup_response, parse_results_csv
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET

FAST: dict[str, Any] = {
    "timeout": 5.0,
    "retry": RetryPolicy(attempts=3, total_timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0),
}


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+4477009{start + i:05d}" for i in range(count)]


def stable(result: HlrResult) -> HlrResult:
    """A result without what changes on every lookup (uuid, time)."""
    return dataclasses.replace(result, uuid="", timestamp=None)


PORTED = {
    "live_status": "LIVE",
    "is_ported": "YES",
    "original_network": "AVAILABLE",
    "original_network_details": {"name": "Vodafone Limited", "mccmnc": "23415"},
    "current_network": "AVAILABLE",
    "current_network_details": {"name": "Sky UK Limited", "mccmnc": "23457"},
}


# --- real-time lookups -----------------------------------------------------------------------------------


def test_lookup_maps_every_documented_field(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(overrides={"447700900001": PORTED})
    [result] = hlr_client.lookup(["+44 7700 900001"])
    assert result.ok and result.is_live
    assert result.number == "+447700900001"
    assert result.submitted == "+44 7700 900001"
    assert (result.error, result.live_status, result.number_type) == ("NONE", "LIVE", "MOBILE")
    assert (result.original_network_name, result.original_mccmnc) == ("Vodafone Limited", "23415")
    assert (result.current_network_name, result.current_mccmnc) == ("Sky UK Limited", "23457")
    assert result.original_network is not None and result.original_network.area == "United Kingdom"
    assert result.current_network is not None and result.current_network.mcc == "234"
    assert result.current_network.country_iso3 == "GBR"
    assert result.is_ported is True
    assert result.credits_spent == Decimal(1)
    assert result.uuid and result.timestamp is not None and result.timestamp.tzinfo is not None
    assert result.raw["request_parameters"]["telephone_number"] == "+44 7700 900001"
    assert hlr_sim.stats()["lookups_per_number"] == {"447700900001": 1}


def test_not_available_networks_and_free_no_coverage(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(
        overrides={
            "447700900002": {"live_status": "NOT_APPLICABLE", "telephone_number_type": "LANDLINE",
                             "original_network": "NOT_AVAILABLE", "original_network_details": {},
                             "current_network": "NOT_AVAILABLE", "current_network_details": {}, "is_ported": "UNKNOWN"},
            "447700900003": {"live_status": "NO_COVERAGE"},
        }
    )
    landline, no_coverage = hlr_client.lookup(["447700900002", "447700900003"])
    assert landline.original_network is None and landline.current_network is None
    assert landline.network is None and landline.is_ported is None and landline.number_type == "LANDLINE"
    assert no_coverage.live_status == "NO_COVERAGE" and no_coverage.credits_spent == 0
    assert hlr_sim.stats()["credits_spent"] == 1.0  # the landline costs a credit, NO_COVERAGE none


def test_more_than_80_numbers_are_chunked_in_order(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    wanted = numbers(170)
    results = hlr_client.lookup(wanted)
    assert [r.submitted for r in results] == wanted
    assert [r.number for r in results] == wanted
    stats = hlr_sim.stats()
    assert stats["calls"]["hlr"] == 3
    assert stats["numbers_per_call"] == [80, 80, 10]
    assert stats["total_paid_lookups"] == 170 and stats["max_lookups_per_number"] == 1


def test_iter_lookup_yields_each_call_before_the_next(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    seen = []
    for chunk in hlr_client.iter_lookup(numbers(25), chunk_size=10):
        seen.append(len(chunk))
        assert hlr_sim.stats()["calls"]["hlr"] == len(seen)
    assert seen == [10, 10, 5]


@pytest.mark.parametrize("shape", ["results", "body"])
def test_both_response_shapes(hlr_client: HlrClient, hlr_sim: SimAdmin, shape: str) -> None:
    hlr_sim.configure(response_shape=shape)
    results = hlr_client.lookup(numbers(3))
    assert [r.number for r in results] == numbers(3)
    assert all(r.ok and r.live_status for r in results)


def test_same_number_gives_the_same_result(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    first = hlr_client.lookup(numbers(40))
    second = hlr_client.lookup(numbers(40))
    assert [stable(r) for r in first] == [stable(r) for r in second]
    assert len({r.live_status for r in first}) > 1  # outcomes vary between numbers
    assert hlr_sim.stats()["max_lookups_per_number"] == 2


def test_options_are_sent_and_unknown_ones_refused(hlr_client: HlrClient) -> None:
    [result] = hlr_client.lookup(["447700900004"], output_format="PLUS_E164", cache_days_private=30)
    assert result.raw["request_parameters"]["cache_days_private"] == 30
    assert result.raw["formatted_telephone_number"] == "+447700900004"
    with pytest.raises(ValueError, match="unknown lookup options"):
        hlr_client.lookup(["447700900004"], roaming="YES")
    with pytest.raises(ValueError, match="not a phone number"):
        hlr_client.lookup(["call me"])


# --- typed errors ---------------------------------------------------------------------------------------


def test_wrong_credentials_are_an_auth_error(hlr_sim_url: str, hlr_sim: SimAdmin) -> None:
    with HlrClient(hlr_sim_url, DEFAULT_API_KEY, "wrong-secret-123", **FAST) as client:
        with pytest.raises(HlrAuthError) as caught:
            client.lookup(numbers(2))
        with pytest.raises(HlrAuthError):
            client.get_batch("1001")
    error = caught.value
    assert isinstance(error, ProviderAuthError) and error.status == 401 and not error.maybe_sent
    assert error.provider_message == "UNAUTHORIZED: Invalid api_key or api_secret"
    assert error.unprocessed == tuple(numbers(2)) and error.results == ()
    assert "wrong-secret-123" not in f"{error} {error!r} {error.to_dict()}"
    assert hlr_sim.stats()["total_paid_lookups"] == 0


def test_bad_parameters_are_a_bad_request(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    with pytest.raises(HlrBadRequest) as caught:
        hlr_client.lookup(["447700900005"], output_format="KLINGON")
    assert isinstance(caught.value, ProviderResponseError) and caught.value.status == 400
    assert caught.value.provider_message == "BAD_REQUEST: Invalid output_format requested"
    assert "Invalid output_format requested" in str(caught.value)
    assert hlr_sim.stats()["calls"]["hlr"] == 1  # a 400 is never retried


def test_429_on_a_paid_call_is_not_retried(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(throttle_next=1, retry_after_s=0.25)
    with pytest.raises(HlrRateLimited) as caught:
        hlr_client.lookup(numbers(5))
    error = caught.value
    assert isinstance(error, ProviderRateLimited)
    assert error.retry_after == 0.25 and not error.maybe_sent
    assert error.provider_message == "TOO_MANY_REQUESTS: Please try again later"
    assert error.unprocessed == tuple(numbers(5)) and error.in_doubt == ()
    stats = hlr_sim.stats()
    assert stats["calls"]["hlr"] == 1 and stats["total_paid_lookups"] == 0
    assert len(hlr_client.lookup(numbers(5))) == 5  # sent again by the caller: paid once
    assert hlr_sim.stats()["max_lookups_per_number"] == 1


def test_429_mid_way_keeps_the_results_already_paid(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(throttle_every=2)  # the second call is refused
    with pytest.raises(HlrRateLimited) as caught:
        hlr_client.lookup(numbers(170))
    assert [r.submitted for r in caught.value.results] == numbers(80)
    assert caught.value.unprocessed == tuple(numbers(90, start=80))
    stats = hlr_sim.stats()
    assert stats["calls"]["hlr"] == 2 and stats["total_paid_lookups"] == 80


def test_5xx_on_a_paid_call_is_in_doubt_and_not_retried(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(error_next=1, fault_after_commit=True)  # looked up and paid, then the answer is lost
    with pytest.raises(HlrUnavailable) as caught:
        hlr_client.lookup(numbers(4))
    assert caught.value.maybe_sent and caught.value.status == 500
    assert caught.value.in_doubt == tuple(numbers(4)) and caught.value.unprocessed == ()
    stats = hlr_sim.stats()
    assert stats["calls"]["hlr"] == 1 and stats["total_paid_lookups"] == 4


def test_timeout_on_a_paid_call_is_in_doubt(hlr_sim_url: str, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(latency_ms=400)
    client = HlrClient(hlr_sim_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, timeout=0.1)
    with client, pytest.raises(HlrTimeout) as caught:
        client.lookup(numbers(2))
    assert caught.value.maybe_sent and caught.value.in_doubt == tuple(numbers(2))
    assert hlr_sim.stats()["calls"]["hlr"] == 1


def test_insufficient_credit_per_result(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(balance=85, status_weights={"LIVE": 1.0})  # every lookup costs one credit
    wanted = numbers(170)
    with pytest.raises(HlrInsufficientCredit) as caught:
        hlr_client.lookup(wanted)
    error = caught.value
    assert isinstance(error, HlrError) and error.status_code == 402
    assert [r.submitted for r in error.results] == wanted[:85]
    assert all(r.ok for r in error.results)
    assert error.unprocessed == tuple(wanted[85:])
    stats = hlr_sim.stats()
    assert stats["calls"]["hlr"] == 2  # the third call is not sent
    assert stats["total_paid_lookups"] == 85
    assert stats["balance"][DEFAULT_API_KEY] == 0
    hlr_sim.configure(balance=1000)  # top up, resume with what is left
    rest = hlr_client.lookup(list(error.unprocessed))
    assert [r.submitted for r in rest] == wanted[85:]
    stats = hlr_sim.stats()
    assert stats["total_paid_lookups"] == 170 and stats["max_lookups_per_number"] == 1


def test_malformed_answer_to_a_paid_call_is_in_doubt() -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(200, text="<html>oops</html>"))
    client = HlrClient("http://hlr.test", "key-123456", "secret-123456", transport=transport)
    with client, pytest.raises(HlrResponseError) as caught:
        client.lookup(numbers(2))
    assert caught.value.maybe_sent and caught.value.in_doubt == tuple(numbers(2))


# --- parsing --------------------------------------------------------------------------------------------


def test_parse_lookup_response_accepts_both_shapes() -> None:
    record = {"error": "NONE", "detected_telephone_number": "447700900123", "live_status": "DEAD",
              "credits_spent": 1, "original_network": "AVAILABLE",
              "original_network_details": {"name": "Demo Mobile", "mccmnc": "23415"},
              "current_network": "NOT_AVAILABLE", "current_network_details": {}, "is_ported": "UNKNOWN"}
    for body in ({"results": [record]}, {"body": {"results": [record]}}):
        [result] = parse_lookup_response(body, ["447700900123"])
        assert (result.number, result.live_status, result.original_mccmnc) == ("+447700900123", "DEAD", "23415")
        assert result.current_network is None and result.network == result.original_network


def test_parse_results_csv_with_bom_and_unnamed_first_column() -> None:
    text = ("\ufeff,error,credits_spent,detected_telephone_number,live_status,current_network,"
            "current_network_details.name,current_network_details.mccmnc,is_ported\n"
            "07700 900123,NONE,1,447700900123,LIVE,AVAILABLE,Sky UK Limited,23457,NO\n\n")
    [result] = parse_results_csv(text.encode())
    assert result.submitted == "07700 900123" and result.number == "+447700900123"
    assert (result.current_network_name, result.current_mccmnc, result.is_ported) == ("Sky UK Limited", "23457", False)
    assert result.raw["current_network_details"] == {"name": "Sky UK Limited", "mccmnc": "23457"}


# --- batches --------------------------------------------------------------------------------------------


def test_batch_flow_end_to_end(hlr_sim_url: str, hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    hlr_sim.configure(batch_items_per_second=10, overrides={"447700900007": PORTED})
    wanted = numbers(30)
    created = hlr_client.create_batch("clean-42.csv")
    assert created.id and created.num_items == 0 and not created.is_finished
    # a job checkpoints the batch id and may resume each step from another process
    with HlrClient(hlr_sim_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, **FAST) as resumed:
        assert resumed.upload_source(created.id, wanted) == 30
        resumed.start_batch(created.id)
    progress: list[int] = []

    def advance(batch: Any) -> None:
        progress.append(batch.num_complete)
        hlr_sim.advance(1.0)  # 10 more items per poll

    final = hlr_client.wait_for_batch(created.id, poll_every=0.001, max_wait=10, on_progress=advance)
    assert final.is_complete and final.num_items == final.num_complete == 30
    assert progress == sorted(progress) and progress[0] < 30 and len(set(progress)) >= 3  # numComplete grows
    raw = hlr_client.fetch_results_csv(created.id).decode()
    assert raw.startswith(",error,request_parameters.telephone_number,")
    assert "original_network_details.name" in raw.splitlines()[0]
    results = hlr_client.fetch_results(created.id)
    assert [r.submitted for r in results] == wanted and [r.number for r in results] == wanted
    ported = results[7]
    assert (ported.original_network_name, ported.current_network_name) == ("Vodafone Limited", "Sky UK Limited")
    assert ported.is_ported is True and ported.credits_spent == 1
    # the same outcomes as real-time lookups of those numbers
    live = hlr_client.lookup(wanted)
    assert [(r.live_status, r.current_mccmnc, r.is_ported) for r in results] == [
        (r.live_status, r.current_mccmnc, r.is_ported) for r in live
    ]
    stats = hlr_sim.stats()
    assert stats["total_paid_lookups"] == 60 and stats["max_lookups_per_number"] == 2
    page = hlr_client.list_batches()
    assert page.total == 1 and page.batches[0].id == created.id and page.batches[0].is_complete


def test_batch_reads_back_off_on_429_and_are_bounded(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    batch = hlr_client.create_batch("x.csv")
    hlr_sim.configure(throttle_next=2)
    assert hlr_client.get_batch(batch.id).id == batch.id  # third try answers
    assert hlr_sim.stats()["calls"]["batch.status"] == 3
    hlr_sim.configure(throttle_next=10)
    with pytest.raises(HlrRateLimited):
        hlr_client.get_batch(batch.id)
    assert hlr_sim.stats()["calls"]["batch.status"] == 6  # three more tries, then it stops


def test_batch_start_is_paid_and_never_retried(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    batch = hlr_client.create_batch("x.csv")
    hlr_client.upload_source(batch.id, numbers(5))
    hlr_sim.configure(error_next=1)
    with pytest.raises(HlrUnavailable) as caught:
        hlr_client.start_batch(batch.id)
    assert caught.value.maybe_sent
    stats = hlr_sim.stats()
    assert stats["calls"]["batch.start"] == 1 and stats["total_paid_lookups"] == 0
    hlr_client.start_batch(batch.id)
    hlr_client.start_batch(batch.id)  # starting twice does not pay twice
    assert hlr_client.get_batch(batch.id).is_complete
    assert hlr_sim.stats()["max_lookups_per_number"] == 1


def test_failed_batch_and_bounded_wait(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    batch = hlr_client.create_batch("x.csv")
    hlr_client.upload_source(batch.id, numbers(5))
    hlr_sim.configure(batch_items_per_second=0.001)
    hlr_client.start_batch(batch.id)
    now = [0.0]
    polls = hlr_sim.stats()["calls"].get("batch.status", 0)
    waited = hlr_client.wait_for_batch(
        batch.id, poll_every=5, max_wait=60, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]
    )
    assert not waited.is_finished and waited.status == "PROCESSING"
    assert hlr_sim.stats()["calls"]["batch.status"] - polls == 13  # at 0, 5, ... 60 s, then it gives up
    hlr_sim.configure(fail_batches=True)
    failed = hlr_client.get_batch(batch.id)
    assert failed.is_failed and failed.is_finished and not failed.is_complete


def test_batch_ids_and_sources_are_checked_before_sending(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    with pytest.raises(ValueError, match="batch id"):
        hlr_client.get_batch("../../apiv2/hlr")
    with pytest.raises(ValueError, match="phone number line"):
        hlr_client.upload_source("1001", ["447700900001", "4477,00"])
    with pytest.raises(HlrResponseError) as caught:
        hlr_client.get_batch("999999")  # another account's or unknown: 404
    assert caught.value.status == 404
    assert hlr_sim.stats()["calls"] == {"batch.status": 1}


# --- secrets --------------------------------------------------------------------------------------------


def test_credentials_never_reach_logs_or_errors(
    hlr_sim_url: str, hlr_sim: SimAdmin, logs: list[dict[str, Any]]
) -> None:
    key, secret = "acct-key-7f3a9c", "acct-secret-d41d8c"
    hlr_sim.configure(accounts={key: secret}, balance={key: 3})
    errors: list[BaseException] = []
    with HlrClient(hlr_sim_url, key, secret, **FAST) as client:
        assert key not in repr(client) and secret not in repr(client)
        batch = client.create_batch("s.csv")
        client.upload_source(batch.id, numbers(2))
        client.start_batch(batch.id)
        hlr_sim.configure(throttle_next=1)
        client.get_batch(batch.id)  # retried after a 429: stamina logs the retry
        client.fetch_results(batch.id)
        for knobs, call in (
            ({"throttle_next": 1}, lambda: client.lookup(numbers(1))),
            ({"error_next": 1}, lambda: client.lookup(numbers(1))),
            ({}, lambda: client.lookup(numbers(3, start=50))),  # out of credit
            ({}, lambda: client.lookup(numbers(1), output_format="NOPE")),
        ):
            hlr_sim.configure(**knobs)
            with pytest.raises(HlrError) as caught:
                call()
            errors.append(caught.value)
    with HlrClient(hlr_sim_url, key, "wrong-" + secret, **FAST) as client, pytest.raises(HlrAuthError) as denied:
        client.get_batch(batch.id)
    errors.append(denied.value)
    assert {type(e) for e in errors} == {
        HlrRateLimited,
        HlrUnavailable,
        HlrInsufficientCredit,
        HlrBadRequest,
        HlrAuthError,
    }
    assert len(logs) >= 10 and any(event.get("status") == 429 for event in logs)
    text = json.dumps(logs, default=str) + " ".join(f"{e} {e!r} {e.args} {getattr(e, 'details', '')}" for e in errors)
    assert key not in text and secret not in text


def test_a_provider_message_echoing_the_credentials_is_scrubbed(logs: list[dict[str, Any]]) -> None:
    key, secret = "echo-key-5b2e", "echo-secret-9c1f"

    def echo(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        text = f"Invalid api_key {body['api_key']} with api_secret={body['api_secret']}"
        return httpx.Response(400, json={"error": "BAD_REQUEST", "message": text})

    client = HlrClient("http://hlr.test", key, secret, transport=httpx.MockTransport(echo))
    with client, pytest.raises(HlrBadRequest) as caught:
        client.lookup(numbers(1))
    text = f"{caught.value} {caught.value!r} {caught.value.to_dict()} {json.dumps(logs, default=str)}"
    assert "Invalid api_key" in text and "BAD_REQUEST" in text
    assert key not in text and secret not in text


def test_a_bad_number_anywhere_is_refused_before_any_paid_call(hlr_client: HlrClient, hlr_sim: SimAdmin) -> None:
    with pytest.raises(ValueError, match="not a phone number"):
        hlr_client.lookup([*numbers(100), "n/a"])
    with pytest.raises(ValueError, match="chunk_size"):
        hlr_client.lookup(numbers(2), chunk_size=81)
    assert hlr_sim.stats()["calls"] == {}
