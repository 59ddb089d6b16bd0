"""The demo's first syncs: on its first start `phoneops demo` fills every page from its simulators.

In order, each as the real job the UI and CLI start, run here to its end before the server starts: a week
of Voluum traffic and conversions, the MessageWhiz broadcasts of those days, the Ongage sync of the
converted numbers, three labelled lists (sources whose ROI differ), a cleaned sample list, a few IMEI
orders and an HLR lookup of the monitored numbers.
A step that fails is reported and the next one runs. It runs once: a database with jobs already is left as
it is.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

from rich.console import Console
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import AppError
from phoneops.core.jobs import run_job
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.simulators.voluum_data import DEMO_COUNTRIES

DEMO_DAYS = 7
# IMEIs with valid check digits (the GSM Fusion simulator answers for any).
DEMO_IMEIS = ("356938035643809", "352099001761481", "490154203237518", "353918050562325")
IMEI_SERVICE = "1739"


def needs_seeding() -> bool:
    with session_scope() as session:
        return not session.scalar(select(func.count(Job.id)))


def _run(console: Console, label: str, start: Callable[[], str | None]) -> None:
    """Create the step's job (in its own transaction), then run it here to its end."""
    try:
        job_id = start()
    except AppError as exc:
        console.print(f"  [yellow]{label}: skipped — {exc.message}[/yellow]")
        return
    if job_id is None:
        console.print(f"  {label}: done")
        return
    status = run_job(job_id)
    with session_scope() as session:
        job = session.get(Job, job_id)
        final, error = (job.status, job.error) if job is not None else (status, None)
    note = f" — {error}" if error else ""
    console.print(f"  {label}: {final}{note}")


def seed_demo(console: Console) -> None:
    """Run the first syncs (see the module docstring)."""
    from phoneops.broadcasts.days import start_import
    from phoneops.cleaning.service import start_clean
    from phoneops.cleaning.upload import upload_path
    from phoneops.hlr.lookups import ListSource, create_lookup
    from phoneops.imei.inputs import rows_from_text
    from phoneops.imei.submission import create_batch
    from phoneops.ongage.service_sync import start_sync as ongage_sync
    from phoneops.voluum.conversions import start_sync as conversions_sync
    from phoneops.voluum.traffic import start_sync as traffic_sync

    today = utcnow().date()
    first = today - timedelta(days=DEMO_DAYS - 1)
    console.print("[bold]First start: running the first syncs so every page has data[/bold] (once)")

    def in_session(make: Callable[[Session], Job]) -> Callable[[], str | None]:
        def start() -> str | None:
            with session_scope() as session:
                return make(session).id

        return start

    _run(console, f"Voluum traffic {first} to {today}",
         in_session(lambda s: traffic_sync(s, SYSTEM, first, today)))
    _run(console, f"Voluum conversions {first} to {today}",
         in_session(lambda s: conversions_sync(s, SYSTEM, first, today)))
    def broadcasts_of(day: date) -> Callable[[], str | None]:
        return in_session(lambda s: start_import(s, SYSTEM, day))

    for offset in range(DEMO_DAYS - 1, 0, -1):
        day = today - timedelta(days=offset)
        _run(console, f"MessageWhiz broadcasts of {day}", broadcasts_of(day))
    _run(console, "Ongage sync of the converted numbers", in_session(lambda s: ongage_sync(s, SYSTEM)))
    seed_sources(console, first, today)

    with tempfile.TemporaryDirectory() as folder:
        sample = Path(folder) / "demo-sample-list.csv"
        # the demo's own GB range: some of these numbers are in the Voluum traffic (and so on a list)
        prefix = next(c[2] for c in DEMO_COUNTRIES if c[0] == "GB")
        numbers = [f"+{prefix}{n:03d}" if n % 2 else f"0{prefix[2:]}{n:03d}" for n in range(0, 1000, 5)]
        sample.write_text("phone\n" + "\n".join(numbers) + "\nnot a number\n")

        def clean() -> str | None:
            with session_scope() as session:
                record = upload_path(session, SYSTEM, sample, purpose="clean", name="demo-sample-list.csv")
                session.flush()
                return start_clean(session, SYSTEM, record.id, filters=["monitor"]).job_id

        _run(console, "Cleaning a sample list", clean)

    def imei() -> str | None:
        with session_scope() as session:
            batch, _plan = create_batch(session, SYSTEM, rows_from_text("\n".join(DEMO_IMEIS)), IMEI_SERVICE)
            return batch.job_id

    _run(console, "IMEI orders", imei)
    def hlr() -> str | None:
        with session_scope() as session:
            return create_lookup(session, SYSTEM, ListSource("monitor"), confirm=True).job_id

    _run(console, "HLR lookup of the monitored numbers", hlr)


DEMO_SOURCES = ("partner-a", "partner-b", "partner-c")


def seed_sources(console: Console, first: date, last: date) -> None:
    """Three labelled lists uploaded and cleaned as an operator would, so the sources page compares them: each
    named after one of the week's costliest MessageWhiz broadcast groups (so its SMS cost counts), the first
    holding most of the numbers that made an FTD, the second a few, the third none (ROI high, low, negative)."""
    from phoneops.broadcasts.analytics import group_days
    from phoneops.cleaning.service import start_clean
    from phoneops.cleaning.upload import upload_path
    from phoneops.numbers.models import PhoneNumber
    from phoneops.numbers.vault import get_vault
    from phoneops.sources.service import normalise_label
    from phoneops.voluum.models import Conversion

    with session_scope() as session:
        sms = group_days(first, last)
        groups = list(session.scalars(select(sms.c.group_name).group_by(sms.c.group_name)
                                      .order_by(func.sum(sms.c.cost).desc(), sms.c.group_name).limit(3)))
        ftd = set(session.scalars(select(Conversion.blind_index).where(Conversion.kind == "FTD")))
        vault = get_vault()
        known = sorted(session.execute(select(PhoneNumber.blind_index, PhoneNumber.sealed)).all())
        winners = [vault.open(sealed, index) for index, sealed in known if index in ftd]
        others = [vault.open(sealed, index) for index, sealed in known if index not in ftd]
    labels: list[str] = []
    for name in [*groups, *DEMO_SOURCES]:
        try:
            label = normalise_label(name)
        except AppError:
            continue
        if label and label not in labels:
            labels.append(label)
    cut_w, cut_o = len(winners) * 7 // 10, len(others) // 5
    lists = {
        labels[0]: winners[:cut_w] + others[:cut_o],
        labels[1]: winners[cut_w:] + others[cut_o : cut_o * 3],
        labels[2]: others[cut_o * 3 :],
    }
    with tempfile.TemporaryDirectory() as folder:
        for label, numbers in lists.items():
            path = Path(folder) / f"{label}.csv"
            path.write_text("phone\n" + "\n".join(numbers) + "\n")

            def clean(path: Path = path, label: str = label) -> str | None:
                with session_scope() as session:
                    record = upload_path(session, SYSTEM, path, purpose="clean", name=path.name, source_label=label)
                    session.flush()
                    return start_clean(session, SYSTEM, record.id, filters=["blacklist"]).job_id

            _run(console, f"Source {label}: {len(numbers)} numbers uploaded and cleaned", clean)
