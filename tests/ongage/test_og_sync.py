"""Converted numbers synced to the Ongage simulator: per-contact outcomes (412 partial failures mark only the
failed), merged REG/FTD contacts, back-off and give-up, whole-call failures, refused logins, parallel calls;
through the service, the API, the periodic tick and the CLI."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from phoneops.core.db import session_scope
from phoneops.core.http import RetryPolicy
from phoneops.core.security import SYSTEM
from phoneops.numbers.vault import get_vault
from phoneops.ongage import service_sync
from phoneops.ongage.client import OngageClient
from phoneops.ongage.models import OngageConversion
from phoneops.ongage.provider import sync_config
from phoneops.simulators import voluum_data as vd
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.ongage import DEFAULT_ACCOUNT_CODE, DEFAULT_LIST_ID, DEFAULT_PASSWORD, DEFAULT_USERNAME
from phoneops.voluum.conversions import store
from phoneops.voluum.wire import Conversion as WireConversion

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
FAST = RetryPolicy(attempts=2, total_timeout=2.0, wait_initial=0.01, wait_max=0.02, wait_jitter=0.0)
UK = "Marketing Services 1 - United Kingdom - X"
US = "Marketing Services 3 - United States - Z"


def phone(n: int) -> str:
    return f"+4479111234{n:02d}"


def email(n: int) -> str:
    return f"{phone(n)}@yourmobile.com"


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


def convert(click: str, number: str | None, *, kind: str = "REG", campaign: str = UK, minutes: int = 0,
            revenue: float = 0.0) -> WireConversion:
    moment = T0 + timedelta(minutes=minutes)
    return WireConversion.from_row(vd.conversion_row({
        "clickId": click, "transactionId": f"tx-{click}-{kind}", "conversionType": kind, "campaignId": "camp-1",
        "campaignName": campaign, "offerId": "offer-1", "offerName": "Offer A", "customVariable1": number or "",
        "postbackTimestamp": vd.iso(moment), "visitTimestamp": vd.iso(moment - timedelta(minutes=3)),
        "countryCode": "GB", "ip": "203.0.113.9", "os": "iOS", "language": "en", "revenue": revenue,
        "trafficSourceName": "SMS Broadcasts", "landerName": "Lander 1",
    }))


def seed(items: Sequence[WireConversion]) -> None:
    with session_scope() as session:
        store(session, SYSTEM, items)


def statuses() -> dict[str, tuple[str, int, str | None]]:
    """click id + kind -> (status, attempts, last error)."""
    from phoneops.voluum.models import Conversion

    with session_scope() as session:
        rows = session.execute(select(Conversion.click_id, Conversion.kind, OngageConversion.status,
                                      OngageConversion.attempts, OngageConversion.last_error)
                               .join(OngageConversion, OngageConversion.conversion_id == Conversion.id)).all()
    return {f"{c}:{k}": (s, a, e) for c, k, s, a, e in rows}


def sim_contact(sim: SimAdmin, address: str) -> dict[str, Any]:
    found = sim.orders(email=address.lower())
    assert len(found) == 1, found
    return found[0]


def test_each_contact_is_marked_from_its_own_result(ongage: SimAdmin) -> None:
    seed([convert("c1", phone(1), minutes=1), convert("c1", phone(1), kind="FTD", minutes=30, revenue=150.0),
          convert("c2", phone(2)), convert("c3", phone(3)), convert("c4", phone(4)),
          convert("us", "+14155552671", campaign=US), convert("none", "{{phoneNumber}}")])
    ongage.configure(fail_emails=[email(3)], fail_reason="Email is blocked")
    run = service_sync.run_sync("manual")
    assert (run.status, run.enrolled, run.contacts, run.calls) == ("succeeded", 6, 4, 1)
    assert (run.sent, run.failed, run.invalid) == (4, 1, 1)

    found = statuses()
    assert "us:REG" not in found  # another country: never enrolled, never sent
    assert found["c1:REG"][0] == found["c1:FTD"][0] == found["c2:REG"][0] == found["c4:REG"][0] == "sent"
    assert found["c3:REG"] == ("failed", 1, "Email is blocked")  # the 412 marks only the one Ongage named
    assert found["none:REG"][0] == "invalid" and "no phone number" in (found["none:REG"][2] or "")

    stats = ongage.stats()
    assert stats["partial_failures"] == 1 and stats["calls"]["upsert"] == 1
    first = sim_contact(ongage, email(1))  # one contact per number, the FTD's fields over the REG's
    assert first["receipts"] == 1
    fields = first["fields"]
    assert fields["conversion_type"] == "FTD" and fields["is_ftd"] == "true" and fields["revenue"] == "150"
    assert fields["registration_date"] and fields["ftd_date"] and fields["registration_date"] < fields["ftd_date"]
    assert fields["mobile"] == phone(1).lstrip("+") and fields["country"] == "United Kingdom"
    assert fields["source"] == "GB_FTD" and fields["country_code"] == "GB" and fields["click_id"] == "c1"
    assert fields["lander_name"] == "Lander 1" and fields["traffic_source_name"] == "SMS Broadcasts"
    second = sim_contact(ongage, email(2))["fields"]
    assert second["is_ftd"] == "false" and "revenue" not in second and "ftd_date" not in second

    again = service_sync.run_sync("manual")  # nothing new, the failure waits for its back-off
    assert (again.contacts, again.calls) == (0, 0)
    assert ongage.stats()["max_receipts_per_contact"] == 1


def test_failures_back_off_then_give_up_then_requeue(ongage: SimAdmin) -> None:
    seed([convert("c3", phone(3)), convert("c5", phone(5))])
    ongage.configure(fail_emails=[email(3)])
    config = sync_config(retry_limit=2)
    service_sync.run_sync("manual", config=config, now=T0 + timedelta(hours=1))
    assert statuses()["c3:REG"][:2] == ("failed", 1)
    early = service_sync.run_sync("manual", config=config, now=T0 + timedelta(hours=1, seconds=30))
    assert early.contacts == 0  # back-off not over
    late = service_sync.run_sync("manual", config=config, now=T0 + timedelta(hours=1, seconds=61))
    assert (late.contacts, late.gave_up) == (1, 1)
    assert statuses()["c3:REG"][:2] == ("gave_up", 2)
    assert ongage.orders(email=email(3).lower()) == []
    with session_scope() as session:
        problems = service_sync.problems(session)
        assert [(p.status, p.click_id, p.attempts) for p in problems] == [("gave_up", "c3", 2)]
        assert problems[0].number.startswith("+447") and "*" in problems[0].number  # masked
        assert problems[0].key == get_vault().index(phone(3)).hex()  # the Ongage page links its story
    later = service_sync.run_sync("manual", config=config, now=T0 + timedelta(hours=3))
    assert later.contacts == 0  # given up: shown, not retried

    ongage.configure(fail_emails=[])
    with session_scope() as session:
        assert service_sync.requeue(session, SYSTEM) == 1
    service_sync.run_sync("manual", config=config, now=T0 + timedelta(hours=3))
    assert statuses()["c3:REG"][0] == "sent"


def test_an_outage_is_not_an_attempt_and_a_refused_login_counts_nothing(ongage: SimAdmin,
                                                                       ongage_sim_url: str) -> None:
    from phoneops.core.http import ProviderUnavailable

    seed([convert("c1", phone(1)), convert("c2", phone(2))])
    client = OngageClient(ongage_sim_url, DEFAULT_LIST_ID, DEFAULT_USERNAME, DEFAULT_PASSWORD, DEFAULT_ACCOUNT_CODE,
                          retry=FAST)
    ongage.configure(fail_next=10, fail_status=503)
    with pytest.raises(ProviderUnavailable):  # Ongage down: the caller waits (a job parks), nothing counted
        service_sync.run_sync("manual", client=client)
    assert {(s, a) for s, a, _ in statuses().values()} == {("pending", 0)}
    with session_scope() as session:
        assert session.scalar(select(OngageConversion.id).where(OngageConversion.claimed_by.is_not(None))) is None

    wrong = OngageClient(ongage_sim_url, DEFAULT_LIST_ID, DEFAULT_USERNAME, "wrong-password-123", DEFAULT_ACCOUNT_CODE,
                         retry=FAST)
    ongage.configure(fail_next=0)
    refused = service_sync.run_sync("manual", client=wrong, now=datetime.now(UTC) + timedelta(minutes=5))
    assert refused.status == "failed" and refused.error and "wrong-password" not in refused.error
    assert {a for _, a, _ in statuses().values()} == {0}  # no attempt counted for a refused login
    with session_scope() as session:
        assert session.scalar(select(OngageConversion.id).where(OngageConversion.claimed_by.is_not(None))) is None
    client.close()
    wrong.close()


def test_batches_go_in_parallel_within_the_limits(ongage: SimAdmin) -> None:
    seed([convert(f"p{n}", phone(n)) for n in range(40)])
    ongage.configure(latency_ms=150)
    run = service_sync.run_sync("manual", config=sync_config(batch_size=2))
    assert (run.contacts, run.calls, run.sent) == (40, 20, 40)
    stats = ongage.stats()
    assert 1 < stats["max_in_flight"] <= 10
    assert stats["rate_limited"] == 0 and stats["too_many_parallel"] == 0


def test_api_periodic_tick_and_cli(client: Any, users: Any, ongage: SimAdmin, inline_jobs: list[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.ongage.cli import app

    seed([convert("c1", phone(1)), convert("c2", phone(2))])
    ongage.configure(fail_emails=[email(2)])
    viewer, operator = users.headers("viewer"), users.headers("operator")
    assert client.post("/api/ongage/sync", headers=viewer).status_code == 403
    job = client.post("/api/ongage/sync", headers=operator)
    assert job.status_code == 202
    done = client.get(f"/api/jobs/{job.json()['id']}", headers=viewer).json()
    assert done["status"] == "succeeded" and done["result"]["sent"] == 1 and done["result"]["failed"] == 1
    status = client.get("/api/ongage/status", headers=viewer).json()
    assert status["configured"] and status["countries"] == ["GB"] and status["batch_size"] == 500
    assert status["email_pattern"] == "+{phone}@yourmobile.com" and status["counts"]["sent"] == 1
    assert status["last_run"]["sent"] == 1
    problems = client.get("/api/ongage/contacts", headers=viewer).json()
    assert [(p["status"], p["click_id"]) for p in problems] == [("failed", "c2")]
    assert phone(2) not in str(problems)
    assert client.post("/api/ongage/contacts/requeue", json={}, headers=operator).json() == {"requeued": 0}
    page = client.get("/api/ongage/sync/runs", headers=viewer).json()
    assert page[0]["trigger"] == "manual"

    seed([convert("c9", phone(9))])
    from phoneops.ongage import tasks

    tasks.sync_tick()  # a new conversion: the tick sends it
    assert statuses()["c9:REG"][0] == "sent"
    with session_scope() as session:
        runs = service_sync.recent_runs(session, 5)
    assert runs[0].trigger == "periodic"
    tasks.sync_tick()  # nothing new, nothing due: no run recorded
    with session_scope() as session:
        assert len(service_sync.recent_runs(session, 5)) == len(runs)

    from phoneops.cli import console

    monkeypatch.setattr(console, "_width", 220)
    runner = CliRunner()
    shown = runner.invoke(app, ["status"])
    assert shown.exit_code == 0 and "configured" in shown.output and "sent 2" in shown.output
    failures = runner.invoke(app, ["failures"])
    assert failures.exit_code == 0 and "Invalid email address" in failures.output
    synced = runner.invoke(app, ["sync"])
    assert synced.exit_code == 0, synced.output


def test_without_ongage_nothing_runs(client: Any, users: Any, db_url: str) -> None:
    from phoneops.ongage import tasks

    _reset()
    tasks.sync_tick()  # switched off: no error, nothing recorded
    response = client.post("/api/ongage/sync", headers=users.headers("operator"))
    assert response.status_code == 503 and "ONGAGE_LIST_ID" in response.json()["error"]["message"]
    status = client.get("/api/ongage/status", headers=users.headers("viewer")).json()
    assert status["configured"] is False
