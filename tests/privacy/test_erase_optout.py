"""Erasure vs opt-out (docs/optouts.md, "Erasure"): erasing a number keeps its opt-out, keyed by the blind index
alone, so the number is still refused when it comes back through an import."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import select

from phoneops.core.db import session_scope
from phoneops.numbers import optouts
from phoneops.numbers.models import NumberOptOut
from phoneops.numbers.vault import get_vault

UK, OTHER = "+447911123456", "+447911123457"


def _csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


def test_an_erased_then_reimported_number_is_still_not_sendable(client: Any, users: Any,
                                                                 inline_jobs: list[str]) -> None:
    op, admin = users.headers("operator"), users.headers("admin")
    added = client.post("/api/numbers/optouts", json={"number": UK, "reason": "sms_stop",
                                                      "detail": f"STOP from {UK}", "region": "GB"}, headers=op)
    assert added.status_code == 201, added.text
    erased = client.post("/api/privacy/erasures", headers=admin, json={"number": "07911 123456", "region": "GB"})
    assert erased.status_code == 202, erased.text
    done = client.get(f"/api/privacy/erasures/{erased.json()['id']}", headers=admin).json()
    assert done["status"] == "done" and done["counts"]["number_optouts_kept"] == 1
    assert client.get("/api/numbers/lookup", params={"number": UK}, headers=op).status_code == 404  # forgotten ...
    with session_scope() as s:
        kept = s.scalars(select(NumberOptOut)).one()  # ... but the opt-out stays, by its blind index alone
        assert (kept.number_id, kept.detail, kept.state, kept.reason) == (None, None, "active", "sms_stop")
    listed = client.get("/api/numbers/optouts", headers=admin).json()
    assert [(r["number"], r["reason"]) for r in listed] == [(optouts.ERASED, "sms_stop")]

    # the number comes back on the whitelist through a list import
    started = client.post("/api/numbers/imports", data={"target": "whitelist", "region": "GB"}, headers=op,
                          files={"file": ("l.csv", _csv([["phone", "reason", "source"], [UK, "BUYER", "crm"],
                                                         [OTHER, "BUYER", "crm"]]), "text/csv")})
    assert started.status_code == 202, started.text
    assert client.post(f"/api/numbers/imports/{started.json()['id']}/apply", headers=op).status_code == 202
    found = client.get("/api/numbers/lookup", params={"number": UK}, headers=op).json()
    assert found["status"] == "whitelist" and found["opt_out"]["active"] and found["opt_out"]["reason"] == "sms_stop"
    with session_scope() as s:
        assert optouts.opted_out(s, [get_vault().index(UK), get_vault().index(OTHER)]) == {
            get_vault().index(UK): "sms_stop"}

    # cleaning a list with it removes it (the opt-out filter cannot be turned off)
    up = client.post("/api/cleaning/files", headers=op, data={"region": "GB"},
                     files={"file": ("list.csv", _csv([["name", "phone"], ["ann", "07911 123456"],
                                                       ["bob", "07911 123457"]]), "text/csv")})
    assert up.status_code == 201, up.text
    run = client.post(f"/api/cleaning/files/{up.json()['id']}/runs", headers=op, json={"filters": []}).json()
    stats = client.get(f"/api/cleaning/runs/{run['id']}/stats", headers=op).json()
    assert stats["outcomes"] == {"kept": 1, "opted_out": 1}

    # recording it again links the kept opt-out to the number that came back (one row, not two)
    again = client.post("/api/numbers/optouts", json={"number": UK, "reason": "complaint"}, headers=op)
    assert again.status_code == 201 and again.json()["already"] == 1
    with session_scope() as s:
        rows = s.scalars(select(NumberOptOut)).all()
        assert len(rows) == 1 and rows[0].number_id is not None
    lifted = client.post("/api/numbers/optouts/lift", json={"number": UK, "reason": "asked to resubscribe"},
                         headers=admin)
    assert lifted.status_code == 200, lifted.text  # an admin can still lift it, audited as always
