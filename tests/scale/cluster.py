"""A phoneops deployment on 127.0.0.1 for scale tests: a scratch PostgreSQL database, a flushed Redis DB, the
provider simulators, and real `python -m phoneops` processes (API servers and workers) sharing them.

PostgreSQL and Redis are optional on a laptop (the test skips with the reason) and mandatory in CI
(`support.unavailable` fails there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from support import REDIS_URL, TMP, free_port, process_env, scratch_database, start_process, stop_process, unavailable
from support import wait_http as _wait_http


@contextlib.contextmanager
def scratch_postgres() -> Iterator[str]:
    """A database of its own on PHONEOPS_TEST_POSTGRES_URL's server (dropped afterwards); yields its URL."""
    with scratch_database("phoneops_scale") as url:
        yield url


def fresh_redis() -> str:
    """PHONEOPS_TEST_REDIS_URL, its database flushed (no message of an earlier run is left in the queue)."""
    if not REDIS_URL:
        unavailable("the multi-process test needs PHONEOPS_TEST_REDIS_URL (e.g. redis://127.0.0.1:6379/2)")
    assert REDIS_URL
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).flushdb()
    except Exception as exc:
        unavailable(f"Redis at PHONEOPS_TEST_REDIS_URL is not reachable: {exc}")
    return REDIS_URL


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120.0) -> str:
    """Run `python -m phoneops ARGS` to its end; returns its output (fails the test on a non-zero exit)."""
    done = subprocess.run([sys.executable, "-m", "phoneops", *args], env=env, capture_output=True, timeout=timeout,
                          check=False)
    output = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 0, f"phoneops {' '.join(args)} exited {done.returncode}: {output[-3000:]}"
    return done.stdout.decode()


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


@dataclass
class Cluster:
    """API servers and workers as real processes on one database, one Redis and one storage root."""

    env: dict[str, str]
    procs: list[Proc] = field(default_factory=list)

    @classmethod
    def create(cls, db_url: str, redis_url: str, root: Path, **extra: str) -> Cluster:
        env = process_env(db_url, REDIS_URL=redis_url, DATA_DIR=str(root / "data"),
                          STORAGE_ROOT=str(root / "files"), **extra)
        return cls(env)

    def _start(self, name: str, args: list[str]) -> Proc:
        log = TMP / f"scale-{name}-{os.getpid()}-{uuid.uuid4().hex[:4]}.log"
        proc = Proc(name, start_process(args, self.env, log), log)
        self.procs.append(proc)
        return proc

    def start_api(self, name: str) -> Proc:
        port = free_port()
        proc = self._start(name, ["serve", "--port", str(port)])
        proc.url = f"http://127.0.0.1:{port}"
        return proc

    def start_worker(self, name: str) -> Proc:
        return self._start(name, ["worker"])

    def wait_api(self, proc: Proc, timeout: float = 60.0) -> None:
        assert proc.url is not None
        try:
            _wait_http(f"{proc.url}/health", timeout=timeout)
        except TimeoutError:
            raise AssertionError(f"{proc.name} did not answer: {proc.tail()}") from None

    def check_alive(self, *skip: Proc) -> None:
        for proc in self.procs:
            if proc not in skip:
                assert proc.alive(), f"{proc.name} died: {proc.tail()}"

    def sigkill(self, proc: Proc) -> None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.popen.wait(10)

    def stop(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(Exception):
                stop_process(proc.popen)


class Api:
    """An HTTP client for several API processes: each call goes to the next one in turn."""

    def __init__(self, urls: list[str], token: str) -> None:
        self._clients = [httpx.Client(base_url=u, headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
                         for u in urls]
        self._turn = 0
        self.calls_per_url: dict[str, int] = dict.fromkeys(urls, 0)

    def _next(self) -> httpx.Client:
        client = self._clients[self._turn % len(self._clients)]
        self._turn += 1
        self.calls_per_url[str(client.base_url).rstrip("/")] += 1
        return client

    def call(self, method: str, path: str, expect: int = 200, **kwargs: Any) -> Any:
        response = self._next().request(method, path, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response.json()

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, expect: int = 200, **kwargs: Any) -> Any:
        return self.call("POST", path, expect=expect, **kwargs)

    def close(self) -> None:
        for client in self._clients:
            client.close()


def wait_until(what: str, check: Callable[[], bool], timeout: float, poll: float = 0.2,
               alive: Callable[[], None] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if alive is not None:
            alive()
        assert time.monotonic() < deadline, f"timed out after {timeout:.0f} s waiting for {what}"
        time.sleep(poll)


def product_schedules() -> dict[str, tuple[str, str]]:
    """Every periodic task a worker process registers, name -> (minute, hour) crontab fields. Asked of a fresh
    process: this test process's registry may hold tasks that other tests registered for themselves."""
    import json

    code = ("import json; from phoneops.core import jobs; from phoneops.registry import load_domains; "
            "load_domains(); print(json.dumps({n: [s.minute, s.hour] for n, s in jobs.registered_periodic().items()}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120,
                         env=process_env("sqlite:///" + str(TMP / "schedules.db"))).stdout
    return {name: (minute, hour) for name, (minute, hour) in json.loads(out.strip().splitlines()[-1]).items()}
