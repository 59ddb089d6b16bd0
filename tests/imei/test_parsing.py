"""Result `code` parsing and status normalisation (shared/reference/hammer-original.md rules)."""

from __future__ import annotations

import pytest

from phoneops.imei.parsing import ParsedResult, clean_display, normalize_status, parse_code
from phoneops.simulators.gsm_fusion import result_code


def test_full_result_with_tags_and_entities() -> None:
    code = (
        "Model: iPhone 13 Pro<br>IMEI: 356938035643809<br/>IMEI2 Number: 356938035643817<BR />"
        'Carrier: AT&amp;T USA<br>SimLock: <font color="red">Locked</font><br><br>'
        "Find My iPhone: <b>ON</b>"
    )
    assert parse_code(code) == ParsedResult(
        columns={"model": "iPhone 13 Pro", "imei2": "356938035643817", "carrier": "AT&T USA", "simlock": "Locked",
                 "fmi": "ON", "brand": "Apple"},
        extra={"IMEI": "356938035643809"},
        display=(
            "Model: iPhone 13 Pro\nIMEI: 356938035643809\nIMEI2 Number: 356938035643817\n"
            "Carrier: AT&T USA\nSimLock: Locked\nFind My iPhone: ON"
        ),
    )


def test_escaped_breaks_and_alternative_labels() -> None:
    parsed = parse_code("Carrier: Demo&lt;br&gt;SIM Lock: Unlocked&lt;br&gt;FMI: OFF&lt;br&gt;IMEI 2: 35")
    assert (parsed.carrier, parsed.simlock, parsed.fmi, parsed.imei2) == ("Demo", "Unlocked", "OFF", "35")
    assert parsed.display == "Carrier: Demo\nSIM Lock: Unlocked\nFMI: OFF\nIMEI 2: 35"


def test_escaped_tags_are_stripped_too() -> None:
    assert clean_display("SimLock: &lt;span style='x'&gt;Locked&lt;/span&gt;") == "SimLock: Locked"


def test_blank_lines_collapse_and_text_is_trimmed() -> None:
    assert clean_display("  <br><br>  a  <br>\n<br>   <br>b  <br> ") == "a\nb"


@pytest.mark.parametrize("code", [None, "", "<br><br>"])
def test_empty_codes(code: str | None) -> None:
    assert parse_code(code) == ParsedResult({}, {}, "")


def test_missing_fields_are_none_and_imei_is_not_imei2() -> None:
    parsed = parse_code("IMEI: 356938035643809<br>Model:  <br>Purchase Carrier: X")
    assert parsed.imei2 is None
    assert parsed.model is None
    assert parsed.carrier == "X"  # no line starts with Carrier:, so a label inside a line counts


def test_every_simulator_result_parses() -> None:
    for serial in range(20):
        body = f"35693803{serial:06d}"
        parsed = parse_code(result_code(body + "0"))
        assert parsed.carrier and parsed.simlock and parsed.model and parsed.fmi and parsed.imei2


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Pending", "Pending"),
        ("in process", "In Process"),
        ("  In   Process ", "In Process"),
        ("COMPLETED", "Completed"),
        ("3", "Rejected"),
        ("4", "In Process"),
        ("Weird", "Weird"),
        (None, ""),
    ],
)
def test_normalize_status(raw: str | None, expected: str) -> None:
    assert normalize_status(raw) == expected
