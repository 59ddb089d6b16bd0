"""The erase scan's set-based cell matching finds exactly what normalising every cell finds (issue 20: the
scan no longer sends every name, e-mail and note through the per-row phone parser, nor a column of other
numbers through the normaliser)."""

from __future__ import annotations

import csv
import gc
from pathlib import Path

import polars as pl
import pytest

from phoneops.numbers.crypto import looks_like_token
from phoneops.numbers.normalize import normalize_column
from phoneops.numbers.vault import get_vault
from phoneops.privacy import matching
from phoneops.privacy.files import _csv_pass
from phoneops.privacy.matching import Matcher, _nsn_in_digits

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


@pytest.mark.parametrize("few", [0, matching._FEW])  # the column path, and a few cells one by one
def test_set_based_cells_match_every_cell_normalised(db_url: str, monkeypatch: pytest.MonkeyPatch, few: int) -> None:
    monkeypatch.setattr(matching, "_FEW", few)
    token = get_vault().cipher.encrypt(TARGET)
    other = get_vault().cipher.encrypt("+447911123457")
    writings = [TARGET, "07911 123456", "447911123456", "+44 (0) 7911 123 456", "tel:+447911123456",
                "0044-7911-123-456", " 07911.123.456 ", wide(0xFF10), wide(0x0660), "7911123456",
                "+447911123457", "07911 12345", "0791112345678", "0800 FLOWERS", "07911 12FLOW", "+1 202 555 0143",
                "user7911123456@example.com", "name 7911", "", "   ", "n/a", "=1+2", token, other, token + "x",
                "call 07911 123456 today", "07911123456 ext 12", "(07911) 123456", "+44 7911 123456;ext=1",
                # tel: URIs (with a phone-context, digits come from after the number), extensions, line breaks
                "tel:123456;phone-context=+447911", "tel:7911123456;phone-context=+44", "TEL:+44 7911 123456",
                "  tel:07911123456", "tel:+447911123457", "+44 7911 123456 #12", "07911 123456 x 12",
                "079111-23456\n", "07911 123456 / 07911 123457", "447911123456789", "4407911123456",
                "tel:+44-7911-123456\n", "Tel: 07911 123456", " tel:+44 7911 123456#1", "tel:+44 7911 12345 6x"]
    values = [*writings, *(f"row {i} 0791{i:07d}" for i in range(200)), *(f"0791{i:07d}" for i in range(200))]
    for regions in (["GB"], ["GB", "US", "DE"]):
        matcher = Matcher(TARGET, regions)
        expected = every_cell(matcher, values)
        assert matcher.cells(values) == expected
        assert sum(expected) >= 10  # the writings of the number and its token are found
        rows = [[values[i], values[-1 - i], "x"] for i in range(len(values))]
        assert matcher.rows(rows) == [a or b for a, b in zip(expected, reversed(expected), strict=True)]


def test_national_number_is_a_run_of_the_digits_unless_a_rule_adds_digits(db_url: str) -> None:
    """Cells without letters whose digits do not hold the national number are not normalised; only a
    national-prefix transform rule of a region that applies can make a number of digits the text lacks."""
    assert _nsn_in_digits("7911123456", 44, ["GG", "GB"])  # GG: "1481" before six local digits, not 7911...
    assert not _nsn_in_digits("1481256789", 44, ["GG", "GB"])  # "256789" under GG is +441481256789
    assert not _nsn_in_digits("4812567890", 44, ["GG"])  # a cut inside "1481" could leave "481..."
    assert _nsn_in_digits("1481256789", 44, ["GB", "US"])  # GG's rule does not apply under GB
    assert not _nsn_in_digits("91123456789", 54, ["AR"])  # AR's rule takes digits out of the middle
    assert _nsn_in_digits("2025550143", 1, ["US", "AG"])  # AG adds 268 before seven digits
    assert not _nsn_in_digits("2684601234", 1, ["US", "AG"])
    for target, regions in (("+441481256789", ["GG"]), ("+5491123456789", ["AR"]), ("+12684601234", ["AG"])):
        matcher = Matcher(target, regions)
        number = target[-10:]
        values = [target, f"0{number}", f"{number[:4]} {number[4:]}", target[1:], f"00{target[1:]}", "0123456789",
                  *(f"+44 7911 {i:06d}" for i in range(50)), "tel:" + target]
        assert matcher.cells(values) == every_cell(matcher, values)


def test_file_pass_cleans_nul_and_pads_short_rows(db_url: str, tmp_path: Path) -> None:
    """A CSV with NUL characters in its cells (cleaned before matching) and rows of different widths; the
    collector is on again afterwards."""
    path, out = tmp_path / "in.csv", tmp_path / "out.csv"
    rows = [["phone", "name"], ["07911\x00123456", "a"], ["+447911123457", "b"], ["x"], ["c", "d", "+447911123456"],
            ["07911 123456"], *([f"+44 7911 {i:06d}", f"n{i}"] for i in range(300)), ["447911123456", "last"]]
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    matcher = Matcher(TARGET, ["GB"])
    removed = (1, 4, 5, len(rows) - 1)  # 07911 123456 (NUL inside), the third column, two in a row, the last
    assert _csv_pass(path, "utf-8", ",", matcher, None) == len(removed)
    assert _csv_pass(path, "utf-8", ",", matcher, out) == len(removed)
    with out.open(newline="") as handle:
        assert list(csv.reader(handle)) == [row for i, row in enumerate(rows) if i not in removed]
    assert gc.isenabled()
