"""Item 2 of issue 13: a click whose OS field is empty is classified by its User-Agent in every path.

Voluum's traffic report has no User-Agent; its conversions (and live events) have one. Synced against the
simulator over real HTTP: the conversions first, then the traffic of the same day, whose rows carry no OS.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from phoneops.core import jobs
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import status_of_indexes
from phoneops.numbers.models import NumberEvent
from phoneops.numbers.vault import get_vault
from phoneops.simulators import voluum_data as vd
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY
from phoneops.voluum import conversions, live, reclassify, traffic
from phoneops.voluum.models import TrafficRow
from phoneops.voluum.provider import reset_clients

Load = Callable[..., dict[str, int]]

DAY = date(2026, 2, 3)
IOS_17 = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.5 Mobile/15E148 Safari/604.1")
ANDROID_6 = ("Mozilla/5.0 (Linux; Android 6.0.1; SM-G920F) AppleWebKit/537.36 (KHTML, like Gecko) "
             "Chrome/90.0.4430.91 Mobile Safari/537.36")


@pytest.fixture
def voluum_env(voluum_sim_url: str, voluum_sim: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from phoneops.settings import reset_settings_cache

    for name, value in (("BASE_URL", voluum_sim_url), ("ACCESS_ID", DEFAULT_ACCESS_ID),
                        ("ACCESS_KEY", DEFAULT_ACCESS_KEY)):
        monkeypatch.setenv(f"VOLUUM_{name}", value)
    reset_settings_cache()
    reset_clients()
    yield voluum_sim_url
    monkeypatch.undo()
    reset_settings_cache()
    reset_clients()


def phone(n: int) -> str:
    return f"+4479111234{n:02d}"


def visit(e164: str, os_version: str, hour: int) -> dict[str, Any]:
    moment = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)
    return {"timestamp": vd.iso(moment), "customVariable1": e164, "ip": "203.0.113.9", "osVersion": os_version,
            "browserVersion": "Chrome Mobile 144", "visits": 1, "uniqueVisits": 1, "clicks": 1,
            "trafficSourceId": "src-a", "campaignId": "camp-1", "offerId": "offer-1"}


def conversion(click: str, e164: str, agent: str, hour: int) -> dict[str, Any]:
    moment = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)
    return {"clickId": click, "transactionId": f"tx-{click}", "conversionType": "REG",
            "postbackTimestamp": vd.iso(moment), "visitTimestamp": vd.iso(moment - timedelta(minutes=5)),
            "campaignId": "camp-1", "campaignName": "Marketing Services 1 - United Kingdom - X",
            "offerId": "offer-1", "offerName": "Offer A", "customVariable1": e164, "countryCode": "GB",
            "os": "", "osVersion": "", "userAgent": agent, "revenue": 0.0}


@pytest.mark.usefixtures("voluum_env")
def test_empty_os_field_is_read_from_the_user_agent_by_the_sync_and_the_reevaluation(
    db_url: str, load_data: Load
) -> None:
    ios, android, unknown, plain = phone(1), phone(2), phone(3), phone(4)
    load_data(
        visits=[visit(ios, "", 10), visit(android, "", 11), visit(unknown, "  ", 12), visit(plain, "Android 14", 13)],
        conversions=[conversion("c-ios", ios, IOS_17, 9), conversion("c-android", android, ANDROID_6, 9),
                     conversion("c-plain", plain, ANDROID_6, 9)],
    )
    start = datetime.combine(DAY, datetime.min.time(), tzinfo=UTC)
    with session_scope() as session:
        conversions.sync_window(session, SYSTEM, start, start + timedelta(days=1))
    with session_scope() as session:
        job_id = traffic.start_sync(session, SYSTEM, DAY).id
    assert jobs.run_job(job_id) == "succeeded"

    vault = get_vault()
    with session_scope() as session:
        statuses = status_of_indexes(session, [vault.index(n) for n in (ios, android, unknown, plain)])
        assert statuses == {
            vault.index(ios): "whitelist",  # iOS 17 by its User-Agent
            vault.index(android): "blacklist",  # Android 6 by its User-Agent
            vault.index(unknown): None,  # no OS and no User-Agent: unknown, no list
            vault.index(plain): "whitelist",  # the OS field wins when it names an OS (Android 14)
        }
        event = session.scalars(select(NumberEvent).where(
                                                  NumberEvent.source == "VOLUUM",
                                                  NumberEvent.status == "blacklist")).one()
        assert event.evidence["user_agent"] == ANDROID_6 and event.evidence["os"] == "android"
        assert event.evidence["version"] == 6 and event.evidence["os_text"] == ""
        # The re-evaluation reads the same rows the same way: nothing would move.
        assert reclassify.preview(session)["moving"] == 0


@pytest.mark.usefixtures("voluum_env")
def test_a_live_click_without_an_os_is_read_from_its_user_agent_and_lends_it_to_the_traffic_sync(
    db_url: str, load_data: Load
) -> None:
    e164 = phone(5)
    event = {"clickId": "c-live", "campaignId": "camp-1", "offerId": "offer-1", "timestamp": "2026-02-03T08:00:00Z",
             "os": "", "osVersion": "", "userAgent": ANDROID_6, "customVariables": [e164[1:]] + [""] * 9}
    with session_scope() as session:
        assert live.ingest(session, [("m-live", [event])], source="http").numbers == 1
    index = get_vault().index(e164)
    with session_scope() as session:
        assert status_of_indexes(session, [index]) == {index: "blacklist"}  # Android 6 by the event's User-Agent
        first = session.scalars(select(NumberEvent).where(NumberEvent.source == "VOLUUM_LIVE")).one()
        assert first.evidence["os"] == "android" and first.evidence["version"] == 6
    # the day's report has the number with no OS and no conversion: the live event's User-Agent decides
    load_data(visits=[visit(e164, "", 10)], conversions=[])
    with session_scope() as session:
        job_id = traffic.start_sync(session, SYSTEM, DAY).id
    assert jobs.run_job(job_id) == "succeeded"
    with session_scope() as session:
        row = session.scalars(select(TrafficRow).where(TrafficRow.blind_index == index)).one()
        assert (row.os_version, row.category) == ("", "blacklist")
