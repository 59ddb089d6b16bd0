"""Tracker numbers read right: `customVariable1` digits carry their country code, so they are read
international-first; a conversion's campaign country settles digits valid both ways; the instance's
DEFAULT_REGION alone never decides (with DEFAULT_REGION=DE, 447400123456 is not a German number)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import lookup
from phoneops.numbers.models import PhoneNumber
from phoneops.voluum import traffic
from phoneops.voluum.provider import PhoneReader, phone_reader


@pytest.fixture
def german_instance(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DEFAULT_REGION", "DE")
    reset_settings_cache()
    yield
    reset_settings_cache()


def test_digits_are_read_international_first(german_instance: None) -> None:
    reader = phone_reader()
    for digits, e164, country in [("447400123456", "+447400123456", "GB"), ("33612345678", "+33612345678", "FR"),
                                  ("4915112345678", "+4915112345678", "DE"), (447400123456, "+447400123456", "GB")]:
        value = reader.read(digits)
        assert (value.e164, value.country) == (e164, country), digits
    assert reader.read("+447400123456").e164 == "+447400123456"
    assert reader.read("015112345678").e164 is None  # national digits alone: no guess from DEFAULT_REGION
    assert reader.read("015112345678", "DE").e164 == "+4915112345678"  # a campaign country reads them


def test_the_campaign_country_settles_digits_valid_both_ways(german_instance: None) -> None:
    reader = phone_reader()
    assert reader.read("3612345678").e164 == "+3612345678"  # Budapest, as written internationally
    assert reader.read("3612345678", "US").e164 == "+13612345678"  # a US campaign: Texas
    assert reader.read("3612345678", "HU").e164 == "+3612345678"
    assert reader.read("3612345678", "not-a-country").e164 == "+3612345678"
    # digits a German would never dial (no trunk 0) stay as written, even from a German campaign
    assert reader.read("447400123456", "DE").e164 == "+447400123456"
    assert reader.read("33612345678", "DE").e164 == "+33612345678"
    # a file a user uploads with a region of their choice is still read nationally first
    assert PhoneReader("US").read("3612345678").e164 == "+13612345678"


def test_traffic_sync_stores_the_numbers_as_written(german_instance: None, session: Any) -> None:
    rows = [("src-a", {"customVariable1": v, "osVersion": "Android 9", "visits": 1})
            for v in ("447400123456", "33612345678", "4915112345678")]
    summary = traffic.store_day(session, SYSTEM, date(2026, 1, 5), rows)
    assert summary.numbers == 3
    assert sorted(n.country for n in session.query(PhoneNumber)) == ["DE", "FR", "GB"]
    assert lookup(session, SYSTEM, "+447400123456", "GB").status == "monitor"
