"""OS rules changed: a preview that says who moves where, then a background re-evaluation in both directions that
leaves manual and HLR decisions alone; versionless iOS/Android handled by explicit rules."""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from sqlalchemy import func, select
from tests.support import login

from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts, lookup, set_status
from phoneops.numbers.models import OsRuleSet
from phoneops.numbers.osrules import DEFAULT_RULES, classify, rules_to_dicts
from phoneops.voluum import traffic

SEEN = {  # number -> the OS the tracker saw it with
    "+447400100001": "Android 9",   # monitor
    "+447400100002": "Android 6",   # blacklist
    "+447400100003": "Windows 8",   # unknown
    "+447400100004": "IOS",         # versionless iOS: whitelist (explicit rule)
    "+447400100005": "Android 6",   # manual whitelist on top
    "+447400100006": "Android 9",   # HLR blacklist on top
}


def seed() -> None:
    with session_scope() as session:
        rows = [("src-a", {"customVariable1": n[1:], "osVersion": os, "visits": 1}) for n, os in SEEN.items()]
        traffic.store_day(session, SYSTEM, date(2026, 1, 5), rows)
        set_status(session, SYSTEM, "+447400100005", "whitelist", "VIP", region="GB")
        apply_verdicts(session, SYSTEM, [Verdict("+447400100006", "blacklist", Authority.hlr, "HLR_FAILED", "HLR")])


def relaxed() -> list[dict[str, Any]]:
    """The defaults with 'Android 7 and older' relaxed to monitor and Windows 8 added to monitor."""
    rules = rules_to_dicts(DEFAULT_RULES)
    for rule in rules:
        if rule["os"] == "android" and rule["max_version"] == 7:
            rule["status"] = "monitor"
    rules.append({"os": "windows", "min_version": 8, "max_version": 8, "status": "monitor", "note": "Windows 8"})
    return rules


def statuses() -> dict[str, str | None]:
    with session_scope() as session:
        return {n: lookup(session, SYSTEM, n, "GB").status for n in SEEN}


def test_versionless_ios_and_android_have_explicit_rules() -> None:
    for text in ("IOS", "iOS", "iPhone OS", "iOS beta"):
        verdict = classify(text)
        assert verdict.status is not None and verdict.status.value == "whitelist", text
        assert verdict.rule is not None and verdict.rule.missing_version
    assert classify("Android").status is not None and classify("Android").status.value == "monitor"  # type: ignore[union-attr]


def test_preview_then_apply_moves_exactly_what_it_said(client: Any, users: Any, inline_jobs: list[str]) -> None:
    seed()
    before = statuses()
    assert before == {"+447400100001": "monitor", "+447400100002": "blacklist", "+447400100003": None,
                      "+447400100004": "whitelist", "+447400100005": "whitelist", "+447400100006": "blacklist"}
    admin = users.headers("admin")
    preview = client.post("/api/numbers/os-rules/preview", json={"rules": relaxed()}, headers=admin)
    assert preview.status_code == 200, preview.text
    assert preview.json() == {"numbers": 6, "moving": 2, "moves": [
        {"from": "blacklist", "to": "monitor", "count": 1}, {"from": "none", "to": "monitor", "count": 1}]}
    assert statuses() == before  # a preview changes nothing
    assert client.post("/api/numbers/os-rules/preview", json={"rules": relaxed()},
                       headers=users.headers("operator")).status_code == 403

    applied = client.put("/api/numbers/os-rules", json={"rules": relaxed(), "note": "relax old Android"},
                         headers=admin)
    assert applied.status_code == 200, applied.text
    job_id = applied.headers["X-Job-Id"]
    assert job_id in inline_jobs
    after = statuses()
    assert after == {**before, "+447400100002": "monitor", "+447400100003": "monitor"}
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.status == "succeeded" and job.progress_done == job.progress_total == 6
        history = lookup(session, SYSTEM, "+447400100002", "GB").history
        assert (history[0]["source"], history[0]["previous_status"], history[0]["status"]) == (
            "OS_RULES", "blacklist", "monitor")
        kept = lookup(session, SYSTEM, "+447400100006", "GB")
        assert (kept.status, kept.authority) == ("blacklist", "hlr")
    assert client.post("/api/numbers/os-rules/preview", json={"rules": relaxed()},
                       headers=admin).json()["moving"] == 0
    # and back: the defaults again move both numbers back
    reset = client.post("/api/numbers/os-rules/reset", headers=admin)
    assert reset.status_code == 200 and reset.headers["X-Job-Id"]
    assert statuses() == before


def test_bad_rules_change_nothing(client: Any, users: Any, session: Any) -> None:
    admin = users.headers("admin")
    for bad in ([{"os": "android", "status": "greylist"}], [{"os": "", "status": "monitor"}], []):
        assert client.post("/api/numbers/os-rules/preview", json={"rules": bad}, headers=admin).status_code == 422
        assert client.put("/api/numbers/os-rules", json={"rules": bad}, headers=admin).status_code == 422
    assert session.scalar(select(func.count()).select_from(OsRuleSet)) == 0
    assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_the_rules_page_previews_and_applies(client: Any, users: Any, inline_jobs: list[str]) -> None:
    seed()
    users.create("admin", "amy")
    csrf = login(client, "amy")
    page = client.get("/numbers/rules")
    assert "strongest status wins" in page.text and "First matching rule wins" not in page.text
    shown = client.post("/numbers/rules", data={"rules_json": json.dumps(relaxed()), "note": "",
                                                "action": "preview", "csrf_token": csrf})
    assert shown.status_code == 200 and "data-rules-preview" in shown.text
    assert 'data-field="moving">2<' in shown.text
    bad = client.post("/numbers/rules", data={"rules_json": "[{\"os\": \"x\"}]", "action": "apply",
                                              "csrf_token": csrf})
    assert bad.status_code == 422 and "status" in bad.text
    done = client.post("/numbers/rules", data={"rules_json": json.dumps(relaxed()), "note": "n", "action": "apply",
                                               "csrf_token": csrf}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"].startswith("/jobs/")
    assert statuses()["+447400100002"] == "monitor"
