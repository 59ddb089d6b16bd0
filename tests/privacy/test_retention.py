"""Retention: raw tracker events and raw HLR rows past their age are purged in batches; derived data stays;
0 keeps forever; dry run changes nothing; the daily task runs it; every run is audited."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from phoneops.core.db import session_scope
from phoneops.core.models import AuditEvent
from phoneops.core.security import SYSTEM
from phoneops.numbers.vault import get_vault
from phoneops.privacy import retention
from phoneops.privacy.cli import app

runner = CliRunner()
NOW = datetime.now(UTC)


@pytest.fixture
def keep(db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set the retention settings (days) for the test; DATABASE_URL points the CLI at the test database."""
    from phoneops.settings import reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)

    def set_days(tracker: int, hlr: int) -> None:
        monkeypatch.setenv("RETENTION_TRACKER_EVENTS_DAYS", str(tracker))
        monkeypatch.setenv("RETENTION_HLR_RAW_DAYS", str(hlr))
        reset_settings_cache()

    set_days(30, 10)
    yield set_days
    monkeypatch.undo()
    reset_settings_cache()


def _seed() -> None:
    """Raw rows on both sides of the cut-offs (30 days tracker, 10 days HLR), and derived rows that stay."""
    from phoneops.hlr.models import HlrLookup, HlrLookupItem, HlrResult
    from phoneops.numbers.lists import Authority, Verdict, apply_verdicts
    from phoneops.ongage.models import OngageConversion
    from phoneops.voluum.models import Conversion, DeadLetter, LiveEvent, LiveRawEvent, TrafficDay, TrafficRow

    vault = get_vault()
    index = vault.index("+447400123456")
    old, new = NOW - timedelta(days=31), NOW - timedelta(days=29)
    with session_scope() as s:
        apply_verdicts(s, SYSTEM, [Verdict("+447400123456", "blacklist", Authority.auto, reason="OS", source="t")])
        for n, day in enumerate([old, old, new]):
            s.add(TrafficRow(day=day.date(), blind_index=index, number_kind="phone", category="blacklist",
                             ip=f"203.0.113.{n}"))
        s.add(TrafficDay(day=old.date(), rows=2))
        for n, (postback, synced) in enumerate([(old, NOW), (new, NOW), (None, old), (None, NOW)]):
            s.add(Conversion(click_id=f"c{n}", kind="REG", number_kind="phone", blind_index=index,
                             postback_at=postback, synced_at=synced))
        s.flush()
        first = s.scalar(select(Conversion.id).where(Conversion.click_id == "c0"))
        assert first is not None
        s.add(OngageConversion(conversion_id=first, country="GB", kind="REG"))
        for n, (event_at, received) in enumerate([(old, NOW), (old, NOW), (new, NOW), (None, old), (None, new)]):
            s.add(LiveRawEvent(source="sqs", message_id=f"m{n}", event_at=event_at, received_at=received,
                               number_kind="phone", blind_index=index))
        s.add(LiveEvent(blind_index=index, event_at=old))  # derived: the latest event per number stays
        s.add(DeadLetter(source="sqs", error="bad", body="x", received_at=old))
        s.add(DeadLetter(source="sqs", error="bad", body="y", received_at=new))
        lookup = HlrLookup(title="t", source_kind="list", created_by="t")
        s.add(lookup)
        s.flush()
        for n, at in enumerate([NOW - timedelta(days=11), NOW - timedelta(days=11), NOW - timedelta(days=9)]):
            result = HlrResult(blind_index=vault.index(f"+44740012345{n}"), lookup_id=lookup.id, looked_up_at=at)
            s.add(result)
            s.flush()
            s.add(HlrLookupItem(lookup_id=lookup.id, blind_index=result.blind_index, sealed=b"x" * 40,
                                state="done", result_id=result.id, outcome="clean"))


def _counts() -> dict[str, int]:
    from phoneops.hlr.models import HlrLookupItem, HlrResult
    from phoneops.numbers.models import PhoneNumber
    from phoneops.ongage.models import OngageConversion
    from phoneops.voluum.models import Conversion, DeadLetter, LiveEvent, LiveRawEvent, TrafficDay, TrafficRow

    with session_scope() as s:
        counts = {m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0)
                  for m in (TrafficRow, TrafficDay, Conversion, OngageConversion, LiveRawEvent, LiveEvent,
                            DeadLetter, HlrResult, HlrLookupItem, PhoneNumber)}
        counts["items_linked"] = int(s.scalar(select(func.count()).select_from(HlrLookupItem)
                                              .where(HlrLookupItem.result_id.is_not(None))) or 0)
    return counts


SEEDED = {"voluum_traffic_rows": 3, "voluum_traffic_days": 1, "voluum_conversions": 4, "ongage_conversions": 1,
          "voluum_live_raw_events": 5, "voluum_live_events": 1, "voluum_dead_letters": 2, "hlr_results": 3,
          "hlr_lookup_items": 3, "phone_numbers": 1, "items_linked": 3}


def test_purge_removes_only_raw_rows_past_their_age(keep: Any) -> None:
    _seed()
    assert _counts() == SEEDED
    dry = runner.invoke(app, ["purge", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "would purge" in dry.output and "voluum_live_raw_events" in dry.output
    assert _counts() == SEEDED  # a dry run changes nothing
    summary = retention.purge(SYSTEM, batch=1)  # one row per transaction: the batching loop is exercised
    assert summary.deleted == {"voluum_traffic_rows": 2, "voluum_conversions": 2, "voluum_live_raw_events": 3,
                               "voluum_dead_letters": 1, "hlr_results": 2}
    assert _counts() == {**SEEDED, "voluum_traffic_rows": 1, "voluum_conversions": 2, "ongage_conversions": 0,
                         "voluum_live_raw_events": 2, "voluum_dead_letters": 1, "hlr_results": 1,
                         "items_linked": 1}
    with session_scope() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "privacy.retention.purge")).one()
        assert event.detail["deleted"]["hlr_results"] == 2 and event.detail["dry_run"] is False
    again = runner.invoke(app, ["purge"])  # nothing left past the cut-off
    assert again.exit_code == 0, again.output
    assert "purged" in again.output
    assert _counts()["voluum_live_raw_events"] == 2


def test_zero_keeps_forever_and_the_daily_task_purges(keep: Any) -> None:
    from phoneops.core.jobs import registered_periodic, run_periodic
    from phoneops.registry import load_domains

    load_domains()
    _seed()
    keep(0, 0)
    off = runner.invoke(app, ["purge"])
    assert off.exit_code == 0 and "retention is off" in off.output
    assert run_periodic("privacy.retention", NOW) is True
    assert _counts() == SEEDED
    keep(0, 10)  # HLR only
    assert registered_periodic()["privacy.retention"].hour == "3"
    assert run_periodic("privacy.retention", NOW + timedelta(days=1)) is True
    assert _counts() == {**SEEDED, "hlr_results": 1, "items_linked": 1}
    assert run_periodic("privacy.retention", NOW + timedelta(days=1)) is False  # once per slot
