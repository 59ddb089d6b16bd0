"""HTTP load on the API: one against two API processes, on SQLite and on PostgreSQL, in one run.

    python bench/load.py [--duration 15] [--users 20] [--backends sqlite,postgres] [--processes 1,2]
                         [--numbers 2000] [--orders 2000] [--jobs 200] [--burst 50,100,200,400]

Burst scenario (--burst; --duration 0 for bursts only): per size, that many number lookups sent at the same
moment on their own connections while /health is asked every 50 ms; printed: the answers by status, the
5xx count (503s carry Retry-After: the API refusing for load, never a 500), p99 latency and /health's
slowest answer.

Scenario (locust, bench/scenarios/api_load.py, run headless as its own process): users without think time
ask for number lookups (3 parts: GET /api/numbers/lookup), job status (2: GET /api/jobs/{id}) and IMEI
order history (2: GET /api/imei/orders, one IMEI or a page of 50), with a viewer's API token.

Data: per backend a fresh database, migrated and seeded through the service functions: `--numbers`
blacklisted numbers (blind index + sealed number, one history event each), `--orders` IMEI orders imported
from a GSM Fusion export, `--jobs` sample jobs (queued). PostgreSQL is a scratch database created on the
server of PHONEOPS_BENCH_POSTGRES_URL (default postgresql://postgres@127.0.0.1:5432/test) and dropped after.

For each backend and process count, a real `phoneops serve --workers N` is started, warmed up, and loaded
for `--duration` seconds (statistics reset once every user is running). Printed: requests/s, p50 and p99
latency (all requests, and per route), failures, and the API processes' CPU time per request (read from
/proc: unlike requests/s it does not depend on what else the machine runs). Baseline: the one-process run
of the same backend in the same run; the figure is the ratio of requests/s, two processes vs one. The load
generator shares the machine with the API processes, so on a machine with few cores the ratio measures
the cores left to the API as much as the API.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from stdnum import luhn

HERE = Path(__file__).resolve().parent
LOCUSTFILE = HERE / "scenarios" / "api_load.py"
DEFAULT_POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SECRETS = {
    "SESSION_SECRET": "bench-" + "s" * 40,
    "AES_KEYS": "k1:" + base64.urlsafe_b64encode(b"\x01" * 32).decode(),
    "BLIND_INDEX_KEY": base64.urlsafe_b64encode(b"\x03" * 32).decode(),
}


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- databases ---------------------------------------------------------------------------------


def _create_postgres(admin_url: str) -> tuple[str, str]:
    """A scratch database on the server of admin_url: (SQLAlchemy URL, name)."""
    import psycopg
    from psycopg import sql

    name = f"phoneops_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(admin_url, connect_timeout=5, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base = admin_url.rpartition("/")[0]
    return "postgresql+psycopg://" + base.split("://", 1)[1] + "/" + name, name


def _drop_postgres(admin_url: str, name: str) -> None:
    import psycopg
    from psycopg import sql

    from phoneops.core import db

    db.dispose_all()
    with psycopg.connect(admin_url, connect_timeout=5, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def _seed(url: str, workdir: Path, numbers: int, orders: int, jobs: int) -> dict[str, Any]:
    """Migrate and fill the database through the service functions; returns what the scenario asks for."""
    from phoneops.core import db
    from phoneops.core import jobs as jobs_module
    from phoneops.core.migrate import upgrade
    from phoneops.core.sample import start_sample
    from phoneops.core.security import SYSTEM, create_token, create_user
    from phoneops.imei.imports import import_provider_export
    from phoneops.numbers.lists import bulk_set_status
    from phoneops.registry import load_domains

    upgrade(url)
    db.configure(url)
    load_domains()
    jobs_module.set_enqueue_hook(lambda job_id, delay: None)  # the jobs stay queued: only their status is read
    values = [f"+4474{i * 397:08d}" for i in range(numbers)]
    imeis = [body + luhn.calc_check_digit(body) for body in (f"35{i:012d}" for i in range(orders))]
    export = workdir / "orders.csv"
    with export.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["SERVICE", "IMEI NO.", "CREDITS", "STATUS", "CODE", "MODEL", "ORDER DATE"])
        for i, imei in enumerate(imeis):
            writer.writerow(["iPhone carrier check", imei, "0.50", "Completed", f"Carrier: Bench {i % 7}",
                             "iPhone 13", f"2026-10-{1 + i % 28:02d} 12:{i % 60:02d}:00"])
    with db.session_scope() as session:
        create_user(session, SYSTEM, "bench", "bench-password-" + uuid.uuid4().hex, "viewer")
        _, token = create_token(session, SYSTEM, "bench", "load")
    for start in range(0, numbers, 5000):
        with db.session_scope() as session:
            _, rejected = bulk_set_status(session, SYSTEM, values[start:start + 5000], "blacklist", "BENCH",
                                          region="GB")
            assert not rejected, rejected[:3]
    with db.session_scope() as session:
        record = import_provider_export(session, SYSTEM, export, export.name)
        assert record.rows_inserted == orders, (record.rows_inserted, orders)
    with db.session_scope() as session:
        job_ids = [start_sample(session, SYSTEM, 10, 0).id for _ in range(jobs)]
    return {"token": token, "numbers": values, "imeis": imeis, "job_ids": job_ids}


# --- processes ---------------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and every live descendant."""
    ticks = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / ticks)
    tree, total, grown = {pid}, 0.0, True
    while grown:
        grown = False
        for child, (parent, _) in stats.items():
            if parent in tree and child not in tree:
                tree.add(child)
                grown = True
    for member in tree:
        total += stats.get(member, (0, 0.0))[1]
    return total


def _serve(env: dict[str, str], processes: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = _free_port()
    handle = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "phoneops", "serve", "--port", str(port), "--workers", str(processes)],
        env=env, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"phoneops serve stopped: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return proc, base
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"phoneops serve did not answer within 180 s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    import signal

    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _warm_up(base: str, data: dict[str, Any], processes: int, rounds: int = 10) -> None:
    """Every route, from several threads on fresh connections, so that every API process is warm."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    headers = {"Authorization": f"Bearer {data['token']}"}

    def one_client(offset: int) -> None:
        for i in range(offset, offset + rounds):
            for path, params in (("/api/numbers/lookup", {"number": data["numbers"][i % len(data["numbers"])]}),
                                 (f"/api/jobs/{data['job_ids'][i % len(data['job_ids'])]}", {}),
                                 ("/api/imei/orders", {"imei": data["imeis"][i % len(data["imeis"])]}),
                                 ("/api/imei/orders", {"page": 1 + i % 10, "per_page": 50})):
                response = httpx.get(base + path, params=params, headers=headers, timeout=60)
                assert response.status_code == 200, (path, response.status_code, response.text[:300])

    with ThreadPoolExecutor(4 * processes) as pool:
        list(pool.map(one_client, range(0, 4 * processes * rounds, rounds)))


def _locust(base: str, data_file: Path, token: str, users: int, duration: int, prefix: Path) -> dict[str, Any]:
    env = {**os.environ, "LOAD_TOKEN": token, "LOAD_DATA": str(data_file)}
    log = prefix.with_suffix(".log")
    with log.open("wb") as handle:
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", base,
             "-u", str(users), "-r", str(users), "-t", f"{duration}s", "--reset-stats", "--only-summary",
             "--csv", str(prefix), "--loglevel", "WARNING"],
            env=env, stdout=handle, stderr=subprocess.STDOUT, timeout=duration + 120, check=False,
        )
    stats_file = Path(f"{prefix}_stats.csv")
    if not stats_file.exists():
        raise RuntimeError(f"locust wrote no statistics: {log.read_text()[-2000:]}")
    def ms(text: str) -> float | None:  # "N/A" when no request completed
        return None if text == "N/A" else float(text)

    routes: dict[str, dict[str, Any]] = {}
    with stats_file.open() as handle:
        for row in csv.DictReader(handle):
            routes[row["Name"]] = {
                "requests": int(row["Request Count"]), "failures": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]), "p50_ms": ms(row["50%"]), "p99_ms": ms(row["99%"]),
            }
    return routes


def _burst(base: str, data: dict[str, Any], size: int) -> dict[str, Any]:
    """`size` number lookups sent at once (one connection each) while /health is asked every 50 ms."""
    import asyncio

    import httpx

    headers = {"Authorization": f"Bearer {data['token']}"}

    async def run() -> dict[str, Any]:
        limits = httpx.Limits(max_connections=size + 4, max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            done = asyncio.Event()
            health_ms: list[float] = []
            health_bad = 0

            async def probe() -> None:
                nonlocal health_bad
                while not done.is_set():
                    started = time.perf_counter()
                    try:
                        answer = await client.get("/health", timeout=30)
                        health_bad += answer.status_code != 200
                    except httpx.HTTPError:
                        health_bad += 1
                    health_ms.append((time.perf_counter() - started) * 1000)
                    await asyncio.sleep(0.05)

            async def one(i: int) -> tuple[int, float, str]:
                started = time.perf_counter()
                try:
                    answer = await client.get("/api/numbers/lookup", headers=headers,
                                              params={"number": data["numbers"][i % len(data["numbers"])]})
                    status, retry = answer.status_code, answer.headers.get("retry-after", "")
                except httpx.HTTPError as exc:
                    status, retry = 0, type(exc).__name__
                return status, (time.perf_counter() - started) * 1000, retry

            prober = asyncio.create_task(probe())
            started = time.perf_counter()
            answers = await asyncio.gather(*(one(i) for i in range(size)))
            wall = time.perf_counter() - started
            done.set()
            await prober
        latencies = sorted(ms for _, ms, _ in answers)
        statuses: dict[str, int] = {}
        for status, _, _ in answers:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        busy = [r for st, _, r in answers if st == 503]
        return {"size": size, "wall_s": round(wall, 2), "statuses": statuses,
                "5xx": sum(n for st, n in statuses.items() if st.startswith("5")),
                "busy_with_retry_after": sum(1 for r in busy if r),
                "client_errors": statuses.get("0", 0),
                "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 1),
                "health_max_ms": round(max(health_ms), 1) if health_ms else None, "health_not_200": health_bad}

    return asyncio.run(run())


def _ms(value: float | None, decimals: int = 0) -> str:
    return "     -" if value is None else f"{value:6.{decimals}f}"


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=int, default=15, help="seconds of load per run")
    parser.add_argument("--users", type=int, default=20, help="concurrent locust users")
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--processes", default="1,2", help="API process counts to compare")
    parser.add_argument("--numbers", type=int, default=2000)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--burst", default="", help="burst sizes, e.g. 50,100,200,400: that many lookups at once "
                        "(5xx count, p99 and /health's slowest answer are printed); with --duration 0 only bursts")
    args = parser.parse_args()
    bursts = [int(n) for n in args.burst.split(",") if n.strip()]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    counts = [int(n) for n in args.processes.split(",")]
    if not set(backends) <= {"sqlite", "postgres"} or min(counts) < 1:
        parser.error("--backends takes sqlite and/or postgres; --processes positive counts")

    os.environ.update({**SECRETS, "LOG_LEVEL": "WARNING", "LOG_JSON": "true"})
    os.environ.pop("REDIS_URL", None)
    root = Path(tempfile.mkdtemp(prefix="phoneops-bench-load-"))
    load_before = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} cores, load average {load_before:.2f}; {args.users} users, "
          f"{args.duration} s per run")
    results: list[dict[str, Any]] = []
    burst_results: list[dict[str, Any]] = []
    skipped: dict[str, str] = {}
    for backend in backends:
        workdir = root / backend
        workdir.mkdir()
        admin_url = (os.environ.get("PHONEOPS_BENCH_POSTGRES_URL") or DEFAULT_POSTGRES).replace(
            "postgresql+psycopg://", "postgresql://")
        pg_name = None
        if backend == "sqlite":
            url = f"sqlite:///{workdir / 'bench.db'}"
        else:
            try:
                url, pg_name = _create_postgres(admin_url)
            except Exception as exc:
                skipped[backend] = f"PostgreSQL not usable at {admin_url}: {exc}"
                print(f"{backend}: skipped ({skipped[backend]})")
                continue
        try:
            started = time.perf_counter()
            data = _seed(url, workdir, args.numbers, args.orders, args.jobs)
            print(f"{backend}: seeded {args.numbers:,} numbers, {args.orders:,} orders, {args.jobs} jobs "
                  f"in {time.perf_counter() - started:.1f} s")
            data_file = workdir / "load-data.json"
            data_file.write_text(json.dumps({k: data[k] for k in ("numbers", "imeis", "job_ids")}))
            env = {**os.environ, "DATABASE_URL": url, "DATA_DIR": str(workdir / "data"),
                   "STORAGE_ROOT": str(workdir / "files")}
            for processes in counts:
                started = time.perf_counter()
                proc, base = _serve(env, processes, workdir / f"serve-{processes}.log")
                print(f"{backend}: {processes} API process{'es' if processes > 1 else ''} answering after "
                      f"{time.perf_counter() - started:.1f} s")
                try:
                    _warm_up(base, data, processes)
                    for size in bursts:
                        burst = {"backend": backend, "processes": processes, **_burst(base, data, size)}
                        burst_results.append(burst)
                        print(f"burst {backend:8} {processes} proc  {size:4} at once: 5xx {burst['5xx']:4} "
                              f"(503 with Retry-After {burst['busy_with_retry_after']}), client errors "
                              f"{burst['client_errors']}, p99 {burst['p99_ms']:8.1f} ms, /health max "
                              f"{burst['health_max_ms']} ms ({burst['health_not_200']} not 200), "
                              f"{burst['wall_s']} s  {burst['statuses']}")
                    if args.duration <= 0:
                        continue
                    cpu_before = _cpu_seconds(proc.pid)
                    routes = _locust(base, data_file, data["token"], args.users, args.duration,
                                     workdir / f"locust-{processes}")
                    cpu = _cpu_seconds(proc.pid) - cpu_before
                finally:
                    _stop(proc)
                total = routes.pop("Aggregated")
                result = {"backend": backend, "processes": processes, **total,
                          "server_cpu_ms_per_request": (round(cpu * 1000 / total["requests"], 2)
                                                        if total["requests"] else None),
                          "routes": routes}
                results.append(result)
                print(f"{backend:8} {processes} process{'es' if processes > 1 else '  '}  "
                      f"{total['rps']:8.1f} req/s  p50 {_ms(total['p50_ms'])} ms  p99 {_ms(total['p99_ms'])} ms  "
                      f"failures {total['failures']}/{total['requests']}  "
                      f"server CPU {_ms(result['server_cpu_ms_per_request'], 2)} ms/request")
                if total["requests"] == 0:
                    print(f"    no request completed in {args.duration} s: the API stalled at {args.users} "
                          "concurrent users")
                for name, route in sorted(routes.items()):
                    print(f"    {name:28} {route['rps']:8.1f} req/s  p50 {_ms(route['p50_ms'])} ms  "
                          f"p99 {_ms(route['p99_ms'])} ms")
        finally:
            if pg_name is not None:
                _drop_postgres(admin_url, pg_name)
    ratios: dict[str, float] = {}
    for backend in backends:
        by_count = {r["processes"]: r["rps"] for r in results if r["backend"] == backend}
        if 1 in by_count and 2 in by_count and by_count[1] > 0:
            ratios[backend] = round(by_count[2] / by_count[1], 3)
            print(f"ratio {backend}: two processes / one = {ratios[backend]:.3f} requests/s")
    failures = sum(r["failures"] for r in results)
    print(json.dumps({
        "bench": "load", "users": args.users, "duration_s": args.duration, "cores": os.cpu_count(),
        "load_average_before": round(load_before, 2),
        "runs": [{k: v for k, v in r.items() if k != "routes"} for r in results],
        "ratio_2_vs_1": ratios, "failures": failures, "skipped": skipped, "bursts": burst_results,
    }))
    stalled = any(r["requests"] == 0 for r in results)
    burst_500 = sum(b["statuses"].get("500", 0) for b in burst_results)
    return 0 if (results or burst_results) and failures == 0 and not stalled and burst_500 == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
