"""Sources through the API: labelled imports, cleaning uploads and Ongage CSVs record their numbers by blind index; the report
joins them with HLR spend, SMS (by broadcast group name), clicks, conversions and opt-outs; a bad label is refused
with nothing stored; the CSV says the same and holds no phone number."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from phoneops.core.db import session_scope, utcnow

A = ["+447911123401", "+447911123402", "+447911123403"]
B = ["+447911123403", "+447911123404", "+447911123405", "+447911123406"]


def _csv(header: str, rows: list[str]) -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def test_sources_attribute_money_by_blind_index(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from phoneops.broadcasts.models import BroadcastStat
    from phoneops.core.models import StoredFile
    from phoneops.hlr.models import HlrResult
    from phoneops.numbers.models import ManualImport
    from phoneops.numbers.vault import get_vault
    from phoneops.voluum.models import Conversion, TrafficRow

    op, viewer = users.headers("operator"), users.headers("viewer")
    # A label that does not fit is refused before anything is stored.
    with session_scope() as s:
        files_before = s.scalar(select(func.count()).select_from(StoredFile))
    refused = client.post("/api/numbers/imports", headers=op, data={"region": "GB", "target": "blacklist",
                          "source_label": "<script>"}, files={"file": ("a.csv", _csv("Phone,Reason,Source", []), "text/csv")})
    assert refused.status_code == 422 and "source label" in refused.json()["error"]["message"]
    with session_scope() as s:
        assert s.scalar(select(func.count()).select_from(StoredFile)) == files_before
        assert s.scalar(select(func.count()).select_from(ManualImport)) == 0
    # partner-a: an import (its numbers go on the blacklist); partner-b: a cleaning upload, blacklist filtered.
    started = client.post("/api/numbers/imports", headers=op, data={"region": "GB", "target": "blacklist",
                          "source_label": "  Partner-A "},
                          files={"file": ("a.csv", _csv("Phone,Reason,Source", [f"{n},FRAUD,x" for n in A]), "text/csv")})
    assert started.status_code == 202, started.text
    assert client.post(f"/api/numbers/imports/{started.json()['id']}/apply", headers=op).status_code == 202
    uploaded = client.post("/api/cleaning/files", headers=op, data={"region": "GB", "source_label": "partner-b"},
                           files={"file": ("b.csv", _csv("phone", B), "text/csv")})
    assert uploaded.status_code == 201, uploaded.text
    run = client.post(f"/api/cleaning/files/{uploaded.json()['id']}/runs", headers=op, json={})
    assert run.status_code == 202, run.text
    ongage = (b"List_ID,Email,Country,Source,Mobile,conversion_type,Original_source,HLR_Status,Uuid\n"
              b"1,a@example.com,GB,x,+447911123407,REG,sms,LIVE,u1\n1,b@example.com,GB,x,not a number,REG,sms,LIVE,u2\n"
              b"1,c@example.com,GB,x,+447911123408,REG,sms,LIVE,u3\n")
    drafted = client.post("/api/ongage/csv-jobs", headers=op, data={"source_label": "partner-c"},
                          files={"file": ("c.csv", ongage, "text/csv")})
    assert drafted.status_code == 201, drafted.text
    assert client.post("/api/numbers/optouts", headers=op, json={"number": B[1], "reason": "sms_stop"}).status_code == 201
    # What other domains recorded: an FTD of 100 and a REG on partner-a numbers, clicks; HLR credits on
    # partner-b; a broadcast to the list named partner-b.
    vault, today, now = get_vault(), utcnow().date(), utcnow()
    with session_scope() as s:
        s.add_all([
            Conversion(click_id="c1", kind="FTD", blind_index=vault.index(A[0]), number_kind="phone",
                       postback_at=now, revenue=Decimal("100")),
            Conversion(click_id="c2", kind="REG", blind_index=vault.index(A[1]), number_kind="phone",
                       postback_at=now, revenue=Decimal("0")),
            TrafficRow(day=today, blind_index=vault.index(A[0]), number_kind="phone", clicks=3, category="whitelist"),
            HlrResult(blind_index=vault.index(B[3]), credits_spent=Decimal("1"), looked_up_at=now),
            HlrResult(blind_index=vault.index(B[1]), credits_spent=Decimal("1"), looked_up_at=now),
            BroadcastStat(broadcast_id=1, day=today, group_name="Partner-B", recipients=4, price=Decimal("5.00")),
        ])
    report = client.get("/api/sources", headers=viewer)
    assert report.status_code == 200, report.text
    by = {s["source"]: s for s in report.json()["sources"]}
    a, b = by["partner-a"], by["partner-b"]
    assert (by["partner-c"]["lists"], by["partner-c"]["numbers"], by["partner-c"]["kept"]) == (1, 2, 2)
    assert (a["numbers"], a["kept"], a["clicks"], a["regs"], a["ftds"], a["revenue"]) == (3, 3, 3, 1, 1, "100.00")
    assert a["cost"] == "0.00" and a["roi_percent"] is None  # nothing spent on it
    # B[0] (= A[2]) is on the blacklist now: the cleaning removed it; B[1] opted out since.
    assert (b["numbers"], b["kept"], b["opted_out"]) == (4, 3, 1)
    assert (b["hlr_credits"], b["hlr_spend"], b["sms_sent"], b["sms_cost"]) == ("2.00", "0.02", 4, "5.00")
    assert (b["cost"], b["ftds"], b["cost_per_ftd"], b["roi_percent"]) == ("5.02", 0, None, "-100.0")
    assert [d["day"] for d in b["days"]][-1] == str(today) and b["days"][-1]["cost"] == "5.02"
    exported = client.get("/api/sources/report.csv", headers=viewer)
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    rows = {r["source"]: r for r in csv.DictReader(io.StringIO(exported.text))}
    assert rows["partner-b"]["roi_percent"] == "-100.0" and rows["partner-a"]["revenue"] == "100.00"
    assert not any(n.lstrip("+") in exported.text + report.text for n in A + B)
    bad = client.get("/api/sources", params={"from": "2026-02-01", "to": "2026-01-01"}, headers=viewer)
    assert bad.status_code == 422
    assert client.get("/api/sources", headers={}).status_code == 401
