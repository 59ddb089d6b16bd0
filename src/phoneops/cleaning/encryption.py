"""Encryption files: a table's phone column turned into link tokens, or tokens back into numbers.

Every other column is kept as it was; the phone cell is replaced, and an ``error`` column is added at the
end (empty when the row went through; a file that already has an ``error`` column, such as an encrypted file
being decrypted, has that column reused): encrypting normalises to E.164 first (an invalid number gets no
token and its reason), decrypting names the tokens that cannot be opened. The original encrypted the raw
first column of every line, header included; here the header is detected and kept.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import IO

import polars as pl

from phoneops.cleaning.ranges import header_line, write_rows
from phoneops.cleaning.reading import Layout, column_names, iter_batches
from phoneops.core.csvio import normalise_header
from phoneops.numbers.crypto import TokenCipher
from phoneops.numbers.normalize import normalize_column

BATCH_ROWS = 100_000


def transform_table(
    source: Path, layout: Layout, *, phone_column: int, direction: str, region: str, cipher: TokenCipher,
    out: IO[bytes], progress: Callable[[int, str], None] | None = None,
) -> dict[str, int]:
    report = progress or (lambda done, message: None)
    names = column_names(layout.width)
    phone = names[phone_column]
    # a file this page wrote (decrypting an encrypted file) already has an `error` column: it is reused, not
    # added twice, and holds this run's reason
    existing = next((j for j, name in enumerate(layout.columns) if normalise_header(name) == "error"), None)
    reuse = layout.has_header and existing is not None and existing != phone_column
    error_name = names[existing] if reuse and existing is not None else "error"
    if layout.has_header:
        out.write(header_line(layout.columns if reuse else [*layout.columns, "error"], layout.delimiter))
    rows = failed = 0
    for batch in iter_batches(source, layout, BATCH_ROWS):
        values: list[str | None]
        errors: list[str | None]
        if direction == "encrypt":
            norm = normalize_column(batch[phone], region)
            values = [cipher.encrypt(e164) if e164 else None for e164 in norm["e164"].to_list()]
            errors = [None if e164 else f"invalid number: {reason}"
                      for e164, reason in zip(norm["e164"].to_list(), norm["reason"].to_list(), strict=True)]
        else:
            opened = cipher.decrypt_many(batch[phone].fill_null("").to_list())
            values = opened.values
            errors = [opened.errors.get(i) for i in range(batch.height)]
        result = batch.with_columns(pl.Series(phone, values, dtype=pl.String),
                                    pl.Series(error_name, errors, dtype=pl.String))
        write_rows(result, out, layout.delimiter)
        rows += batch.height
        failed += sum(1 for e in errors if e)
        report(rows, "encrypting" if direction == "encrypt" else "decrypting")
    return {"rows": rows, "converted": rows - failed, "failed": failed}
