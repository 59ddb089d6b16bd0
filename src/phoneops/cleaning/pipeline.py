"""The cleaning computation: a table in, a cleaned table, a rejected table and stats out. No ORM here.

Three passes, memory bounded by the range size plus a few small columns per row:

1. The file is cut into byte ranges of ~16 MB at line ends (`reading.byte_ranges`). Worker processes
   (`worker_pool`: as many as cores, up to 4, each running polars on one thread; what they run is in
   `ranges`, which does not import the database layer) read a range, normalise its phone column to E.164
   and give each valid number its blind index (HMAC, as the lists store them), and send back a few small
   columns per row and the valid numbers as one bytes block (`ranges.Prepared`). Meanwhile this process
   scans the lists in the background (`filters.SourceLookup`). A file whose cells hold line breaks cannot be
   cut safely (a range says so, `reading.Unsplittable`): it is read here in one stream and only the phone
   columns go to the workers. Small files, or a one-core machine, run everything here.
2. Over all rows at once (columns of a few bytes per row), in this process: in-file duplicates (first
   occurrence kept), then the filters, matched on the distinct blind indexes with one join per source
   (`filters.FilterSet`). Every row gets one outcome: kept, invalid, duplicate, or a filter's outcome.
3. The workers read their range again (its numbers' block comes back with its outcomes) and turn each row
   into a line of the cleaned file (phone cell in E.164, every other cell as it was) or of the rejected file
   (the original row + reason + detail), every cell neutralised against spreadsheet formulas; this process
   writes the ranges' lines in input order.

Why processes and not threads: between polars' operations the Python code holds the GIL (and the
interpreter's HMAC held it throughout, before the native module), so threads kept about one of two cores busy
(5M rows vs 10M: 62.6 s with threads and a hashing pool, 15.7 s with the ranges in worker processes;
bench/clean.py).
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import polars as pl
from sqlalchemy import Engine

from phoneops.cleaning.filters import Filter, FilterSet
from phoneops.cleaning.ranges import (
    KEPT,
    NOT_SMS,
    Output,
    Prepared,
    header_line,
    numbers_column,
    prepare_numbers,
    prepare_range,
    warm,
    write_part,
    write_range,
)
from phoneops.cleaning.reading import Layout, Unsplittable, byte_ranges, column_names, iter_batches

INVALID = "invalid"
DUPLICATE = "duplicate"
POOL_MIN_ROWS = 300_000  # below this, worker processes cost more than they save
IN_FLIGHT = 2  # ranges queued per worker process
# polars' jemalloc in a worker process, read by polars at import from _RJEM_MALLOC_CONF (tikv-jemallocator's
# name for MALLOC_CONF; polars puts its own defaults first, so these win): freed pages kept 3 s instead of
# 0.5-1 s, so a range reuses what the previous one freed instead of faulting ~350 MB in again (the
# measurements and the settings tried: bench/clean.py, "Issue 20, session 10").
WORKER_MALLOC_CONF = "dirty_decay_ms:3000,muzzy_decay_ms:0"
RANGE_BYTES = 16 << 20  # the file's share one worker reads, prepares and later writes at a time (~250k rows)



def worker_pool() -> ProcessPoolExecutor | None:
    """Worker processes for the per-range work (spawned: no copy of this process's threads or memory), or
    None when this machine has one core or cannot start them. Each worker runs polars on one thread: the
    workers already keep the cores busy, and polars' own threads on ~60 small operations per range cost
    half as much CPU again in synchronisation (measured: 1.36 -> 0.88 CPU-s per 250k-row range)."""
    if _workers() < 2:
        return None
    pool = ProcessPoolExecutor(max_workers=_workers(), mp_context=multiprocessing.get_context("spawn"))
    # read by each worker at its start (they all start in these submits): polars on one thread, numpy's
    # OpenBLAS without its idle threads (we run no BLAS; they cost ~1.5% of a worker's CPU), and polars'
    # allocator keeping what a range freed for the next one (WORKER_MALLOC_CONF)
    worker_env = {"POLARS_MAX_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                  "_RJEM_MALLOC_CONF": WORKER_MALLOC_CONF}
    before = {name: os.environ.get(name) for name in worker_env}
    os.environ.update(worker_env)
    try:
        warm_up = [pool.submit(warm) for _ in range(_workers())]
    finally:
        for name, value in before.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        for future in warm_up:
            future.result(timeout=60)
    except Exception:
        pool.shutdown(cancel_futures=True)
        return None
    return pool


def _workers() -> int:
    return max(1, min(os.cpu_count() or 1, 4))


def range_bytes(size: int) -> int:
    """The byte range for a file of `size` bytes: at most RANGE_BYTES, and as many ranges as a multiple of
    the workers, so they finish together (21 ranges on 2 workers left one of them idle for a range's time
    at the end of each pass)."""
    per_worker = max(1, math.ceil(size / (RANGE_BYTES * _workers())))
    return max(1, math.ceil(size / (per_worker * _workers())))


def estimate_rows(path: Path) -> int:
    """Rows of a text file from the line length of its first megabyte."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(1 << 20)
    lines = head.count(b"\n") or 1
    return max(1, int(size * lines / max(1, len(head))))


@dataclass
class CleanOptions:
    phone_column: int
    region: str
    filters: list[Filter]
    with_digest: bool = False  # keep the blind index of kept numbers (to add them to the main database)
    line_type: bool = False  # a line_type column in the cleaned file
    sms_types: tuple[str, ...] | None = None  # keep only these line types (None: no line-type filter)
    workers: bool | None = None  # None: decided by the file's size


@dataclass
class CleanResult:
    rows: int
    outcomes: dict[str, int]
    countries: dict[str, dict[str, int]]
    invalid_reasons: dict[str, int]
    kept: pl.DataFrame = field(repr=False)  # bi, country of the kept numbers (when with_digest)
    timings: dict[str, float] = field(default_factory=dict)
    match_modes: dict[str, str] = field(default_factory=dict)
    ranges: int = 0  # byte ranges read by worker processes (0: the file was read in one stream)
    line_types: dict[str, int] = field(default_factory=dict)  # distinct valid numbers per line type (when asked)
    distinct: pl.DataFrame = field(default_factory=pl.DataFrame, repr=False)  # bi, kept per valid number

    def members(self) -> list[tuple[bytes, bool]]:
        """(blind index, kept) of each distinct valid number (when with_digest): a source's members."""
        if self.distinct.is_empty():
            return []
        return [(bytes(bi), bool(kept)) for bi, kept in self.distinct.iter_rows()]

    def stats(self) -> dict[str, Any]:
        return {"rows": self.rows, "kept": self.outcomes.get(KEPT, 0), "outcomes": self.outcomes,
                "countries": self.countries, "invalid_reasons": self.invalid_reasons,
                "timings": self.timings, "match_modes": self.match_modes, "ranges": self.ranges,
                **({"line_types": self.line_types} if self.line_types else {})}


Progress = Callable[[int, str], None]


def first_seen(rows: pl.DataFrame) -> pl.Series:
    """True for the first row of each valid number (a row with match keys k1, k2), in row order. A number is
    its 128 bits of blind index (k1, k2) here as in the list matching (`keys.match_keys`: two numbers share
    them with probability ~1e-25 for a 5M-row file).

    Most rows hold a k1 no other row holds: they are first. The k1s that repeat are found by sorting the
    valid rows' k1 (numpy's sort of 4.5M integers: ~0.08 s here), and only the rows holding one of them are
    told apart on both keys. A hash of every k1 (`arg_unique`) took ~0.35 s on one core and a check of k2
    after it ~0.15 s more (bench/clean.py, "Issue 20, session 13")."""
    at = rows.select(pl.col("k1").is_not_null()).to_series().arg_true()
    mask = np.zeros(rows.height, dtype=bool)
    mask[at.to_numpy()] = True
    k1 = rows["k1"].gather(at)
    ordered = np.sort(k1.to_numpy())
    again = ordered[1:][ordered[1:] == ordered[:-1]]  # each k1 once per row after its first, sorted
    if again.size:
        repeated = again[np.concatenate(([True], again[1:] != again[:-1]))]
        shared = at.filter(k1.is_in(pl.Series(repeated, dtype=pl.UInt64).implode()))  # rows of repeated k1s
        first = rows.select("k1", "k2").gather(shared).select(pl.struct("k1", "k2").is_first_distinct())
        mask[shared.filter(~first.to_series()).to_numpy()] = False
    return pl.Series("first", mask)


def _outcomes(engine: Engine, rows: pl.DataFrame, filters: FilterSet, blocks: list[bytes],
              sms_types: tuple[str, ...] | None = None) -> pl.DataFrame:
    """Each row's outcome (`rows`: the prepared rows of the whole file, in order; `blocks`: their numbers,
    `Prepared.numbers` of each part in the same order, read only when a filter looks numbers up by their
    text)."""
    valid = pl.col("k1").is_not_null()
    rows = rows.with_columns(first=first_seen(rows))
    # the first rows' keys, with their position: a number's filter outcome goes back to its first row by
    # position (the later rows are duplicates, whatever the lists say)
    numbers = rows.select("k1", "k2", "first").with_row_index("_at").filter("first").drop("first")
    if filters.needs_text():
        texts = numbers_column(b"\n".join(b for b in blocks if b), rows["k1"].is_not_null())
        numbers = numbers.with_columns(e164=texts.gather(numbers["_at"]))
    removed = filters.outcomes(numbers, carry=("_at",))
    # every outcome a row can have, as an Enum: the rows' outcomes are built as small integers, not as 5M
    # strings cast afterwards (0.25 -> 0.05 s at 5M rows)
    names = pl.Enum(list(dict.fromkeys([KEPT, INVALID, DUPLICATE, NOT_SMS, *(f.outcome for f in filters.filters)])))
    hit = pl.repeat(None, rows.height, dtype=names, eager=True).scatter(removed["_at"], removed["outcome"].cast(names))
    rows = rows.with_columns(hit=hit)
    return rows.select(
        pl.exclude("first", "hit", "k1", "k2"),
        valid=valid,
        outcome=pl.when(~valid).then(pl.lit(INVALID, names)).when(~pl.col("first")).then(pl.lit(DUPLICATE, names))
        .when(pl.col("hit").is_not_null()).then("hit")
        .when(~pl.col("line_type").is_in(list(sms_types)).fill_null(False) if sms_types is not None
              else pl.lit(False)).then(pl.lit(NOT_SMS, names))
        .otherwise(pl.lit(KEPT, names)),
    )


def _summary(rows: pl.DataFrame, with_digest: bool) -> dict[str, Any]:
    """A run's counts (outcomes, per country, invalid reasons, line types) and, when asked, the blind
    indexes of its kept and its distinct valid numbers."""
    # lazy frames: each count reads only its columns (an eager filter of the valid rows copied all of them,
    # the E.164 texts included: ~0.2 CPU-s at 5M rows)
    lazy = rows.lazy()
    valid = lazy.filter("valid")
    countries: dict[str, dict[str, int]] = {}
    for country, outcome, count in valid.group_by("country", "outcome").len().collect().iter_rows():
        countries.setdefault(country or "other", {})[outcome] = int(count)
    return {
        "outcomes": _count(lazy, "outcome"),
        "countries": dict(sorted(countries.items(), key=lambda kv: -sum(kv[1].values()))),
        "invalid_reasons": _count(lazy.filter(~pl.col("valid")), "reason"),
        "line_types": (_count(lazy.filter(pl.col("outcome") != DUPLICATE).drop_nulls("line_type"), "line_type")
                       if "line_type" in rows.columns else {}),
        "distinct": (valid.filter(pl.col("outcome") != DUPLICATE).select("bi", kept=pl.col("outcome") == KEPT)
                     .collect() if with_digest else pl.DataFrame()),
        "kept": (lazy.filter(pl.col("outcome") == KEPT).select("bi", pl.col("country").cast(pl.String)).collect()
                 if with_digest else pl.DataFrame(schema={"bi": pl.Binary, "country": pl.String})),
    }


def _count(frame: pl.LazyFrame, column: str) -> dict[str, int]:
    counted = frame.group_by(column).len().sort("len", descending=True).collect()
    return {str(k): int(v) for k, v in counted.iter_rows()}


def free_name(names: list[str], base: str) -> str:
    """A column the cleaned file adds: `base`, or a free variant ("extension_2") when the file has one."""
    name, n = base, 1
    while name in names:
        n += 1
        name = f"{base}_{n}"
    return name


def _in_order(pool: Executor, tasks: Iterable[tuple[Callable[..., Any], tuple[Any, ...]]],
              done: Callable[[Any], None]) -> None:
    """Run the tasks (function, arguments; taken from `tasks` as they are needed) in the pool with at most
    IN_FLIGHT per worker waiting, and hand each result to `done` in the tasks' order; when one fails, the
    rest are cancelled and its error raised."""
    pending: deque[Future[Any]] = deque()
    try:
        for fn, args in tasks:
            pending.append(pool.submit(fn, *args))
            while len(pending) >= IN_FLIGHT * _workers():
                done(pending.popleft().result())
        while pending:
            done(pending.popleft().result())
    finally:
        for future in pending:
            future.cancel()


def clean_table(
    engine: Engine,
    source: Path,
    layout: Layout,
    options: CleanOptions,
    key: bytes,
    clean_out: IO[bytes],
    rejected_out: IO[bytes],
    progress: Progress | None = None,
) -> CleanResult:
    """The three passes (module docstring). On a big file, worker processes read, prepare and write byte
    ranges of the file; this process scans the lists, matches and writes the ranges' output in order. A
    file whose cells hold line breaks is read in one stream instead (its ranges cannot be cut safely)."""
    started = time.perf_counter()
    report = progress or (lambda done, message: None)
    phone = column_names(layout.width)[options.phone_column]
    expected = estimate_rows(source)
    filters = FilterSet(engine, options.filters, expected, key)  # scans start now, in the background
    use_pool = options.workers if options.workers is not None else (expected >= POOL_MIN_ROWS and _workers() > 1)
    typed = options.line_type or options.sms_types is not None
    pool = worker_pool() if use_pool else None
    try:
        # 1. normalise + blind index, range by range (or batch by batch)
        frames: list[pl.DataFrame] = []
        blocks: list[bytes] = []  # each part's valid numbers (`Prepared.numbers`), in the frames' order
        ranges = byte_ranges(source, range_bytes(source.stat().st_size)) if pool is not None else []

        def took(prepared: Prepared) -> None:
            frames.append(prepared.rows)
            blocks.append(prepared.numbers)
            report(sum(f.height for f in frames), "step 1 of 3: reading and normalising")

        if pool is not None and len(ranges) > 1:
            try:
                _in_order(pool, ((prepare_range, (source, layout, *r, phone, options.region, key,
                                                   options.with_digest, typed)) for r in ranges), took)
            except Unsplittable:
                frames.clear()
                blocks.clear()  # cells hold line breaks: the file is read in one stream below
                ranges = []
        else:
            ranges = []
        if not ranges:
            batches = iter_batches(source, layout)
            if pool is None:
                for batch in batches:
                    took(prepare_numbers(batch[phone], options.region, key, options.with_digest, typed))
            else:
                _in_order(pool, ((prepare_numbers, (b[phone], options.region, key, options.with_digest, typed))
                                 for b in batches), took)
        report(sum(f.height for f in frames), "step 2 of 3: duplicates and lists")
        if not frames or not any(f.height for f in frames):
            from phoneops.core.errors import ValidationFailed

            raise ValidationFailed("the file has no data rows", code="header_only")
        heights = [f.height for f in frames]
        normalised_at = time.perf_counter()

        # 2. duplicates and filters over all rows
        rows = pl.concat(frames, how="diagonal_relaxed")
        frames.clear()  # the batches' own frames go before matching adds its columns
        rows = _outcomes(engine, rows, filters, blocks, options.sms_types)
        matched_at = time.perf_counter()

        # 3. write the results in input order; an extension read from a kept number gets its own column, after
        # the phone column (the phone cell holds the E.164 number alone)
        out_names = list(layout.columns)
        with_extension = "extension" in rows.columns and bool(
            rows.select((pl.col("extension").is_not_null() & (pl.col("outcome") == KEPT)).any()).item())
        added = []  # (internal name, column of rows) after the phone column, in this order
        if with_extension:
            added.append(("_extension", "extension"))
            out_names.insert(options.phone_column + 1, free_name(out_names, "extension"))
        if options.line_type:
            added.append(("_line_type", "line_type"))
            out_names.insert(options.phone_column + 1 + len(added) - 1, free_name(out_names, "line_type"))
        if layout.has_header:
            clean_out.write(header_line(out_names, layout.delimiter))
            rejected_out.write(header_line([*out_names, "reason", "detail"], layout.delimiter))
        out = Output(phone, options.phone_column, tuple(added), layout.delimiter, options.sms_types)
        wanted = ["valid", "outcome", "reason", *(["line_type"] if typed else []), *(c for _, c in added)]
        part_of = rows.select(list(dict.fromkeys(wanted))).slice

        # the run's counts are taken in a thread while the workers write (polars works without the GIL)
        summing = ThreadPoolExecutor(1, thread_name_prefix="clean-summary")
        summary_future = summing.submit(_summary, rows, options.with_digest)
        summing.shutdown(wait=False)
        written = [0]

        def wrote(texts: tuple[bytes, bytes, int]) -> None:
            clean_out.write(texts[0])
            rejected_out.write(texts[1])
            written[0] += texts[2]
            report(written[0], "step 3 of 3: writing the files")

        if pool is not None and ranges:
            offsets = itertools.accumulate(heights[:-1], initial=0)
            _in_order(pool, ((write_range, (source, layout, *r, part_of(at, n), numbers, out))
                             for r, at, n, numbers in zip(ranges, offsets, heights, blocks, strict=True)), wrote)
        else:
            offset = 0
            for batch, numbers in zip(iter_batches(source, layout), blocks, strict=True):
                wrote(write_part(batch, part_of(offset, batch.height), numbers, out))
                offset += batch.height
        written_at = time.perf_counter()
    finally:
        if pool is not None:  # the workers exit (~0.5 s of freeing memory) while the run records its result
            pool.shutdown(wait=False, cancel_futures=True)

    summary = summary_future.result()
    return CleanResult(
        rows=rows.height,
        **summary,
        timings={"normalise": round(normalised_at - started, 3), "match": round(matched_at - normalised_at, 3),
                 "write": round(written_at - matched_at, 3)},
        match_modes=filters.modes,
        ranges=len(ranges),
    )
