"""Recognising one number wherever it is written: table cells, free text, JSON values, link tokens.

A value is the number when the project's own normaliser reads it as the same E.164 under one of the regions
that could have been meant (the number's own country, the default region, the file's region), or when it is a
link token that opens to the number. Never by substring: "+447400123456" inside "+4474001234567" is another
number. In free text, candidate spans (digits with the usual separators, and each run of digits on its own)
are normalised one by one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import phonenumbers
import polars as pl

from phoneops.numbers.crypto import LOOKS_LIKE_TOKEN_MIN, InvalidToken, looks_like_token
from phoneops.numbers.normalize import country_of, normalize, normalize_column
from phoneops.numbers.vault import get_vault

ERASED = "[erased]"
# A phone-like span: an optional +, digits, separators inside, ending on a digit (at least 6 digits overall).
_SPAN = re.compile(r"(?<![\w+])\+?\d[\d \t\-.()/]{4,30}\d(?!\w)")
_RUN = re.compile(r"\+?\d{6,}")
_TOKENISH = re.compile(r"[A-Za-z0-9_.-]{25,}")


class Matcher:
    """Tells whether values hold `e164` (a valid E.164 number)."""

    def __init__(self, e164: str, regions: Iterable[str]) -> None:
        self.e164 = e164
        own = country_of(e164)
        ordered = [own] if own else []
        ordered += [r.upper() for r in regions if r]
        self.regions = list(dict.fromkeys(ordered))
        self._cipher = get_vault().cipher
        self._memo: dict[str, bool] = {}
        # the national significant number's digits: any writing of the number holds at least these
        self._digits = len(phonenumbers.national_significant_number(phonenumbers.parse(e164)))

    # --- single values ------------------------------------------------------------------------------

    def _token_hit(self, text: str) -> bool:
        try:
            opened = self._cipher.decrypt(text)
        except InvalidToken:
            return False
        return any(normalize(opened, region).e164 == self.e164 for region in self.regions)

    def is_number(self, value: object) -> bool:
        """The whole value is the number (a cell, a JSON leaf)."""
        if value is None or isinstance(value, bool):
            return False
        if isinstance(value, int | float):
            value = str(int(value)) if float(value).is_integer() and value >= 0 else str(value)
        if not isinstance(value, str):
            return False
        text = value.strip()
        if len(text) < 6 or len(text) > 300:
            return False
        found = self._memo.get(text)
        if found is None:
            if looks_like_token(text):
                found = self._token_hit(text)
            else:
                found = any(normalize(text, region).e164 == self.e164 for region in self.regions)
            if len(self._memo) > 200_000:
                self._memo.clear()
            self._memo[text] = found
        return found

    def scrub_text(self, text: str) -> tuple[str, int]:
        """`text` with every writing of the number replaced by ``[erased]``; and how many were replaced."""
        if self.is_number(text):
            return ERASED, 1
        hits = 0

        def replace(match: re.Match[str]) -> str:
            nonlocal hits
            if self.is_number(match.group(0)):
                hits += 1
                return ERASED
            return match.group(0)

        out = _SPAN.sub(replace, text)
        out = _RUN.sub(replace, out)
        out = _TOKENISH.sub(lambda m: replace(m) if looks_like_token(m.group(0)) else m.group(0), out)
        return out, hits

    def scrub(self, value: Any) -> tuple[Any, int]:
        """A JSON value with the number removed from its strings, numbers and keys; and the count."""
        if isinstance(value, str):
            return self.scrub_text(value)
        if isinstance(value, bool) or value is None:
            return value, 0
        if isinstance(value, int | float):
            return (ERASED, 1) if self.is_number(value) else (value, 0)
        if isinstance(value, list):
            total, items = 0, []
            for item in value:
                new, hits = self.scrub(item)
                items.append(new)
                total += hits
            return items, total
        if isinstance(value, dict):
            total, out = 0, {}
            for key, item in value.items():
                new_key, key_hits = self.scrub_text(key) if isinstance(key, str) else (key, 0)
                new, hits = self.scrub(item)
                out[new_key] = new
                total += key_hits + hits
            return out, total
        return value, 0

    # --- table columns ------------------------------------------------------------------------------

    def cells(self, values: Sequence[str]) -> list[bool]:
        """Which cells of a column are the number. Set-based: only cells holding at least the number's national
        digits can be it (its digits come from the text: letters standing for digits are refused), and only
        those are normalised (vectorised); only cells of `LOOKS_LIKE_TOKEN_MIN` characters or more can be
        link tokens, and those are opened one by one."""
        hits = [False] * len(values)
        if not values:
            return hits
        column = pl.Series(values, dtype=pl.String)
        maybe = (column.str.count_matches(r"\d").fill_null(0) >= self._digits).arg_true()
        if maybe.len():
            subset = column.gather(maybe)
            for region in self.regions:
                found = (normalize_column(subset, region)["e164"] == self.e164).fill_null(False).arg_true()
                for position in maybe.gather(found).to_list():
                    hits[position] = True
        for position in (column.str.len_chars() >= LOOKS_LIKE_TOKEN_MIN).fill_null(False).arg_true().to_list():
            value = values[position]
            if not hits[position] and value and looks_like_token(value) and self.is_number(value):
                hits[position] = True
        return hits

    def rows(self, rows: Sequence[Sequence[str]]) -> list[bool]:
        """Which rows have at least one cell that is the number."""
        width = max((len(row) for row in rows), default=0)
        hit = [False] * len(rows)
        for column in range(width):
            values = [row[column] if column < len(row) else "" for row in rows]
            for position, found in enumerate(self.cells(values)):
                if found:
                    hit[position] = True
        return hit
