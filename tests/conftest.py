"""Shared fixtures: a database on SQLite and PostgreSQL, the app, users.

PostgreSQL, Redis and the browser are optional on a laptop (tests skip with the reason) and
mandatory in CI (`PHONEOPS_TEST_REQUIRE_SERVICES=1` turns those skips into failures).
"""

from __future__ import annotations

import atexit
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

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

# --- parallel runs (pytest-xdist) -------------------------------------------------------------------

# `make test` runs the suite on several xdist workers. Every worker has its own SQLite files, PostgreSQL
# databases, temp dir and ports (tests/support.py), so most tests run anywhere, in any order. The tests below
# cannot share the machine: they SIGKILL workers at timed points, run clusters of processes, or share the one
# Redis database (PHONEOPS_TEST_REDIS_URL, flushed by each). They form one group, "processes": the scheduler
# hands the whole group to one worker, which runs them one after another while the other workers share out
# everything else. A new test of that kind joins by path here or with `@pytest.mark.xdist_group("processes")`.
EXCLUSIVE = (
    "tests/scale/",
    "tests/crash/",
    "tests/core/test_redis_jobs.py",
    "tests/core/test_worker_kill.py",
    "tests/core/test_serve_workers.py",
    "tests/hlr/test_hlr_kill.py",
    "tests/imei/test_batch_crash.py",
    "tests/ongage/test_og_csv_crash.py",
    "tests/sources/test_sources_browser.py::test_the_demo_shows_three_sources_whose_roi_differ",
    "tests/voluum/test_traffic_sync.py::test_sigkilled_worker_mid_sync_resumes_to_the_clean_state",
    "tests/faults/test_outage.py::test_every_provider_down_for_minutes_jobs_wait_visibly_then_finish",
)
GROUP = "processes"


@pytest.hookimpl(tryfirst=True)  # before xdist reads the marks
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("xdist_group") is None and (
            item.nodeid.startswith(EXCLUSIVE) or item.get_closest_marker("redis") is not None
        ):
            item.add_marker(pytest.mark.xdist_group(GROUP))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist (the dev extra installs it)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """`--dist load`/`loadgroup` with the group above by path. xdist's own loadgroup reads the marks through a
    node id suffix, which pytest >= 9.2 drops (pytest-dev/pytest-xdist#1386); the paths keep working."""
    if config.getoption("dist") not in ("load", "loadgroup"):
        return None
    from xdist.scheduler import LoadGroupScheduling

    class ExclusiveGroup(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return GROUP if nodeid.startswith(EXCLUSIVE) else str(super()._split_scope(nodeid))

    return ExclusiveGroup(config, log)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """The guarantee whatever the scheduler does (`--dist worksteal`, a marked test outside the paths): a test
    of a group holds that group's lock, shared by the workers of this run, from its setup to its teardown."""
    mark = item.get_closest_marker("xdist_group")
    run = os.environ.get("PYTEST_XDIST_TESTRUNUID")
    if mark is None or not run:
        yield
        return
    import fcntl
    import tempfile

    name = str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
    with open(Path(tempfile.gettempdir()) / f"phoneops-tests-{run}-{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --- settings ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """`get_settings()` is cached for the process. A test that patches the environment (monkeypatch) and reads
    settings leaves a cached `Settings` built from that environment; monkeypatch restores the environment at its
    teardown but not the cache, so the next test saw e.g. GSM Fusion credentials it never set. Autouse fixtures
    are set up first and torn down last (after monkeypatch), so each test starts and ends with an empty cache."""
    from phoneops.settings import reset_settings_cache

    reset_settings_cache()
    yield
    reset_settings_cache()


# --- password hashes ---------------------------------------------------------------------------

_product_hasher: list[Any] = []  # the product's own hasher, for `product_password_hasher`


@pytest.fixture(scope="session", autouse=True)
def _cheap_password_hashes() -> Iterator[None]:
    """Argon2id at its cheapest parameters (m=8 KiB, t=1, p=1) for the users the tests create. The product's
    (RFC 9106 low-memory: 64 MiB, t=3, p=4) cost ~0.17 CPU-s per hash and again per login, which was a third
    of the CPU of the API tests; a hash carries its parameters, so its logins (here or in a server process)
    are cheap too. Every hashing and verifying path still runs; `product_password_hasher` restores the
    product's hasher for the tests of the hash itself."""
    from argon2 import PasswordHasher, profiles

    from phoneops.core import security

    _product_hasher.append(security._hasher)
    security._hasher = PasswordHasher.from_parameters(profiles.CHEAPEST)
    yield
    security._hasher = _product_hasher.pop()


@pytest.fixture
def product_password_hasher(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The product's password hasher (and its cost) for this test."""
    from phoneops.core import security

    monkeypatch.setattr(security, "_hasher", _product_hasher[0])
    monkeypatch.setattr(security, "_dummy_hash", None)
    return _product_hasher[0]


# --- database ----------------------------------------------------------------------------------

_migrated: dict[str, str] = {}
_scratch: list[tuple[str, str]] = []


def _postgres_url() -> str:
    # Each test session (each xdist worker) gets its own database, so concurrent runs never wipe each other's tables.
    admin_url, name, url = create_scratch_database("phoneops_test")
    _scratch.append((admin_url, name))
    atexit.register(_drop_database, admin_url, name)
    return url


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this process's scratch databases (atexit stays as the fallback: xdist workers may end abruptly)."""
    while _scratch:
        _drop_database(*_scratch.pop())


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


_tables: dict[str, list[str]] = {}  # per database URL: its tables, children first (the schema never changes)
_USED_TABLES_SQL: dict[str, str] = {}  # per PostgreSQL URL: the query naming the tables a test wrote to
# The tables owning a sequence that has handed out a value since it was created or restarted.
_MOVED_SEQUENCES_SQL = """
SELECT t.relname AS name FROM pg_sequences ps
JOIN pg_class s ON s.relname = ps.sequencename AND s.relkind = 'S'
JOIN pg_namespace n ON n.oid = s.relnamespace AND n.nspname = ps.schemaname
JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass
JOIN pg_class t ON t.oid = d.refobjid
WHERE ps.schemaname = current_schema() AND ps.last_value IS NOT NULL
"""


def _wipe(url: str) -> None:
    from sqlalchemy import text

    from phoneops.core import db

    db.configure(url)
    if url not in _tables:
        from sqlalchemy import inspect

        from phoneops.core.db import Base
        from phoneops.registry import load_domains

        load_domains()
        import phoneops.core.models  # noqa: F401

        existing = set(inspect(db.get_engine()).get_table_names())
        _tables[url] = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name in existing]
        nonempty = " UNION ".join(
            f"SELECT '{t}' AS name WHERE EXISTS (SELECT 1 FROM \"{t}\")" for t in _tables[url]  # noqa: S608
        )
        _USED_TABLES_SQL[url] = nonempty + " UNION " + _MOVED_SEQUENCES_SQL
    tables = _tables[url]
    with db.get_engine().begin() as conn:
        if url.startswith("postgresql"):
            # TRUNCATE gives every table and index a new file: ~1 s for all of them on every test. Only the
            # tables a test wrote to need it: those with a row, and those whose sequence has moved (so ids
            # start again at 1). Found in one query; usually a handful.
            used = conn.execute(text(_USED_TABLES_SQL[url])).scalars().all()
            if used:
                conn.execute(text("TRUNCATE " + ", ".join(f'"{t}"' for t in used) + " RESTART IDENTITY CASCADE"))
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




# --- logs ------------------------------------------------------------------------------------


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    """Every structlog event, whatever level the suite configured."""
    saved = structlog.get_config()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as captured:
            yield captured
    finally:
        structlog.configure(**saved)


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
