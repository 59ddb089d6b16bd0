"""20,000 IMEIs through the real batch job against the GSM Fusion simulator, measured against the floor.

    python bench/imei.py [--imeis 20000] [--latency-ms 100] [--concurrency 30]

The simulator runs in its own process (`python -m phoneops.simulators gsm_fusion`) with 100 ms latency per
call and at most 30 calls in flight (it answers 503 beyond). Our side is the production path: the batch is
created by `phoneops.imei.submission.create_batch` (validation, duplicates, cost guard, one intent row per
IMEI) and placed by the `imei.batch` job handler run through `phoneops.core.jobs.run_job`, on a SQLite
database in a temporary directory.

Floor: IMEIs * latency / concurrency — the time the provider alone needs (20,000 * 0.1 s / 30 = 67 s).
Ratio: the job's wall time / floor (target ≤ 1.15). Max orders per IMEI comes from the simulator's own
count (target 1).

`--client-baseline` also times the bare AsyncGsmFusionClient placing the same number of (other) IMEIs at
the same concurrency, without any database work: on a busy machine it shows how much of the ratio is
the machine rather than the batch job.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from stdnum import luhn


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _imeis(count: int) -> list[str]:
    out = []
    for i in range(count):
        body = f"35{i:012d}"
        out.append(body + luhn.calc_check_digit(body))
    return out


def _client_baseline(url: str, count: int, concurrency: int) -> float:
    """Wall time of the bare async client placing `count` fresh IMEIs, `concurrency` in flight."""
    import asyncio

    from phoneops.imei.provider import async_client

    values = [body + luhn.calc_check_digit(body) for body in (f"36{i:012d}" for i in range(count))]

    async def run() -> float:
        client = async_client()
        pending = iter(values)

        async def worker() -> None:
            for value in pending:
                await client.place_order(value, "1739")

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
        await client.aclose()
        return elapsed

    return asyncio.run(run())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--imeis", type=int, default=20_000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--concurrency", type=int, default=30)
    parser.add_argument("--client-baseline", action="store_true", help="also time the bare client")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="phoneops-bench-imei-"))
    port = _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "phoneops.simulators", "gsm_fusion", "--port", str(port),
         "--latency-ms", str(args.latency_ms), "--max-concurrency", str(args.concurrency),
         "--initial-balance", "1000000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from phoneops.simulators._server import SimAdmin, wait_until_up
        from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

        url = f"http://127.0.0.1:{port}"
        wait_until_up(url, timeout=20)
        os.environ.update({
            "DATABASE_URL": f"sqlite:///{workdir / 'bench.db'}", "DATA_DIR": str(workdir),
            "STORAGE_ROOT": str(workdir / "files"), "SESSION_SECRET": "bench-" + "s" * 40,
            "AES_KEYS": "k1:" + base64.urlsafe_b64encode(b"\x01" * 32).decode(),
            "BLIND_INDEX_KEY": base64.urlsafe_b64encode(b"\x03" * 32).decode(),
            "GSM_FUSION_BASE_URL": url, "GSM_FUSION_USERNAME": DEFAULT_USER, "GSM_FUSION_API_KEY": DEFAULT_API_KEY,
            "IMEI_CONCURRENCY": str(args.concurrency), "IMEI_DAILY_BUDGET": "1000000",
            "LOG_LEVEL": "WARNING", "LOG_JSON": "true",
        })
        from phoneops.core import db, jobs
        from phoneops.core.logging import configure_logging
        from phoneops.core.migrate import upgrade
        from phoneops.core.security import SYSTEM
        from phoneops.registry import load_domains

        configure_logging(True, "WARNING")
        upgrade(os.environ["DATABASE_URL"])
        db.configure(os.environ["DATABASE_URL"])
        load_domains()
        jobs.set_enqueue_hook(lambda job_id, delay: None)  # the bench runs the job itself, in this process
        from phoneops.imei import inputs, submission

        imeis = _imeis(args.imeis)
        started = time.perf_counter()
        with db.session_scope() as session:
            rows = [inputs.InputRow(value) for value in imeis]
            batch, _plan = submission.create_batch(session, SYSTEM, rows, "1739", source="bench")
            job_id, batch_id = batch.job_id, batch.id
        prepare_s = time.perf_counter() - started
        assert job_id is not None
        started = time.perf_counter()
        status = jobs.run_job(job_id)
        wall_s = time.perf_counter() - started
        with db.session_scope() as session:
            summary = submission.batch_summary(session, submission.get_batch(session, batch_id))
        with SimAdmin(url) as admin:
            stats = admin.stats()
        baseline_s = _client_baseline(url, args.imeis, args.concurrency) if args.client_baseline else None
    finally:
        sim.terminate()
        sim.wait(10)

    floor_s = args.imeis * (args.latency_ms / 1000) / args.concurrency
    ratio = wall_s / floor_s
    print(f"job status           {status}")
    print(f"IMEIs                {args.imeis:,} (placed {summary['placed']:,}, review {summary['needs_review']})")
    print(f"prepare (validate, dedupe, intents) {prepare_s:.1f} s")
    print(f"wall time (job)      {wall_s:.1f} s")
    print(f"floor                {floor_s:.1f} s  ({args.imeis:,} x {args.latency_ms:g} ms / {args.concurrency})")
    print(f"ratio                {ratio:.3f}  (target <= 1.15)")
    print(f"orders at simulator  {stats['total_orders']:,}, max per IMEI {stats['max_orders_per_imei']}")
    if baseline_s is not None:
        print(f"bare client          {baseline_s:.1f} s  (ratio {baseline_s / floor_s:.3f}; the job adds "
              f"{(wall_s / baseline_s - 1) * 100:+.1f}%)")
    print(json.dumps({
        "bench": "imei", "imeis": args.imeis, "latency_ms": args.latency_ms, "concurrency": args.concurrency,
        "wall_s": round(wall_s, 2), "prepare_s": round(prepare_s, 2), "floor_s": round(floor_s, 2),
        "ratio": round(ratio, 3), "placed": summary["placed"], "orders_at_provider": stats["total_orders"],
        "max_orders_per_imei": stats["max_orders_per_imei"], "status": status,
        "client_baseline_ratio": None if baseline_s is None else round(baseline_s / floor_s, 3),
    }))
    ok = status == "succeeded" and stats["max_orders_per_imei"] == 1 and summary["placed"] == args.imeis
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
