"""A GSM Fusion simulator served over real HTTP for the session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phoneops.core.http import RetryPolicy
from phoneops.imei.client import GsmFusionClient
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER, GsmFusionSimConfig, create_app

FAST_RETRY = RetryPolicy(attempts=3, total_timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)


@pytest.fixture(scope="session")
def gsm_sim_url() -> Iterator[str]:
    config = GsmFusionSimConfig(pending_seconds=60, in_process_seconds=120, reject_ratio=0.0)
    with serve_in_thread(create_app(config)) as url:
        yield url


@pytest.fixture
def gsm_sim(gsm_sim_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(gsm_sim_url) as admin:
        admin.reset()
        yield admin


@pytest.fixture
def gsm_client(gsm_sim: SimAdmin, gsm_sim_url: str) -> Iterator[GsmFusionClient]:
    with GsmFusionClient(gsm_sim_url, DEFAULT_USER, DEFAULT_API_KEY, timeout=5.0, retry=FAST_RETRY) as c:
        yield c


