"""Cleaning through the service functions and the job handler: every outcome, order, columns, formats."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest
from cleaning_kit import DE_1, FR_1, GB_1, GB_2, GB_3, SAMPLE, US_1, csv_bytes, read_csv, run_clean, stored_text, upload


def _outcomes(run: Any) -> dict[str, int]:
    return dict(run.stats["outcomes"])


def test_every_outcome_in_input_order_with_other_columns_kept(lists: None) -> None:
    file_id = upload(csv_bytes(SAMPLE))
    run = run_clean(file_id, filters=["monitor", "used"])
    assert run.status == "succeeded", run.error
    assert _outcomes(run) == {"kept": 3, "invalid": 1, "duplicate": 1, "blacklisted": 1, "monitored": 1,
                              "already_used": 1}
    clean = read_csv(stored_text(run.output_file_id))
    assert clean == [["name", "phone", "city"], ["ann", GB_1, "London"], ["bob", US_1, "San Francisco"],
                     ["hal", FR_1, "Lyon"]]
    rejected = read_csv(stored_text(run.rejected_file_id))
    assert rejected[0] == ["name", "phone", "city", "reason", "detail"]
    assert rejected[1:] == [
        ["cat", "not a number", "Paris", "invalid", "not_a_number"],
        ["dan", "'+44 7400 123456", "'=HYPERLINK(\"x\")", "duplicate", ""],  # formulas neutralised
        ["eve", "0049 151 23456789", "Berlin", "blacklisted", ""],
        ["fay", "07825-123-456", "Leeds", "monitored", ""],
        ["gus", "447956123456", "York", "already_used", ""],
    ]
    stats = run.stats
    assert stats["rows"] == 8 and stats["kept"] == 3
    assert stats["countries"]["GB"] == {"kept": 1, "duplicate": 1, "monitored": 1, "already_used": 1}
    assert stats["countries"]["US"] == {"kept": 1}
    assert stats["countries"]["DE"] == {"blacklisted": 1}
    assert stats["invalid_reasons"] == {"not_a_number": 1}
    assert run.options["filters"] == ["optout", "blacklist", "monitor", "used"]
    assert run.options["phone_column_name"] == "phone"


def test_only_the_blacklist_by_default_when_no_filter_is_asked(lists: None) -> None:
    file_id = upload(csv_bytes(SAMPLE))
    run = run_clean(file_id, filters=[])
    assert run.options["filters"] == ["optout", "blacklist"]  # both always apply
    assert _outcomes(run) == {"kept": 5, "invalid": 1, "duplicate": 1, "blacklisted": 1}


def test_survivors_go_to_the_main_database_and_are_removed_next_time(db_url: str) -> None:
    from cleaning_kit import seed_lists

    seed_lists()
    first = run_clean(upload(csv_bytes(SAMPLE)), filters=["used"], add_to_used=True)
    assert first.stats["added_to_used"] == 5  # ann, bob, fay (monitor filter off), gus, hal
    second = run_clean(upload(csv_bytes(SAMPLE), name="again.csv"), filters=["used"], add_to_used=True)
    assert _outcomes(second)["already_used"] == 5
    assert second.stats["added_to_used"] == 0


def test_header_is_detected_and_phone_column_found_anywhere(db_url: str) -> None:
    rows = [["id", "city", "mobile"], ["1", "x", "07400123456"], ["2", "y", US_1], ["3", "z", "07825 123456"]]
    no_header = rows[1:]
    from phoneops.cleaning.upload import get_cleaning_file
    from phoneops.core.db import session_scope

    with_id, without_id = upload(csv_bytes(rows)), upload(csv_bytes(no_header), name="nohead.csv")
    with session_scope() as session:
        a, b = get_cleaning_file(session, with_id), get_cleaning_file(session, without_id)
        assert (a.has_header, a.columns, a.phone_column) == (True, ["id", "city", "mobile"], 2)
        assert (b.has_header, b.phone_column) == (False, 2)
    run = run_clean(without_id)
    assert read_csv(stored_text(run.output_file_id)) == [["1", "x", GB_1], ["2", "y", US_1], ["3", "z", GB_2]]


@pytest.mark.parametrize(
    ("encoding", "delimiter", "bom"),
    [("utf-8", ";", b"\xef\xbb\xbf"), ("utf-16", "\t", b""), ("latin-1", "|", b""), ("utf-8", ",", b"")],
)
def test_encodings_and_delimiters(db_url: str, encoding: str, delimiter: str, bom: bytes) -> None:
    rows = [["nom", "téléphone"], ["Zoë", "07400 123456"], ["Ærø", "+33 6 12 34 56 78"]]
    file_id = upload(bom + csv_bytes(rows, delimiter, encoding), name="accents.csv")
    run = run_clean(file_id)
    assert run.status == "succeeded", run.error
    assert read_csv(stored_text(run.output_file_id), delimiter) == [["nom", "téléphone"], ["Zoë", GB_1],
                                                                    ["Ærø", FR_1]]


def test_xlsx_upload(db_url: str) -> None:
    import io

    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in [["name", "phone"], ["a", "07400 123456"], ["b", 14155552671], ["c", "nope"]]:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    run = run_clean(upload(buffer.getvalue(), name="book.xlsx"))
    assert run.status == "succeeded", run.error
    assert read_csv(stored_text(run.output_file_id)) == [["name", "phone"], ["a", GB_1], ["b", US_1]]
    assert _outcomes(run) == {"kept": 2, "invalid": 1}


@pytest.mark.parametrize("mode", ["scan", "probe"])
def test_scan_and_probe_matching_agree(lists: None, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
    from phoneops.cleaning import filters

    monkeypatch.setattr(filters, "PROBE_ALWAYS", 0)
    monkeypatch.setattr(filters, "SCAN_FACTOR", 10**9 if mode == "scan" else 0)
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM
    from phoneops.numbers.optouts import add

    with session_scope() as session:  # an opt-out not in the file, so every source has rows to match
        add(session, SYSTEM, "+919812345678", "manual", region="GB")
    run = run_clean(upload(csv_bytes(SAMPLE)), filters=["monitor", "used"])
    assert set(run.stats["match_modes"].values()) == {mode}
    assert _outcomes(run) == {"kept": 3, "invalid": 1, "duplicate": 1, "blacklisted": 1, "monitored": 1,
                              "already_used": 1}


def _pooled_and_local(rows: list[list[str]] | bytes, monkeypatch: pytest.MonkeyPatch,
                      **options: Any) -> tuple[Any, Any]:
    from phoneops.cleaning import pipeline, reading

    data = rows if isinstance(rows, bytes) else csv_bytes(rows)
    monkeypatch.setattr(reading, "BATCH_ROWS", 100)
    monkeypatch.setattr(pipeline, "RANGE_BYTES", 2000)  # many byte ranges, cut wherever a line ends
    monkeypatch.setattr(pipeline, "POOL_MIN_ROWS", 0)
    pooled = run_clean(upload(data, name="pooled.csv", **options), line_type=True)
    monkeypatch.setattr(pipeline, "POOL_MIN_ROWS", 10**12)
    local = run_clean(upload(data, name="local.csv", **options), line_type=True)
    assert local.stats["ranges"] == 0
    assert pooled.stats["outcomes"] == local.stats["outcomes"]
    assert stored_text(pooled.output_file_id) == stored_text(local.output_file_id)
    assert stored_text(pooled.rejected_file_id) == stored_text(local.rejected_file_id)
    return pooled, local


def test_worker_processes_give_the_same_result(lists: None, monkeypatch: pytest.MonkeyPatch) -> None:
    rows = [["name", "phone", "note"]] + [
        [f"n{i}", number, '=HYPERLINK("http://x")' if i % 7 == 0 else "a, b"] for i in range(300)
        for number in ("07400 123456", DE_1, f"+1415555{i % 10000:04d}", "x", f"07400 9{i:05d} x7")]
    pooled, _ = _pooled_and_local(rows, monkeypatch)
    assert pooled.stats["ranges"] > 10  # read, prepared and written by the workers range by range
    assert pooled.stats["outcomes"]["duplicate"] > 0
    assert "extension" in stored_text(pooled.output_file_id).splitlines()[0]


def test_worker_processes_read_a_bom_crlf_semicolon_file_without_header_the_same(
        lists: None, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [f"n{i};{number};x" for i in range(400) for number in (f"07400 9{i:05d}", DE_1, "junk")]
    lines[500:500] = ["", ";;", " ; ;", ""]  # blank lines and rows of empty cells
    data = "\ufeff".encode() + "\r\n".join(lines).encode() + b"\r\n"
    pooled, local = _pooled_and_local(data, monkeypatch, header=False)
    assert pooled.stats["ranges"] > 5
    assert pooled.stats["rows"] == local.stats["rows"] == 1200  # blank lines and rows of blank cells are no rows
    assert stored_text(pooled.output_file_id).startswith("n0;+447400900000;")  # the BOM is not in the first cell


def test_a_file_with_line_breaks_in_cells_is_read_in_one_stream(lists: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A quoted cell holding a line break may straddle a range's border: such a file is read as one stream
    (still prepared by the workers), and the result is the same as without them."""
    rows = [["name", "phone", "note"]] + [[f"n{i}", f"+1415555{i % 10000:04d}", "line one\nline two" if i % 50 == 0
                                           else "plain"] for i in range(1200)]
    pooled, _ = _pooled_and_local(rows, monkeypatch)
    assert pooled.stats["ranges"] == 0
    assert pooled.stats["rows"] == 1200


def test_a_registered_filter_is_one_call(lists: None) -> None:
    """The registration point the Voluum `converted` filter will use."""
    from phoneops.cleaning import filters
    from phoneops.cleaning.models import UsedNumber

    flt = filters.register(filters.Filter("converted", "Converted numbers", "converted",
                                          filters.KeyedSource("conv", UsedNumber.__table__.c.blind_index), order=30))
    try:
        run = run_clean(upload(csv_bytes(SAMPLE)), filters=["monitor", "converted", "used"])
        assert _outcomes(run)["converted"] == 1  # GB_3 is found by "converted" (order 30) before "used" (40)
        assert "already_used" not in _outcomes(run)
    finally:
        filters._filters.pop(flt.name)


def test_neutralise_matches_csvio() -> None:
    from phoneops.cleaning.ranges import neutralised
    from phoneops.core.csvio import neutralise

    cells = ["=1+2", "+447400123456", "+44 7400", "-12.5", "-1.", "-.5", "-", "-x", "@SUM(A1)", "\tx", "\rx",
             "plain", "", "+", "=", "'=", " =1", "-1-2"]
    out = neutralised(pl.DataFrame({"c": cells}))["c"].to_list()
    assert out == [neutralise(c) for c in cells]


def test_duplicates_across_batches_keep_the_first(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.cleaning import reading

    monkeypatch.setattr(reading, "BATCH_ROWS", 2)
    rows = [["phone", "n"], [GB_1, "1"], [US_1, "2"], ["x", "3"], ["07400123456", "4"], [US_1, "5"], [DE_1, "6"]]
    run = run_clean(upload(csv_bytes(rows)))
    assert read_csv(stored_text(run.output_file_id)) == [["phone", "n"], [GB_1, "1"], [US_1, "2"], [DE_1, "6"]]
    assert [r[1] + ":" + r[2] for r in read_csv(stored_text(run.rejected_file_id))[1:]] == [
        "3:invalid", "4:duplicate", "5:duplicate"]


def test_used_number_helpers(db_url: str) -> None:
    from cleaning_kit import seed_lists

    from phoneops.cleaning.used import used_count
    from phoneops.core.db import session_scope

    seed_lists(blacklist=(), monitor=(), used=(GB_1, GB_3, GB_1))
    with session_scope() as session:
        assert used_count(session) == 2


def test_opted_out_numbers_are_always_removed(lists: None) -> None:
    """Opt-outs stick (numbers/optouts.py): removed by every run, whatever its filters, reason in the file."""
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM
    from phoneops.numbers.optouts import add, lift

    with session_scope() as session:
        add(session, SYSTEM, US_1, "sms_stop", region="GB")
        add(session, SYSTEM, FR_1, "complaint", region="GB")
    with session_scope() as session:
        lift(session, SYSTEM, FR_1, "resubscribed", region="GB")  # a lifted opt-out no longer removes
    run = run_clean(upload(csv_bytes(SAMPLE)), filters=[])
    assert _outcomes(run) == {"kept": 4, "invalid": 1, "duplicate": 1, "blacklisted": 1, "opted_out": 1}
    rejected = read_csv(stored_text(run.rejected_file_id))
    assert ["bob", US_1, "San Francisco", "opted_out", ""] in rejected
    assert [row[1] for row in read_csv(stored_text(run.output_file_id)) if row[1] == FR_1] == [FR_1]


def test_extensions_get_their_own_column_and_a_formatted_number_is_never_guessed(lists: None) -> None:
    rows = [["name", "phone", "extension"], ["ann", "07400 123456 ext. 12", "a"], ["bob", f"{US_1} x5", "b"],
            ["cat", "(670) 234-5251", "c"], ["dan", FR_1, "d"]]
    run = run_clean(upload(csv_bytes(rows)))
    assert run.status == "succeeded", run.error
    clean = read_csv(stored_text(run.output_file_id))
    # the file already has an "extension" column: ours takes a free name, right after the phone column
    assert clean == [["name", "phone", "extension_2", "extension"], ["ann", GB_1, "12", "a"], ["bob", US_1, "5", "b"],
                     ["dan", FR_1, "", "d"]]
    rejected = read_csv(stored_text(run.rejected_file_id))
    assert rejected[1:] == [["cat", "(670) 234-5251", "c", "invalid", "invalid_for_region"]]
    plain = run_clean(upload(csv_bytes(SAMPLE), name="plain.csv"))
    assert read_csv(stored_text(plain.output_file_id))[0] == ["name", "phone", "city"]  # no extension, no column


LINE_ROWS = [["name", "phone"], ["ann", "07400 123456"], ["bob", "020 7946 0000"], ["cat", "0800 123 4567"],
             ["dan", US_1], ["eve", "+44 7400 123456"], ["fay", "0870 123 4567"], ["gus", "junk"]]


def _type_of(e164: str) -> str:
    import phonenumbers

    from phoneops.numbers.normalize import LINE_TYPES

    return LINE_TYPES[phonenumbers.number_type(phonenumbers.parse(e164))]


def test_line_type_column_and_sms_filter_with_the_reason_in_the_rejected_file(lists: None) -> None:
    typed = run_clean(upload(csv_bytes(LINE_ROWS)), line_type=True)
    assert typed.status == "succeeded", typed.error
    clean = read_csv(stored_text(typed.output_file_id))
    assert clean[0] == ["name", "phone", "line_type"]
    assert [row[2] for row in clean[1:]] == [_type_of(row[1]) for row in clean[1:]]
    assert [row[2] for row in clean[1:]] == ["mobile", "fixed_line", "toll_free", "fixed_line_or_mobile",
                                             "premium_rate"]
    assert typed.stats["line_types"] == {"mobile": 1, "fixed_line": 1, "toll_free": 1, "fixed_line_or_mobile": 1,
                                         "premium_rate": 1}
    sms = run_clean(upload(csv_bytes(LINE_ROWS), name="sms.csv"), sms_only=True)
    assert read_csv(stored_text(sms.output_file_id)) == [["name", "phone"], ["ann", GB_1], ["dan", US_1]]
    rejected = read_csv(stored_text(sms.rejected_file_id))
    assert [r[2:] for r in rejected[1:]] == [["cannot_receive_sms", "fixed_line"], ["cannot_receive_sms", "toll_free"],
                                             ["duplicate", ""], ["cannot_receive_sms", "premium_rate"],
                                             ["invalid", "not_a_number"]]
    assert sms.options["sms_types"] == ["fixed_line_or_mobile", "mobile"]
    edited = run_clean(upload(csv_bytes(LINE_ROWS), name="edited.csv"), sms_only=True,
                       sms_types=["mobile", "toll_free"])
    assert [r[0] for r in read_csv(stored_text(edited.output_file_id))[1:]] == ["ann", "cat"]


def test_unknown_line_types_are_refused_and_nothing_starts(lists: None) -> None:
    from phoneops.cleaning import service
    from phoneops.core.db import session_scope
    from phoneops.core.errors import ValidationFailed
    from phoneops.core.security import SYSTEM

    file_id = upload(csv_bytes(LINE_ROWS))
    with session_scope() as session, pytest.raises(ValidationFailed, match="unknown line types"):
        service.start_clean(session, SYSTEM, file_id, sms_only=True, sms_types=["mobile", "landline"])
    with session_scope() as session:
        assert service.list_runs(session, file_id) == []
