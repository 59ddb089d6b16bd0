"""The IMEI API end to end (TestClient, jobs run inline, the simulator over real HTTP)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook
from stdnum import luhn

from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35882200{serial:06d}"
    return body + luhn.calc_check_digit(body)


@pytest.fixture
def gsm_env(
    gsm_sim: SimAdmin, gsm_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SimAdmin]:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("GSM_FUSION_BASE_URL", gsm_sim_url)
    monkeypatch.setenv("GSM_FUSION_USERNAME", DEFAULT_USER)
    monkeypatch.setenv("GSM_FUSION_API_KEY", DEFAULT_API_KEY)
    reset_settings_cache()
    yield gsm_sim
    reset_settings_cache()


def batch(client: Any, headers: dict[str, str], created: dict[str, Any]) -> dict[str, Any]:
    """The batch as it is now (the POST answered before its job ran)."""
    response = client.get(f"/api/imei/batches/{created['id']}", headers=headers)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def test_without_credentials_every_provider_route_answers_503(client: Any, users: Any) -> None:
    op = users.headers("operator")
    for method, path, body in [
        ("GET", "/api/imei/services", None), ("GET", "/api/imei/services/1739", None),
        ("GET", "/api/imei/quote?service_id=1739&count=3", None),
        ("POST", "/api/imei/batches", {"service_id": SERVICE, "imeis": [imei(1)]}),
        ("POST", "/api/imei/orders", {"service_id": SERVICE, "imei": imei(1)}), ("POST", "/api/imei/sync", None),
        ("POST", "/api/imei/orders/1/refresh", None), ("POST", "/api/imei/batches/1/resume", None),
    ]:
        response = client.request(method, path, headers=op, json=body)
        assert response.status_code == 503, (path, response.text)
        error = response.json()["error"]
        assert error["code"] == "provider_not_configured"
        assert error["details"]["variables"] == ["GSM_FUSION_USERNAME", "GSM_FUSION_API_KEY", "DHRU_ACCOUNTS"]
    # History needs no provider.
    assert client.get("/api/imei/orders", headers=op).json()["total"] == 0
    assert client.get("/api/imei/balance", headers=op).json()["message"] == "not available from the provider"


def test_services_quote_and_a_batch_to_the_end(client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str]) -> None:
    viewer, op = users.headers("viewer"), users.headers("operator")
    services = client.get("/api/imei/services?search=iphone", headers=viewer).json()
    assert {s["package_id"] for s in services["services"]} >= {"1739", "1740"}
    assert services["categories"] and services["stale"] is False
    assert client.get("/api/imei/services/1739", headers=viewer).json()["price"] in ("0.08", "0.0800")
    quote = client.get("/api/imei/quote", params={"service_id": SERVICE, "count": 10}, headers=viewer).json()
    assert quote["cost"] == "0.80" and quote["over_budget"] is False and quote["balance"].startswith("not available")
    denied = client.post("/api/imei/batches", headers=viewer, json={"service_id": SERVICE, "imeis": [imei(1)]})
    assert denied.status_code == 403
    created = client.post("/api/imei/batches", headers=op, json={
        "service_id": SERVICE, "text": "\n".join(imei(i) for i in range(6)) + "\n12345\n" + imei(0),
    })
    assert created.status_code == 202, created.text
    batch = created.json()
    assert batch["to_send"] == 6 and batch["invalid"] == 1 and batch["duplicates_in_batch"] == 1
    assert batch["quote"]["cost"] == "0.48"
    detail = client.get(f"/api/imei/batches/{batch['id']}", headers=viewer).json()
    assert detail["status"] == "done" and detail["job_status"] == "succeeded"
    assert detail["summary"]["placed"] == 6 and detail["summary"]["spend"] == "0.48"
    assert detail["progress_done"] == detail["progress_total"] == 6
    job = client.get(f"/api/jobs/{batch['job_id']}", headers=viewer).json()
    assert job["result"]["placed"] == 6 and job["counters"]["placed"] == 6
    found = client.get("/api/imei/orders", params={"imeis": f"{imei(1)},{imei(2)}"}, headers=viewer).json()
    assert found["total"] == 2 and all(o["state"] == "placed" and o["order_id"] for o in found["items"])
    row = found["items"][0]
    assert client.get(f"/api/imei/orders/{row['id']}", headers=viewer).json()["imei"] == row["imei"]
    gsm_env.advance(1000)
    refreshed = client.post(f"/api/imei/orders/{row['id']}/refresh", headers=op).json()
    assert refreshed["status"] == "Completed" and refreshed["carrier"]
    sync = client.post("/api/imei/sync", headers=op)
    assert sync.status_code == 202
    assert client.get(f"/api/jobs/{sync.json()['id']}", headers=op).json()["status"] == "succeeded"
    stats = client.get("/api/imei/stats", headers=viewer).json()
    assert stats["completed"] == 6 and stats["total_orders"] == 6
    spend = client.get("/api/imei/spend?days=3", headers=viewer).json()
    assert list(spend.values())[-1] == "0.4800" or list(spend.values())[-1] == "0.48"
    assert len(client.get("/api/imei/batches", headers=viewer).json()) == 1
    metrics = client.get("/metrics", headers=viewer).text
    assert 'phoneops_imei_orders{state="placed",status="Completed"} 6.0' in metrics
    assert "phoneops_imei_spend_today 0.48" in metrics


def test_single_order_duplicates_and_the_invalid_key_reach_the_user(
    client: Any, users: Any, gsm_env: SimAdmin, gsm_client: Any, inline_jobs: list[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    op = users.headers("operator")
    first = client.post("/api/imei/orders", headers=op, json={"imei": imei(1), "service_id": SERVICE})
    assert first.status_code == 202 and first.json()["status"] == "queued"  # accepted; the job places it
    assert batch(client, op, first.json())["summary"]["placed"] == 1
    again = client.post("/api/imei/orders", headers=op, json={"imei": imei(1), "service_id": SERVICE}).json()
    assert again["job_id"] is None and again["summary"]["duplicates_in_history"] == 1
    assert again["skipped"][0]["reason"] == f"already ordered for service {SERVICE}"
    gsm_client.place_order(imei(2), SERVICE)  # already at the provider, not in our history
    dup = batch(client, op, client.post("/api/imei/orders", headers=op, json={"imei": imei(2), "service_id": SERVICE}).json())
    assert dup["summary"]["duplicates_at_provider"] == 1 and dup["summary"]["failed"] == 0
    order = client.get("/api/imei/orders", params={"imei": imei(2)}, headers=op).json()["items"][0]
    assert order["state"] == "duplicate" and "IMEI already exists!" in order["error"]
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("GSM_FUSION_API_KEY", "BAD0-BAD0-BAD0-BAD0-BAD0")
    reset_settings_cache()
    bad = batch(client, op, client.post("/api/imei/orders", headers=op, json={"imei": imei(3), "service_id": SERVICE}).json())
    assert bad["status"] == "failed" and bad["job_status"] == "failed"
    assert bad["error"] == "GSM Fusion rejected the API key (Invalid API Key!)"
    assert client.get(f"/api/jobs/{bad['job_id']}", headers=op).json()["error"] == bad["error"]
    services = client.get("/api/imei/services?refresh=true", headers=op).json()
    assert services["stale"] is True and "Invalid API Key!" in services["warning"]


def test_budget_guard_needs_an_admin(client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str],
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("IMEI_DAILY_BUDGET", "0.20")
    reset_settings_cache()
    body = {"service_id": SERVICE, "imeis": [imei(i) for i in range(3)]}  # 0.24
    refused = client.post("/api/imei/batches", headers=users.headers("operator"), json=body)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "over_budget" and refused.json()["error"]["details"]["cost"] == "0.24"
    body["confirm_over_budget"] = True
    assert client.post("/api/imei/batches", headers=users.headers("operator"), json=body).status_code == 403
    confirmed = client.post("/api/imei/batches", headers=users.headers("admin"), json=body)
    assert confirmed.status_code == 202 and confirmed.json()["over_budget_confirmed"] is True
    assert gsm_env.stats()["total_orders"] == 3


def test_upload_export_and_import(client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str]) -> None:
    op = users.headers("operator")
    upload = client.post("/api/imei/batches/upload", headers=op, data={"service_id": SERVICE},
                         files={"file": ("list.csv", f"IMEI\n{imei(1)}\n{imei(2)}\nbad\n", "text/csv")})
    assert upload.status_code == 202, upload.text
    assert batch(client, op, upload.json())["summary"]["placed"] == 2 and upload.json()["invalid"] == 1
    assert upload.json()["file_name"] == "list.csv"
    exported = client.get("/api/imei/orders/export", params={"format": "csv"}, headers=op)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:4] == ["SERVICE", "IMEI NO.", "CREDITS", "STATUS"] and len(rows) == 3
    assert rows[1][2] == "0.08"
    xlsx = client.get("/api/imei/orders/export", params={"format": "xlsx", "imeis": imei(1)}, headers=op)
    sheet = load_workbook(io.BytesIO(xlsx.content)).active
    assert sheet is not None and [r[1] for r in sheet.iter_rows(values_only=True)][1:] == [imei(1)]
    book = Workbook()
    ws = book.active
    assert ws is not None
    ws.append(rows[0])
    ws.append(rows[1])  # our own order, as the provider's export would show it
    ws.append(["Samsung Info", imei(9), "$0.05", "Completed", "Model: Galaxy", "", "", "", "Galaxy", "", "2025-01-05 10:00:00", ""])
    data = io.BytesIO()
    book.save(data)
    imported = client.post("/api/imei/import", headers=op, files={"file": ("export.xlsx", data.getvalue(), "application/octet-stream")})
    assert imported.status_code == 201, imported.text
    assert imported.json()["rows_inserted"] == 1 and imported.json()["rows_updated"] == 1
    assert client.get("/api/imei/orders", headers=op).json()["total"] == 3


def test_simultaneous_orders_for_one_imei_make_one_provider_call(
    client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str]
) -> None:
    """Issue 14 item 5 through the API: three operators order one IMEI at the same moment, from a provider
    that would accept repeats; one active intent per IMEI and service (unique in the database) lets one
    through, the others are told it is being (or was) ordered — one order, one charge."""
    import threading

    gsm_env.configure(duplicate_scope="off")
    headers = users.headers("operator")
    gate = threading.Barrier(3)
    answers: list[Any] = []

    def order() -> None:
        gate.wait()
        answers.append(client.post("/api/imei/orders", headers=headers, json={"imei": imei(60), "service_id": SERVICE}))

    threads = [threading.Thread(target=order) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(a.status_code for a in answers) == [202, 202, 202], [a.text for a in answers]
    bodies = [a.json() for a in answers]
    assert sorted(b["to_send"] for b in bodies) == [0, 0, 1], bodies
    for body in bodies:
        if body["to_send"] == 0:
            assert body["job_id"] is None and body["summary"]["duplicates_in_history"] == 1
            assert body["skipped"][0]["reason"].startswith(("being ordered", "already ordered")), body
    assert gsm_env.stats()["orders_per_imei"] == {imei(60): 1}
    orders = client.get("/api/imei/orders", params={"imei": imei(60)}, headers=headers).json()["items"]
    assert [o["state"] for o in orders] == ["placed"]
