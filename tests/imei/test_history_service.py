"""History: search, statistics over all orders, exports with the original columns, provider-export import."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from stdnum import luhn

from phoneops.core.db import session_scope, utcnow
from phoneops.core.models import AuditEvent
from phoneops.core.security import SYSTEM
from phoneops.imei import history, imports
from phoneops.imei.history import EXPORT_HEADER, OrderFilters
from phoneops.imei.models import ImeiOrder
from phoneops.imei.parsing import parse_code

SERVICE = "1739"
TITLE = "iPhone Carrier + SimLock + FMI Check"
CODE = "Model: iPhone 14<br>Carrier: Verizon USA<br>SimLock: <font color=\"green\">Unlocked</font><br>FMI: OFF<br>IMEI 2: 356938035643817"


def imei(serial: int) -> str:
    body = f"35771100{serial:06d}"
    return body + luhn.calc_check_digit(body)


def add(session: object, serial: int, **kw: object) -> ImeiOrder:
    values: dict[str, object] = {
        "imei": imei(serial), "service_id": SERVICE, "service_title": TITLE, "state": "placed",
        "order_id": str(900000 + serial), "status": "Pending", "credits": Decimal("0.08"), "fields": {},
        "placed_at": utcnow(), "order_date": utcnow(),
    }
    values.update(kw)
    order = ImeiOrder(**values)
    session.add(order)  # type: ignore[attr-defined]
    return order


def seed(db_url: str) -> None:
    parsed = parse_code(CODE)
    with session_scope() as session:
        for i in range(120):  # more than the original's 50-row window
            add(session, i, status="Completed" if i % 3 == 0 else "Pending")
        add(session, 200, status="Completed", code=CODE, code_display=parsed.display,
            carrier="Verizon USA", model="iPhone 14", simlock="Unlocked", fmi="OFF", imei2="356938035643817")
        add(session, 201, service_id="2101", service_title="Samsung Info", status="Rejected",
            order_date=datetime(2025, 1, 2, 10, tzinfo=UTC), placed_at=datetime(2025, 1, 2, 10, tzinfo=UTC))
        add(session, 202, state="duplicate", order_id=None, status=None, credits=None,
            error="GSM Fusion: duplicate — IMEI already exists!")
        add(session, 203, state="review", order_id=None, status=None, placed_at=None, order_date=None,
            error="placed before the interruption")
        add(session, 204, state="queued", order_id=None, status=None, placed_at=None, order_date=None)


def test_search_by_many_imeis_order_id_status_service_dates_and_text(db_url: str) -> None:
    seed(db_url)
    with session_scope() as session:
        many = history.search_orders(session, OrderFilters(imeis=history.parse_imei_list(f"{imei(1)}\n{imei(2)},{imei(3)[:14]}")))
        assert sorted(o.imei for o in many.items) == sorted([imei(1), imei(2), imei(3)])
        assert [o.imei for o in history.search_orders(session, OrderFilters(order_id="900005")).items] == [imei(5)]
        done = history.search_orders(session, OrderFilters(statuses=["Completed"]), per_page=500)
        assert done.total == 41
        open_ = history.search_orders(session, OrderFilters(statuses=["pending", "In Process"]))
        assert open_.total == 80
        assert history.search_orders(session, OrderFilters(service_id="2101")).total == 1
        old = history.search_orders(session, OrderFilters(date_from=date(2025, 1, 1), date_to=date(2025, 1, 2)))
        assert [o.imei for o in old.items] == [imei(201)]
        assert history.search_orders(session, OrderFilters(text="verizon")).items[0].imei == imei(200)
        assert history.search_orders(session, OrderFilters(text="100%")).total == 0  # LIKE wildcards are literal
        assert history.search_orders(session, OrderFilters(states=["review"])).items[0].imei == imei(203)
        everything = history.search_orders(session, OrderFilters(), page=2, per_page=50)
        assert everything.total == 124  # the queued intent is not history yet
        assert everything.pages == 3 and len(everything.items) == 50
        assert [o.imei for o in history.find_orders(session, "900007")] == [imei(7)]
        assert [o.imei for o in history.find_orders(session, imei(8))] == [imei(8)]


def test_statistics_cover_all_orders_and_spend_per_day(db_url: str) -> None:
    seed(db_url)
    with session_scope() as session:
        stats = history.statistics(session)
        assert stats["total_orders"] == 123  # 122 placed + 1 needing review
        assert stats["completed"] == 41
        assert stats["pending"] == 80
        assert stats["rejected"] == 1
        assert stats["needs_review"] == 1
        assert stats["duplicates"] == 1
        assert stats["orders_today"] == 121
        assert Decimal(stats["spend_today"]) == Decimal("0.08") * 121
        assert Decimal(stats["total_credits"]) == Decimal("0.08") * 122
        by_day = history.spend_by_day(session, 7)
        assert list(by_day)[-1] == utcnow().date().isoformat() and len(by_day) == 7
        assert by_day[utcnow().date().isoformat()] == Decimal("0.08") * 121
        assert by_day[(utcnow().date() - timedelta(days=1)).isoformat()] == 0


def test_csv_and_xlsx_exports_have_the_original_columns(db_url: str) -> None:
    seed(db_url)
    with session_scope() as session:
        lines = list(history.export_csv(session, SYSTEM, OrderFilters(imeis=[imei(200), imei(202)])))
    rows = list(csv.reader(io.StringIO("".join(lines))))
    assert tuple(rows[0]) == EXPORT_HEADER
    by_imei = {r[1]: dict(zip(EXPORT_HEADER, r, strict=True)) for r in rows[1:]}
    done = by_imei[imei(200)]
    assert done["SERVICE"] == TITLE
    assert Decimal(done["CREDITS"]) == Decimal("0.08")
    assert done["STATUS"] == "Completed" and done["CARRIER"] == "Verizon USA" and done["FMI"] == "OFF"
    assert " - " in done["CODE"] and "<br>" not in done["CODE"]
    assert done["IMEI 2"] == "356938035643817" and done["ORDER DATE"][:4].isdigit()
    assert by_imei[imei(202)]["STATUS"] == "Duplicate" and by_imei[imei(202)]["CREDITS"] == ""
    out = io.BytesIO()
    with session_scope() as session:
        count = history.export_xlsx(session, SYSTEM, OrderFilters(statuses=["Completed"]), out)
    assert count == 41
    sheet = load_workbook(io.BytesIO(out.getvalue())).active
    assert sheet is not None
    values = list(sheet.iter_rows(values_only=True))
    assert tuple(values[0]) == EXPORT_HEADER
    assert len(values) == 42 and values[1][2] == 0.08
    with session_scope() as session:
        assert session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "imei.export")) == 2


def _export_file(path: Path, rows: list[list[object]]) -> Path:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(list(EXPORT_HEADER))
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_import_of_a_provider_export_never_duplicates_orders(db_url: str, tmp_path: Path) -> None:
    placed_at = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    with session_scope() as session:
        add(session, 1, placed_at=placed_at, order_date=placed_at)  # ours, Pending
        add(session, 2, state="review", order_id=None, status=None, placed_at=None, order_date=None,
            sent_at=placed_at, error="placed before the interruption")
    export = _export_file(tmp_path / "hammer.xlsx", [
        # our order 1, seen by the provider 5 hours later on its clock, now completed
        [TITLE, int(imei(1)), "$0.08", "Completed", "Carrier: AT&T USA - SimLock: Locked", "", "AT&T USA", "Locked",
         "iPhone 13 Pro", "ON", "2025-03-01 17:00:00", ""],
        # the order we had to leave for review: the export proves it exists
        [TITLE, imei(2), "$0.08", "Pending", "", "", "", "", "", "", "2025-03-01 12:00:03", ""],
        # an order placed outside phoneops
        ["Samsung Info", imei(3), "0.05", "Completed", "Model: Galaxy S21", "", "", "", "Galaxy S21", "", "2025-02-01 09:00", "x"],
        # the same row twice in the file, and a junk row
        ["Samsung Info", imei(3), "0.05", "Completed", "Model: Galaxy S21", "", "", "", "Galaxy S21", "", "2025-02-01 09:00", "x"],
        ["Samsung Info", "not-an-imei", "0.05", "Completed", "", "", "", "", "", "", "", ""],
    ])
    with session_scope() as session:
        record = imports.import_provider_export(session, SYSTEM, export, "hammer.xlsx")
        assert (record.rows_total, record.rows_inserted, record.rows_updated, record.rows_skipped) == (5, 1, 2, 2)
    with session_scope() as session:
        rows = {o.imei: o for o in session.scalars(select(ImeiOrder))}
        assert len(rows) == 3
        assert rows[imei(1)].status == "Completed" and rows[imei(1)].carrier == "AT&T USA"
        assert rows[imei(1)].order_id == "900001"  # still our order
        assert rows[imei(2)].state == "imported" and rows[imei(2)].error is None
        assert rows[imei(3)].state == "imported" and rows[imei(3)].credits == Decimal("0.05")
        assert rows[imei(3)].model == "Galaxy S21" and rows[imei(3)].order_date == datetime(2025, 2, 1, 9, tzinfo=UTC)
    with session_scope() as session:  # importing the same file again changes nothing in number
        again = imports.import_provider_export(session, SYSTEM, export, "hammer.xlsx")
        assert again.rows_inserted == 0 and again.rows_updated == 3
    with session_scope() as session:
        assert session.scalar(select(func.count(ImeiOrder.id))) == 3
        assert session.scalar(select(func.count(AuditEvent.id)).where(AuditEvent.action == "imei.import")) == 2
