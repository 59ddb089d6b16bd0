"""IMEI validation with python-stdnum: 15 digits with a valid Luhn check digit, or 14 digits completed.

Some numbers pass the Luhn check yet cannot be a device, and are refused before anything is paid: every
digit the same (`000000000000000`, `888888888888888`...), and a TAC in the reserved `00` range (reporting
body identifier 00: test IMEIs, never allocated to a device).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from stdnum import imei as stdnum_imei
from stdnum import luhn

IMEI_LENGTH = 15


@dataclass(frozen=True)
class ImeiCheck:
    """One input value: `imei` is the normalised 15-digit IMEI when valid, else `error` says why."""

    raw: str
    imei: str | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.imei is not None


class BatchValidation(NamedTuple):
    """`valid`: unique IMEIs in input order; `invalid`: rejected rows; `duplicates`: one per repeat."""

    valid: list[str]
    invalid: list[ImeiCheck]
    duplicates: list[str]


def check_imei(raw: str) -> ImeiCheck:
    """Validate one IMEI. Spaces and dashes are ignored; a 14-digit IMEI gets its check digit computed."""
    number = stdnum_imei.compact(raw)
    if not number:
        return ImeiCheck(raw, None, "empty")
    if not number.isascii() or not number.isdigit():
        return ImeiCheck(raw, None, "must contain digits only")
    if len(number) == IMEI_LENGTH - 1:
        number += luhn.calc_check_digit(number)
    elif len(number) != IMEI_LENGTH:
        return ImeiCheck(raw, None, f"must have 15 digits (or 14 without check digit), got {len(number)}")
    elif not luhn.is_valid(number):
        return ImeiCheck(raw, None, "invalid check digit")
    if len(set(number[:14])) == 1:
        return ImeiCheck(raw, None, "impossible IMEI: every digit the same")
    if number.startswith("00"):
        return ImeiCheck(raw, None, f"impossible IMEI: TAC {number[:8]} is in the reserved 00 range (test IMEIs)")
    return ImeiCheck(raw, number, None)


def validate_many(lines: Iterable[str]) -> BatchValidation:
    """Validate many values (blank ones are skipped); duplicates compare normalised IMEIs."""
    valid: list[str] = []
    invalid: list[ImeiCheck] = []
    duplicates: list[str] = []
    seen: set[str] = set()
    for line in lines:
        if not line.strip():
            continue
        check = check_imei(line)
        if check.imei is None:
            invalid.append(check)
        elif check.imei in seen:
            duplicates.append(check.imei)
        else:
            seen.add(check.imei)
            valid.append(check.imei)
    return BatchValidation(valid, invalid, duplicates)
