"""Fault injection: every simulator over real HTTP, short back-offs, and a real worker thread.

The simulators' shared `faults` / `down` knobs (`phoneops.simulators._server.FaultInjector`) inject seeded
5xx, 429 and timeouts, before a call is handled or after it (the provider did the work, the answer is
lost). Jobs run on `Worker`: a thread that runs each job when its message is due, as Huey would.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from phoneops.core import http, jobs
from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.simulators._server import SimAdmin, serve_in_thread

FAULTS = {"rate": 0.2, "kinds": ["500", "503", "timeout", "429"], "after": 0.5, "timeout_s": 1.2,
          "retry_after_s": 0.1}
TIMEOUT_CAP = 0.8  # the clients' timeout: a held answer (timeout_s) really times out


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Short waits everywhere (the production values are seconds to a minute)."""
    from phoneops.hlr import engine as hlr_engine
    from phoneops.imei import placing

    monkeypatch.setattr(jobs, "OUTAGE_FIRST_DELAY_SECONDS", 0.2)
    monkeypatch.setattr(jobs, "OUTAGE_MAX_DELAY_SECONDS", 1.0)
    monkeypatch.setattr(http, "TIMEOUT_CAP_SECONDS", TIMEOUT_CAP)
    monkeypatch.setattr(placing, "RECONCILE_DELAY_SECONDS", 0.3)
    monkeypatch.setattr(hlr_engine, "PARK_SECONDS", 0.3)


class Worker:
    """Runs jobs in one thread, each when its (possibly delayed) message is due."""

    def __init__(self) -> None:
        self._due: list[tuple[float, int, str]] = []
        self._seq = 0
        self._cond = threading.Condition()
        self._stop = False
        self.runs: list[tuple[str, str | None]] = []
        self._thread = threading.Thread(target=self._loop, name="fault-worker", daemon=True)

    def enqueue(self, job_id: str, delay: float | None) -> None:
        with self._cond:
            self._seq += 1
            heapq.heappush(self._due, (time.monotonic() + (delay or 0.0), self._seq, job_id))
            self._cond.notify()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and (not self._due or self._due[0][0] > time.monotonic()):
                    self._cond.wait(timeout=(self._due[0][0] - time.monotonic()) if self._due else None)
                if self._stop:
                    return
                _, _, job_id = heapq.heappop(self._due)
            self.runs.append((job_id, jobs.run_job(job_id)))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout=60)


@pytest.fixture
def worker(db_url: str) -> Iterator[Worker]:
    w = Worker()
    jobs.set_enqueue_hook(w.enqueue)
    w.start()
    yield w
    jobs.set_enqueue_hook(lambda job_id, delay: None)
    w.stop()


def job_row(job_id: str) -> Job:
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        session.expunge(job)
        return job


def wait_done(job_id: str, timeout: float = 120.0) -> Job:
    job = jobs.wait_for(job_id, timeout=timeout, poll=0.1)
    assert job.status in jobs.TERMINAL, f"job {job_id} still {job.status} after {timeout} s: {job.message}"
    return job


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set provider settings for one test; the settings cache is reset around it."""
    from phoneops.settings import reset_settings_cache

    def setenv(**values: str) -> None:
        for name, value in values.items():
            monkeypatch.setenv(name, value)
        reset_settings_cache()

    yield setenv
    reset_settings_cache()


def serve(app: Any) -> Iterator[tuple[str, SimAdmin]]:
    with serve_in_thread(app) as url, SimAdmin(url) as admin:
        yield url, admin


# --- the simulators (one of each for the session; tests reset them) ----------------------------------------


@pytest.fixture(scope="session")
def gsm() -> Iterator[tuple[str, SimAdmin]]:
    from phoneops.simulators.gsm_fusion import GsmFusionSimConfig, create_app

    yield from serve(create_app(GsmFusionSimConfig(pending_seconds=600, reject_ratio=0.0)))


@pytest.fixture(scope="session")
def hlr() -> Iterator[tuple[str, SimAdmin]]:
    from phoneops.simulators.hlr_lookup import HlrSimConfig, create_app

    yield from serve(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0)))


@pytest.fixture(scope="session")
def voluum() -> Iterator[tuple[str, SimAdmin]]:
    from phoneops.simulators.voluum import VoluumSimConfig, create_app

    config = VoluumSimConfig(start_date="2024-03-12", days=3, visits_per_day=300, rate_limit_per_s=None,
                             retry_after_s=0.0)
    yield from serve(create_app(config))


@pytest.fixture(scope="session")
def mw() -> Iterator[tuple[str, SimAdmin]]:
    from phoneops.simulators.messagewhiz import MessageWhizSimConfig, create_app

    yield from serve(create_app(MessageWhizSimConfig(anchor_date="2024-03-14", days=3, broadcasts_per_day=12)))


@pytest.fixture(scope="session")
def ongage() -> Iterator[tuple[str, SimAdmin]]:
    from phoneops.simulators.ongage import OngageSimConfig, create_app

    yield from serve(create_app(OngageSimConfig()))


def configure_providers(env: Any, **urls: str) -> None:
    """Point the product at the simulators given (gsm, hlr, voluum, mw, ongage) and drop cached clients."""
    from phoneops.broadcasts.provider import reset_clients as reset_mw
    from phoneops.ongage.provider import reset_clients as reset_ongage
    from phoneops.simulators import gsm_fusion, hlr_lookup, messagewhiz
    from phoneops.simulators import ongage as og
    from phoneops.simulators import voluum as vl
    from phoneops.voluum.provider import reset_clients as reset_voluum

    values: dict[str, str] = {}
    if "gsm" in urls:
        values.update(GSM_FUSION_BASE_URL=urls["gsm"], GSM_FUSION_USERNAME=gsm_fusion.DEFAULT_USER,
                      GSM_FUSION_API_KEY=gsm_fusion.DEFAULT_API_KEY, IMEI_CONCURRENCY="4")
    if "hlr" in urls:
        values.update(HLR_BASE_URL=urls["hlr"], HLR_BATCH_BASE_URL=urls["hlr"], HLR_API_KEY=hlr_lookup.DEFAULT_API_KEY,
                      HLR_API_SECRET=hlr_lookup.DEFAULT_API_SECRET, HLR_POLL_EVERY_SECONDS="0.05",
                      HLR_POLL_MAX_SECONDS="60")
    if "voluum" in urls:
        values.update(VOLUUM_BASE_URL=urls["voluum"], VOLUUM_ACCESS_ID=vl.DEFAULT_ACCESS_ID,
                      VOLUUM_ACCESS_KEY=vl.DEFAULT_ACCESS_KEY, VOLUUM_CURRENCY="USD")
    if "mw" in urls:
        values.update(MESSAGEWHIZ_BASE_URL=urls["mw"], MESSAGEWHIZ_API_KEY=messagewhiz.DEFAULT_API_KEY,
                      MESSAGEWHIZ_CURRENCY=values.get("VOLUUM_CURRENCY", "EUR"))
    if "ongage" in urls:
        values.update(ONGAGE_BASE_URL=urls["ongage"], ONGAGE_LIST_ID=og.DEFAULT_LIST_ID,
                      ONGAGE_USERNAME=og.DEFAULT_USERNAME, ONGAGE_PASSWORD=og.DEFAULT_PASSWORD,
                      ONGAGE_ACCOUNT_CODE=og.DEFAULT_ACCOUNT_CODE, ONGAGE_COUNTRIES="GB")
    env(**values)
    reset_mw()
    reset_voluum()
    reset_ongage()
