"""Numbers through the HTTP API: statuses, lookup, imports, exports, rules, tokens, metrics."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import func, select

from phoneops.core.models import AuditEvent
from phoneops.numbers.models import ManualImport, PhoneNumber

UK = "+447911123456"


def test_set_and_lookup(client: Any, users: Any) -> None:
    op = users.headers("operator")
    set_ = client.post("/api/numbers/status", json={"number": "07911 123456", "status": "blacklist",
                                                    "reason": "COMPLAINT", "region": "GB"}, headers=op)
    assert set_.status_code == 200, set_.text
    assert set_.json()["changed"] == 1
    found = client.get("/api/numbers/lookup", params={"number": "447911123456", "region": "GB"},
                       headers=users.headers("viewer"))
    assert found.status_code == 200
    assert found.json()["status"] == "blacklist"
    assert found.json()["history"][0]["actor"] == "operator-user"
    assert client.get("/api/numbers/lookup", params={"number": "+14155552671"}, headers=op).status_code == 404


def test_bad_region_and_number(client: Any, users: Any, session: Any) -> None:
    op = users.headers("operator")
    bad_region = client.post("/api/numbers/status", json={"number": UK, "status": "blacklist", "reason": "X",
                                                          "region": "ZZ"}, headers=op)
    assert bad_region.status_code == 422
    assert "unknown region" in bad_region.json()["error"]["message"]
    bad_number = client.post("/api/numbers/status", json={"number": "hello", "status": "blacklist", "reason": "X"},
                             headers=op)
    assert bad_number.status_code == 422
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 0


def test_lists_are_masked_for_non_admins(client: Any, users: Any, inline_jobs: list[str]) -> None:
    bulk = client.post("/api/numbers/bulk-status", json={"numbers": [UK, "+447911123457"], "status": "monitor",
                                                         "reason": "X"}, headers=users.headers("operator"))
    client.post(f"/api/numbers/imports/{bulk.json()['id']}/apply", headers=users.headers("operator"))
    masked = client.get("/api/numbers/lists/monitor", headers=users.headers("viewer")).json()
    assert len(masked) == 2
    assert all("*" in r["number"] for r in masked)
    full = client.get("/api/numbers/lists/monitor", headers=users.headers("admin")).json()
    assert {r["number"] for r in full} == {UK, "+447911123457"}
    counts = client.get("/api/numbers/counts", headers=users.headers("viewer")).json()
    assert counts["monitor"]["total"] == 2
    metrics = client.get("/metrics", headers=users.headers("viewer")).text
    assert 'phoneops_list_numbers{list="monitor",window="total"} 2.0' in metrics


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def test_import_adds_good_rows_and_reports_bad_ones(client: Any, users: Any, inline_jobs: list[str]) -> None:
    op = users.headers("operator")
    client.post("/api/numbers/status", json={"number": "+447911123457", "status": "blacklist", "reason": "OLD"},
                headers=op)
    data = _csv([
        ["Phone", "Reason", " SOURCE ", "OS_Version", "User Agent", "IP"],
        ["07911 123456", "FRAUD", "partner", "iOS 9", "", "1.2.3.4"],
        ["+447911123457", "FRAUD", "partner", "", "", ""],
        ["not a number", "FRAUD", "partner", "", "", ""],
        ["+447911123458", "", "partner", "", "", ""],
        ["447911123456", "FRAUD", "partner", "", "", ""],
        ["=HYPERLINK(\"x\")", "FRAUD", "partner", "", "", ""],
    ])
    response = client.post("/api/numbers/imports", data={"target": "blacklist", "region": "GB"},
                           files={"file": ("bl.csv", data, "text/csv")}, headers=op)
    assert response.status_code == 202, response.text
    import_id = response.json()["id"]
    assert client.post(f"/api/numbers/imports/{import_id}/apply", headers=op).status_code == 202
    body = client.get(f"/api/numbers/imports/{import_id}", headers=op).json()
    assert (body["rows"], body["added"], body["already_listed"], body["rejected"]) == (6, 1, 1, 4)
    found = client.get("/api/numbers/lookup", params={"number": UK}, headers=op).json()
    assert found["status"] == "blacklist"
    evidence = found["history"][0]["evidence"]
    assert (evidence["os_version"], evidence["ip"], evidence["import_id"], evidence["import_file"]) == (
        "iOS 9", "1.2.3.4", import_id, "bl.csv")
    result = client.get(f"/api/numbers/imports/{import_id}/result", headers=op)
    assert result.status_code == 200
    lines = list(csv.reader(io.StringIO(result.text)))
    outcomes = [line[-1] for line in lines[1:]]
    assert outcomes == ["new: added to blacklist", "already listed (blacklist)", "invalid: not_a_number",
                        "missing field: reason", "duplicate in file (line 2)", "invalid: not_a_number"]
    assert lines[6][0].startswith("'=")  # formula neutralised
    assert 'filename="result_bl.csv"' in result.headers["content-disposition"]


def test_malformed_import_changes_nothing(client: Any, users: Any, session: Any) -> None:
    op = users.headers("operator")
    for name, data in [("empty.csv", b""), ("nocols.csv", _csv([["number", "why"], ["+447911123456", "x"]])),
                       ("header.csv", _csv([["phone", "reason", "source"]])), ("bin.csv", bytes(range(256)) * 20)]:
        response = client.post("/api/numbers/imports", data={"target": "blacklist"},
                               files={"file": (name, data, "text/csv")}, headers=op)
        assert response.status_code == 422, (name, response.text)
        assert name in response.json()["error"]["message"]
    wrong_target = client.post("/api/numbers/imports", data={"target": "greylist"},
                               files={"file": ("a.csv", b"phone,reason,source\n", "text/csv")}, headers=op)
    assert wrong_target.status_code == 422
    assert session.scalar(select(func.count()).select_from(PhoneNumber)) == 0
    assert session.scalar(select(func.count()).select_from(ManualImport)) == 0


def test_export_job_masks_for_operators_and_audits(client: Any, users: Any, inline_jobs: list[str], session: Any) -> None:
    bulk = client.post("/api/numbers/bulk-status", json={"numbers": [UK, "+447911123457"], "status": "blacklist",
                                                         "reason": "X"}, headers=users.headers("admin"))
    client.post(f"/api/numbers/imports/{bulk.json()['id']}/apply", headers=users.headers("admin"))
    op_job = client.post("/api/numbers/exports", json={"status": "blacklist"}, headers=users.headers("operator")).json()
    admin_job = client.post("/api/numbers/exports", json={"status": "blacklist"}, headers=users.headers("admin")).json()
    jobs = {j["id"]: j for j in client.get("/api/numbers/exports", headers=users.headers("viewer")).json()}
    assert jobs[op_job["id"]]["status"] == "succeeded"
    assert jobs[op_job["id"]]["result"]["rows"] == 2
    masked = client.get(f"/api/numbers/exports/{op_job['id']}/download", headers=users.headers("viewer"))
    assert masked.status_code == 200
    assert UK not in masked.text
    assert masked.text.startswith("number,country,status")
    refused = client.get(f"/api/numbers/exports/{admin_job['id']}/download", headers=users.headers("operator"))
    assert refused.status_code == 403
    full = client.get(f"/api/numbers/exports/{admin_job['id']}/download", headers=users.headers("admin"))
    assert UK in full.text
    actions = session.scalars(select(AuditEvent.action)).all()
    assert actions.count("numbers.export") == 2
    assert "file.download" in actions


def test_rules_edit_is_admin_only_and_audited(client: Any, users: Any, session: Any) -> None:
    rules = client.get("/api/numbers/os-rules", headers=users.headers("viewer")).json()
    assert len(rules) >= 10
    classify = client.get("/api/numbers/classify", params={"os": "IOS 18.6"}, headers=users.headers("viewer")).json()
    assert classify["status"] == "whitelist"
    new_rules = [r for r in rules if not (r["status"] == "whitelist" and r["os"] == "ios")]
    assert client.put("/api/numbers/os-rules", json={"rules": new_rules}, headers=users.headers("operator")).status_code == 403
    saved = client.put("/api/numbers/os-rules", json={"rules": new_rules, "note": "no iOS whitelist"},
                       headers=users.headers("admin"))
    assert saved.status_code == 200
    assert client.get("/api/numbers/classify", params={"os": "IOS 18.6"}, headers=users.headers("viewer")).json()["status"] is None
    bad = client.put("/api/numbers/os-rules", json={"rules": [{"os": "ios", "status": "purple"}]},
                     headers=users.headers("admin"))
    assert bad.status_code == 422
    assert client.get("/api/numbers/os-rules", headers=users.headers("viewer")).json() == saved.json()
    assert session.scalar(select(func.count()).select_from(AuditEvent)
                          .where(AuditEvent.action == "numbers.rules.replace")) == 1


def test_link_tokens(client: Any, users: Any) -> None:
    enc = client.post("/api/numbers/tokens/encrypt", json={"values": ["07911 123456", "junk"], "region": "GB"},
                      headers=users.headers("operator")).json()
    assert enc[0]["result"] and enc[1]["error"] == "not_a_number"
    token = enc[0]["result"]
    assert client.post("/api/numbers/tokens/decrypt", json={"values": [token]},
                       headers=users.headers("operator")).status_code == 403
    dec = client.post("/api/numbers/tokens/decrypt", json={"values": [token, token[:-2] + "AA"]},
                      headers=users.headers("admin")).json()
    assert dec[0]["result"] == UK
    assert dec[1]["result"] is None
    assert dec[1]["error"]


def test_import_from_xlsx(client: Any, users: Any, inline_jobs: list[str]) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["phone", "reason", "source"])
    sheet.append(["07911123456", "FRAUD", "partner"])
    sheet.append([447911123457, "FRAUD", "partner"])  # a number typed as a number in the spreadsheet
    buffer = io.BytesIO()
    book.save(buffer)
    response = client.post("/api/numbers/imports", data={"target": "monitor", "region": "GB"},
                           files={"file": ("list.xlsx", buffer.getvalue(), "application/octet-stream")},
                           headers=users.headers("operator"))
    assert response.status_code == 202, response.text
    shown = client.get(f"/api/numbers/imports/{response.json()['id']}", headers=users.headers("operator")).json()
    assert shown["status"] == "preview" and shown["preview"]["counts"]["new"] == 2


def test_metrics_say_whether_bulk_blind_indexes_run_natively(client: Any, users: Any, monkeypatch: Any) -> None:
    """An operator can tell from /metrics that an install fell back to the slow Python path."""
    from phoneops.numbers import crypto

    users.create("viewer")
    native = 1 if crypto.blind_index_backend() == "native" else 0
    text = client.get("/metrics", headers=users.headers("viewer")).text
    assert f"phoneops_blind_index_native {native}.0" in text
    monkeypatch.setattr(crypto, "_native", lambda: None)  # an install without a C compiler
    text = client.get("/metrics", headers=users.headers("viewer")).text
    assert "phoneops_blind_index_native 0.0" in text
