"""IMEI validation with python-stdnum."""

from __future__ import annotations

import pytest

from phoneops.imei.validation import ImeiCheck, check_imei, validate_many

VALID = "356938035643809"


def test_valid_15_digits() -> None:
    assert check_imei(VALID) == ImeiCheck(VALID, VALID, None)
    assert check_imei(VALID).ok


def test_14_digits_get_their_check_digit() -> None:
    assert check_imei(VALID[:14]).imei == VALID


def test_spaces_and_dashes_are_stripped() -> None:
    check = check_imei(" 35-693803-564380-9 ")
    assert check.imei == VALID
    assert check.raw == " 35-693803-564380-9 "
    assert check_imei("35 693803 564380 9").imei == VALID


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("356938035643808", "invalid check digit"),
        ("35693803564380A", "digits only"),
        ("abc", "digits only"),
        ("35693803564", "got 11"),
        ("3569380356438090", "got 16"),  # an IMEISV is not an IMEI to order
        ("", "empty"),
        ("٣٥٦٩٣٨٠٣٥٦٤٣٨٠٩", "digits only"),  # non-ASCII digits
    ],
)
def test_invalid_values(raw: str, reason: str) -> None:
    check = check_imei(raw)
    assert check.imei is None and not check.ok
    assert check.error is not None and reason in check.error


def test_validate_many_keeps_order_and_reports_duplicates() -> None:
    other = "490154203237518"
    valid, invalid, duplicates = validate_many(
        [other, "", VALID, "  ", "123", VALID[:14], "35-693803-564380-9", "35693803564380X", other]
    )
    assert valid == [other, VALID]
    assert [(c.raw, c.error is not None) for c in invalid] == [("123", True), ("35693803564380X", True)]
    assert duplicates == [VALID, VALID, other]
