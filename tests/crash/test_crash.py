"""The crash-schedule proof in CI: each paid-work scenario (IMEI batch, HLR batch, HLR real-time) runs with a
worker SIGKILLed twice at seeded random points, on SQLite (SqliteHuey) and on PostgreSQL (+ Redis for the
IMEI scenario when PHONEOPS_TEST_REDIS_URL is set); nothing is paid twice, nothing is stuck or lost, and the
ledger equals what the simulator charged. More seeds: `python bench/crash.py --seeds 20`.

CI runs five cases (IMEI on both databases, DHRU and HLR batch on PostgreSQL, HLR real-time on SQLite) to stay
near a few minutes; the seed is fixed (reproducible); PHONEOPS_TEST_CRASH_SEED picks another.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from harness import run_case

from support import REDIS_URL, TMP

SEED = int(os.environ.get("PHONEOPS_TEST_CRASH_SEED", "7"))


def _redis_db(url: str, db: int = 12) -> str:
    """The test Redis on its own database number (the Huey queue name is fixed: keep other tests' workers away)."""
    base = url.rsplit("/", 1)[0] if url.count("/") >= 3 else url
    return f"{base}/{db}"


# CI's share (the machine's 2 cores): each scenario on one database, IMEI on both; the bench runs them all.
CI_CASES = {("sqlite", "imei"), ("sqlite", "hlr_realtime"), ("postgresql", "imei"), ("postgresql", "hlr_batch"),
            ("postgresql", "dhru")}


@pytest.mark.parametrize("scenario", ["imei", "dhru", "hlr_batch", "hlr_realtime"])
def test_paid_work_survives_sigkills(scenario: str, db_url: str, tmp_path: Path) -> None:
    if (db_url.split(":", 1)[0].split("+", 1)[0], scenario) not in CI_CASES:
        pytest.skip("not in CI's share of the crash matrix (python bench/crash.py runs every case)")
    redis_url = _redis_db(REDIS_URL) if REDIS_URL and db_url.startswith("postgresql") and scenario == "imei" else None
    result = run_case(scenario, SEED, db_url=db_url, data_dir=tmp_path, redis_url=redis_url, kills=2, size=40, log_dir=TMP)
    print(result)
    assert result["kills"] >= 1, result  # the schedule did interrupt the work
    assert result["stuck"] == 0 and result["status"] == "succeeded", result
    assert result["double_paid"] == 0, result
    assert result["lost"] == 0, result
    assert result["ledger_delta"] in ("0", "0.00", "0.0000", "0E-4", "0E-2"), result


def test_scenarios_share_one_database(db_url: str) -> None:
    """The bench runs every scenario in one database: a DHRU account configured after GSM Fusion's catalogue was
    cached must have its services fetched at once (the catalogue's freshness is per account), not after the TTL."""
    import random

    from harness import SCENARIOS, environment

    from phoneops.core.db import session_scope
    from phoneops.imei.models import ImeiBatch
    from phoneops.simulators._server import serve_in_thread

    for name in ("imei", "dhru"):  # the db_url fixture's queue hook drops the jobs: created, not run
        scenario = SCENARIOS[name]()
        rng = random.Random(name)
        with serve_in_thread(scenario.simulator(rng)) as url, environment(scenario.settings(url)):
            job_id = scenario.create(rng, 3)
        with session_scope() as session:
            batch = session.get(ImeiBatch, scenario.batch_id)  # type: ignore[attr-defined]
            assert batch is not None and batch.job_id == job_id and batch.to_send == 3, name
            assert batch.service_id == scenario.service  # type: ignore[attr-defined]
