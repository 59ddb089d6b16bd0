"""E.164 normalisation: explicit cases, and the column path agreeing with the per-row path everywhere."""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable

import phonenumbers
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from phonenumbers import PhoneMetadata, PhoneNumberFormat, PhoneNumberType

from phoneops.core.errors import ValidationFailed
from phoneops.numbers.normalize import (
    LINE_TYPES,
    Normalized,
    Rejection,
    country_of,
    line_types,
    normalize,
    normalize_column,
)
from phoneops.numbers.prefixes import significant_prefix

TYPES = [t for t in vars(PhoneNumberType).values() if isinstance(t, int) and t not in (PhoneNumberType.UNKNOWN,)]
REGIONS = sorted(phonenumbers.SUPPORTED_REGIONS)
# Default regions with unusual metadata: shared calling codes (+1, +7, +44, +47, +61, +262, +590, +599),
# national-prefix transform rules (AR, BR, MX), no trunk prefix (IT), long IDDs (US, AU).
HARD_REGIONS = ["GB", "US", "JE", "AR", "BR", "MX", "IT", "KZ", "AU", "AX", "SJ", "YT", "GP", "CW", "DE", "IN"]


def _examples() -> list[phonenumbers.PhoneNumber]:
    out = []
    for region in REGIONS:
        for kind in TYPES:
            number = phonenumbers.example_number_for_type(region, kind)
            if number is not None:
                out.append(number)
    return out


EXAMPLES = _examples()


def rows(frame: pl.DataFrame) -> list[Normalized]:
    return [
        Normalized(e164, Rejection(reason) if reason else None, country, extension)
        for e164, reason, country, extension in frame.select("e164", "reason", "country", "extension").iter_rows()
    ]


def _as_number(e164: str) -> phonenumbers.PhoneNumber:
    """The number an E.164 string names, digit for digit. `parse` of some E.164 strings strips a national prefix
    again (Belarus: +375 8101234567 parses as +375 101234567, another number), so build it from its digits."""
    code = phonenumbers.parse(e164).country_code
    nsn = e164[1 + len(str(code)):]
    zeros = len(nsn) - len(nsn.lstrip("0"))
    return phonenumbers.PhoneNumber(country_code=code, national_number=int(nsn), italian_leading_zero=zeros > 0 or None,
                                    number_of_leading_zeros=zeros if zeros > 1 else None)


def assert_agrees(values: list[object], region: str) -> None:
    """Column == per row, and the line type of every valid row == phonenumbers.number_type."""
    frame = normalize_column(values, region)
    bulk = rows(frame)
    single = [normalize(value, region) for value in values]
    mismatches = [(v, b, s) for v, b, s in zip(values, bulk, single, strict=True) if b != s]
    assert not mismatches, f"region {region}: {mismatches[:5]}"
    types = line_types(frame["e164"], frame["country"]).to_list()
    expected = [_reference_type(r.e164) if r.e164 else None for r in bulk]
    wrong = [(r.e164, t, e) for r, t, e in zip(bulk, types, expected, strict=True) if t != e]
    assert not wrong, f"line types, region {region}: {wrong[:5]}"


@functools.cache
def _reference_type(e164: str) -> str | None:
    """phonenumbers' line type of one E.164 number, worked out once per test process: the writings of one example
    number meet on the same E.164 in every region, so the all-regions test asked phonenumbers the same question
    thousands of times (about a quarter of its time). Only the reference side is cached; our code runs every time."""
    return LINE_TYPES[phonenumbers.number_type(_as_number(e164))]


# --- explicit cases -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    ["+447400123456", "447400123456", "07400 123456", "0044 7400 123456", "+44 (0) 7400 123456",
     "tel:+44-7400-123456", " 07400.123.456 ", "(07400) 123-456", 447400123456, "\ufeff07400 123456"],
)
def test_writings_of_one_number_meet_on_e164(raw: object) -> None:
    assert normalize(raw, "GB") == Normalized("+447400123456", None, "GB")


@pytest.mark.parametrize("raw", ["+447400123456", "447400123456", "0044 7400 123456", 447400123456])
def test_international_writings_meet_whatever_the_default_region(raw: object) -> None:
    assert normalize(raw, "US").e164 == "+447400123456"


def test_the_drama_range_is_rejected_the_same_way_in_every_writing() -> None:
    # 07700 900xxx is Ofcom's range reserved for fiction; phonenumbers (9.x) says not valid. All four
    # writings still meet, on the same rejection.
    results = {normalize(raw, "GB") for raw in ("+447700900123", "447700900123", "07700 900123", "0044 7700 900123")}
    assert results == {Normalized(None, Rejection.INVALID_FOR_REGION, None)}


def test_the_column_drops_exactly_the_separators_a_single_value_drops() -> None:
    """The column removes separators one character at a time (`_SEPARATOR_CHARS`), a single value with the
    class `_SEP_RE`: over every code point, the two name the same characters, and each of them between the
    digits of a number reads the same either way."""
    from phoneops.numbers.normalize import _SEP_RE, _SEPARATOR_CHARS

    matched = {chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF and _SEP_RE.fullmatch(chr(c))}
    assert matched == set(_SEPARATOR_CHARS) and len(_SEPARATOR_CHARS) == len(matched)
    assert_agrees([f"07400{sep}123{sep}{sep}456" for sep in sorted(matched)], "GB")


@pytest.mark.parametrize("region", ["GB", "US", "DE"])
def test_tel_uris_in_every_case_read_as_single_values_do(region: str) -> None:
    values = [f"{tel}{number}{tail}" for tel in ("tel:", "TEL:", "Tel:", "tEl:", "tel;", "tel", "xtel:", " tel:")
              for number in ("+447400123456", "+1-202-555-0143", "07400 123456", "+4930123456", "")
              for tail in ("", ";ext=7", ";phone-context=example.com", ";")]
    assert_agrees(values, region)


def test_bare_digits_read_nationally_first_then_international() -> None:
    assert normalize("(212) 555-0101", "US").e164 == "+12125550101"
    assert normalize("12125550101", "GB").e164 == "+12125550101"  # tracker id of a US number, GB default
    assert normalize("02079460000", "GB").e164 == "+442079460000"  # national wins when both could apply


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, Rejection.EMPTY),
        ("", Rejection.EMPTY),
        ("   ", Rejection.EMPTY),
        ("--", Rejection.EMPTY),
        (float("nan"), Rejection.EMPTY),
        ("abc", Rejection.NOT_A_NUMBER),
        ("{{phoneNumber}}", Rejection.NOT_A_NUMBER),
        ("1-800-FLOWERS", Rejection.NOT_A_NUMBER),
        ("44+7400123456", Rejection.NOT_A_NUMBER),
        ("tel:", Rejection.NOT_A_NUMBER),
        ("\uff10\uff17\uff14\uff10\uff10", Rejection.TOO_SHORT),  # full-width digits read as phonenumbers does
        ("(670) 234-5251 ext. 5", Rejection.INVALID_FOR_REGION),  # a formatted national number is never re-read with a +
        ("07400 123456 (home)", Rejection.NOT_A_NUMBER),  # letters that phonenumbers would turn into digits
        (-447400123456, Rejection.NOT_A_NUMBER),
        (True, Rejection.NOT_A_NUMBER),
        (b"07400123456", Rejection.NOT_A_NUMBER),
        ("12", Rejection.TOO_SHORT),
        ("+4412", Rejection.TOO_SHORT),
        ("+44 12345678", Rejection.TOO_SHORT),  # a local number without its area code
        ("+44" + "1" * 20, Rejection.TOO_LONG),
        ("1" * 300, Rejection.TOO_LONG),
        ("+415555555555", Rejection.INVALID_LENGTH),
        ("+999 123456789", Rejection.INVALID_COUNTRY_CODE),
        ("+15555550100", Rejection.INVALID_FOR_REGION),
    ],
)
def test_rejection_reasons(raw: object, reason: Rejection) -> None:
    result = normalize(raw, "GB")
    assert result == Normalized(None, reason, None)
    assert rows(normalize_column([raw], "GB")) == [result]


# --- never a guess (issue 13 item 5) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "region"),
    [("(670) 234-5251", "MG"), ("670 234 5251", "MG"), ("670-234-5251", "MG"), ("(44) 7400 123456", "US"),
     ("44 7400 123456", "US"), ("1 212 555 0101 x5", "GB")],
)
def test_a_formatted_national_number_is_never_read_as_another_country(raw: str, region: str) -> None:
    result = normalize(raw, region)
    assert result.e164 is None and result.reason is not None
    assert rows(normalize_column([raw], region)) == [result]
    assert not phonenumbers.is_valid_number(phonenumbers.parse(raw, region))  # what phonenumbers says too


@pytest.mark.parametrize(
    ("raw", "e164", "extension"),
    [
        ("+44 7400 123456 ext 12", "+447400123456", "12"),
        ("07400 123456 x123", "+447400123456", "123"),
        ("07400123456 ext. 5", "+447400123456", "5"),
        ("tel:+44-7400-123456;ext=12", "+447400123456", "12"),
        ("TEL:+447400123456;ext=7", "+447400123456", "7"),
        ("+44 7400 123456;ext=99", "+447400123456", "99"),
        ("07400 123456 #12", "+447400123456", "12"),
        ("Mobile: 07400 123456", "+447400123456", None),
        ("tel:+44-7400-123456;phone-context=example.com", "+447400123456", None),
        ("\uff10\uff17\uff14\uff10\uff10\uff11\uff12\uff13\uff14\uff15\uff16", "+447400123456", None),
    ],
)
def test_extensions_and_text_around_are_read_as_phonenumbers_reads_them(raw: str, e164: str,
                                                                        extension: str | None) -> None:
    result = normalize(raw, "GB")
    assert result == Normalized(e164, None, "GB", extension)
    assert rows(normalize_column(["junk", raw, None], "GB"))[1] == result
    parsed = phonenumbers.parse(raw, "GB")
    assert phonenumbers.format_number(parsed, PhoneNumberFormat.E164) == e164
    assert (parsed.extension or None) == extension


def test_only_a_value_written_as_digits_alone_is_read_again_with_a_plus() -> None:
    # A spreadsheet turns +447400123456 into 447400123456: nothing written says "national" there.
    assert normalize("447400123456", "MG").e164 == "+447400123456"
    assert normalize(" 447400123456 ", "MG").e164 == "+447400123456"
    assert normalize(447400123456, "MG").e164 == "+447400123456"
    assert normalize("447400123456\n", "MG").e164 is None  # a line break is not "digits alone"
    assert_agrees(["447400123456", " 447400123456 ", 447400123456, "447400123456\n", "(44) 7400123456"], "MG")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(st.one_of(st.from_regex(r"[ (]?\+?[0-9]{2,4}[) -]?[0-9]{3}[ .-]?[0-9]{3,5}", fullmatch=True),
                                 st.from_regex(r"[0-9]{6,13}( ?(x|ext\.?|#|;ext=) ?[0-9]{1,4})?", fullmatch=True)),
                       min_size=1, max_size=20),
       region=st.sampled_from(REGIONS))
def test_every_answer_is_valid_and_of_the_written_country(values: list[str], region: str) -> None:
    """Invariant: whatever the writing, a result is a number phonenumbers calls valid; unless the value is
    digits alone, it is exactly what phonenumbers.parse makes of the text with the default region."""
    for value, got in zip(values, rows(normalize_column(values, region)), strict=True):
        assert got == normalize(value, region)
        if got.e164 is None:
            continue
        number = phonenumbers.parse(got.e164, None)
        assert phonenumbers.is_valid_number(number)
        if not value.strip().isdigit():
            written = phonenumbers.parse(value, region)
            assert phonenumbers.format_number(written, PhoneNumberFormat.E164) == got.e164
            assert (written.extension or None) == got.extension


def test_country_comes_from_phonenumbers() -> None:
    assert normalize("+1 416 555 0123", "GB").country == "CA"
    assert normalize("+44 1481 256789", "GB").country == "GG"
    assert normalize("+800 1234 5678", "GB") == Normalized("+80012345678", None, None)  # non-geographic
    assert country_of("+447400123456") == "GB"
    assert country_of("+12125550101") == "US"
    assert country_of("+447700900123") is None
    assert country_of("447400123456") is None


def test_unknown_region_is_refused() -> None:
    with pytest.raises(ValidationFailed):
        normalize("07400123456", "XX")
    with pytest.raises(ValidationFailed):
        normalize_column(["07400123456"], "uk")
    assert normalize("07400123456", "gb").e164 == "+447400123456"


def test_column_shapes() -> None:
    values = ["+447400123456", None, "junk", "07400 123456", "", "+12125550101"]
    frame = normalize_column(values, "GB")
    assert frame.columns == ["e164", "reason", "country", "extension"]
    assert frame.schema == {"e164": pl.String, "reason": pl.String, "country": pl.String, "extension": pl.String}
    assert frame.height == len(values)
    assert frame["e164"].to_list() == ["+447400123456", None, None, "+447400123456", None, "+12125550101"]
    assert frame["reason"].to_list() == [None, "empty", "not_a_number", None, "empty", None]
    assert normalize_column(pl.Series(values), "GB").equals(frame)
    assert normalize_column([], "GB").height == 0
    ints = normalize_column(pl.Series([447400123456, None, -1]), "GB")
    assert ints["e164"].to_list() == ["+447400123456", None, None]
    assert ints["reason"].to_list() == [None, "empty", "not_a_number"]


def test_mixed_python_objects_agree() -> None:
    assert_agrees([447400123456, 447400123456.0, None, True, 1.5, "07400123456", b"x", float("inf")], "GB")


def test_metadata_patterns_are_safe_for_the_polars_rewrite() -> None:
    # normalize._rx turns \d into [0-9]: metadata must use no other escape, and none inside a class.
    for region in [*REGIONS, "001"]:
        codes = [region] if region != "001" else []
        metas = [PhoneMetadata.metadata_for_region(r) for r in codes]
        for md in filter(None, metas):
            descs = [getattr(md, name) for name in ("general_desc", "fixed_line", "mobile", "toll_free",
                                                    "premium_rate", "shared_cost", "personal_number", "voip",
                                                    "pager", "uan", "voicemail")]
            patterns = [d.national_number_pattern for d in descs if d is not None and d.national_number_pattern]
            extra = (md.national_prefix_for_parsing, md.international_prefix, md.leading_digits)
            for pattern in patterns + [p for p in extra if p]:
                assert set(re.findall(r"\\.", pattern)) <= {"\\d"}, (region, pattern)
                assert not any("\\" in cls for cls in re.findall(r"\[[^\]]*\]", pattern)), (region, pattern)


# --- agreement: the column path equals the per-row path ----------------------------------------------------

Writer = Callable[[str, str, str], str]
WRITERS: list[Writer] = [
    lambda cc, nsn, nat: f"+{cc}{nsn}",
    lambda cc, nsn, nat: f"+{cc} {nsn[:3]} {nsn[3:]}",
    lambda cc, nsn, nat: f"00{cc} {nsn[:4]} {nsn[4:]}",
    lambda cc, nsn, nat: f"{cc}{nsn}",
    lambda cc, nsn, nat: nat,
    lambda cc, nsn, nat: nsn,
    lambda cc, nsn, nat: f"0{nsn}",
    lambda cc, nsn, nat: f"+{cc} (0) {nsn}",
    lambda cc, nsn, nat: f"{cc}0{nsn}",
    lambda cc, nsn, nat: f"({nsn[:3]}) {nsn[3:6]}-{nsn[6:]}",
    lambda cc, nsn, nat: f"tel:+{cc}-{nsn[:3]}-{nsn[3:]}",
    lambda cc, nsn, nat: f"TEL:+{cc}{nsn};ext=12",
    lambda cc, nsn, nat: f"  {nat.replace(' ', '.')}  ",
    lambda cc, nsn, nat: f"{nsn[:2]}-{nsn[2:]}",
    lambda cc, nsn, nat: f"011{cc}{nsn}",
    lambda cc, nsn, nat: f"8{nsn}",
    lambda cc, nsn, nat: f"+{cc}{nsn}\u00a0",
]


@st.composite
def written_numbers(draw: st.DrawFn) -> object:
    kind = draw(st.sampled_from(["number", "number", "number", "digits", "junk", "empty"]))
    if kind == "digits":
        return draw(st.from_regex(r"\+?[0-9]{1,18}", fullmatch=True))
    if kind == "junk":
        return draw(st.one_of(st.text(max_size=12), st.sampled_from(["{{phoneNumber}}", "n/a", "+", "tel:"])))
    if kind == "empty":
        return draw(st.sampled_from([None, "", " ", "()", "\t"]))
    base = draw(st.sampled_from(EXAMPLES))
    nsn = list(phonenumbers.national_significant_number(base))
    for _ in range(draw(st.integers(0, 3))):  # random national digits
        nsn[draw(st.integers(0, len(nsn) - 1))] = draw(st.sampled_from("0123456789"))
    if draw(st.booleans()) and len(nsn) > 3:
        del nsn[draw(st.integers(0, len(nsn) - 1))]
    digits = "".join(nsn)
    number = phonenumbers.PhoneNumber(country_code=base.country_code, national_number=int(digits or "0"))
    national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
    text = draw(st.sampled_from(WRITERS))(str(base.country_code), digits, national)
    if draw(st.integers(0, 9)) == 0:
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from("x.-/ ()+a#")) + text[at:]
    return text


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.lists(written_numbers(), min_size=1, max_size=60), region=st.sampled_from(REGIONS))
def test_column_agrees_with_single_values(values: list[object], region: str) -> None:
    assert_agrees(values, region)


def _every_writing() -> list[object]:
    out: list[object] = []
    for number in EXAMPLES:
        nsn = phonenumbers.national_significant_number(number)
        national = phonenumbers.format_number(number, PhoneNumberFormat.NATIONAL)
        out += [w(str(number.country_code), nsn, national) for w in WRITERS]
    return out


EVERY_WRITING = _every_writing()


def test_line_types_of_every_example_number_of_every_region_agree_with_phonenumbers() -> None:
    e164s = [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in EXAMPLES]
    nongeo = [phonenumbers.example_number_for_non_geo_entity(cc) for cc in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS]
    e164s += [phonenumbers.format_number(n, PhoneNumberFormat.E164) for n in nongeo if n is not None]
    assert_agrees(e164s, "GB")
    found = set(line_types(normalize_column(e164s, "GB")["e164"], normalize_column(e164s, "GB")["country"]))
    assert {"mobile", "fixed_line", "toll_free", "premium_rate", "voip", "uan", "pager"} <= found


def test_rows_meet_their_answers_by_the_key_text_when_two_keys_share_a_hash(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.numbers import normalize as module

    monkeypatch.setattr(module, "_key_hash", lambda key: key.str.len_bytes().cast(pl.UInt64))  # collisions galore
    assert_agrees(EVERY_WRITING[:3000], "GB")


@pytest.mark.parametrize("region", HARD_REGIONS)
def test_every_example_number_in_every_writing_agrees(region: str) -> None:
    assert_agrees(EVERY_WRITING, region)


@pytest.mark.parametrize("small_part", [0, 10**9], ids=["split", "one-pass"])
@pytest.mark.parametrize("region", ["GB", "BR", "US"])
def test_both_ways_of_stripping_the_national_prefix_agree(region: str, small_part: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """A region's rows are stripped in one pass when few (`_SMALL_PART`), split by whether the prefix starts
    them when many (a big file): each way alone, every writing of every example number reads as it does
    one by one."""
    from phoneops.numbers import normalize as module

    monkeypatch.setattr(module, "_SMALL_PART", small_part)
    assert_agrees(EVERY_WRITING[::7], region)


# Every region as the default region: 245 regions x 23,000 writings, ~9 CPU-minutes (each column call applies
# the patterns of every country it meets). CI runs every fourth region (a fixed share, so a failure
# reproduces); PHONEOPS_SLOW_TESTS=1 runs all of them (docs/DEVELOPING.md).
CI_REGIONS = REGIONS if os.environ.get("PHONEOPS_SLOW_TESTS") else REGIONS[::4]


@pytest.mark.slow
@pytest.mark.parametrize("region", CI_REGIONS)
def test_every_example_number_in_every_writing_agrees_for_every_region(region: str) -> None:
    assert_agrees(EVERY_WRITING, region)


# --- line types per prefix range -----------------------------------------------------------------------------


def test_significant_prefix_reads_up_to_the_last_restrictive_digit() -> None:
    assert significant_prefix("^(?:010|011):(?:7(?:[1-3][0-9][0-9]|4[0-5])[0-9]{6})$") == 7  # "010:7" + 2
    assert significant_prefix("^(?:[2-9][0-9]){1,3}$") == 5  # the third copy can start at 4
    assert significant_prefix("^[0-9]{2,3}5$") == 4  # the 5 may sit at 2 or 3
    assert significant_prefix("^[0-9]+5$") is None  # after an unbounded repeat: read everything
    assert significant_prefix("^[0-9]{6}$") == 0  # the length alone decides
    assert significant_prefix("^(?=1)1$") is None  # a look-ahead: not walked, read everything


def test_line_types_agree_with_phonenumbers_when_many_numbers_share_a_prefix_range() -> None:
    """Numbers of one prefix range get the type of whichever of them is tested: every example number of every
    region with its last digits redrawn (a few hundred variants per range), typed in one call, each checked."""
    import random

    draw = random.Random(16)
    variants = []
    for number in EXAMPLES:
        e164 = phonenumbers.format_number(number, PhoneNumberFormat.E164)
        for tail in (1, 2, 3, 4, 5):
            variants += [e164[:-tail] + "".join(draw.choice("0123456789") for _ in range(tail)) for _ in range(3)]
    frame = normalize_column(list(dict.fromkeys(variants)), "GB").filter(pl.col("e164").is_not_null())
    assert frame.height > 3 * len(EXAMPLES)
    types = line_types(frame["e164"], frame["country"]).to_list()
    expected = [LINE_TYPES[phonenumbers.number_type(_as_number(e164))] for e164 in frame["e164"]]
    wrong = [(e, t, x) for e, t, x in zip(frame["e164"], types, expected, strict=True) if t != x]
    assert not wrong, wrong[:5]
    assert len(set(types)) >= 8


@pytest.mark.parametrize("region", HARD_REGIONS[:6])
def test_a_numbers_country_is_the_country_of_its_e164(region: str) -> None:
    """The country `normalize` gives with a number is `country_of` its E.164 (what a new number is stored
    with): an import hands the plan's countries to the lists instead of reading them again."""
    frame = normalize_column(EVERY_WRITING, region).filter(pl.col("e164").is_not_null())
    assert frame.height > 10_000
    again = {e164: country_of(e164) for e164 in frame["e164"].unique().to_list()}
    assert [again[e] for e in frame["e164"].to_list()] == frame["country"].to_list()
