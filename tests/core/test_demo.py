"""`phoneops demo` on a fresh directory, as a newcomer meets it: secrets generated, admin printed once, first
syncs seeded (every dashboard card has data), and every README CLI command run against it from a sub-folder
without any setting, plus a clear message from a folder that has no demo."""

from __future__ import annotations

import os
import re
import shlex
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from openpyxl import Workbook

from support import TEST_ENV, free_port, login_form, stop_process, wait_http

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_commands() -> list[str]:
    """The `phoneops ...` lines of the README's CLI section (comments dropped)."""
    text = README.read_text()
    section = text.split("\n## CLI\n", 1)[1].split("\n## ", 1)[0]
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", section, flags=re.S):
        for line in block.splitlines():
            if line.startswith("phoneops "):
                commands.append(shlex.join(shlex.split(line, comments=True)))
    return commands


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in TEST_ENV and not k.startswith(("GSM_", "HLR_", "VOLUUM_", "ONGAGE_", "MESSAGEWHIZ_"))}
    env["PYTHONUNBUFFERED"] = "1"
    env["COLUMNS"] = "80"
    return env


def _cli(args: list[str], cwd: Path, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "phoneops", *args], cwd=cwd, env=env, input=stdin,
                          capture_output=True, text=True, timeout=300, check=False)


def _inputs(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "list.csv").write_text("phone\n" + "\n".join(f"+44740012{n:04d}" for n in range(0, 400, 7)) + "\n")
    (folder / "blacklist.csv").write_text("phone,reason,source\n+447400129001,COMPLAINT,support desk\n"
                                          "07400 129 002,COMPLAINT,support desk\n")
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["imei"])
    for imei in ("490154203237518", "353918050562325", "352099001761481"):
        sheet.append([imei])
    book.save(folder / "imeis.xlsx")


def _placeholder(db: Path, name: str) -> str:
    query = {"JOB_ID": "SELECT id FROM jobs ORDER BY created_at DESC LIMIT 1",
             "LOOKUP_ID": "SELECT max(id) FROM hlr_lookups",
             "ORDER_ID": "SELECT order_id FROM imei_orders WHERE order_id IS NOT NULL ORDER BY id LIMIT 1"}[name]
    with sqlite3.connect(db) as conn:
        row = conn.execute(query).fetchone()
    assert row and row[0] is not None, name
    return str(row[0])


@pytest.mark.timeout(1800)  # ~3 min on an idle 2-core machine: a demo start, its first syncs, ~30 commands
def test_demo_seeds_every_page_and_the_readme_cli_runs_against_it(tmp_path: Path) -> None:
    env = _clean_env()
    port = free_port()
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "phoneops", "demo", "--port", str(port)], cwd=tmp_path, env=env,
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/health", timeout=300)
        text = log.read_text()
        match = re.search(r"password (\S+) ", text)
        assert match, text
        password = match.group(1)
        data = tmp_path / "data"
        assert (data / "phoneops.db").exists()
        assert (data / "demo-secrets.env").stat().st_mode & 0o777 == 0o600
        assert "GSM_FUSION_BASE_URL=http://127.0.0.1:" in (data / "demo-providers.env").read_text()
        assert f"export DATA_DIR={data}" in text
        assert "Traceback" not in text
        health = httpx.get(f"http://127.0.0.1:{port}/health").json()
        assert health["providers"]["gsm_fusion"] == "configured"  # served by its simulator
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            form = login_form(client)
            bad = client.post("/login", data={"username": "admin", "password": "wrong", **form})
            assert bad.status_code == 401
            ok = client.post("/login", data={"username": "admin", "password": password, **form})
            assert ok.status_code == 303
            dashboard = client.get("/").text
            assert "Dashboard" in dashboard
            # the first syncs ran: lists, Voluum days, broadcasts, Ongage, cleaning, IMEI and HLR all have data
            for card in ("Numbers by list", "Voluum numbers on", "Broadcast cost on", "Ongage contacts sent",
                         "Lists cleaned", "HLR credits", "IMEI orders open"):
                assert card in dashboard, card
            assert "no day imported yet" not in dashboard
            assert 'data-job-status="failed"' not in client.get("/jobs").text
            # the live feed: events arrive on the demo's local SQS queue and the live page counts them
            assert "Voluum live events: a local SQS queue (moto)" in text
            stored = []
            for _ in range(60):
                live = client.get("/voluum/live").text
                found = re.search(r'Events stored</div><div class="value">([\d,]+)<', live)
                assert found and 'data-refresh="3"' in live, live[:2000]
                stored.append(int(found.group(1).replace(",", "")))
                if stored[-1] > stored[0] > 0:
                    break
                time.sleep(1)
            assert stored[-1] > stored[0] > 0, stored  # it moves

        # Another folder with no demo above it: a clear message, no traceback, no new database.
        elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere"
        elsewhere.mkdir()
        lost = _cli(["jobs", "list"], elsewhere, env)
        assert lost.returncode == 2 and "Traceback" not in lost.stderr + lost.stdout
        assert "make demo" in lost.stderr and "DATA_DIR" in lost.stderr
        assert not (elsewhere / "data" / "phoneops.db").exists()
        # ...and with DATA_DIR set it reaches the demo from there
        listed = _cli(["jobs", "list"], elsewhere, {**env, "DATA_DIR": str(data)})
        assert listed.returncode == 0, listed.stderr
        job_ids = re.findall(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", listed.stdout)
        assert len(job_ids) >= 10  # full ids at 80 columns

        # Every README command, from a folder below the demo, without any setting.
        work = tmp_path / "work"
        _inputs(work)
        failures = []
        for line in readme_commands():
            for name in ("JOB_ID", "LOOKUP_ID", "ORDER_ID"):
                if name in line:
                    line = line.replace(name, _placeholder(data / "phoneops.db", name))
            args = shlex.split(line)[1:]
            stdin = "long-enough-password\n" if args[:2] == ["user", "create"] else None
            done = _cli(args, work, env, stdin)
            output = done.stdout + done.stderr
            if done.returncode != 0 or "Traceback" in output:
                failures.append(f"$ {line}\n-> exit {done.returncode}\n{output[-1500:]}")
            if args[:2] == ["imei", "services"] and done.returncode == 0:
                assert "<" not in output and "iPhone" in output, output  # text, not HTML
        assert not failures, "\n\n".join(failures)
        assert (work / "clean_list.csv").exists() and (work / "backup.db").exists()
    finally:
        stop_process(proc)
