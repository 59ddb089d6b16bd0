"""A run's scan of the lists finds every listed number under its own list, whatever the lists' shares: the
rarer lists read apart (a few monitored numbers among many blacklisted ones), each row's list read in the
scan (lists of similar size), one list alone; and it agrees with probing the same numbers."""

from __future__ import annotations

import random

import polars as pl
import pytest

from phoneops.cleaning.filters import FilterSet, resolve
from phoneops.core.db import get_engine, session_scope
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import bulk_set_status
from phoneops.numbers.vault import get_vault
from phoneops.settings import get_settings

OUTCOME = {"blacklist": "blacklisted", "monitor": "monitored"}


def _numbers(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return sorted({f"+4474{rng.randrange(10**8):08d}" for _ in range(n)})


def _found(numbers: list[str], names: list[str], monkeypatch: pytest.MonkeyPatch, mode: str) -> dict[str, str]:
    from phoneops.cleaning import filters

    monkeypatch.setattr(filters, "PROBE_ALWAYS", 0)
    monkeypatch.setattr(filters, "SCAN_FACTOR", 10**9 if mode == "scan" else 0)
    monkeypatch.setattr(filters, "SCAN_CHUNK", 37)  # many chunks, cut anywhere
    digests = get_vault().index_many(numbers)
    keys = filters.match_keys(pl.Series(digests, dtype=pl.Binary))
    frame = pl.DataFrame({"e164": numbers, "k1": keys["k1"], "k2": keys["k2"]})
    chosen = FilterSet(get_engine(), resolve(names), len(numbers), get_settings().blind_key())
    out = chosen.outcomes(frame)
    assert set(chosen.modes.values()) - {"empty"} == {mode}
    by_key = dict(zip(zip(frame["k1"], frame["k2"], strict=True), numbers, strict=True))
    return {by_key[(k1, k2)]: outcome for k1, k2, outcome in out.iter_rows()}


@pytest.mark.parametrize(("shares", "names"), [
    ({"blacklist": 200, "monitor": 7, "whitelist": 30}, ["monitor"]),  # the rare list read apart
    ({"blacklist": 90, "monitor": 110, "whitelist": 20}, ["monitor"]),  # similar sizes: tags read per row
    ({"blacklist": 150, "monitor": 40}, []),  # the run does not filter the monitor list: one tag
    ({"monitor": 60, "whitelist": 60}, ["monitor"]),  # nothing blacklisted
])
def test_scan_finds_each_listed_number_under_its_list(db_url: str, monkeypatch: pytest.MonkeyPatch,
                                                      shares: dict[str, int], names: list[str]) -> None:
    numbers = _numbers(sum(shares.values()) + 50, seed=len(names) * 1000 + sum(shares.values()))
    random.Random(5).shuffle(numbers)  # lists interleaved in the table's row order
    status: dict[str, str] = {}
    at = 0
    with session_scope() as session:
        for name, count in shares.items():
            chunk = numbers[at:at + count]
            at += count
            bulk_set_status(session, SYSTEM, chunk, name, "test", region="GB")
            status.update(dict.fromkeys(chunk, name))
    expected = {n: OUTCOME[s] for n, s in status.items() if s == "blacklist" or (s == "monitor" and names)}
    scanned = _found(numbers, names, monkeypatch, "scan")
    assert scanned == expected
    assert _found(numbers, names, monkeypatch, "probe") == expected


def test_scan_sees_a_number_moved_to_another_list(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    numbers = _numbers(120, seed=9)
    with session_scope() as session:
        bulk_set_status(session, SYSTEM, numbers[:100], "blacklist", "test", region="GB")
        bulk_set_status(session, SYSTEM, numbers[100:103], "monitor", "test", region="GB")
    before = _found(numbers, ["monitor"], monkeypatch, "scan")
    assert before[numbers[101]] == "monitored" and before[numbers[5]] == "blacklisted"
    with session_scope() as session:  # a monitored number found bad, a blacklisted one lifted by a person
        bulk_set_status(session, SYSTEM, [numbers[101]], "blacklist", "test", region="GB")
        bulk_set_status(session, SYSTEM, [numbers[5]], "monitor", "test", region="GB")
    after = _found(numbers, ["monitor"], monkeypatch, "scan")
    assert after[numbers[101]] == "blacklisted" and after[numbers[5]] == "monitored"
    assert len(after) == 103 and numbers[110] not in after
