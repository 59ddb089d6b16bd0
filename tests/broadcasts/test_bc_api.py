"""The broadcasts HTTP API and pages against the simulators: import job, days, history downloads, cost
pushes, the live stream (server-sent events), analytics (JSON and CSV), roles and unconfigured providers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from phoneops.simulators._server import SimAdmin, serve_in_thread
from phoneops.simulators.messagewhiz import DEFAULT_API_KEY
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY, VoluumSimConfig
from phoneops.simulators.voluum import create_app as voluum_app
from support import login

DAY = date(2024, 3, 13)


@pytest.fixture(scope="module")
def voluum_url() -> Iterator[str]:
    config = VoluumSimConfig(start_date="2024-03-12", days=3, visits_per_day=150, rate_limit_per_s=None,
                             retry_after_s=0.0)
    with serve_in_thread(voluum_app(config)) as url:
        yield url


def _reset() -> None:
    from phoneops.broadcasts.provider import reset_clients
    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.provider import reset_clients as reset_voluum

    reset_settings_cache()
    reset_clients()
    reset_voluum()


@pytest.fixture
def providers(mw_sim: SimAdmin, mw_sim_url: str, voluum_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    with SimAdmin(voluum_url) as voluum:
        voluum.reset()
        monkeypatch.setenv("MESSAGEWHIZ_BASE_URL", mw_sim_url)
        monkeypatch.setenv("MESSAGEWHIZ_API_KEY", DEFAULT_API_KEY)
        monkeypatch.setenv("VOLUUM_BASE_URL", voluum_url)
        monkeypatch.setenv("VOLUUM_ACCESS_ID", DEFAULT_ACCESS_ID)
        monkeypatch.setenv("VOLUUM_ACCESS_KEY", DEFAULT_ACCESS_KEY)
        _reset()
        yield voluum
        monkeypatch.undo()
        _reset()


def events(text: str) -> list[tuple[str, Any]]:
    found = []
    for block in text.split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line and not line.startswith(":"))
        if "event" in lines:
            found.append((lines["event"], json.loads(lines["data"])))
    return found


def test_import_download_push_and_read_through_the_api(
    client: Any, users: Any, providers: SimAdmin, inline_jobs: list[str]
) -> None:
    operator, viewer = users.headers("operator"), users.headers("viewer")
    assert client.post("/api/broadcasts/days", json={"day": str(DAY)}, headers=viewer).status_code == 403
    response = client.post("/api/broadcasts/days", json={"day": str(DAY)}, headers=operator)
    assert response.status_code == 202, response.text
    job = client.get(f"/api/jobs/{response.json()['id']}", headers=viewer).json()
    assert job["status"] == "succeeded", job
    assert job["result"]["broadcasts"] == 12 and job["result"]["costs"]["failed"] == 0

    listed = client.get("/api/broadcasts/days", headers=viewer).json()
    assert [d["day"] for d in listed] == [str(DAY)] and listed[0]["with_notes"] >= 1
    detail = client.get(f"/api/broadcasts/days/{DAY}", headers=viewer).json()
    assert len(detail["broadcasts"]) == 12 and detail["campaigns"]
    chunked = [b for b in detail["broadcasts"] if "_chunk" in b["name"]]
    assert chunked
    name = chunked[0]["group_name"]
    filtered = client.get(f"/api/broadcasts/days/{DAY}", params={"search": name}, headers=viewer).json()
    assert filtered["broadcasts"] and all(name in b["name"] for b in filtered["broadcasts"])

    history = client.get(f"/api/broadcasts/days/{DAY}/history.csv", headers=viewer)
    assert history.status_code == 200 and "attachment" in history.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(history.text)))
    assert len(rows) == 12 and {r["Broadcast ID"] for r in rows} == {str(b["broadcast_id"]) for b in detail["broadcasts"]}
    xlsx = client.get(f"/api/broadcasts/days/{DAY}/history.xlsx", headers=viewer)
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    assert client.get(f"/api/broadcasts/days/{DAY}/history.pdf", headers=viewer).status_code == 404
    assert client.get("/api/broadcasts/days/2024-01-01", headers=viewer).status_code == 404

    pushes = client.get("/api/broadcasts/costs", params={"day": str(DAY)}, headers=viewer).json()
    assert pushes and {p["outcome"] for p in pushes} == {"sent"}
    assert len(providers.orders()) == len(pushes)
    again = client.post("/api/broadcasts/costs", json={"day": str(DAY)}, headers=operator)
    assert again.status_code == 200 and {p["outcome"] for p in again.json()} == {"unchanged"}
    assert len(providers.orders()) == len(pushes)
    assert client.post("/api/broadcasts/costs", json={"day": str(DAY)}, headers=viewer).status_code == 403

    analytics = client.get("/api/broadcasts/analytics", params={"from": "2024-03-10", "to": "2024-03-16"},
                           headers=viewer).json()
    assert len(analytics["days"]) == 7
    day_point = next(p for p in analytics["days"] if p["key"] == str(DAY))
    assert day_point["broadcasts"] == 12 and float(day_point["cost"]) > 0
    assert analytics["total"]["broadcasts"] == 12
    assert abs(float(analytics["total"]["cost"]) - sum(float(p["cost"]) for p in analytics["campaigns"])) < 0.02
    assert any(p["label"] == "no campaign" for p in analytics["campaigns"])
    assert analytics["total"]["visits"] > 0 and 0 < analytics["total"]["ctr"] < 100
    campaign = next(p for p in analytics["campaigns"] if p["key"])
    one = client.get("/api/broadcasts/analytics", params={"from": "2024-03-10", "to": "2024-03-16",
                                                          "campaign": campaign["key"]}, headers=viewer).json()
    assert one["total"]["broadcasts"] == campaign["broadcasts"]
    per_campaign = client.get("/api/broadcasts/analytics.csv", params={"from": "2024-03-10", "to": "2024-03-16",
                                                                       "by": "campaigns"}, headers=viewer)
    lines = list(csv.reader(io.StringIO(per_campaign.text)))
    assert lines[0][:3] == ["campaign_id", "campaign", "broadcasts"] and len(lines) == len(analytics["campaigns"]) + 1
    per_day = client.get("/api/broadcasts/analytics.csv", params={"from": "2024-03-10", "to": "2024-03-16"},
                         headers=viewer)
    assert next(iter(csv.reader(io.StringIO(per_day.text))))[0] == "day"
    bad = client.get("/api/broadcasts/analytics", params={"from": "2024-03-16", "to": "2024-03-10"}, headers=viewer)
    assert bad.status_code == 422

    status = client.get("/api/broadcasts/status", headers=viewer).json()
    assert status == {"configured": True, "voluum_configured": True, "last_day": str(DAY), "daily_at": "05:00 UTC",
                      "extra": {}}


def test_the_live_stream_sends_rows_grouped_and_filtered(client: Any, users: Any, providers: SimAdmin) -> None:
    viewer = users.headers("viewer")
    with client.stream("GET", "/api/broadcasts/live", params={"day": str(DAY)}, headers=viewer) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        body = "".join(response.iter_text())
    found = events(body)
    kinds = [k for k, _ in found]
    assert kinds[-1] == "done" and "pass" in kinds
    rows = [d for k, d in found if k == "row"]
    assert len(rows) == 12
    sends = [r["send_date"] for r in rows]
    assert sends == sorted(sends, reverse=True)  # as fetched: newest first
    groups = {d["group"]: d for k, d in found if k == "group"}
    assert set(groups) == {r["group"] for r in rows}
    for name, total in groups.items():
        members = [r for r in rows if r["group"] == name]
        assert total["broadcasts"] == len(members)
        assert total["recipients"] == sum(r["recipients"] for r in members)
    chunked = next(r for r in rows if "_chunk" in r["name"])
    with client.stream("GET", "/api/broadcasts/live", params={"day": str(DAY), "search": chunked["group"].upper()},
                       headers=viewer) as response:
        filtered = [d for k, d in events("".join(response.iter_text())) if k == "row"]
    assert filtered and all(chunked["group"].lower() in r["name"].lower() for r in filtered)
    assert len(filtered) < len(rows)


def test_unconfigured_providers_answer_503(client: Any, users: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MESSAGEWHIZ_API_KEY", raising=False)
    _reset()
    operator = users.headers("operator")
    response = client.post("/api/broadcasts/days", json={"day": str(DAY)}, headers=operator)
    assert response.status_code == 503 and "MESSAGEWHIZ_API_KEY" in response.json()["error"]["message"]
    assert client.get("/api/broadcasts/live", headers=operator).status_code == 503
    future = client.post("/api/broadcasts/days", json={"day": "2999-01-01"}, headers=operator)
    assert future.status_code == 422


def test_pages_show_days_stats_costs_live_and_analytics(
    client: Any, users: Any, providers: SimAdmin, inline_jobs: list[str]
) -> None:
    users.create("operator", "olga")
    csrf = login(client, "olga")
    page = client.get("/broadcasts")
    assert page.status_code == 200 and "Import a day" in page.text
    response = client.post("/broadcasts/import", data={"day": str(DAY), "push_costs": "true", "csrf_token": csrf},
                           follow_redirects=False)
    assert response.status_code == 303
    page = client.get("/broadcasts")
    assert f'data-day="{DAY}"' in page.text and "history.xlsx" in page.text
    day_page = client.get(f"/broadcasts/days/{DAY}")
    assert day_page.status_code == 200
    assert day_page.text.count("data-broadcast=") == 12 and "data-group=" in day_page.text
    assert "no {{link:N}}" in day_page.text and 'data-field="outcome">sent' in day_page.text
    pushed = client.post(f"/broadcasts/days/{DAY}/costs", data={"csrf_token": csrf}, follow_redirects=True)
    assert pushed.status_code == 200 and 'data-field="outcome">unchanged' in pushed.text
    missing = client.post(f"/broadcasts/days/{DAY}/costs", data={}, follow_redirects=False)
    assert missing.status_code == 403  # no CSRF token
    live = client.get("/broadcasts/live?search=list")
    assert live.status_code == 200 and "/static/broadcasts.js" in live.text and 'value="list"' in live.text
    analytics = client.get("/broadcasts/analytics", params={"date_from": "2024-03-01", "date_to": "2024-03-20"})
    assert analytics.status_code == 200 and "<svg" in analytics.text and "CSV per campaign" in analytics.text
    assert client.get("/static/broadcasts.js").status_code == 200
    cards = client.get("/")
    assert f"Broadcast cost on {DAY}" in cards.text
    metrics = client.get("/metrics", headers=users.headers("viewer")).text
    assert "phoneops_broadcasts_last_day_cost" in metrics and 'phoneops_broadcasts_cost_pushes{outcome="unchanged"}' in metrics
