"""Cost pushes to the Voluum simulator: one currency, results per campaign and day, idempotent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from phoneops.core.db import session_scope
from phoneops.core.errors import ValidationFailed
from phoneops.core.security import SYSTEM
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY
from phoneops.voluum.costs import push_costs
from phoneops.voluum.models import CostPush
from phoneops.voluum.provider import reset_clients

DAY = date(2026, 2, 5)


@pytest.fixture
def voluum_env(voluum_sim_url: str, voluum_sim: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("VOLUUM_BASE_URL", voluum_sim_url)
    monkeypatch.setenv("VOLUUM_ACCESS_ID", DEFAULT_ACCESS_ID)
    monkeypatch.setenv("VOLUUM_ACCESS_KEY", DEFAULT_ACCESS_KEY)
    monkeypatch.setenv("VOLUUM_CURRENCY", "USD")
    reset_settings_cache()
    reset_clients()
    yield voluum_sim_url
    monkeypatch.undo()
    reset_settings_cache()
    reset_clients()


@pytest.fixture
def campaigns(voluum_env: str) -> list[str]:
    data = httpx.get(f"{voluum_env}/_sim/data", timeout=10).json()
    return [c["id"] for c in data["campaigns"]]


def test_push_is_stored_per_campaign_in_the_one_currency(
    db_url: str, campaigns: list[str], voluum_sim: SimAdmin
) -> None:
    first, second = campaigns[:2]
    with session_scope() as session:
        results = push_costs(session, SYSTEM, DAY, [(first, "249.2"), (second, 1)])
    assert [(r.campaign_id, r.outcome, r.currency, r.cost) for r in results] == [
        (first, "sent", "USD", "249.2000"), (second, "sent", "USD", "1.0000")]
    pushed = voluum_sim.orders()
    assert [(p["campaignId"], p["cost"], p["currency"], p["from"], p["to"]) for p in pushed] == [
        (first, 249.2, "USD", "2026-02-05T00:00:00.000Z", "2026-02-06T00:00:00.000Z"),
        (second, 1.0, "USD", "2026-02-05T00:00:00.000Z", "2026-02-06T00:00:00.000Z"),
    ]

    with session_scope() as session:  # the same costs again: nothing sent
        again = push_costs(session, SYSTEM, DAY, [(first, "249.20"), (second, "1")])
        assert [r.outcome for r in again] == ["unchanged", "unchanged"]
        changed = push_costs(session, SYSTEM, DAY, [(first, "250")])
        forced = push_costs(session, SYSTEM, DAY, [(second, "1")], force=True)
        assert changed[0].outcome == "sent" and forced[0].outcome == "sent"
    assert len(voluum_sim.orders()) == 4
    with session_scope() as session:
        rows = {r.campaign_id: r for r in session.scalars(select(CostPush))}
        assert len(rows) == 2  # one row per campaign and day
        assert rows[first].cost == Decimal("250.0000") and rows[first].attempts == 2
        assert rows[second].attempts == 2 and rows[second].status == "sent"


def test_an_unknown_campaign_fails_alone(db_url: str, campaigns: list[str]) -> None:
    with session_scope() as session:
        results = push_costs(session, SYSTEM, DAY, [("00000000-0000-4000-8000-00000000dead", "5"), (campaigns[0], "5")])
    assert [r.outcome for r in results] == ["failed", "sent"]
    assert "404" in (results[0].error or "") and "Campaign not found" in (results[0].error or "")
    with session_scope() as session:
        failed = session.scalars(select(CostPush).where(CostPush.status == "failed")).one()
        assert failed.error and failed.campaign_id.endswith("dead")
    with session_scope() as session:  # the campaign that went through is not sent twice
        assert push_costs(session, SYSTEM, DAY, [(campaigns[0], "5")])[0].outcome == "unchanged"


@pytest.mark.parametrize(
    ("day", "items", "message"),
    [
        (DAY, [], "at least one"),
        (DAY, [("c1", "-1")], "between 0"),
        (DAY, [("c1", "nan")], "between 0"),
        (DAY, [("c1", "ten")], "not a number"),
        (DAY, [("c1", "1"), ("c1", "2")], "given twice"),
        (DAY, [("", "1")], "not a campaign id"),
        (date.today() + timedelta(days=2), [("c1", "1")], "future"),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    db_url: str, campaigns: list[str], voluum_sim: SimAdmin, day: date, items: list[Any], message: str
) -> None:
    with session_scope() as session, pytest.raises(ValidationFailed, match=message):
        push_costs(session, SYSTEM, day, items)
    with session_scope() as session:
        assert session.scalar(select(func.count(CostPush.id))) == 0
    assert voluum_sim.orders() == []


def test_api_and_cli(client: Any, users: Any, campaigns: list[str], db_url: str,
                     monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.cli import app

    body = {"day": "2026-02-05", "items": [{"campaign_id": campaigns[0], "cost": 12.5}]}
    assert client.post("/api/voluum/costs", json=body, headers=users.headers("viewer")).status_code == 403
    answer = client.post("/api/voluum/costs", json=body, headers=users.headers("operator"))
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["outcome"] == "sent" and answer.json()[0]["currency"] == "USD"
    bad = client.post("/api/voluum/costs", json={"day": "2026-02-05", "items": [{"campaign_id": "x", "cost": -1}]},
                      headers=users.headers("operator"))
    assert bad.status_code == 422
    listed = client.get("/api/voluum/costs?day=2026-02-05", headers=users.headers("viewer")).json()
    assert [(p["campaign_id"], p["cost"], p["status"]) for p in listed] == [(campaigns[0], "12.5000", "sent")]

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    result = CliRunner().invoke(app, ["push-cost", "--day", "2026-02-05", f"{campaigns[0]}=12.5", f"{campaigns[1]}=3"])
    assert result.exit_code == 0, result.output
    assert "unchanged" in result.output and "sent" in result.output
    wrong = CliRunner().invoke(app, ["push-cost", "--day", "2026-02-05", "no-equals-sign"])
    assert wrong.exit_code == 1 and "CAMPAIGN_ID=COST" in wrong.output
