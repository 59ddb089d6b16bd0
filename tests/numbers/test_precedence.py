"""The list precedence of docs/lists.md: every source through one table, no status laundered, all of it in the
history. A scenario end to end (tracker sync, HLR outcomes, live events) and a hypothesis property over
random sequences of verdicts from every source, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import itertools
from datetime import date
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from phoneops.core.security import SYSTEM
from phoneops.hlr.outcomes import Decided, load_map, verdicts
from phoneops.numbers.lists import SEVERITY, Authority, Verdict, apply_verdicts, lookup, set_status
from phoneops.numbers.models import NumberEvent, PhoneNumber
from phoneops.numbers.vault import get_vault
from phoneops.voluum import live, traffic

NUMBER = "+447911123456"
_numbers = itertools.count(1)


def hlr(session: Any, e164: str, live_status: str) -> None:
    """An HLR result for one number, through the outcome mapping the HLR jobs use."""
    decision = load_map(session).decide(live_status, "Vodafone UK", "23415")
    decided = Decided(e164, get_vault().index(e164), decision, {"live_status": live_status})
    apply_verdicts(session, SYSTEM, verdicts(session, [decided]))


def history(session: Any, e164: str) -> list[dict[str, Any]]:
    return list(reversed(lookup(session, SYSTEM, e164, "GB").history))  # oldest first


def test_os_blacklist_survives_hlr_absent_then_live_then_voluum_confirms(session: Any) -> None:
    """The issue's reproduction: OS blacklist -> HLR absent -> HLR live -> Voluum blacklist."""
    traffic.store_day(session, SYSTEM, date(2026, 1, 5),
                      [("src-a", {"customVariable1": "447911123456", "osVersion": "Android 6", "visits": 1})])
    assert lookup(session, SYSTEM, NUMBER, "GB").status == "blacklist"
    hlr(session, NUMBER, "ABSENT_SUBSCRIBER")
    assert lookup(session, SYSTEM, NUMBER, "GB").status == "blacklist"
    hlr(session, NUMBER, "LIVE")
    assert lookup(session, SYSTEM, NUMBER, "GB").status == "blacklist"
    event = {"clickId": "c1", "timestamp": "2026-01-06T10:00:00.000Z", "os": "Android", "osVersion": "5.1",
             "customVariables": ["447911123456", "", "", "", "", "", "", "", "", ""]}
    result = live.ingest(session, [("m-1", [event])], source="http")
    assert result.numbers == 1
    view = lookup(session, SYSTEM, NUMBER, "GB")
    assert (view.status, view.authority) == ("blacklist", "auto")
    steps = history(session, NUMBER)
    assert [(e["source"], e["verdict"], e["status"]) for e in steps] == [
        ("VOLUUM", "blacklist", "blacklist"),
        ("HLR", "monitor", "blacklist"),
        ("HLR", None, "blacklist"),
        ("VOLUUM_LIVE", "blacklist", "blacklist"),
    ]
    assert "HLR may add or tighten" in steps[1]["note"] and "lift only what HLR set" in steps[2]["note"]
    assert steps[1]["evidence"] == {"live_status": "ABSENT_SUBSCRIBER"}


def test_hlr_lifts_what_hlr_set_and_the_tracker_verdict_underneath_shows_again(session: Any) -> None:
    apply_verdicts(session, SYSTEM, [Verdict(NUMBER, "whitelist", Authority.auto, "OS_VERSION", "VOLUUM")])
    hlr(session, NUMBER, "DEAD")
    assert lookup(session, SYSTEM, NUMBER, "GB").status == "blacklist"
    hlr(session, NUMBER, "LIVE")
    view = lookup(session, SYSTEM, NUMBER, "GB")
    assert (view.status, view.authority, view.reason) == ("whitelist", "auto", "OS_VERSION")


def test_repeats_write_no_events_and_unlisted_live_numbers_none(session: Any) -> None:
    for _ in range(3):
        apply_verdicts(session, SYSTEM, [Verdict(NUMBER, "monitor", Authority.auto, "OS_VERSION", "VOLUUM")])
    apply_verdicts(session, SYSTEM, [Verdict(NUMBER, None, Authority.auto, "CONVERSION", "VOLUUM")])
    other = "+447911123499"
    apply_verdicts(session, SYSTEM, [Verdict(other, None, Authority.auto, "CONVERSION", "VOLUUM")])
    hlr(session, other, "LIVE")  # a reachable number on no list: nothing to record beyond its registration
    assert len(history(session, NUMBER)) == 1
    assert [e["reason"] for e in history(session, other)] == ["CONVERSION"]


def _import(client: Any, headers: dict[str, str], target: str, rows: list[list[str]]) -> dict[str, Any]:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["phone", "reason", "source"], *rows])
    response = client.post("/api/numbers/imports", data={"target": target, "region": "GB"},
                           files={"file": ("list.csv", buffer.getvalue().encode(), "text/csv")}, headers=headers)
    assert response.status_code == 202, response.text  # previewed first (numbers/imports.py), then applied
    import_id = response.json()["id"]
    assert client.post(f"/api/numbers/imports/{import_id}/apply", headers=headers).status_code == 202
    body: dict[str, Any] = client.get(f"/api/numbers/imports/{import_id}", headers=headers).json()
    return body


def test_manual_import_of_a_listed_number_takes_manual_authority(
    client: Any, users: Any, session: Any, inline_jobs: list[str]
) -> None:
    op = users.headers("operator")
    apply_verdicts(session, SYSTEM, [Verdict(NUMBER, "blacklist", Authority.auto, "OS_VERSION", "VOLUUM"),
                                     Verdict("+447911123457", "monitor", Authority.hlr, "HLR_MONITORED", "HLR")])
    session.commit()
    body = _import(client, op, "monitor", [["07911 123456", "FRAUD", "partner"],
                                           ["07911 123457", "FRAUD", "partner"]])
    assert (body["added"], body["changed"], body["already_listed"]) == (0, 2, 0)  # both become manual
    session.expire_all()
    first = lookup(session, SYSTEM, NUMBER, "GB")
    assert (first.status, first.authority, first.reason) == ("blacklist", "manual", "FRAUD")  # never loosened
    assert first.history[0]["actor"] == "operator-user" and first.history[0]["source"] == "partner"
    second = lookup(session, SYSTEM, "+447911123457", "GB")
    assert (second.status, second.authority) == ("monitor", "manual")
    # now manual: a second import reports it already listed and writes nothing
    again = _import(client, op, "monitor", [["07911 123456", "FRAUD", "partner"]])
    assert again["already_listed"] == 1
    session.expire_all()
    assert len(lookup(session, SYSTEM, NUMBER, "GB").history) == 2
    # and no automatic source moves it any more
    hlr(session, NUMBER, "LIVE")
    assert lookup(session, SYSTEM, NUMBER, "GB").status == "blacklist"


# --- the property ---------------------------------------------------------------------------------------

STATUSES = (None, "whitelist", "monitor", "blacklist")
HLR_RESULTS = ("LIVE", "DEAD", "ABSENT_SUBSCRIBER", "NO_COVERAGE", "NOT_APPLICABLE", "OTHER")
step = st.one_of(
    st.tuples(st.just("tracker"), st.sampled_from(STATUSES)),
    st.tuples(st.just("live"), st.sampled_from(STATUSES)),
    st.tuples(st.just("reevaluate"), st.sampled_from(STATUSES)),
    st.tuples(st.just("hlr"), st.sampled_from(HLR_RESULTS)),
    st.tuples(st.just("manual"), st.sampled_from(STATUSES)),
)


def _state(session: Any, e164: str) -> tuple[str | None, str | None, list[NumberEvent]]:
    row = session.scalar(select(PhoneNumber).where(PhoneNumber.blind_index == get_vault().index(e164)))
    if row is None:
        return None, None, []
    events = list(session.scalars(select(NumberEvent).where(NumberEvent.number_id == row.id)
                                  .order_by(NumberEvent.id)))
    return row.status, row.authority, events


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=10))
def test_no_source_launders_another(session: Any, steps: list[tuple[str, str | None]]) -> None:
    e164 = f"+4479111{next(_numbers):05d}"
    manual: tuple[str | None] | None = None  # the last manual decision
    floor = 0  # the severity of the tracker's verdicts since the last re-evaluation
    for kind, value in steps:
        before_status, before_authority, before_events = _state(session, e164)
        if kind in ("tracker", "live", "reevaluate"):
            source = {"tracker": "VOLUUM", "live": "VOLUUM_LIVE", "reevaluate": "OS_RULES"}[kind]
            apply_verdicts(session, SYSTEM, [Verdict(e164, value, Authority.auto, "OS_VERSION", source,
                                                     reevaluate=kind == "reevaluate")])
            floor = SEVERITY[value] if kind == "reevaluate" else max(floor, SEVERITY[value])
        elif kind == "hlr":
            assert value is not None
            hlr(session, e164, value)
        else:
            set_status(session, SYSTEM, e164, value, "DECIDED", region="GB", source="UI")
            manual = (value,)
        status, authority, events = _state(session, e164)
        # 1. no automatic source changes a manual decision
        if manual is not None:
            assert (status, authority) == (manual[0], "manual"), (kind, value)
        else:
            # 2./3. neither HLR nor a later tracker verdict goes below the tracker's verdict
            assert SEVERITY[status] >= floor, (kind, value, status)
            # HLR lifts only what HLR set
            if kind == "hlr" and SEVERITY[status] < SEVERITY[before_status]:
                assert before_authority == "hlr"
            if kind in ("tracker", "live"):
                assert SEVERITY[status] >= SEVERITY[before_status]
        # 4. every change is an event that chains, with who / what / why
        if status != before_status:
            assert len(events) == len(before_events) + 1
        if events:
            assert events[-1].status == status
        for previous, event in itertools.pairwise(events):
            assert event.previous_status == previous.status
        for event in events:
            assert event.actor and event.authority and event.source and (event.reason or event.note)
