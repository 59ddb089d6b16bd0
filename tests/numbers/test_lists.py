"""List statuses: precedence of authorities and severities, events, bulk set, lookup, counts."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from phoneops.core.errors import NotFound, ValidationFailed
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import (
    Authority,
    ListState,
    Verdict,
    apply_verdicts,
    bulk_set_status,
    list_counts,
    lookup,
    precedence,
    set_status,
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
    assert [(e["verdict"], e["status"]) for e in view.history] == [("whitelist", "blacklist"), ("blacklist", "blacklist")]
    assert "a manual decision outranks auto" in view.history[0]["note"]


def test_automatic_verdicts_keep_the_most_severe(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [auto(UK, "whitelist")])
    apply_verdicts(session, SYSTEM, [auto(UK, "blacklist", os="Android", version="6")])
    apply_verdicts(session, SYSTEM, [auto(UK, "monitor")])
    view = lookup(session, SYSTEM, UK, "GB")
    assert view.status == "blacklist"
    assert view.history[0]["evidence"] == {"os": "Android", "version": "6"}
    # the later "monitor" changed nothing right after a tracker verdict: no event (re-syncs stay quiet)
    assert [(e["verdict"], e["status"]) for e in view.history] == [("blacklist", "blacklist"), ("whitelist", "whitelist")]


def test_hlr_tightens_but_never_loosens_the_tracker_and_manual_outranks_both(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [auto(UK, "blacklist")])
    apply_verdicts(session, SYSTEM, [Verdict(UK, "monitor", Authority.hlr, "HLR_MONITORED", "HLR")])
    assert lookup(session, SYSTEM, UK, "GB").status == "blacklist"
    apply_verdicts(session, SYSTEM, [auto(US, "whitelist")])
    apply_verdicts(session, SYSTEM, [Verdict(US, "monitor", Authority.hlr, "HLR_MONITORED", "HLR")])
    assert lookup(session, SYSTEM, US, "US").status == "monitor"
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


def _table() -> list[tuple[str, str, str]]:
    """(verdict row, current column, expected cell) of the table in docs/lists.md."""
    text = (Path(__file__).parents[2] / "docs" / "lists.md").read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.startswith("| ") and "→" not in line]
    header = next(line for line in text.splitlines() if line.startswith("| verdict"))
    columns = [c.strip() for c in header.strip("|").split("|")][1:]
    cells = []
    for line in lines:
        parts = [c.strip() for c in line.strip("|").split("|")]
        if len(parts) == len(columns) + 1 and parts[0] in ROWS:
            cells.extend((parts[0], column, cell) for column, cell in zip(columns, parts[1:], strict=True))
    return cells


ROWS = {
    "tracker whitelist": Verdict(UK, "whitelist", Authority.auto, "OS_VERSION", "VOLUUM"),
    "tracker monitor": Verdict(UK, "monitor", Authority.auto, "OS_VERSION", "VOLUUM"),
    "tracker blacklist": Verdict(UK, "blacklist", Authority.auto, "OS_VERSION", "VOLUUM"),
    "tracker, no opinion (conversion)": Verdict(UK, None, Authority.auto, "CONVERSION", "VOLUUM"),
    "HLR monitor (absent, no coverage)": Verdict(UK, "monitor", Authority.hlr, "HLR_MONITORED", "HLR"),
    "HLR blacklist (dead, risky network)": Verdict(UK, "blacklist", Authority.hlr, "HLR_FAILED", "HLR"),
    "HLR reachable (live)": Verdict(UK, None, Authority.hlr, "HLR_LIVE", "HLR"),
    "manual x (UI, API, CLI)": Verdict(UK, "blacklist", Authority.manual, "FRAUD", "UI"),
}


def _state(cell: str) -> ListState:
    if cell == "—":
        return ListState()
    if cell == "M:any":
        return ListState("whitelist", "manual", "OK", "UI")
    kind, status = cell.split(":")
    if kind == "T":
        return ListState(status, "auto", "OS_VERSION", "VOLUUM", auto_status=status, auto_reason="OS_VERSION",
                         auto_source="VOLUUM")
    return ListState(status, "hlr", "HLR_FAILED", "HLR", hlr_status=status, hlr_reason="HLR_FAILED")


def _expected(cell: str, verdict: Verdict) -> tuple[str | None, str | None]:
    cell = cell.split(" ¹")[0]
    if cell == "M (kept)":
        return "whitelist", "manual"
    if cell == "—":
        return None, None
    kind, status = cell.split(":")
    status = verdict.status if status == "x" else status
    return status, {"T": "auto", "H": "hlr", "M": "manual"}[kind]


@pytest.mark.parametrize(("row", "column", "cell"), _table())
def test_precedence_is_the_documented_table(row: str, column: str, cell: str) -> None:
    verdict = ROWS[row]
    after, note = precedence(_state(column), verdict)
    assert (after.status, after.authority) == _expected(cell, verdict)
    assert (note is not None) == (cell == "M (kept)" or (after.status != verdict.status and (
        verdict.status is not None or verdict.authority is Authority.hlr)))


def test_the_table_is_read_whole() -> None:
    assert len(_table()) == len(ROWS) * 7


def test_reevaluation_may_loosen_the_trackers_verdict_only(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [auto(UK, "blacklist"), auto(US, "blacklist")])
    apply_verdicts(session, SYSTEM, [Verdict(US, "monitor", Authority.hlr, "HLR_MONITORED", "HLR")])
    again = [Verdict(e, "whitelist", Authority.auto, "OS_VERSION", "OS_RULES", reevaluate=True) for e in (UK, US)]
    apply_verdicts(session, SYSTEM, again)
    assert lookup(session, SYSTEM, UK, "GB").status == "whitelist"
    assert lookup(session, SYSTEM, US, "US").status == "monitor"  # HLR's own verdict stays
    with pytest.raises(ValidationFailed, match="re-evaluation"):
        apply_verdicts(session, SYSTEM, [Verdict(UK, None, Authority.hlr, reevaluate=True)])


def test_new_numbers_in_bulk_get_the_country_of_each(session: Any) -> None:
    """From 500 new numbers in a batch their countries are read as a column: the same as country_of."""
    from phoneops.numbers.normalize import country_of
    from phoneops.numbers.vault import get_vault

    numbers = [f"+4479111{n:05d}" for n in range(300)] + [f"+1415555{n:04d}" for n in range(200)]
    numbers += [f"+33612{n:06d}" for n in range(100)] + ["+80012345678", "+16135550123"]
    apply_verdicts(session, SYSTEM, [auto(e164, "monitor") for e164 in numbers])
    stored = dict(session.execute(select(PhoneNumber.blind_index, PhoneNumber.country)).all())
    assert len(stored) == len(numbers)
    for e164, index in zip(numbers, get_vault().index_many(numbers), strict=True):
        assert stored[index] == country_of(e164), e164


@pytest.mark.parametrize("given", [1, 3])
def test_countries_must_match_the_verdicts_one_for_one(session: Any, given: int) -> None:
    """Countries handed in with the verdicts (an import's plan) are one per verdict: too few or too many is
    a caller's mistake, refused before anything is stored (a missing one must not become a null country)."""
    verdicts = [auto("+447911100001", "monitor"), auto("+447911100002", "monitor")]
    with pytest.raises(ValueError, match="countries than verdicts"):
        apply_verdicts(session, SYSTEM, verdicts, countries=["GB"] * given)
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 0
