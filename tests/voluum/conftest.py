"""A Voluum simulator served over real HTTP for the session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from phoneops.core.http import RetryPolicy
from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, VoluumSimConfig, create_app
from phoneops.voluum.client import VoluumClient

FAST_RETRY = RetryPolicy(attempts=3, total_timeout=5.0, wait_initial=0.01, wait_max=0.05, wait_jitter=0.0)


@pytest.fixture(scope="session")
def voluum_sim_url() -> Iterator[str]:
    config = VoluumSimConfig(rate_limit_per_s=None, retry_after_s=0.0, days=2, visits_per_day=60)
    with serve_in_thread(create_app(config)) as url:
        yield url


@pytest.fixture
def voluum_sim(voluum_sim_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(voluum_sim_url) as admin:
        admin.reset()
        yield admin


@pytest.fixture
def make_client(voluum_sim: SimAdmin, voluum_sim_url: str) -> Iterator[Callable[..., VoluumClient]]:
    """Builds clients on the simulator (no client-side rate limit unless asked); closes them afterwards."""
    made: list[VoluumClient] = []

    def make(**options: Any) -> VoluumClient:
        settings: dict[str, Any] = {"timeout": 5.0, "retry": FAST_RETRY, "requests_per_second": None}
        settings.update(options)
        access_id = settings.pop("access_id", DEFAULT_ACCESS_ID)
        access_key = settings.pop("access_key", DEFAULT_ACCESS_KEY)
        client = VoluumClient(settings.pop("base_url", voluum_sim_url), access_id, access_key, **settings)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def voluum(make_client: Callable[..., VoluumClient]) -> VoluumClient:
    return make_client()


@pytest.fixture
def load_data(voluum_sim: SimAdmin, voluum_sim_url: str) -> Callable[..., dict[str, int]]:
    """Replaces the simulator's collections (`visits=[...]`, `conversions=[...]`, ...) via POST /_sim/data."""

    def load(**collections: Any) -> dict[str, int]:
        response = httpx.post(f"{voluum_sim_url}/_sim/data", json=collections, timeout=10.0)
        response.raise_for_status()
        sizes: dict[str, int] = response.json()
        return sizes

    return load


