"""Shared fixtures: a database on SQLite and PostgreSQL, the app, users.

PostgreSQL, Redis and the browser are optional on a laptop (tests skip with the reason) and
mandatory in CI (`PHONEOPS_TEST_REQUIRE_SERVICES=1` turns those skips into failures).
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import (
    CHROMIUM,
    TMP,
    create_scratch_database,
    drop_scratch_database,
    free_port,
    process_env,
    start_process,
    stop_process,
    unavailable,
    wait_http,
)

_TMP = TMP

# --- database ----------------------------------------------------------------------------------

_migrated: dict[str, str] = {}


def _postgres_url() -> str:
    # Each test session gets its own database, so concurrent runs never wipe each other's tables.
    admin_url, name, url = create_scratch_database("phoneops_test")
    atexit.register(_drop_database, admin_url, name)
    return url


def _drop_database(admin_url: str, name: str) -> None:
    from phoneops.core import db

    db.dispose_all()
    drop_scratch_database(admin_url, name)


def _migrate_once(backend: str) -> str:
    if backend in _migrated:
        return _migrated[backend]

    from phoneops.core.migrate import upgrade

    url = f"sqlite:///{_TMP / 'test.db'}" if backend == "sqlite" else _postgres_url()
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
    from sqlalchemy import inspect

    existing = set(inspect(db.get_engine()).get_table_names())
    tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in existing]
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




# --- browser ---------------------------------------------------------------------------------


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        unavailable(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        )
        yield instance
        instance.close()


@pytest.fixture
def live_env() -> dict[str, str]:
    """Extra environment for `live_server` (override in a test module, e.g. provider URLs)."""
    return {}


@pytest.fixture
def live_server(db_url: str, tmp_path: Path, live_env: dict[str, str]) -> Iterator[str]:
    """The real `phoneops serve` with an embedded worker, on a free port."""
    port = free_port()
    env = process_env(db_url, DATA_DIR=str(tmp_path), JOB_LEASE_SECONDS="5", **live_env)
    proc = start_process(["serve", "--port", str(port), "--embedded-worker"], env,
                         TMP / f"serve-{os.getpid()}-{port}.log")
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
