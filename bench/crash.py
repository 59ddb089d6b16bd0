"""The crash-schedule proof with many seeds: every paid-work scenario (IMEI batch on GSM Fusion and on DHRU,
HLR batch, HLR real-time) run once per seed with real `phoneops worker` processes SIGKILLed at seeded random points.

    python bench/crash.py [--seeds 20] [--kills 3] [--size 200] [--scenarios imei,dhru,hlr_batch,hlr_realtime]
                          [--database-url postgresql://...] [--redis-url redis://.../12]

Default database: a fresh SQLite file in a temporary directory (SqliteHuey queue). With `--database-url`
the database must be empty or phoneops's own (it is migrated to heads). The harness is
tests/crash/harness.py (CI runs a few cases of it: tests/crash/test_crash.py). Prints one line per case on
stderr and, last, the totals as one JSON line on stdout:

    {"seeds": 20, "kills": 180, "double_paid": 0, "stuck": 0, "lost": 0, "ledger_delta": 0}

Exit status 1 when any total but seeds and kills is not zero.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import tempfile
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--kills", type=int, default=3, help="SIGKILLs per case")
    parser.add_argument("--size", type=int, default=200, help="IMEIs or numbers per case")
    parser.add_argument("--scenarios", default="imei,dhru,hlr_batch,hlr_realtime")
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--redis-url", default=None, help="RedisHuey queue (a Redis database of its own)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="phoneops-crash-"))
    url = args.database_url or f"sqlite:///{workdir / 'crash.db'}"
    os.environ.update({
        "DATABASE_URL": url, "DATA_DIR": str(workdir / "data"), "STORAGE_ROOT": str(workdir / "files"),
        "SESSION_SECRET": "bench-" + "s" * 40, "AES_KEYS": "k1:" + base64.urlsafe_b64encode(b"\x01" * 32).decode(),
        "BLIND_INDEX_KEY": base64.urlsafe_b64encode(b"\x03" * 32).decode(), "IMEI_DAILY_BUDGET": "1000000",
        "HLR_CONFIRM_ABOVE_CREDITS": "1000000", "LOG_LEVEL": "WARNING", "LOG_JSON": "true",
    })
    sys.path.insert(0, str(ROOT / "tests" / "crash"))
    from harness import SCENARIOS, run_case

    from phoneops.core import db
    from phoneops.core.logging import configure_logging
    from phoneops.core.migrate import upgrade
    from phoneops.registry import load_domains

    configure_logging(True, "WARNING")
    upgrade(url)
    db.configure(url)
    load_domains()
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}; known: {', '.join(SCENARIOS)}")
    totals = {"seeds": args.seeds, "kills": 0, "double_paid": 0, "stuck": 0, "lost": 0, "ledger_delta": Decimal(0)}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name in names:
            try:
                result = run_case(name, seed, db_url=url, data_dir=workdir, redis_url=args.redis_url,
                                  kills=args.kills, size=args.size, log_dir=workdir)
            except RuntimeError as exc:  # a worker never took the job: counted as stuck
                result = {"scenario": name, "seed": seed, "kills": 0, "stuck": 1, "double_paid": 0, "lost": 0,
                          "ledger_delta": "0", "error": str(exc)}
            print(json.dumps(result), file=sys.stderr, flush=True)
            for key in ("kills", "double_paid", "stuck", "lost"):
                totals[key] += int(result[key])
            totals["ledger_delta"] += abs(Decimal(str(result["ledger_delta"])))
    delta = totals["ledger_delta"]
    totals["ledger_delta"] = int(delta) if delta == delta.to_integral_value() else float(delta)
    print(json.dumps(totals))
    bad = totals["double_paid"] or totals["stuck"] or totals["lost"] or totals["ledger_delta"]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
