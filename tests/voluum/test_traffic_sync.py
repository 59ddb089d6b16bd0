"""Traffic sync against the Voluum simulator over real HTTP: classification, idempotence, resume after a kill."""

from __future__ import annotations

import base64
import random
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from phoneops.core import jobs
from phoneops.core.db import session_scope
from phoneops.core.errors import Conflict, ProviderNotConfigured, ValidationFailed
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts, status_of_indexes
from phoneops.numbers.models import NumberEvent, PhoneNumber
from phoneops.numbers.osrules import classify, strongest
from phoneops.numbers.vault import get_vault
from phoneops.simulators import voluum_data as vd
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.voluum import DEFAULT_ACCESS_ID, DEFAULT_ACCESS_KEY
from phoneops.voluum import traffic
from phoneops.voluum.models import TrafficDay, TrafficRow
from phoneops.voluum.provider import reset_clients

Load = Callable[..., dict[str, int]]
DAY1, DAY2, DAY3 = date(2025, 12, 31), date(2026, 1, 1), date(2026, 1, 2)  # a year (and month) boundary
LEGACY_KEY = b"\x09" * 32  # AES_KEY of the test environment: original-format link tokens
OS_CHOICES = ("IOS 18.6", "IOS 10.3", "Android 15.0", "Android 9", "Android 7.0", "Windows 10", "Windows 7",
              "MacOS 10.15", "Ubuntu", "Chrome OS", "Linux", "Android", "iOS 17")


@pytest.fixture
def voluum_env(voluum_sim_url: str, voluum_sim: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.lookups import reset_refresh_clock

    monkeypatch.setenv("VOLUUM_BASE_URL", voluum_sim_url)
    monkeypatch.setenv("VOLUUM_ACCESS_ID", DEFAULT_ACCESS_ID)
    monkeypatch.setenv("VOLUUM_ACCESS_KEY", DEFAULT_ACCESS_KEY)
    reset_settings_cache()
    reset_clients()
    reset_refresh_clock()
    yield voluum_sim_url
    monkeypatch.undo()
    reset_settings_cache()
    reset_clients()


def phone(n: int) -> str:
    return f"+4479111234{n:02d}"


def visit(day: date, value: str, os_version: str, *, unique: int = 1, visits: int = 1, hour: int = 10,
          source: str = "src-a", ip: str = "203.0.113.9") -> dict[str, Any]:
    moment = datetime.combine(day, datetime.min.time(), tzinfo=UTC) + timedelta(hours=hour)
    return {"timestamp": vd.iso(moment), "customVariable1": value, "ip": ip, "osVersion": os_version,
            "browserVersion": "Chrome Mobile 144", "visits": visits, "uniqueVisits": unique, "clicks": 1,
            "trafficSourceId": source, "campaignId": "camp-1", "offerId": "offer-1"}


def dataset(days: list[date], numbers: int = 24, seed: int = 7) -> list[dict[str, Any]]:
    """Visits over `days`: numbers written as E.164, int-converted digits, both token formats; rows with
    uniqueVisits 0, 1, 2 and 3; placeholders, empties, unreadable values and a token made with another key."""
    rng = random.Random(seed)
    cipher = get_vault().cipher
    facts: list[dict[str, Any]] = []
    for day in days:
        for n in range(numbers):
            e164 = phone(n)
            writing = n % 4
            value = (e164 if writing == 0 else e164[1:] if writing == 1
                     else vd.link_token(e164[1:], LEGACY_KEY, rng) if writing == 2 else cipher.encrypt(e164))
            for hour in range(rng.choice((1, 2))):
                unique = rng.choice((0, 1, 2, 3))
                facts.append(visit(day, value, rng.choice(OS_CHOICES), unique=unique, visits=max(1, unique),
                                   hour=hour + 1, ip=f"198.51.100.{n}"))
        facts.append(visit(day, "{{phoneNumber}}", "IOS 18.6"))
        facts.append(visit(day, "", "Android 14", hour=3))
        facts.append(visit(day, "12345", "Android 14", hour=4))
        bad = base64.urlsafe_b64encode(bytes(40)).decode().rstrip("=")
        facts.append(visit(day, bad, "Android 14", hour=5))
    return facts


def expected_statuses(facts: list[dict[str, Any]]) -> dict[bytes, str | None]:
    """Each number's list by the OS rules: the most severe verdict over all of its rows."""
    from phoneops.voluum.provider import phone_reader

    reader = phone_reader()
    verdicts: dict[bytes, list[Any]] = {}
    for fact in facts:
        value = reader.read(fact["customVariable1"])
        if value.index is not None:
            verdicts.setdefault(value.index, []).append(classify(fact["osVersion"]).status)
    return {index: (s.value if (s := strongest(*found)) else None) for index, found in verdicts.items()}


def snapshot() -> dict[str, Any]:
    """The database state a sync produces (without ids, timestamps and job ids)."""
    with session_scope() as session:
        rows = sorted(
            (r.day, r.traffic_source_id, r.blind_index or b"", r.number_kind, r.ip, r.os_version, r.browser_version,
             r.visits, r.unique_visits, r.clicks, r.category, str(r.cost), sorted(r.metrics.items()).__repr__())
            for r in session.scalars(select(TrafficRow))
        )
        days = [(d.day, d.rows, d.phone_rows, d.numbers, d.per_list, d.skipped, d.skipped_detail)
                for d in session.scalars(select(TrafficDay).order_by(TrafficDay.day))]
        numbers = sorted((n.blind_index, n.status, n.authority, n.reason, n.source)
                         for n in session.scalars(select(PhoneNumber)))
        events = session.scalar(select(func.count(NumberEvent.id)))
    return {"rows": rows, "days": days, "numbers": numbers, "events": events}


def run_sync(start: date, end: date) -> Job:
    with session_scope() as session:
        job_id = traffic.start_sync(session, SYSTEM, start, end).id
    assert jobs.run_job(job_id) == "succeeded"
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        session.expunge(job)
    return job


# --- the Done-when proofs ------------------------------------------------------------------------------


def test_two_days_synced_twice_equal_once_and_lists_match_rules(db_url: str, voluum_env: str, load_data: Load) -> None:
    facts = dataset([DAY1, DAY2])
    load_data(visits=facts)
    first = run_sync(DAY1, DAY2)
    once = snapshot()
    second = run_sync(DAY1, DAY2)
    assert snapshot() == once
    assert first.result["days"] == 2 and second.result["days"] == 2
    assert second.result["changed"] == 0  # nothing left to change the second time

    expected = expected_statuses(facts)
    with session_scope() as session:
        actual = status_of_indexes(session, list(expected))
        assert actual == expected
        assert set(expected) == {get_vault().index(phone(n)) for n in range(24)}  # all four writings read
        day = session.get(TrafficDay, DAY2)
        assert day is not None
        assert day.skipped_detail == {"bad_token": 1, "empty": 1, "invalid": 1, "placeholder": 1}
        assert day.numbers == 24 and sum(day.per_list.values()) == 24
        several = session.scalar(select(func.count(TrafficRow.id)).where(TrafficRow.unique_visits >= 2,
                                                                          TrafficRow.category != "skipped"))
        assert several and several > 0  # rows with several unique visits are kept and classified
        events = session.scalars(select(NumberEvent).where(NumberEvent.source == "VOLUUM")).all()
        assert events and all(e.reason == "OS_VERSION" and e.authority == "auto" for e in events)
        assert {"os", "version", "browser", "ip"} <= set(events[0].evidence)


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs, the open transaction is lost."""


def _wipe_sync_state() -> None:
    with session_scope() as session:
        for model in (TrafficRow, TrafficDay, NumberEvent, PhoneNumber, Job):
            session.execute(delete(model))


def test_killed_midway_then_resumed_equals_one_clean_run(
    db_url: str, voluum_env: str, load_data: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    load_data(visits=dataset([DAY1, DAY2, DAY3], numbers=16))
    run_sync(DAY1, DAY3)
    clean = snapshot()
    _wipe_sync_state()

    calls = {"n": 0}
    real = traffic.apply_verdicts

    def dies_on_day_two(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:  # day two's rows are written, its transaction not committed yet
            raise Killed
        return real(*args, **kwargs)

    monkeypatch.setattr(traffic, "apply_verdicts", dies_on_day_two)
    with session_scope() as session:
        job_id = traffic.start_sync(session, SYSTEM, DAY1, DAY3).id
    with pytest.raises(Killed):
        jobs.run_job(job_id)
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        assert job.status == "running" and job.checkpoint["next"] == 1  # day one committed, day two lost
        assert [d.day for d in session.scalars(select(TrafficDay))] == [DAY1]
        assert not session.scalar(select(func.count(TrafficRow.id)).where(TrafficRow.day == DAY2))
    monkeypatch.setattr(traffic, "apply_verdicts", real)

    assert job_id in jobs.reap_expired(datetime.now(UTC) + timedelta(minutes=5))  # the lease expired
    assert jobs.run_job(job_id) == "succeeded"
    assert snapshot() == clean
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        assert job.attempts == 2 and job.progress_done == 3 and job.result["days"] == 3


# --- behaviour -----------------------------------------------------------------------------------------


def test_manual_blacklisting_is_not_lifted_by_a_whitelist_click(db_url: str, voluum_env: str, load_data: Load) -> None:
    with session_scope() as session:
        apply_verdicts(session, SYSTEM, [Verdict(phone(1), "blacklist", Authority.manual, reason="COMPLAINT")])
    load_data(visits=[visit(DAY1, phone(1), "IOS 18.6"), visit(DAY1, phone(2), "IOS 18.6")])
    run_sync(DAY1, DAY1)
    with session_scope() as session:
        found = status_of_indexes(session, [get_vault().index(phone(1)), get_vault().index(phone(2))])
    assert found == {get_vault().index(phone(1)): "blacklist", get_vault().index(phone(2)): "whitelist"}


def test_traffic_sources_from_settings_filter_the_report(
    db_url: str, voluum_env: str, load_data: Load, monkeypatch: pytest.MonkeyPatch
) -> None:
    from phoneops.settings import reset_settings_cache

    load_data(visits=[visit(DAY1, phone(1), "IOS 18.6", source="src-a"),
                      visit(DAY1, phone(2), "IOS 18.6", source="src-b"),
                      visit(DAY1, phone(3), "IOS 18.6", source="src-c")])
    monkeypatch.setenv("VOLUUM_TRAFFIC_SOURCE_IDS", "src-a,src-b")
    reset_settings_cache()
    run_sync(DAY1, DAY1)
    with session_scope() as session:
        rows = session.scalars(select(TrafficRow)).all()
        assert sorted(r.traffic_source_id for r in rows) == ["src-a", "src-b"]
        day = session.get(TrafficDay, DAY1)
        assert day is not None and day.traffic_sources == ["src-a", "src-b"]


def test_month_boundary_range_and_empty_days(db_url: str, voluum_env: str, load_data: Load) -> None:
    load_data(visits=[visit(date(2026, 1, 31), phone(1), "Android 9"), visit(date(2026, 2, 1), phone(2), "Linux")])
    job = run_sync(date(2026, 1, 30), date(2026, 2, 2))
    assert job.result["days"] == 4 and job.progress_total == 4
    with session_scope() as session:
        days = {d.day: d.rows for d in session.scalars(select(TrafficDay))}
    assert days == {date(2026, 1, 30): 0, date(2026, 1, 31): 1, date(2026, 2, 1): 1, date(2026, 2, 2): 0}


def test_voluum_down_parks_the_job_then_it_resumes(
    db_url: str, voluum_env: str, voluum_sim: SimAdmin, load_data: Load
) -> None:
    load_data(visits=[visit(DAY1, phone(1), "IOS 18.6")])
    voluum_sim.configure(fail_next=3, error_status=503, fault_endpoints=["report"])
    with session_scope() as session:
        job_id = traffic.start_sync(session, SYSTEM, DAY1, DAY1).id
    assert jobs.run_job(job_id) == "queued"
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        assert job.status == "queued" and "Voluum unavailable" in (job.message or "")
        assert job.checkpoint["parked"] == 1
        job.run_after = None  # do not wait for the delay
    assert jobs.run_job(job_id) == "succeeded"


def test_bad_input_is_refused_and_nothing_is_stored(db_url: str, voluum_env: str) -> None:
    with session_scope() as session:
        with pytest.raises(ValidationFailed, match="before it starts"):
            traffic.start_sync(session, SYSTEM, DAY2, DAY1)
        with pytest.raises(ValidationFailed, match="future"):
            traffic.start_sync(session, SYSTEM, date.today() + timedelta(days=3))
        with pytest.raises(ValidationFailed, match="date like"):
            traffic.start_sync(session, SYSTEM, "31/12/2025")
        with pytest.raises(ValidationFailed, match="at most 366 days"):
            traffic.start_sync(session, SYSTEM, date(2024, 1, 1), date(2025, 6, 1))
        traffic.start_sync(session, SYSTEM, DAY1)
        with pytest.raises(Conflict, match="already running"):
            traffic.start_sync(session, SYSTEM, DAY2)
        session.rollback()
    with session_scope() as session:
        assert session.scalar(select(func.count(Job.id))) == 0


def test_not_configured_says_which_variables(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.delenv("VOLUUM_ACCESS_ID", raising=False)
    reset_settings_cache()
    with session_scope() as session, pytest.raises(ProviderNotConfigured, match="VOLUUM_ACCESS_ID"):
        traffic.start_sync(session, SYSTEM, DAY1)


# --- API and CLI ---------------------------------------------------------------------------------------


def test_api_starts_a_sync_and_shows_the_day(
    client: Any, users: Any, inline_jobs: list[str], voluum_env: str, load_data: Load
) -> None:
    load_data(visits=dataset([DAY1], numbers=6))
    operator = users.headers("operator")
    refused = client.post("/api/voluum/traffic/sync", json={"from": "2025-12-31"}, headers=users.headers("viewer"))
    assert refused.status_code == 403
    bad = client.post("/api/voluum/traffic/sync", json={"from": "2026-01-02", "to": "2025-12-31"}, headers=operator)
    assert bad.status_code == 422 and "before it starts" in bad.json()["error"]["message"]
    started = client.post("/api/voluum/traffic/sync", json={"from": "2025-12-31"}, headers=operator)
    assert started.status_code == 202, started.text
    job = client.get(f"/api/jobs/{started.json()['id']}", headers=operator).json()
    assert job["status"] == "succeeded", job
    days = client.get("/api/voluum/traffic/days", headers=operator).json()
    assert [d["day"] for d in days] == ["2025-12-31"] and days[0]["numbers"] == 6
    one = client.get("/api/voluum/traffic/days/2025-12-31", headers=operator).json()
    assert one["skipped_detail"]["placeholder"] == 1
    assert client.get("/api/voluum/traffic/days/2025-01-01", headers=operator).status_code == 404


def test_cli_syncs_and_lists_days(db_url: str, voluum_env: str, load_data: Load, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from phoneops.settings import reset_settings_cache
    from phoneops.voluum.cli import app

    monkeypatch.setenv("DATABASE_URL", db_url)
    reset_settings_cache()
    load_data(visits=dataset([DAY1], numbers=5))
    result = CliRunner().invoke(app, ["sync-traffic", "--from", "2025-12-31"])
    assert result.exit_code == 0, result.output
    assert "succeeded" in result.output and "2025-12-31" in result.output
    refused = CliRunner().invoke(app, ["sync-traffic", "--from", "2026-01-02", "--to", "2026-01-01"])
    assert refused.exit_code == 1 and "before it starts" in refused.output


@pytest.mark.slow
def test_sigkilled_worker_mid_sync_resumes_to_the_clean_state(
    db_url: str, voluum_env: str, voluum_sim: SimAdmin, load_data: Load, tmp_path: Any
) -> None:
    """The same proof with a real `phoneops worker` process SIGKILLed mid-range, another one finishing."""
    import os
    import signal
    import time

    from phoneops.core import queue
    from support import TMP, process_env, start_process, stop_process

    days = [DAY1 + timedelta(days=n) for n in range(6)]
    load_data(visits=dataset(days, numbers=10))
    run_sync(days[0], days[-1])
    clean = snapshot()
    _wipe_sync_state()

    huey_dir = tmp_path / "queue"
    env = process_env(db_url, DATA_DIR=str(huey_dir), JOB_LEASE_SECONDS="5", WORKER_THREADS="2",
                      VOLUUM_BASE_URL=voluum_env, VOLUUM_ACCESS_ID=DEFAULT_ACCESS_ID,
                      VOLUUM_ACCESS_KEY=DEFAULT_ACCESS_KEY)
    huey = queue.build_huey(None, huey_dir)
    task = huey.task(name="phoneops.run_job")(lambda job_id: None)
    jobs.set_enqueue_hook(lambda job_id, delay: task(job_id))
    voluum_sim.configure(latency_ms=700)
    with session_scope() as session:
        job_id = traffic.start_sync(session, SYSTEM, days[0], days[-1]).id

    def progress() -> tuple[str, int]:
        with session_scope() as session:
            job = jobs.get_job(session, job_id)
            return job.status, job.progress_done

    log1 = TMP / f"voluum-worker1-{os.getpid()}.log"
    first = start_process(["worker"], env, log1)
    deadline = time.monotonic() + 60
    while progress()[1] < 2:
        assert first.poll() is None, log1.read_text()[-2000:]
        assert time.monotonic() < deadline, "the first worker made no progress"
        time.sleep(0.05)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    status, done = progress()
    assert status == "running" and 2 <= done < 6

    voluum_sim.configure(latency_ms=0)
    second = start_process(["worker"], env, TMP / f"voluum-worker2-{os.getpid()}.log")
    try:
        deadline = time.monotonic() + 90
        while progress()[0] != "succeeded":
            assert time.monotonic() < deadline, f"the job did not finish: {progress()}"
            time.sleep(0.2)
    finally:
        stop_process(second)
    assert snapshot() == clean
