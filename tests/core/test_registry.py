"""A worker process knows every job kind the app can create (handlers register through tasks.py)."""

from __future__ import annotations

import json
import subprocess
import sys

from support import TEST_ENV


def test_worker_side_registry_has_every_job_kind() -> None:
    code = ("import json; from phoneops.registry import load_domains; load_domains(); "
            "from phoneops.core.jobs import registered_jobs; print(json.dumps(sorted(registered_jobs())))")
    worker_kinds = set(json.loads(subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env={**TEST_ENV, "PATH": ""},
    ).stdout))
    from phoneops.app import create_app
    from phoneops.core.jobs import registered_jobs

    create_app()  # imports every router, view and CLI-facing module
    assert set(registered_jobs()) <= worker_kinds
    assert {"sample.count", "numbers.export"} <= worker_kinds
