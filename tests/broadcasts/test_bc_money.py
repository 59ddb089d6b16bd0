"""Money in one currency (docs/money.md), through the API, the pages and the CLI against the simulators:
MessageWhiz bills in USD, Voluum counts in EUR. A push without the day's rate waits and sends nothing; an
admin's rate (audited, one per day) converts it; bad input changes nothing; a day's cost is one number on
the days list, the day, analytics, the dashboard and the pushes."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, VoluumSimConfig
from phoneops.simulators.voluum import create_app as voluum_app
from support import login

DAY = date(2024, 3, 13)  # a seeded day of the MessageWhiz simulator (tests/broadcasts/conftest.py)
CENT = Decimal("0.0001")


@pytest.fixture(scope="module")
def voluum_url() -> Iterator[str]:
    config = VoluumSimConfig(start_date="2024-03-12", days=3, visits_per_day=60, rate_limit_per_s=None,
                             retry_after_s=0.0)
    with serve_in_thread(voluum_app(config)) as url:
        yield url


def _reset() -> None:
    from phoneops.broadcasts.provider import reset_clients
    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.provider import reset_clients as reset_voluum

    reset_settings_cache()
    reset_clients()
    reset_voluum()


@pytest.fixture
def providers(mw_sim: SimAdmin, mw_sim_url: str, voluum_url: str, db_url: str,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    with SimAdmin(voluum_url) as voluum:
        voluum.reset()
        for name, value in {"DATABASE_URL": db_url, "MESSAGEWHIZ_BASE_URL": mw_sim_url,
                            "MESSAGEWHIZ_API_KEY": DEFAULT_API_KEY, "MESSAGEWHIZ_CURRENCY": "usd",
                            "VOLUUM_BASE_URL": voluum_url, "VOLUUM_ACCESS_ID": DEFAULT_ACCESS_ID,
                            "VOLUUM_ACCESS_KEY": DEFAULT_ACCESS_KEY, "VOLUUM_CURRENCY": "EUR"}.items():
            monkeypatch.setenv(name, value)
        _reset()
        yield voluum
        monkeypatch.undo()
        _reset()


def _run_again(job_id: str) -> str:
    from phoneops.core import jobs

    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.run_after = datetime.now(UTC)
    return jobs.run_job(job_id)


def _audit(client: Any, admin: dict[str, str], action: str) -> list[dict[str, Any]]:
    return list(client.get("/api/audit", params={"action": action}, headers=admin).json())


def test_a_push_waits_for_its_rate_converts_with_it_and_one_day_cost_everywhere(
    client: Any, users: Any, providers: SimAdmin
) -> None:
    from phoneops.core import jobs

    operator, viewer, admin = users.headers("operator"), users.headers("viewer"), users.headers("admin")
    started = client.post("/api/broadcasts/days", json={"day": str(DAY)}, headers=operator)
    assert started.status_code == 202, started.text
    job_id = started.json()["id"]
    assert jobs.run_job(job_id) == "queued"  # imported, then parked: no rate for the day
    job = client.get(f"/api/jobs/{job_id}", headers=viewer).json()
    assert job["status"] == "queued" and f"no USD→EUR exchange rate for {DAY}" in job["message"], job
    assert providers.orders() == []  # nothing guessed, nothing sent
    assert client.get("/api/broadcasts/costs", params={"day": str(DAY)}, headers=viewer).json() == []
    refused = client.post("/api/broadcasts/costs", json={"day": str(DAY)}, headers=operator)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "rate_missing"
    assert "phoneops broadcasts rates set" in refused.json()["error"]["message"]
    assert providers.orders() == [] and client.get("/api/broadcasts/costs", headers=viewer).json() == []
    empty = client.post("/api/broadcasts/days", json={"day": "2024-03-01"}, headers=operator).json()["id"]
    assert jobs.run_job(empty) == "succeeded"  # a day without costs needs no rate

    # bad input: a clear error, the table untouched
    assert client.put(f"/api/broadcasts/rates/{DAY}", json={"rate": "0.9"}, headers=operator).status_code == 403
    for day, rate in ((DAY, "abc"), (DAY, "-1"), (DAY, "0"), (DAY, "NaN"), (DAY, "1.123456789"), (DAY, "1e9"),
                      ("2024-13-01", "0.9"), ("2999-01-01", "0.9")):
        bad = client.put(f"/api/broadcasts/rates/{day}", json={"rate": rate}, headers=admin)
        assert bad.status_code == 422, (day, rate, bad.text)
        assert bad.json()["error"]["message"]
    listed = client.get("/api/broadcasts/rates", headers=viewer).json()
    assert listed == {"billing_currency": "USD", "tracker_currency": "EUR", "needed": True, "rates": []}
    assert _audit(client, admin, "broadcasts.rate.set") == []

    first = client.put(f"/api/broadcasts/rates/{DAY}", json={"rate": "0.9"}, headers=admin)
    assert first.status_code == 200 and Decimal(first.json()["rate"]) == Decimal("0.9")
    replaced = client.put(f"/api/broadcasts/rates/{DAY}", json={"rate": "0.92"}, headers=admin)
    assert replaced.status_code == 200
    rates = client.get("/api/broadcasts/rates", headers=viewer).json()["rates"]
    assert [(r["day"], r["from_currency"], r["to_currency"], Decimal(r["rate"])) for r in rates] == [
        (str(DAY), "USD", "EUR", Decimal("0.92"))]  # one rate per day
    trail = _audit(client, admin, "broadcasts.rate.set")
    assert [(e["actor"], e["detail"]["rate"], e["detail"]["previous"]) for e in reversed(trail)] == [
        ("admin-user", "0.9", None), ("admin-user", "0.92", "0.9")]

    assert _run_again(job_id) == "succeeded"  # the waiting job pushes once the rate is there
    pushes = client.get("/api/broadcasts/costs", params={"day": str(DAY)}, headers=viewer).json()
    assert pushes and {p["outcome"] for p in pushes} == {"sent"}
    for push in pushes:
        assert push["currency"] == "EUR" and push["billed_currency"] == "USD" and Decimal(push["rate"]) == Decimal("0.92")
        assert Decimal(push["cost"]) == (Decimal(push["billed_cost"]) * Decimal("0.92")).quantize(CENT)
    sent = {o["campaignId"]: o for o in providers.orders()}
    assert {c: (Decimal(str(o["cost"])), o["currency"]) for c, o in sent.items()} == {
        p["campaign_id"]: (Decimal(p["cost"]), "EUR") for p in pushes}

    # one definition of a day's cost: days list, day, analytics, dashboard, pushes
    day = client.get(f"/api/broadcasts/days/{DAY}", headers=viewer).json()
    listed_day = next(d for d in client.get("/api/broadcasts/days", headers=viewer).json() if d["day"] == str(DAY))
    cost, loose = Decimal(listed_day["cost"]), Decimal(listed_day["unattributed_cost"])
    counted = [b for b in day["broadcasts"] if b["counts_for_cost"]]
    assert cost == sum((Decimal(b["price"] or 0) for b in counted), Decimal(0)) > 0
    assert loose == sum((Decimal(b["price"] or 0) for b in counted if not b["campaign_id"]), Decimal(0)) > 0
    assert sum((Decimal(p["billed_cost"]) for p in pushes), Decimal(0)) == cost - loose
    analytics = client.get("/api/broadcasts/analytics", params={"from": str(DAY), "to": str(DAY)},
                           headers=viewer).json()
    assert Decimal(analytics["total"]["cost"]) == cost.quantize(Decimal("0.01"))
    users.create("admin", "ada")
    login(client, "ada")
    card = re.search(rf"Broadcast cost on {DAY}.*?([\d,]+\.\d\d) USD", client.get("/").text, re.S)
    assert card and Decimal(card.group(1).replace(",", "")) == cost.quantize(Decimal("0.01"))
    page = client.get(f"/broadcasts/days/{DAY}").text
    assert f"{cost:,.2f} USD" in page and "\u00d7 0.92" in page and 'data-field="rate-missing"' not in page

    # a deleted rate: the next push waits again, what was pushed stays
    assert client.delete(f"/api/broadcasts/rates/{DAY}", headers=operator).status_code == 403
    assert client.delete(f"/api/broadcasts/rates/{DAY}", headers=admin).status_code == 204
    assert client.delete(f"/api/broadcasts/rates/{DAY}", headers=admin).status_code == 404
    assert _audit(client, admin, "broadcasts.rate.delete")[0]["detail"]["previous"] == "0.92"
    again = client.post("/api/broadcasts/costs", json={"day": str(DAY), "force": True}, headers=operator)
    assert again.status_code == 409 and len(providers.orders()) == len(pushes)
    assert client.get("/api/broadcasts/costs", params={"day": str(DAY)}, headers=viewer).json() == pushes
    assert 'data-field="rate-missing"' in client.get(f"/broadcasts/days/{DAY}").text


def test_the_rate_page_and_the_cli(client: Any, users: Any, providers: SimAdmin) -> None:
    from phoneops.broadcasts.cli import app

    users.create("operator", "olga")
    login(client, "olga")
    assert client.get("/broadcasts/rates", follow_redirects=False).status_code == 403
    users.create("admin", "ada")
    csrf = login(client, "ada")
    page = client.get("/broadcasts/rates")
    assert page.status_code == 200 and "EUR per 1 USD" in page.text and "No rate yet." in page.text
    bad = client.post("/broadcasts/rates", data={"day": str(DAY), "rate": "12,5", "csrf_token": csrf})
    assert bad.status_code == 422 and 'data-field="error"' in bad.text and 'value="12,5"' in bad.text
    assert "No rate yet." in bad.text
    saved = client.post("/broadcasts/rates", data={"day": str(DAY), "rate": "0.9213", "csrf_token": csrf},
                        follow_redirects=True)
    assert saved.status_code == 200 and 'data-field="saved"' in saved.text
    assert re.search(rf'data-day="{DAY}" data-pair="USDEUR">.*?data-field="rate">0.9213<', saved.text, re.S)
    assert client.post("/broadcasts/rates", data={"day": str(DAY), "rate": "1"}).status_code == 403  # no CSRF

    runner = CliRunner()
    shown = runner.invoke(app, ["rates", "list"])
    assert shown.exit_code == 0, shown.output
    assert "bills in USD, Voluum counts in EUR" in shown.output and "0.9213" in shown.output
    for args in (["2024-03-12", "zero"], ["2024-03-12", "0"], ["yesterday", "0.9"]):
        refused = runner.invoke(app, ["rates", "set", *args])
        assert refused.exit_code == 1 and "error" in refused.output, args
    assert "2024-03-12" not in runner.invoke(app, ["rates", "list"]).output
    done = runner.invoke(app, ["rates", "set", "2024-03-12", "0.95"])
    assert done.exit_code == 0 and "2024-03-12: 1 USD = 0.95 EUR" in done.output
    assert runner.invoke(app, ["rates", "delete", "2024-03-11"]).exit_code == 1
    assert runner.invoke(app, ["rates", "delete", "2024-03-12"]).exit_code == 0
    after = client.get("/api/broadcasts/rates", headers=users.headers("viewer")).json()["rates"]
    assert [r["day"] for r in after] == [str(DAY)]


def test_one_currency_needs_no_rate(client: Any, users: Any, providers: SimAdmin,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESSAGEWHIZ_CURRENCY", "EUR")
    _reset()
    listed = client.get("/api/broadcasts/rates", headers=users.headers("viewer")).json()
    assert listed["needed"] is False
    refused = client.put(f"/api/broadcasts/rates/{DAY}", json={"rate": "1.1"}, headers=users.headers("admin"))
    assert refused.status_code == 422 and "no rate is needed" in refused.json()["error"]["message"]
    assert client.get("/api/broadcasts/rates", headers=users.headers("viewer")).json()["rates"] == []
