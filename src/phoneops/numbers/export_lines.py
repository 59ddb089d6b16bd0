"""The lines of a list export, one page at a time, in whichever process renders them.

A page is the rows' plain column values; `render_page` opens each sealed number (AES-GCM, bound to its blind
index), masks it unless the export reveals it and writes the CSV lines exactly as `core.csvio.csv_lines` would
(formula-safe cells, ``\\n`` line ends). It imports only the vault's pure parts, so a spawned worker process
starts quickly; `numbers.exports` hands it whole pages, so nothing per row crosses the process boundary but
the row's own values and the page's bytes.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from phoneops.core.csvio import neutralise
from phoneops.numbers.crypto import NumberVault
from phoneops.numbers.vault import mask

# sealed, blind_index, country, status, authority, reason, source, listed_at
PageRow = tuple[bytes, bytes, str | None, str | None, str | None, str | None, str | None, datetime | None]


@lru_cache(maxsize=4)
def _vault(ring: tuple[tuple[str, bytes], ...]) -> NumberVault:
    return NumberVault(ring)


def render_page(ring: tuple[tuple[str, bytes], ...], reveal: bool, rows: Sequence[PageRow]) -> bytes:
    """The page's CSV lines, UTF-8, in the rows' order."""
    opener = _vault(ring).open
    buffer = io.StringIO()
    cells: list[list[Any]] = []
    for sealed, index, country, status, authority, reason, source, listed_at in rows:
        e164 = opener(sealed, index)
        cells.append([
            neutralise(e164 if reveal else mask(e164)), neutralise(country), neutralise(status),
            neutralise(authority), neutralise(reason), neutralise(source),
            neutralise(listed_at.isoformat() if listed_at else ""),
        ])
    csv.writer(buffer, lineterminator="\n").writerows(cells)
    return buffer.getvalue().encode("utf-8")
