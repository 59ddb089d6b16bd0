"""An hlrlookup.com simulator served over real HTTP for the session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phoneops.core.http import RetryPolicy
from phoneops.hlr.client import HlrClient
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET, HlrSimConfig, create_app

FAST_RETRY = RetryPolicy(attempts=3, total_timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)


@pytest.fixture(scope="session")
def hlr_sim_url() -> Iterator[str]:
    with serve_in_thread(create_app(HlrSimConfig(retry_after_s=0.0, batch_items_per_second=0.0))) as url:
        yield url


@pytest.fixture
def hlr_sim(hlr_sim_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(hlr_sim_url) as admin:
        admin.reset()
        yield admin


@pytest.fixture
def hlr_client(hlr_sim: SimAdmin, hlr_sim_url: str) -> Iterator[HlrClient]:
    with HlrClient(hlr_sim_url, DEFAULT_API_KEY, DEFAULT_API_SECRET, timeout=5.0, retry=FAST_RETRY) as client:
        yield client


