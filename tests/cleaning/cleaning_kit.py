"""Cleaning test helpers (imported by the tests; tests/cleaning/conftest.py puts this folder on the path): valid real-format numbers, list seeding, uploads and runs through the services."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

# Numbers phonenumbers accepts as valid (07700 900xxx is a fiction range it refuses).
GB_1 = "+447400123456"
GB_2 = "+447825123456"
GB_3 = "+447956123456"
US_1 = "+14155552671"
DE_1 = "+4915123456789"
FR_1 = "+33612345678"
IN_1 = "+919812345678"


def csv_bytes(rows: list[list[str]], delimiter: str = ",", encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buffer.getvalue().encode(encoding)


def read_csv(data: bytes | str, delimiter: str = ",") -> list[list[str]]:
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    return list(csv.reader(io.StringIO(text), delimiter=delimiter))


SAMPLE = [
    ["name", "phone", "city"],
    ["ann", "07400 123456", "London"],  # GB_1 national
    ["bob", US_1, "San Francisco"],
    ["cat", "not a number", "Paris"],  # invalid
    ["dan", "+44 7400 123456", "=HYPERLINK(\"x\")"],  # duplicate of ann, formula cell
    ["eve", "0049 151 23456789", "Berlin"],  # DE_1: blacklisted
    ["fay", "07825-123-456", "Leeds"],  # GB_2: monitored
    ["gus", "447956123456", "York"],  # GB_3: already used
    ["hal", FR_1, "Lyon"],
]


def seed_lists(blacklist: tuple[str, ...] = (DE_1,), monitor: tuple[str, ...] = (GB_2,),
               used: tuple[str, ...] = ()) -> None:
    import polars as pl

    from phoneops.cleaning.used import add_used
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM
    from phoneops.numbers.lists import bulk_set_status
    from phoneops.numbers.vault import get_vault

    with session_scope() as session:
        if blacklist:
            bulk_set_status(session, SYSTEM, list(blacklist), "blacklist", "test", region="GB")
        if monitor:
            bulk_set_status(session, SYSTEM, list(monitor), "monitor", "test", region="GB")
        if used:
            digests = get_vault().index_many(list(used))
            add_used(session, pl.DataFrame({"bi": digests, "country": ["GB"] * len(digests)},
                                           schema={"bi": pl.Binary, "country": pl.String}), None)


def upload(data: bytes, name: str = "list.csv", **kwargs: Any) -> int:
    """Upload through the service (as the CLI does) and return the cleaning file id."""
    from phoneops.cleaning.upload import upload_path
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM
    from support import TMP

    path = Path(TMP) / f"upload-{name}"
    path.write_bytes(data)
    with session_scope() as session:
        return upload_path(session, SYSTEM, path, name=name, **kwargs).id


def run_clean(file_id: int, **kwargs: Any) -> Any:
    """Start a cleaning run and run its job here; returns the finished run (detached)."""
    from phoneops.cleaning import service
    from phoneops.core import jobs
    from phoneops.core.db import session_scope
    from phoneops.core.security import SYSTEM

    with session_scope() as session:
        run = service.start_clean(session, SYSTEM, file_id, **kwargs)
        run_id, job_id = run.id, run.job_id
    jobs.run_job(job_id)
    with session_scope() as session:
        found = service.get_run(session, run_id)
        session.expunge(found)
        return found


def stored_text(stored_id: str | None) -> str:
    from phoneops.core.storage import get_storage

    assert stored_id is not None
    return get_storage().path_for(stored_id).read_text(encoding="utf-8")


