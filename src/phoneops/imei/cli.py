# Over 400 lines: one Typer app per domain: every imei command lives here, each thin.
"""`phoneops imei ...`: services, submit, batch, batches, resume, review, status, wait, sync, export, import.

Submissions go through the same batch job as the API and the UI. By default the CLI runs that job in its
own process (`--inline`) with a Rich progress bar; `--queue` leaves it to `phoneops worker` processes.
"""

from __future__ import annotations

import threading
import time
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from phoneops.core.errors import AppError

NAME = "imei"
app = typer.Typer(help="Device checks (GSM Fusion, DHRU accounts): IMEI services, orders, batches, history.",
                  no_args_is_help=True)

TERMINAL = ("succeeded", "failed", "cancelled")


def _console() -> Any:
    from phoneops.core.commands import console

    return console


def _fail(exc: AppError) -> typer.Exit:
    from phoneops.core.commands import fail

    return fail(exc)


def _boot() -> None:
    from phoneops.core.commands import bootstrap as _bootstrap

    _bootstrap()


def _money(value: object) -> str:
    from decimal import Decimal

    return "-" if value is None else f"${Decimal(str(value)):,.2f}"


# --- services -----------------------------------------------------------------------------------------


@app.command("services")
def services(
    search: Annotated[str | None, typer.Option(help="Text in the title or category")] = None,
    category: Annotated[str | None, typer.Option(help="Exact category")] = None,
    refresh: Annotated[bool, typer.Option(help="Fetch the list from the providers now")] = False,
    kind: Annotated[str, typer.Option("--type", help="imei or file services")] = "imei",
) -> None:
    """List the IMEI services of every configured account (cached), with prices and delivery times."""
    from phoneops.core.db import session_scope
    from phoneops.core.text import plain_text
    from phoneops.imei import catalogue
    from phoneops.imei.provider import require_configured

    _boot()
    try:
        require_configured()
        with session_scope() as session:
            found = catalogue.catalogue(session, search=search, category=category, refresh_now=refresh, kind=kind)
            table = Table("id", "category", "service", "price", "delivery", "details")
            for s in found.services:
                details = plain_text(s.details)  # the provider writes HTML
                table.add_row(s.package_id, plain_text(s.category), plain_text(s.title), _money(s.price),
                              plain_text(s.delivery_time),
                              details if len(details) <= 80 else details[:79] + "…")
    except AppError as exc:
        raise _fail(exc) from None
    if found.warning:
        _console().print(f"[yellow]{found.warning}[/yellow]")
    _console().print(table)


# --- submitting ---------------------------------------------------------------------------------------


def _follow(job_id: str, worker: threading.Thread | None) -> tuple[str, str | None, str | None]:
    """A Rich bar until the job ends (or, inline, until our runner stops: a parked job)."""
    from phoneops.core.db import session_scope
    from phoneops.core.jobs import get_job

    console = _console()
    with Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TaskProgressColumn(),
        TextColumn("{task.completed:.0f}/{task.total}"), TimeElapsedColumn(), console=console,
    ) as progress:
        task = progress.add_task("imei.batch", total=None)
        while True:
            with session_scope() as session:
                job = get_job(session, job_id)
                counters = job.counters or {}
                progress.update(
                    task, completed=job.progress_done, total=job.progress_total,
                    description=f"placed {counters.get('placed', 0)} · duplicates {counters.get('duplicates', 0)} "
                    f"· failed {counters.get('failed', 0)} [{job.status}]",
                )
                status, error, message = job.status, job.error, job.message
            if status in TERMINAL:
                return status, error, message
            if worker is not None and not worker.is_alive():
                # Our inline run ended: the job either waits (parked, `run_after`) or another worker holds it
                # (a `phoneops worker` took it first): then follow that worker's run to its end.
                with session_scope() as session:
                    job = get_job(session, job_id)
                    if job.status == "running" and job.lease_owner:
                        worker = None
                    else:
                        return job.status, job.error, job.message
            time.sleep(0.3)


def _run(batch_id: int, job_id: str | None, inline: bool) -> dict[str, Any]:
    """Run (or wait for) the batch job; print why it stopped when it did not succeed."""
    from phoneops.core import jobs
    from phoneops.core.db import session_scope
    from phoneops.imei import submission

    console = _console()
    if job_id is not None:
        worker = threading.Thread(target=jobs.run_job, args=(job_id,), daemon=True) if inline else None
        if worker is not None:
            worker.start()
        status, error, message = _follow(job_id, worker)
        if worker is not None:
            worker.join(timeout=1.0)
            with session_scope() as session:
                job = jobs.get_job(session, job_id)
                status, error, message = job.status, job.error, job.message
        if error:
            console.print(f"[red]error:[/red] {error}")
        elif status not in TERMINAL:
            console.print(f"[yellow]batch paused:[/yellow] {message or status} (a `phoneops worker` resumes it)")
    with session_scope() as session:
        return submission.batch_summary(session, submission.get_batch(session, batch_id))


def _print_summary(summary: dict[str, Any]) -> None:
    title = f"batch #{summary['batch_id']}"
    table = Table("placed", "duplicates", "invalid", "failed", "needs review", "spend", title=title)
    table.add_row(str(summary["placed"]), str(summary["duplicates"]), str(summary["invalid"]), str(summary["failed"]),
                  str(summary["needs_review"]), _money(summary["spend"]))
    _console().print(table)


def _exit_code(summary: dict[str, Any]) -> int:
    if summary["status"] == "failed" or summary["error"]:
        return 1
    return 0 if summary["status"] == "done" else 3


def _fields(values: list[str] | None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for item in values or []:
        name, sep, value = item.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected NAME=VALUE, got {item!r}")
        fields[name.strip()] = value.strip()
    return fields


@app.command("submit")
def submit(
    imei: str,
    service: Annotated[str, typer.Option("--service", "-s", help="Service (package) id")],
    field: Annotated[list[str] | None, typer.Option(help="Provider field NAME=VALUE (e.g. modelNo=A2482)")] = None,
    force: Annotated[bool, typer.Option(help="Re-check an IMEI already ordered for this service")] = False,
    confirm_over_budget: Annotated[bool, typer.Option(help="Send even if over the daily budget")] = False,
    inline: Annotated[bool, typer.Option("--inline/--queue", help="Run here, or leave it to workers")] = True,
) -> None:
    """Order one IMEI and show the result (order id, duplicate, invalid or error)."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import inputs, submission
    from phoneops.imei.models import ImeiOrder
    from phoneops.imei.provider import require_configured

    _boot()
    console = _console()
    try:
        require_configured()
        with session_scope() as session:
            batch, plan = submission.create_batch(
                session, cli_actor(), [inputs.InputRow(imei, fields=_fields(field))], service, source="cli",
                force=force, confirm_over_budget=confirm_over_budget,
            )
            batch_id, job_id = batch.id, batch.job_id
    except AppError as exc:
        raise _fail(exc) from None
    if job_id is None:
        reason = plan.skipped[0]["reason"] if plan.skipped else "nothing to send"
        label = "duplicate" if "already ordered" in reason or "duplicate" in reason else "not sent"
        hint = " (use --force to re-check)" if "already ordered" in reason else ""
        console.print(f"[yellow]{label}:[/yellow] {imei}: {reason}{hint}")
        raise typer.Exit(1)
    summary = _run(batch_id, job_id, inline)
    with session_scope() as session:
        order = session.scalar(select(ImeiOrder).where(ImeiOrder.batch_id == batch_id))
        if order is not None:
            if order.state == "placed":
                console.print(f"[green]placed:[/green] order {order.order_id} for {order.imei} ({order.status}), "
                              f"{_money(order.credits)}")
            elif order.state == "duplicate":
                console.print(f"[yellow]duplicate:[/yellow] {order.error}")
            elif order.state in ("failed", "review"):
                console.print(f"[red]{'needs review' if order.state == 'review' else 'failed'}:[/red] {order.error}")
    raise typer.Exit(_exit_code(summary) if summary["placed"] else max(1, _exit_code(summary)))


@app.command("batch")
def batch(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or XLSX with a column 'imei'")],
    service: Annotated[str | None, typer.Option("--service", "-s", help="Service id (unless the file has one)")] = None,
    force: Annotated[bool, typer.Option(help="Re-check IMEIs already ordered for their service")] = False,
    confirm_over_budget: Annotated[bool, typer.Option(help="Send even if over the daily budget")] = False,
    inline: Annotated[bool, typer.Option("--inline/--queue", help="Run here, or leave it to workers")] = True,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write every row's result as JSON here")] = None,
) -> None:
    """Submit a file of IMEIs: validation, duplicates and the cost guard first, then a progress bar."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import inputs, submission
    from phoneops.imei.provider import require_configured

    _boot()
    console = _console()
    try:
        require_configured()
        rows = inputs.rows_from_table(file)
        with session_scope() as session:
            created, plan = submission.create_batch(
                session, cli_actor(), rows, service, source="cli", file_name=file.name, force=force,
                confirm_over_budget=confirm_over_budget,
            )
            batch_id, job_id = created.id, created.job_id
    except AppError as exc:
        raise _fail(exc) from None
    q = plan.quote
    console.print(f"batch #{batch_id}: {len(plan.rows)} to send, {plan.invalid} invalid, "
                  f"{plan.duplicates_in_batch + plan.duplicates_in_history} duplicates skipped; cost {_money(q.cost)} "
                  f"(today {_money(q.spent_today)} of {_money(q.budget)}; balance {q.balance})")
    if not inline and job_id is not None:
        console.print(f"queued as job {job_id}; follow it with `phoneops jobs follow {job_id}`")
        raise typer.Exit(0)
    summary = _run(batch_id, job_id, inline)
    _print_summary(summary)
    if output is not None:
        written = _write_results(batch_id, output)
        console.print(f"results of {written} rows written to {output}")
    raise typer.Exit(_exit_code(summary))


@app.command("batches")
def batches(limit: Annotated[int, typer.Option(help="How many, newest first")] = 20) -> None:
    """List the latest batches: status, counts, spend, what is left."""
    from phoneops.core.db import session_scope
    from phoneops.imei import submission

    _boot()
    table = Table("batch", "created", "status", "service", "to send", "placed", "review", "failed", "spend", "error",
                  title="IMEI batches")
    with session_scope() as session:
        for found in submission.list_batches(session, limit):
            s = submission.batch_summary(session, found)
            table.add_row(str(found.id), found.created_at.strftime("%Y-%m-%d %H:%M"), found.status, found.service_id,
                          str(found.to_send), str(s["placed"]), str(s["needs_review"]), str(s["failed"]),
                          _money(s["spend"]), (found.error or "")[:60])
    _console().print(table)


@app.command("resume")
def resume(
    batch_id: Annotated[int, typer.Argument(help="The batch to resume")],
    inline: Annotated[bool, typer.Option("--inline/--queue", help="Run here, or leave it to workers")] = True,
) -> None:
    """Resume a stopped batch (after a key or credit problem was fixed): nothing settled is sent again."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import submission
    from phoneops.imei.provider import require_configured

    _boot()
    try:
        require_configured()
        with session_scope() as session:
            job_id = submission.resume_batch(session, cli_actor(), batch_id).job_id
    except AppError as exc:
        raise _fail(exc) from None
    if not inline:
        _console().print(f"batch #{batch_id} queued again as job {job_id}")
        raise typer.Exit(0)
    summary = _run(batch_id, job_id, inline)
    _print_summary(summary)
    raise typer.Exit(_exit_code(summary))


review_app = typer.Typer(help="Paid work that needs a human: list, attach an order id, write off.",
                         invoke_without_command=True)
app.add_typer(review_app, name="review")


@review_app.callback()
def review_list(ctx: typer.Context) -> None:
    """List IMEI orders and HLR lookups in review (what the Needs review page shows)."""
    if ctx.invoked_subcommand is not None:
        return
    from phoneops.core.db import session_scope
    from phoneops.hlr.lookups import lookups_in_review
    from phoneops.imei import review

    _boot()
    console = _console()
    with session_scope() as session:
        rows = [review.describe_row(o) for o in review.review_rows(session)]
        lookups = lookups_in_review(session)
    if not rows and not lookups:
        console.print("nothing needs review")
        return
    table = Table("row", "imei", "service", "why", "paid", "batch", title=f"IMEI orders in review ({len(rows)})")
    for r in rows:
        table.add_row(str(r["id"]), r["imei"], str(r["service_id"] or ""), r["reason_text"],
                      _money(r["credits"]) if r["paid"] else "unknown", str(r["batch_id"] or ""))
    console.print(table)
    if lookups:
        hlr = Table("lookup", "title", "status", "numbers in review", title="HLR lookups with numbers in review")
        for found in lookups:
            hlr.add_row(str(found["lookup_id"]), found["title"], found["status"], f"{found['numbers']:,}")
        console.print(hlr)
    console.print("attach: `phoneops imei review attach ROW ORDER_ID`; write off: `phoneops imei review write-off "
                  "ROW --reason ...`; HLR: `phoneops hlr retry-review ID` or the Needs review page")


@review_app.command("attach")
def review_attach(
    row: Annotated[int, typer.Argument(help="The order row (see `phoneops imei review`)")],
    order_id: Annotated[str, typer.Argument(
        help="The provider's order id for it (for a DHRU account its reference, bare or as account:reference)")],
) -> None:
    """Give an order in review its order id; its result is fetched by the next sync."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import review

    _boot()
    try:
        with session_scope() as session:
            order = review.attach_order_id(session, cli_actor(), row, order_id)
            _console().print(f"[green]attached:[/green] order {order.order_id} for {order.imei}")
    except AppError as exc:
        raise _fail(exc) from None


@review_app.command("write-off")
def review_write_off(
    row: Annotated[int, typer.Argument(help="The order row (see `phoneops imei review`)")],
    reason: Annotated[str, typer.Option(help="Why it is written off (required)")] = "",
) -> None:
    """Close an order in review without a result (kept in spend when it was paid)."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import review

    _boot()
    try:
        with session_scope() as session:
            order = review.write_off(session, cli_actor(), row, reason)
            _console().print(f"written off: {order.imei} ({reason.strip()})")
    except AppError as exc:
        raise _fail(exc) from None


def _write_results(batch_id: int, output: Path) -> int:
    """`[{imei, order_id, service_id, state, status, success, error, credits}]` for every row of the batch,
    the rows skipped before sending included (invalid, duplicates)."""
    import json

    from phoneops.core.db import session_scope
    from phoneops.imei import submission
    from phoneops.imei.models import ImeiOrder

    with session_scope() as session:
        batch = submission.get_batch(session, batch_id)
        rows = session.scalars(select(ImeiOrder).where(ImeiOrder.batch_id == batch_id).order_by(ImeiOrder.id))
        results: list[dict[str, Any]] = [
            {"imei": o.imei, "order_id": o.order_id, "service_id": o.service_id, "state": o.state, "status": o.status,
             "success": o.state == "placed", "error": o.error,
             "credits": None if o.credits is None or o.state != "placed" else str(o.credits)}
            for o in rows
        ]
        results += [{"imei": s.get("value"), "order_id": None, "service_id": None, "state": "skipped", "status": None,
                     "success": False, "error": s.get("reason"), "credits": None} for s in batch.skipped]
    output.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return len(results)


# --- following orders ---------------------------------------------------------------------------------


def _print_orders(orders: list[Any]) -> None:
    """One block per order (readable in any terminal width)."""
    console = _console()
    for o in orders:
        when = (o.order_date or o.created_at).strftime("%Y-%m-%d %H:%M")
        console.print(f"[bold]{o.order_id or '(no order id)'}[/bold]  {o.imei}  {o.state}  "
                      f"{o.status or '-'}  {_money(o.credits)}  {when}", highlight=False)
        console.print(f"  {o.service_title or o.service_id or ''}", highlight=False)
        details = {"model": o.model, "brand": o.brand, "carrier": o.carrier, "simlock": o.simlock, "fmi": o.fmi,
                   "icloud": o.icloud, "blacklist": o.blacklist, "imei 2": o.imei2, "serial": o.serial,
                   "country": o.country}
        shown = "  ".join(f"{k}: {v}" for k, v in details.items() if v)
        if shown:
            console.print(f"  {shown}", highlight=False)
        if o.error:
            console.print(f"  [yellow]{o.error}[/yellow]", highlight=False)


@app.command("status")
def status(
    references: Annotated[list[str], typer.Argument(help="Order ids or IMEIs (several, or comma separated)")],
    refresh: Annotated[bool, typer.Option(help="Ask the provider for the latest status")] = False,
) -> None:
    """Show the orders for order ids or IMEIs (optionally refreshed from the provider); exit 1 if one is unknown."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import history
    from phoneops.imei.sync import refresh_audited

    _boot()
    wanted = list(dict.fromkeys(p.strip() for r in references for p in r.split(",") if p.strip()))
    missing: list[str] = []
    failure: AppError | None = None
    with session_scope() as session:  # committed even when a refresh failed: its audit line stays
        for reference in wanted:
            try:
                orders = history.find_orders(session, reference)
                if not orders:
                    missing.append(reference)
                    continue
                for order in orders if refresh else []:
                    refresh_audited(session, cli_actor(), order, "cli")
            except AppError as exc:
                failure = exc
                break
            _print_orders(orders)
    if failure is not None:
        raise _fail(failure)
    if missing:
        _console().print(f"[yellow]no order for {', '.join(missing)}[/yellow]")
        raise typer.Exit(1)


@app.command("wait")
def wait(
    order_id: Annotated[str, typer.Argument(help="Provider order id")],
    interval: Annotated[float, typer.Option(help="Seconds between checks")] = 30.0,
    timeout: Annotated[float, typer.Option(help="Give up after this many seconds")] = 3600.0,
) -> None:
    """Follow one order until it is Completed or Rejected (exit 0 completed, 1 rejected, 2 timeout)."""
    from phoneops.core.db import session_scope
    from phoneops.imei.models import ImeiOrder
    from phoneops.imei.sync import is_final, refresh_order

    _boot()
    console = _console()
    deadline = time.monotonic() + timeout
    last = None
    try:
        while True:
            with session_scope() as session:
                order = session.scalar(select(ImeiOrder).where(ImeiOrder.order_id == order_id))
                if order is None:
                    console.print(f"[red]error:[/red] no order {order_id} in history")
                    raise typer.Exit(1)
                refresh_order(session, order)
                current, final, display = order.status, is_final(order), order.code_display
            if current != last:
                console.print(f"{time.strftime('%H:%M:%S')} order {order_id}: [bold]{current}[/bold]")
                last = current
            if final:
                if display:
                    console.print(display)
                raise typer.Exit(0 if current == "Completed" else 1)
            if time.monotonic() + interval > deadline:
                console.print(f"[yellow]still {current} after {timeout:.0f} s[/yellow]")
                raise typer.Exit(2)
            time.sleep(interval)
    except AppError as exc:
        raise _fail(exc) from None


@app.command("sync")
def sync() -> None:
    """Refresh every Pending / In Process order now (many ids per call)."""
    from phoneops.core.audit import audit
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei.provider import require_configured
    from phoneops.imei.sync import sync_open_orders

    _boot()
    try:
        require_configured()
        result = sync_open_orders(
            progress=lambda done, counts: _console().print(f"checked {done} · {counts}", highlight=False)
        )
    except AppError as exc:
        with session_scope() as session:
            audit(session, cli_actor(), "imei.sync", None, None, {"via": "cli", "error": exc.message}, outcome="failed")
        raise _fail(exc) from None
    with session_scope() as session:
        audit(session, cli_actor(), "imei.sync", None, None, {"via": "cli", "checked": result["checked"],
                                                              "by_status": result["by_status"]}, outcome="ok")
    _console().print(f"[green]synced {result['checked']} open orders[/green]: {result['by_status']}")


@app.command("reparse")
def reparse() -> None:
    """Parse every stored result text again into the result columns (after a parser change); audited."""
    from phoneops.core.commands import cli_actor
    from phoneops.imei.results import reparse_all

    _boot()
    result = reparse_all(cli_actor(), progress=lambda done, changed: _console().print(
        f"checked {done} · changed {changed}", highlight=False))
    _console().print(f"[green]re-parsed {result['checked']} result texts[/green]: {result['changed']} orders changed")


# --- export / import ----------------------------------------------------------------------------------


@app.command("export")
def export(
    output: Annotated[Path, typer.Argument(help="File to write (.csv or .xlsx)")],
    imeis: Annotated[str | None, typer.Option(help="IMEIs, comma separated")] = None,
    status: Annotated[str | None, typer.Option(help="Provider statuses, comma separated")] = None,
    service: Annotated[str | None, typer.Option(help="Service id")] = None,
    since: Annotated[str | None, typer.Option("--from", help="From date (YYYY-MM-DD)")] = None,
    until: Annotated[str | None, typer.Option("--to", help="To date (YYYY-MM-DD, inclusive)")] = None,
    text: Annotated[str | None, typer.Option("--q", help="Free text")] = None,
    fmi: Annotated[str | None, typer.Option(help="Find My iPhone: on | off")] = None,
    blacklist: Annotated[str | None, typer.Option(help="GSMA blacklist: clean | blacklisted")] = None,
    simlock: Annotated[str | None, typer.Option(help="SIM lock: locked | unlocked")] = None,
    carrier: Annotated[str | None, typer.Option(help="Carrier contains")] = None,
    model: Annotated[str | None, typer.Option(help="Model contains")] = None,
) -> None:
    """Export history with the original columns (SERVICE, IMEI NO., CREDITS, STATUS, CODE, ...)."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import history

    _boot()
    try:
        filters = history.OrderFilters(
            imeis=history.parse_imei_list(imeis), statuses=[s for s in (status or "").split(",") if s.strip()],
            service_id=service, date_from=date.fromisoformat(since) if since else None,
            date_to=date.fromisoformat(until) if until else None, text=text, fmi=fmi, blacklist=blacklist,
            simlock=simlock, carrier=carrier, model=model,
        )
    except AppError as exc:
        raise _fail(exc) from None
    rows = 0
    with session_scope() as session:
        if output.suffix.lower() == ".xlsx":
            with output.open("wb") as out:
                rows = history.export_xlsx(session, cli_actor(), filters, out)
        else:
            lines = history.export_csv(session, cli_actor(), filters)
            session.commit()
            with output.open("w", encoding="utf-8", newline="") as out:
                for line in lines:
                    out.write(line)
                    rows += 1
            rows -= 1  # the header
    _console().print(f"[green]exported {rows} orders to {output}[/green]")


@app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="GSM Fusion export (.xlsx)")],
) -> None:
    """Import a GSM Fusion export into history without duplicating orders."""
    from phoneops.core.commands import cli_actor
    from phoneops.core.db import session_scope
    from phoneops.imei import imports

    _boot()
    try:
        with session_scope() as session:
            record = imports.import_provider_export(session, cli_actor(), file, file.name)
            text = (f"{record.rows_total} rows: {record.rows_inserted} new, {record.rows_updated} updated, "
                    f"{record.rows_skipped} skipped")
    except AppError as exc:
        raise _fail(exc) from None
    _console().print(f"[green]imported {file.name}[/green]: {text}")
