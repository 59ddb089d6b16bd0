"""Retention keeps what filters need (docs/retention.md): build a tracker history, purge its old raw rows, and
every answer built on them is the same before and after — a number's list status and story, list cleaning's
"converted" filter, smart cleaning, REG search, offers, conversions per country and the OS re-evaluation —
while the raw rows are really gone. Old depositors never come back as clean."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core import jobs
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM, Principal, Role
from phoneops.core.storage import get_file, get_storage
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.numbers.osrules import DEFAULT_RULES, ListStatus, OsRule
from phoneops.numbers.vault import get_vault
from phoneops.privacy import retention
from phoneops.sources import service as sources
from phoneops.voluum import conversions, reclassify, smart, traffic
from phoneops.voluum.models import Conversion, ConversionFact, TrafficFact, TrafficRow
from phoneops.voluum.wire import Conversion as WireConversion
from support import login

NOW = datetime.now(UTC)
# Past a 30-day retention; in the morning, so the events a few hours after OLD fall on OLD's day whenever the
# test runs (from 21:00 UTC, OLD + 3 h was the next day and the day's revenue moved with it).
OLD = (NOW - timedelta(days=40)).replace(hour=8, minute=0, second=0, microsecond=0)
RECENT = NOW - timedelta(days=2)
ADMIN = Principal(None, "amy", Role.admin, via="cli")
GB = "Marketing Services 1 - United Kingdom - X"


def phone(n: int) -> str:
    return f"+4474001234{n:02d}"


def conv(click: str, n: int, kind: str, offer: str, moment: datetime, revenue: str = "0") -> WireConversion:
    return WireConversion.from_row({"revenue": revenue,
        "clickId": click, "transactionId": f"t-{click}", "conversionType": kind, "campaignId": "c-1",
        "campaignName": GB, "offerId": offer, "offerName": f"Offer {offer[-1].upper()}",
        "customVariable1": phone(n)[1:], "postbackTimestamp": moment.isoformat(),
        "visitTimestamp": (moment - timedelta(hours=1)).isoformat(),
    })


def visit(n: int, os_version: str, visits: int) -> tuple[str, dict[str, Any]]:
    return ("ts-1", {"customVariable1": phone(n)[1:], "osVersion": os_version, "browserVersion": "Safari",
                     "ip": f"203.0.113.{n}", "visits": visits, "clicks": 1})


@pytest.fixture
def history(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """1 REG+FTD, 2 REG only, 3 REG old + FTD recent, 4 REG recent (other offer), 5 never converted, 6 two REGs;
    traffic of 1, 2 and 5 on an old day, of 1 and 2 on a recent one. All whitelisted today."""
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("RETENTION_TRACKER_EVENTS_DAYS", "30")
    monkeypatch.setenv("RETENTION_HLR_RAW_DAYS", "0")
    reset_settings_cache()
    with session_scope() as session:
        conversions.store(session, SYSTEM, [
            conv("k1r", 1, "REG", "offer-a", OLD), conv("k1f", 1, "FTD", "offer-a", OLD + timedelta(hours=3), "150.25"),
            conv("k2", 2, "REG", "offer-a", OLD),
            conv("k3r", 3, "REG", "offer-a", OLD - timedelta(days=1)), conv("k3f", 3, "FTD", "offer-a", RECENT, "80"),
            conv("k4", 4, "REG", "offer-b", RECENT),
            conv("k6a", 6, "REG", "offer-a", OLD, "2.5"), conv("k6b", 6, "REG", "offer-a", OLD + timedelta(hours=2)),
        ])
        traffic.store_day(session, SYSTEM, OLD.date(), [visit(1, "iOS 16.1", 3), visit(2, "Android 14", 2),
                                                        visit(5, "Android 14", 1)], rules=[])
        traffic.store_day(session, SYSTEM, RECENT.date(), [visit(1, "iOS 18", 1), visit(2, "Android 13", 4)],
                          rules=[])
        apply_verdicts(session, SYSTEM, [Verdict(phone(n), "whitelist", Authority.auto, "OS_VERSION", "VOLUUM")
                                         for n in range(1, 7)])
        for label, members in (("early", (1, 2, 3)), ("late", (3, 4, 5, 6))):  # sources (docs/sources.md)
            sources.label_list(session, ADMIN, label, "import", label, label)
            sources.record(session, "import", label, [(get_vault().index(phone(n)), True) for n in members])
    yield
    monkeypatch.undo()
    reset_settings_cache()


def _run(job_id: str) -> list[list[str]]:
    assert jobs.run_job(job_id) == "succeeded"
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        data = b"".join(get_storage().iter_bytes(get_file(session, job.result["file_id"])))
        counts = {k: v for k, v in job.result.items() if k != "file_id"}
    return [[str(counts)], *csv.reader(io.StringIO(data.decode()))]


def _observe(client: Any, admin: dict[str, str]) -> dict[str, Any]:
    """Every answer the history feeds, through the API and the service entry points."""
    seen: dict[str, Any] = {}
    for n in range(1, 7):
        story = client.get(f"/api/numbers/{phone(n)}", headers=admin)
        assert story.status_code == 200, story.text
        body = story.json()
        voluum = body["voluum"]
        seen[f"story {n}"] = {
            "status": body["status"]["status"], "history": len(body["status"]["history"]),
            "facts": voluum["facts"], "broadcasts": body["broadcasts"],
            "traffic": [voluum[k] for k in ("traffic_rows", "traffic_visits", "traffic_clicks", "first_day",
                                            "last_day")],
        }
    seen["counts all"] = client.get("/api/voluum/conversions/counts", params={"days": 3660}, headers=admin).json()
    seen["counts 30d"] = client.get("/api/voluum/conversions/counts", params={"days": 30}, headers=admin).json()
    seen["offers"] = client.get("/api/voluum/offers", headers=admin).json()
    seen["offers GB old"] = client.get("/api/voluum/offers", params={
        "country": "GB", "from": str((OLD - timedelta(days=2)).date()), "to": str(OLD.date())}, headers=admin).json()
    period = {"from": str(OLD.date() - timedelta(days=3)), "to": str(NOW.date())}
    seen["sources"] = client.get("/api/sources", params=period, headers=admin).json()
    seen["sources csv"] = client.get("/api/sources/report.csv", params=period, headers=admin).text
    vault = get_vault()
    with session_scope() as session:
        found = conversions.converted_indexes(session, [vault.index(phone(n)) for n in range(1, 7)])
        seen["converted"] = sorted(n for n in range(1, 7) if vault.index(phone(n)) in found)
        rules = [OsRule("android", 14, 14, ListStatus.BLACKLIST, "test"), *DEFAULT_RULES]
        seen["reclassify"] = reclassify.preview(session, rules)
        reg_all = smart.start_reg_search(session, ADMIN, country="GB", date_from=OLD.date() - timedelta(days=3),
                                         date_to=NOW.date()).id
        reg_old = smart.start_reg_search(session, ADMIN, country="GB", date_from=OLD.date(), date_to=OLD.date(),
                                         offers=["offer-a"]).id
        clean = smart.start_smart_clean(session, ADMIN, offers=["offer-a"], country="GB", date_from=NOW.date(),
                                        date_to=NOW.date(), filter_regs=False).id
        clean_regs = smart.start_smart_clean(session, ADMIN, offers=["Offer A", "offer-b"], country="GB",
                                             date_from=NOW.date(), date_to=NOW.date(), filter_regs=True).id
    seen["reg search"], seen["reg search old day"] = _run(reg_all), _run(reg_old)
    seen["smart clean"], seen["smart clean regs"] = _run(clean), _run(clean_regs)
    return seen


def _rows() -> dict[str, int]:
    with session_scope() as session:
        return {m.__tablename__: int(session.scalar(select(func.count()).select_from(m)) or 0)
                for m in (Conversion, TrafficRow, ConversionFact, TrafficFact)}


def test_a_purge_changes_no_list_story_filter_or_report(history: None, client: Any, users: Any) -> None:
    admin = users.headers("admin")
    before = _observe(client, admin)
    # the history is what the test claims: facts a naive purge would lose
    assert before["converted"] == [1, 2, 3, 4, 6]
    assert before["story 1"]["facts"]["ftds"] == 1 and before["story 6"]["facts"]["regs"] == 2
    assert before["story 5"]["traffic"][:3] == [1, 1, 1] and before["reclassify"]["moving"] >= 2
    assert [r[0] for r in before["reg search"][2:]] == [phone(2), phone(6), phone(4)]  # 1 and 3 deposited
    assert sorted(r[0] for r in before["smart clean"][2:]) == [phone(n) for n in (2, 4, 5, 6)]  # FTD on A dropped
    by = {s["source"]: s for s in before["sources"]["sources"]}
    assert [by["early"][k] for k in ("clicks", "regs", "ftds", "revenue")] == [4, 3, 2, "230.25"]
    assert [by["late"][k] for k in ("clicks", "regs", "ftds", "revenue")] == [1, 4, 1, "82.50"]
    assert {d["day"]: d["revenue"] for d in by["early"]["days"]}[str(OLD.date())] == "150.25"
    assert _rows() == {"voluum_conversions": 8, "voluum_traffic_rows": 5, "voluum_conversion_facts": 0,
                       "voluum_traffic_facts": 0}

    summary = retention.purge(SYSTEM, batch=2)  # small batches: facts of one key are merged across batches
    assert summary.deleted["voluum_conversions"] == 6 and summary.deleted["voluum_traffic_rows"] == 3
    rows = _rows()
    assert rows["voluum_conversions"] == 2 and rows["voluum_traffic_rows"] == 2  # the raw rows are gone
    assert rows["voluum_conversion_facts"] >= 3 and rows["voluum_traffic_facts"] == 3

    after = _observe(client, admin)
    for key in before:
        assert after[key] == before[key], key
    story = client.get(f"/api/numbers/{phone(1)}", headers=admin).json()["voluum"]
    assert len(story["conversions"]) == 0 and story["facts"]["regs"] == 1  # raw list empty, facts intact
    users.create("admin", "ada")
    login(client, "ada")
    page = client.get(f"/numbers/n/{get_vault().index(phone(1)).hex()}").text
    assert "Converted: 1 REG · 1 FTD" in page and "Raw rows purged by retention; counted above." in page


def test_erasure_removes_a_numbers_kept_facts(history: None, client: Any, users: Any) -> None:
    from phoneops.privacy.places import erase_rows

    retention.purge(SYSTEM)
    index = get_vault().index(phone(1))
    with session_scope() as session:
        counts = erase_rows(session, index)
    assert counts["voluum_conversion_facts"] >= 1 and counts["voluum_traffic_facts"] == 1
    assert counts["voluum_traffic_day_facts"] == 1
    with session_scope() as session:
        assert session.scalar(select(func.count()).select_from(ConversionFact)
                              .where(ConversionFact.blind_index == index)) == 0
        assert session.scalar(select(func.count()).select_from(TrafficFact)
                              .where(TrafficFact.blind_index == index)) == 0
        assert session.scalar(select(func.sum(ConversionFact.conversions))) == 6  # reports keep the counts
