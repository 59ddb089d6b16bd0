"""The HLR estimate of a large file as a background job (`hlr.estimate`), against a naive per-row estimate.

    python bench/hlr_estimate.py [--rows 1000000] [--naive-sample 50000] [--repeat 2] [--seed 7] [--workdir DIR]

Data: a CSV of `--rows` rows (phone, name): every row a different number in the writings real lists carry
(bench/normalize.py's `build`, distinct: the hardest case for hashing), 2% junk, 3% random digits. A fresh
migrated SQLite database (no stored results or opt-outs: their set-based queries still run for every number).

Measured (the same process):
- ours: `hlr.estimates.start_estimate` and the job run by `core.jobs.run_job`, from the stored file to the
  job's result (reading, normalisation, line types, blind indexes, stored facts, counts), `--repeat` times,
  the better reported with every run's time and the load average before and after each;
- naive: the same estimate per row on the first `--naive-sample` rows: phonenumbers parse + is_valid +
  format + number_type, a Python set for duplicates, the blind index per row, Python set look-ups for
  opt-outs and fresh results (empty sets, their loading not timed); its rate is extrapolated.
The machine's load is printed: on a shared machine the wall clock is noisy; CPU seconds are less so.
The last line is one JSON object.

Measured 2026-12-06 21:17 UTC on this machine at a load average of 4.8 -> 4.0 (work that had just ended),
`python bench/hlr_estimate.py --rows 1000000`: ours 5.69 s and 4.95 s wall (6.76 and 5.90 CPU s), best
202,020 rows/s, within the issue's 10 s; naive 28,558 rows/s; ratio 7.1.
Earlier the same day (2 cores shared by 8 engineers, load average 10.2-10.5 during the run, so
the wall clock is the process's share of a busy machine; CPU seconds are the steadier figure), 1M rows:
ours 28.87 s and 23.68 s wall (6.93 and 6.59 CPU s), best 42,230 rows/s; naive 4,345 rows/s; ratio 9.7.
Before the stored facts were read in one scan each (one IN query per 5,000 numbers), 1M rows took 114.8 s
wall / 30.6 CPU s at a load of 8.5. Stages (200k rows, CPU s): reading 0.2, normalising + line types + blind
indexes 1.25, stored facts 0.01, counting 0.03: normalisation (numbers.normalize) is what is left.
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_ENV = {
    "SESSION_SECRET": "bench-session-secret-" + "b" * 32,
    "AES_KEYS": "b1:" + base64.urlsafe_b64encode(b"\x11" * 32).decode(),
    "BLIND_INDEX_KEY": base64.urlsafe_b64encode(b"\x12" * 32).decode(),
    "LOG_LEVEL": "WARNING",
    "LOG_JSON": "true",
}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def write_file(path: Path, rows: int, seed: int) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from normalize import build  # bench/normalize.py

    values = build(rows, True, seed)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["phone", "name"])
        out.writerows([v if v is not None else "", f"n{i}"] for i, v in enumerate(values))


def ours(path: Path) -> tuple[float, float, dict[str, Any]]:
    from phoneops.core import jobs
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM
    from phoneops.core.storage import get_storage
    from phoneops.hlr.estimates import start_estimate
    from phoneops.hlr.lookups import FileSource

    with session_scope() as session:
        file_id = get_storage().save_bytes(session, SYSTEM, path.read_bytes(), kind="upload",
                                           original_name=path.name).id
    started, cpu = time.perf_counter(), _cpu()
    with session_scope() as session:
        job_id = start_estimate(session, SYSTEM, FileSource(file_id, "phone", "GB")).id
    status = jobs.run_job(job_id)
    seconds, cpu = time.perf_counter() - started, _cpu() - cpu
    with session_scope() as session:
        job = jobs.get_job(session, job_id)
        if status != "succeeded":
            raise SystemExit(f"the estimate job ended {status}: {job.error}")
        return seconds, cpu, dict(job.result)


def naive(path: Path, sample: int) -> tuple[float, int]:
    """Rows per second of a per-row estimate on the first `sample` rows."""
    import phonenumbers
    from phonenumbers import PhoneNumberFormat, PhoneNumberType

    from phoneops.numbers.crypto import blind_index
    from phoneops.settings import get_settings

    key = get_settings().blind_key()
    with path.open(newline="") as handle:
        reader = csv.reader(handle)
        next(reader)
        values = [row[0] for _, row in zip(range(sample), reader, strict=False)]
    opted: set[bytes] = set()
    fresh: set[bytes] = set()
    mobile = {PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE, PhoneNumberType.UNKNOWN}
    started = time.perf_counter()
    seen: set[str] = set()
    to_lookup = 0
    for value in values:
        try:
            parsed = phonenumbers.parse(value.strip(), "GB")
        except phonenumbers.NumberParseException:
            continue
        if not phonenumbers.is_valid_number(parsed):
            continue
        e164 = phonenumbers.format_number(parsed, PhoneNumberFormat.E164)
        if e164 in seen:
            continue
        seen.add(e164)
        index = blind_index(e164, key)
        if index in opted or phonenumbers.number_type(parsed) not in mobile:
            continue
        to_lookup += index not in fresh
    return len(values) / (time.perf_counter() - started), to_lookup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--naive-sample", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hlr-estimate-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update(BENCH_ENV)
    os.environ.update({"DATA_DIR": str(work / "data"), "STORAGE_ROOT": str(work / "files"),
                       "DATABASE_URL": f"sqlite:///{work / 'bench.db'}", "MAX_UPLOAD_MB": "4096"})
    (work / "bench.db").unlink(missing_ok=True)
    from phoneops.core import db, jobs
    from phoneops.core.migrate import upgrade
    from phoneops.registry import load_domains

    csv_path = work / f"numbers-{args.rows}-{args.seed}.csv"
    if not csv_path.exists():
        write_file(csv_path, args.rows, args.seed)
    upgrade(os.environ["DATABASE_URL"])
    db.configure(os.environ["DATABASE_URL"])
    load_domains()
    jobs.set_enqueue_hook(lambda job_id, delay: None)
    print(f"HLR estimate of {args.rows:,} rows ({csv_path})", flush=True)
    runs = []
    result: dict[str, Any] = {}
    for attempt in range(args.repeat):
        load_before = os.getloadavg()[0]
        seconds, cpu, result = ours(csv_path)
        load_after = os.getloadavg()[0]
        runs.append({"seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "load_before": load_before,
                     "load_after": load_after})
        print(f"  ours run {attempt + 1}: {seconds:.2f}s wall, {cpu:.2f} CPU s, {args.rows / seconds:,.0f} rows/s "
              f"(load {load_before:.1f} -> {load_after:.1f})", flush=True)
    best = min(runs, key=lambda r: r["seconds"])
    load_before = os.getloadavg()[0]
    naive_rate, _ = naive(csv_path, args.naive_sample)
    print(f"  naive per-row: {naive_rate:,.0f} rows/s on {args.naive_sample:,} rows (load {load_before:.1f} -> "
          f"{os.getloadavg()[0]:.1f})", flush=True)
    rate = args.rows / best["seconds"]
    print(f"  estimate: {result['numbers']:,} numbers, {result['to_lookup']:,} to look up, "
          f"{result['not_mobile']:,} not mobile, {result['invalid']:,} invalid", flush=True)
    print(json.dumps({
        "bench": "hlr_estimate", "rows": args.rows, "seconds": best["seconds"], "rows_per_s": round(rate),
        "cpu_seconds": best["cpu_seconds"], "rows_per_cpu_s": round(args.rows / max(best["cpu_seconds"], 1e-9)),
        "naive_rows_per_s": round(naive_rate), "ratio_vs_naive": round(rate / naive_rate, 1),
        "target_seconds": 10, "runs": runs, "load_before": runs[0]["load_before"], "load_after": os.getloadavg()[0],
        "cores": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
