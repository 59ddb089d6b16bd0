"""`phoneops serve --workers N`: N real API processes on one port, proxy headers, and the refused combination."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import TMP, free_port, process_env, start_process, stop_process, wait_http


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of every live direct child of `pid`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process ended while we looked
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append((int(entry.name), cmdline))
    return found


def _api_processes(pid: int) -> list[int]:
    # uvicorn's supervisor spawns one multiprocessing child per API process (plus a resource tracker).
    return [child for child, cmdline in _children(pid) if "spawn_main" in cmdline]


def _audited_ip(base: str, admin: dict[str, str], forwarded_for: str) -> str | None:
    """Create a token with X-Forwarded-For set; return the client address its audit entry recorded."""
    name = f"proxy-{uuid.uuid4().hex[:8]}"
    response = httpx.post(f"{base}/api/tokens", json={"name": name}, timeout=10,
                          headers={**admin, "X-Forwarded-For": forwarded_for})
    assert response.status_code == 201, response.text
    entries = httpx.get(f"{base}/api/audit", params={"action": "token.create"}, headers=admin, timeout=10).json()
    matching = [e for e in entries if e["detail"].get("name") == name]
    assert len(matching) == 1, entries
    return matching[0]["client_ip"]


def test_two_api_processes_share_one_port(db_url: str, users: Any) -> None:
    admin = users.headers("admin")
    port = free_port()
    log = TMP / f"serve-workers-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
    proc = start_process(["serve", "--port", str(port), "--workers", "2"], process_env(db_url), log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", timeout=90)
        health = httpx.get(f"{base}/health", timeout=10)
        assert health.status_code == 200, health.text
        assert health.json()["database"]["backend"] == ("sqlite" if db_url.startswith("sqlite") else "postgresql")
        workers = _api_processes(proc.pid)
        assert len(workers) == 2, (_children(proc.pid), log.read_text()[-2000:])
        # Every request is answered, whichever process takes it.
        statuses = {httpx.get(f"{base}/api/me", headers=admin, timeout=10).status_code for _ in range(20)}
        assert statuses == {200}
        # Behind a proxy on 127.0.0.1 (trusted by default) the audit records the forwarded client address.
        assert _audited_ip(base, admin, "203.0.113.7") == "203.0.113.7"
    finally:
        stop_process(proc)
    assert proc.returncode is not None
    assert _api_processes(proc.pid) == []  # stopping the supervisor stops the API processes


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_forwarded_for_from_an_untrusted_peer_is_ignored(db_url: str, users: Any) -> None:
    admin = users.headers("admin")
    port = free_port()
    log = TMP / f"serve-untrusted-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
    proc = start_process(["serve", "--port", str(port), "--forwarded-allow-ips", "192.0.2.1"],
                         process_env(db_url), log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", timeout=60)
        assert _audited_ip(base, admin, "203.0.113.7") == "127.0.0.1"  # a client cannot forge its address
    finally:
        stop_process(proc)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_one_api_process_keeps_answering_more_requests_than_its_database_pool(db_url: str, users: Any) -> None:
    """40 clients at once against one process whose pool holds 15 SQLite connections: requests queue, and
    every one is answered well before the pool's 30 s timeout (a blocked event loop would stall them all)."""
    from concurrent.futures import ThreadPoolExecutor

    headers = users.headers("viewer")
    port = free_port()
    log = TMP / f"serve-burst-{os.getpid()}-{uuid.uuid4().hex[:6]}.log"
    proc = start_process(["serve", "--port", str(port)], process_env(db_url), log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/health", timeout=60)
        assert httpx.get(f"{base}/api/jobs", headers=headers, timeout=10).status_code == 200

        def client(_: int) -> list[int]:
            with httpx.Client(base_url=base, headers=headers, timeout=25) as http:
                return [http.get("/api/jobs", params={"limit": 5}).status_code for _ in range(5)]

        with ThreadPoolExecutor(40) as pool:
            statuses = [s for batch in pool.map(client, range(40)) for s in batch]
        assert statuses == [200] * 200
    finally:
        stop_process(proc)


def test_embedded_worker_with_several_processes_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "untouched.db"
    result = subprocess.run(
        [sys.executable, "-m", "phoneops", "serve", "--workers", "2", "--embedded-worker", "--port", str(free_port())],
        env=process_env(f"sqlite:///{db}"), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    message = " ".join(result.stderr.split())
    assert "--embedded-worker runs in a single API process" in message
    assert "phoneops worker" in message
    assert not db.exists()  # refused before touching the database


def test_workers_must_be_positive(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "phoneops", "serve", "--workers", "0"],
        env=process_env(f"sqlite:///{tmp_path / 'x.db'}"), capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 2
    assert "--workers" in result.stderr
