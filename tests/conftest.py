"""Shared fixtures: a database on SQLite and PostgreSQL, the app, users, live processes.

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
from pathlib import Path
from typing import Any

import pytest

_TMP = Path(tempfile.mkdtemp(prefix="phoneops-tests-"))
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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- database ----------------------------------------------------------------------------------

_migrated: dict[str, str] = {}


def _postgres_url() -> str:
    if not POSTGRES_URL:
        unavailable("PostgreSQL tests need PHONEOPS_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)")
    assert POSTGRES_URL
    import psycopg

    try:
        psycopg.connect(POSTGRES_URL.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
    except Exception as exc:
        unavailable(f"PostgreSQL at PHONEOPS_TEST_POSTGRES_URL is not reachable: {exc}")
    url = POSTGRES_URL
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _migrate_once(backend: str) -> str:
    if backend in _migrated:
        return _migrated[backend]
    from sqlalchemy import text

    from phoneops.core import db
    from phoneops.core.migrate import upgrade

    if backend == "sqlite":
        url = f"sqlite:///{_TMP / 'test.db'}"
    else:
        url = _postgres_url()
        engine = db.make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    upgrade(url)
    _migrated[backend] = url
    return url


def _wipe(url: str) -> None:
    from sqlalchemy import text

    from phoneops.core import db
    from phoneops.core.db import Base
    from phoneops.registry import load_domains

    load_domains()
    import phoneops.core.models  # noqa: F401

    db.configure(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.get_engine().begin() as conn:
        if url.startswith("postgresql"):
            conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(text(f'DELETE FROM "{table}"'))  # noqa: S608 - table names from metadata


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """The database under test, migrated and empty; every DB test runs on both backends."""
    url = _migrate_once(request.param)
    _wipe(url)
    from phoneops.core import jobs

    jobs.set_enqueue_hook(lambda job_id, delay: None)
    yield url
    jobs.set_enqueue_hook(None)


@pytest.fixture
def session(db_url: str) -> Iterator[Any]:
    from phoneops.core.db import session_factory

    s = session_factory()()
    try:
        yield s
        s.commit()
    finally:
        s.close()


@pytest.fixture
def inline_jobs(db_url: str) -> Iterator[list[str]]:
    """Run each job right after the transaction that created it commits."""
    from phoneops.core import jobs

    seen: list[str] = []

    def run(job_id: str, delay: float | None) -> None:
        seen.append(job_id)
        jobs.run_job(job_id)

    jobs.set_enqueue_hook(run)
    yield seen
    jobs.set_enqueue_hook(lambda job_id, delay: None)


# --- app and users -----------------------------------------------------------------------------


@pytest.fixture
def app(db_url: str) -> Any:
    from phoneops.app import create_app
    from phoneops.settings import load_settings

    return create_app(load_settings(DATABASE_URL=db_url))


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


class Users:
    """Creates users with API tokens: `users.headers("operator")`."""

    def __init__(self) -> None:
        self._tokens: dict[str, str] = {}

    def create(self, role: str, username: str | None = None, password: str = "correct-horse-battery") -> str:
        from phoneops.core.db import session_scope
        from phoneops.core.security import SYSTEM, create_token, create_user

        username = username or f"{role}-user"
        with session_scope() as s:
            create_user(s, SYSTEM, username, password, role)
            _, token = create_token(s, SYSTEM, username, "tests")
        self._tokens[role] = token
        return token

    def headers(self, role: str) -> dict[str, str]:
        token = self._tokens.get(role) or self.create(role)
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def users(db_url: str) -> Users:
    return Users()


def login(client: Any, username: str, password: str = "correct-horse-battery") -> str:
    """Log in through the form; returns the CSRF token of the new session."""
    import re

    response = client.post("/login", data={"username": username, "password": password}, follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get("/")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match
    return match.group(1)


# --- live processes ----------------------------------------------------------------------------


def process_env(db_url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, **TEST_ENV, "DATABASE_URL": db_url, "LOG_LEVEL": "WARNING"}
    env.update(extra)
    return env


def start_process(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    handle = log.open("wb")
    return subprocess.Popen(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "phoneops", *args], env=env, stdout=handle, stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_http(url: str, timeout: float = 30.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=2).status_code < 500:
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
