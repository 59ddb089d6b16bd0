"""Bursts degrade gracefully (core.load): a bounded burst answers without a 5xx while /health keeps
answering; past the in-flight limit a request gets 503 + Retry-After, never a 500; a locked SQLite database
or an exhausted pool is a 503 + Retry-After; stored files and the database are the service user's only.
Full-size figures come from bench/load.py."""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

import httpx
import pytest

from phoneops.core.load import InflightLimit


async def _burst(app: Any, headers: dict[str, str], size: int) -> tuple[list[httpx.Response], list[int]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
        health: list[int] = []

        async def probe() -> None:
            for _ in range(5):
                health.append((await client.get("/health")).status_code)
                await asyncio.sleep(0.01)

        calls = [client.get("/api/numbers/lookup", params={"number": f"+4479111{n:05d}"}, headers=headers)
                 for n in range(size)]
        answers, _ = await asyncio.gather(asyncio.gather(*calls), probe())
        return list(answers), health


def test_a_bounded_burst_of_lookups_gives_no_5xx(app: Any, users: Any) -> None:
    """Far more than the in-flight limit at once: every request is served (the ones past the limit wait for a
    slot instead of for a pooled connection, which used to time out as 500s), /health answers throughout."""
    _set_limit(app, wait=120)  # a shared CI machine is slow: this proves no 5xx, bench/load.py the speed
    answers, health = asyncio.run(_burst(app, users.headers("viewer"), 80))
    statuses = [r.status_code for r in answers]
    assert set(statuses) == {404}, {s: statuses.count(s) for s in set(statuses)}  # none is listed: each answered
    assert health == [200] * 5


def _set_limit(app: Any, *, limit: int | None = None, wait: float | None = None) -> InflightLimit:
    app.middleware_stack = app.build_middleware_stack()
    found = app.middleware_stack
    while not isinstance(found, InflightLimit):
        found = found.app
    found.limit = limit or found.limit
    found.wait = found.wait if wait is None else wait
    return found


def test_past_the_limit_the_answer_is_503_with_retry_after(app: Any, users: Any, monkeypatch: Any) -> None:
    import time

    from phoneops.numbers import lists

    real = lists.lookup

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.3)  # a request that takes its time: the limit below fills up
        return real(*args, **kwargs)

    monkeypatch.setattr(lists, "lookup", slow)
    limit = _set_limit(app, limit=2, wait=0.05)

    answers, health = asyncio.run(_burst(app, users.headers("viewer"), 12))
    statuses = [r.status_code for r in answers]
    assert set(statuses) == {404, 503} and statuses.count(404) >= 2, statuses
    for refused in (r for r in answers if r.status_code == 503):
        assert refused.headers["retry-after"] == "1" and refused.json()["error"]["code"] == "busy"
    assert health == [200] * 5  # never held back
    assert limit.inflight == 0


def test_a_locked_database_is_503_with_retry_after(client: Any, users: Any, monkeypatch: Any) -> None:
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from phoneops.numbers import lists

    headers = users.headers("viewer")

    def locked(*args: Any, **kwargs: Any) -> Any:
        raise OperationalError("UPDATE ...", {}, Exception("database is locked"))

    monkeypatch.setattr(lists, "lookup", locked)
    answer = client.get("/api/numbers/lookup", params={"number": "+447911123456"}, headers=headers)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "2"
    assert answer.json()["error"]["code"] == "busy"

    def exhausted(*args: Any, **kwargs: Any) -> Any:
        raise PoolTimeout("QueuePool limit reached")

    monkeypatch.setattr(lists, "lookup", exhausted)
    answer = client.get("/api/numbers/lookup", params={"number": "+447911123456"}, headers=headers)
    assert answer.status_code == 503 and answer.headers["retry-after"] == "1"


def test_stored_files_and_the_database_are_private(client: Any, users: Any, db_url: str) -> None:
    from phoneops.core.storage import get_storage

    up = client.post("/api/files", headers=users.headers("operator"), files={"file": ("x.csv", b"phone\n1\n")})
    assert up.status_code == 201
    path = get_storage().path_for(up.json()["id"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    if db_url.startswith("sqlite"):
        database = db_url.split("///", 1)[1]
        assert stat.S_IMODE(os.stat(database).st_mode) == 0o600
    else:
        pytest.skip("PostgreSQL keeps its own files")


def test_a_numbers_import_leaves_health_answering(app: Any, users: Any) -> None:
    """The import's per-row work runs off the event loop: /health is answered while it runs (in CI with
    10k rows; bench/load.py for the 200k-row figure)."""
    rows = "phone,reason,source\n" + "".join(f"+447400{n:06d},probe,test\n" for n in range(10_000))

    async def run() -> tuple[int, list[int]]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=600) as client:
            task = asyncio.create_task(client.post(
                "/api/numbers/imports", headers=users.headers("operator"), data={"target": "blacklist"},
                files={"file": ("big.csv", rows.encode(), "text/csv")}))
            during: list[int] = []
            while not task.done():
                during.append((await client.get("/health")).status_code)
                await asyncio.sleep(0.05)
            answer = await task
            assert answer.status_code == 202, answer.text[:300]  # the rows are read by the preview job
            return answer.status_code, during

    status, during = asyncio.run(run())
    assert status == 202
    assert set(during) <= {200}, during  # /health answered while the upload ran
