"""VoluumClient against the Voluum simulator over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from phoneops.core.http import ProviderAuthError, ProviderRateLimited, ProviderUnavailable, RetryPolicy
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY
from phoneops.voluum.client import (
    Conversion,
    CostUpdate,
    VoluumAuthError,
    VoluumBadRequest,
    VoluumBadResponse,
    VoluumClient,
    VoluumError,
    VoluumNotFound,
    VoluumRateLimited,
    VoluumUnavailable,
)
from phoneops.voluum.wire import dimension, format_time, parse_time

FROM, TO = "2025-12-12T00:00:00.000Z", "2025-12-13T00:00:00.000Z"
TRAFFIC = ["customVariable1", "ip", "browserVersion", "osVersion"]
MakeClient = Callable[..., VoluumClient]
Load = Callable[..., dict[str, int]]


def visits(count: int, **extra: Any) -> list[dict[str, Any]]:
    return [
        {"customVariable1": f"4477009{i:05d}", "ip": f"198.51.100.{i % 250}", "osVersion": "IOS 18.6",
         "browserVersion": "Safari 18", "visits": 1, "uniqueVisits": 1, **extra}
        for i in range(count)
    ]


class Recorder(httpx.BaseTransport):
    """A real HTTP transport that keeps every request it sends (to inspect headers and bodies)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.requests: list[httpx.Request] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()

    def tokens(self) -> set[str]:
        return {r.headers["cwauth-token"] for r in self.requests if "cwauth-token" in r.headers}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- the session ---------------------------------------------------------------------------------------


def test_one_session_for_many_requests(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    voluum.report(FROM, TO, group_by=TRAFFIC)
    voluum.campaigns()
    list(voluum.iter_conversions(FROM, TO))
    voluum.offers(FROM, TO)
    stats = voluum_sim.stats()
    assert stats["tokens_issued"] == 1
    assert stats["calls"]["auth"] == 1
    assert sum(stats["calls"].values()) == 5
    assert voluum.session_expires is not None and voluum.session_expires > datetime.now(UTC)


def test_threads_share_one_session(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    errors: list[BaseException] = []

    def work() -> None:
        try:
            voluum.campaigns()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert voluum_sim.stats()["tokens_issued"] == 1
    assert voluum_sim.stats()["calls"]["campaign"] == 8


@pytest.mark.parametrize(("ttl", "renew_before", "kept_until", "renewed_at"), [(120, 60, 59, 61), (10, 60, 4, 6)])
def test_session_renewed_early(
    make_client: MakeClient, voluum_sim: SimAdmin, ttl: float, renew_before: float, kept_until: float,
    renewed_at: float,
) -> None:
    """Renewed `renew_before` seconds ahead of expiry (at most half its lifetime), not after a 401."""
    voluum_sim.configure(token_ttl_s=ttl)
    clock = FakeClock()
    client = make_client(clock=clock, renew_before_s=renew_before)
    client.campaigns()
    clock.now += kept_until
    client.campaigns()
    assert voluum_sim.stats()["tokens_issued"] == 1
    clock.now += renewed_at - kept_until
    client.campaigns()
    stats = voluum_sim.stats()
    assert stats["tokens_issued"] == 2
    assert stats.get("unauthorized", 0) == 0
    assert stats["calls"]["campaign"] == 3


def test_expired_session_renewed_once_on_401(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    voluum.campaigns()
    voluum_sim.advance(4 * 3600 + 1)  # the server's clock passes the expiry; ours does not know
    assert len(voluum.campaigns()) == 7
    stats = voluum_sim.stats()
    assert stats["unauthorized"] == 1
    assert stats["tokens_issued"] == 2
    assert stats["calls"]["campaign"] == 3


def test_second_401_raises_typed_error(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    voluum_sim.configure(token_ttl_s=0)  # every token is dead on arrival
    with pytest.raises(VoluumAuthError) as caught:
        voluum.report(FROM, TO, group_by=TRAFFIC)
    assert caught.value.status == 401
    assert caught.value.voluum_code == "UNAUTHORIZED"
    assert "Session token expired" in str(caught.value)
    assert isinstance(caught.value, ProviderAuthError)
    stats = voluum_sim.stats()
    assert stats["calls"] == {"auth": 2, "report": 2}  # renewed once, sent once more, then gave up


def test_bad_credentials_fail_at_once(make_client: MakeClient, voluum_sim: SimAdmin) -> None:
    client = make_client(access_key="wrong-key-123456")
    with pytest.raises(VoluumAuthError) as caught:
        client.campaigns()
    assert "Invalid access id or access key" in caught.value.description
    assert voluum_sim.stats()["calls"] == {"auth": 1}


def test_secrets_never_in_errors_or_logs(
    make_client: MakeClient, voluum_sim: SimAdmin, logs: list[dict[str, Any]]
) -> None:
    voluum_sim.configure(leaky_errors=True)  # the provider echoes what it was sent
    bad_key = "leaky-wrong-key-987654"
    with pytest.raises(VoluumAuthError) as bad:
        make_client(access_key=bad_key).campaigns()
    recorder = Recorder()
    client = make_client(transport=recorder)
    client.campaigns()
    voluum_sim.configure(token_ttl_s=0)
    voluum_sim.advance(4 * 3600 + 1)
    with pytest.raises(VoluumAuthError) as expired:
        client.campaigns()
    tokens = recorder.tokens()
    assert len(tokens) == 2
    secrets = [bad_key, DEFAULT_ACCESS_KEY, *tokens]
    texts = [str(bad.value), repr(bad.value), json.dumps(bad.value.details), str(expired.value),
             repr(expired.value), json.dumps(expired.value.details), repr(client),
             json.dumps(logs, default=str)]
    assert "***" in str(bad.value) and "***" in str(expired.value)  # the echo was there, and scrubbed
    assert logs and any(e["event"] == "voluum.error" for e in logs)
    for secret in secrets:
        assert all(secret not in text for text in texts), secret


# --- reports and paging --------------------------------------------------------------------------------


def test_report_parameters_on_the_wire(make_client: MakeClient, voluum_sim: SimAdmin) -> None:
    recorder = Recorder()
    client = make_client(transport=recorder)
    source = client.campaigns()[0].traffic_source_id
    page = client.report(
        datetime(2025, 12, 12, tzinfo=UTC), date(2025, 12, 13), group_by=TRAFFIC, currency="EUR",
        filters={"trafficSourceId": source}, columns=["visits", "uniqueVisits"], limit=500,
    )
    query = recorder.requests[-1].url.params
    assert query.get_list("groupBy") == ["custom-variable-1", "ip", "browser-version", "os-version"]
    assert (query["filter1"], query["filter1Value"]) == ("traffic-source", source)
    assert (query["from"], query["to"], query["tz"], query["currency"]) == (FROM, TO, "Etc/GMT", "EUR")
    assert (query["limit"], query["offset"]) == ("500", "0")
    assert page.total_rows == len(page.rows) > 0
    assert page.totals["visits"] == sum(r["visits"] for r in page.rows)
    assert set(page.rows[0]) >= {"customVariable1", "ip", "browserVersion", "osVersion", "visits", "uniqueVisits"}
    everything = client.report(FROM, TO, group_by=TRAFFIC)
    assert everything.totals["visits"] > page.totals["visits"]  # the filter narrowed it


def test_paging_across_pages(voluum: VoluumClient, voluum_sim: SimAdmin, load_data: Load,
                             logs: list[dict[str, Any]]) -> None:
    load_data(visits=visits(25))
    rows = list(voluum.iter_report_rows(FROM, TO, group_by=TRAFFIC, page_size=10))
    assert sorted(r["customVariable1"] for r in rows) == sorted(v["customVariable1"] for v in visits(25))
    assert voluum_sim.stats()["calls"]["report"] == 3
    assert [e["reason"] for e in logs if e["event"] == "voluum.paging.done"] == ["short_page"]


def test_paging_stops_at_total_rows_without_an_extra_call(voluum: VoluumClient, voluum_sim: SimAdmin,
                                                          load_data: Load) -> None:
    load_data(visits=visits(30))
    assert len(list(voluum.iter_report_rows(FROM, TO, group_by=TRAFFIC, page_size=10))) == 30
    assert voluum_sim.stats()["calls"]["report"] == 3


def test_paging_follows_a_server_capped_limit(voluum: VoluumClient, voluum_sim: SimAdmin, load_data: Load) -> None:
    load_data(visits=visits(25))
    voluum_sim.configure(max_limit=7)
    rows = list(voluum.iter_report_rows(FROM, TO, group_by=TRAFFIC, page_size=10))
    assert len({r["customVariable1"] for r in rows}) == 25
    assert voluum_sim.stats()["calls"]["report"] == 4  # 7 + 7 + 7 + 4


@pytest.mark.parametrize(("count", "shift", "calls", "rows"), [(25, 5, 3, 25), (30, 5, 4, 30), (25, -10, 2, 20)])
def test_paging_ends_when_total_rows_moves(voluum: VoluumClient, voluum_sim: SimAdmin, load_data: Load,
                                           count: int, shift: int, calls: int, rows: int) -> None:
    """totalRows grows (ends on a short or empty page) or shrinks (ends early) while we page."""
    load_data(visits=visits(count))
    voluum_sim.configure(shift_total_rows=shift)
    assert len(list(voluum.iter_report_rows(FROM, TO, group_by=TRAFFIC, page_size=10))) == rows
    assert voluum_sim.stats()["calls"]["report"] == calls


def test_paging_ends_on_an_empty_page(voluum: VoluumClient, voluum_sim: SimAdmin, load_data: Load,
                                      logs: list[dict[str, Any]]) -> None:
    load_data(visits=visits(30))
    voluum_sim.configure(empty_page_at=1)
    assert len(list(voluum.iter_report_rows(FROM, TO, group_by=TRAFFIC, page_size=10))) == 10
    assert voluum_sim.stats()["calls"]["report"] == 2
    assert [e["reason"] for e in logs if e["event"] == "voluum.paging.done"] == ["empty_page"]


def test_paging_hard_cap(make_client: MakeClient, voluum_sim: SimAdmin, load_data: Load,
                         logs: list[dict[str, Any]]) -> None:
    load_data(visits=visits(60))
    voluum_sim.configure(shift_total_rows=1000)  # totalRows that is never reached
    client = make_client(max_pages=5)
    assert len(list(client.iter_report_rows(FROM, TO, group_by=TRAFFIC, page_size=10))) == 50
    assert voluum_sim.stats()["calls"]["report"] == 5
    capped = [e for e in logs if e["event"] == "voluum.paging.done"]
    assert capped[0]["reason"] == "max_pages" and capped[0]["log_level"] == "warning"


def test_a_repeated_page_fails_instead_of_storing_duplicates(make_client: MakeClient, voluum_sim: SimAdmin,
                                                             load_data: Load, session: Any) -> None:
    from sqlalchemy import func, select

    from phoneops.core.security import SYSTEM
    from phoneops.numbers.models import PhoneNumber
    from phoneops.voluum import traffic
    from phoneops.voluum.models import TrafficRow

    load_data(visits=visits(30))
    voluum_sim.configure(ignore_offset=True)  # every page is the first page
    voluum = make_client(page_size=10)
    with pytest.raises(VoluumBadResponse, match="ignored the offset"):
        list(voluum.iter_report_rows(FROM, TO, group_by=TRAFFIC, page_size=10))
    with pytest.raises(VoluumBadResponse, match="same report page again for offset 10"):
        traffic.sync_day(session, SYSTEM, date(2025, 12, 12), voluum)
    assert session.scalar(select(func.count()).select_from(TrafficRow)) == 0
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 0


# --- conversions and entities --------------------------------------------------------------------------


def test_conversions_typed_and_paged(voluum: VoluumClient, voluum_sim: SimAdmin, load_data: Load) -> None:
    rows = [
        {"clickId": f"click{i}", "transactionId": f"tx{i}", "conversionType": "REG" if i % 2 else "FTD",
         "campaignId": "c-1", "campaignName": "Marketing Services 1 - United Kingdom - X", "offerName": "Offer A",
         "countryCode": "GB", "revenue": 12.5 * i, "customVariable1": "447700900123",
         "visitTimestamp": "2025-12-12T10:00:00Z", "postbackTimestamp": f"2025-12-12T{i:02d}:59:30Z"}
        for i in range(12)
    ]
    load_data(conversions=[*rows, rows[3]])  # a duplicated postback
    got = list(voluum.iter_conversions(FROM, TO, page_size=5))
    assert len(got) == 13
    assert voluum_sim.stats()["calls"]["conversions"] == 3
    first = next(c for c in got if c.click_id == "click0")
    assert first.postback_time == datetime(2025, 12, 12, 0, 59, 30, tzinfo=UTC)  # "12:59:30 AM"
    last = next(c for c in got if c.click_id == "click11")
    assert last.raw["postbackTimestamp"] == "2025-12-12 11:59:30 AM"
    assert last.key == ("click11", "tx11", "REG")
    assert last.revenue == Decimal("137.5")
    assert last.visit_time == datetime(2025, 12, 12, 10, tzinfo=UTC)
    assert (last.country_code, last.offer_name, last.custom_variable_1) == ("GB", "Offer A", "447700900123")
    assert len(last.raw) == 49
    assert len({c.key for c in got}) == 12


def test_empty_body_is_an_empty_page(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    voluum_sim.configure(empty_body_next=1)
    page = voluum.conversions(FROM, TO)
    assert (page.rows, page.total_rows) == ([], 0)
    assert len(voluum.conversions(FROM, TO).rows) > 0  # the next answer is whole again


def test_offers_and_campaigns(voluum: VoluumClient) -> None:
    offers = voluum.offers(FROM, TO)
    assert sorted(o.offer_name for o in offers) == [f"Offer {n}" for n in ("Alpha", "Bravo", "Casino", "Delta", "Echo")]
    campaigns = voluum.campaigns()
    assert len(campaigns) == 7
    uk = next(c for c in campaigns if c.country_code == "GB")
    assert uk.name.split(" - ")[1] == "United Kingdom"
    assert uk.url.startswith("https://trk.example.com/" + uk.campaign_id)
    assert voluum.campaign(uk.campaign_id) == uk
    assert {c.campaign_id for c in voluum.report_campaigns(FROM, TO)} == {c.campaign_id for c in campaigns}


# --- failures, retries, costs --------------------------------------------------------------------------


def test_reads_retried_on_5xx_and_429(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    voluum.campaigns()
    voluum_sim.configure(fail_next=2, error_status=503)
    assert voluum.report(FROM, TO, group_by=TRAFFIC).rows
    voluum_sim.configure(fail_next=2, error_status=429)
    assert voluum.report(FROM, TO, group_by=TRAFFIC).rows
    stats = voluum_sim.stats()
    assert stats["calls"]["report"] == 6
    assert (stats["statuses"]["503"], stats["statuses"]["429"]) == (2, 2)


@pytest.mark.parametrize(("status", "error"), [(503, VoluumUnavailable), (429, VoluumRateLimited)])
def test_read_retries_are_bounded(voluum: VoluumClient, voluum_sim: SimAdmin, status: int,
                                  error: type[VoluumError]) -> None:
    voluum.campaigns()
    voluum_sim.configure(fail_next=50, error_status=status)
    with pytest.raises(error) as caught:
        voluum.report(FROM, TO, group_by=TRAFFIC)
    assert voluum_sim.stats()["calls"]["report"] == 3  # FAST_RETRY: 3 attempts
    assert caught.value.status == status
    assert caught.value.web_request_id.startswith("req-vlm-")
    assert isinstance(caught.value, ProviderUnavailable | ProviderRateLimited)


def test_cost_push(make_client: MakeClient, voluum_sim: SimAdmin) -> None:
    recorder = Recorder()
    client = make_client(transport=recorder)
    campaign = client.campaigns()[0].campaign_id
    client.push_cost(campaign, date(2025, 12, 12), date(2025, 12, 13), 1, "USD")
    client.push_costs([CostUpdate(campaign, FROM, TO, Decimal("249.20"), "USD")])
    body = json.loads(recorder.requests[-2].content)
    assert body == {"costUpdateRequests": [{"campaignId": campaign, "from": "2025-12-12T00:00:00Z",
                                            "to": "2025-12-13T00:00:00Z", "timezone": "Etc/GMT", "cost": 1.0,
                                            "currency": "USD"}]}
    assert b'"cost":1.0' in recorder.requests[-2].content.replace(b" ", b"")  # never a bare integer
    costs = voluum_sim.stats()["costs"]
    assert [(c["campaignId"], c["cost"], c["currency"]) for c in costs] == [
        (campaign, 1.0, "USD"),
        (campaign, 249.2, "USD"),
    ]
    report = client.report(FROM, TO, group_by=["campaign"], currency="USD")
    assert report.totals["costSources"] == ["MANUAL_UPDATE"]
    assert report.totals["cost"] == pytest.approx(249.2)  # the latest push for the period wins


@pytest.mark.parametrize("status", [503, 500, 429])
def test_cost_push_is_never_retried(voluum: VoluumClient, voluum_sim: SimAdmin, status: int) -> None:
    campaign = voluum.campaigns()[0].campaign_id
    voluum_sim.configure(fail_next=1, error_status=status, fault_endpoints=["cost"])
    with pytest.raises(VoluumError) as caught:
        voluum.push_cost(campaign, FROM, TO, 10.5, "EUR")
    assert caught.value.status == status
    assert caught.value.maybe_sent is (status != 429)
    stats = voluum_sim.stats()
    assert stats["calls"]["cost"] == 1
    assert stats["costs"] == []


def test_cost_push_resent_once_after_a_401(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    campaign = voluum.campaigns()[0].campaign_id
    voluum_sim.advance(4 * 3600 + 1)
    voluum.push_cost(campaign, FROM, TO, 3.25, "EUR")
    stats = voluum_sim.stats()
    assert stats["calls"]["cost"] == 2  # refused (not applied), then applied once
    assert [c["cost"] for c in stats["costs"]] == [3.25]


def test_error_envelope_becomes_typed_errors(voluum: VoluumClient, voluum_sim: SimAdmin) -> None:
    with pytest.raises(VoluumBadRequest) as bad:
        voluum.report("2025-12-12T00:30:00.000Z", TO, group_by=TRAFFIC)
    assert bad.value.voluum_code == "BAD_REQUEST"
    assert "whole hours" in str(bad.value) and bad.value.description in str(bad.value)
    with pytest.raises(VoluumNotFound, match="not found"):
        voluum.campaign("00000000-0000-4000-8000-000000000000")
    with pytest.raises(VoluumNotFound, match="Campaign not found"):
        voluum.push_cost("00000000-0000-4000-8000-000000000000", FROM, TO, 1.5, "EUR")
    voluum_sim.configure(fail_next=1, error_status=403)
    with pytest.raises(VoluumRateLimited, match=r"LOCKED: Quota limit \(10\) of requests exceeded"):
        voluum.campaigns()
    stats = voluum_sim.stats()
    assert (stats["calls"]["report"], stats["calls"]["campaign"], stats["calls"]["cost"]) == (1, 2, 1)  # no retries


def test_unreachable_voluum_is_a_bounded_transport_error(make_client: MakeClient) -> None:
    client = make_client(base_url="http://127.0.0.1:9", retry=RetryPolicy(attempts=2, total_timeout=2.0,
                                                                           wait_initial=0.01, wait_jitter=0.0))
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable) as caught:
        client.campaigns()
    assert caught.value.maybe_sent is False
    assert time.monotonic() - started < 2.0


# --- client-side rate limit ----------------------------------------------------------------------------


def _paced(client: VoluumClient, calls: int, voluum_sim: SimAdmin) -> tuple[float, dict[str, Any]]:
    started = time.monotonic()
    for _ in range(calls - 1):
        client.campaigns()  # + 1 auth call
    return time.monotonic() - started, voluum_sim.stats()


def test_rate_limiter_keeps_under_the_limit(make_client: MakeClient, voluum_sim: SimAdmin) -> None:
    voluum_sim.configure(rate_limit_per_s=23, retry_after_s=1.0)
    elapsed, stats = _paced(make_client(requests_per_second=20.0, retry=RetryPolicy(attempts=1)), 30, voluum_sim)
    assert "429" not in stats["statuses"]
    assert stats["requests_per_second_peak"] <= 22
    assert elapsed >= 29 / 20 * 0.9


def test_default_rate_is_under_voluums_limit(voluum_sim: SimAdmin, voluum_sim_url: str) -> None:
    voluum_sim.configure(rate_limit_per_s=14, retry_after_s=1.0)
    with VoluumClient(voluum_sim_url, DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, retry=RetryPolicy(attempts=1)) as client:
        elapsed, stats = _paced(client, 15, voluum_sim)
    assert "429" not in stats["statuses"]
    assert stats["requests_per_second_peak"] <= 14
    assert elapsed >= 14 / 12 * 0.9


# --- wire helpers --------------------------------------------------------------------------------------


def test_wire_helpers() -> None:
    assert [dimension(n) for n in ("customVariable1", "trafficSourceId", "osVersion", "ip", "os-version")] == [
        "custom-variable-1", "traffic-source", "os-version", "ip", "os-version"]
    assert format_time(datetime(2025, 12, 31, 23, tzinfo=UTC)) == "2025-12-31T23:00:00.000Z"
    assert format_time(date(2026, 1, 1), millis=False) == "2026-01-01T00:00:00Z"
    assert parse_time("2025-10-01 12:20:43 AM") == datetime(2025, 10, 1, 0, 20, 43, tzinfo=UTC)
    assert parse_time("2025-10-01 12:20:43 PM") == datetime(2025, 10, 1, 12, 20, 43, tzinfo=UTC)
    assert parse_time("") is None and parse_time("garbage") is None
    assert Conversion.from_row({}).key == ("", "", "")
    with pytest.raises(ValueError, match="currency"):
        CostUpdate("c", FROM, TO, 1, "euro").to_json()
    with pytest.raises(ValueError, match="finite cost"):
        CostUpdate("c", FROM, TO, float("nan"), "EUR").to_json()
