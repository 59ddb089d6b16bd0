"""Opt-outs: STOP replies, opt-out files, the admin-only lift, and an opt-out that no list change can lift."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from phoneops.core.db import session_scope
from phoneops.core.models import AuditEvent
from phoneops.core.security import SYSTEM
from phoneops.numbers import optouts
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.numbers.vault import get_vault

UK = "+447911123456"


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


@pytest.mark.parametrize("text", ["STOP", "stop", " Stop! ", "STOPALL", "stop all", "UNSUBSCRIBE", "Cancel", "end",
                                  "QUIT", "opt-out", "Stop please", "STOPP", "Abmelden", "BASTA grazie", "Cancella",
                                  "afmelden", "BAJA", "Arrêt", "désabonner", "No más", "stop sms"])
def test_stop_replies(text: str) -> None:
    assert optouts.is_stop_reply(text)


@pytest.mark.parametrize("text", ["", "   ", "Thanks!", "don't stop the offers", "when does the promo end",
                                  "I want to cancel my order for the shoes I bought last week", "stopwatch",
                                  "yes", "more info"])
def test_not_stop_replies(text: str) -> None:
    assert not optouts.is_stop_reply(text)


def test_an_opt_out_survives_every_list_change(client: Any, users: Any, inline_jobs: list[str]) -> None:
    """Manual blacklist -> whitelist imports, a bulk set, a Voluum whitelist verdict: the opt-out stays."""
    op, admin = users.headers("operator"), users.headers("admin")
    added = client.post("/api/numbers/optouts", json={"number": "07911 123456", "reason": "sms_stop",
                                                      "detail": "STOP to 12345", "region": "GB"}, headers=op)
    assert added.status_code == 201, added.text
    for target in ("blacklist", "whitelist"):
        started = client.post("/api/numbers/imports", data={"target": target, "region": "GB"}, headers=op,
                              files={"file": ("l.csv", _csv([["phone", "reason", "source"], [UK, "R", "t"]]),
                                              "text/csv")})
        client.post(f"/api/numbers/imports/{started.json()['id']}/apply", headers=op)
    with session_scope() as s:
        apply_verdicts(s, SYSTEM, [Verdict(UK, "whitelist", Authority.auto, "OS", "VOLUUM")])
    assert client.get("/api/numbers/lookup", params={"number": UK}, headers=op).json()["opt_out"]["active"]
    bulk = client.post("/api/numbers/bulk-status", json={"numbers": [UK], "status": "monitor", "reason": "OK"},
                       headers=admin)
    client.post(f"/api/numbers/imports/{bulk.json()['id']}/apply", headers=admin)
    found = client.get("/api/numbers/lookup", params={"number": UK}, headers=op).json()
    assert (found["status"], found["reason"]) == ("monitor", "OK")  # the list status moved ...
    assert found["opt_out"]["active"] and found["opt_out"]["reason"] == "sms_stop"  # ... the opt-out did not
    assert any(e["source"] == "OPT_OUT" and e["reason"] == "sms_stop" for e in found["history"])
    with session_scope() as s:
        assert optouts.opted_out(s, [get_vault().index(UK)]) == {get_vault().index(UK): "sms_stop"}
    listed = client.get("/api/numbers/optouts", headers=users.headers("viewer")).json()
    assert [(r["number"], r["reason"], r["source"]) for r in listed] == [("+447*******56", "sms_stop", "api")]


def test_only_an_admin_lifts_an_opt_out_with_a_reason(client: Any, users: Any) -> None:
    op, admin = users.headers("operator"), users.headers("admin")
    client.post("/api/numbers/optouts", json={"number": UK, "reason": "complaint"}, headers=op)
    assert client.post("/api/numbers/optouts/lift", json={"number": UK, "reason": "x"}, headers=op).status_code == 403
    empty = client.post("/api/numbers/optouts/lift", json={"number": UK, "reason": "  "}, headers=admin)
    assert empty.status_code == 422
    lifted = client.post("/api/numbers/optouts/lift", json={"number": UK, "reason": "asked to resubscribe"},
                         headers=admin)
    assert lifted.status_code == 200, lifted.text
    assert client.get("/api/numbers/optouts/counts", headers=op).json() == {
        "sms_stop": 0, "email_unsubscribe": 0, "complaint": 0, "manual": 0, "total": 0, "lifted": 1}
    again = client.post("/api/numbers/optouts/lift", json={"number": UK, "reason": "x"}, headers=admin)
    assert again.status_code == 422 and "not opted out" in again.text
    with session_scope() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "numbers.optout.lift")).one()
        assert event.detail["reason"] == "asked to resubscribe" and event.actor == "admin-user"
    unknown = client.post("/api/numbers/optouts", json={"number": UK, "reason": "spam"}, headers=op)
    assert unknown.status_code == 422 and "allowed: sms_stop, email_unsubscribe, complaint, manual" in unknown.text


def test_inbound_stop_replies_and_opt_out_files_are_previewed_applied_and_undone(
    client: Any, users: Any, inline_jobs: list[str]
) -> None:
    op, admin = users.headers("operator"), users.headers("admin")
    client.post("/api/numbers/status", json={"number": "+447911123457", "status": "blacklist", "reason": "OLD"},
                headers=op)
    inbound = _csv([["From", "Received", "Message"], [UK, "2026-12-01", "STOP"],
                    ["+447911123457", "2026-12-01", "Basta grazie"], ["+447911123458", "2026-12-01", "thanks!"],
                    ["garbage", "2026-12-01", "STOP"]])
    started = client.post("/api/numbers/imports", data={"kind": "inbound", "region": "GB"}, headers=op,
                          files={"file": ("replies.csv", inbound, "text/csv")})
    assert started.status_code == 202, started.text
    import_id = started.json()["id"]
    shown = client.get(f"/api/numbers/imports/{import_id}", headers=op).json()
    assert shown["preview"]["counts"] == {"rows": 4, "new": 1, "change": 1, "unchanged": 0, "refused": 2}
    assert shown["preview"]["refused_reasons"] == {"not a STOP reply (ignored)": 1, "invalid": 1}
    assert client.get("/api/numbers/optouts/counts", headers=op).json()["total"] == 0  # a preview changes nothing
    client.post(f"/api/numbers/imports/{import_id}/apply", headers=op)
    assert client.get("/api/numbers/optouts/counts", headers=op).json()["sms_stop"] == 2
    found = client.get("/api/numbers/lookup", params={"number": "+447911123457"}, headers=op).json()
    assert found["status"] == "blacklist" and found["opt_out"]["source"] == "inbound_csv"

    refused = client.post(f"/api/numbers/imports/{import_id}/undo", headers=op)  # lifting opt-outs: admins only
    assert refused.status_code == 403
    assert client.post(f"/api/numbers/imports/{import_id}/undo", headers=admin).status_code == 202
    assert client.get("/api/numbers/optouts/counts", headers=op).json()["total"] == 0
    assert client.get("/api/numbers/lookup", params={"number": UK}, headers=op).json()["opt_out"]["lift_reason"] == (
        f"undone: import {import_id}")

    listed = _csv([["phone", "reason", "source", "detail"], [UK, "email_unsubscribe", "newsletter", "footer link"],
                   ["+447911123459", "COMPLAINT", "", ""]])
    started = client.post("/api/numbers/imports", data={"kind": "optout", "region": "GB"}, headers=op,
                          files={"file": ("optouts.csv", listed, "text/csv")})
    client.post(f"/api/numbers/imports/{started.json()['id']}/apply", headers=op)
    counts = client.get("/api/numbers/optouts/counts", headers=op).json()
    assert (counts["email_unsubscribe"], counts["complaint"], counts["total"]) == (1, 1, 2)


def test_a_lifted_opt_out_comes_back_only_when_newer(db_url: str) -> None:
    from datetime import timedelta

    from phoneops.core.db import utcnow

    with session_scope() as s:
        optouts.add(s, SYSTEM, UK, "sms_stop", region="GB")
    with session_scope() as s:
        optouts.lift(s, SYSTEM, UK, "wrong number", region="GB")
    old = optouts.OptOutEntry(UK, "sms_stop", "messagewhiz", at=utcnow() - timedelta(days=3))
    with session_scope() as s:
        result = optouts.record_optouts(s, SYSTEM, [old])
    assert (result.recorded, result.kept_lifted) == (0, 1)
    with session_scope() as s:
        result = optouts.record_optouts(s, SYSTEM, [optouts.OptOutEntry(UK, "sms_stop", "messagewhiz", at=utcnow())])
    assert result.recorded == 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["blacklist", "monitor", "whitelist", None]), min_size=1, max_size=6),
       st.lists(st.sampled_from(list(Authority)), min_size=6, max_size=6))
def test_no_sequence_of_list_verdicts_lifts_an_opt_out(
    db_url: str, statuses: list[str | None], authorities: list[Authority]
) -> None:
    """Invariant: whatever list verdicts follow (any status, any authority), an opt-out stays active (the
    database is shared by the examples: the number is opted out once, the verdicts pile up)."""
    number = "+447911123499"
    with session_scope() as s:
        optouts.record_optouts(s, SYSTEM, [optouts.OptOutEntry(number, "complaint", "test")], direct=True)
    for status, authority in zip(statuses, authorities, strict=False):
        with session_scope() as s:
            apply_verdicts(s, SYSTEM, [Verdict(number, status, authority, "R", "test")])
    with session_scope() as s:
        assert optouts.opted_out(s, [get_vault().index(number)]) == {get_vault().index(number): "complaint"}

