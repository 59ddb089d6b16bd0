"""HLR through the HTTP API and the CLI: lookups, confirmation, results, downloads, risky operators, outcomes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.hlr import risky
from phoneops.settings import reset_settings_cache
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET

NUMBERS = [f"+447911{n:06d}" for n in range(3000, 3012)]


@pytest.fixture
def hlr_env(hlr_sim: SimAdmin, hlr_sim_url: str, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    from phoneops.settings import reset_settings_cache

    for name, value in {"HLR_BASE_URL": hlr_sim_url, "HLR_BATCH_BASE_URL": hlr_sim_url, "DATABASE_URL": db_url,
                        "HLR_API_KEY": DEFAULT_API_KEY, "HLR_API_SECRET": DEFAULT_API_SECRET,
                        "HLR_POLL_EVERY_SECONDS": "0.02", "HLR_POLL_MAX_SECONDS": "20"}.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
    hlr_sim.configure(overrides={
        NUMBERS[0][1:]: {"live_status": "DEAD"},
        NUMBERS[1][1:]: {"live_status": "LIVE", "current_network_details": {"name": "EE Limited", "mccmnc": "23430"}},
    })
    yield hlr_sim
    reset_settings_cache()


def upload(client: Any, headers: dict[str, str], numbers: list[str]) -> str:
    body = ("msisdn,name\n" + "".join(f"{n},x\n" for n in numbers)).encode()
    response = client.post("/api/files", files={"file": ("list.csv", body, "text/csv")}, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_a_lookup_through_the_api(client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str]) -> None:
    op, viewer, admin = users.headers("operator"), users.headers("viewer"), users.headers("admin")
    file_id = upload(client, op, NUMBERS)
    created = client.post("/api/hlr/lookups", json={"file_id": file_id, "phone_column": "msisdn", "region": "GB",
                                                    "mode": "realtime"}, headers=op)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["estimate"] == {"rows": 12, "invalid": 0, "duplicates": 0, "numbers": 12, "fresh": 0, "to_lookup": 12,
                                "in_review": 0, "recently_paid": 0, "opted_out": 0, "not_mobile": 0,
                                "not_mobile_types": {}, "include_non_mobile": False, "credits_saved": "0",
                                "credits_estimate": "12", "budget": 1000, "ttl_days": 30, "needs_confirmation": False}
    lookup_id = body["id"]
    done = client.get(f"/api/hlr/lookups/{lookup_id}", headers=viewer).json()
    assert done["status"] == "succeeded" and done["counts"] == {"done": 12} and done["job"]["status"] == "succeeded"
    assert sum(done["breakdown"]["outcomes"].values()) == 12 and done["breakdown"]["outcomes"]["blacklist HLR_FAILED"] >= 1
    assert hlr_env.stats()["total_paid_lookups"] == 12
    assert [row["id"] for row in client.get("/api/hlr/lookups", headers=viewer).json()] == [lookup_id]

    masked = client.get(f"/api/hlr/lookups/{lookup_id}/results", headers=viewer).json()
    assert len(masked) == 12 and all("*" in r["number"] for r in masked)
    full = client.get(f"/api/hlr/lookups/{lookup_id}/results", params={"limit": 2}, headers=admin).json()
    assert [r["number"] for r in full] == NUMBERS[:2]
    assert full[0]["live_status"] == "DEAD" and full[0]["outcome"] == "blacklist" and full[0]["reason"] == "HLR_FAILED"

    assert client.get(f"/api/hlr/lookups/{lookup_id}/clean.csv", headers=viewer).status_code == 403
    clean = client.get(f"/api/hlr/lookups/{lookup_id}/clean.csv", headers=op)
    assert clean.status_code == 200 and clean.text.splitlines()[0] == "phone_number" and NUMBERS[1] in clean.text
    assert NUMBERS[0] not in clean.text
    raw = client.get(f"/api/hlr/lookups/{lookup_id}/raw.csv", headers=op)
    assert raw.status_code == 200 and len(raw.text.splitlines()) == 13
    audit = client.get("/api/audit", params={"action": "file.download"}, headers=admin).json()
    assert len(audit) == 2

    history = client.get("/api/hlr/numbers", params={"number": "07911 003000", "region": "GB"}, headers=viewer)
    assert history.status_code == 200 and history.json()[0]["live_status"] == "DEAD"
    assert "*" in history.json()[0]["number"]
    metrics = client.get("/metrics", headers=viewer).text
    assert 'phoneops_hlr_lookups{status="succeeded"} 1.0' in metrics and "phoneops_hlr_risky_operators 269.0" in metrics

    # A second lookup of the same numbers pays nothing: every result is fresh.
    again = client.post("/api/hlr/lookups", json={"file_id": file_id, "phone_column": "msisdn"}, headers=op).json()
    assert again["estimate"]["fresh"] == 12 and again["estimate"]["to_lookup"] == 0
    assert client.get(f"/api/hlr/lookups/{again['id']}", headers=viewer).json()["status"] == "succeeded"
    assert hlr_env.stats()["total_paid_lookups"] == 12


def test_confirmation_above_the_budget_and_errors(
    client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HLR_CONFIRM_ABOVE_CREDITS", "5")
    reset_settings_cache()
    op = users.headers("operator")
    file_id = upload(client, op, NUMBERS)
    waiting = client.post("/api/hlr/lookups", json={"file_id": file_id}, headers=op).json()
    assert waiting["status"] == "awaiting_confirmation" and waiting["estimate"]["needs_confirmation"]
    assert waiting["job"] is None and hlr_env.stats()["total_paid_lookups"] == 0
    assert client.post(f"/api/hlr/lookups/{waiting['id']}/resume", headers=op).status_code == 409
    confirmed = client.post(f"/api/hlr/lookups/{waiting['id']}/confirm", headers=op)
    assert confirmed.status_code == 200 and confirmed.json()["confirmed_by"] == "operator-user"
    assert client.get(f"/api/hlr/lookups/{waiting['id']}", headers=op).json()["status"] == "succeeded"
    assert client.post(f"/api/hlr/lookups/{waiting['id']}/confirm", headers=op).status_code == 409

    missing = client.post("/api/hlr/lookups", json={"source": "file"}, headers=op)
    assert missing.status_code == 422 and "file_id" in missing.json()["error"]["message"]
    no_list = client.post("/api/hlr/lookups", json={"source": "list"}, headers=op)
    assert no_list.status_code == 422
    empty = client.post("/api/hlr/lookups", json={"source": "list", "status": "whitelist"}, headers=op)
    assert empty.status_code == 422 and "no valid phone number" in empty.json()["error"]["message"]
    assert client.get("/api/hlr/lookups/999", headers=op).status_code == 404
    assert client.post("/api/hlr/lookups", json={"file_id": file_id}, headers=users.headers("viewer")).status_code == 403


def test_risky_operators_and_outcomes_are_admin_data(client: Any, users: Any, hlr_env: SimAdmin) -> None:
    viewer, op, admin = users.headers("viewer"), users.headers("operator"), users.headers("admin")
    listed = client.get("/api/hlr/risky-operators", headers=viewer).json()
    assert len(listed) == 269 and {"skyuklimited", "wirelesslogiclimited"} <= {r["normalized"] for r in listed}
    assert client.get("/api/hlr/risky-operators", params={"q": "Sky UK"}, headers=viewer).json()[0]["name"] == \
        "skyuklimited"
    assert client.post("/api/hlr/risky-operators", json={"name": "X"}, headers=op).status_code == 403
    added = client.post("/api/hlr/risky-operators", json={"name": "Some Net Ltd", "mccmnc": "234-99"}, headers=admin)
    assert added.status_code == 201 and added.json()["normalized"] == "somenetltd" and added.json()["mccmnc"] == "23499"
    assert client.post("/api/hlr/risky-operators", json={"mccmnc": "12"}, headers=admin).status_code == 422
    first = listed[0]["id"]
    assert client.delete(f"/api/hlr/risky-operators/{first}", headers=admin).json() == {"count": 269}
    assert client.post("/api/hlr/risky-operators/restore", headers=admin).json() == {"count": 1}

    rules = {r["live_status"]: r for r in client.get("/api/hlr/outcomes", headers=viewer).json()}
    assert rules["LIVE_RISKY"]["reason"] == "HLR_RISKY_NETWORK" and rules["NO_COVERAGE"]["action"] == "monitor"
    changed = client.put("/api/hlr/outcomes", json={"NO_COVERAGE": {"action": "blacklist", "reason": "hlr_nocov"}},
                         headers=admin)
    assert changed.status_code == 200
    assert {r["live_status"]: r for r in changed.json()}["NO_COVERAGE"]["reason"] == "HLR_NOCOV"
    bad = client.put("/api/hlr/outcomes", json={"DEAD": {"action": "blacklist"}}, headers=admin)
    assert bad.status_code == 422 and "needs a reason" in bad.json()["error"]["message"]
    assert client.put("/api/hlr/outcomes", json={}, headers=op).status_code == 403
    reset = client.post("/api/hlr/outcomes/reset", headers=admin).json()
    assert not any(r["overridden"] for r in reset)


# --- CLI ------------------------------------------------------------------------------------------------


def test_cli_lookup_confirm_status_and_download(
    hlr_env: SimAdmin, inline_jobs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.hlr.cli import app

    runner = CliRunner()
    source = tmp_path / "numbers.csv"
    source.write_text("phone\n" + "\n".join(n.replace("+44", "0") for n in NUMBERS) + "\n")
    monkeypatch.setenv("HLR_CONFIRM_ABOVE_CREDITS", "5")
    reset_settings_cache()
    waiting = runner.invoke(app, ["lookup", str(source), "--region", "GB"])
    assert waiting.exit_code == 3, waiting.output
    assert "awaiting confirmation" in waiting.output and "phoneops hlr confirm 1" in waiting.output
    assert hlr_env.stats()["total_paid_lookups"] == 0
    confirmed = runner.invoke(app, ["confirm", "1"])
    assert confirmed.exit_code == 0, confirmed.output
    assert "succeeded" in confirmed.output and "12 looked up" in confirmed.output.replace(",", "")
    status = " ".join(runner.invoke(app, ["status", "1"]).output.split())  # unwrapped
    assert f"credits spent {hlr_env.stats()['credits_spent']:g}" in status and "outcomes: clean" in status
    listed = runner.invoke(app, ["list"])
    assert "succeeded" in listed.output
    out = tmp_path / "clean.csv"
    downloaded = runner.invoke(app, ["download", "1", "-o", str(out)])
    assert downloaded.exit_code == 0 and out.read_text().startswith("phone_number\n")
    assert runner.invoke(app, ["lookup", "--list", "whitelist", "--yes"]).exit_code == 1  # nobody listed
    assert runner.invoke(app, ["lookup"]).exit_code == 2
    assert runner.invoke(app, ["status", "99"]).exit_code == 1
    added = runner.invoke(app, ["risky", "add", "--name", "Test Mobile", "--mccmnc", "23488"])
    assert added.exit_code == 0 and "testmobile" in added.output
    assert "270 risky operators" in runner.invoke(app, ["risky", "list", "test"]).output


FIXED, FREEPHONE = "+441212345678", "+448001234567"  # a fixed line and a toll-free number: never mobile


def test_the_estimate_leaves_out_opted_out_and_non_mobile_numbers_and_shows_the_saving(
    client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str]
) -> None:
    op = users.headers("operator")
    assert client.post("/api/numbers/optouts", json={"number": NUMBERS[5], "reason": "sms_stop"},
                       headers=op).status_code == 201
    file_id = upload(client, op, [*NUMBERS[:6], FIXED, FREEPHONE])
    created = client.post("/api/hlr/lookups", json={"file_id": file_id, "region": "GB", "mode": "realtime"},
                          headers=op)
    assert created.status_code == 201, created.text
    e = created.json()["estimate"]
    assert (e["rows"], e["numbers"], e["to_lookup"], e["credits_estimate"]) == (8, 5, 5, "5")
    assert (e["opted_out"], e["not_mobile"], e["not_mobile_types"]) == (1, 2, {"fixed_line": 1, "toll_free": 1})
    assert (e["credits_saved"], e["include_non_mobile"]) == ("3", False)
    done = client.get(f"/api/hlr/lookups/{created.json()['id']}", headers=op).json()
    assert done["status"] == "succeeded" and done["counts"] == {"done": 5}
    assert hlr_env.stats()["total_paid_lookups"] == 5  # the three left out were never sent

    # asked for: the non-mobile numbers are looked up too; the opted-out one never is
    again = client.post("/api/hlr/lookups", json={"file_id": file_id, "region": "GB", "mode": "realtime",
                                                  "include_non_mobile": True}, headers=op).json()["estimate"]
    assert (again["numbers"], again["fresh"], again["to_lookup"]) == (7, 5, 2)
    assert (again["opted_out"], again["not_mobile"], again["credits_saved"], again["include_non_mobile"]) == (
        1, 0, "1", True)

    # nothing left to look up: a clear 422, no lookup stored
    before = len(client.get("/api/hlr/lookups", headers=op).json())
    only = upload(client, op, [FIXED, FREEPHONE, NUMBERS[5]])
    refused = client.post("/api/hlr/lookups", json={"file_id": only, "region": "GB"}, headers=op)
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["message"] == (
        "nothing to look up: 1 opted out, 2 not mobile (include_non_mobile looks them up anyway)")
    assert len(client.get("/api/hlr/lookups", headers=op).json()) == before


def test_cli_estimate_shows_what_is_left_out_and_the_saving(
    client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str], tmp_path: Path
) -> None:
    from phoneops.hlr.cli import app

    assert client.post("/api/numbers/optouts", json={"number": NUMBERS[0], "reason": "complaint"},
                       headers=users.headers("operator")).status_code == 201
    source = tmp_path / "numbers.csv"
    source.write_text("phone\n" + "\n".join([*NUMBERS[:3], FIXED, FREEPHONE]) + "\n")
    runner = CliRunner()
    estimated = runner.invoke(app, ["lookup", str(source), "--region", "GB", "--estimate"])
    assert estimated.exit_code in (0, 3), estimated.output
    text = " ".join(estimated.output.split())
    assert "-> 2 numbers" in text and "2 to look up ≈ 2 credits" in text
    assert "left out, never paid: 1 opted out, 2 not mobile (fixed line 1, toll free 1) -> saves ≈ 3 credits" in text
    included = runner.invoke(app, ["lookup", str(source), "--region", "GB", "--estimate", "--include-non-mobile"])
    text = " ".join(included.output.split())
    assert "-> 4 numbers" in text and "1 opted out, 0 not mobile -> saves ≈ 1 credits" in text
    assert hlr_env.stats()["total_paid_lookups"] == 0  # estimates only
