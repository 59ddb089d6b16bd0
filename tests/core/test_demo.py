"""`phoneops demo` on a fresh directory: secrets generated, admin printed once, login works, simulators on."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from support import TEST_ENV, free_port, login_form, stop_process, wait_http


def test_demo_serves_login_and_printed_admin_logs_in(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in TEST_ENV and not k.startswith(("GSM_", "HLR_", "VOLUUM_"))}
    env["PYTHONUNBUFFERED"] = "1"
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "phoneops", "demo", "--port", str(port)], cwd=tmp_path, env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=60)
        deadline = time.monotonic() + 10
        while "password" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log.read_text()
        match = re.search(r"password (\S+) ", text)
        assert match, text
        password = match.group(1)
        assert (tmp_path / "data" / "phoneops.db").exists()
        assert (tmp_path / "data" / "demo-secrets.env").stat().st_mode & 0o777 == 0o600
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["providers"]["gsm_fusion"] == "configured"  # served by its simulator
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            form = login_form(client)
            bad = client.post("/login", data={"username": "admin", "password": "wrong", **form})
            assert bad.status_code == 401
            ok = client.post("/login", data={"username": "admin", "password": password, **form})
            assert ok.status_code == 303
            assert "Dashboard" in client.get("/").text
    finally:
        stop_process(proc)
