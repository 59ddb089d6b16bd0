#!/usr/bin/env python3
"""Container health checks for the phoneops image (Dockerfile HEALTHCHECK and docker-compose.yml).

    phoneops-healthcheck api [URL]   the API answers GET /health with 200 (default http://127.0.0.1:8800/health)
    phoneops-healthcheck worker      the database and the job queue (Redis) answer: a job worker can work
    phoneops-healthcheck database    the database answers (the SQS consumer writes every event there)

Exit status 0 when healthy, 1 otherwise, with the reason on stderr. Settings come from the environment,
as for the process being checked.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:8800/health"


def check_api(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=4) as response:  # noqa: S310 - a fixed local http URL
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer: {exc}"
    return None if status == 200 else f"{url} answered {status}"


def check_database() -> str | None:
    from sqlalchemy import text

    from phoneops.core import db
    from phoneops.settings import get_settings

    try:
        db.configure(get_settings().database_url)
        with db.get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return f"database: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def check_queue() -> str | None:
    from phoneops.core.queue import describe

    state = describe()
    return None if state.get("ok") else f"job queue ({state.get('engine')}): {state.get('error')}"


def main(argv: list[str]) -> int:
    role = argv[0] if argv else ""
    if role == "api":
        problems = [check_api(argv[1] if len(argv) > 1 else DEFAULT_URL)]
    elif role == "worker":
        problems = [check_database(), check_queue()]
    elif role == "database":
        problems = [check_database()]
    else:
        print("usage: phoneops-healthcheck api [URL] | worker | database", file=sys.stderr)
        return 2
    failed = [p for p in problems if p]
    for problem in failed:
        print(f"unhealthy: {problem}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
