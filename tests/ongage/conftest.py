"""An Ongage simulator served over real HTTP for the session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.ongage import OngageSimConfig, create_app


@pytest.fixture(scope="session")
def ongage_sim_url() -> Iterator[str]:
    with serve_in_thread(create_app(OngageSimConfig())) as url:
        yield url


@pytest.fixture
def ongage_sim(ongage_sim_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(ongage_sim_url) as admin:
        admin.reset()
        yield admin


