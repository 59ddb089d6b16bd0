# Over 400 lines: a day's import is one job: fetch, join to Voluum, store, cost.
"""A day's broadcasts: imported from MessageWhiz, joined to Voluum, stored as stats rows and history files.

- The day's broadcasts (UTC) with their link (the first `{{link:N}}` of the body), the Voluum campaign behind
  the link (the URL's last path segment), prices (cents -> currency units), recipients, clicks, CTR and the
  delivery counts. A broadcast without a link, with an unknown link, or whose link names no campaign is kept
  with a note saying so; it never fails the day.
- Voluum numbers per broadcast: its campaign's visits, unique visits, REGs, FTDs, Click2Reg and Reg2FTD from
  the send hour to 24 h later (or now, whichever is first), as the original did. One report grouped by
  campaign per distinct window, so a day costs a few calls, not one per broadcast. Per campaign and day the
  union of its broadcasts' windows is read once more (`BroadcastCampaignDay`): analytics use those, so a visit
  seen by two broadcasts' windows is counted once.
- Stored in one transaction: one `BroadcastStat` row per broadcast id (updated in place on re-import; a
  broadcast gone from the provider's list is removed), the campaign-day rows, and the history files (CSV and
  XLSX, spreadsheet formulas neutralised) that replace the previous ones.

Importing the same day twice gives the same rows and the same history file (when the provider's numbers did
not move in between).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from phoneops.broadcasts.client import Broadcast, Link, MessageWhizClient
from phoneops.broadcasts.models import BroadcastCampaignDay, BroadcastDay, BroadcastStat
from phoneops.broadcasts.money import day_cost
from phoneops.broadcasts.provider import get_client, is_transient, past_day, state_text
from phoneops.core.audit import audit
from phoneops.core.csvio import csv_lines, neutralise
from phoneops.core.db import rowcount, utcnow
from phoneops.core.errors import Conflict, NotFound
from phoneops.core.http import ProviderError
from phoneops.core.jobs import active_job_for, create_job
from phoneops.core.models import Job, StoredFile
from phoneops.core.security import Principal
from phoneops.core.storage import get_file, get_storage
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.broadcasts.days")

KIND = "broadcasts.import_day"
FILE_KIND = "broadcast_history"
CENT = Decimal("0.0001")
HUNDREDTH = Decimal("0.01")
WINDOW = timedelta(hours=24)

NOTE_NO_LINK = "no {{link:N}} in the message: no campaign"
NOTE_NO_CAMPAIGN = "the link's URL names no Voluum campaign"
NOTE_NOT_COUNTED = "state {state}: left out of the cost"
NOTE_NOT_SENT = "not sent yet"

HISTORY_COLUMNS = (
    "Campaign ID", "Campaign Name", "Broadcast ID", "Name", "Group", "Send Date", "Status", "Link ID",
    "Estimated Price", "Price", "Recipient Count", "BC Unique Clicks", "BC Total Clicks", "CTR",
    "DLR Delivered Count", "DLR Sent Count", "DLR Undelivered Count", "DLR Rejected Count", "Voluum Visits",
    "Voluum Unique Visits", "Voluum REGs", "Voluum FTDs", "Click 2 REG", "Reg 2 FTD", "Note", "message_body",
)
PERCENT_COLUMNS = frozenset({"CTR", "Click 2 REG", "Reg 2 FTD"})


# --- Voluum numbers per window ------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignNumbers:
    visits: int = 0
    unique_visits: int = 0
    clicks: int = 0
    regs: int = 0
    ftds: int = 0
    click_to_reg: Decimal | None = None
    reg_to_ftd: Decimal | None = None
    name: str = ""


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def _percent(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = Decimal(str(value).strip().rstrip("%"))
    except InvalidOperation:
        return None
    return number.quantize(HUNDREDTH) if number.is_finite() else None


def _ratio(part: int, whole: int) -> Decimal | None:
    return (Decimal(part) * 100 / Decimal(whole)).quantize(HUNDREDTH) if whole else None


def campaign_numbers(row: dict[str, Any]) -> CampaignNumbers:
    """One row of a report grouped by campaign; Click2Reg / Reg2FTD computed when the row lacks them."""
    clicks, regs, ftds = _int(row.get("clicks")), _int(row.get("customConversions1")), _int(row.get("conversions"))
    click_to_reg = _percent(row["Click2Reg"]) if "Click2Reg" in row else _ratio(regs, clicks)
    reg_to_ftd = _percent(row["Reg2FTD"]) if "Reg2FTD" in row else _ratio(ftds, regs)
    return CampaignNumbers(
        visits=_int(row.get("visits")), unique_visits=_int(row.get("uniqueVisits")), clicks=clicks, regs=regs,
        ftds=ftds, click_to_reg=click_to_reg, reg_to_ftd=reg_to_ftd, name=str(row.get("campaignName") or ""),
    )


Fetch = Callable[[datetime, datetime], dict[str, CampaignNumbers]]


class VoluumWindows:
    """Campaign numbers per window: one report grouped by campaign per distinct window, cached."""

    def __init__(self, fetch: Fetch) -> None:
        self._fetch = fetch
        self._cache: dict[tuple[datetime, datetime], dict[str, CampaignNumbers]] = {}
        self.calls = 0

    def numbers(self, start: datetime, end: datetime, campaign_id: str) -> CampaignNumbers:
        key = (start, end)
        if key not in self._cache:
            self.calls += 1
            self._cache[key] = self._fetch(start, end)
        return self._cache[key].get(campaign_id.lower(), CampaignNumbers())


def voluum_fetch(client: Any) -> Fetch:
    """A `Fetch` over the Voluum client (the report in the configured currency and time zone)."""
    settings = get_settings()

    def fetch(start: datetime, end: datetime) -> dict[str, CampaignNumbers]:
        found: dict[str, CampaignNumbers] = {}
        for row in client.iter_report_rows(start, end, group_by=["campaign"], currency=settings.voluum_currency,
                                           tz=settings.voluum_timezone):
            campaign_id = str(row.get("campaignId") or "").lower()
            if campaign_id:
                found[campaign_id] = campaign_numbers(row)
        return found

    return fetch


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment.astimezone(UTC) else floored + timedelta(hours=1)


def broadcast_window(send_at: datetime | None, now: datetime) -> tuple[datetime, datetime] | None:
    """From the send hour to 24 h later or the end of the current hour, whichever is first (whole hours, as
    Voluum wants); None before the broadcast is sent."""
    if send_at is None:
        return None
    start = floor_hour(send_at)
    end = min(start + WINDOW, ceil_hour(now))
    return (start, end) if end > start else None


# --- one day ------------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    day: str
    broadcasts: int = 0
    with_notes: int = 0
    campaigns: int = 0
    removed: int = 0
    cost: str = "0"
    unattributed_cost: str = "0"
    voluum: str = "ok"
    voluum_error: str | None = None
    voluum_calls: int = 0
    csv_file_id: str | None = None
    xlsx_file_id: str | None = None
    notes: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _money(value: Decimal | None) -> Decimal | None:
    return None if value is None else value.quantize(CENT)


def _campaign(broadcast: Broadcast, links: dict[int, Link]) -> tuple[Link | None, str | None, list[str]]:
    """The broadcast's link, its campaign id and the notes explaining what is missing."""
    notes: list[str] = []
    link_id = broadcast.link_id
    if link_id is None:
        return None, None, [NOTE_NO_LINK]
    link = links.get(link_id)
    if link is None:
        return None, None, [f"link {link_id} not found at MessageWhiz: no campaign"]
    if link.campaign_id is None:
        notes.append(NOTE_NO_CAMPAIGN)
    return link, link.campaign_id, notes


def _fill(row: BroadcastStat, broadcast: Broadcast, day: date, link: Link | None, campaign_id: str | None,
          notes: list[str], now: datetime) -> None:
    row.day = day
    row.name = broadcast.name[:255]
    row.group_name = broadcast.group_name[:255]
    row.send_at = broadcast.send_date
    row.state = broadcast.state
    row.status = state_text(broadcast.state)
    row.link_id = broadcast.link_id
    row.link_url = (link.target_url if link is not None else "")[:1000]
    row.campaign_id = campaign_id
    row.price = _money(broadcast.price)
    row.estimated_price = _money(broadcast.estimated_price)
    row.counts_for_cost = broadcast.counts_for_cost
    row.recipients = broadcast.recipient_count or 0
    row.unique_clicks = broadcast.unique_clicks or 0
    row.total_clicks = broadcast.total_clicks or 0
    row.ctr = None if broadcast.ctr is None else broadcast.ctr.quantize(HUNDREDTH)
    row.delivered = broadcast.delivered_count or 0
    row.sent = broadcast.sent_count or 0
    row.undelivered = broadcast.undelivered_count or 0
    row.rejected = broadcast.rejected_count or 0
    row.message_body = broadcast.message_body
    row.imported_at = now
    if not broadcast.counts_for_cost:
        notes.append(NOTE_NOT_COUNTED.format(state=broadcast.state))
    elif broadcast.send_date is None or broadcast.send_date > now or broadcast.state == 1:
        notes.append(NOTE_NOT_SENT)
    row.note = "; ".join(notes)[:255] or None


def _set_voluum(row: BroadcastStat | BroadcastCampaignDay, numbers: CampaignNumbers | None) -> None:
    row.voluum_visits = None if numbers is None else numbers.visits
    row.voluum_unique_visits = None if numbers is None else numbers.unique_visits
    row.voluum_regs = None if numbers is None else numbers.regs
    row.voluum_ftds = None if numbers is None else numbers.ftds


def import_day(
    session: Session,
    actor: Principal,
    day: date | str,
    *,
    client: MessageWhizClient | None = None,
    voluum: Fetch | None = None,
    now: datetime | None = None,
    job_id: str | None = None,
) -> ImportResult:
    """Import one day (see the module docstring) in the caller's transaction.

    `voluum`: how campaign numbers are read; by default the configured Voluum client, and none (numbers left
    empty, the day marked `off`) while Voluum is not configured. A transient Voluum error is raised (the job
    parks and retries); any other is recorded on the day, which is stored without Voluum numbers.
    """
    when = past_day(day)
    now = now or utcnow()
    client = client or get_client()
    broadcasts = sorted(client.broadcasts_for_day(when), key=lambda b: (b.send_date or now, b.id))
    links = client.links_by_id({b.link_id for b in broadcasts if b.link_id is not None})
    result = ImportResult(day=str(when), broadcasts=len(broadcasts))
    windows = _windows(voluum, result)

    existing = {r.broadcast_id: r for r in session.scalars(select(BroadcastStat).where(
        BroadcastStat.broadcast_id.in_([b.id for b in broadcasts])))} if broadcasts else {}
    rows: list[BroadcastStat] = []
    for broadcast in broadcasts:
        row = existing.get(broadcast.id)
        if row is None:
            row = BroadcastStat(broadcast_id=broadcast.id)
            session.add(row)
        link, campaign_id, notes = _campaign(broadcast, links)
        _fill(row, broadcast, when, link, campaign_id, notes, now)
        window = broadcast_window(broadcast.send_date, now)
        numbers = None
        if windows is not None and campaign_id is not None and window is not None:
            numbers = _read(windows, window, campaign_id, result)
        _set_voluum(row, numbers)
        row.campaign_name = (numbers.name if numbers is not None else "")[:255]
        row.click_to_reg = None if numbers is None else numbers.click_to_reg
        row.reg_to_ftd = None if numbers is None else numbers.reg_to_ftd
        row.voluum_from, row.voluum_to = window if numbers is not None and window is not None else (None, None)
        rows.append(row)
        for note in (row.note or "").split("; "):
            if note:
                key = note if not note.startswith("link ") else "link not found at MessageWhiz"
                result.notes[key] = result.notes.get(key, 0) + 1
    gone = delete(BroadcastStat).where(BroadcastStat.day == when)
    if broadcasts:
        gone = gone.where(BroadcastStat.broadcast_id.not_in([b.id for b in broadcasts]))
    result.removed = rowcount(session.execute(gone))
    session.flush()

    campaign_days = _campaign_days(session, when, rows, windows, now, result)
    result.with_notes = sum(1 for r in rows if r.note)
    result.campaigns = len(campaign_days)
    spent = day_cost(rows)  # the one definition of a day's cost (docs/money.md)
    result.cost, result.unattributed_cost = str(spent.total), str(spent.unattributed)
    result.voluum_calls = windows.calls if windows is not None else 0

    record = session.get(BroadcastDay, when)
    if record is None:
        record = BroadcastDay(day=when, imports=0)
        session.add(record)
    old_files = [f for f in (record.csv_file_id, record.xlsx_file_id) if f]
    csv_file, xlsx_file = write_history(session, actor, when, rows)
    record.broadcasts, record.with_notes, record.campaigns = len(rows), result.with_notes, result.campaigns
    record.cost, record.unattributed_cost = spent.total, spent.unattributed
    record.recipients = sum(r.recipients for r in rows)
    record.voluum, record.voluum_error = result.voluum, result.voluum_error
    record.csv_file_id, record.xlsx_file_id = csv_file.id, xlsx_file.id
    record.job_id = job_id
    record.imports = (record.imports or 0) + 1
    record.imported_by, record.imported_at = actor.username[:64], now
    result.csv_file_id, result.xlsx_file_id = csv_file.id, xlsx_file.id
    session.flush()
    storage = get_storage()
    for file_id in old_files:
        storage.delete(session, actor, get_file(session, file_id))
    audit(session, actor, "broadcasts.day.import", "broadcast_day", str(when),
          {k: v for k, v in result.as_dict().items() if k not in ("csv_file_id", "xlsx_file_id")})
    log.info("broadcasts.day.imported", day=str(when), broadcasts=result.broadcasts, notes=result.with_notes,
             campaigns=result.campaigns, voluum=result.voluum, voluum_calls=result.voluum_calls)
    return result


def _windows(voluum: Fetch | None, result: ImportResult) -> VoluumWindows | None:
    if voluum is not None:
        return VoluumWindows(voluum)
    from phoneops.voluum.provider import get_client as voluum_client
    from phoneops.voluum.provider import is_configured as voluum_configured

    if not voluum_configured():
        result.voluum, result.voluum_error = "off", "Voluum is not configured: no visits or conversions"
        return None
    return VoluumWindows(voluum_fetch(voluum_client()))


def _read(windows: VoluumWindows, window: tuple[datetime, datetime], campaign_id: str,
          result: ImportResult) -> CampaignNumbers | None:
    if result.voluum == "failed":
        return None
    try:
        return windows.numbers(*window, campaign_id)
    except ProviderError as exc:
        if is_transient(exc):
            raise
        result.voluum, result.voluum_error = "failed", exc.message[:2000]
        log.warning("broadcasts.day.voluum_failed", day=result.day, error=exc.message)
        return None


def _campaign_days(session: Session, day: date, rows: Sequence[BroadcastStat], windows: VoluumWindows | None,
                   now: datetime, result: ImportResult) -> list[BroadcastCampaignDay]:
    session.execute(delete(BroadcastCampaignDay).where(BroadcastCampaignDay.day == day))
    grouped: dict[str, list[BroadcastStat]] = {}
    for row in rows:
        if row.campaign_id:
            grouped.setdefault(row.campaign_id, []).append(row)
    made: list[BroadcastCampaignDay] = []
    for campaign_id, members in sorted(grouped.items()):
        spans = [w for w in (broadcast_window(r.send_at, now) for r in members) if w is not None]
        window = (min(s for s, _ in spans), max(e for _, e in spans)) if spans else None
        numbers = _read(windows, window, campaign_id, result) if windows is not None and window else None
        item = BroadcastCampaignDay(
            day=day, campaign_id=campaign_id, broadcasts=len(members),
            campaign_name=next((r.campaign_name for r in members if r.campaign_name), numbers.name if numbers else ""),
            cost=day_cost(members).total,
            recipients=sum(r.recipients for r in members), unique_clicks=sum(r.unique_clicks for r in members),
            total_clicks=sum(r.total_clicks for r in members), delivered=sum(r.delivered for r in members),
            sent=sum(r.sent for r in members), undelivered=sum(r.undelivered for r in members),
            rejected=sum(r.rejected for r in members),
            window_from=window[0] if window and numbers else None, window_to=window[1] if window and numbers else None,
        )
        _set_voluum(item, numbers)
        session.add(item)
        made.append(item)
    session.flush()
    return made


# --- history files ------------------------------------------------------------------------------------


def _pct(value: Decimal | None) -> str:
    return "" if value is None else f"{value:.2f}%"


def history_row(row: BroadcastStat) -> list[Any]:
    """One history line: the original's columns (CTR and rates as `x.xx%`) and ours."""

    def num(value: int | None) -> Any:
        return "" if value is None else value

    return [
        row.campaign_id or "", row.campaign_name, row.broadcast_id, row.name, row.group_name,
        row.send_at.strftime("%Y-%m-%d %H:%M:%S") if row.send_at else "", row.status, num(row.link_id),
        "" if row.estimated_price is None else f"{row.estimated_price:.4f}",
        "" if row.price is None else f"{row.price:.4f}", row.recipients, row.unique_clicks, row.total_clicks,
        _pct(row.ctr), row.delivered, row.sent, row.undelivered, row.rejected, num(row.voluum_visits),
        num(row.voluum_unique_visits), num(row.voluum_regs), num(row.voluum_ftds), _pct(row.click_to_reg),
        _pct(row.reg_to_ftd), row.note or "", row.message_body,
    ]


def history_csv(rows: Iterable[BroadcastStat]) -> bytes:
    return "".join(csv_lines(HISTORY_COLUMNS, (history_row(r) for r in rows))).encode("utf-8")


def _xlsx_value(column: str, value: Any) -> Any:
    if isinstance(value, int) or value == "":
        return value
    text = str(value)
    if column in PERCENT_COLUMNS and text.endswith("%"):
        return float(text[:-1])
    if column in ("Estimated Price", "Price"):
        return float(text)
    return neutralise(text)  # a text cell never becomes a formula


def history_xlsx(rows: Iterable[BroadcastStat], day: date) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    workbook = Workbook(write_only=True)
    stamp = datetime.combine(day, time())
    workbook.properties.created = workbook.properties.modified = stamp  # same day, same properties
    sheet = workbook.create_sheet(title=f"Broadcasts {day.isoformat()}")
    sheet.append(list(HISTORY_COLUMNS))
    for row in rows:
        cells = []
        for column, value in zip(HISTORY_COLUMNS, history_row(row), strict=True):
            cell = WriteOnlyCell(sheet, value=_xlsx_value(column, value))
            if column in PERCENT_COLUMNS and cell.value != "":
                cell.number_format = '0.00"%"'
            cells.append(cell)
        sheet.append(cells)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def write_history(session: Session, actor: Principal, day: date, rows: Sequence[BroadcastStat]
                  ) -> tuple[StoredFile, StoredFile]:
    storage = get_storage()
    name = f"broadcasts_{day.isoformat()}"
    csv_file = storage.save_bytes(session, actor, history_csv(rows), kind=FILE_KIND, original_name=f"{name}.csv",
                                  content_type="text/csv")
    xlsx_file = storage.save_bytes(session, actor, history_xlsx(rows, day), kind=FILE_KIND,
                                   original_name=f"{name}.xlsx", content_type=XLSX_TYPE)
    return csv_file, xlsx_file


# --- starting and reading -----------------------------------------------------------------------------


def start_import(session: Session, actor: Principal, day: date | str, *, push_costs: bool = True) -> Job:
    """Queue the import of one day (then, by default, the day's cost push); one import per day at a time."""
    from phoneops.broadcasts.provider import credentials

    when = past_day(day)
    credentials()  # 503 now rather than a failed job
    running = active_job_for(session, KIND, "day", when.isoformat())
    if running is not None:
        raise Conflict(f"{when} is being imported already (job {running.id})", details={"job_id": running.id})
    job = create_job(session, actor, KIND, {"day": when.isoformat(), "push_costs": push_costs,
                                             "actor": actor.username},
                     title=f"Broadcasts of {when}", total=2 if push_costs else 1)
    audit(session, actor, "broadcasts.day.start", "job", job.id, {"day": str(when), "push_costs": push_costs})
    return job


def recent_days(session: Session, limit: int = 60) -> list[BroadcastDay]:
    return list(session.scalars(select(BroadcastDay).order_by(BroadcastDay.day.desc()).limit(max(1, min(limit, 2000)))))


def get_day(session: Session, day: date | str) -> BroadcastDay:
    from phoneops.broadcasts.provider import parse_day

    when = parse_day(day)
    found = session.get(BroadcastDay, when)
    if found is None:
        raise NotFound(f"broadcasts of {when} have not been imported")
    return found


def day_stats(session: Session, day: date | str, search: str | None = None) -> list[BroadcastStat]:
    from phoneops.broadcasts.provider import parse_day

    query = select(BroadcastStat).where(BroadcastStat.day == parse_day(day))
    if search and search.strip():
        query = query.where(BroadcastStat.name.ilike(f"%{_like(search.strip())}%", escape="\\"))
    return list(session.scalars(query.order_by(BroadcastStat.send_at, BroadcastStat.broadcast_id)))


def campaign_days(session: Session, day: date | str) -> list[BroadcastCampaignDay]:
    from phoneops.broadcasts.provider import parse_day

    query = select(BroadcastCampaignDay).where(BroadcastCampaignDay.day == parse_day(day))
    return list(session.scalars(query.order_by(BroadcastCampaignDay.campaign_id)))


def history_file(session: Session, day: date | str, fmt: str) -> StoredFile:
    record = get_day(session, day)
    file_id = {"csv": record.csv_file_id, "xlsx": record.xlsx_file_id}.get(fmt.lower())
    if fmt.lower() not in ("csv", "xlsx"):
        raise NotFound(f"no history format {fmt!r} (csv or xlsx)")
    if file_id is None:
        raise NotFound(f"the history file of {record.day} is missing; import the day again")
    return get_file(session, file_id)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def import_jobs(session: Session, limit: int = 10) -> list[Job]:
    return list(session.scalars(select(Job).where(Job.kind == KIND).order_by(Job.created_at.desc()).limit(limit)))


def broadcasts_for(session: Session, campaign_days: Iterable[tuple[str, date]]) -> list[dict[str, Any]]:
    """Broadcasts whose link led to a campaign on a day a number clicked or converted there: the broadcasts
    that (as far as is known) reached the number. Newest first."""
    wanted = {(campaign, day) for campaign, day in campaign_days if campaign}
    if not wanted:
        return []
    rows = session.scalars(
        select(BroadcastStat).where(BroadcastStat.campaign_id.in_({c for c, _ in wanted}),
                                    BroadcastStat.day.in_({d for _, d in wanted}))
        .order_by(BroadcastStat.day.desc(), BroadcastStat.broadcast_id)
    )
    return [{"broadcast_id": r.broadcast_id, "day": r.day.isoformat(), "name": r.name, "group_name": r.group_name,
             "campaign_id": r.campaign_id, "campaign_name": r.campaign_name, "status": r.status,
             "recipients": r.recipients} for r in rows if (r.campaign_id, r.day) in wanted]
