"""List statuses: precedence of authorities and severities, events, bulk set, lookup, counts."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import (
    Authority,
    Verdict,
    apply_verdicts,
    bulk_set_status,
    list_counts,
    lookup,
    set_status,
    wins,
)
from phoneops.numbers.models import NumberEvent, PhoneNumber

UK = "+447911123456"
US = "+14155552671"


def auto(e164: str, status: str, **evidence: Any) -> Verdict:
    return Verdict(e164, status, Authority.auto, "OS_VERSION", "VOLUUM", evidence)


def test_manual_blacklisting_survives_automatic_whitelist(session: Any) -> None:
    set_status(session, SYSTEM, "07911 123456", "blacklist", "COMPLAINT", region="GB")
    result = apply_verdicts(session, SYSTEM, [auto(UK, "whitelist", os="iOS", version="17")])
    assert result.overruled == 1
    view = lookup(session, SYSTEM, UK, "GB")
    assert view.status == "blacklist"
    assert view.authority == "manual"
    assert [e["status"] for e in view.history] == ["blacklist"]


def test_automatic_verdicts_keep_the_most_severe(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [auto(UK, "whitelist")])
    apply_verdicts(session, SYSTEM, [auto(UK, "blacklist", os="Android", version="6")])
    apply_verdicts(session, SYSTEM, [auto(UK, "monitor")])
    view = lookup(session, SYSTEM, UK, "GB")
    assert view.status == "blacklist"
    assert view.history[0]["evidence"] == {"os": "Android", "version": "6"}
    assert [e["status"] for e in view.history] == ["blacklist", "whitelist"]


def test_hlr_outranks_auto_and_manual_outranks_hlr(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [auto(UK, "blacklist")])
    apply_verdicts(session, SYSTEM, [Verdict(UK, "monitor", Authority.hlr, "HLR_MONITORED", "HLR")])
    assert lookup(session, SYSTEM, UK, "GB").status == "monitor"
    set_status(session, SYSTEM, UK, "whitelist", "VERIFIED", region="GB")
    apply_verdicts(session, SYSTEM, [Verdict(UK, "blacklist", Authority.hlr, "HLR_FAILED", "HLR")])
    assert lookup(session, SYSTEM, UK, "GB").status == "whitelist"
    set_status(session, SYSTEM, UK, None, "LIFTED", region="GB")
    assert lookup(session, SYSTEM, UK, "GB").status is None


def test_formats_meet_on_e164(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [auto(UK, "monitor")])
    for raw in ("+44 7911 123456", "447911123456", "07911-123-456", "0044 7911 123456"):
        assert lookup(session, SYSTEM, raw, "GB").number == UK
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 1


def test_number_is_stored_encrypted_under_a_blind_index(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [auto(UK, "monitor")])
    row = session.scalar(select(PhoneNumber))
    assert UK.encode() not in row.sealed
    assert b"7911123456" not in row.sealed
    assert len(row.blind_index) == 32


def test_bulk_set_is_set_based_and_reports_rejects(session: Any) -> None:
    numbers = [f"+4479111{i:05d}" for i in range(12_000)] + ["junk", "", UK]
    result, rejected = bulk_set_status(session, SYSTEM, numbers, "blacklist", "LIST_BUY", region="GB")
    assert result.changed == 12_001
    assert result.new_numbers == 12_001
    assert {r for _, r in rejected} <= {"not_a_number", "empty", "too_short"}
    assert len(rejected) == 2
    assert list_counts(session)["blacklist"] == {"total": 12_001, "last_24h": 12_001, "last_7d": 12_001}
    again, _ = bulk_set_status(session, SYSTEM, numbers[:10], "blacklist", "LIST_BUY", region="GB")
    assert again.unchanged == 10
    assert session.scalar(select(func.count()).select_from(NumberEvent)) == 12_001


def test_bad_input_changes_nothing(session: Any) -> None:
    with pytest.raises(ValidationFailed, match="not a valid phone number"):
        set_status(session, SYSTEM, "12", "blacklist", "X", region="GB")
    with pytest.raises(ValidationFailed, match="reason"):
        set_status(session, SYSTEM, UK, "blacklist", " ", region="GB")
    with pytest.raises(ValidationFailed, match="status"):
        apply_verdicts(session, SYSTEM, [Verdict(UK, "greylist", Authority.manual)])
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 0
    with pytest.raises(NotFound):
        lookup(session, SYSTEM, US, "US")


@pytest.mark.parametrize(("current", "authority", "new", "new_authority", "expected"), [
    (None, None, "whitelist", Authority.auto, True),
    ("blacklist", "auto", "whitelist", Authority.auto, False),
    ("whitelist", "auto", "monitor", Authority.auto, True),
    ("blacklist", "manual", "blacklist", Authority.auto, False),
    ("blacklist", "hlr", "whitelist", Authority.manual, True),
    ("whitelist", "manual", "blacklist", Authority.hlr, False),
    ("monitor", "hlr", "blacklist", Authority.hlr, True),
])
def test_wins_table(current: str | None, authority: str | None, new: str, new_authority: Authority,
                    expected: bool) -> None:
    assert wins(current, authority, Verdict(UK, new, new_authority)) is expected
