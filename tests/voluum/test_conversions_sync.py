"""Conversions sync against the Voluum simulator: overlapping windows, idempotence, countries, lookups."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from phoneops.core import jobs
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import status_of_indexes
from phoneops.numbers.vault import get_vault
from phoneops.simulators import voluum_data as vd
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY
from phoneops.voluum import conversions
from phoneops.voluum.conversions import campaign_country, converted_indexes, country_code, periodic_window
from phoneops.voluum.models import Campaign, Conversion, ConversionSync, Offer
from phoneops.voluum.provider import reset_clients

Load = Callable[..., dict[str, int]]
UK = "Marketing Services 1 - United Kingdom - X"


@pytest.fixture
def voluum_env(voluum_sim_url: str, voluum_sim: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.lookups import reset_refresh_clock

    monkeypatch.setenv("VOLUUM_BASE_URL", voluum_sim_url)
    monkeypatch.setenv("VOLUUM_ACCESS_ID", DEFAULT_ACCESS_ID)
    monkeypatch.setenv("VOLUUM_ACCESS_KEY", DEFAULT_ACCESS_KEY)
    reset_settings_cache()
    reset_clients()
    reset_refresh_clock()
    yield voluum_sim_url
    monkeypatch.undo()
    reset_settings_cache()
    reset_clients()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def conversion(click: str, moment: datetime, *, kind: str = "REG", phone: str = "+447911123401",
               campaign: str = UK, offer: str = "offer-a", transaction: str = "") -> dict[str, Any]:
    return {"clickId": click, "transactionId": transaction or f"tx-{click}", "conversionType": kind,
            "postbackTimestamp": vd.iso(moment), "visitTimestamp": vd.iso(moment - timedelta(minutes=5)),
            "campaignId": f"camp-{campaign[:10]}", "campaignName": campaign, "offerId": offer,
            "offerName": f"Offer {offer[-1].upper()}", "customVariable1": phone, "countryCode": "GB",
            "revenue": 100.0 if kind == "FTD" else 0.0}


def add(voluum_sim_url: str, *rows: dict[str, Any]) -> None:
    httpx.post(f"{voluum_sim_url}/_sim/data", json={"conversions": list(rows), "append": True},
               timeout=10).raise_for_status()


def stored() -> list[tuple[str, str, str, str, str | None]]:
    with session_scope() as session:
        return sorted((c.click_id, c.transaction_id, c.conversion_type, c.kind, c.country)
                      for c in session.scalars(select(Conversion)))


# --- the Done-when proof -------------------------------------------------------------------------------


def test_a_conversion_in_the_last_minute_of_an_hour_is_synced(db_url: str, voluum_env: str, load_data: Load) -> None:
    load_data(conversions=[conversion("early", at("2025-12-12T10:20:00"))])
    first = conversions.periodic_sync(now=at("2025-12-12T10:58:00"))
    assert first is not None
    assert (first.window_from, first.window_to) == (at("2025-12-12T09:00:00"), at("2025-12-12T11:00:00"))
    assert stored() == [("early", "tx-early", "REG", "REG", "GB")]

    # Posted at 10:59:30, visible in Voluum only after the hour turned: the next window still covers it.
    add(voluum_env, conversion("late", at("2025-12-12T10:59:30"), kind="FTD"))
    second = conversions.periodic_sync(now=at("2025-12-12T11:02:00"))
    assert second is not None
    assert (second.window_from, second.window_to) == (at("2025-12-12T10:00:00"), at("2025-12-12T12:00:00"))
    assert second.inserted == 1 and second.duplicates == 1
    assert [c[0] for c in stored()] == ["early", "late"]


def test_periodic_window_catches_up_after_a_gap(db_url: str) -> None:
    with session_scope() as session:
        assert periodic_window(session, at("2025-12-12T11:02:00")) == (at("2025-12-12T10:00:00"),
                                                                       at("2025-12-12T12:00:00"))
        session.add(ConversionSync(trigger="periodic", window_from=at("2025-12-12T04:00:00"),
                                   window_to=at("2025-12-12T06:00:00"), status="succeeded"))
        session.flush()
        assert periodic_window(session, at("2025-12-12T11:02:00"))[0] == at("2025-12-12T05:00:00")
        assert periodic_window(session, at("2026-02-12T11:02:00"))[0] == at("2026-02-05T12:00:00")  # 7 days max


def test_resync_is_idempotent_and_duplicates_are_stored_once(db_url: str, voluum_env: str, load_data: Load) -> None:
    token = get_vault().cipher.encrypt("+447911123402")
    rows = [
        conversion("c1", at("2025-12-12T10:05:00")),
        conversion("c1", at("2025-12-12T10:05:00")),  # the same postback twice, as Voluum sends them
        conversion("c1", at("2025-12-12T11:05:00"), kind="FTD"),  # same click, another conversion type
        conversion("c2", at("2025-12-12T10:07:00"), phone=token, campaign="Legacy test campaign"),
        conversion("c3", at("2025-12-12T10:09:00"), phone="{{phoneNumber}}", campaign="Promo - Germany"),
    ]
    load_data(conversions=rows)
    with session_scope() as session:
        once = conversions.sync_window(session, SYSTEM, at("2025-12-12T10:00:00"), at("2025-12-12T12:00:00"))
        assert (once.rows, once.inserted, once.duplicates, once.unknown_country) == (5, 4, 1, 1)
    with session_scope() as session:
        again = conversions.sync_window(session, SYSTEM, at("2025-12-12T10:30:00"), at("2025-12-12T11:10:00"))
        assert (again.window_from, again.window_to) == (at("2025-12-12T10:00:00"), at("2025-12-12T12:00:00"))
        assert again.inserted == 0
    assert stored() == [("c1", "tx-c1", "FTD", "FTD", "GB"), ("c1", "tx-c1", "REG", "REG", "GB"),
                        ("c2", "tx-c2", "REG", "REG", None), ("c3", "tx-c3", "REG", "REG", "DE")]
    vault = get_vault()
    with session_scope() as session:
        by_click = {c.click_id: c for c in session.scalars(select(Conversion))}
        assert by_click["c2"].blind_index == vault.index("+447911123402")  # the token was decrypted
        assert by_click["c2"].number_kind == "token"
        assert by_click["c3"].blind_index is None and by_click["c3"].number_kind == "placeholder"
        assert "customVariable1" not in by_click["c1"].raw and by_click["c1"].raw["countryCode"] == "GB"
        indexes = [vault.index(n) for n in ("+447911123401", "+447911123402", "+447911123499")]
        assert converted_indexes(session, indexes) == set(indexes[:2])
        # converting numbers are registered in the number core, on no list
        assert status_of_indexes(session, indexes[:2]) == {indexes[0]: None, indexes[1]: None}
        assert conversions.counts_by_country(session) == {"DE": {"REG": 1, "FTD": 0}, "GB": {"REG": 1, "FTD": 1},
                                                          "unknown": {"REG": 1, "FTD": 0}}


def test_unknown_offers_and_campaigns_refresh_the_lookups(
    db_url: str, voluum_env: str, voluum_sim: SimAdmin, load_data: Load
) -> None:
    data = httpx.get(f"{voluum_env}/_sim/data", timeout=10).json()
    offer, campaign = data["offers"][0], data["campaigns"][0]
    row = conversion("c1", at("2025-12-12T10:05:00"), offer=offer["id"])
    row.update(campaignId=campaign["id"], campaignName=campaign["name"])
    load_data(conversions=[row])
    with session_scope() as session:
        conversions.sync_window(session, SYSTEM, at("2025-12-12T10:00:00"), at("2025-12-12T11:00:00"))
    with session_scope() as session:
        offers = {o.offer_id: o.name for o in session.scalars(select(Offer))}
        campaigns = {c.campaign_id: c for c in session.scalars(select(Campaign))}
        assert offers[offer["id"]] == offer["name"] and len(offers) == len(data["offers"])
        assert len(campaigns) == len(data["campaigns"])
        assert campaigns[campaign["id"]].country_code == campaign["country"]["code"]
    calls = voluum_sim.stats()["calls"]
    with session_scope() as session:  # known ids now: no second refresh
        conversions.sync_window(session, SYSTEM, at("2025-12-12T10:00:00"), at("2025-12-12T11:00:00"))
    assert voluum_sim.stats()["calls"].get("campaign") == calls.get("campaign")


def test_refresh_while_another_worker_records_the_same_ids_upserts_them(
    db_url: str, voluum_env: str, voluum_sim: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manual refresh and a sync's automatic refresh (or a live event) may write the same ids at once: the
    second writer updates the rows instead of failing with a duplicate key (once a 500 on /voluum)."""
    from phoneops.voluum import lookups
    from phoneops.voluum.provider import get_client

    data = httpx.get(f"{voluum_env}/_sim/data", timeout=10).json()
    campaign, offer = data["campaigns"][0], data["offers"][0]
    raced: list[bool] = []

    def race() -> None:  # the other worker commits between our read of the known ids and our write
        monkeypatch.setattr(lookups, "_last_auto_refresh", datetime.now(UTC))  # it just refreshed: records only
        with session_scope() as other:
            lookups.note_entities(other, SYSTEM, campaigns={campaign["id"]: "seen in a conversion"},
                                  offers={offer["id"]: ""}, client=None)

    with session_scope() as session:
        read = session.scalars

        def read_then_race(statement: Any, *args: Any, **kwargs: Any) -> Any:
            rows = list(read(statement, *args, **kwargs))
            if not raced and "voluum_campaigns" in str(statement):
                raced.append(True)
                race()
            return rows

        monkeypatch.setattr(session, "scalars", read_then_race)
        result = lookups.refresh(session, SYSTEM, get_client())
    assert raced
    with session_scope() as session:
        campaigns = {c.campaign_id: c for c in session.scalars(select(Campaign))}
        offers = {o.offer_id: o.name for o in session.scalars(select(Offer))}
    assert result.campaigns == len(data["campaigns"]) == len(campaigns)
    assert result.new_campaigns == len(data["campaigns"])  # none was known when the refresh read them
    assert campaigns[campaign["id"]].name == campaign["name"]  # Voluum's name wins over the placeholder
    assert campaigns[campaign["id"]].country_code == campaign["country"]["code"]
    assert offers[offer["id"]] == offer["name"]


def test_campaign_country_rule() -> None:
    assert campaign_country(UK) == "GB"
    assert campaign_country("Marketing Services 4 - United States - Y") == "US"
    assert campaign_country("Promo - UK") == "GB"
    assert campaign_country("A - Côte d'Ivoire - B") == "CI"
    assert campaign_country("Legacy test campaign") is None  # the original failed the whole request here
    assert campaign_country("A - Atlantis - B") is None
    custom = re.compile(r"^(?P<country>[A-Z]{2})_")
    assert campaign_country("DE_spring_push", custom) == "DE"
    assert country_code("gb") == "GB" and country_code("Great Britain") == "GB" and country_code("") is None
    with pytest.raises(Exception, match="group"):
        conversions.country_rule("no group here")


def test_country_rule_comes_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    setting = SimpleNamespace(voluum_campaign_country_pattern=r"\[(?P<country>[A-Za-z ]+)\]$")
    monkeypatch.setattr(conversions, "get_settings", lambda: setting)
    assert campaign_country("Spring push [DE]") == "DE"
    assert campaign_country("Spring push [Spain]") == "ES"
    assert campaign_country(UK) is None


def test_periodic_does_nothing_without_credentials(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.delenv("VOLUUM_ACCESS_KEY", raising=False)
    reset_settings_cache()
    assert conversions.periodic_sync() is None
    with session_scope() as session:
        assert session.scalar(select(func.count(ConversionSync.id))) == 0


def test_a_failed_periodic_sync_is_recorded(db_url: str, voluum_env: str, voluum_sim: SimAdmin) -> None:
    from phoneops.voluum.client import VoluumAuthError

    voluum_sim.configure(fail_next=1, error_status=401, fault_endpoints=["auth"])
    with pytest.raises(VoluumAuthError):
        conversions.periodic_sync(now=at("2025-12-12T10:58:00"))
    with session_scope() as session:
        record = session.scalars(select(ConversionSync)).one()
        assert record.status == "failed" and "401" in (record.error or "")


def test_range_job_through_the_api(
    client: Any, users: Any, inline_jobs: list[str], voluum_env: str, load_data: Load
) -> None:
    load_data(conversions=[conversion("d1", at("2025-12-30T23:59:50")), conversion("d2", at("2025-12-31T00:00:10"),
                                                                                       kind="FTD")])
    headers = users.headers("operator")
    started = client.post("/api/voluum/conversions/sync", json={"from": "2025-12-30", "to": "2025-12-31"},
                          headers=headers)
    assert started.status_code == 202, started.text
    job = client.get(f"/api/jobs/{started.json()['id']}", headers=headers).json()
    assert job["status"] == "succeeded" and job["result"]["inserted"] == 2 and job["progress_done"] == 2
    counts = client.get("/api/voluum/conversions/counts?days=3660", headers=headers).json()
    assert counts == {"GB": {"REG": 1, "FTD": 1}}
    syncs = client.get("/api/voluum/conversions/syncs", headers=headers).json()
    assert [s["trigger"] for s in syncs] == ["manual", "manual"]
    offers = client.get("/api/voluum/offers?country=GB", headers=headers).json()
    assert offers == [{"id": "offer-a", "name": "Offer A", "REG": 1, "FTD": 1}]
    with session_scope() as session:
        assert jobs.list_jobs(session, kind="voluum.conversions")[0].status == "succeeded"
