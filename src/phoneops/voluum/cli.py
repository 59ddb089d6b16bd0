# Over 400 lines: one Typer app per domain: every voluum command lives here, each thin.
"""`phoneops voluum ...`: traffic and conversion syncs, lookups, costs, live events, smart cleaning, REG search.

Syncs, smart cleanings and REG searches are the same background jobs as the API and the UI start. By default
the CLI runs the job in its own process with a Rich progress bar; `--queue` leaves it to `phoneops worker`.
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Column, Table

from phoneops.core.errors import AppError

NAME = "voluum"
app = typer.Typer(help="Voluum: traffic and conversions, costs, live events, smart cleaning, REG search.",
                  no_args_is_help=True)

Queue = Annotated[bool, typer.Option("--queue", help="Leave the job to `phoneops worker` processes")]


def _boot() -> None:
    from phoneops.core.commands import bootstrap as _bootstrap

    _bootstrap()


def _console() -> Any:
    from phoneops.core.commands import console

    return console


def _fail(exc: AppError) -> typer.Exit:
    from phoneops.core.commands import fail

    return fail(exc)


def _actor() -> Any:
    from phoneops.core.commands import cli_actor

    return cli_actor()


def _run(job_id: str, queue: bool) -> str:
    from phoneops.core.commands import run_here_or_queue

    return run_here_or_queue(job_id, queue)


def _copy_result(job_id: str, out: Path | None) -> None:
    from phoneops.core.db import session_scope
    from phoneops.core.jobs import get_job
    from phoneops.core.storage import get_file, get_storage

    with session_scope() as session:
        job = get_job(session, job_id)
        _console().print_json(json.dumps({k: v for k, v in job.result.items() if k != "file_id"}))
        if out is not None and job.status == "succeeded":
            get_storage().copy_to(get_file(session, str(job.result["file_id"])), out)
            _console().print(f"result written to {out}")


# --- traffic and conversions ---------------------------------------------------------------------------


@app.command("sync-traffic")
def sync_traffic(
    date_from: Annotated[str, typer.Option("--from", help="First day, e.g. 2025-12-30")],
    date_to: Annotated[str | None, typer.Option("--to", help="Last day (inclusive); default: --from")] = None,
    queue: Queue = False,
) -> None:
    """Sync the traffic report of one day or a range and classify every number by its OS."""
    from phoneops.core.db import session_scope
    from phoneops.voluum.traffic import start_sync

    _boot()
    try:
        with session_scope() as session:
            job_id = start_sync(session, _actor(), date_from, date_to).id
    except AppError as exc:
        raise _fail(exc) from None
    if _run(job_id, queue) not in ("succeeded", "queued"):
        raise typer.Exit(1)
    days()


@app.command()
def days(limit: Annotated[int, typer.Option(help="How many days")] = 14) -> None:
    """Per-day traffic sync results: rows, numbers per list, values skipped."""
    from phoneops.core.db import session_scope
    from phoneops.voluum.traffic import recent_days

    _boot()
    table = Table("day", "rows", "numbers", "black/monitor/white/unknown", "skipped", "synced (UTC)")
    with session_scope() as session:
        for d in recent_days(session, limit):
            lists = "/".join(str(d.per_list.get(k, 0)) for k in ("blacklist", "monitor", "whitelist", "unknown"))
            table.add_row(str(d.day), str(d.rows), str(d.numbers), lists, str(d.skipped),
                          d.synced_at.strftime("%m-%d %H:%M"))
    _console().print(table)


@app.command("sync-conversions")
def sync_conversions(
    date_from: Annotated[str | None, typer.Option("--from", help="First day; default: the periodic window")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day (inclusive)")] = None,
    queue: Queue = False,
) -> None:
    """Sync conversions for whole days, or (without --from) the periodic window around the current hour."""
    from phoneops.core.db import session_scope
    from phoneops.voluum import conversions

    _boot()
    try:
        if date_from is None:
            from phoneops.voluum.provider import credentials

            credentials()
            record = conversions.periodic_sync()
            assert record is not None
            _console().print(f"{record.window_from:%Y-%m-%d %H:%M} to {record.window_to:%Y-%m-%d %H:%M} UTC: "
                             f"{record.rows} rows, {record.inserted} new, {record.duplicates} already stored, "
                             f"{record.unknown_country} without a country")
            return
        with session_scope() as session:
            job_id = conversions.start_sync(session, _actor(), date_from, date_to).id
    except AppError as exc:
        raise _fail(exc) from None
    if _run(job_id, queue) not in ("succeeded", "queued"):
        raise typer.Exit(1)


@app.command("refresh-lookups")
def refresh_lookups() -> None:
    """Refresh the offers and campaigns tables from Voluum."""
    from phoneops.core.db import session_scope
    from phoneops.voluum.lookups import refresh

    _boot()
    try:
        with session_scope() as session:
            result = refresh(session, _actor())
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(f"{result.campaigns} campaigns ({result.new_campaigns} new), "
                     f"{result.offers} offers ({result.new_offers} new)")


# --- costs ---------------------------------------------------------------------------------------------


@app.command("push-cost")
def push_cost(
    day: Annotated[str, typer.Option(help="The day, e.g. 2025-12-30 (midnight to midnight UTC)")],
    costs: Annotated[list[str], typer.Argument(help="CAMPAIGN_ID=COST pairs, in VOLUUM_CURRENCY")],
    force: Annotated[bool, typer.Option(help="Push again even when the same cost was already sent")] = False,
) -> None:
    """Push campaigns' costs for a day to Voluum."""
    from phoneops.core.db import session_scope
    from phoneops.core.errors import ValidationFailed
    from phoneops.voluum.costs import push_costs

    _boot()
    try:
        pairs = []
        for item in costs:
            campaign, sep, cost = item.partition("=")
            if not sep:
                raise ValidationFailed(f"write each cost as CAMPAIGN_ID=COST (got {item!r})")
            pairs.append((campaign, cost))
        with session_scope() as session:
            results = push_costs(session, _actor(), day, pairs, force=force)
    except AppError as exc:
        raise _fail(exc) from None
    table = Table("campaign", "day", "cost", "currency", "outcome", "error")
    for r in results:
        table.add_row(r.campaign_id, r.day, r.cost, r.currency, r.outcome, r.error or "")
    _console().print(table)
    if any(r.outcome == "failed" for r in results):
        raise typer.Exit(1)


# --- live events ---------------------------------------------------------------------------------------


@app.command()
def consume(
    drain: Annotated[bool, typer.Option(help="Stop once the queue is empty")] = False,
    wait: Annotated[int, typer.Option(help="Long-poll seconds (0-20)", min=0, max=20)] = 20,
    visibility: Annotated[int, typer.Option(help="Visibility timeout, seconds", min=1)] = 60,
    max_batches: Annotated[int | None, typer.Option(help="Stop after this many non-empty batches")] = None,
) -> None:
    """Consume Voluum's live events from SQS (SQS_QUEUE_URL) until stopped (Ctrl-C / SIGTERM)."""
    from phoneops.voluum.live import ConsumerConfig, make_consumer

    _boot()
    try:
        consumer = make_consumer(config=ConsumerConfig(wait_seconds=wait, visibility_timeout=visibility),
                                 actor=_actor())
    except AppError as exc:
        raise _fail(exc) from None

    def stop(signum: int, frame: Any) -> None:
        consumer.stop()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
    stats = consumer.run(drain=drain, max_batches=max_batches)
    _console().print_json(json.dumps(stats.as_dict()))


@app.command("live-post")
def live_post(path: Path) -> None:
    """Store a file of live events (an SNS envelope, a JSON list of events, or one event)."""
    from phoneops.core.db import session_scope
    from phoneops.voluum.live import ingest_body

    _boot()
    if not path.is_file():
        _console().print(f"[red]no such file: {path}[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            result = ingest_body(session, _actor(), path.read_bytes())
    except AppError as exc:
        raise _fail(exc) from None
    _console().print_json(json.dumps(result.as_dict()))


# --- smart cleaning and REG search ---------------------------------------------------------------------


@app.command("smart-clean")
def smart_clean(
    offer: Annotated[list[str], typer.Option(help="An offer id or name (repeat for several)")],
    country: Annotated[str | None, typer.Option(help="Country of the whitelist, e.g. GB")] = None,
    date_from: Annotated[str | None, typer.Option("--from", help="First day the numbers were listed")] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last day (inclusive)")] = None,
    file: Annotated[Path | None, typer.Option(help="Clean this list instead (CSV/TSV/xlsx)")] = None,
    region: Annotated[str | None, typer.Option(help="Default region for national numbers in --file")] = None,
    regs: Annotated[bool, typer.Option("--regs", help="Also drop numbers with a REG on those offers")] = False,
    live_24h: Annotated[bool, typer.Option("--live", help="Also drop numbers seen live in the last 24 h")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the result here")] = None,
    queue: Queue = False,
) -> None:
    """Drop numbers that converted on chosen offers (and optionally seen live) from a whitelist or a list."""
    from phoneops.core.db import session_scope
    from phoneops.core.storage import get_storage
    from phoneops.voluum.smart import start_smart_clean

    _boot()
    if file is not None and not file.is_file():
        _console().print(f"[red]no such file: {file}[/red]")
        raise typer.Exit(2)
    try:
        with session_scope() as session:
            actor = _actor()
            file_id = None
            if file is not None:
                file_id = get_storage().save_bytes(session, actor, file.read_bytes(), kind="voluum-input",
                                                   original_name=file.name).id
            job_id = start_smart_clean(session, actor, offers=offer, country=country, date_from=date_from,
                                       date_to=date_to, file_id=file_id, region=region, filter_regs=regs,
                                       filter_live=live_24h).id
    except AppError as exc:
        raise _fail(exc) from None
    status = _run(job_id, queue)
    if status != "queued":
        _copy_result(job_id, out)
    if status not in ("succeeded", "queued"):
        raise typer.Exit(1)


@app.command("reg-search")
def reg_search(
    country: Annotated[str, typer.Option(help="ISO code, or 'unknown'")],
    date_from: Annotated[str, typer.Option("--from", help="First day")],
    date_to: Annotated[str, typer.Option("--to", help="Last day (inclusive)")],
    offer: Annotated[list[str] | None, typer.Option(help="An offer id or name (repeat); default: all")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the result here")] = None,
    queue: Queue = False,
) -> None:
    """Numbers with a REG but no FTD for a country and offers inside a window."""
    from phoneops.core.db import session_scope
    from phoneops.voluum.smart import start_reg_search

    _boot()
    try:
        with session_scope() as session:
            job_id = start_reg_search(session, _actor(), country=country, date_from=date_from, date_to=date_to,
                                      offers=offer or []).id
    except AppError as exc:
        raise _fail(exc) from None
    status = _run(job_id, queue)
    if status != "queued":
        _copy_result(job_id, out)
    if status not in ("succeeded", "queued"):
        raise typer.Exit(1)


@app.command()
def offers(country: Annotated[str | None, typer.Option(help="Only offers with conversions there")] = None) -> None:
    """Offers with their REG / FTD counts."""
    from phoneops.core.db import session_scope
    from phoneops.voluum.smart import offers_for

    _boot()
    table = Table("id", "name", "REG", "FTD")
    try:
        with session_scope() as session:
            for o in offers_for(session, country):
                table.add_row(o["id"], o["name"], str(o["REG"]), str(o["FTD"]))
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(table)


@app.command()
def find(number: str, region: Annotated[str | None, typer.Option()] = None) -> None:
    """Everything known about a number: list status, traffic, conversions, live events."""
    from phoneops.core.db import session_scope
    from phoneops.voluum.find import find_number
    from phoneops.voluum.provider import region_or_default

    _boot()
    try:
        with session_scope() as session:
            report = find_number(session, _actor(), number, region_or_default(region))
    except AppError as exc:
        raise _fail(exc) from None
    console = _console()
    status = report.status or {}
    console.print(f"[bold]{report.number}[/bold] ({report.country or '?'}) list: "
                  f"[bold]{status.get('status') or 'on no list'}[/bold] reason: {status.get('reason') or '-'}"
                  f" authority: {status.get('authority') or '-'}")
    table = Table("day", "os", "browser", "ip", "visits", "unique", "category",
                  title=f"traffic ({report.traffic_rows})")
    for t in report.traffic[:20]:
        table.add_row(t["day"], t["os_version"], t["browser_version"], t["ip"], str(t["visits"]),
                      str(t["unique_visits"]), t["category"])
    console.print(table)
    conv = Table("postback (UTC)", "kind", "country", "offer", "campaign", title="conversions")
    for c in report.conversions[:20]:
        conv.add_row(str(c["postback_at"] or "")[:19], c["kind"], c["country"] or "unknown", c["offer_name"],
                     c["campaign_name"])
    console.print(conv)
    if report.live:
        console.print(f"latest live event: {report.live['event_at']} offer {report.live['offer_id']} "
                      f"({report.live['os']} {report.live['os_version']})")
    hlr = Table("looked up (UTC)", "live status", "network", "outcome", title=f"HLR results ({len(report.hlr)})")
    for h in report.hlr[:20]:
        hlr.add_row(h["looked_up_at"][:19], h["live_status"], h["current_network"],
                    f"{h['outcome']} {h['reason'] or ''}".strip())
    console.print(hlr)


# --- managing smart cleanings and REG searches: `phoneops voluum runs ...` (service: voluum.runs) -------------

runs_app = typer.Typer(help="Smart cleanings and REG searches: list, archive, restore, delete.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")


@runs_app.command("list")
def list_runs(archived: Annotated[bool, typer.Option("--archived", help="Show the archived runs")] = False) -> None:
    """Recent smart cleanings and REG searches (not archived, or with --archived the archived ones)."""
    from phoneops.core.db import session_scope
    from phoneops.voluum import runs

    _boot()
    table = Table(Column("id", no_wrap=True, min_width=36), "run", "status", "created (UTC)", "result")
    with session_scope() as session:
        for job in runs.list_runs(session, archived=archived):
            result = ", ".join(f"{k} {v}" for k, v in job.result.items() if k != "file_id")
            table.add_row(job.id, job.title, job.status, job.created_at.isoformat(timespec="seconds"), result)
    _console().print(table)


def _run_action(job_id: str, action: str) -> int:
    from phoneops.core.db import session_scope
    from phoneops.voluum import runs

    _boot()
    try:
        with session_scope() as session:
            if action == "archive":
                runs.archive_run(session, _actor(), job_id)
            elif action == "restore":
                runs.restore_run(session, _actor(), job_id)
            else:
                return runs.delete_run(session, _actor(), job_id)
    except AppError as exc:
        raise _fail(exc) from None
    return 0


@runs_app.command("archive")
def archive_run(job_id: str) -> None:
    """Archive a finished run: hidden from the list, still downloadable, restorable."""
    _run_action(job_id, "archive")
    _console().print(f"archived run {job_id}")


@runs_app.command("restore")
def restore_run(job_id: str) -> None:
    """Bring an archived run back to the list."""
    _run_action(job_id, "restore")
    _console().print(f"restored run {job_id}")


@runs_app.command("delete")
def delete_run(
    job_id: str,
    yes: Annotated[bool, typer.Option("--yes", help="Do not ask for confirmation")] = False,
) -> None:
    """Delete a finished run: its result file and its uploaded list leave storage (audited)."""
    if not yes and not typer.confirm(f"Delete run {job_id} and its files?"):
        raise typer.Exit(1)
    removed = _run_action(job_id, "delete")
    _console().print(f"deleted run {job_id} ({removed} file{'' if removed == 1 else 's'} removed)")
