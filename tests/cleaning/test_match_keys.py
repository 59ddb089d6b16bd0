"""Matching on (k1, k2) through a join on k1 alone gives what a join on both columns gives, also when
numbers share k1."""

from __future__ import annotations

import polars as pl

from phoneops.cleaning.keys import outcome_of, present

U64 = pl.UInt64


def _keys(pairs: list[tuple[int | None, int | None]]) -> pl.DataFrame:
    return pl.DataFrame({"k1": [p[0] for p in pairs], "k2": [p[1] for p in pairs]}, schema={"k1": U64, "k2": U64})


def test_present_compares_k2_of_numbers_sharing_k1() -> None:
    keys = _keys([(1, 10), (1, 11), (2, 20), (3, 30)])
    source = _keys([(1, 11), (1, 12), (2, 21), (3, 30), (4, 40)]).with_columns(tag=pl.Series(["a", "b", "c", "d", "e"]))
    both = keys.join(source, on=["k1", "k2"], how="inner")
    got = present(keys, source)
    assert got.columns == both.columns
    assert sorted(got.rows()) == sorted(both.rows()) == [(1, 11, "a"), (3, 30, "d")]


def test_outcome_of_each_row_with_and_without_a_shared_k1() -> None:
    rows = _keys([(1, 10), (None, None), (1, 11), (2, 20), (2, 21), (1, 11)])
    unique = _keys([(1, 11), (2, 20)]).with_columns(hit=pl.Series(["blacklisted", "monitored"]))
    assert outcome_of(rows, unique).to_list() == [None, None, "blacklisted", "monitored", None, "blacklisted"]
    shared = _keys([(1, 11), (1, 10), (2, 20)]).with_columns(hit=pl.Series(["blacklisted", "used", "monitored"]))
    assert outcome_of(rows, shared).to_list() == ["used", None, "blacklisted", "monitored", None, "blacklisted"]
