"""Traffic sync: Voluum's report per day, every number classified by the OS rules.

For each day (UTC midnight to midnight; month and year boundaries are just days) and each traffic source in
`VOLUUM_TRAFFIC_SOURCE_IDS` (all traffic when none is set), the report grouped by custom variable 1, IP,
browser version and OS version is read page by page. Then, in ONE transaction with the job's checkpoint:

- the day's raw rows are replaced (re-syncing a day never duplicates it);
- custom variable 1 is read: link tokens decrypted, `{{phoneNumber}}` / empty / unreadable values counted
  and skipped (their rows are kept, marked `skipped`);
- every row with a number is classified by the OS rules in force, whatever its unique-visit count (the
  original dropped rows with two or more unique visits); a row whose OS field names no OS is classified by
  the latest User-Agent the tracker sent for that number (`voluum/agents.py`: the report carries none);
- each number gets one automatic verdict for the day, the most severe of its rows, with that row's evidence;
  the number core decides precedence (an automatic verdict never lifts a manual or HLR one);
- the day's result (rows, numbers per list, skipped values) is stored.

A worker killed mid-day loses that day's transaction only; the job resumes at that day.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import structlog
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import Conflict
from phoneops.core.http import ProviderError
from phoneops.core.jobs import ACTIVE, JobContext, create_job
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
from phoneops.numbers.osrules import ListStatus, OsRule
from phoneops.numbers.osrules import Verdict as OsVerdict
from phoneops.numbers.rules import current_rules
from phoneops.settings import get_settings
from phoneops.voluum.agents import click_verdict, latest_agents, names_no_os
from phoneops.voluum.client import VoluumClient
from phoneops.voluum.facts import click_days
from phoneops.voluum.models import TrafficDay, TrafficRow
from phoneops.voluum.provider import (
    ERASED,
    PhoneReader,
    chunks,
    credentials,
    day_range,
    day_start,
    get_client,
    job_actor,
    park_or_fail,
    parse_day,
    phone_reader,
    text,
    to_int,
)

log = structlog.get_logger("phoneops.voluum.traffic")

KIND = "voluum.traffic"
GROUP_BY = ("customVariable1", "ip", "browserVersion", "osVersion")
CATEGORIES = ("blacklist", "monitor", "whitelist", "unknown")
SKIPPED = "skipped"
REASON, SOURCE = "OS_VERSION", "VOLUUM"
INSERT_BATCH = 5000
_RANK = {"unknown": 0, "whitelist": 1, "monitor": 2, "blacklist": 3}
_COLUMNS = {"customVariable1", "ip", "osVersion", "browserVersion", "visits", "uniqueVisits", "clicks",
            "conversions", "revenue", "cost"}


@dataclass
class DaySummary:
    day: str
    rows: int = 0
    phone_rows: int = 0
    numbers: int = 0
    per_list: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    skipped: int = 0
    skipped_detail: dict[str, int] = field(default_factory=dict)
    changed: int = 0  # list changes this sync made (not stored with the day: a re-sync changes nothing)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- starting ------------------------------------------------------------------------------------------


def start_sync(session: Session, actor: Principal, start: date | str, end: date | str | None = None) -> Job:
    """Queue a traffic sync of the days `start`..`end` (inclusive; one day when `end` is None)."""
    first = parse_day(start, "from")
    last = parse_day(end, "to") if end is not None else first
    days = day_range(first, last)
    credentials()  # not configured: say so now, not in the job
    running = session.scalar(select(Job.id).where(Job.kind == KIND, Job.status.in_(ACTIVE)).limit(1))
    if running is not None:
        raise Conflict(f"a traffic sync is already running (job {running}); wait for it to end")
    label = f"{first}" if first == last else f"{first} to {last}"
    job = create_job(session, actor, KIND, {"from": first.isoformat(), "to": last.isoformat(),
                                             "actor": actor.username},
                     title=f"Voluum traffic {label}", total=len(days))
    audit(session, actor, "voluum.traffic.start", "job", job.id, {"from": str(first), "to": str(last)})
    return job


# --- fetching ------------------------------------------------------------------------------------------


def fetch_day(
    client: VoluumClient, day: date, sources: Sequence[str] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Every report row of a day as (traffic source id, row); all traffic when no source is given."""
    settings = get_settings()
    wanted = list(sources if sources is not None else settings.voluum_traffic_source_ids) or [""]
    start = day_start(day)
    rows: list[tuple[str, dict[str, Any]]] = []
    for source in wanted:
        filters = {"trafficSourceId": source} if source else None
        for row in client.iter_report_rows(start, start + timedelta(days=1), group_by=GROUP_BY,
                                           currency=settings.voluum_currency, tz=settings.voluum_timezone,
                                           filters=filters):
            rows.append((source, row))
    return rows


# --- storing and classifying ---------------------------------------------------------------------------


def _money(value: Any) -> Decimal:
    try:
        number = Decimal(str(value if value not in (None, "") else 0))
    except InvalidOperation:
        return Decimal(0)
    return number.quantize(Decimal("0.0001")) if number.is_finite() else Decimal(0)


def store_day(
    session: Session,
    actor: Principal,
    day: date,
    rows: Iterable[tuple[str, dict[str, Any]]],
    *,
    job_id: str | None = None,
    rules: Sequence[OsRule] | None = None,
    reader: PhoneReader | None = None,
    sources: Sequence[str] | None = None,
) -> DaySummary:
    """Replace a day's raw rows, classify its numbers, apply the verdicts, record the day's result."""
    rules = list(rules) if rules is not None else current_rules(session)
    reader = reader or phone_reader()
    reader.exclude_erased(session)
    rows = list(rows)
    reader.prime(row.get("customVariable1") for _, row in rows)
    summary = DaySummary(day=day.isoformat())
    skipped: Counter[str] = Counter()
    best: dict[bytes, tuple[int, str, dict[str, Any], str]] = {}  # index -> (rank, category, evidence, e164)
    verdicts_by_os: dict[tuple[str, str | None], OsVerdict] = {}
    blank = (reader.read(row.get("customVariable1")).index for _, row in rows
             if names_no_os(text(row.get("osVersion"), 120)))
    agents = latest_agents(session, (index for index in blank if index is not None))
    session.execute(delete(TrafficRow).where(TrafficRow.day == day))

    def prepared() -> Iterator[dict[str, Any]]:
        for source, row in rows:
            summary.rows += 1
            value = reader.read(row.get("customVariable1"))
            os_text = text(row.get("osVersion"), 120)
            if value.index is None or value.e164 is None:
                skipped[value.kind] += 1
                category = SKIPPED
            else:
                summary.phone_rows += 1
                agent = agents.get(value.index) if names_no_os(os_text) else None
                verdict = verdicts_by_os.get((os_text, agent))
                if verdict is None:
                    verdict = verdicts_by_os[(os_text, agent)] = click_verdict(os_text, agent, rules)
                category = verdict.category
                evidence = {"os": verdict.family, "version": verdict.version, "os_text": os_text,
                            "browser": text(row.get("browserVersion"), 120), "ip": text(row.get("ip"), 64),
                            "day": day.isoformat()}
                if agent is not None:
                    evidence["user_agent"] = agent
                rank = _RANK[category]
                if value.index not in best or rank > best[value.index][0]:
                    best[value.index] = (rank, category, evidence, value.e164)
            yield {
                "day": day, "traffic_source_id": text(source, 64), "blind_index": value.index,
                "number_kind": value.kind, "country": value.country,
                "ip": "" if value.kind == ERASED else text(row.get("ip"), 64),
                "os_version": os_text, "browser_version": text(row.get("browserVersion"), 120),
                "visits": to_int(row.get("visits")), "unique_visits": to_int(row.get("uniqueVisits")),
                "clicks": to_int(row.get("clicks")), "conversions": to_int(row.get("conversions")),
                "revenue": _money(row.get("revenue")), "cost": _money(row.get("cost")), "category": category,
                "metrics": {} if value.kind == ERASED else {k: v for k, v in row.items() if k not in _COLUMNS},
            }

    for batch in chunks(prepared(), INSERT_BATCH):
        session.execute(insert(TrafficRow), batch)
    verdicts = [
        Verdict(e164, None if category == "unknown" else ListStatus(category).value, Authority.auto,
                reason=REASON, source=SOURCE, evidence=evidence)
        for _, category, evidence, e164 in best.values()
    ]
    result = apply_verdicts(session, actor, verdicts)
    summary.numbers = len(best)
    for _, category, _, _ in best.values():
        summary.per_list[category] += 1
    summary.skipped = sum(skipped.values())
    summary.skipped_detail = dict(sorted(skipped.items()))
    summary.changed = result.changed
    _record_day(session, actor, day, summary, job_id, sources)
    log.info("voluum.traffic.day", day=summary.day, rows=summary.rows, numbers=summary.numbers,
             skipped=summary.skipped, changed=summary.changed)
    return summary


def _record_day(session: Session, actor: Principal, day: date, summary: DaySummary, job_id: str | None,
                sources: Sequence[str] | None) -> None:
    record = session.get(TrafficDay, day)
    if record is None:
        record = TrafficDay(day=day)
        session.add(record)
    record.rows, record.phone_rows, record.numbers = summary.rows, summary.phone_rows, summary.numbers
    record.per_list = dict(summary.per_list)
    record.skipped, record.skipped_detail = summary.skipped, dict(summary.skipped_detail)
    wanted = sources if sources is not None else get_settings().voluum_traffic_source_ids
    record.traffic_sources = list(wanted)
    record.job_id, record.synced_by, record.synced_at = job_id, actor.username[:64], utcnow()


def sync_day(session: Session, actor: Principal, day: date, client: VoluumClient | None = None) -> DaySummary:
    """Fetch and store one day in the caller's transaction (the job does the same, day after day)."""
    rows = fetch_day(client or get_client(), day)
    return store_day(session, actor, day, rows)


# --- the job -------------------------------------------------------------------------------------------


def _add(totals: dict[str, Any], summary: DaySummary) -> dict[str, Any]:
    out = dict(totals)
    for key in ("rows", "phone_rows", "numbers", "skipped", "changed"):
        out[key] = int(out.get(key, 0)) + int(getattr(summary, key))
    for key, value in summary.per_list.items():
        out[key] = int(out.get(key, 0)) + value
    out["days"] = int(out.get("days", 0)) + 1
    return out


def run_job(ctx: JobContext) -> dict[str, Any]:
    """The `voluum.traffic` job: one committed step per day; resumes at the first day not committed."""
    days = day_range(parse_day(ctx.params["from"]), parse_day(ctx.params["to"]))
    actor = job_actor(ctx)
    client = get_client()
    sources = list(get_settings().voluum_traffic_source_ids)
    position = int(ctx.checkpoint.get("next", 0))
    totals: dict[str, Any] = dict(ctx.checkpoint.get("totals", {}))
    for number in range(position, len(days)):
        day = days[number]
        try:
            rows = fetch_day(client, day, sources)
        except ProviderError as exc:
            raise park_or_fail(ctx, exc) from exc
        with session_scope() as session:
            summary = store_day(session, actor, day, rows, job_id=ctx.job_id, sources=sources)
            totals = _add(totals, summary)
            ctx.step(session, checkpoint={"next": number + 1, "totals": totals}, done=number + 1,
                     total=len(days), counters=totals,
                     message=f"{day}: {summary.rows} rows, {summary.numbers} numbers, {summary.skipped} skipped")
    return {"from": ctx.params["from"], "to": ctx.params["to"], **totals}


# --- reading -------------------------------------------------------------------------------------------


def recent_days(session: Session, limit: int = 60) -> list[TrafficDay]:
    return list(session.scalars(select(TrafficDay).order_by(TrafficDay.day.desc()).limit(max(1, min(limit, 1000)))))


def day_result(session: Session, day: date | str) -> TrafficDay | None:
    return session.get(TrafficDay, parse_day(day))


def row_count(session: Session, day: date) -> int:
    return session.scalar(select(func.count(TrafficRow.id)).where(TrafficRow.day == day)) or 0


def clicks_per_number_days(start: date, end: date) -> Any:
    """Tracker clicks of numbers (by blind index) per day in [start, end], purged rows included
    (docs/retention.md): a subquery with blind_index, day, clicks (for joins by blind index: no plaintext
    leaves the database)."""
    return click_days(start, end)
