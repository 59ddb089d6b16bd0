"""Fixtures of the cleaning tests; helpers live in cleaning_kit.py beside this file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from cleaning_kit import GB_3, seed_lists


@pytest.fixture
def lists(db_url: str) -> None:
    """DE_1 blacklisted, GB_2 on the monitor list, GB_3 in the main database."""
    seed_lists(used=(GB_3,))
