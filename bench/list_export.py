"""A list export of millions of numbers (`numbers.export` job) against a naive per-row export.

    python bench/list_export.py [--rows 1000000] [--naive-sample 20000] [--repeat 2] [--workdir DIR]

Data: `--rows` numbers on the blacklist of a fresh migrated SQLite database, stored as the platform stores
them (blind index + sealed number), written once per work folder (cached).

Measured (the same process):
- ours: `numbers.exports.start_export` as an admin (plaintext) and the job run by `core.jobs.run_job`: pages
  of 5,000 rows, each number opened (AES-GCM) and written through `core.csvio.csv_lines` to a stored file;
- naive: per row, one SELECT by id, the number opened and the row written with csv.writer, on the first
  `--naive-sample` rows; its rate is extrapolated.
The machine's load is printed: on a shared machine the wall clock is noisy; CPU seconds are less so.
The last line is one JSON object.

Measured 2026-12-06 on this machine (2 cores shared by 8 engineers, load average 5.0-8.0: wall clocks are this
process's share of a busy machine), 1M numbers: 253.95 s and 109.87 s wall, 66.6 and 66.0 CPU s, best 9,102
rows/s (15,152 rows per CPU second); naive 2,566 rows/s; ratio 3.5. Not changed here: the export is a per-row
Python loop (an ORM object per row, `vault.open` — AES-GCM — per number, `csv_lines` neutralising each cell),
the next thing to make set-based (plain column reads, decryption in a process pool).

Now (`numbers.export_lines.render_page`): plain column reads, and from 50,000 rows each page opened, masked and
written as CSV in spawned worker processes (at most two pages per worker in flight), the bytes written in
order. The output's sha256 is kept per data set (output-<rows>.json in the work folder: run the previous
implementation first, PYTHONPATH=/path/to/old/src) and every later run prints "identical" or "DIFFERENT".
Measured 2026-12-06, 60,000 rows, load average 4.3-6.3 on 2 cores: before 5.16 s wall, 2.18 CPU s of the job's
process (11,636 rows/s, 27,523 rows per CPU s); after, better of 2, 5.77 s wall, 1.06 CPU s of the job's
process (10,399 rows/s, 56,604 rows per CPU s; the workers' CPU not counted), naive 1,017 rows/s, ratio 10.2;
output identical. At 60k rows the ~1 s spent starting the workers eats the gain on a loaded 2-core machine;
1M rows, load average 1.1-2.3: before (e8d07ce) 63.70 s wall, 63.58 CPU s, 15,699 rows/s; after, better of 2,
44.56 s wall (48.38 s the other), 44.01 CPU s of the job's process, 22,442 rows/s (1.43x), naive 4,576 rows/s,
ratio 4.9; output identical (sha256). The job's own process is now the limit (44 CPU s: reading the pages
through SQLAlchemy and sending them to the workers), the next thing to take on, not the AES-GCM.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import os
import resource
import sqlite3
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from hlr_estimate import BENCH_ENV


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def seed(db_path: Path, rows: int) -> None:
    from phoneops.core.migrate import upgrade
    from phoneops.numbers.vault import get_vault

    building = db_path.with_suffix(".building")
    building.unlink(missing_ok=True)
    upgrade(f"sqlite:///{building}")
    vault = get_vault()
    numbers = [f"+447{n:09d}" for n in range(100_000_000, 100_000_000 + rows * 7, 7)]
    indexes = vault.index_many(numbers)
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    con = sqlite3.connect(building)
    con.executemany(
        "INSERT INTO phone_numbers (blind_index, sealed, country, status, authority, reason, source, listed_at, "
        "first_seen_at, updated_at) VALUES (?, ?, 'GB', 'blacklist', 'manual', 'bench', 'BENCH', ?, ?, ?)",
        ((idx, vault.seal(e164, idx), now, now, now) for e164, idx in zip(numbers, indexes, strict=True)),
    )
    con.commit()
    con.close()
    building.replace(db_path)


def ours() -> tuple[float, float, int, str]:
    from phoneops.core import jobs
    from phoneops.core.db import session_scope
    from phoneops.core.security import Principal, Role
    from phoneops.core.storage import get_file, get_storage
    from phoneops.numbers.exports import start_export

    admin = Principal(None, "bench", Role.admin, via="cli")
    started, cpu = time.perf_counter(), _cpu()
    with session_scope() as session:
        job_id = start_export(session, admin, "blacklist").id
    status = jobs.run_job(job_id)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        if status != "succeeded":
            raise SystemExit(f"the export ended {status}: {job.error}")
        digest = hashlib.sha256()
        with get_storage().local_path(get_file(session, job.result["file_id"])) as path, \
                path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        return seconds, cpu, int(job.result["rows"]), digest.hexdigest()


def naive(sample: int) -> float:
    from sqlalchemy import select

    from phoneops.core.db import session_scope
    from phoneops.numbers.models import PhoneNumber
    from phoneops.numbers.vault import get_vault

    vault = get_vault()
    out = csv.writer(io.StringIO())
    started = time.perf_counter()
    with session_scope() as session:
        for number_id in range(1, sample + 1):
            row = session.scalars(select(PhoneNumber).where(PhoneNumber.id == number_id)).one()
            out.writerow([vault.open(row.sealed, row.blind_index), row.country, row.status, row.authority,
                          row.reason, row.source, row.listed_at.isoformat() if row.listed_at else ""])
    return sample / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="export-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    db_path = work / f"numbers-{args.rows}.db"
    os.environ.update(BENCH_ENV)
    os.environ.update({"DATA_DIR": str(work / "data"), "STORAGE_ROOT": str(work / "files"),
                       "DATABASE_URL": f"sqlite:///{db_path}"})
    if not db_path.exists():
        seed(db_path, args.rows)
    from phoneops.core import db, jobs
    from phoneops.registry import load_domains

    db.configure(os.environ["DATABASE_URL"])
    load_domains()
    jobs.set_enqueue_hook(lambda job_id, delay: None)
    print(f"export of {args.rows:,} blacklisted numbers ({db_path})", flush=True)
    runs: list[dict[str, float]] = []
    shas: set[str] = set()
    for attempt in range(args.repeat):
        load_before = os.getloadavg()[0]
        seconds, cpu, written, sha = ours()
        load_after = os.getloadavg()[0]
        if written != args.rows:
            raise SystemExit(f"the export wrote {written} rows, expected {args.rows}")
        shas.add(sha)
        runs.append({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "load_before": load_before,
                     "load_after": load_after})
        print(f"  ours run {attempt + 1}: {seconds:.2f}s wall, {cpu:.2f} CPU s, {args.rows / seconds:,.0f} rows/s "
              f"(load {load_before:.1f} -> {load_after:.1f})", flush=True)
    best = min(runs, key=lambda r: r["seconds"])
    record = work / f"output-{args.rows}.json"  # the first run's file hash; later runs (new code) compare
    if len(shas) != 1:
        raise SystemExit(f"two runs wrote different files: {sorted(shas)}")
    sha = shas.pop()
    if not record.exists():
        record.write_text(json.dumps({"sha256": sha}))
    recorded = json.loads(record.read_text())["sha256"]
    output = "identical" if sha == recorded else "DIFFERENT"
    print(f"  output sha256 {sha[:16]}: {output} to the first recorded run ({record})", flush=True)
    load_before = os.getloadavg()[0]
    naive_rate = naive(min(args.naive_sample, args.rows))
    print(f"  naive per-row: {naive_rate:,.0f} rows/s on {args.naive_sample:,} rows (load {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    rate = args.rows / best["seconds"]
    print(json.dumps({
        "bench": "list_export", "rows": args.rows, "seconds": best["seconds"], "rows_per_s": round(rate),
        "cpu_seconds": best["cpu_seconds"], "rows_per_cpu_s": round(args.rows / max(best["cpu_seconds"], 1e-9)),
        "naive_rows_per_s": round(naive_rate), "ratio_vs_naive": round(rate / naive_rate, 1), "runs": runs,
        "output": output, "load_before": runs[0]["load_before"], "load_after": os.getloadavg()[0],
        "cores": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
