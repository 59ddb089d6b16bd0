"""The erase scan's set-based cell matching finds exactly what normalising every cell finds (issue 20: the
scan no longer sends every name, e-mail and note through the per-row phone parser)."""

from __future__ import annotations

import polars as pl

from phoneops.numbers.crypto import looks_like_token
from phoneops.numbers.normalize import normalize_column
from phoneops.numbers.vault import get_vault
from phoneops.privacy.matching import Matcher

TARGET = "+447911123456"


def every_cell(matcher: Matcher, values: list[str]) -> list[bool]:
    """The previous rule: every cell normalised under every region, then the link tokens opened."""
    hits = [False] * len(values)
    for region in matcher.regions:
        for position, e164 in enumerate(normalize_column(pl.Series(values, dtype=pl.String), region)["e164"]):
            hits[position] = hits[position] or e164 == matcher.e164
    return [hit or bool(v and looks_like_token(v) and matcher.is_number(v)) for hit, v in zip(hits, values,
                                                                                               strict=True)]


def wide(zero: int) -> str:
    """07911 123456 in another script's digits (full-width, Arabic-Indic)."""
    return "".join(chr(zero + int(d)) for d in "07911123456")


def test_set_based_cells_match_every_cell_normalised(db_url: str) -> None:
    token = get_vault().cipher.encrypt(TARGET)
    other = get_vault().cipher.encrypt("+447911123457")
    writings = [TARGET, "07911 123456", "447911123456", "+44 (0) 7911 123 456", "tel:+447911123456",
                "0044-7911-123-456", " 07911.123.456 ", wide(0xFF10), wide(0x0660), "7911123456",
                "+447911123457", "07911 12345", "0791112345678", "0800 FLOWERS", "07911 12FLOW", "+1 202 555 0143",
                "user7911123456@example.com", "name 7911", "", "   ", "n/a", "=1+2", token, other, token + "x",
                "call 07911 123456 today", "07911123456 ext 12", "(07911) 123456", "+44 7911 123456;ext=1"]
    values = [*writings, *(f"row {i} 0791{i:07d}" for i in range(200)), *(f"0791{i:07d}" for i in range(200))]
    for regions in (["GB"], ["GB", "US", "DE"]):
        matcher = Matcher(TARGET, regions)
        expected = every_cell(matcher, values)
        assert matcher.cells(values) == expected
        assert sum(expected) >= 10  # the writings of the number and its token are found
        rows = [[values[i], values[-1 - i], "x"] for i in range(len(values))]
        assert matcher.rows(rows) == [a or b for a, b in zip(expected, reversed(expected), strict=True)]
