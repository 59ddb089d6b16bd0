"""Results as columns: realistic result texts through the sync path, filters, exports, the order page, reparse."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl import load_workbook
from stdnum import luhn

from phoneops.imei.parsing import blacklist_flag, clean_display, fmi_flag, parse_code, parse_date, simlock_flag
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER
from result_texts import TEXTS

SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35332100{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.mark.parametrize(("status", "text", "expected", "extra"), TEXTS, ids=[str(i) for i in range(len(TEXTS))])
def test_realistic_texts_parse_into_columns(status: str, text: str, expected: dict[str, Any], extra: set[str]) -> None:
    parsed = parse_code(text)
    for name, value in expected.items():
        assert getattr(parsed, name) == value, (name, parsed)
    assert set(parsed.extra) == extra
    assert parsed.display and "<" not in parsed.display and "&lt;" not in parsed.display


def test_flags_read_the_usual_wordings() -> None:
    assert [fmi_flag(v) for v in ("ON", "Off", "Enabled", "disabled", "OFF (Clean)", "?", None)] == [
        True, False, True, False, False, None, None]
    assert [blacklist_flag(v) for v in ("CLEAN", "Blacklisted", "Not Blacklisted", "Lost/Stolen", "No", "Yes", "")] == [
        False, True, False, True, False, True, None]
    assert [simlock_flag(v) for v in ("Unlocked", "Locked", "LOCKED to AT&T", "Factory Unlocked", "n/a")] == [
        False, True, True, False, None]
    assert parse_date("14 February 2020") == date(2020, 2, 14)
    assert parse_date("25/12/2020") == date(2020, 12, 25)  # not a month 25: read day first
    assert parse_date("unknown") is None


_LABELS = st.sampled_from(["Model", "Carrier", "SIM Lock", "FMI", "Blacklist Status", "Country", "Serial", "Color"])
_VALUES = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters=" &/()."), min_size=1,
                  max_size=20).map(lambda s: " ".join(s.split())).filter(bool)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_LABELS, _VALUES), min_size=1, max_size=6, unique_by=lambda p: p[0]),
       st.sampled_from(["<br>", "\n", " - ", "&lt;br&gt;", "<br/>\r\n", " | "]))
def test_any_separator_gives_the_same_columns(pairs: list[tuple[str, str]], separator: str) -> None:
    """Invariant: the columns of a text do not depend on the separator between its pairs."""
    reference = parse_code("<br>".join(f"{k}: {v}" for k, v in pairs))
    joined = parse_code(separator.join(f"{k}: {v}" for k, v in pairs))
    assert joined.columns == reference.columns
    assert joined.extra == reference.extra
    assert clean_display("<br>".join(f"{k}: {v}" for k, v in pairs)).count("\n") == len(pairs) - 1


# --- through the sync path ------------------------------------------------------------------------------


@pytest.fixture
def gsm_env(gsm_sim: SimAdmin, gsm_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("GSM_FUSION_BASE_URL", gsm_sim_url)
    monkeypatch.setenv("GSM_FUSION_USERNAME", DEFAULT_USER)
    monkeypatch.setenv("GSM_FUSION_API_KEY", DEFAULT_API_KEY)
    reset_settings_cache()
    yield gsm_sim
    reset_settings_cache()


def _orders(client: Any, headers: dict[str, str], **params: str) -> list[dict[str, Any]]:
    response = client.get("/api/imei/orders", params={"per_page": 100, **params}, headers=headers)
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


def test_results_synced_become_columns_filters_exports_and_page(
    client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str]
) -> None:
    op = users.headers("operator")
    imeis = [imei(i) for i in range(len(TEXTS))]
    gsm_env.configure(results={i: [status, text] for i, (status, text, _, _) in zip(imeis, TEXTS, strict=True)})
    created = client.post("/api/imei/batches", headers=op, json={"service_id": SERVICE, "imeis": imeis})
    assert created.status_code == 202, created.text
    gsm_env.advance(3600)
    assert client.post("/api/imei/sync", headers=op).status_code == 202
    rows = {o["imei"]: o for o in _orders(client, op)}
    assert len(rows) == len(TEXTS)
    for number, (status, text, expected, extra) in zip(imeis, TEXTS, strict=True):
        row = rows[number]
        assert row["status"] == status
        assert row["code"] == text.replace("\r", "") or row["code"] == text  # raw text kept
        assert f"<id>{row['order_id']}</id>" in row["raw_response"]  # the provider's answer for this order
        for name, value in expected.items():
            got = row[name]
            assert (date.fromisoformat(got) if name == "purchased_on" and got else got) == value, (number, name)
        assert set(row["result_extra"] or {}) == extra

    # "FMI OFF and clean blacklist": exactly the texts that say so.
    wanted = {n for n, (_, _, e, _) in zip(imeis, TEXTS, strict=True) if e.get("fmi_on") is False
              and e.get("blacklisted") is False}
    assert wanted and {o["imei"] for o in _orders(client, op, fmi="off", blacklist="clean")} == wanted
    assert {o["imei"] for o in _orders(client, op, blacklist="blacklisted")} == {imeis[2], imeis[8]}
    assert {o["imei"] for o in _orders(client, op, simlock="unlocked", country="")} == {imeis[1], imeis[7]}
    assert {o["imei"] for o in _orders(client, op, carrier="mobile", brand="")} == {imeis[1], imeis[8]}
    assert {o["imei"] for o in _orders(client, op, model="IPHONE 1")} == {imeis[0], imeis[1], imeis[4], imeis[6]}
    bad = client.get("/api/imei/orders", params={"fmi": "maybe"}, headers=op)
    assert bad.status_code == 422 and "fmi must be one of on, off" in bad.text

    exported = client.get("/api/imei/orders/export", params={"format": "csv", "fmi": "on"}, headers=op)
    table = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["IMEI NO."] for r in table} == {imeis[0], imeis[6]}
    first = next(r for r in table if r["IMEI NO."] == imeis[0])
    assert (first["SERIAL"], first["MEID"], first["ICLOUD"], first["COUNTRY"]) == (
        "F2LXK0ABCD12", "35332100000001", "Clean", "United States")
    assert first["OTHER RESULT FIELDS"] == f"IMEI: {imeis[0][:8]}0000016" or first["OTHER RESULT FIELDS"].startswith(
        "IMEI: "
    )
    xlsx = client.get("/api/imei/orders/export", params={"format": "xlsx", "blacklist": "blacklisted"}, headers=op)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None
    header = [c.value for c in sheet[1]]
    imei_cells = [row[header.index("IMEI NO.")] for row in sheet.iter_rows(min_row=2)]
    assert sorted(c.value for c in imei_cells) == sorted([imeis[2], imeis[8]])
    assert all(c.data_type == "s" and c.number_format == "@" for c in imei_cells)  # text, never 3.5E+14
    assert {row[header.index("BLACKLIST")].value for row in sheet.iter_rows(min_row=2)} == {
        "BLACKLISTED",
        "Lost/Stolen",
    }

    page = client.get(f"/imei/orders/{rows[imeis[0]]['id']}", headers=op)
    assert page.status_code == 200
    assert "data-result-table" in page.text and 'data-result="GSMA blacklist">CLEAN<' in page.text
    assert 'data-result="Find My iPhone">ON<' in page.text
    history = client.get("/imei/history", params={"fmi": "off", "blacklist": "clean", "carrier": ""}, headers=op)
    assert history.status_code == 200 and all(n in history.text for n in wanted)
    assert imeis[0] not in history.text


def test_reparse_rewrites_columns_from_stored_texts(db_url: str) -> None:
    from sqlalchemy import select

    from phoneops.core.db import session_scope
    from phoneops.core.models import AuditEvent
    from phoneops.core.security import Principal, Role
    from phoneops.imei.models import PLACED, ImeiOrder

    with session_scope() as session:
        for n, (status, text, _, _) in enumerate(TEXTS):
            # As an older parser left them: the raw text only, no columns.
            session.add(ImeiOrder(imei=imei(n), service_id=SERVICE, state=PLACED, order_id=str(700 + n),
                                  status=status, code=text))
    from phoneops.imei.results import reparse_all

    actor = Principal(user_id=None, username="cli", role=Role.admin)
    result = reparse_all(actor)
    assert result == {"checked": len(TEXTS), "changed": len(TEXTS)}
    with session_scope() as session:
        orders = {o.imei: o for o in session.scalars(select(ImeiOrder))}
        assert orders[imei(0)].fmi_on is True and orders[imei(0)].serial == "F2LXK0ABCD12"
        assert orders[imei(2)].blacklisted is True and orders[imei(2)].result_extra == {
            "Model Name": "Galaxy S21 5G", "Manufacture Date": "2021-01-15"}
        audited = session.scalars(select(AuditEvent).where(AuditEvent.action == "imei.reparse")).all()
        assert [a.detail for a in audited] == [{"checked": len(TEXTS), "changed": len(TEXTS)}]
    assert reparse_all(actor) == {"checked": len(TEXTS), "changed": 0}  # idempotent
