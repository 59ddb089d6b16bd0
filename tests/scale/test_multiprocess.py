"""Two API processes and two RedisHuey workers on PostgreSQL, a mixed workload through the HTTP API, one worker
SIGKILLed while it holds a running job.

Every job ends `succeeded`; the simulators were paid once per IMEI and per HLR number; no row is lost (cleaning,
IMEI, HLR, Voluum conversions, Ongage contacts); and each periodic task ran exactly once for every slot of its
schedule that the run spanned (one minute boundary at least), whichever worker took it.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cluster import Api, Cluster, Proc, fresh_redis, product_schedules, run_cli, scratch_postgres, wait_until
from sqlalchemy import Engine, create_engine, text
from stdnum import luhn

from phoneops.simulators._server import SimAdmin, serve_in_thread

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.redis]

IMEIS = 1500
HLR_NUMBERS = 2000
CLEAN_NUMBERS = 6000
CSV_CONTACTS = 3000
SERVICE = "1739"
SLOT = "%Y-%m-%dT%H:%M"
PASSWORD = "correct-horse-battery-staple"
TERMINAL = ("succeeded", "failed", "cancelled")


def imei(serial: int) -> str:
    body = f"35991000{serial:06d}"
    return body + luhn.calc_check_digit(body)


def csv_bytes(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode()


# --- the deployment ------------------------------------------------------------------------------------


@pytest.fixture
def sims() -> Iterator[dict[str, str]]:
    """The four providers of the workload, each over real HTTP, sized so the jobs last a few seconds."""
    from phoneops.simulators import gsm_fusion, hlr_lookup, ongage, voluum

    seeded = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    with serve_in_thread(gsm_fusion.create_app(gsm_fusion.GsmFusionSimConfig(
            latency_ms=40, initial_balance=Decimal("100000"), reject_ratio=0.0))) as gsm, \
         serve_in_thread(hlr_lookup.create_app(hlr_lookup.HlrSimConfig(
            retry_after_s=0.0, batch_items_per_second=400.0))) as hlr, \
         serve_in_thread(voluum.create_app(voluum.VoluumSimConfig(
            rate_limit_per_s=None, retry_after_s=0.0, start_date=seeded, days=1, visits_per_day=600,
            latency_ms=150))) as vlm, \
         serve_in_thread(ongage.create_app(ongage.OngageSimConfig(latency_ms=20))) as ong:
        yield {"gsm": gsm, "hlr": hlr, "voluum": vlm, "ongage": ong, "day": seeded}


@pytest.fixture
def cluster(sims: dict[str, str], tmp_path: Path) -> Iterator[tuple[Cluster, Engine]]:
    from phoneops.simulators import gsm_fusion, hlr_lookup, ongage, voluum

    redis_url = fresh_redis()
    with scratch_postgres() as db_url:
        providers = {
            "GSM_FUSION_BASE_URL": sims["gsm"], "GSM_FUSION_USERNAME": gsm_fusion.DEFAULT_USER,
            "GSM_FUSION_API_KEY": gsm_fusion.DEFAULT_API_KEY, "IMEI_CONCURRENCY": "5",
            "IMEI_DAILY_BUDGET": "100000",
            "HLR_BASE_URL": sims["hlr"], "HLR_BATCH_BASE_URL": sims["hlr"], "HLR_API_KEY": hlr_lookup.DEFAULT_API_KEY,
            "HLR_API_SECRET": hlr_lookup.DEFAULT_API_SECRET, "HLR_POLL_EVERY_SECONDS": "0.2",
            "VOLUUM_BASE_URL": sims["voluum"], "VOLUUM_ACCESS_ID": voluum.DEFAULT_ACCESS_ID,
            "VOLUUM_ACCESS_KEY": voluum.DEFAULT_ACCESS_KEY,
            "ONGAGE_BASE_URL": sims["ongage"], "ONGAGE_LIST_ID": ongage.DEFAULT_LIST_ID,
            "ONGAGE_USERNAME": ongage.DEFAULT_USERNAME, "ONGAGE_PASSWORD": ongage.DEFAULT_PASSWORD,
            "ONGAGE_ACCOUNT_CODE": ongage.DEFAULT_ACCOUNT_CODE,
        }
        deployment = Cluster.create(db_url, redis_url, tmp_path, JOB_LEASE_SECONDS="6", WORKER_THREADS="2",
                                    **providers)
        engine = create_engine(db_url, pool_pre_ping=True)
        try:
            yield deployment, engine
        finally:
            deployment.stop()
            engine.dispose()


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def rows(engine: Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(text(sql), params).all())


def job_row(engine: Engine, job_id: str) -> tuple[str, int, int | None, str | None, int]:
    found = rows(engine, "SELECT status, progress_done, progress_total, lease_owner, attempts FROM jobs WHERE id = :id",
                 id=job_id)
    assert found, f"no job {job_id}"
    status, done, total, owner, attempts = found[0]
    return str(status), int(done), total, owner, int(attempts)


def owner_pid(lease_owner: str | None) -> int | None:
    """Worker ids are host:pid:nonce (phoneops.core.jobs.worker_id)."""
    return int(lease_owner.split(":")[1]) if lease_owner else None


# --- periodic schedule ---------------------------------------------------------------------------------


def minutes(first: datetime, last: datetime) -> list[datetime]:
    out, moment = [], first
    while moment <= last:
        out.append(moment)
        moment += timedelta(minutes=1)
    return out


def minute_of(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(second=0, microsecond=0, tzinfo=None)


def periodic_slots(engine: Engine) -> dict[str, dict[str, int]]:
    """Finished periodic runs: task -> slot -> how many rows."""
    found: dict[str, dict[str, int]] = {}
    for name, slot, count in rows(engine, "SELECT name, slot, count(*) FROM periodic_runs WHERE finished_at IS NOT "
                                          "NULL GROUP BY name, slot"):
        found.setdefault(str(name), {})[str(slot)] = int(count)
    return found


def due_slots(first: datetime, last: datetime) -> dict[str, set[str]]:
    """The slots of every registered periodic task's schedule from minute `first` to minute `last`."""
    from huey import crontab

    due: dict[str, set[str]] = {}
    for name, (minute, hour) in product_schedules().items():
        on_schedule = crontab(minute=minute, hour=hour)
        due[name] = {m.strftime(SLOT) for m in minutes(first, last) if on_schedule(m)}
    return due


def check_periodic_runs(engine: Engine, first: datetime, last: datetime, now: datetime) -> dict[str, dict[str, int]]:
    """Each periodic task ran exactly once in every slot of its schedule from minute `first` (the schedulers'
    first check) to minute `last` (checked by now), and never off its schedule or outside the run."""
    found = periodic_slots(engine)
    assert not set(found) - set(due_slots(first, last)), f"runs of unregistered periodic tasks: {found}"
    possible = due_slots(first, minute_of(now))
    for name, due in due_slots(first, last).items():
        slots = found.get(name, {})
        assert all(count == 1 for count in slots.values()), f"{name} ran twice in a slot: {slots}"
        assert due <= set(slots), f"{name} missed slots {sorted(due - set(slots))} (ran in {sorted(slots)})"
        assert set(slots) <= possible[name], f"{name} ran off its schedule: {sorted(set(slots) - possible[name])}"
    return found


# --- the workload --------------------------------------------------------------------------------------


def upload(api: Api, path: str, name: str, body: bytes, expect: int = 201, **form: Any) -> Any:
    return api.post(path, expect=expect, files={"file": (name, body, "text/csv")}, data=form)


def start_cleaning(api: Api) -> tuple[int, str, dict[str, int]]:
    """A list of distinct valid GB numbers, each also written a second way (duplicates), and junk rows."""
    numbers = [f"+447400{100000 + n}" for n in range(CLEAN_NUMBERS)]
    table = [["name", "phone"]] + [[f"p{n}", v] for n, v in enumerate(numbers)]
    table += [[f"d{n}", "0" + numbers[n][3:]] for n in range(0, CLEAN_NUMBERS, 7)]  # national writing of a kept one
    table += [[f"x{n}", f"not a number {n}"] for n in range(250)]
    expected = {"kept": CLEAN_NUMBERS, "duplicate": len(range(0, CLEAN_NUMBERS, 7)), "invalid": 250}
    record = upload(api, "/api/cleaning/files", "scale.csv", csv_bytes(table), region="GB")
    run = api.post(f"/api/cleaning/files/{record['id']}/runs", expect=202, json={"add_to_used": True})
    return int(run["id"]), str(run["job_id"]), expected


def start_hlr(api: Api) -> tuple[int, str, list[str]]:
    numbers = [f"+447911{n:06d}" for n in range(20_000, 20_000 + HLR_NUMBERS)]
    stored = api.post("/api/files", expect=201,
                      files={"file": ("hlr.csv", ("phone\n" + "\n".join(numbers) + "\n").encode(), "text/csv")})
    lookup = api.post("/api/hlr/lookups", expect=201, json={"file_id": stored["id"], "phone_column": "phone",
                                                             "region": "GB", "batch_size": 250, "confirm": True})
    assert lookup["job"] is not None, lookup
    return int(lookup["id"]), str(lookup["job"]["id"]), numbers


def start_imei(api: Api) -> tuple[int, str, list[str]]:
    values = [imei(n) for n in range(IMEIS)]
    batch = api.post("/api/imei/batches", expect=202, json={"service_id": SERVICE, "imeis": values})
    assert batch["to_send"] == IMEIS, batch
    return int(batch["id"]), str(batch["job_id"]), values


def give_conversions_real_numbers(sim_url: str) -> int:
    """The seeded conversions carry fictional (invalid) numbers; give each click a valid GB mobile number so the
    Ongage conversion sync has contacts to send. Returns how many conversions the simulator holds."""
    import httpx

    data = httpx.get(f"{sim_url}/_sim/data", timeout=10).json()
    clicks: dict[str, str] = {}
    for row in data["conversions"]:
        row["customVariable1"] = clicks.setdefault(row["clickId"], f"+4478251{len(clicks):05d}")
    response = httpx.post(f"{sim_url}/_sim/data", json={"conversions": data["conversions"]}, timeout=10)
    response.raise_for_status()
    return int(response.json()["conversions"])


def start_ongage_csv(api: Api) -> tuple[int, str, set[str]]:
    from phoneops.ongage.service_csv import REQUIRED
    from phoneops.simulators.ongage import DEFAULT_LIST_ID

    emails = [f"scale{n}@example.com" for n in range(CSV_CONTACTS)]
    table = [list(REQUIRED)] + [[DEFAULT_LIST_ID, e, "GB", "GB_REG", f"4479{n:08d}", "REG", "sms", "LIVE", f"u-{n}"]
                                for n, e in enumerate(emails)]
    draft = upload(api, "/api/ongage/csv-jobs", "contacts.csv", csv_bytes(table), interval_seconds="1",
                   lower_limit="400", upper_limit="400", batch_size="100")
    started = api.post(f"/api/ongage/csv-jobs/{draft['id']}/start")
    assert started["status"] == "running" and started["worker_job_id"], started
    return int(draft["id"]), str(started["worker_job_id"]), set(emails)


# --- the test ------------------------------------------------------------------------------------------


def test_two_apis_two_workers_one_sigkilled_every_job_once(
    cluster: tuple[Cluster, Engine], sims: dict[str, str]
) -> None:
    deployment, engine = cluster
    began = time.monotonic()
    run_cli(["migrate"], deployment.env)
    run_cli(["user", "create", "scale-operator", "--role", "operator", "--password", PASSWORD], deployment.env)
    token = run_cli(["token", "create", "scale-operator"], deployment.env).strip().splitlines()[-1]

    apis = [deployment.start_api("api1"), deployment.start_api("api2")]
    workers = [deployment.start_worker("worker1"), deployment.start_worker("worker2")]
    workers_started = datetime.now(UTC)
    for proc in apis:
        deployment.wait_api(proc)
    assert all(p.url for p in apis)
    api = Api([str(p.url) for p in apis], token)
    try:
        run_workload(deployment, engine, api, workers, workers_started, sims, began)
        assert all(calls >= 10 for calls in api.calls_per_url.values()), api.calls_per_url  # both APIs served
    finally:
        api.close()


def run_workload(deployment: Cluster, engine: Engine, api: Api, workers: list[Proc],
                 workers_started: datetime, sims: dict[str, str], began: float) -> None:
    run_id, clean_job, clean_expected = start_cleaning(api)
    lookup_id, hlr_job, hlr_numbers = start_hlr(api)
    batch_id, imei_job, imei_values = start_imei(api)
    csv_id, csv_job, csv_emails = start_ongage_csv(api)

    # SIGKILL the worker holding the IMEI batch while it runs (not while it is inside a periodic tick:
    # a tick is not a job and is not resumed, which would leave its slot unfinished).
    by_pid = {w.pid: w for w in workers}
    threshold = IMEIS // 5
    wait_until("the IMEI batch to be under way on a worker",
               lambda: (lambda j: j[0] == "running" and j[1] >= threshold and owner_pid(j[3]) in by_pid)(
                   job_row(engine, imei_job)), timeout=90, poll=0.05, alive=deployment.check_alive)
    victim = by_pid[owner_pid(job_row(engine, imei_job)[3]) or 0]
    survivor = next(w for w in workers if w is not victim)
    wait_until("the victim to be outside a periodic tick", lambda: not scalar(
        engine, "SELECT count(*) FROM periodic_runs WHERE finished_at IS NULL AND worker LIKE :me",
        me=f"%:{victim.pid}:%"), timeout=30, poll=0.05)
    held_before = {r[0] for r in rows(engine, "SELECT id FROM jobs WHERE status = 'running' AND lease_owner LIKE :me",
                                      me=f"%:{victim.pid}:%")}
    deployment.sigkill(victim)
    status, done_at_kill, total, owner, _ = job_row(engine, imei_job)
    assert status == "running" and owner_pid(owner) == victim.pid, (status, owner, victim.pid)
    assert 0 < done_at_kill < IMEIS, done_at_kill
    killed_jobs = held_before | {imei_job}
    print(f"SIGKILLed {victim.name} (pid {victim.pid}) holding {sorted(killed_jobs)}; IMEI at {done_at_kill}/{total}")

    # More work arrives while the survivor takes the dead worker's jobs over.
    assert give_conversions_real_numbers(sims["voluum"]) > 0
    voluum_job = api.post("/api/voluum/conversions/sync", expect=202, json={"from": sims["day"]})["id"]
    wait_until("the Voluum sync", lambda: job_status(api, voluum_job) in TERMINAL, timeout=90,
               alive=lambda: deployment.check_alive(victim))
    ongage_job = api.post("/api/ongage/sync", expect=202)["id"]

    all_jobs = {"cleaning": clean_job, "hlr": hlr_job, "imei": imei_job, "ongage_csv": csv_job,
                "voluum": voluum_job, "ongage_sync": ongage_job}
    wait_until("every job to end", lambda: all(job_status(api, j) in TERMINAL for j in all_jobs.values()),
               timeout=150, poll=0.5, alive=lambda: deployment.check_alive(victim))
    final = {name: api.get(f"/api/jobs/{j}") for name, j in all_jobs.items()}
    assert {n: j["status"] for n, j in final.items()} == dict.fromkeys(all_jobs, "succeeded"), {
        n: (j["status"], j["error"], j["message"]) for n, j in final.items()}
    assert final["imei"]["attempts"] >= 2  # the survivor resumed it
    for job_id in killed_jobs:
        lease = job_row(engine, job_id)
        assert lease[0] == "succeeded" and lease[4] >= 2, (job_id, lease)
    assert survivor.alive(), survivor.tail()

    check_cleaning(api, engine, run_id, clean_expected)
    check_hlr(api, engine, sims["hlr"], lookup_id, hlr_numbers)
    check_imei(engine, sims["gsm"], batch_id, imei_values)
    check_voluum(engine, sims["voluum"], sims["day"])
    check_ongage(api, engine, sims["ongage"], csv_id, csv_emails)

    # The periodic tasks: the schedulers' first check is the first every-minute slot; once the run has spanned
    # a minute boundary (and every minute before the current one has certainly been checked), each task must
    # have run exactly once in each slot of its schedule.
    first = datetime.strptime(min(periodic_slots(engine)["ongage.conversions"]), SLOT)
    assert first >= minute_of(workers_started)
    last = max(first + timedelta(minutes=1), minute_of(datetime.now(UTC)) - timedelta(minutes=1))
    wait_until("the ticks of the minutes spanned", lambda: all(
        due <= set(periodic_slots(engine).get(name, {})) for name, due in due_slots(first, last).items()),
        timeout=100, poll=0.5)
    found = check_periodic_runs(engine, first, last, datetime.now(UTC))
    print(f"periodic slots {first:%H:%M}..{last:%H:%M}: { {k: sorted(v) for k, v in found.items()} }; "
          f"total {time.monotonic() - began:.0f} s")
    deployment.check_alive(victim)
    unfinished = scalar(engine, "SELECT count(*) FROM periodic_runs WHERE finished_at IS NULL OR error IS NOT NULL")
    assert unfinished == 0


def job_status(api: Api, job_id: str) -> str:
    return str(api.get(f"/api/jobs/{job_id}")["status"])


# --- the checks ----------------------------------------------------------------------------------------


def check_cleaning(api: Api, engine: Engine, run_id: int, expected: dict[str, int]) -> None:
    stats = api.get(f"/api/cleaning/runs/{run_id}/stats")
    assert stats["status"] == "succeeded" and stats["outcomes"] == expected, stats
    assert stats["added_to_used"] == expected["kept"], stats
    assert scalar(engine, "SELECT count(*) FROM used_numbers") == expected["kept"]


def check_hlr(api: Api, engine: Engine, sim_url: str, lookup_id: int, numbers: list[str]) -> None:
    with SimAdmin(sim_url) as admin:
        stats = admin.stats()
    assert stats["lookups_per_number"] == {n[1:]: 1 for n in numbers}  # each number paid once, none left out
    assert stats["total_paid_lookups"] == len(numbers)
    lookup = api.get(f"/api/hlr/lookups/{lookup_id}")
    assert lookup["looked_up"] == len(numbers) and lookup["counts"] == {"done": len(numbers)}, lookup
    assert scalar(engine, "SELECT count(*) FROM hlr_lookup_items WHERE lookup_id = :id", id=lookup_id) == len(numbers)


def check_imei(engine: Engine, sim_url: str, batch_id: int, values: list[str]) -> None:
    with SimAdmin(sim_url) as admin:
        stats = admin.stats()
        provider = {o["order_id"]: o["imei"] for o in admin.orders()}
    assert stats["max_orders_per_imei"] == 1, "an IMEI was paid twice"
    assert stats["total_orders"] == len(values) and sorted(stats["orders_per_imei"]) == sorted(values)
    found = rows(engine, "SELECT imei, state, order_id FROM imei_orders WHERE batch_id = :id", id=batch_id)
    assert len(found) == len(values) and {r[0] for r in found} == set(values)  # one row per IMEI
    assert {r[1] for r in found} <= {"placed", "review"}, {r[1] for r in found}
    for value, state, order_id in found:
        if state == "placed":
            assert provider[order_id] == value
        else:  # left for a human only when the provider already had it (never resent blindly)
            assert value in stats["orders_per_imei"]


def check_voluum(engine: Engine, sim_url: str, day: str) -> None:
    import httpx

    from phoneops.simulators.voluum_data import parse_when

    data = httpx.get(f"{sim_url}/_sim/data", timeout=10).json()
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    wanted = set()
    for row in data["conversions"]:
        moment = parse_when(row["postbackTimestamp"])
        if moment is not None and start <= moment < start + timedelta(days=1) and row["clickId"]:
            wanted.add((row["clickId"], row["transactionId"], row["conversionType"]))
    stored = {tuple(r) for r in rows(engine, "SELECT click_id, transaction_id, conversion_type FROM voluum_conversions")}
    assert wanted and stored == wanted, (len(stored), len(wanted))


def check_ongage(api: Api, engine: Engine, sim_url: str, csv_id: int, csv_emails: set[str]) -> None:
    with SimAdmin(sim_url) as admin:
        received = {c["email"]: c["receipts"] for c in admin.orders()}
    csv_job = api.get(f"/api/ongage/csv-jobs/{csv_id}")
    assert csv_job["status"] == "done" and csv_job["counts"]["sent"] == len(csv_emails), csv_job
    assert {e: received.get(e) for e in csv_emails} == dict.fromkeys(csv_emails, 1)  # each contact once
    # The conversion sync (the job and the every-minute tick): each stored GB conversion enrolled once and sent;
    # each number reached Ongage once (its conversions merged into one contact).
    enrolled = scalar(engine, "SELECT count(*) FROM ongage_conversions")
    gb = scalar(engine, "SELECT count(*) FROM voluum_conversions WHERE country = 'GB'")
    statuses = {(r[0], r[1]): r[2] for r in rows(
        engine, "SELECT status, last_error, count(*) FROM ongage_conversions GROUP BY status, last_error")}
    assert enrolled == gb and gb > 0 and {s for s, _ in statuses} <= {"sent", "invalid"}, (enrolled, gb, statuses)
    numbers = scalar(engine, "SELECT count(DISTINCT c.blind_index) FROM ongage_conversions o JOIN voluum_conversions c "
                             "ON c.id = o.conversion_id WHERE o.status = 'sent'")
    synced = {e: n for e, n in received.items() if e not in csv_emails}
    assert len(synced) == numbers and set(synced.values()) == {1}, (synced, statuses)
