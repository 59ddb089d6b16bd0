# Over 400 lines: scalar and vectorised normalisation must give the same answers, so they sit together.
"""E.164 normalisation: `normalize` for one value, `normalize_column` for a column; both give the same answer.

The rule (it never guesses: a result is always a number `phonenumbers` itself calls valid, of the country the
value was written for)
--------
1. Input: ``None`` (or NaN) is EMPTY; a non-negative ``int`` (or integral float) is its digits; any other
   non-string is NOT_A_NUMBER.
2. Cleaning: separators (whitespace, ``. - ( ) / [ ]``, no-break and zero-width spaces, Unicode dashes, BOM)
   are removed wherever they are; nothing left is EMPTY. A ``tel:`` URI without parameters keeps its number.
   A leading ``00`` becomes ``+``. When what remains is ``+digits`` or ``digits`` (ASCII), it is the
   candidate of steps 3-4. Anything else (an extension such as ``x123``, ``ext. 5`` or ``;ext=12``, text
   around the number, full-width digits, a ``tel:`` URI with parameters) is read by ``phonenumbers.parse``
   itself from the original text: its extension is returned apart (``extension``), never as part of the
   number; letters left in the number itself (vanity numbers such as ``1-800-FLOWERS``) are refused as
   NOT_A_NUMBER rather than converted.
3. ``+digits`` is read as international. Other digits are read as ``phonenumbers.parse`` reads them with the
   default region (a national number: phonenumbers strips a trunk prefix, the region's own IDD, or a leading
   copy of the region's country code). Only a value written as nothing but digits (an ``int``, or a text of
   ASCII digits and surrounding spaces: what a spreadsheet or a tracker makes of ``+447400123456``) whose
   national reading is not valid is read again as ``+digits``, and kept when valid. A formatted value is
   never re-read: ``(670) 234-5251`` with region MG is an invalid Malagasy number, not ``+6702345251``.
4. Valid means ``phonenumbers.is_valid_number`` (so fictional ranges such as Ofcom's 07700 900xxx are
   rejected as INVALID_FOR_REGION). ``country`` is ``region_code_for_number`` (None for non-geographic
   numbers such as +800). A rejection carries the first (national) reading's reason.

The column path
---------------
Values are cleaned by polars with the very patterns of the per-row path (on ASCII values, where Python's
``re`` and Rust's ``regex`` agree; other values are cleaned in Python). Distinct candidates then go through
a vectorised replica of ``phonenumbers.parse`` + ``is_valid_number`` built from phonenumbers' own metadata:
``_extract_country_code`` (first known 1-3 digit code), ``_maybe_extract_country_code`` for bare digits
(a leading copy of the region's code, its viability and TOO_LONG tests), ``_maybe_strip_national_prefix_
carrier_code`` and parse's length test, ``region_code_for_number``'s walk through the regions of a calling
code (leading digits, else the full type test), ``_number_type_helper`` (general description and any type
description, each with its possible lengths), and ``is_possible_number_with_reason`` for the reason.
Regex semantics carry over: full-match existence is the same in both engines, and a prefix match's span is
the same under Rust's leftmost-first semantics as under Python's backtracking.

The replica only decides what it reproduces step for step. A region IDD to strip, a national-prefix
transform rule that fires, a non-geographic or unknown calling code, a candidate over 250 characters, and
a bare candidate whose ``+digits`` reading is itself undecided go to ``_resolve``, the per-row function,
once per distinct candidate; values of step 2's second kind go to ``phonenumbers.parse`` once per distinct
text. tests/numbers/test_normalize.py checks column == per-row over every example number of every region
in many writings, and with hypothesis.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache, lru_cache

import numpy as np
import phonenumbers
import polars as pl
from phonenumbers import NumberParseException, PhoneMetadata, PhoneNumberFormat, ValidationResult
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, _extract_possible_number, _test_number_length

from phoneops.core.errors import ValidationFailed
from phoneops.numbers.prefixes import significant_prefix

__all__ = ["Normalized", "Rejection", "country_of", "meet", "normalize", "normalize_column"]


class Rejection(StrEnum):
    EMPTY = "empty"
    NOT_A_NUMBER = "not_a_number"
    TOO_SHORT = "too_short"
    TOO_LONG = "too_long"
    INVALID_LENGTH = "invalid_length"  # between the shortest and longest length, but no such length
    INVALID_COUNTRY_CODE = "invalid_country_code"
    INVALID_FOR_REGION = "invalid_for_region"  # a possible length that matches no number range


@dataclass(frozen=True, slots=True)
class Normalized:
    e164: str | None
    reason: Rejection | None
    country: str | None
    extension: str | None = None  # "12" for "+44 7400 123456 ext. 12" (only with a valid number)

    @property
    def ok(self) -> bool:
        return self.e164 is not None


_PARSE_REASONS = {
    NumberParseException.INVALID_COUNTRY_CODE: Rejection.INVALID_COUNTRY_CODE,
    NumberParseException.NOT_A_NUMBER: Rejection.NOT_A_NUMBER,
    NumberParseException.TOO_SHORT_AFTER_IDD: Rejection.TOO_SHORT,
    NumberParseException.TOO_SHORT_NSN: Rejection.TOO_SHORT,
    NumberParseException.TOO_LONG: Rejection.TOO_LONG,
}
_POSSIBLE_REASONS = {
    ValidationResult.IS_POSSIBLE: Rejection.INVALID_FOR_REGION,
    ValidationResult.IS_POSSIBLE_LOCAL_ONLY: Rejection.TOO_SHORT,  # a local number without its area code
    ValidationResult.INVALID_COUNTRY_CODE: Rejection.INVALID_COUNTRY_CODE,
    ValidationResult.TOO_SHORT: Rejection.TOO_SHORT,
    ValidationResult.INVALID_LENGTH: Rejection.INVALID_LENGTH,
    ValidationResult.TOO_LONG: Rejection.TOO_LONG,
}

# Cleaning patterns. The separators: a single value drops them with one class (`_SEP_RE`), a column one by one
# in a multi-pattern pass (`str.replace_many`: about half the time of the class's `replace_all` on a range of a
# file; bench/clean.py, "Issue 20, session 14"). _CANDIDATE and _BARE are used verbatim by Python `re` (per row)
# and polars (columns, ASCII values only).
_SEPARATOR_CHARS = tuple(" \t\n\r\f\v.()/[]-\u00a0\u2007\u200b\u202f\u2212\u3000\ufeff") + tuple(
    chr(c) for c in range(0x2010, 0x2016))
_TEL = "^[Tt][Ee][Ll]:([^;]*)"
_CANDIDATE = "^\\+?[0-9]+$"
_SEP_RE = re.compile("[" + "".join(re.escape(c) for c in _SEPARATOR_CHARS) + "]")
_TEL_RE = re.compile(_TEL)
_CANDIDATE_RE = re.compile(r"\+?[0-9]+")
_BARE = "^[ \t]*[0-9]+[ \t]*$"  # written as nothing but digits: may be an international number without its +
_BARE_RE = re.compile(_BARE)
_MAX_INPUT = 250  # phonenumbers refuses longer input as TOO_LONG
_MIN_NSN, _MAX_NSN = 2, 17  # phonenumbers' bounds on a national significant number


def _check_region(region: str) -> str:
    code = region.upper() if isinstance(region, str) else ""
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(
            f"unknown default region {region!r}: use an ISO 3166 alpha-2 code such as 'GB'",
            code="invalid_region",
        )
    return code


def _to_text(raw: object) -> str | Rejection:
    if raw is None:
        return Rejection.EMPTY
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return Rejection.NOT_A_NUMBER
    if isinstance(raw, numbers.Integral):
        whole = int(raw)
        return str(whole) if whole >= 0 else Rejection.NOT_A_NUMBER
    if isinstance(raw, numbers.Real):
        real = float(raw)
        if math.isnan(real):
            return Rejection.EMPTY
        return str(int(real)) if real.is_integer() and real >= 0 else Rejection.NOT_A_NUMBER
    return Rejection.NOT_A_NUMBER


def _candidate(text: str) -> str | Rejection | None:
    """Step 2 of the rule: the canonical ``+digits`` / ``digits`` string, EMPTY, or None when the text is
    for ``phonenumbers.parse`` itself (`_parse_text`)."""
    cleaned = _SEP_RE.sub("", text)
    if not cleaned:
        return Rejection.EMPTY
    tel = _TEL_RE.match(cleaned)
    if tel and ";" not in cleaned:
        cleaned = tel.group(1)
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    return cleaned if _CANDIDATE_RE.fullmatch(cleaned) else None


def _is_bare(text: str) -> bool:
    return _BARE_RE.fullmatch(text) is not None


def _country(region: str | None) -> str | None:
    return region if region and region not in ("001", "ZZ") else None


def _attempt(text: str, region: str, vanity_refused: bool = False) -> Normalized:
    try:
        number = phonenumbers.parse(text, region)
    except NumberParseException as exc:
        return Normalized(None, _PARSE_REASONS.get(exc.error_type, Rejection.NOT_A_NUMBER), None)
    if vanity_refused and phonenumbers.is_alpha_number(_extract_possible_number(text)):
        return Normalized(None, Rejection.NOT_A_NUMBER, None)  # letters standing for digits: not converted
    if phonenumbers.is_valid_number(number):
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        return Normalized(e164, None, _country(phonenumbers.region_code_for_number(number)), number.extension or None)
    why = phonenumbers.is_possible_number_with_reason(number)
    return Normalized(None, _POSSIBLE_REASONS.get(why, Rejection.INVALID_FOR_REGION), None)


@lru_cache(maxsize=1 << 16)
def _resolve(candidate: str, region: str, bare: bool) -> Normalized:
    """Step 3-4 of the rule for a cleaned candidate; `bare`: the value was written as digits only."""
    first = _attempt(candidate, region)
    if first.ok or candidate.startswith("+") or not bare:
        return first
    second = _attempt("+" + candidate, region)
    return second if second.ok else first


@lru_cache(maxsize=1 << 14)
def _parse_text(text: str, region: str) -> Normalized:
    """Step 2's second kind: phonenumbers reads the text (extension, text around, tel: parameters)."""
    return _attempt(text, region, vanity_refused=True)


def normalize(raw: object, region: str) -> Normalized:
    """One value to E.164 under the module's rule; `region` is the default region (ISO code)."""
    region = _check_region(region)
    text = _to_text(raw)
    if isinstance(text, Rejection):
        return Normalized(None, text, None)
    candidate = _candidate(text)
    if isinstance(candidate, Rejection):
        return Normalized(None, candidate, None)
    if candidate is None:
        return _parse_text(text, region)
    return _resolve(candidate, region, _is_bare(text))


@lru_cache(maxsize=1 << 14)
def country_of(e164: str) -> str | None:
    """ISO region of a valid E.164 number (None when invalid or non-geographic)."""
    if not e164.startswith("+"):
        return None
    try:
        number = phonenumbers.parse(e164, None)
    except NumberParseException:
        return None
    return _country(phonenumbers.region_code_for_number(number)) if phonenumbers.is_valid_number(number) else None


# --- the vectorised replica -------------------------------------------------------------------------------
# Metadata becomes columns (one row per region) and rows are sorted by region before every per-row-pattern
# regex, so polars compiles each pattern once. Length conditions are folded into the patterns: a number is
# matched as "LLL:digits" (LLL its zero-padded length) against "(?:LLL|...):(?:pattern)".

_TYPES = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail")
_STRIP_REFUSED = {ValidationResult.TOO_SHORT, ValidationResult.IS_POSSIBLE_LOCAL_ONLY,
                  ValidationResult.INVALID_LENGTH}
_NEVER = "^x$"  # matches no digit string


def _rx(pattern: str) -> str:
    r"""A metadata pattern for polars. Metadata patterns use no escape but ``\d``, never inside a class
    (a test pins this), and only meet ASCII digit strings here, where ``[0-9]`` is ``\d`` and compiles
    several times faster than Rust's Unicode ``\d``."""
    return pattern.replace("\\d", "[0-9]")


def _keyed(lengths: Sequence[int], pattern: str) -> str | None:
    """_is_number_matching_desc as a pattern over "LLL:digits"; None when no length can match."""
    if not lengths:
        return f"[0-9]{{3}}:(?:{_rx(pattern)})"
    sizes = [f"{n:03d}" for n in lengths if n >= 0]
    return f"(?:{'|'.join(sizes)}):(?:{_rx(pattern)})" if sizes else None


@cache
def _meta(region: str) -> dict[str, object] | None:
    """One region's metadata as a row: what parse, is_valid_number and is_possible_number read."""
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None or md.general_desc is None:
        return None
    general = md.general_desc.national_number_pattern
    names = [*_TYPES, "fixed_line"] + ([] if md.same_mobile_and_fixed_line_pattern else ["mobile"])
    descs = [getattr(md, name) for name in names]
    keyed = [_keyed(d.possible_length, d.national_number_pattern) for d in descs if d and d.national_number_pattern]
    types = [t for t in keyed if t]
    gen_k = _keyed(md.general_desc.possible_length, general) if general else None
    try:
        verdicts = "".join(str(_test_number_length("0" * n, md)) for n in range(_MAX_INPUT + 1))
    except IndexError:  # no possible lengths in the general description
        verdicts = None
    npfp = md.national_prefix_for_parsing
    return {
        "region": region,
        "cc": str(md.country_code),
        "plain": f"^(?:{_rx(general)})$" if general else _NEVER,
        "gen_k": f"^{gen_k}$" if gen_k else _NEVER,
        "types_k": f"^(?:{'|'.join(types)})$" if types else _NEVER,
        "prefix": f"^({_rx(npfp)})" if npfp else None,
        "transform": bool(md.national_prefix_transform_rule),
        "leading": f"^(?:{_rx(md.leading_digits)})" if md.leading_digits else None,
        "idd": f"^(?:{_rx(md.international_prefix)})" if md.international_prefix else None,
        "verdicts": verdicts,
    }


Meta = dict[str, object]  # one region's row of `_meta`


@lru_cache(maxsize=1)
def _tables() -> tuple[dict[str, str | None], dict[str, str], dict[str, list[tuple[bool, Meta]]], dict[str, str]]:
    """_extract_country_code by first three digits; the main region of each geographic code;
    region_code_for_number's walk by calling code ([(single, region's metadata)] in the code's order);
    is_possible_number's length verdicts by calling code."""
    known = {str(code) for code in COUNTRY_CODE_TO_REGION_CODE}
    codes = {f"{n:03d}": next((p[:k] for k in (1, 2, 3) if (p := f"{n:03d}")[:k] in known), None) for n in range(1000)}
    main: dict[str, str] = {}
    walks: dict[str, list[tuple[bool, Meta]]] = {}
    why: dict[str, str] = {}
    for code, regions in COUNTRY_CODE_TO_REGION_CODE.items():
        lead = phonenumbers.region_code_for_country_code(code)
        row = _meta(lead) if lead in phonenumbers.SUPPORTED_REGIONS else None
        if row is None or row["verdicts"] is None:
            continue  # non-geographic codes stay with the per-row path
        main[str(code)] = lead
        why[str(code)] = str(row["verdicts"])
        walks[str(code)] = [(len(regions) == 1, m) for r in regions if (m := _meta(r)) is not None]
    return codes, main, walks, why


# Every regex below is a literal pattern applied to the rows of one region (or one step of one calling
# code's walk): the rows are split by region first. A pattern held in a column would make polars look up
# its compiled regex by the pattern's text on every row (hashing up to 2 KB per row), and bringing the
# patterns to the rows took a join and a sort of every candidate.


def _size(column: str) -> pl.Expr:
    return pl.col(column).str.len_bytes().cast(pl.Int64)


_LENGTH_PREFIX = {n: f"{n:03d}:" for n in range(_MAX_INPUT + 1)}


def _length_keyed(column: str) -> pl.Expr:
    """"LLL:digits" (LLL the zero-padded length) of a column of digits up to _MAX_INPUT long: the length
    looked up as its prefix (half the time of formatting each length)."""
    prefix = pl.col(column).str.len_bytes().replace_strict(_LENGTH_PREFIX, return_dtype=pl.String)
    return pl.concat_str(prefix, pl.col(column))


def _at(mask: object, size: pl.Expr) -> pl.Expr:
    """The character of a per-length mask string at `size`."""
    return pl.lit(str(mask)).str.slice(size, 1)


def _stage(df: pl.DataFrame, region: str) -> pl.DataFrame:
    """_maybe_extract_country_code: d -> C (calling code), n (national part), mreg (metadata region)."""
    codes, main, _, _ = _tables()
    d, own = pl.col("d"), _meta(region)
    plus = df.filter(pl.col("plus") & (d.str.len_bytes() > _MIN_NSN))
    plus = plus.with_columns(C=d.str.slice(0, 3).replace_strict(codes, default=None, return_dtype=pl.String))
    plus = plus.filter(pl.col("C").is_in(list(main))).with_columns(
        n=d.str.slice(pl.col("C").str.len_bytes()), mreg=pl.col("C").replace_strict(main, return_dtype=pl.String)
    )
    bare = df.filter(~pl.col("plus"))
    if own is None or own["cc"] not in main or own["verdicts"] is None:
        bare = bare.with_columns(C=pl.lit(""), n=d, mreg=pl.lit(region), und=pl.lit(True))
    else:  # the region's IDD (left undecided), a leading copy of its calling code, or a national number
        code, starts = str(own["cc"]), d.str.starts_with(str(own["cc"]))
        bare = bare.with_columns(C=pl.lit(code))
        if own["idd"]:
            bare = bare.with_columns(und=d.str.contains(str(own["idd"])))
        # only the digits that start with the region's own code may be that code and a number after it
        lead = _strip(bare.filter(starts).with_columns(pot=d.str.slice(len(code))), "pot", "pot2", own)
        long_ = _at(own["verdicts"], _size("d")) == str(ValidationResult.TOO_LONG)
        plain = str(own["plain"])
        moved = (~d.str.contains(plain) & pl.col("pot2").str.contains(plain)) | long_
        bare = pl.concat([
            lead.select(pl.exclude("pot", "pot2"), n=pl.when(moved).then(pl.col("pot2")).otherwise(d),
                        mreg=pl.when(moved).then(pl.lit(main[code])).otherwise(pl.lit(region))),
            bare.filter(~starts).with_columns(n=d, mreg=pl.lit(region)),
        ])
    cols = ["i", "C", "n", "mreg", "und"]
    return pl.concat([plus.select(cols), bare.select(cols)]).filter(~pl.col("und") & (_size("n") >= _MIN_NSN))


# A region's rows up to this many are stripped in one pass: splitting them costs ~2 ms of polars calls whatever
# their number, the regexes it spares on the rows the prefix does not start ~0.3 us a row. A file of many
# countries meets hundreds of regions per range (the every-region test: ~1.7 -> ~1.3 s per 23,000 writings).
_SMALL_PART = 4096


def _strip(df: pl.DataFrame, src: str, dst: str, meta: Meta) -> pl.DataFrame:
    """_maybe_strip_national_prefix_carrier_code(src) into dst under one region's metadata; a transform
    rule that fires leaves the row undecided. Rows come back in another order (they carry their "i"): those
    the prefix does not start (most numbers written with "+") skip the validity tests of the rest."""
    if not meta["prefix"]:
        return df.with_columns(pl.col(src).alias(dst))
    number, hit, plain = pl.col(src), pl.col("_hit"), str(meta["plain"])
    found = number.str.extract(str(meta["prefix"]), 1).str.len_bytes().cast(pl.Int64).fill_null(0)
    df = df.with_columns(_hit=found)
    started, rest = hit > 0, number.str.slice(hit)
    keep = number.str.contains(plain) & ~rest.str.contains(plain)
    if df.height <= _SMALL_PART:  # the same rule in one pass: cheaper than splitting a few rows in two
        return df.with_columns(pl.when(started & ~keep).then(rest).otherwise(number).alias(dst),
                               und=pl.col("und") | (started & pl.lit(bool(meta["transform"])))).drop("_hit")
    untouched = df.filter(~started).with_columns(pl.col(src).alias(dst)).drop("_hit")
    stripped = df.filter(started).with_columns(
        pl.when(~keep).then(rest).otherwise(number).alias(dst),
        und=pl.col("und") | pl.lit(bool(meta["transform"])),
    ).drop("_hit")
    return pl.concat([untouched, stripped])


# A walk step costs ~0.5 ms of polars calls whatever its rows; a candidate read per row ~0.1 ms: the few rows
# no region has claimed yet, with many regions left (+1 has 25), are left to the per-row path.
_ROWS_PER_STEP = 5


def _walk(todo: pl.DataFrame, code: str) -> list[pl.DataFrame]:
    """_region_code_for_number_from_list over the calling code's regions for rows (i, C, nat, key) of one
    code: (i, C, nat, valid, region) per row, region null (and not valid) when no region claims it. Rows
    still unclaimed when fewer than _ROWS_PER_STEP per remaining region are left out (the per-row path
    reads them)."""
    done: list[pl.DataFrame] = []
    valid = pl.lit(False)
    walk = _tables()[2].get(code, [])
    for step, (single, meta) in enumerate(walk):
        key = pl.col("key")
        valid = key.str.contains(str(meta["gen_k"])) & key.str.contains(str(meta["types_k"]))
        if single:  # the code's one region claims every row
            return [*done, todo.select("i", "C", "nat", valid=valid, region=pl.lit(str(meta["region"])))]
        leading = meta["leading"]
        hit = valid if leading is None else pl.col("nat").str.contains(str(leading))
        todo = todo.with_columns(valid=valid, hit=hit)
        done.append(todo.filter("hit").select("i", "C", "nat", "valid", region=pl.lit(str(meta["region"]))))
        todo = todo.filter(~pl.col("hit"))
        if not todo.height or todo.height < _ROWS_PER_STEP * (len(walk) - step - 1):
            return done
    return [*done, todo.select("i", "C", "nat", valid=pl.lit(False), region=pl.lit(None, pl.String))]


def _replica(candidates: pl.Series, region: str) -> pl.DataFrame:
    """cand, valid, e164, country, reason for each candidate whose reading parse(cand, region) the replica
    reproduces exactly; the others are left out."""
    why = _tables()[3]
    df = pl.DataFrame({"cand": candidates}, schema={"cand": pl.String}).with_row_index("i")
    df = df.filter(_size("cand") <= _MAX_INPUT).select(
        "i", d=pl.col("cand").str.strip_prefix("+"), plus=pl.col("cand").str.starts_with("+"), und=pl.lit(False)
    )
    staged = []
    for (mreg,), part in _stage(df, region).partition_by("mreg", as_dict=True).items():
        meta = _meta(str(mreg))
        if meta is None:
            continue
        kept = _at(meta["verdicts"], _size("_s")).is_in([str(v) for v in _STRIP_REFUSED]).not_()
        staged.append(_strip(part, "n", "_s", meta).lazy().filter(~pl.col("und")).select(
            "i", "C", nat=pl.when(kept).then(pl.col("_s")).otherwise(pl.col("n"))).collect())
    schema = {"i": pl.UInt32, "C": pl.String, "nat": pl.String}
    todo = pl.concat([pl.DataFrame(schema=schema), *staged]).with_columns(
        key=_length_keyed("nat"))
    done = [pl.DataFrame(schema={**schema, "valid": pl.Boolean, "region": pl.String, "w": pl.String})]
    for (code,), part in todo.partition_by("C", as_dict=True).items():
        verdicts = why.get(str(code))
        mark = _at(verdicts, _size("nat")) if verdicts is not None else pl.lit(None, pl.String)
        done += [found.with_columns(w=mark) for found in _walk(part, str(code))]
    found = pl.concat(done)
    found = found.with_columns(cand=candidates.gather(found["i"]))
    too_long, short = _size("nat") > _MAX_NSN, _size("nat") < _MIN_NSN
    valid = pl.col("valid") & ~too_long & ~short
    reason = pl.col("w").replace_strict(
        {str(k): v.value for k, v in _POSSIBLE_REASONS.items()}, default=None, return_dtype=pl.String
    )
    return found.select(
        "i",
        "cand",
        valid=valid,
        e164=pl.when(valid).then(pl.concat_str(pl.lit("+"), "C", "nat")),
        country=pl.when(valid).then("region"),
        reason=pl.when(valid).then(None).when(too_long).then(pl.lit(Rejection.TOO_LONG.value))
        .when(short).then(pl.lit(Rejection.TOO_SHORT.value)).otherwise(reason),
    )


def _decide(candidates: pl.Series, region: str) -> pl.DataFrame:
    """cand, e164, reason, country (the first reading) and e2, c2 (the valid ``+digits`` reading of a
    candidate without a plus whose first reading is invalid) for the distinct candidates the replica settles
    under step 3; the rows choose the second reading only when written as digits only."""
    first = _replica(candidates, region)
    retry = first.filter(~pl.col("valid") & ~pl.col("cand").str.starts_with("+")).select("i", "cand")
    # Without a known calling code, "+digits" fails as INVALID_COUNTRY_CODE, and so does parse's retry
    # without the "+": the digits match neither the region's IDD (else undecided above) nor its own code.
    coded = pl.col("cand").str.slice(0, 3).replace_strict(_tables()[0], default=None, return_dtype=pl.String)
    dead = retry.filter(coded.is_null()).select("i", valid2=pl.lit(False), e2=pl.lit(None, pl.String),
                                                c2=pl.lit(None, pl.String))
    again = retry.filter(coded.is_not_null())
    second = _replica("+" + again["cand"], region)  # its "i" is a position in `again`
    second = second.select(i=again["i"].gather(second["i"]), valid2="valid", e2="e164", c2="country")
    both = first.join(pl.concat([second, dead]), on="i", how="left")  # candidates met by position, not text
    valid, second_ok = pl.col("valid"), ~pl.col("valid") & pl.col("valid2").fill_null(False)
    return both.filter(valid | pl.col("cand").str.starts_with("+") | pl.col("valid2").is_not_null()).select(
        "i",
        "cand",
        e164=pl.when(valid).then("e164"),
        reason=pl.when(valid).then(None).otherwise("reason"),
        country=pl.when(valid).then("country"),
        e2=pl.when(second_ok).then("e2"),
        c2=pl.when(second_ok).then("c2"),
    )


_RESOLVED = dict.fromkeys(("cand", "e164", "reason", "country", "e2", "c2"), pl.String)


def _resolve_many(candidates: pl.Series, region: str) -> pl.DataFrame:
    fast = _decide(candidates, region)
    settled = np.zeros(candidates.len(), dtype=bool)
    settled[fast["i"].to_numpy()] = True
    fast = fast.drop("i")
    rest = candidates.filter(pl.Series(~settled))
    firsts = [_resolve(c, region, False) for c in rest]
    seconds = [_resolve(c, region, True) if not r.ok and not c.startswith("+") else r for c, r in zip(rest, firsts,
                                                                                                        strict=True)]
    slow = pl.DataFrame(
        {
            "cand": rest,
            "e164": [r.e164 for r in firsts],
            "reason": [r.reason.value if r.reason else None for r in firsts],
            "country": [r.country for r in firsts],
            "e2": [s.e164 if not f.ok else None for f, s in zip(firsts, seconds, strict=True)],
            "c2": [s.country if not f.ok else None for f, s in zip(firsts, seconds, strict=True)],
        },
        schema=_RESOLVED,
    )
    return pl.concat([fast, slow])


_PARSED = {"text": pl.String, "pe164": pl.String, "preason": pl.String, "pcountry": pl.String, "pext": pl.String}


def _parse_many(texts: pl.Series, region: str) -> pl.DataFrame:
    """`_parse_text` once per distinct text of step 2's second kind."""
    values = texts.to_list()
    results = [_parse_text(t, region) for t in values]
    return pl.DataFrame(
        {
            "text": values,
            "pe164": [r.e164 for r in results],
            "preason": [r.reason.value if r.reason else None for r in results],
            "pcountry": [r.country for r in results],
            "pext": [r.extension for r in results],
        },
        schema=_PARSED,
    )


def _clean(text: pl.Series) -> pl.DataFrame:
    """key, early, bare for each row: step 2 of the rule (non-ASCII values are cleaned in Python). `key` is
    the candidate, or the original text when phonenumbers reads it (a text that is a candidate cleans to
    itself, so the two kinds never share a key); `bare`: written as digits only."""
    raw, s = pl.col("raw"), pl.col("s")
    df = pl.DataFrame({"raw": text}, schema={"raw": pl.String})
    plain = raw.str.len_bytes() == raw.str.len_chars()
    # _TEL's reading without a regex: "tel:" in any case, then the rest (no ";" in the text: a parameter keeps
    # it whole). Only ASCII rows use it (the others are cleaned in Python below), where to_lowercase is exact.
    tel = pl.when(~s.str.contains(";", literal=True) & (s.str.slice(0, 4).str.to_lowercase() == "tel:")).then(
        s.str.slice(4)).otherwise(s)
    out = (
        df.with_columns(s=raw.str.replace_many(dict.fromkeys(_SEPARATOR_CHARS, "")))
        .with_columns(empty=s.str.len_bytes() == 0, s=tel)
        .with_columns(s=pl.when(s.str.starts_with("00")).then(pl.concat_str(pl.lit("+"), s.str.slice(2))).otherwise(s))
        .with_columns(cand=pl.when(~pl.col("empty") & s.str.contains(_CANDIDATE)).then(s))
        .with_columns(
            early=pl.when(raw.is_null() | pl.col("empty")).then(pl.lit(Rejection.EMPTY.value)),
            key=pl.when(~pl.col("empty")).then(pl.coalesce("cand", raw)),
            bare=raw.str.contains(_BARE).fill_null(False),
            is_cand=pl.col("cand").is_not_null(),  # the key is a candidate (else a text for phonenumbers)
        )
    )
    others = df.filter(~plain)["raw"].unique().to_list()
    if not others:
        return out.select("key", "early", "bare", "is_cand")
    cands = [_candidate(v) for v in others]
    slow = pl.DataFrame(
        {
            "raw": others,
            "key2": [v if c is None else None if isinstance(c, Rejection) else c
                     for v, c in zip(others, cands, strict=True)],
            "early2": [c.value if isinstance(c, Rejection) else None for c in cands],
            "cand2": [isinstance(c, str) for c in cands],
        },
        schema={"raw": pl.String, "key2": pl.String, "early2": pl.String, "cand2": pl.Boolean},
    )
    out = out.join(slow, on="raw", how="left", maintain_order="left")
    python = plain.not_().fill_null(False)
    return out.select(
        key=pl.when(python).then("key2").otherwise("key"), early=pl.when(python).then("early2").otherwise("early"),
        bare=pl.when(python).then(False).otherwise("bare"),
        is_cand=pl.when(python).then("cand2").otherwise("is_cand"),
    )


def _lookup(keys: pl.Series, is_cand: pl.Series, region: str) -> pl.DataFrame:
    """key, e164, reason, country, e2, c2, ext for distinct keys: candidates (`is_cand`, from `_clean`)
    through the replica, texts through phonenumbers."""
    resolved = _resolve_many(keys.filter(is_cand), region).rename({"cand": "key"})
    parsed = _parse_many(keys.filter(~is_cand), region).select(
        key="text", e164="pe164", reason="preason", country="pcountry", e2=pl.lit(None, pl.String),
        c2=pl.lit(None, pl.String), ext="pext",
    )
    return pl.concat([resolved.with_columns(ext=pl.lit(None, pl.String)), parsed])


def _text_column(values: pl.Series | Sequence[object]) -> tuple[pl.Series, pl.Series | None]:
    """Step 1 of the rule: (text or null, early reason or null)."""
    if isinstance(values, pl.Series):
        if values.dtype == pl.String:
            return values, None
        if values.dtype.is_integer():
            negative = (values < 0).fill_null(False)
            text = pl.select(pl.when(negative).then(None).otherwise(values.cast(pl.String))).to_series()
            early = pl.select(pl.when(negative).then(pl.lit(Rejection.NOT_A_NUMBER.value))).to_series()
            return text, early
        items: Sequence[object] = values.to_list()
    else:
        items = values
        try:
            return pl.Series(items, dtype=pl.String, strict=True), None
        except (TypeError, pl.exceptions.PolarsError):
            pass
    texts = [_to_text(v) for v in items]
    return (
        pl.Series([None if isinstance(t, Rejection) else t for t in texts], dtype=pl.String),
        pl.Series([t.value if isinstance(t, Rejection) else None for t in texts], dtype=pl.String),
    )


def _key_hash(key: pl.Expr) -> pl.Expr:
    return key.hash(7)


def meet(rows: pl.DataFrame, column: str, answer: Callable[[pl.DataFrame], pl.DataFrame]) -> pl.DataFrame:
    """`rows` with the columns of `answer(distinct)`, where `distinct` holds one row of `rows` per distinct
    non-null value of `column` and the answer one row per value (its `column` included): a left join on
    `column`, in row order. Rows meet their value's answer by a 64-bit hash of the value (an integer join,
    then a gather: several times cheaper than a join on text); the gathered value is compared with the
    row's own, and on any difference (two values of one hash) the rows are joined on the text instead."""
    value = pl.col(column)
    hashed = rows.select(_h=pl.when(value.is_not_null()).then(_key_hash(value)))
    first = hashed["_h"].is_first_distinct() & rows[column].is_not_null()
    found = answer(rows.filter(first))
    at = hashed.join(found.select(_h=_key_hash(value)).with_row_index("_at"), on="_h", how="left",
                     maintain_order="left")["_at"]
    answers = found.select(pl.all().gather(at))
    if (answers[column] == rows[column]).all():  # nulls (no value) are ignored
        return pl.concat([rows, answers.drop(column)], how="horizontal")
    found = answer(rows.filter(value.is_not_null()).unique(subset=column))
    return rows.join(found, on=column, how="left", maintain_order="left")


def normalize_column(values: pl.Series | Sequence[object], region: str) -> pl.DataFrame:
    """A column to E.164, row by row equal to `normalize`: columns e164, reason, country, extension (Utf8)."""
    region = _check_region(region)
    text, early = _text_column(values)
    out = meet(_clean(text), "key", lambda distinct: _lookup(distinct["key"], distinct["is_cand"], region))
    first_ok = pl.col("e164").is_not_null()
    second_ok = ~first_ok & pl.col("bare") & pl.col("e2").is_not_null()
    reasons = [pl.col("early"), pl.when(~second_ok).then("reason")]
    if early is not None:
        out = out.with_columns(early0=early)
        reasons.insert(0, pl.col("early0"))
    return out.select(
        e164=pl.when(first_ok).then("e164").when(second_ok).then("e2"),
        reason=pl.coalesce(reasons),
        country=pl.when(first_ok).then("country").when(second_ok).then("c2"),
        extension="ext",
    )


# --- line types -------------------------------------------------------------------------------------------
# phonenumbers' _number_type_helper, set-based: the distinct numbers of each region meet one match-only
# regex per type description over "LLL:nsn" (its possible lengths folded in), then the helper's order decides:
# premium rate, toll-free, shared cost, VoIP, personal, pager, UAN, voicemail; fixed line (or mobile, when
# the mobile test also holds or the region's patterns are the same); mobile; else unknown.

LINE_TYPES = {
    phonenumbers.PhoneNumberType.MOBILE: "mobile",
    phonenumbers.PhoneNumberType.FIXED_LINE: "fixed_line",
    phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed_line_or_mobile",
    phonenumbers.PhoneNumberType.VOIP: "voip",
    phonenumbers.PhoneNumberType.TOLL_FREE: "toll_free",
    phonenumbers.PhoneNumberType.PREMIUM_RATE: "premium_rate",
    phonenumbers.PhoneNumberType.SHARED_COST: "shared_cost",
    phonenumbers.PhoneNumberType.PERSONAL_NUMBER: "personal_number",
    phonenumbers.PhoneNumberType.PAGER: "pager",
    phonenumbers.PhoneNumberType.UAN: "uan",
    phonenumbers.PhoneNumberType.VOICEMAIL: "voicemail",
    phonenumbers.PhoneNumberType.UNKNOWN: "unknown",
}
SMS_CAPABLE = ("mobile", "fixed_line_or_mobile")  # the default set of "can receive an SMS"
_HELPER_ORDER = ("premium_rate", "toll_free", "shared_cost", "voip", "personal_number", "pager", "uan", "voicemail",
                 "fixed_line", "mobile")


@cache
def _type_plan(region: str) -> tuple[str, list[tuple[str, str]], bool, int | None] | None:
    """(calling code, [(type, pattern over "LLL:nsn")] in the helper's order, same mobile and fixed line, the
    key's significant prefix: the characters of "LLL:nsn" that decide the type, None for all)."""
    md = PhoneMetadata.metadata_for_region(region, None)
    if md is None or md.general_desc is None:
        return None
    tests = []
    for name in _HELPER_ORDER:
        desc = getattr(md, name)
        if desc is None or not desc.national_number_pattern:
            continue
        keyed = _keyed(desc.possible_length, desc.national_number_pattern)
        if keyed is not None:
            tests.append((name, f"^{keyed}$"))
    depths = [significant_prefix(pattern) for _, pattern in tests]
    depth = None if None in depths else max((d for d in depths if d is not None), default=0)
    return str(md.country_code), tests, bool(md.same_mobile_and_fixed_line_pattern), depth


def _python_type(e164: str) -> str:
    try:
        return LINE_TYPES.get(phonenumbers.number_type(phonenumbers.parse(e164, None)), "unknown")
    except NumberParseException:
        return "unknown"


def _chosen(names: set[str], same: bool) -> pl.Expr:
    """The helper's order over one boolean column per type test."""
    fixed = pl.col("fixed_line") if "fixed_line" in names else pl.lit(False)
    mobile = pl.col("mobile") if "mobile" in names else pl.lit(False)
    chosen: pl.Expr = pl.lit("unknown")
    chosen = pl.when(mobile & pl.lit(not same)).then(pl.lit("mobile")).otherwise(chosen)
    chosen = pl.when(fixed).then(pl.when(pl.lit(same) | mobile).then(pl.lit("fixed_line_or_mobile"))
                                 .otherwise(pl.lit("fixed_line"))).otherwise(chosen)
    for name in reversed([n for n in _HELPER_ORDER[:-2] if n in names]):
        chosen = pl.when(pl.col(name)).then(pl.lit(name)).otherwise(chosen)
    return chosen


def line_types(e164: pl.Series, country: pl.Series) -> pl.Series:
    """`phonenumbers.number_type` of valid E.164 numbers (as `normalize` returns them, with their country)
    as names of LINE_TYPES, computed set-based: the type patterns of a region run once per distinct prefix
    range, not once per row. A range is the region, the number's length and the national digits the
    region's patterns read (`numbers.prefixes`), held as one integer: rows meet their range on an integer
    join, and the region's facts reach each row by its index in an Enum (no string lookups per row)."""
    frame = pl.DataFrame({"e164": e164, "country": country}, schema={"e164": pl.String, "country": pl.String})
    regions = sorted(frame["country"].drop_nulls().unique().to_list())
    plans = [_type_plan(r) for r in regions]
    code = frame["country"].cast(pl.Enum(regions)).to_physical().cast(pl.Int64)

    def fact(values: list[int]) -> pl.Series:
        return pl.Series(values, dtype=pl.Int64).gather(code) if values else pl.Series([None] * frame.height,
                                                                                        dtype=pl.Int64)

    planned = fact([0 if p is None else 1 for p in plans]) == 1
    # past "LLL:", the national digits the region's type patterns read (its whole number when unbounded)
    digits = fact([0 if p is None else _MAX_NSN if p[3] is None else max(0, p[3] - 4) for p in plans])
    nsn = frame["e164"].str.slice(1 + fact([0 if p is None else len(p[0]) for p in plans]))
    head = nsn.str.slice(0, digits).cast(pl.UInt64, strict=False).fill_null(0)  # "" (no digit read) -> 0
    # region, length, digits: (index * 32 + length) * 10^digits + head, below 2^64 (digits <= 17, < 600 regions)
    scale = pl.select(pl.lit(10, pl.UInt64).pow(digits)).to_series()
    rows = pl.DataFrame({"range": (code.cast(pl.UInt64) * 32 + nsn.str.len_bytes().cast(pl.UInt64)) * scale + head})
    rows = rows.with_columns(range=pl.when(planned).then("range"))
    ranges = pl.DataFrame({"range": rows["range"], "nsn": nsn, "code": code}).filter(planned)
    ranges = ranges.group_by("range").agg(pl.col("nsn").first(), pl.col("code").first())
    parts = [pl.DataFrame(schema={"range": pl.UInt64, "line_type": pl.String})]
    for index, plan in enumerate(plans):
        if plan is None:
            continue
        _, tests, same, _ = plan
        key = _length_keyed("nsn")
        # one match-only test per type (the regex engine's fast path, unlike captures), then the helper's order
        hit = ranges.filter(pl.col("code") == index).with_columns(key=key).with_columns(
            pl.col("key").str.contains(p).alias(n) for n, p in tests)
        parts.append(hit.select("range", line_type=_chosen({n for n, _ in tests}, same)))
    typed = rows.join(pl.concat(parts), on="range", how="left", maintain_order="left")["line_type"]
    others = frame.filter(~planned.fill_null(False) & pl.col("e164").is_not_null())["e164"].unique().to_list()
    if not others:
        return typed
    # non-geographic numbers (+800, +882 ...): few, read by phonenumbers itself
    read = {v: _python_type(v) for v in others}
    return pl.select(pl.coalesce(typed, frame["e164"].replace_strict(read, default=None))).to_series().alias(
        "line_type")
