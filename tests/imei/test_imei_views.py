"""IMEI pages through the real login and CSRF-protected forms (TestClient; jobs run inline)."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from openpyxl import Workbook
from stdnum import luhn

from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER
from support import login

SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35112200{serial:06d}"
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


def as_user(client: Any, users: Any, role: str) -> str:
    users.create(role, f"{role}-web")
    return login(client, f"{role}-web")


def test_pages_submit_batch_history_order_stats(
    client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str]
) -> None:
    csrf = as_user(client, users, "operator")
    overview = client.get("/imei")
    assert overview.status_code == 200 and "Device checks" in overview.text
    assert "not available from the provider" in overview.text
    services = client.get("/imei/services?search=samsung")
    assert "Samsung Info + Carrier Check" in services.text and "iPhone Full Info" not in services.text
    form = client.get(f"/imei/submit?service_id={SERVICE}")
    assert form.status_code == 200 and f'value="{SERVICE}" selected' in form.text
    text = "\n".join([imei(1), imei(2), imei(2), "42"])
    preview = client.post("/imei/submit", data={"csrf_token": csrf, "service_id": SERVICE, "text": text,
                                                 "action": "preview"})
    assert preview.status_code == 200
    assert "2 to send · 1 invalid · 1 repeated in the list" in preview.text
    assert "$0.16" in preview.text
    assert gsm_env.stats()["calls"].get("placeorder", 0) == 0  # a preview sends nothing
    sent = client.post("/imei/submit", data={"csrf_token": csrf, "service_id": SERVICE, "text": text},
                       follow_redirects=False)
    assert sent.status_code == 303
    batch_url = sent.headers["location"]
    page = client.get(batch_url)
    assert 'data-counter="placed">2<' in page.text and "data-job-id" in page.text
    assert 'data-job-status="succeeded"' in page.text
    history = client.get("/imei/history", params={"imeis": f"{imei(1)}\n{imei(2)}"})
    assert history.text.count('data-order-state="placed"') == 2
    order_link = re.search(r'href="(/imei/orders/\d+)"', history.text)
    assert order_link
    gsm_env.advance(1000)
    refreshed = client.post(order_link.group(1) + "/refresh", data={"csrf_token": csrf}, follow_redirects=True)
    assert "Status refreshed: Completed" in refreshed.text and 'data-field="result"' in refreshed.text
    csv_export = client.get("/imei/history/export?format=csv")
    assert csv_export.status_code == 200 and csv_export.text.startswith("SERVICE,IMEI NO.,CREDITS,STATUS")
    stats = client.get("/imei/stats")
    assert 'data-field="total-orders">2<' in stats.text
    dashboard = client.get("/")
    assert "IMEI spend today" in dashboard.text and "$0.16" in dashboard.text
    sync = client.post("/imei/sync", data={"csrf_token": csrf}, follow_redirects=False)
    assert sync.status_code == 303 and sync.headers["location"].startswith("/jobs/")


def test_history_import_form(client: Any, users: Any, db_url: str) -> None:
    csrf = as_user(client, users, "operator")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["SERVICE", "IMEI NO.", "CREDITS", "STATUS", "CODE", "IMEI 2", "CARRIER", "SIMLOCK", "MODEL", "FMI",
                  "ORDER DATE", "NOTES"])
    sheet.append(["Blacklist Status (GSMA)", imei(7), "$0.03", "Completed", "Clean", "", "", "", "", "",
                  "2025-01-05 10:00:00", ""])
    data = io.BytesIO()
    book.save(data)
    done = client.post("/imei/history/import", data={"csrf_token": csrf},
                       files={"file": ("export.xlsx", data.getvalue())}, follow_redirects=True)
    assert "Imported export.xlsx: 1 new, 0 updated, 0 skipped" in done.text
    assert imei(7) in done.text
    bad = client.post("/imei/history/import", data={"csrf_token": csrf},
                      files={"file": ("x.csv", b"a,b\n1,2\n")}, follow_redirects=True)
    assert "Import failed" in bad.text


def test_over_budget_form_needs_admin_and_invalid_key_shows(
    client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("IMEI_DAILY_BUDGET", "0.10")
    reset_settings_cache()
    csrf = as_user(client, users, "operator")
    text = "\n".join(imei(i) for i in range(3))
    refused = client.post("/imei/submit", data={"csrf_token": csrf, "service_id": SERVICE, "text": text})
    assert refused.status_code == 409
    assert "over the daily budget" in refused.text and "an admin must confirm" in refused.text
    assert "confirm_over_budget" not in refused.text  # the checkbox is for admins only
    monkeypatch.setenv("IMEI_DAILY_BUDGET", "100")
    monkeypatch.setenv("GSM_FUSION_API_KEY", "BAD0-BAD0-BAD0-BAD0-BAD1")
    reset_settings_cache()
    sent = client.post("/imei/submit", data={"csrf_token": csrf, "service_id": SERVICE, "text": text},
                       follow_redirects=True)
    assert "GSM Fusion rejected the API key (Invalid API Key!)" in sent.text
    assert "Resume batch" in sent.text


def test_viewer_cannot_submit_and_unconfigured_provider_is_explained(client: Any, users: Any, db_url: str) -> None:
    csrf = as_user(client, users, "viewer")
    assert client.get("/imei").status_code == 200
    assert client.get("/imei/submit").status_code == 403
    assert client.post("/imei/submit", data={"csrf_token": csrf, "text": imei(1)}).status_code == 403
    page = client.get("/imei/services", headers={"Accept": "text/html"})
    assert page.status_code == 503 and "GSM_FUSION_API_KEY" in page.text


def test_preview_keeps_the_chosen_file_for_the_submit(
    client: Any, users: Any, gsm_env: SimAdmin, inline_jobs: list[str]
) -> None:
    """A browser cannot re-send a file input: the preview keeps the file, the submit after it uses it."""
    csrf = as_user(client, users, "operator")
    upload = f"imei\n{imei(21)}\n{imei(22)}\n{imei(23)}\n".encode()
    preview = client.post("/imei/submit", data={"csrf_token": csrf, "service_id": SERVICE, "action": "preview"},
                          files={"file": ("phones.csv", upload, "text/csv")})
    assert preview.status_code == 200 and "3 to send" in preview.text
    kept = re.search(r'name="file_id" value="([0-9a-f-]{36})"', preview.text)
    assert kept and "phones.csv" in preview.text
    # Preview and Submit are told apart (different look and words)
    assert 'value="preview" class="secondary"' in preview.text and "Submit and pay" in preview.text
    assert gsm_env.stats()["calls"].get("placeorder", 0) == 0
    # another user cannot use someone else's kept file
    from fastapi.testclient import TestClient

    other = TestClient(client.app)  # a second browser, its own cookies
    users.create("operator", "other-op")
    other_csrf = login(other, "other-op")
    refused = other.post("/imei/submit", data={"csrf_token": other_csrf, "service_id": SERVICE,
                                                     "file_id": kept.group(1), "action": "preview"})
    assert refused.status_code == 422 and "no longer available" in refused.text
    # the submit sends no file field at all (the browser dropped it), only the kept id
    empty_file = ("", b"", "application/octet-stream")
    sent = client.post("/imei/submit", data={"csrf_token": csrf, "service_id": SERVICE, "file_id": kept.group(1),
                                             "action": "submit"}, files={"file": empty_file},
                       follow_redirects=False)
    assert sent.status_code == 303, sent.text[:400]
    page = client.get(sent.headers["location"])
    assert 'data-counter="placed">3<' in page.text and "phones.csv" in page.text
    assert gsm_env.stats()["calls"].get("placeorder", 0) == 3
    # "don't use this file": only the typed IMEIs count
    dropped = client.post("/imei/submit", data={"csrf_token": csrf, "service_id": SERVICE, "file_id": kept.group(1),
                                                "drop_file": "true", "text": imei(30), "action": "preview"})
    assert "1 to send" in dropped.text and 'name="file_id"' not in dropped.text

