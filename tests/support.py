"""Test support shared by fixtures and tests: environment, service switches, live processes.

PostgreSQL, Redis and the browser are optional on a laptop (tests skip with the reason) and
mandatory in CI (`PHONEOPS_TEST_REQUIRE_SERVICES=1` turns those skips into failures).
"""

from __future__ import annotations

import base64
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

# Under pytest-xdist every worker is a process of its own ("gw0", "gw1", ...): its own temp dir (so its own
# SQLite files, data dir and storage root), its own scratch PostgreSQL databases (named after its pid) and its
# own block of ports. Tests that cannot share the machine with others run in one xdist group (tests/conftest.py).
WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
WORKER_INDEX = int(WORKER[2:]) if WORKER[2:].isdigit() else 0
TMP = _TMP = Path(tempfile.mkdtemp(prefix=f"phoneops-tests-{WORKER or 'main'}-"))
TEST_ENV = {
    "SESSION_SECRET": "test-session-secret-" + "s" * 32,
    "AES_KEYS": "k2:" + base64.urlsafe_b64encode(b"\x02" * 32).decode() + ",k1:"
    + base64.urlsafe_b64encode(b"\x01" * 32).decode(),
    "AES_KEY": base64.urlsafe_b64encode(b"\x09" * 32).decode(),
    "BLIND_INDEX_KEY": base64.urlsafe_b64encode(b"\x03" * 32).decode(),
    "DATA_DIR": str(_TMP / "data"),
    "STORAGE_ROOT": str(_TMP / "files"),
    "DATABASE_URL": f"sqlite:///{_TMP / 'default.db'}",
    "LOG_JSON": "true",
    "LOG_LEVEL": "WARNING",
    "JOB_LEASE_SECONDS": "6",
}
for _name in ("REDIS_URL", "VOLUUM_ACCESS_ID", "VOLUUM_ACCESS_KEY", "GSM_FUSION_USERNAME", "GSM_FUSION_API_KEY",
              "HLR_API_KEY", "HLR_API_SECRET", "MESSAGEWHIZ_API_KEY", "SQS_QUEUE_URL", "ONGAGE_PASSWORD"):
    os.environ.pop(_name, None)
os.environ.update(TEST_ENV)

REQUIRE_SERVICES = os.environ.get("PHONEOPS_TEST_REQUIRE_SERVICES") == "1"
POSTGRES_URL = os.environ.get("PHONEOPS_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("PHONEOPS_TEST_REDIS_URL")
CHROMIUM = os.environ.get("PHONEOPS_TEST_CHROMIUM", "/usr/bin/chromium")


def unavailable(reason: str) -> None:
    """Skip on a laptop; fail in CI where the service is mandatory."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required test service missing: {reason}")
    pytest.skip(reason)


# Ports for servers the tests start come from 20000-32767, below Linux's ephemeral range (32768-60999), so an
# outgoing connection can never take a port between `free_port()` and the server binding it; each xdist worker
# draws from its own residue class (port % 8), so two workers of a run never hand out the same port.
_PORT_LOW, _PORT_HIGH, _PORT_STRIDE = 20000, 32768, 8
_handed_out: set[int] = set()


def free_port() -> int:
    """A port nothing listens on, not handed out before in this process."""
    import random

    stride = _PORT_STRIDE if WORKER else 1
    candidates = list(range(_PORT_LOW + WORKER_INDEX % stride, _PORT_HIGH, stride))
    random.shuffle(candidates)
    for port in candidates:
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free test port left")


def login_form(client: Any) -> dict[str, str]:
    """Open the login page as a browser does (its CSRF cookie lands in the client); the form's hidden fields."""
    import re

    page = client.get("/login", follow_redirects=False)
    if page.status_code == 303:  # logged in already: a browser logging in as someone else drops the old cookie
        client.cookies.delete("phoneops_session")
        page = client.get("/login", follow_redirects=False)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text[:500]
    return {"csrf_token": match.group(1)}


def login(client: Any, username: str, password: str = "correct-horse-battery") -> str:
    """Log in through the form; returns the CSRF token of the new session."""
    import re

    response = client.post("/login", data={"username": username, "password": password, **login_form(client)},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match
    return match.group(1)




# --- scratch PostgreSQL databases ---------------------------------------------------------------


def create_scratch_database(prefix: str) -> tuple[str, str, str]:
    """A new database on PHONEOPS_TEST_POSTGRES_URL's server: (admin URL, its name, its SQLAlchemy URL)."""
    if not POSTGRES_URL:
        unavailable("PostgreSQL tests need PHONEOPS_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    assert POSTGRES_URL
    import uuid

    import psycopg
    from psycopg import sql

    admin_url = POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    try:
        with psycopg.connect(admin_url, connect_timeout=3, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except Exception as exc:
        unavailable(f"PostgreSQL at PHONEOPS_TEST_POSTGRES_URL is not usable (need CREATE DATABASE): {exc}")
    base, _, _ = admin_url.rpartition("/")
    return admin_url, name, "postgresql+psycopg://" + base.split("://", 1)[1] + "/" + name


def drop_scratch_database(admin_url: str, name: str) -> None:
    """Best effort: a leftover test database is harmless."""
    import contextlib

    import psycopg
    from psycopg import sql

    with contextlib.suppress(Exception), psycopg.connect(admin_url, connect_timeout=3, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """A database of its own for the block (dropped afterwards); yields its SQLAlchemy URL."""
    admin_url, name, url = create_scratch_database(prefix)
    try:
        yield url
    finally:
        drop_scratch_database(admin_url, name)


# --- live processes ----------------------------------------------------------------------------


def process_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": db_url, "LOG_LEVEL": "WARNING"}
    env.update(extra)
    return env


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(
        [sys.executable, "-m", "phoneops", *args], env=env, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_http(url: str, timeout: float = 30.0) -> None:
    """GET `url` until it answers below 500. One client for every try: `httpx.get` builds a client and its TLS
    context (~21 ms of CPU) each time, a tenth of a core while a server starts."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2) as client:
        while time.monotonic() < deadline:
            try:
                if client.get(url).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- a simulator in its own process, and workers SIGKILLed mid-job -----------------------------------------


@contextmanager
def simulator_process(name: str, *flags: str) -> Iterator[str]:
    """`python -m phoneops.simulators NAME --port P FLAGS...` in its own process group; yields its URL."""
    from phoneops.simulators._server import wait_until_up

    port = free_port()
    log = (TMP / f"{name}-sim-{os.getpid()}-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phoneops.simulators", name, "--port", str(port), *flags],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(url, timeout=20)
        yield url
    finally:
        stop_process(proc)
        log.close()


def job_progress(job_id: str) -> tuple[str, int]:
    """The job's status and `progress_done`, read in a fresh transaction."""
    from phoneops.core.db import session_scope
    from phoneops.core.models import Job

    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        return job.status, job.progress_done


def run_workers_killing_at(
    job_id: str, env: dict[str, str], kill_at: list[int], workers: list[subprocess.Popen[bytes]], *, seed: int,
    label: str,
) -> None:
    """Real `phoneops worker` processes on one job: each is SIGKILLed (its whole process group) once the job's
    progress reaches the next threshold of `kill_at`, the next starting 3 s later (the job's lease, 5 s in
    these tests, must expire first); a last worker runs the job to `succeeded`. Every worker started is
    appended to `workers` (the caller stops them in its `finally`); the seed names the schedule in failures."""
    import random
    import signal

    rng = random.Random(seed)
    for number, threshold in enumerate(kill_at, start=1):
        log_path = TMP / f"{label}-worker{number}-{os.getpid()}.log"
        worker = start_process(["worker"], env, log_path)
        workers.append(worker)
        deadline = time.monotonic() + 120
        while job_progress(job_id)[1] < threshold:
            assert worker.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, f"worker {number} stalled at {job_progress(job_id)} (seed {seed})"
            time.sleep(rng.uniform(0.01, 0.08))
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(10)
        assert job_progress(job_id)[0] == "running", f"{job_progress(job_id)} (seed {seed})"
        time.sleep(3)  # the next worker's queue polling does not back off while the lease runs out
    workers.append(start_process(["worker"], env, TMP / f"{label}-worker-last-{os.getpid()}.log"))
    deadline = time.monotonic() + 180
    while (status := job_progress(job_id)[0]) != "succeeded":
        assert status in ("queued", "running"), f"job ended {status} (seed {seed})"
        assert time.monotonic() < deadline, f"the job did not finish: {job_progress(job_id)} (seed {seed})"
        time.sleep(0.2)
