"""A script retrying an IMEI order with one Idempotency-Key, against two API processes at once, pays once."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from stdnum import luhn

from phoneops.simulators._server import SimAdmin
from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER
from support import free_port, process_env, start_process, stop_process, wait_http

SERVICE = "1739"


def _imei(serial: int) -> str:
    body = f"35291100{serial:06d}"
    return body + luhn.calc_check_digit(body)


def test_one_key_fired_at_two_api_processes_at_once_orders_once(
    db_url: str, users: Any, gsm_sim: SimAdmin, gsm_sim_url: str, tmp_path: Path
) -> None:
    op = users.headers("operator")
    env = process_env(
        db_url, DATA_DIR=str(tmp_path / "data"), STORAGE_ROOT=str(tmp_path / "files"),
        GSM_FUSION_BASE_URL=gsm_sim_url, GSM_FUSION_USERNAME=DEFAULT_USER, GSM_FUSION_API_KEY=DEFAULT_API_KEY,
    )
    ports = [free_port(), free_port()]
    procs = [start_process(["serve", "--port", str(p)], env, tmp_path / f"api-{p}.log") for p in ports]
    procs.append(start_process(["worker", "--threads", "2"], env, tmp_path / "worker.log"))
    try:
        for port in ports:
            wait_http(f"http://127.0.0.1:{port}/health", timeout=90)
        imei = _imei(int(uuid.uuid4().int % 900_000))
        body = {"service_id": SERVICE, "imei": imei}
        headers = {**op, "Idempotency-Key": f"order-{imei}"}
        answers: list[httpx.Response] = []
        gate = threading.Barrier(len(ports))

        def fire(port: int) -> None:
            gate.wait()
            answers.append(httpx.post(f"http://127.0.0.1:{port}/api/imei/orders", json=body, headers=headers,
                                      timeout=60))

        threads = [threading.Thread(target=fire, args=(port,)) for port in ports]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(90)
        statuses = sorted(a.status_code for a in answers)
        assert statuses in ([202, 202], [202, 409]), [a.text for a in answers]
        accepted = {a.json()["id"] for a in answers if a.status_code == 202}
        assert len(accepted) == 1  # one batch, whichever process answered
        batch_id = accepted.pop()
        busy = [a for a in answers if a.status_code == 409]
        assert all(a.json()["error"]["code"] == "idempotency_in_progress" for a in busy)

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = httpx.get(f"http://127.0.0.1:{ports[0]}/api/imei/batches/{batch_id}", headers=op, timeout=10).json()
            if state.get("job_status") in ("succeeded", "failed"):
                break
            time.sleep(0.5)
        assert state["job_status"] == "succeeded", state
        # The script's later retry, to either process, is a replay of the first answer.
        for port in ports:
            retry = httpx.post(f"http://127.0.0.1:{port}/api/imei/orders", json=body, headers=headers, timeout=30)
            assert retry.status_code == 202 and retry.headers["idempotent-replayed"] == "true"
            assert retry.json()["id"] == batch_id
        placed = [o for o in gsm_sim.orders() if o.get("imei") == imei]
        assert len(placed) == 1, placed
    finally:
        for proc in procs:
            stop_process(proc)
