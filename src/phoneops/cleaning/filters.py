"""Filters of a cleaning run: which valid, first-seen numbers to remove, and under which outcome.

A filter is a name (the run option), a label (the UI), the outcome written in the rejected file, and the
table keyed by blind index it matches against (`KeyedSource`), optionally narrowed to one value of a tag
column (the list status). Filters apply in `order`; a number removed by one is not counted by the next.
Matching is set-based: per source, one scan of the table (when the file holds many numbers) or chunked
``IN`` probes (when it holds few), then a polars join on the blind indexes. Never one query per row.

Registration point — a new filter is ONE call. The Voluum issue adds conversions like this, from its
own module (imported by `phoneops.registry.load_domains`, e.g. ``voluum/tasks.py``)::

    from phoneops.cleaning.filters import Filter, KeyedSource, register
    register(Filter("converted", "Numbers that converted (Voluum)", "converted",
                    KeyedSource("conversions", Conversion.__table__.c.blind_index), order=30))

The outcome names below are fixed by the rejected file's format: opted_out, blacklisted, monitored, converted,
already_used (plus invalid and duplicate, decided before any filter).
"""

from __future__ import annotations

import io
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl
from sqlalchemy import Engine, LargeBinary, case, cast, func, literal, literal_column, select
from sqlalchemy.sql.elements import ColumnElement

from phoneops.cleaning.keys import key_ranges, match_keys, outcome_of, present
from phoneops.cleaning.ranges import index_keys
from phoneops.core.errors import ValidationFailed
from phoneops.numbers.queries import list_key_columns, optout_key_columns

PROBE_CHUNK = 5000
SCAN_CHUNK = 1_000_000  # SQLite rows aggregated per scan query
RARE_SHARE = 10  # a scan reads the rarer tags apart while they hold at most 1/RARE_SHARE of its rows
# Scan a source when it holds fewer than this many rows per row of the file. A probe costs ~5 us per number
# and waits in the match step; a SQLite scan ~0.17 us per list row, in the background while the file is
# read (1M rows against a 10M-row blacklist: probing 4.8 s, scanning 0.2 s of match; the run 7.1 -> 3.3 s).
SCAN_FACTOR = 25
PROBE_ALWAYS = 50_000  # below this many numbers, probing is cheaper than even counting a big table


@dataclass(frozen=True)
class KeyedSource:
    """A table holding blind indexes; `tag` (optional) is a column such as the list status."""

    key: str
    column: ColumnElement[Any]
    tag: ColumnElement[Any] | None = None
    # the table has an index on (tag, key): a SQLite scan reads it in ranges of keys, not the table's rows
    ranged: bool = False


@dataclass(frozen=True)
class Filter:
    name: str
    label: str
    outcome: str
    source: KeyedSource
    tag: str | None = None  # remove the numbers whose tag column equals this
    order: int = 50
    required: bool = False  # always applied (the blacklist)
    default: bool = False  # pre-ticked in the UI


_filters: dict[str, Filter] = {}


def register(flt: Filter) -> Filter:
    """Add (or replace) a filter; the UI, the API, the CLI and the runs pick it up from here."""
    _filters[flt.name] = flt
    return flt


def registered() -> list[Filter]:
    _builtins()
    return sorted(_filters.values(), key=lambda f: (f.order, f.name))


def get_filter(name: str) -> Filter:
    _builtins()
    if name not in _filters:
        raise ValidationFailed(
            f"unknown filter {name!r}: choose from {', '.join(f.name for f in registered())}",
            code="unknown_filter",
        )
    return _filters[name]


def resolve(names: Sequence[str]) -> list[Filter]:
    """The filters of a run: the requested ones plus the required ones, in order."""
    chosen = {get_filter(n.strip()).name for n in names if n and n.strip()}
    return [f for f in registered() if f.required or f.name in chosen]


_LISTS = KeyedSource(*list_key_columns(), ranged=True)  # numbers' index of (status, blind_index)
_OPTOUTS = KeyedSource(*optout_key_columns())


def _builtins() -> None:
    if "blacklist" in _filters:
        return
    from phoneops.cleaning.models import UsedNumber

    # opt-outs stick (numbers/optouts.py): always removed, whatever the run's options
    register(Filter("optout", "Opted-out numbers (always removed)", "opted_out", _OPTOUTS, tag="active", order=5,
                    required=True, default=True))
    register(Filter("blacklist", "Blacklisted numbers", "blacklisted", _LISTS, tag="blacklist", order=10,
                    required=True, default=True))
    register(Filter("monitor", "Numbers on the monitor list", "monitored", _LISTS, tag="monitor", order=20,
                    default=True))
    # order 30 is kept for "converted" (Voluum conversions), registered by the Voluum domain.
    register(Filter("used", "Numbers already used (main database)", "already_used",
                    KeyedSource("used_numbers", UsedNumber.__table__.c.blind_index), order=40))


# --- matching ------------------------------------------------------------------------------------------------


class SourceLookup:
    """The numbers of one source that a run may remove: scanned in the background or probed later."""

    def __init__(self, engine: Engine, source: KeyedSource, tags: Sequence[str], expected: int, key: bytes) -> None:
        self.engine, self.source, self.tags, self.expected = engine, source, sorted(set(tags)), expected
        self.key = key
        self.mode = "probe"
        self._loaded: pl.DataFrame | None = None
        self._rare: pl.DataFrame | None = None  # (k1, k2, hit): the scanned rows whose tag is a rarer one
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._prefetch, daemon=True, name=f"scan-{source.key}")
        self._thread.start()

    def _where(self) -> list[ColumnElement[bool]]:
        if self.source.tag is not None and self.tags:
            return [self.source.tag.in_(self.tags)]
        return []

    def _prefetch(self) -> None:
        if self.expected < PROBE_ALWAYS:
            return
        try:
            with self.engine.connect() as conn:
                size = self._size(conn)
                if size == 0 or size > self.expected * SCAN_FACTOR:
                    self._loaded = None if size else _empty()
                    self.mode = "probe" if size else "empty"
                    return
                self.mode = "scan"
                if self.engine.dialect.name == "postgresql":
                    self._loaded = self._scan_postgres(conn)
                else:
                    self._loaded = self._scan_sqlite(conn, size)
        except BaseException as exc:  # re-raised in the run's thread by find()
            self._error = exc

    def _size(self, conn: Any) -> int:
        """How many rows the scan would read, or on SQLite an upper bound when that is enough to choose the
        scan: the table's largest rowid (free) when it is within SCAN_FACTOR rows per number, and whether any
        row qualifies at all (counting 10M rows through the tag's index takes 0.3 CPU-s)."""
        table = self.source.column.table
        if self.engine.dialect.name == "sqlite":
            rowid: ColumnElement[int] = literal_column("rowid")
            top = int(conn.execute(select(func.max(rowid)).select_from(table)).scalar() or 0)
            if top <= self.expected * SCAN_FACTOR:
                found = conn.execute(select(literal(1)).select_from(table).where(*self._where()).limit(1)).first()
                return top if found is not None else 0
        return int(conn.execute(select(func.count()).select_from(table).where(*self._where())).scalar_one())

    def _scan_sqlite(self, conn: Any, size: int) -> pl.DataFrame:
        """The source's blind indexes as (k1, k2, tag), a chunk of rows per query, each chunk one blob of
        whole 32-byte indexes (`group_concat` in SQLite: no row crosses into Python, no hex text).

        SQLite's per-row work is the cost of a 10M-row scan, so a row's tag is not read with it (cutting
        the index to 16 bytes and adding a tag byte per row took 2.5 CPU-s of SQLite's time against 1.5 s
        for the whole index alone). With several tags, the most common one is the tag of every scanned row
        but those of the rarer tags, which are read apart (through the tag's index) and given to the
        numbers a run finds (`find`); when the rarer tags hold a tenth of the table's rows or more, each
        row's tag is read in the scan instead (`_scan_tagged`)."""
        table, column, tag = self.source.column.table, self.source.column, self.source.tag
        if tag is None or not self.tags:
            return self._scan_keys(conn, table, column).with_columns(tag=pl.lit(None, pl.String))
        cap = size // RARE_SHARE + 1  # counted through the tag's index, up to what decides the way (`size`
        # may be an upper bound: `_size`)
        counts = {t: conn.execute(select(func.count()).select_from(
            select(literal(1)).select_from(table).where(tag == t).limit(cap).subquery())).scalar_one()
            for t in self.tags}
        common = max(self.tags, key=lambda t: counts[t])
        rare = [t for t in self.tags if t != common and counts[t]]
        if sum(counts[t] for t in rare) >= cap:
            return self._scan_tagged(conn)
        names = pl.Enum(self.tags)  # one byte per row; a String after the join
        keys = self._scan_keys(conn, table, column)
        if not rare:
            return keys.with_columns(tag=pl.lit(common, names))
        apart = []
        for name in rare:
            data = conn.execute(select(cast(func.group_concat(column, _NO_SEPARATOR), LargeBinary))
                                .where(tag == name)).scalar()
            if data:
                apart.append(index_keys(bytes(data)).with_columns(hit=pl.lit(name, names)))
        if apart:  # the rarer tags are given to the numbers found, not to every scanned row (`find`)
            self._rare = pl.concat(apart)
        return keys.with_columns(tag=pl.lit(common, names))

    def _scan_chunks(self, conn: Any, table: Any, value: ColumnElement[Any],
                     parse: Callable[[bytes], pl.DataFrame]) -> list[pl.DataFrame]:
        """`value` of the source's rows (those of `tags`, when tagged) concatenated by SQLite a chunk of rows
        at a time, each chunk's bytes parsed by `parse`.

        A `ranged` source is read through its index of (tag, key), a range of keys per chunk: ~45 bytes a
        row instead of the table's whole rows (10M listed numbers: ~2.4 CPU-s against ~3.1-3.6). Chunks of
        rowids would be planned through that index too, and read all of it for every chunk (11.7 s instead
        of 4): a ranged source is never cut by rowid (tests/cleaning/test_list_scan.py checks the plans)."""
        rowid: ColumnElement[int] = literal_column("rowid")
        top = int(conn.execute(select(func.max(rowid)).select_from(table)).scalar() or 0)
        query = select(cast(func.group_concat(value, _NO_SEPARATOR), LargeBinary)).select_from(table)
        if self.source.ranged:
            key = self.source.column
            chunks = [query.where(*self._where(), key >= lo, *([key < hi] if hi is not None else []))
                      for lo, hi in key_ranges(top, SCAN_CHUNK)]
        else:
            chunks = [query.where(rowid > lo, rowid <= lo + SCAN_CHUNK, *self._where())
                      for lo in range(0, top, SCAN_CHUNK)]
        frames = []
        for chunk in chunks:
            data = conn.execute(chunk).scalar()
            if data:
                frames.append(parse(bytes(data)))
        return frames

    def _scan_keys(self, conn: Any, table: Any, column: ColumnElement[Any]) -> pl.DataFrame:
        """(k1, k2) of the source's rows (those of `tags`, when tagged), whole indexes a chunk at a time."""
        frames = self._scan_chunks(conn, table, column, index_keys)
        return pl.concat(frames) if frames else _empty().drop("tag")

    def _scan_tagged(self, conn: Any) -> pl.DataFrame:
        """The source's first 16 bytes of each blind index and its tag's position in `tags` (one byte) as
        one fixed-width record per row, a chunk of rows per query."""
        table, column, tag = self.source.column.table, self.source.column, self.source.tag
        assert tag is not None
        if len(self.tags) > 255:
            raise ValueError("a scan tells at most 255 tags apart")
        none = literal(b"\0", LargeBinary)
        code = [(tag == t, literal(bytes([i + 1]), LargeBinary)) for i, t in enumerate(self.tags)]
        value = func.substr(column, 1, 16).concat(case(*code, else_=none))
        frames = self._scan_chunks(conn, table, value, lambda data: _records(data, 17, self.tags))
        return pl.concat(frames) if frames else _empty()

    def _scan_postgres(self, conn: Any) -> pl.DataFrame:
        table, column, tag = self.source.column.table, self.source.column, self.source.tag
        cols: list[ColumnElement[Any]] = [func.encode(func.substring(column, 1, 16), "hex")]
        if tag is not None:
            cols.append(tag)
        query = select(*cols).select_from(table).where(*self._where())
        sql = str(query.compile(dialect=self.engine.dialect, compile_kwargs={"literal_binds": True}))
        raw = conn.connection.driver_connection
        with tempfile.TemporaryFile() as spool:
            with raw.cursor() as cursor, cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv)") as copy:
                for block in copy:
                    spool.write(block)
            spool.seek(0)
            data = spool.read()
        return _parse(data, tag is not None) if data else _empty()

    def ready(self) -> str:
        """The mode once the scan has ended (waits; re-raises its error): "scan", "empty" or "probe" (by text)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self.mode

    def find(self, numbers: pl.DataFrame, carry: Sequence[str] = ()) -> pl.DataFrame:
        """(k1, k2, the `carry` columns, tag) of `numbers` (distinct: k1, k2; e164 too to probe) in the source."""
        keys = numbers.select("k1", "k2", *carry)
        if self.ready() == "empty" or numbers.is_empty():
            return keys.clear().with_columns(tag=pl.lit(None, pl.String))
        if self._loaded is not None:
            found = present(keys, self._loaded)
            if self._rare is not None:  # a 10M-row list's rarer tags: ~0.2 CPU-s when given to every row
                found = found.with_columns(tag=outcome_of(found.select("k1", "k2"), self._rare)
                                           .fill_null(found["tag"]))
            return found.with_columns(pl.col("tag").cast(pl.String))
        return present(keys, self._probe(numbers["e164"]))

    def _probe(self, numbers: pl.Series) -> pl.DataFrame:
        from phoneops.numbers.crypto import blind_index_many

        column, tag = self.source.column, self.source.tag
        cols = [column] if tag is None else [column, tag]
        found: list[bytes] = []
        tags: list[str | None] = []
        values = numbers.to_list()
        with self.engine.connect() as conn:
            for start in range(0, len(values), PROBE_CHUNK):
                chunk = blind_index_many(values[start:start + PROBE_CHUNK], self.key)
                for row in conn.execute(select(*cols).where(column.in_(chunk), *self._where())):
                    found.append(bytes(row[0]))
                    tags.append(row[1] if tag is not None else None)
        digests = pl.Series("bi", found, dtype=pl.Binary)
        return pl.DataFrame({**match_keys(digests), "tag": pl.Series(tags, dtype=pl.String)})


def _empty() -> pl.DataFrame:
    return pl.DataFrame(schema={"k1": pl.UInt64, "k2": pl.UInt64, "tag": pl.String})


# group_concat's separator written in the statement: bound as a parameter, SQLite reads it again on every row
# (10M rows: 2.1 CPU-s against 1.45 s)
_NO_SEPARATOR: ColumnElement[str] = literal_column("''")


def _records(data: bytes, width: int, tags: Sequence[str]) -> pl.DataFrame:
    """Fixed-width records of 16 bytes (k1, k2 big-endian) and one byte: 1 + the tag's position in `tags`
    (0: none of them, a null tag)."""
    if len(data) % width:
        raise ValueError(f"a scan chunk of {len(data)} bytes is not made of {width}-byte records")
    records = np.frombuffer(data, dtype=np.dtype([("k1", ">u8"), ("k2", ">u8"), ("tag", "u1")]))
    frame = pl.DataFrame({"k1": records["k1"].astype(np.uint64), "k2": records["k2"].astype(np.uint64)})
    names = pl.Series([None, *tags], dtype=pl.Enum(tags))  # one byte per row; a String after the join
    return frame.with_columns(tag=names.gather(pl.Series(records["tag"].astype(np.uint32))))


def _parse(data: bytes, tagged: bool) -> pl.DataFrame:
    """Lines of ``HEX32[,tag]`` (the first 16 bytes of each blind index) as (k1, k2, tag)."""
    schema = {"hex": pl.String, "tag": pl.String} if tagged else {"hex": pl.String}
    frame = pl.read_csv(io.BytesIO(data), has_header=False, schema=schema, infer_schema=False,
                        empty_string_is_null=True)
    hexed = pl.col("hex")
    return frame.select(
        k1=hexed.str.slice(0, 16).str.to_integer(base=16, dtype=pl.UInt64),
        k2=hexed.str.slice(16, 16).str.to_integer(base=16, dtype=pl.UInt64),
        tag=pl.col("tag") if tagged else pl.lit(None, pl.String),
    )


class FilterSet:
    """The filters of one run with their sources' lookups, started as soon as the run begins."""

    def __init__(self, engine: Engine, filters: Sequence[Filter], expected: int, key: bytes) -> None:
        self.filters = list(filters)
        groups: dict[str, tuple[KeyedSource, list[str]]] = {}
        for flt in self.filters:
            _, tags = groups.setdefault(flt.source.key, (flt.source, []))
            if flt.tag is not None:
                tags.append(flt.tag)
        self.lookups = {name: SourceLookup(engine, source, tags, expected, key)
                        for name, (source, tags) in groups.items()}

    def needs_text(self) -> bool:
        """Whether `outcomes` needs the numbers' E.164 texts (a lookup probes), not only their keys (waits)."""
        return any(lookup.ready() == "probe" for lookup in self.lookups.values())

    def outcomes(self, numbers: pl.DataFrame, carry: Sequence[str] = ()) -> pl.DataFrame:
        """(k1, k2, `carry`, outcome) of the numbers some filter removes (the first wins); e164 if `needs_text`."""
        found = {key: lookup.find(numbers, carry) for key, lookup in self.lookups.items()}
        parts = []
        for flt in self.filters:
            hits = found[flt.source.key]
            if flt.tag is not None:
                hits = hits.filter(pl.col("tag") == flt.tag)
            parts.append(hits.select("k1", "k2", *carry, outcome=pl.lit(flt.outcome)))
        if not parts:
            return numbers.select("k1", "k2", *carry).clear().with_columns(outcome=pl.lit(None, pl.String))
        return pl.concat(parts).unique(subset=["k1", "k2"], keep="first", maintain_order=True)

    @property
    def modes(self) -> dict[str, str]:
        return {key: lookup.mode for key, lookup in self.lookups.items()}
