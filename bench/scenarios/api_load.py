"""Locust scenario for bench/load.py: number lookup, job status and IMEI order history over the HTTP API.

Run by bench/load.py (`locust --headless -f bench/scenarios/api_load.py ...`), which seeds the database and
passes what to ask for in the environment: LOAD_TOKEN (a viewer's API token) and LOAD_DATA (a JSON file
with `numbers`, `job_ids` and `imeis`). Every user asks without pause (a closed loop), so requests/s is
what the API processes sustain at that concurrency.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from urllib.parse import urlencode

from locust import FastHttpUser, constant, task

_DATA = json.loads(Path(os.environ["LOAD_DATA"]).read_text())
_HEADERS = {"Authorization": f"Bearer {os.environ['LOAD_TOKEN']}", "Accept": "application/json"}


class ApiUser(FastHttpUser):
    wait_time = constant(0)

    @task(3)
    def number_lookup(self) -> None:
        number = random.choice(_DATA["numbers"])
        self.client.get("/api/numbers/lookup?" + urlencode({"number": number}), headers=_HEADERS,
                        name="number lookup")

    @task(2)
    def job_status(self) -> None:
        self.client.get(f"/api/jobs/{random.choice(_DATA['job_ids'])}", headers=_HEADERS, name="job status")

    @task(1)
    def orders_of_one_imei(self) -> None:
        self.client.get("/api/imei/orders?" + urlencode({"imei": random.choice(_DATA["imeis"])}),
                        headers=_HEADERS, name="order history (one IMEI)")

    @task(1)
    def orders_page(self) -> None:
        page = random.randint(1, max(1, len(_DATA["imeis"]) // 50))
        self.client.get(f"/api/imei/orders?page={page}&per_page=50", headers=_HEADERS,
                        name="order history (page of 50)")
