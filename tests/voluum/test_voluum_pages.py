"""Voluum pages and find-a-number, through the HTTP app (session cookie + CSRF on forms)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY
from phoneops.voluum import conversions, live, traffic
from phoneops.voluum.provider import reset_clients
from phoneops.voluum.wire import Conversion as WireConversion
from support import login

NUMBER = "+447400123456"


@pytest.fixture
def voluum_env(voluum_sim_url: str, voluum_sim: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("VOLUUM_BASE_URL", voluum_sim_url)
    monkeypatch.setenv("VOLUUM_ACCESS_ID", DEFAULT_ACCESS_ID)
    monkeypatch.setenv("VOLUUM_ACCESS_KEY", DEFAULT_ACCESS_KEY)
    reset_settings_cache()
    reset_clients()
    yield voluum_sim_url
    monkeypatch.undo()
    reset_settings_cache()
    reset_clients()


@pytest.fixture
def known_number(db_url: str) -> None:
    """One number with a manual status, a traffic row, a conversion and a live event."""
    with session_scope() as session:
        apply_verdicts(session, SYSTEM, [Verdict(NUMBER, "monitor", Authority.manual, reason="CHECK")])
        traffic.store_day(session, SYSTEM, date(2025, 12, 31), [("src-a", {
            "customVariable1": NUMBER[1:], "ip": "203.0.113.5", "osVersion": "Android 9",
            "browserVersion": "Chrome Mobile 144", "visits": 2, "uniqueVisits": 2})])
        conversions.store(session, SYSTEM, [WireConversion.from_row({
            "clickId": "k1", "transactionId": "t1", "conversionType": "FTD", "campaignName": "A - United Kingdom - B",
            "offerId": "offer-a", "offerName": "Offer A", "customVariable1": NUMBER,
            "postbackTimestamp": "2025-12-31 10:59:30 PM"})])
        live.ingest(session, [("m1", [{"clickId": "k1", "offerId": "offer-a", "timestamp": "2026-01-01T08:00:00Z",
                                       "customVariables": [NUMBER], "os": "Android", "osVersion": "9"}])],
                    source="http")


def test_find_a_number_api_shows_everything(client: Any, users: Any, known_number: None) -> None:
    viewer = users.headers("viewer")
    found = client.get("/api/voluum/find", params={"number": "07400 123456"}, headers=viewer)
    assert found.status_code == 200, found.text
    report = found.json()
    assert report["number"] == NUMBER and report["country"] == "GB"
    assert report["status"]["status"] == "monitor"  # the manual decision outranks the Android 9 traffic verdict
    assert report["traffic_rows"] == 1 and report["traffic"][0]["category"] == "monitor"
    assert report["conversions"][0]["kind"] == "FTD" and report["conversions"][0]["country"] == "GB"
    assert report["conversions"][0]["postback_at"].startswith("2025-12-31T22:59:30")
    assert report["live"]["offer_id"] == "offer-a" and len(report["live_events"]) == 1
    assert report["hlr"] == []  # never looked up (tests/numbers/test_number_story.py: one that was)
    # parameterised: an injection attempt is just a value that is not a number
    hostile = client.get("/api/voluum/find", params={"number": "1' OR '1'='1"}, headers=viewer)
    assert hostile.status_code == 422
    unknown = client.get("/api/voluum/find", params={"number": "+447400123457"}, headers=viewer).json()
    assert unknown["status"] is None and unknown["traffic"] == [] and unknown["conversions"] == []


def test_pages_render_for_a_viewer(client: Any, users: Any, known_number: None) -> None:
    users.create("viewer", "vera")
    login(client, "vera")
    overview = client.get("/voluum")
    assert overview.status_code == 200 and "2025-12-31" in overview.text and "not configured" in overview.text
    assert 'action="/voluum/traffic"' not in overview.text  # viewers see no sync form
    found = client.get("/voluum/find", params={"number": NUMBER})
    assert found.status_code == 200 and "data-number-report" in found.text and "Offer A" in found.text
    bad = client.get("/voluum/find", params={"number": "nonsense"})
    assert bad.status_code == 422 and "not a valid phone number" in bad.text
    for path in ("/voluum/smart", "/voluum/costs", "/voluum/live"):
        page = client.get(path)
        assert page.status_code == 200, path
    assert "Start smart cleaning" not in client.get("/voluum/smart").text  # operators only
    assert "<h2>Dead letters</h2>" not in client.get("/voluum/live").text  # their bodies: operators only
    assert client.post("/voluum/traffic", data={"from": "2025-12-31"}, follow_redirects=False).status_code == 403


def test_operator_forms_start_jobs_and_show_errors(client: Any, users: Any, voluum_env: str) -> None:
    users.create("operator", "otto")
    csrf = login(client, "otto")
    missing_csrf = client.post("/voluum/traffic", data={"from": "2025-12-31"}, follow_redirects=False)
    assert missing_csrf.status_code == 403
    bad = client.post("/voluum/traffic", data={"from": "2026-01-02", "to": "2025-12-31", "csrf_token": csrf})
    assert bad.status_code == 422 and "before it starts" in bad.text
    started = client.post("/voluum/traffic", data={"from": "2025-12-31", "csrf_token": csrf}, follow_redirects=False)
    assert started.status_code == 303
    page = client.get("/voluum")
    assert "Voluum traffic 2025-12-31" in page.text and re.search(r'data-job-status="queued"', page.text)
    conv = client.post("/voluum/conversions", data={"from": "2025-12-31", "csrf_token": csrf}, follow_redirects=False)
    assert conv.status_code == 303
    smart_bad = client.post("/voluum/smart", data={"source": "country", "country": "GB", "from": "2025-12-01",
                                                   "to": "2025-12-02", "csrf_token": csrf})
    assert smart_bad.status_code == 422 and "choose at least one offer" in smart_bad.text
    costs = client.post("/voluum/costs", data={"day": "2026-02-05", "lines": "only-an-id", "csrf_token": csrf})
    assert costs.status_code == 422 and "CAMPAIGN_ID=COST" in costs.text
    refreshed = client.post("/voluum/lookups/refresh", data={"csrf_token": csrf}, follow_redirects=False)
    assert refreshed.status_code == 303
    with session_scope() as session:
        assert session.scalar(select(func.count(Job.id))) == 2


def test_status_endpoint(client: Any, users: Any, voluum_env: str) -> None:
    status = client.get("/api/voluum/status", headers=users.headers("viewer")).json()
    assert status["configured"] is True and status["sqs_configured"] is False and status["currency"] == "EUR"
    assert status["last_traffic_day"] is None and status["live"]["raw_events"] == 0
    assert datetime.now(UTC)  # the page and the API agree on an empty start
