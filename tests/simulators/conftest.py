"""The GSM Fusion simulator served over real HTTP for this folder's session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.gsm_fusion import GsmFusionSimConfig, create_app


@pytest.fixture(scope="session")
def gsm_sim_url() -> Iterator[str]:
    with serve_in_thread(create_app(GsmFusionSimConfig(pending_seconds=60, in_process_seconds=120))) as url:
        yield url


@pytest.fixture
def gsm_sim(gsm_sim_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(gsm_sim_url) as admin:
        admin.reset()
        yield admin


@pytest.fixture
def http(gsm_sim: SimAdmin, gsm_sim_url: str) -> Iterator[httpx.Client]:
    """A plain HTTP client on the simulator (the wire protocol, without our provider client)."""
    with httpx.Client(base_url=gsm_sim_url, timeout=10.0) as client:
        yield client
