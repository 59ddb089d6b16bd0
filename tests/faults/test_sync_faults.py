"""Read-side providers at 20% mixed faults (Voluum traffic and conversions, MessageWhiz day import with the
cost push to Voluum): every job finishes, and what it stored is exactly what a fault-free run stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from sqlalchemy import select

from faults.conftest import FAULTS, Worker, wait_done
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.simulators._server import SimAdmin

DAY = date(2024, 3, 13)
VOLATILE = ("id", "job_id", "csv_file_id", "xlsx_file_id", "file_id", "run_id")
OUTCOME = {"broadcast_cost_pushes": ("outcome", "error", "attempts")}  # "sent" once, then "unchanged"


def snapshot(*models: Any) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of `models`, without ids and timestamps, sorted (what a sync decided)."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with session_scope() as session:
        for model in models:
            skip = (*VOLATILE, *OUTCOME.get(model.__tablename__, ()))
            columns = [c for c in model.__table__.columns if c.name not in skip and not c.name.endswith("_at")]
            rows = session.execute(select(*columns)).all()
            out[model.__tablename__] = sorted(tuple(map(str, r)) for r in rows)
    return out


@pytest.fixture
def providers(voluum: tuple[str, SimAdmin], mw: tuple[str, SimAdmin], env: Any) -> Iterator[dict[str, SimAdmin]]:
    from phoneops.broadcasts.provider import reset_clients as reset_mw
    from phoneops.simulators.messagewhiz import DEFAULT_API_KEY
    from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY
    from phoneops.voluum.provider import reset_clients as reset_voluum

    voluum[1].reset()
    mw[1].reset()
    env(VOLUUM_BASE_URL=voluum[0], VOLUUM_ACCESS_ID=DEFAULT_ACCESS_ID, VOLUUM_ACCESS_KEY=DEFAULT_ACCESS_KEY,
        VOLUUM_CURRENCY="USD", MESSAGEWHIZ_CURRENCY="USD", MESSAGEWHIZ_BASE_URL=mw[0], MESSAGEWHIZ_API_KEY=DEFAULT_API_KEY)
    reset_mw()
    reset_voluum()
    yield {"voluum": voluum[1], "mw": mw[1]}
    reset_mw()
    reset_voluum()


def _faulted_then_clean(sims: list[SimAdmin], start: Any, models: tuple[Any, ...], seed: int) -> dict[str, Any]:
    for sim in sims:
        sim.configure(faults={**FAULTS, "seed": seed})
    with session_scope() as session:
        job_id = start(session).id
    job = wait_done(job_id)
    assert job.status == "succeeded", job.error
    assert sum(sim.stats()["injected"].get("faults", 0) for sim in sims) >= 1
    faulted = snapshot(*models)
    assert all(faulted.values()), {k: len(v) for k, v in faulted.items()}
    for sim in sims:
        sim.configure(faults={"rate": 0.0})
    with session_scope() as session:
        job_id = start(session).id
    assert wait_done(job_id).status == "succeeded"
    assert snapshot(*models) == faulted  # the faulted run stored exactly what a clean run stores
    return job.result


def test_voluum_traffic_and_conversions_at_20_percent_faults(providers: dict[str, SimAdmin], worker: Worker) -> None:
    from phoneops.voluum import conversions, traffic
    from phoneops.voluum.models import Conversion, TrafficDay, TrafficRow

    sim = providers["voluum"]
    result = _faulted_then_clean(
        [sim], lambda s: traffic.start_sync(s, SYSTEM, "2024-03-12", "2024-03-14"), (TrafficRow, TrafficDay), 21)
    assert result["days"] == 3 if "days" in result else True
    _faulted_then_clean(
        [sim], lambda s: conversions.start_sync(s, SYSTEM, "2024-03-12", "2024-03-14"), (Conversion,), 23)


def test_messagewhiz_day_import_and_cost_push_at_20_percent_faults(
    providers: dict[str, SimAdmin], worker: Worker
) -> None:
    from phoneops.broadcasts import days
    from phoneops.broadcasts.models import BroadcastCampaignDay, BroadcastCostPush, BroadcastStat

    result = _faulted_then_clean(
        [providers["mw"], providers["voluum"]], lambda s: days.start_import(s, SYSTEM, DAY),
        (BroadcastStat, BroadcastCampaignDay, BroadcastCostPush), 31)
    assert result["broadcasts"] == 12
    costs = result["costs"]
    assert costs["failed"] == 0 and costs["sent"] >= 1, costs
