"""MessageWhiz unsubscribe lists -> opt-outs, against the simulator over real HTTP (paged, idempotent)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from phoneops.core.db import session_scope
from phoneops.numbers import optouts
from phoneops.numbers.vault import get_vault
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY


def _reset() -> None:
    from phoneops.broadcasts.provider import reset_clients
    from phoneops.settings import reset_settings_cache

    reset_settings_cache()
    reset_clients()


@pytest.fixture
def mw(mw_sim: SimAdmin, mw_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("MESSAGEWHIZ_BASE_URL", mw_sim_url)
    monkeypatch.setenv("MESSAGEWHIZ_API_KEY", DEFAULT_API_KEY)
    _reset()
    yield mw_sim_url
    monkeypatch.undo()
    _reset()


def test_unsubscribers_become_sticky_opt_outs(mw: str, client: Any, users: Any, inline_jobs: list[str]) -> None:
    many = [f"4479111{n:05d}" for n in range(230)]  # more than two pages of 100
    loaded = httpx.post(f"{mw}/_sim/data", json={"unsubscribers": {"Main": many, "Promo": ["+447911100001",
                                                                                          "not a number"]}})
    assert loaded.status_code == 200, loaded.text
    op = users.headers("operator")
    started = client.post("/api/broadcasts/unsubscribers/sync", headers=op)
    assert started.status_code == 202, started.text
    job = client.get(f"/api/jobs/{started.json()['id']}", headers=op).json()
    assert job["status"] == "succeeded", job
    assert job["result"] == {"lists": 2, "members": 232, "recorded": 230, "already": 1, "kept_lifted": 0,
                             "invalid": 1}  # the Promo list repeats one Main number
    counts = client.get("/api/numbers/optouts/counts", headers=op).json()
    assert (counts["sms_stop"], counts["total"]) == (230, 230)
    found = client.get("/api/numbers/lookup", params={"number": "+447911100001"}, headers=op).json()
    assert found["opt_out"]["source"] == "messagewhiz" and found["opt_out"]["reason"] == "sms_stop"
    again = client.post("/api/broadcasts/unsubscribers/sync", headers=op)  # re-running changes nothing
    assert client.get(f"/api/jobs/{again.json()['id']}", headers=op).json()["result"]["recorded"] == 0
    with session_scope() as s:
        index = get_vault().index("+447911100005")
        assert optouts.opted_out(s, [index]) == {index: "sms_stop"}


def test_without_messagewhiz_the_sync_is_refused_clearly(client: Any, users: Any, monkeypatch: Any) -> None:
    monkeypatch.delenv("MESSAGEWHIZ_API_KEY", raising=False)
    _reset()
    refused = client.post("/api/broadcasts/unsubscribers/sync", headers=users.headers("operator"))
    assert refused.status_code == 503 and "MESSAGEWHIZ_API_KEY" in refused.text
