"""The HLR estimate as a background job, through the API and the CLI: it runs, reports its stages, its result
equals the estimate a lookup computes of the same file, a bad file fails it with a clear error, and nothing
stored changes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from tests.hlr.test_hlr_api import FIXED, FREEPHONE, NUMBERS, hlr_env, upload
from typer.testing import CliRunner

from phoneops.core.db import session_scope
from phoneops.core.models import StoredFile
from phoneops.hlr.estimates import ESTIMATE_KIND, STAGES
from phoneops.hlr.models import HlrLookup, HlrLookupItem, HlrResult
from phoneops.numbers.models import PhoneNumber
from phoneops.simulators._server import SimAdmin

__all__ = ["hlr_env"]


def stored() -> dict[str, int]:
    with session_scope() as session:
        return {model.__name__: int(session.scalar(select(func.count()).select_from(model)) or 0)
                for model in (HlrLookup, HlrLookupItem, HlrResult, PhoneNumber, StoredFile)}


def test_the_estimate_job_through_the_api(client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str]) -> None:
    op, viewer = users.headers("operator"), users.headers("viewer")
    assert client.post("/api/numbers/optouts", json={"number": NUMBERS[5], "reason": "sms_stop"},
                       headers=op).status_code == 201
    looked = client.post("/api/hlr/lookups", json={"file_id": upload(client, op, NUMBERS[:2]), "region": "GB",
                                                   "mode": "realtime"}, headers=op)
    assert looked.status_code == 201 and hlr_env.stats()["total_paid_lookups"] == 2  # two fresh results
    national = [n.replace("+44", "0") for n in NUMBERS[:4]]  # the same numbers written again: duplicates
    file_id = upload(client, op, [*NUMBERS[:8], FIXED, FREEPHONE, *national, "not a number", "12"])
    before = stored()

    for include in (False, True):
        started = client.post("/api/hlr/estimates", json={"file_id": file_id, "region": "GB",
                                                          "include_non_mobile": include}, headers=op)
        assert started.status_code == 202, started.text
        job = client.get(f"/api/jobs/{started.json()['id']}", headers=viewer).json()
        assert (job["kind"], job["status"], job["error"]) == (ESTIMATE_KIND, "succeeded", None)
        assert job["progress_done"] == job["progress_total"] == len(STAGES)
        result = job["result"]
        assert stored() == before  # nothing but the job row
        # the direct computation: a lookup of the same file, estimated only (it stores its items)
        direct = client.post("/api/hlr/lookups", json={"file_id": file_id, "region": "GB", "start": False,
                                                       "include_non_mobile": include}, headers=op)
        assert direct.status_code == 201, direct.text
        assert result == {**direct.json()["estimate"], "source": direct.json()["source"]}
        assert (result["rows"], result["invalid"], result["duplicates"], result["fresh"]) == (16, 2, 4, 2)
        assert result["opted_out"] == 1 and result["not_mobile"] == (0 if include else 2)
        before = stored()
    assert result["to_lookup"] == 9 - 2  # 7 mobiles and 2 non-mobiles, less the 2 fresh
    assert hlr_env.stats()["total_paid_lookups"] == 2  # estimates never pay

    # bad input: a clear error, and nothing stored
    empty = client.post("/api/files", files={"file": ("empty.csv", b"\x00\x01binary\x00", "text/csv")}, headers=op)
    assert empty.status_code == 201, empty.text
    before = stored()
    failed = client.post("/api/hlr/estimates", json={"file_id": empty.json()["id"], "region": "GB"}, headers=op)
    job = client.get(f"/api/jobs/{failed.json()['id']}", headers=op).json()
    assert job["status"] == "failed" and job["error"].startswith("cannot read empty.csv: the file contains NUL bytes")
    nothing = client.post("/api/hlr/estimates", json={"file_id": upload(client, op, ["nope", "123"]), "region": "GB"},
                          headers=op)
    assert client.get(f"/api/jobs/{nothing.json()['id']}", headers=op).json()["error"] == (
        "no valid phone number in the source")
    wrong_region = client.post("/api/hlr/estimates", json={"file_id": file_id, "region": "ZZ"}, headers=op)
    assert wrong_region.status_code == 422 and "unknown region code 'ZZ'" in wrong_region.json()["error"]["message"]
    missing = client.post("/api/hlr/estimates", json={"file_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12}, headers=op)
    assert missing.status_code == 404
    assert client.post("/api/hlr/estimates", json={"file_id": file_id}, headers=viewer).status_code == 403
    assert stored()["HlrLookup"] == before["HlrLookup"] and stored()["HlrLookupItem"] == before["HlrLookupItem"]


def test_the_estimate_job_from_the_cli(
    client: Any, users: Any, hlr_env: SimAdmin, inline_jobs: list[str], tmp_path: Path
) -> None:
    from phoneops.hlr.cli import app

    assert client.post("/api/numbers/optouts", json={"number": NUMBERS[0], "reason": "complaint"},
                       headers=users.headers("operator")).status_code == 201
    source = tmp_path / "numbers.csv"
    source.write_text("phone\n" + "\n".join([*NUMBERS[:3], FIXED, FREEPHONE, NUMBERS[1]]) + "\n")
    runner = CliRunner()
    before = stored()
    shown = runner.invoke(app, ["estimate", str(source), "--region", "GB"])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "-> 2 numbers" in text and "2 to look up ≈ 2 credits" in text and "job " in text
    assert "left out, never paid: 1 opted out, 2 not mobile -> saves ≈ 3 credits" in text
    as_json = runner.invoke(app, ["estimate", str(source), "--region", "GB", "--json", "--include-non-mobile"])
    assert as_json.exit_code == 0, as_json.output
    result = json.loads(as_json.output[as_json.output.index("{"):])
    assert (result["numbers"], result["duplicates"], result["opted_out"], result["not_mobile"]) == (4, 1, 1, 0)
    after = stored()
    assert after == {**before, "StoredFile": before["StoredFile"] + 2}  # the two uploads, nothing else
    bad = tmp_path / "bad.csv"
    bad.write_text("phone\nnope\n")
    refused = runner.invoke(app, ["estimate", str(bad), "--region", "GB"])
    assert refused.exit_code == 1 and "no valid phone number in the source" in refused.output
    assert runner.invoke(app, ["estimate", str(tmp_path / "missing.csv")]).exit_code == 2
    assert runner.invoke(app, ["estimate"]).exit_code == 2
    assert hlr_env.stats()["total_paid_lookups"] == 0
