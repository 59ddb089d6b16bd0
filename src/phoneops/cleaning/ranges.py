"""What a cleaning run's worker processes do (`pipeline` holds the run): a byte range of the file read,
normalised and keyed (stage 1), and later written as lines of the cleaned and the rejected file (stage 3).

This module imports polars, numpy, phonenumbers and the number functions, not the database layer: a
worker starts by importing it (0.2 s of CPU, against 0.46 s for the whole pipeline with SQLAlchemy).
"""

from __future__ import annotations

import csv
import gc
import io
from dataclasses import dataclass
from pathlib import Path
from typing import IO, NamedTuple

import numpy as np
import polars as pl

from phoneops.cleaning.reading import Layout, read_range
from phoneops.numbers.crypto import blind_index, blind_index_block
from phoneops.numbers.normalize import line_types, normalize_column

KEPT = "kept"
NOT_SMS = "cannot_receive_sms"  # the rejected file's reason when the line-type filter removes a number


def warm() -> None:
    """A new worker's first task: the imports, and the normalisation tables built, before the first range.
    What exists then lives as long as the worker, so the collector stops walking it (`gc.freeze`): a full
    collection during a range walked every module's objects (~80 ms of each worker's CPU in a 5M-row run)."""
    normalize_column(["+447400123456", "07400 123456"], "GB")
    gc.collect()
    gc.freeze()


def index_keys(data: bytes) -> pl.DataFrame:
    """(k1, k2) of concatenated 32-byte blind indexes (`match_keys`), read as big-endian words without a
    per-row loop."""
    if len(data) % 32:
        raise ValueError(f"a block of {len(data)} bytes is not made of 32-byte blind indexes")
    words = np.frombuffer(data, dtype=">u8").reshape(-1, 4)
    return pl.DataFrame({"k1": words[:, 0].astype(np.uint64), "k2": words[:, 1].astype(np.uint64)})


def digest_series(digests: bytes) -> pl.Series:
    return pl.Series("bi", [digests[at : at + 32] for at in range(0, len(digests), 32)], dtype=pl.Binary)


def blind_index_digests(block: bytes, key: bytes) -> bytes:
    """The blind indexes (`numbers.crypto.blind_index`) of a block of E.164 numbers (joined by ``\\n``),
    concatenated in order, hashed here (in a worker process on a big file). The first index is checked
    against the platform's own function, so a changed definition fails loudly."""
    if not block:
        return b""
    out = blind_index_block(block, key)
    if out[:32] != blind_index(block.split(b"\n", 1)[0].decode("ascii"), key):
        raise RuntimeError("bulk blind indexes disagree with numbers.crypto.blind_index")
    return out


class Prepared(NamedTuple):
    """Stage 1's answer for some rows of the file: `rows` holds, per row, reason, country (and extension when
    any), the match keys k1, k2 (null for an invalid row), plus the blind index `bi` and the line type when
    asked; `numbers` the valid rows' E.164 numbers in row order, joined by ``\\n`` (ASCII).

    The numbers travel as one bytes block, not as a text column: the job's process needs only the keys
    to match (k1, k2), and hands each range's block back to the worker that writes the range. A 250k-row
    range's frame with its E.164 column pickled in ~35 ms on the bench machine (its 13.5 MB buffer faulted
    in fresh), without it in ~5 ms, and the block is the very bytes the blind indexes were computed from
    (bench/clean.py, "Issue 20, session 11")."""

    rows: pl.DataFrame
    numbers: bytes


def numbers_column(block: bytes, valid: pl.Series) -> pl.Series:
    """The E.164 column ("e164") of rows whose valid ones (`valid`: a boolean per row) hold, in order, the
    numbers of `block` (`Prepared.numbers`); null for the others."""
    count = int(valid.sum())
    values = (pl.Series("e164", [block.decode("ascii")]).str.split("\n").explode() if count
              else pl.Series("e164", [], dtype=pl.String))
    if values.len() != count:
        raise RuntimeError(f"{values.len()} numbers for {count} valid rows")
    at = valid.cast(pl.Int64).cum_sum() - 1  # the position of each valid row's number in the block
    return values.gather(pl.select(pl.when(valid).then(at)).to_series()).alias("e164")


def prepare_numbers(phone: pl.Series, region: str, key: bytes, with_digest: bool = False,
                    line_type: bool = False) -> Prepared:
    """Stage 1 for the values of a phone column (`Prepared`): each value normalised, each valid number keyed
    (k1, k2; plus its blind index `bi` and its line type when asked)."""
    norm = normalize_column(phone, region)
    if norm["extension"].null_count() == norm.height:
        norm = norm.drop("extension")  # the usual case: the column comes back (all null) when batches meet
    # Every valid row is keyed, repeats included: a range repeats few of its own numbers (1.7% on the bench's
    # data), and hashing them costs less than meeting the rows with their distinct numbers (0.160 -> 0.143
    # CPU-s per 255k rows).
    at = norm["e164"].is_not_null().arg_true()
    numbers = norm["e164"].gather(at)
    block = numbers.str.join("\n").item().encode("ascii") if numbers.len() else b""
    digests = blind_index_digests(block, key)
    columns = dict(index_keys(digests).to_dict())
    if with_digest:
        columns["bi"] = digest_series(digests)
    if line_type:
        columns["line_type"] = line_types(numbers, norm["country"].gather(at))
    out = norm.drop("e164").with_columns(
        pl.repeat(None, norm.height, dtype=values.dtype, eager=True).scatter(at, values).alias(name)
        for name, values in columns.items())
    # columns of a few distinct texts: categories (4 bytes a row, not 16) until they are written
    return Prepared(out.with_columns(pl.col(c).cast(pl.Categorical) for c in ("reason", "country", "line_type")
                                     if c in out.columns), block)


_FORMULA = r"^[=+\-@\t\r\x00]"
_SAFE_NUMBER = r"^(?:\+[0-9]+|-(?:[0-9]+\.?[0-9]*|\.[0-9]+))$"


def neutralised(frame: pl.DataFrame, safe: tuple[str, ...] = ()) -> pl.DataFrame:
    """`core.csvio.neutralise` on every cell, vectorised (it agrees with it on ASCII text). Columns with no
    cell starting like a formula are left as they are without further work, and so are the `safe` ones
    (written by us: E.164 numbers, extensions, line types)."""
    checked = [c for c in frame.columns if c not in safe]
    if not checked:
        return frame
    risky = frame.select(pl.col(c).str.contains(_FORMULA).any() for c in checked).row(0)
    return frame.with_columns(
        pl.when(pl.col(c).str.contains(_FORMULA) & ~pl.col(c).str.contains(_SAFE_NUMBER))
        .then(pl.concat_str(pl.lit("'"), pl.col(c))).otherwise(pl.col(c)).alias(c)
        for c, flagged in zip(checked, risky, strict=True) if flagged
    )


def header_line(names: list[str], delimiter: str) -> bytes:
    from phoneops.core.csvio import neutralise

    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerow([neutralise(n) for n in names])
    return buffer.getvalue().encode("utf-8")


def write_rows(frame: pl.DataFrame, out: IO[bytes], delimiter: str, safe: tuple[str, ...] = ()) -> None:
    neutralised(frame, safe).write_csv(out, include_header=False, separator=delimiter, null_value="",
                                 line_terminator="\n")


@dataclass(frozen=True)
class Output:
    """What the writing of one range needs besides its rows: the phone column's name, the columns the
    cleaned file adds after it ((internal name, prepared column) pairs), the delimiter and the filter."""

    phone: str
    phone_column: int
    added: tuple[tuple[str, str], ...]
    delimiter: str
    sms_types: tuple[str, ...] | None


def prepare_range(source: Path, layout: Layout, start: int, end: int, phone: str, region: str, key: bytes,
                  with_digest: bool, line_type: bool) -> Prepared:
    """Stage 1 for one byte range, in a worker process: its rows read, normalised and keyed."""
    batch = read_range(source, layout, start, end)
    return prepare_numbers(batch[phone], region, key, with_digest, line_type)


def write_part(batch: pl.DataFrame, part: pl.DataFrame, numbers: bytes, out: Output) -> tuple[bytes, bytes, int]:
    """Stage 3 for rows of the file (`batch`), their outcomes (`part`: valid, outcome, reason, and the
    columns the writing needs) and their numbers (`Prepared.numbers`): the cleaned and the rejected file's
    lines, and how many rows they hold."""
    keep = part["outcome"] == KEPT
    clean = batch.with_columns(numbers_column(numbers, part["valid"]).alias(out.phone))
    if out.added:
        names = clean.columns
        clean = clean.with_columns(part[column].cast(pl.String).alias(name) for name, column in out.added).select(
            *names[: out.phone_column + 1], *(name for name, _ in out.added), *names[out.phone_column + 1 :])
    clean_text, rejected_text = io.BytesIO(), io.BytesIO()
    write_rows(clean.filter(keep), clean_text, out.delimiter, (out.phone, *(name for name, _ in out.added)))
    detail = part["reason"] if out.sms_types is None else part.select(
        pl.when(pl.col("outcome") == NOT_SMS).then(pl.col("line_type")).otherwise("reason")).to_series()
    rejected = batch.with_columns(reason=part["outcome"].cast(pl.String), detail=detail.cast(pl.String))
    write_rows(rejected.filter(~keep), rejected_text, out.delimiter)
    return clean_text.getvalue(), rejected_text.getvalue(), batch.height


def write_range(source: Path, layout: Layout, start: int, end: int, part: pl.DataFrame, numbers: bytes,
                out: Output) -> tuple[bytes, bytes, int]:
    """Stage 3 for one byte range, in a worker process (stage 1 read the same bytes: no cell holds a line
    break)."""
    batch = read_range(source, layout, start, end, checked=True)
    if batch.height != part.height:  # the same bytes read the same way: never, unless the file changed
        raise RuntimeError(f"range {start}-{end} read {batch.height} rows, then {part.height}")
    return write_part(batch, part, numbers, out)
