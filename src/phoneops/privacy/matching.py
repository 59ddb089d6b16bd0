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
from phonenumbers import PhoneMetadata

from phoneops.numbers.crypto import LOOKS_LIKE_TOKEN_MIN, InvalidToken, looks_like_token
from phoneops.numbers.normalize import country_of, normalize, normalize_column
from phoneops.numbers.vault import get_vault

ERASED = "[erased]"
# A phone-like span: an optional +, digits, separators inside, ending on a digit (at least 6 digits overall).
_SPAN = re.compile(r"(?<![\w+])\+?\d[\d \t\-.()/]{4,30}\d(?!\w)")
_RUN = re.compile(r"\+?\d{6,}")
_TOKENISH = re.compile(r"[A-Za-z0-9_.-]{25,}")
# Up to this many cells of a column to normalise are read one by one: the column path's fixed cost (tens of
# polars steps per region, ~0.1 s) is that of hundreds of values.
_FEW = 256
# a tel: URI without parameters, no letter or other character in its number: read as the number it holds
# (numbers.normalize, step 2); ASCII but letters and ";"
_TEL_PLAIN = r"^[ \t]*[Tt][Ee][Ll]:[\x00-\x3A\x3C-\x40\x5B-\x60\x7B-\x7F]*$"


_RULE = re.compile(r"([0-9]+)\\1")  # a transform rule that puts digits before the first group
_TAIL_GROUP = re.compile(r"\(([^()]*)\)\$(?:\|[^()]*)?")  # npfp "(group)$|...", no other group


def _nsn_in_digits(nsn: str, code: int, regions: Iterable[str]) -> bool:
    """Whether every writing of the number (national significant number `nsn`, calling code `code`) that
    holds no letter and only ASCII holds `nsn` as a run of its digits (separators left out), when normalised
    under any of `regions`. phonenumbers reads the national number by cutting the text's digits (a leading
    IDD, calling code or national prefix, two national-prefix strips at most; an extension at the end):
    what is left is a run of them. Letters can add digits (a vanity number, a tel: phone-context); a
    national-prefix transform rule can too (JE "1534\\1": six local digits become 1534 and the six). The rules
    that apply are those of the code's main region (a number written with its code) and of a default region
    of the same code (a national writing). A rule is harmless when it is "digits\\1" on a pattern
    "(group)$|..." (what it adds goes before a run of the text's digits that ends the number) and `nsn` does
    not start with any end of those digits (a later cut can only take a run off the front)."""
    main = phonenumbers.region_code_for_country_code(code)
    rules = []
    for region in dict.fromkeys([main, *regions]):
        meta = PhoneMetadata.metadata_for_region_or_calling_code(code, region)
        if meta is None:
            if region == main:
                return False
            continue
        if meta.country_code != code or not meta.national_prefix_transform_rule:
            continue
        rule = _RULE.fullmatch(meta.national_prefix_transform_rule)
        if rule is None or not _TAIL_GROUP.fullmatch(meta.national_prefix_for_parsing or ""):
            return False
        rules.append(rule.group(1))
    return not any(nsn.startswith(added[i:]) for added in rules for i in range(len(added)))


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
        number = phonenumbers.parse(e164)
        self._nsn = phonenumbers.national_significant_number(number)
        self._digits = len(self._nsn)
        self._nsn_in_digits = _nsn_in_digits(self._nsn, number.country_code or 0, self.regions)
        self._enough = rf"\d(?:\D*\d){{{self._digits - 1}}}"  # that many digits (a search: faster than counting)
        self._run = "[^0-9]*".join(self._nsn)  # a text whose ASCII digits hold the national number as a run

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

    def _maybe(self, column: pl.Series) -> pl.Series:
        """Positions of the cells that can be the number: those holding at least the number's national digits
        (its digits come from the text: letters standing for digits are refused); and, when its national
        number is a run of the digits of every writing without letters (`_nsn_in_digits`), those of the
        ASCII cells without letters whose digits hold that run. The others cannot be it: they are not
        normalised (in a column of distinct numbers, nearly every cell)."""
        maybe = column.str.contains(self._enough).fill_null(False).arg_true()
        if not self._nsn_in_digits or not maybe.len():
            return maybe
        subset = column.gather(maybe)
        other = subset.str.contains(r"[^\x00-\x7F]|[A-Za-z]") & ~subset.str.contains(_TEL_PLAIN)
        holds = subset.str.contains(self._run)
        return maybe.filter((other | holds).fill_null(True))

    def _hits(self, values: Sequence[str]) -> list[int]:
        """Positions of the cells of a column that are the number (see `cells`)."""
        if not values:
            return []
        column = pl.Series(values, dtype=pl.String)
        hits: set[int] = set()
        maybe = self._maybe(column)
        if 0 < maybe.len() <= _FEW:  # one by one: `normalize` gives what `normalize_column` gives, without
            for position, value in zip(maybe.to_list(), column.gather(maybe).to_list(), strict=True):  # its setup
                if value is not None and any(normalize(value, r).e164 == self.e164 for r in self.regions):
                    hits.add(position)
        elif maybe.len():
            subset = column.gather(maybe)
            for region in self.regions:
                found = (normalize_column(subset, region)["e164"] == self.e164).fill_null(False).arg_true()
                hits.update(maybe.gather(found).to_list())
        for position in (column.str.len_chars() >= LOOKS_LIKE_TOKEN_MIN).fill_null(False).arg_true().to_list():
            value = values[position]
            if position not in hits and value and looks_like_token(value) and self.is_number(value):
                hits.add(position)
        return sorted(hits)

    def cells(self, values: Sequence[str]) -> list[bool]:
        """Which cells of a column are the number. Set-based: only cells that can be the number (`_maybe`) are
        normalised (vectorised, once per distinct value); only cells of `LOOKS_LIKE_TOKEN_MIN` characters or
        more can be link tokens, and those are opened one by one."""
        hits = [False] * len(values)
        for position in self._hits(values):
            hits[position] = True
        return hits

    def rows(self, rows: Sequence[Sequence[str]]) -> list[bool]:
        """Which rows have at least one cell that is the number."""
        try:  # rows of one width (a file's usual shape), split into columns in C
            columns: list[Sequence[str]] = list(zip(*rows, strict=True))
        except ValueError:
            width = max(len(row) for row in rows)
            columns = [[row[column] if column < len(row) else "" for row in rows] for column in range(width)]
        hit = [False] * len(rows)
        for values in columns:
            for position in self._hits(values):
                hit[position] = True
        return hit
