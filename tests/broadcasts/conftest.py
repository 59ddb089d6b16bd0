"""A MessageWhiz simulator served over real HTTP for the session, reset before each test that uses it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.messagewhiz import MessageWhizSimConfig, create_app

ANCHOR = "2024-03-14"  # seeded days 2024-03-12 .. 2024-03-14, long sent: their counts are final


@pytest.fixture(scope="session")
def mw_sim_url() -> Iterator[str]:
    with serve_in_thread(create_app(MessageWhizSimConfig(anchor_date=ANCHOR, days=3, broadcasts_per_day=12))) as url:
        yield url


@pytest.fixture
def mw_sim(mw_sim_url: str) -> Iterator[SimAdmin]:
    with SimAdmin(mw_sim_url) as admin:
        admin.reset()
        yield admin


