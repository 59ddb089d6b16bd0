"""A MessageWhiz simulator served over real HTTP for the session, reset before each test that uses it."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

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


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event, whatever level the suite configured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as captured:
            yield captured
    finally:
        structlog.configure(**saved)
