"""A seeded crash-schedule harness for paid work: real `phoneops worker` processes SIGKILLed at seeded random
points while they place IMEI orders or look numbers up, then the whole history is checked.

One run (`run_case`) of a scenario with a seed:

1. the scenario's provider simulator is served over real HTTP in this process (it outlives the workers),
   with seeded latency (and, for HLR, seeded 429s);
2. the scenario creates its work through the service functions (an IMEI batch, an HLR lookup);
3. a worker process takes the job and is SIGKILLed after a seeded delay, `kills` times (the dead worker's
   lease is expired by hand: the reaper's timing is proven in tests/core/test_worker_kill.py); a last worker
   runs the job to its end within `finish_seconds`, else the run counts as `stuck`;
4. the scenario checks the history against the simulator's own books:
   `double_paid` — items charged more than once (an IMEI ordered twice; a number charged twice in a lookup),
   `lost` — input rows not in a final state with a reason, `ledger_delta` — what the provider charged minus
   what our ledger says was spent.

A provider plugs in by adding a `Scenario` to `SCENARIOS` (see `ImeiScenario`): a simulator app, the settings
that point phoneops at it, how to create the work, how to check it.

Used by tests/crash/test_crash.py (a few seeds, both databases) and bench/crash.py (many seeds).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select, update
from stdnum import luhn

from phoneops.core.db import session_scope, utcnow
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.simulators._server import SimAdmin, serve_in_thread

TERMINAL = ("succeeded", "failed", "cancelled")


@dataclass
class Checked:
    double_paid: int = 0
    lost: int = 0
    ledger_delta: Decimal = Decimal(0)
    detail: dict[str, Any] = field(default_factory=dict)


class Scenario(Protocol):
    name: str

    def simulator(self, rng: random.Random) -> Any: ...  # an ASGI app

    def settings(self, url: str) -> dict[str, str]: ...  # environment pointing phoneops at the simulator

    def create(self, rng: random.Random, size: int) -> str: ...  # the work; returns its job id

    def check(self, sim: SimAdmin) -> Checked: ...


# --- IMEI (GSM Fusion) ---------------------------------------------------------------------------------


class ImeiScenario:
    name = "imei"
    service = "1739"

    def __init__(self) -> None:
        self.batch_id = 0
        self.imeis: list[str] = []

    def simulator(self, rng: random.Random) -> Any:
        from phoneops.simulators.gsm_fusion import GsmFusionSimConfig, create_app

        # Order ids unique across cases sharing one database (the bench): each simulator numbers from elsewhere.
        return create_app(GsmFusionSimConfig(latency_ms=rng.uniform(10, 40), reject_ratio=0.0, seed=rng.randrange(99),
                                             initial_balance=Decimal("100000"),
                                             first_order_id=rng.randrange(10**6, 10**9)))

    def settings(self, url: str) -> dict[str, str]:
        from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

        return {"GSM_FUSION_BASE_URL": url, "GSM_FUSION_USERNAME": DEFAULT_USER,
                "GSM_FUSION_API_KEY": DEFAULT_API_KEY, "IMEI_CONCURRENCY": "4"}

    def create(self, rng: random.Random, size: int) -> str:
        from phoneops.imei import inputs, submission

        base = rng.randrange(10**5, 10**6)
        bodies = [f"35{base:06d}{i:06d}" for i in range(size)]
        self.imeis = [b + luhn.calc_check_digit(b) for b in bodies]
        with session_scope() as session:
            batch, _ = submission.create_batch(session, SYSTEM, [inputs.InputRow(v) for v in self.imeis],
                                               self.service, confirm_over_budget=True)
            self.batch_id = batch.id
            assert batch.job_id is not None
            return batch.job_id

    def check(self, sim: SimAdmin) -> Checked:
        from phoneops.imei import submission
        from phoneops.imei.models import DUPLICATE, FAILED, PLACED, REVIEW, WRITTEN_OFF, ImeiOrder

        stats = sim.stats()
        per_imei: dict[str, int] = stats["orders_per_imei"]
        out = Checked(double_paid=sum(1 for n in per_imei.values() if n > 1))
        with session_scope() as session:
            rows = session.execute(select(ImeiOrder.imei, ImeiOrder.state, ImeiOrder.order_id, ImeiOrder.error,
                                          ImeiOrder.review_reason).where(ImeiOrder.batch_id == self.batch_id)).all()
            spend = submission.batch_spend(session, self.batch_id)

        def final(state: str, order_id: str | None, error: str | None, reason: str | None) -> bool:
            if state == PLACED:
                return bool(order_id)
            if state == REVIEW:
                return bool(error and reason)
            return state in (DUPLICATE, FAILED, WRITTEN_OFF) and bool(error or state == WRITTEN_OFF)

        out.lost = sum(1 for r in rows if not final(r.state, r.order_id, r.error, r.review_reason))
        out.lost += len(set(self.imeis) - {r.imei for r in rows})
        charged = Decimal("100000") - sum(Decimal(v) for v in stats["balance"].values())
        out.ledger_delta = charged - spend
        out.detail = {"orders": stats["total_orders"], "review": sum(1 for r in rows if r.state == REVIEW)}
        return out


class DhruScenario(ImeiScenario):
    """The same batch and checks against a DHRU Fusion reseller account (the shared placement engine)."""

    name = "dhru"
    service = "alpha:201"

    def simulator(self, rng: random.Random) -> Any:
        from phoneops.simulators.dhru import DhruSimConfig, create_app

        return create_app(DhruSimConfig(latency_ms=rng.uniform(10, 40), reject_ratio=0.0, seed=rng.randrange(99),
                                        initial_balance=Decimal("100000"),
                                        first_reference_id=rng.randrange(10**6, 10**9)))

    def settings(self, url: str) -> dict[str, str]:
        import json

        from phoneops.simulators.dhru import DEFAULT_API_KEY, DEFAULT_USER

        return {"DHRU_ACCOUNTS": json.dumps([{"name": "alpha", "base_url": url, "username": DEFAULT_USER,
                                              "api_key": DEFAULT_API_KEY}]),
                "GSM_FUSION_USERNAME": "", "IMEI_CONCURRENCY": "4"}


# --- HLR (hlrlookup.com), batch and real-time ---------------------------------------------------------------


class HlrScenario:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.name = f"hlr_{mode}"
        self.lookup_id = 0
        self.numbers: list[str] = []

    def simulator(self, rng: random.Random) -> Any:
        from phoneops.simulators.hlr_lookup import HlrSimConfig, create_app

        return create_app(HlrSimConfig(latency_ms=rng.uniform(20, 80), throttle_rate=rng.choice([0.0, 0.05]),
                                       retry_after_s=0.0, batch_items_per_second=rng.uniform(100, 300),
                                       seed=rng.randrange(99), initial_credits=100_000))

    def settings(self, url: str) -> dict[str, str]:
        from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET

        return {"HLR_BASE_URL": url, "HLR_BATCH_BASE_URL": url, "HLR_API_KEY": DEFAULT_API_KEY,
                "HLR_API_SECRET": DEFAULT_API_SECRET, "HLR_POLL_EVERY_SECONDS": "0.1"}

    def create(self, rng: random.Random, size: int) -> str:
        from phoneops.core import storage
        from phoneops.hlr import risky
        from phoneops.hlr.lookups import FileSource, create_lookup

        base = rng.randrange(0, 180) * 1000  # +447911 000000-179999: valid UK mobiles
        self.numbers = [f"+447911{base + i:06d}" for i in range(size)]
        with session_scope() as session:
            risky.restore_seed(session, SYSTEM)
            body = ("phone\n" + "\n".join(self.numbers) + "\n").encode()
            file_id = storage.get_storage().save_bytes(session, SYSTEM, body, kind="upload",
                                                       original_name="crash.csv").id
        with session_scope() as session:
            lookup = create_lookup(session, SYSTEM, FileSource(file_id, "phone", "GB"), mode=self.mode,
                                   batch_size=max(10, size // 4), confirm=True)
            self.lookup_id = lookup.id
            assert lookup.job_id is not None
            return lookup.job_id

    def check(self, sim: SimAdmin) -> Checked:
        from phoneops.hlr.models import CACHED, DONE, FAILED, REVIEW, HlrLookup, HlrLookupItem

        stats = sim.stats()
        charges: dict[str, int] = stats["charges_per_number"]
        out = Checked(double_paid=sum(1 for n in charges.values() if n > 1))
        with session_scope() as session:
            items = session.execute(select(HlrLookupItem.state, HlrLookupItem.note)
                                    .where(HlrLookupItem.lookup_id == self.lookup_id)).all()
            lookup = session.get(HlrLookup, self.lookup_id)
            spent = lookup.credits_spent if lookup is not None else Decimal(0)
        out.lost = sum(1 for state, note in items
                       if not (state in (DONE, CACHED) or (state in (REVIEW, FAILED) and note)))
        out.lost += len(self.numbers) - len(items)
        out.ledger_delta = Decimal(str(stats["credits_spent"])) - Decimal(str(spent))
        out.detail = {"lookups": stats["total_paid_lookups"], "review": sum(1 for s, _ in items if s == REVIEW)}
        return out


SCENARIOS: dict[str, Callable[[], Scenario]] = {
    "imei": ImeiScenario,
    "dhru": DhruScenario,
    "hlr_batch": lambda: HlrScenario("batch"),
    "hlr_realtime": lambda: HlrScenario("realtime"),
}


# --- the driver ----------------------------------------------------------------------------------------------


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set environment variables (and reload the settings) for the block."""
    from phoneops.settings import reset_settings_cache

    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    reset_settings_cache()
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        reset_settings_cache()


def _job(job_id: str) -> tuple[str, str | None]:
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.lease_owner


def run_case(
    scenario_name: str, seed: int, *, db_url: str, data_dir: Path, redis_url: str | None = None, kills: int = 2,
    size: int = 60, finish_seconds: float = 90.0, log_dir: Path | None = None,
) -> dict[str, Any]:
    """Run one scenario with one seed on `db_url` (this process's database too)."""
    from phoneops.core import jobs, queue

    scenario = SCENARIOS[scenario_name]()
    rng = random.Random(f"{scenario_name}:{seed}")
    log_dir = log_dir or data_dir
    huey_dir = data_dir / f"queue-{scenario_name}-{seed}"
    with serve_in_thread(scenario.simulator(rng)) as url, SimAdmin(url) as sim:
        settings = {**scenario.settings(url), "DATA_DIR": str(huey_dir), "JOB_LEASE_SECONDS": "5",
                    "WORKER_THREADS": "2", "LOG_LEVEL": "WARNING"}
        if redis_url:
            settings["REDIS_URL"] = redis_url
        huey = queue.build_huey(redis_url, huey_dir)  # the queue the workers read (DATA_DIR, or REDIS_URL)
        worker_env = {**os.environ, **settings, "DATABASE_URL": db_url}
        stuck = done_kills = 0
        with environment(settings):
            jobs.set_enqueue_hook(queue.enqueuer(huey))
            try:
                job_id = scenario.create(rng, size)
            finally:
                jobs.set_enqueue_hook(lambda job_id, delay: None)
            dead: set[str | None] = {None}
            for attempt in range(kills + 1):
                log = (log_dir / f"crash-{scenario_name}-{seed}-{attempt}-{os.getpid()}.log").open("wb")
                worker = subprocess.Popen([sys.executable, "-m", "phoneops", "worker"], env=worker_env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
                try:
                    if attempt < kills:
                        deadline = time.monotonic() + 60
                        while True:  # until this worker holds the job (or the job ended)
                            status, owner = _job(job_id)
                            if status in TERMINAL or (status == "running" and owner not in dead):
                                break
                            if worker.poll() is not None or time.monotonic() > deadline:
                                raise RuntimeError(f"worker {attempt} never took job {job_id} ({status}); see {log.name}")
                            time.sleep(0.02)
                        if status in TERMINAL:
                            break
                        time.sleep(rng.uniform(0.05, 0.9))
                        os.killpg(worker.pid, signal.SIGKILL)
                        worker.wait(10)
                        done_kills += 1
                        dead.add(_job(job_id)[1])
                        with session_scope() as session:  # the dead worker's lease expires now, not in 5 s
                            session.execute(update(Job).where(Job.id == job_id)
                                            .values(heartbeat_at=utcnow().replace(year=2000)))
                    else:
                        deadline = time.monotonic() + finish_seconds
                        while _job(job_id)[0] not in TERMINAL and time.monotonic() < deadline:
                            time.sleep(0.1)
                        stuck = int(_job(job_id)[0] not in TERMINAL)
                finally:
                    if worker.poll() is None:
                        worker.terminate()
                        try:
                            worker.wait(10)
                        except subprocess.TimeoutExpired:
                            worker.kill()
                            worker.wait(5)
                    log.close()
            checked = scenario.check(sim)
            status = _job(job_id)[0]
    return {"scenario": scenario_name, "seed": seed, "kills": done_kills, "stuck": stuck, "status": status,
            "double_paid": checked.double_paid, "lost": checked.lost, "ledger_delta": str(checked.ledger_delta),
            **checked.detail}
