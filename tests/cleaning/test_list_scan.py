"""A run's scan of the lists finds every listed number under its own list, whatever the lists' shares: the
rarer lists read apart (a few monitored numbers among many blacklisted ones), each row's list read in the
scan (lists of similar size), one list alone; and it agrees with probing the same numbers."""

from __future__ import annotations

import bisect
import itertools
import random

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_the_lists_are_scanned_through_their_index_in_key_ranges(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On SQLite every query of the scan reads the index of (status, blind_index), never the table's rows:
    the chunks are ranges of keys. (Chunks of rowids were planned through that index too, reading all of it
    for each chunk.)"""
    from sqlalchemy import event

    engine = get_engine()
    if engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL copies the lists out in one statement")
    numbers = _numbers(300, seed=4)
    with session_scope() as session:
        bulk_set_status(session, SYSTEM, numbers[:250], "blacklist", "test", region="GB")
        bulk_set_status(session, SYSTEM, numbers[250:260], "monitor", "test", region="GB")
    statements: list[tuple[str, object]] = []

    def seen(conn: object, cursor: object, statement: str, parameters: object, *_: object) -> None:
        if "group_concat" in statement and "phone_numbers" in statement:
            statements.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", seen)
    try:
        found = _found(numbers, ["monitor"], monkeypatch, "scan")
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert len(found) == 260
    assert len(statements) > 3  # SCAN_CHUNK is 37 here: several ranges
    with engine.connect() as conn:
        for statement, parameters in statements:
            plan = " ".join(row[3] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters))
            assert "COVERING INDEX ix_phone_numbers_status_blind_index" in plan, (statement, plan)
            assert "SCAN" not in plan, (statement, plan)
    ranged = [s for s, _ in statements if "blind_index >=" in s]
    assert len(ranged) >= len(statements) - 1  # all but the rare list's own query, read by its status


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(0, 10**9), chunk=st.integers(1, 10**7), keys=st.lists(st.binary(min_size=32, max_size=32)))
def test_key_ranges_hold_every_key_exactly_once(rows: int, chunk: int, keys: list[bytes]) -> None:
    from phoneops.cleaning.keys import key_ranges

    ranges = key_ranges(rows, chunk)
    lows = [lo for lo, _ in ranges]
    assert len(ranges) == min(65536, max(1, -(-rows // chunk)))
    assert lows[0] == b"\0\0" and ranges[-1][1] is None and lows == sorted(set(lows))  # increasing: disjoint
    assert all(hi == nxt for (_, hi), (nxt, _) in itertools.pairwise(ranges))  # contiguous
    for key in [*keys, b"\0" * 32, b"\xff" * 32]:
        holding = [(lo, hi) for lo, hi in ranges[max(0, bisect.bisect_right(lows, key) - 2):][:3]
                   if key >= lo and (hi is None or key < hi)]
        assert len(holding) == 1, key
