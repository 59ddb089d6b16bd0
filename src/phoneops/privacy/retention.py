"""Retention: raw tracker events and raw HLR rows older than a configured age are purged, in batches.

- `RETENTION_TRACKER_EVENTS_DAYS`: Voluum traffic rows (by day), conversions (by postback time, else sync time;
  their Ongage sync state goes with them), raw live events (by event time, else receipt time) and live-event
  dead letters (by receipt time). What was derived from them stays: list statuses and their history, day
  summaries (`voluum_traffic_days`), the latest live event per number, and the facts that filters, reports
  and a number's story read (`phoneops.voluum.facts`, docs/retention.md): per number whether and when it
  converted (REG/FTD, offer, country, campaign, day) and the OS versions, visits and days it was seen with.
  So old depositors never come back as clean, and lists and reports read the same after a purge.
- `RETENTION_HLR_RAW_DAYS`: HLR result rows (the provider's per-number answers) by lookup time. Lookups, their
  counters and their files stay; a lookup item loses its link to the purged result.

0 keeps forever. Each batch is its own short transaction (no huge transaction, no long lock); the run ends with
one audit entry holding the summary. `dry_run` counts what would go and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Select, and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope, utcnow
from phoneops.core.security import Principal
from phoneops.settings import get_settings

log = structlog.get_logger("phoneops.privacy.retention")

BATCH = 5000


@dataclass
class PurgeSummary:
    dry_run: bool
    tracker_days: int
    hlr_days: int
    tracker_cutoff: str | None = None
    hlr_cutoff: str | None = None
    deleted: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"dry_run": self.dry_run, "tracker_days": self.tracker_days, "hlr_days": self.hlr_days,
                "tracker_cutoff": self.tracker_cutoff, "hlr_cutoff": self.hlr_cutoff,
                "deleted": dict(self.deleted)}


def _targets(tracker_cutoff: datetime | None, hlr_cutoff: datetime | None) -> list[tuple[str, Any, Any]]:
    """(name, model, condition) for each kind of raw row past its cut-off."""
    from phoneops.hlr.models import HlrResult
    from phoneops.voluum.models import Conversion, DeadLetter, LiveRawEvent, TrafficRow

    targets: list[tuple[str, Any, Any]] = []
    if tracker_cutoff is not None:
        targets += [
            ("voluum_traffic_rows", TrafficRow, TrafficRow.day < tracker_cutoff.date()),
            ("voluum_conversions", Conversion,
             or_(Conversion.postback_at < tracker_cutoff,
                 and_(Conversion.postback_at.is_(None), Conversion.synced_at < tracker_cutoff))),
            ("voluum_live_raw_events", LiveRawEvent,
             or_(LiveRawEvent.event_at < tracker_cutoff,
                 and_(LiveRawEvent.event_at.is_(None), LiveRawEvent.received_at < tracker_cutoff))),
            ("voluum_dead_letters", DeadLetter, DeadLetter.received_at < tracker_cutoff),
        ]
    if hlr_cutoff is not None:
        targets.append(("hlr_results", HlrResult, HlrResult.looked_up_at < hlr_cutoff))
    return targets


def _before_delete(session: Session, name: str, ids: list[Any]) -> None:
    """The facts the rows carry are kept (same transaction); dependent rows go first (explicit, not left to
    each backend's cascade)."""
    if name == "voluum_conversions":
        from phoneops.ongage.models import OngageConversion
        from phoneops.voluum.facts import fold_conversions

        fold_conversions(session, ids)
        session.execute(delete(OngageConversion).where(OngageConversion.conversion_id.in_(ids)))
    elif name == "voluum_traffic_rows":
        from phoneops.voluum.facts import fold_traffic

        fold_traffic(session, ids)
    elif name == "hlr_results":
        from phoneops.hlr.models import HlrLookupItem

        session.execute(update(HlrLookupItem).where(HlrLookupItem.result_id.in_(ids)).values(result_id=None))


def cutoffs(now: datetime | None = None) -> tuple[datetime | None, datetime | None]:
    settings = get_settings()
    now = now or utcnow()
    tracker_days, hlr_days = settings.retention_tracker_events_days, settings.retention_hlr_raw_days
    tracker = now - timedelta(days=tracker_days) if tracker_days else None
    hlr = now - timedelta(days=hlr_days) if hlr_days else None
    return tracker, hlr


def purge(actor: Principal, *, dry_run: bool = False, now: datetime | None = None, batch: int = BATCH) -> PurgeSummary:
    """Purge (or with `dry_run` count) raw rows past their retention; batched; one audit entry at the end."""
    settings = get_settings()
    tracker_cutoff, hlr_cutoff = cutoffs(now)
    summary = PurgeSummary(dry_run, settings.retention_tracker_events_days, settings.retention_hlr_raw_days,
                           tracker_cutoff.isoformat() if tracker_cutoff else None,
                           hlr_cutoff.isoformat() if hlr_cutoff else None)
    targets = _targets(tracker_cutoff, hlr_cutoff)
    for name, model, condition in targets:
        if dry_run:
            with session_scope() as session:
                count = session.scalar(select(func.count()).select_from(model).where(condition))
            summary.deleted[name] = int(count or 0)
            continue
        total = 0
        query: Select[Any] = select(model.id).where(condition).order_by(model.id).limit(batch)
        while True:
            with session_scope() as session:
                ids = list(session.scalars(query))
                if not ids:
                    break
                _before_delete(session, name, ids)
                session.execute(delete(model).where(model.id.in_(ids)))
                total += len(ids)
            if len(ids) < batch:
                break
        summary.deleted[name] = total
    if targets and not dry_run:
        with session_scope() as session:
            audit(session, actor, "privacy.retention.purge", None, None, summary.as_dict())
    log.info("privacy.retention", **summary.as_dict())
    return summary
