"""The cleaning pipeline's bulk blind indexes (worker processes, one bytes block per batch) are the stored
ones byte for byte: checked against `numbers.crypto.blind_index` (the `hmac` module) on 100k numbers."""

from __future__ import annotations

import hashlib
import hmac
import os

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phoneops.cleaning.keys import match_keys
from phoneops.cleaning.pipeline import first_seen, worker_pool
from phoneops.cleaning.ranges import blind_index_digests, digest_series, index_keys, numbers_column, prepare_numbers
from phoneops.numbers.crypto import blind_index, blind_index_block, blind_index_many

KEY = bytes(range(32))


def _numbers(n: int) -> pl.Series:
    return pl.select(e164=pl.concat_str(pl.lit("+4474"), (pl.int_range(n, dtype=pl.UInt64).hash(3) % 10**8)
                                         .cast(pl.String).str.zfill(8)))["e164"].unique(maintain_order=True)


def test_pooled_indexes_equal_numbers_crypto_on_100k_values() -> None:
    numbers = _numbers(100_000)
    expected = [blind_index(v, KEY) for v in numbers.to_list()]
    block = "\n".join(numbers.to_list()).encode("ascii")
    pooled = blind_index_digests(block, KEY)
    assert pooled == b"".join(expected)
    pool = worker_pool()  # None on a one-core machine, where the run hashes in its own process
    if pool is not None:
        try:  # in a worker process too, as a big file's ranges are hashed
            assert pool.submit(blind_index_digests, block, KEY).result() == pooled
        finally:
            pool.shutdown()
    assert blind_index_many(numbers.to_list(), KEY) == expected
    assert digest_series(pooled).to_list() == expected
    keys, reference = index_keys(pooled), match_keys(pl.Series(expected, dtype=pl.Binary))
    assert keys["k1"].equals(reference["k1"]) and keys["k2"].equals(reference["k2"])


def _use(implementation: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash with one of the three paths: the native module, or the Python loop over the interpreter's own
    SHA-256 or over hashlib's (an interpreter without its own)."""
    from phoneops.numbers import crypto

    if implementation == "native":
        if crypto.blind_index_backend() != "native":
            if os.environ.get("PHONEOPS_TEST_REQUIRE_NATIVE"):
                pytest.fail("the native blind-index module was not built (setup.py, _blindhash.c)")
            pytest.skip("the native blind-index module was not built here (no C compiler or OpenSSL headers)")
        return
    monkeypatch.setattr(crypto, "_native", lambda: None)
    assert crypto.blind_index_backend() == "python"
    if implementation == "openssl":
        monkeypatch.setattr(crypto, "_sha256_for_short_messages", lambda: hashlib.sha256)


IMPLEMENTATIONS = ["native", "interpreter's", "openssl"]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_block_hashing_is_hmac_sha256_and_refuses_what_is_not_e164(implementation: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    _use(implementation, monkeypatch)
    values = [b"+447400123456", b"+12125550101", b"+80012345678"]
    long_key = b"k" * 100  # longer than SHA-256's block: RFC 2104 hashes it first
    for key in (KEY, long_key, b"\xff" * 64):
        block = blind_index_block(b"\n".join(values), key)
        assert block == b"".join(hmac.new(key, v, hashlib.sha256).digest() for v in values)
        assert blind_index_many([v.decode() for v in values], key) == [hmac.new(key, v, hashlib.sha256).digest()
                                                                      for v in values]
    assert blind_index_block(b"", KEY) == b""
    assert blind_index_many([], KEY) == []
    for bad in (b"+447400123456\n", b"447400123456", b"+447400123456\n\n+12125550101", b"+44 7400"):
        with pytest.raises(ValueError, match=r"not a block of E\.164 numbers"):
            blind_index_block(bad, KEY)
    for text in ("+447400123456\n+12125550101", "+44740012345\u0666", ""):  # a value is one number, ASCII
        with pytest.raises(ValueError, match=r"not an E\.164 number"):
            blind_index_many(["+447400123456", text], KEY)
    with pytest.raises(ValueError, match="at least 32 bytes"):
        blind_index_block(b"+447400123456", b"short")


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@settings(max_examples=60, deadline=None)
@given(key=st.binary(min_size=32, max_size=130),
       numbers=st.lists(st.from_regex(r"\+[1-9][0-9]{1,19}", fullmatch=True), min_size=1, max_size=40))
def test_every_path_is_hmac_sha256_for_any_key_and_numbers(implementation: str, key: bytes, numbers: list[str]) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _use(implementation, monkeypatch)
        expected = [hmac.new(key, n.encode("ascii"), hashlib.sha256).digest() for n in numbers]
        assert blind_index_block("\n".join(numbers).encode("ascii"), key) == b"".join(expected)
        assert blind_index_many(numbers, key) == expected


def test_the_native_module_refuses_a_key_block_of_the_wrong_size(monkeypatch: pytest.MonkeyPatch) -> None:
    _use("native", monkeypatch)
    from phoneops.numbers import _blindhash

    for size in (0, 32, 63, 65):
        with pytest.raises(ValueError, match="64 bytes"):
            _blindhash.hmac_sha256_lines(b"k" * size, b"+447400123456")
    assert _blindhash.hmac_sha256_lines(b"k" * 64, b"") == b""


def test_prepared_rows_carry_the_stored_index_and_their_numbers_as_one_block() -> None:
    prepared = prepare_numbers(pl.Series(["07400 123456", "junk", "+447400123457", "07400 123456 x7"]), "GB", KEY,
                               with_digest=True)
    frame = prepared.rows
    index, other = blind_index("+447400123456", KEY), blind_index("+447400123457", KEY)
    assert frame["bi"].to_list() == [index, None, other, index]
    assert frame["extension"].to_list() == [None, None, None, "7"]
    assert frame["k1"][0] == int.from_bytes(index[:8], "big") and frame["k2"][0] == int.from_bytes(index[8:16], "big")
    assert frame["k1"][1] is None and "e164" not in frame.columns  # the numbers travel as one block
    assert prepared.numbers == b"+447400123456\n+447400123457\n+447400123456"
    assert numbers_column(prepared.numbers, frame["k1"].is_not_null()).to_list() == [
        "+447400123456", None, "+447400123457", "+447400123456"]
    nothing = prepare_numbers(pl.Series(["junk", ""]), "GB", KEY)
    assert nothing.numbers == b"" and nothing.rows["k1"].null_count() == 2
    assert numbers_column(nothing.numbers, nothing.rows["k1"].is_not_null()).to_list() == [None, None]


@given(st.lists(st.one_of(st.none(), st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)), max_size=60))
@settings(max_examples=200, deadline=None)
def test_a_block_of_numbers_goes_back_to_exactly_its_valid_rows(cells: list[str | None]) -> None:
    valid = pl.Series([c is not None for c in cells], dtype=pl.Boolean)
    block = "\n".join(c for c in cells if c is not None).encode("ascii")
    assert numbers_column(block, valid).to_list() == cells
    if any(cells):  # a block that does not fit the rows is refused, never shifted onto other rows
        with pytest.raises(RuntimeError, match="valid rows"):
            numbers_column(block + b"\n+15550100", valid)


def test_first_seen_is_decided_by_both_keys_even_when_two_numbers_share_k1() -> None:
    rows = pl.DataFrame({"k1": [1, None, 2, 1, 3, 2, None], "k2": [10, None, 20, 10, 30, 20, None]},
                        schema={"k1": pl.UInt64, "k2": pl.UInt64})
    assert first_seen(rows).to_list() == [True, False, True, False, True, False, False]
    clash = rows.with_columns(k1=pl.Series([1, None, 1, 1, 3, 1, None], dtype=pl.UInt64))  # two numbers share k1
    assert first_seen(clash).to_list() == [True, False, True, False, True, False, False]


# A row's keys: none (an invalid row), or (k1, k2) from small ranges, so that numbers repeat and two numbers
# share a k1 with different k2s (which 128-bit blind indexes make rare, not impossible).
_KEYS = st.one_of(st.none(), st.tuples(st.integers(0, 6), st.integers(0, 2)))


@given(st.lists(_KEYS, max_size=80))
@settings(max_examples=300, deadline=None)
def test_first_seen_marks_exactly_the_first_row_of_each_number(keys: list[tuple[int, int] | None]) -> None:
    rows = pl.DataFrame({"k1": [None if k is None else k[0] * 2**61 + 5 for k in keys],
                         "k2": [None if k is None else k[1] for k in keys]},
                        schema={"k1": pl.UInt64, "k2": pl.UInt64})
    seen: set[tuple[int, int]] = set()
    expected = []
    for k in keys:  # the rule, row by row: a valid row is first when its number was not in an earlier row
        expected.append(k is not None and k not in seen)
        if k is not None:
            seen.add(k)
    assert first_seen(rows).to_list() == expected


def test_worker_processes_keep_freed_memory_and_leave_this_process_as_it_was() -> None:
    """A worker runs polars on one thread, with the allocator keeping what a range freed (the worker setting
    comes last, after polars' own defaults, so it wins); this process's environment is left untouched."""
    import os

    from phoneops.cleaning.pipeline import WORKER_MALLOC_CONF

    before = dict(os.environ)
    pool = worker_pool()
    if pool is None:
        pytest.skip("one core: no worker processes")
    try:  # os.getenv runs in the worker (a function of this test module could not be imported there)
        threads = pool.submit(os.getenv, "POLARS_MAX_THREADS").result()
        conf = pool.submit(os.getenv, "_RJEM_MALLOC_CONF").result()
    finally:
        pool.shutdown()
    assert threads == "1"
    assert conf is not None and conf.endswith(WORKER_MALLOC_CONF)
    assert "dirty_decay_ms:3000" in WORKER_MALLOC_CONF  # longer than polars' own 500 ms
    assert dict(os.environ) == before
