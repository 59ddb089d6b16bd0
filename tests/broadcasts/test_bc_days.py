"""A broadcast day imported from the MessageWhiz simulator and joined to the Voluum simulator, through the
service functions and the job: stats rows, notes, history files, idempotent re-import and cost push."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from phoneops.broadcasts import costs, days
from phoneops.broadcasts.models import BroadcastCampaignDay, BroadcastCostPush, BroadcastDay, BroadcastStat
from phoneops.core.db import session_scope
from phoneops.core.errors import NotFound, ProviderNotConfigured
from phoneops.core.http import RetryPolicy
from phoneops.core.models import Job, StoredFile
from phoneops.core.security import SYSTEM
from phoneops.core.storage import get_storage
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, VoluumSimConfig
from phoneops.simulators.voluum import create_app as voluum_app
from phoneops.voluum import conversions
from phoneops.voluum.wire import Conversion as WireConversion
from support import login

DAY = date(2024, 3, 13)  # a seeded day of the MessageWhiz simulator (tests/broadcasts/conftest.py)


@pytest.fixture(scope="module")
def voluum_url() -> Iterator[str]:
    config = VoluumSimConfig(start_date="2024-03-12", days=3, visits_per_day=300, rate_limit_per_s=None,
                             retry_after_s=0.0)
    with serve_in_thread(voluum_app(config)) as url:
        yield url


@pytest.fixture
def voluum_sim(voluum_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(voluum_url) as admin:
        admin.reset()
        yield admin


def _reset_clients() -> None:
    from phoneops.broadcasts.provider import reset_clients
    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.provider import reset_clients as reset_voluum

    reset_settings_cache()
    reset_clients()
    reset_voluum()


@pytest.fixture
def providers(mw_sim: SimAdmin, mw_sim_url: str, voluum_sim: SimAdmin, voluum_url: str,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, SimAdmin]]:
    monkeypatch.setenv("MESSAGEWHIZ_BASE_URL", mw_sim_url)
    monkeypatch.setenv("MESSAGEWHIZ_API_KEY", DEFAULT_API_KEY)
    monkeypatch.setenv("VOLUUM_BASE_URL", voluum_url)
    monkeypatch.setenv("VOLUUM_ACCESS_ID", DEFAULT_ACCESS_ID)
    monkeypatch.setenv("VOLUUM_ACCESS_KEY", DEFAULT_ACCESS_KEY)
    monkeypatch.setenv("VOLUUM_CURRENCY", "USD")
    monkeypatch.setenv("MESSAGEWHIZ_CURRENCY", "USD")  # one currency: no rate needed (test_bc_money.py)
    _reset_clients()
    yield {"mw": mw_sim, "voluum": voluum_sim}
    monkeypatch.undo()
    _reset_clients()


def _stats() -> list[dict[str, Any]]:
    with session_scope() as session:
        rows = session.scalars(select(BroadcastStat).order_by(BroadcastStat.broadcast_id)).all()
        skip = {"id", "imported_at"}
        return [{c.name: getattr(r, c.name) for c in BroadcastStat.__table__.columns if c.name not in skip}
                for r in rows]


def _file_bytes(file_id: str) -> bytes:
    with session_scope() as session:
        row = session.get(StoredFile, file_id)
        assert row is not None and row.status == "stored"
        return b"".join(get_storage().iter_bytes(row))


def test_a_day_is_stored_with_notes_prices_and_voluum_numbers(db_url: str, providers: dict[str, SimAdmin]) -> None:
    provider_day = list(providers["mw"].orders(day=DAY.isoformat()))
    with session_scope() as session:
        result = days.import_day(session, SYSTEM, DAY)
    assert result.broadcasts == len(provider_day) == 12
    assert result.voluum == "ok" and result.voluum_calls >= 1

    stats = {s["broadcast_id"]: s for s in _stats()}
    assert set(stats) == {b["id"] for b in provider_day}
    for item in provider_day:
        row = stats[item["id"]]
        assert row["day"] == DAY
        assert row["price"] == (Decimal(str(item["real_price"])) / 100).quantize(Decimal("0.0001"))  # cents -> units
        assert row["recipients"] == item["recipient_count"]
        assert row["delivered"] == item["dlr"]["delivered_count"]
        assert row["rejected"] == item["dlr"]["rejected_count"]
        assert row["unique_clicks"] == item["broadcastConversion"]["uniqueClicks"]
        assert row["ctr"] == Decimal(item["broadcastConversion"]["conversion"])
        assert row["group_name"] == item["name"].partition("_chunk")[0].removesuffix(".csv")
        if "{{link:" not in item["message_body"]:  # kept, with a clear note, never a failed day
            assert row["campaign_id"] is None and "no {{link:N}}" in (row["note"] or "")
            assert row["voluum_visits"] is None
        elif row["campaign_id"] is None:
            assert "names no Voluum campaign" in (row["note"] or "")
        else:
            assert row["voluum_visits"] is not None and row["voluum_from"] is not None
            assert row["voluum_to"] is not None
            assert (row["voluum_to"] - row["voluum_from"]).total_seconds() == 24 * 3600
        if item["state"] == 2:
            assert not row["counts_for_cost"] and "left out of the cost" in (row["note"] or "")
    assert any(s["note"] and "no {{link:N}}" in s["note"] for s in stats.values())
    assert sum(s["voluum_visits"] or 0 for s in stats.values()) > 0

    with session_scope() as session:
        record = session.get(BroadcastDay, DAY)
        assert record is not None
        assert record.broadcasts == 12 and record.with_notes == result.with_notes >= 1
        # a day's cost: every counted broadcast, with or without a campaign (docs/money.md)
        assert record.cost == sum((s["price"] for s in stats.values() if s["counts_for_cost"]), Decimal(0))
        loose = sum((s["price"] for s in stats.values() if s["counts_for_cost"] and not s["campaign_id"]), Decimal(0))
        assert record.unattributed_cost == loose > 0
        campaign_days = session.scalars(select(BroadcastCampaignDay).where(BroadcastCampaignDay.day == DAY)).all()
        assert {c.campaign_id for c in campaign_days} == {s["campaign_id"] for s in stats.values() if s["campaign_id"]}
        assert sum(c.cost for c in campaign_days) == record.cost - record.unattributed_cost
        for c in campaign_days:  # the union window is read once: at least what any one broadcast saw
            mine = [s for s in stats.values() if s["campaign_id"] == c.campaign_id]
            assert (c.voluum_visits or 0) >= max(s["voluum_visits"] or 0 for s in mine)
            assert c.broadcasts == len(mine)


def test_reimport_gives_the_same_rows_and_history_and_one_cost_per_campaign(
    db_url: str, providers: dict[str, SimAdmin], inline_jobs: list[str]
) -> None:
    with session_scope() as session:
        first_job = days.start_import(session, SYSTEM, DAY).id
    with session_scope() as session:
        job = session.get(Job, first_job)
        assert job is not None and job.status == "succeeded", (job.error if job else None)
        first_csv = job.result["csv_file_id"]
        assert job.result["costs"]["sent"] >= 1
    rows_once = _stats()
    csv_once = _file_bytes(first_csv)
    pushes_once = providers["voluum"].orders()

    with session_scope() as session:
        second_job = days.start_import(session, SYSTEM, DAY).id
    with session_scope() as session:
        job = session.get(Job, second_job)
        assert job is not None and job.status == "succeeded"
        assert job.result["costs"] == {"sent": 0, "unchanged": len(pushes_once), "failed": 0}
        record = session.get(BroadcastDay, DAY)
        assert record is not None and record.imports == 2
        old = session.get(StoredFile, first_csv)
        assert old is not None and old.status == "deleted"  # the previous history file is replaced
        second_csv = record.csv_file_id
        assert session.scalar(select(func.count(BroadcastStat.id))) == 12
    assert _stats() == rows_once
    assert second_csv is not None and _file_bytes(second_csv) == csv_once

    pushed = providers["voluum"].orders()
    assert pushed == pushes_once  # nothing sent again: one cost per campaign and day at Voluum
    campaigns = [p["campaignId"] for p in pushed]
    assert len(campaigns) == len(set(campaigns))
    with session_scope() as session:
        stored = {p.campaign_id: p for p in session.scalars(select(BroadcastCostPush))}
        expected = {c.campaign_id: c.cost for c in session.scalars(select(BroadcastCampaignDay))}
    assert set(stored) == set(campaigns) == set(expected)
    for push in pushed:
        assert Decimal(str(push["cost"])) == expected[push["campaignId"]]
        assert push["currency"] == "USD"
        assert (push["from"], push["to"]) == ("2024-03-13T00:00:00.000Z", "2024-03-14T00:00:00.000Z")
        assert stored[push["campaignId"]].outcome == "unchanged" and stored[push["campaignId"]].attempts == 1


def test_history_files_neutralise_formulas_and_keep_the_columns(db_url: str, providers: dict[str, SimAdmin]) -> None:
    from openpyxl import load_workbook

    evil = {"id": 499000001, "name": "=HYPERLINK(\"http://x\")_chunk#1.csv", "send_date": "2024-03-13T10:00:00.000Z",
            "message_body": "@SUM(1+1) {{link:424242}}", "real_price": 250, "estimated_price": 250,
            "recipient_count": 10, "state": 4}
    _load(providers, broadcasts=[evil])
    with session_scope() as session:
        result = days.import_day(session, SYSTEM, DAY)
        assert result.broadcasts == 13
    lines = list(csv.reader(io.StringIO(_file_bytes(str(result.csv_file_id)).decode())))
    assert lines[0] == list(days.HISTORY_COLUMNS)
    row = next(r for r in lines[1:] if r[2] == "499000001")
    named = dict(zip(lines[0], row, strict=True))
    assert named["Name"].startswith("'=HYPERLINK")  # a spreadsheet shows it as text
    assert named["message_body"].startswith("'@SUM")
    assert named["Price"] == "2.5000" and named["Campaign ID"] == ""
    assert "link 424242 not found" in named["Note"]
    assert all(c.endswith("%") or c == "" for c in (named["CTR"], named["Click 2 REG"], named["Reg 2 FTD"]))

    workbook = load_workbook(io.BytesIO(_file_bytes(str(result.xlsx_file_id))))
    sheet = workbook.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header == list(days.HISTORY_COLUMNS)
    xrow = next(r for r in sheet.iter_rows(min_row=2) if r[2].value == 499000001)
    values = dict(zip(header, xrow, strict=True))
    assert values["Name"].data_type == "s" and str(values["Name"].value).startswith("'=")
    assert values["Price"].value == 2.5
    assert sheet.max_row == 14


def _load(providers: dict[str, SimAdmin], **data: Any) -> None:
    from phoneops.settings import get_settings

    response = httpx.post(f"{get_settings().messagewhiz_base_url}/_sim/data", json=data, timeout=10)
    response.raise_for_status()


def test_a_broadcast_gone_from_the_provider_is_removed_on_reimport(db_url: str, providers: dict[str, SimAdmin]) -> None:
    _load(providers, broadcasts=[{"id": 499000002, "name": "gone_list.csv", "send_date": "2024-03-13T09:00:00.000Z",
                                  "message_body": "x", "state": 4}])
    with session_scope() as session:
        assert days.import_day(session, SYSTEM, DAY).broadcasts == 13
    providers["mw"].reset()
    with session_scope() as session:
        result = days.import_day(session, SYSTEM, DAY)
        assert result.broadcasts == 12 and result.removed == 1
        assert session.scalar(select(BroadcastStat.id).where(BroadcastStat.broadcast_id == 499000002)) is None


def test_without_voluum_the_day_is_kept_without_its_numbers(
    db_url: str, providers: dict[str, SimAdmin], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOLUUM_ACCESS_KEY")
    _reset_clients()
    with session_scope() as session:
        result = days.import_day(session, SYSTEM, DAY)
    assert result.voluum == "off" and result.broadcasts == 12
    assert all(s["voluum_visits"] is None for s in _stats())
    with session_scope() as session, pytest.raises(ProviderNotConfigured):
        costs.push_day_costs(session, SYSTEM, DAY)


def test_cost_push_is_idempotent_and_follows_changes(db_url: str, providers: dict[str, SimAdmin]) -> None:
    with session_scope() as session, pytest.raises(NotFound):
        costs.push_day_costs(session, SYSTEM, DAY)  # not imported yet
    with session_scope() as session:
        days.import_day(session, SYSTEM, DAY)
    with session_scope() as session:
        first = [(p.campaign_id, p.outcome) for p in costs.push_day_costs(session, SYSTEM, DAY)]
    with session_scope() as session:
        again = [(p.campaign_id, p.outcome) for p in costs.push_day_costs(session, SYSTEM, DAY)]
    assert {o for _, o in first} == {"sent"} and {o for _, o in again} == {"unchanged"}
    assert len(providers["voluum"].orders()) == len(first)

    with session_scope() as session:  # a price changed at the provider: the new cost REPLACES the old one
        target = session.scalars(select(BroadcastCampaignDay).order_by(BroadcastCampaignDay.campaign_id)).first()
        assert target is not None
        target.cost += Decimal("1.5")
        changed_id, new_cost = target.campaign_id, target.cost
    with session_scope() as session:
        third = {p.campaign_id: p.outcome for p in costs.push_day_costs(session, SYSTEM, DAY)}
        forced = costs.push_day_costs(session, SYSTEM, DAY, force=True)
    assert third[changed_id] == "sent" and list(third.values()).count("sent") == 1
    assert {p.outcome for p in forced} == {"sent"}
    latest = {p["campaignId"]: p["cost"] for p in providers["voluum"].orders()}  # Voluum keeps the latest
    assert Decimal(str(latest[changed_id])) == new_cost


def test_a_failed_push_is_stored_and_shown_then_retried(db_url: str, providers: dict[str, SimAdmin]) -> None:
    with session_scope() as session:
        days.import_day(session, SYSTEM, DAY)
    providers["voluum"].configure(fail_next=50, error_status=400, fault_endpoints=["cost"])
    with session_scope() as session:
        pushed = costs.push_day_costs(session, SYSTEM, DAY)
    assert pushed and {p.outcome for p in pushed} == {"failed"} and all(p.error for p in pushed)
    providers["voluum"].configure(fail_next=0)
    with session_scope() as session:
        retried = costs.push_day_costs(session, SYSTEM, DAY)
    assert {p.outcome for p in retried} == {"sent"}
    assert all(p.attempts == 2 for p in retried)


def test_the_daily_tick_queues_yesterday_once(db_url: str, providers: dict[str, SimAdmin],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.broadcasts import tasks

    monkeypatch.setattr(tasks, "yesterday", lambda: DAY)
    tasks.daily_tick()
    tasks.daily_tick()  # the day is being imported: not queued twice
    with session_scope() as session:
        jobs = session.scalars(select(Job).where(Job.kind == days.KIND)).all()
        assert [j.params["day"] for j in jobs] == [DAY.isoformat()]
        assert jobs[0].params["push_costs"] is True
    from phoneops.core.jobs import registered_periodic

    spec = registered_periodic()["broadcasts.daily"]
    assert (spec.minute, spec.hour) == ("0", "5")


def test_the_job_parks_while_messagewhiz_is_down(db_url: str, providers: dict[str, SimAdmin]) -> None:
    from phoneops.broadcasts import provider as service
    from phoneops.core import jobs

    fast = RetryPolicy(attempts=2, total_timeout=2.0, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0)
    service.reset_clients()  # the next client the job asks for retries fast
    service._clients.get(service.credentials(), lambda: service.MessageWhizClient(*service.credentials(), retry=fast))
    providers["mw"].configure(fail_next=100, fail_status=503)
    with session_scope() as session:
        job_id = days.start_import(session, SYSTEM, DAY).id
    assert jobs.run_job(job_id) == "queued"  # parked, not failed
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "queued" and "unavailable" in (job.message or "")
        job.run_after = datetime.now(UTC)
    providers["mw"].configure(fail_next=0)
    assert jobs.run_job(job_id) == "succeeded"


def test_a_numbers_story_lists_the_broadcasts_that_reached_it(client: Any, users: Any,
                                                              providers: dict[str, SimAdmin]) -> None:
    """Issue 13 item 3: the broadcasts whose link led to the campaign a number converted on, that day, show on
    its story (API and page); a number that converted elsewhere shows none."""
    reached, elsewhere = "+447400123456", "+447400123457"
    with session_scope() as session:
        days.import_day(session, SYSTEM, DAY)
    with session_scope() as session:
        linked = session.scalars(select(BroadcastStat).where(BroadcastStat.campaign_id.is_not(None))
                                 .order_by(BroadcastStat.broadcast_id)).all()
        assert linked, "the seeded day has broadcasts linked to Voluum campaigns"
        campaign = linked[0].campaign_id
        expected = {r.broadcast_id for r in linked if r.campaign_id == campaign and r.day == DAY}
        moment = DAY.strftime("%Y-%m-%d") + " 10:00:00 AM"
        conversions.store(session, SYSTEM, [WireConversion.from_row({
            "clickId": f"k{n}", "transactionId": f"t{n}", "conversionType": "REG", "campaignId": camp,
            "campaignName": "A - United Kingdom - B", "offerId": "offer-a", "customVariable1": number,
            "visitTimestamp": moment, "postbackTimestamp": moment})
            for n, (number, camp) in enumerate(((reached, campaign), (elsewhere, "no-such-campaign")))])
    viewer = users.headers("viewer")
    story = client.get(f"/api/numbers/{reached}", headers=viewer).json()
    assert {b["broadcast_id"] for b in story["broadcasts"]} == expected
    assert all(b["day"] == DAY.isoformat() and b["campaign_id"] == campaign for b in story["broadcasts"])
    assert client.get(f"/api/numbers/{elsewhere}", headers=viewer).json()["broadcasts"] == []
    users.create("viewer", "vera")
    login(client, "vera")
    page = client.get(f"/numbers/n/{story['key']}")
    table = page.text.split('data-table="broadcasts"', 1)[1].split("</table>", 1)[0]
    assert all(f"#{broadcast_id}<" in table for broadcast_id in expected)
