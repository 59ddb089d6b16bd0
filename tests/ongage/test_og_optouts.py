"""Opt-outs and Ongage: an opted-out number is never (re-)added by the conversion sync or a CSV job, and the
opt-out survives the sync."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.numbers import optouts
from phoneops.numbers.vault import get_vault
from phoneops.ongage import service_sync
from phoneops.simulators import voluum_data as vd
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.ongage import DEFAULT_ACCOUNT_CODE, DEFAULT_LIST_ID, DEFAULT_PASSWORD, DEFAULT_USERNAME
from phoneops.voluum.conversions import store
from phoneops.voluum.wire import Conversion as WireConversion

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
OPTED, OTHER = "+447911123401", "+447911123402"


def _reset() -> None:
    from phoneops.ongage.provider import reset_clients
    from phoneops.settings import reset_settings_cache

    reset_settings_cache()
    reset_clients()


@pytest.fixture
def ongage(ongage_sim: SimAdmin, ongage_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
           ) -> Iterator[SimAdmin]:
    for name, value in {"ONGAGE_BASE_URL": ongage_sim_url, "ONGAGE_LIST_ID": DEFAULT_LIST_ID,
                        "ONGAGE_USERNAME": DEFAULT_USERNAME, "ONGAGE_PASSWORD": DEFAULT_PASSWORD,
                        "ONGAGE_ACCOUNT_CODE": DEFAULT_ACCOUNT_CODE, "ONGAGE_COUNTRIES": "GB",
                        "DATABASE_URL": db_url}.items():
        monkeypatch.setenv(name, value)
    _reset()
    yield ongage_sim
    monkeypatch.undo()
    _reset()


def convert(click: str, number: str) -> WireConversion:
    return WireConversion.from_row(vd.conversion_row({
        "clickId": click, "transactionId": f"tx-{click}", "conversionType": "REG", "campaignId": "camp-1",
        "campaignName": "Marketing Services 1 - United Kingdom - X", "offerId": "offer-1", "offerName": "Offer A",
        "customVariable1": number, "postbackTimestamp": vd.iso(T0), "visitTimestamp": vd.iso(T0), "countryCode": "GB",
        "ip": "203.0.113.9", "os": "iOS", "language": "en", "revenue": 0.0, "trafficSourceName": "SMS",
        "landerName": "Lander 1",
    }))


def test_the_sync_never_sends_an_opted_out_number_and_the_opt_out_stays(ongage: SimAdmin) -> None:
    with session_scope() as session:
        store(session, SYSTEM, [convert("c1", OPTED), convert("c2", OTHER)])
        optouts.add(session, SYSTEM, OPTED, "email_unsubscribe", region="GB")
    run = service_sync.run_sync("manual")
    assert (run.status, run.sent, run.invalid) == ("succeeded", 1, 1)
    assert ongage.orders(email=f"{OTHER}@yourmobile.com")
    assert not ongage.orders(email=f"{OPTED}@yourmobile.com")  # never (re-)added
    problems = service_sync.problems  # the opted-out conversion is shown with why
    with session_scope() as session:
        shown = problems(session)
        assert optouts.opted_out(session, [get_vault().index(OPTED)]) == {
            get_vault().index(OPTED): "email_unsubscribe"}
    assert any("opted out (email_unsubscribe)" in str(row) for row in shown)
    again = service_sync.run_sync("manual")
    assert again.sent == 0 and not ongage.orders(email=f"{OPTED}@yourmobile.com")


def test_a_csv_job_drops_opted_out_mobiles_before_sending(ongage: SimAdmin, db_url: str) -> None:
    from phoneops.core import jobs
    from phoneops.core.storage import get_storage
    from phoneops.ongage import service_csv

    header = "List_ID,Email,Country,Source,Mobile,conversion_type,Original_source,HLR_Status,Uuid\n"
    rows = (f",a@example.com,GB,s,{OPTED.lstrip('+')},REG,o,ok,u1\n"
            f",b@example.com,GB,s,{OTHER.lstrip('+')},REG,o,ok,u2\n")
    with session_scope() as session:
        optouts.add(session, SYSTEM, OPTED, "sms_stop", region="GB")
        upload = get_storage().save_bytes(session, SYSTEM, (header + rows).encode(), kind="upload",
                                          original_name="contacts.csv")
        job = service_csv.create_csv_job(session, SYSTEM, upload, service_csv.Pace(interval_seconds=1,
                                         lower_limit=10, upper_limit=10, batch_size=10))
        csv_id = job.id
    with session_scope() as session:
        service_csv.transition(session, SYSTEM, csv_id, "start")
        worker = service_csv.get_csv_job(session, csv_id).worker_job_id
    jobs.run_job(str(worker))
    with session_scope() as session:
        found = {r.email: (r.status, r.error) for r in service_csv.list_rows(session, csv_id)}
    assert found == {"a@example.com": ("failed", "opted out (sms_stop): not sent"), "b@example.com": ("sent", None)}
    assert not ongage.orders(email="a@example.com")


def test_contacts_ongage_shows_unsubscribed_become_opt_outs(ongage: SimAdmin, client: Any, users: Any,
                                                            inline_jobs: list[str]) -> None:
    with session_scope() as session:
        store(session, SYSTEM, [convert("c1", OPTED), convert("c2", OTHER)])
    assert service_sync.run_sync("manual").sent == 2
    ongage.configure(unsubscribed_emails=[f"{OPTED}@yourmobile.com"])
    op = users.headers("operator")
    started = client.post("/api/ongage/unsubscribes/check", headers=op)
    assert started.status_code == 202, started.text
    job = client.get(f"/api/jobs/{started.json()['id']}", headers=op).json()
    assert job["status"] == "succeeded", job
    assert job["result"] == {"checked": 2, "unsubscribed": 1, "recorded": 1, "not_found": 0}
    found = client.get("/api/numbers/lookup", params={"number": OPTED}, headers=op).json()
    assert (found["opt_out"]["reason"], found["opt_out"]["source"]) == ("email_unsubscribe", "ongage")
    again = client.post("/api/ongage/unsubscribes/check", headers=op)
    assert client.get(f"/api/jobs/{again.json()['id']}", headers=op).json()["result"]["recorded"] == 0
    from typer.testing import CliRunner

    from phoneops.ongage.cli import app

    ongage.configure(unsubscribed_emails=[f"{OPTED}@yourmobile.com", f"{OTHER}@yourmobile.com"])
    checked = CliRunner().invoke(app, ["unsubscribes"])  # the same check from the CLI (core.commands.start_job)
    assert checked.exit_code == 0, checked.output
    with session_scope() as session:
        index = get_vault().index(OTHER)
        assert optouts.opted_out(session, [index]) == {index: "email_unsubscribe"}
