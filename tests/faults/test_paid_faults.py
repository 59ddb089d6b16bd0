"""Paid providers at 20% mixed faults (GSM Fusion IMEI batch, hlrlookup.com batch and real-time lookups).

Half the 5xx/timeouts hit after the provider did the work and charged. Every job still finishes, every
result the product stores is the provider's, and nothing is paid twice: what the product cannot know
without paying again (an answer lost after a charge, with no free way to ask) is flagged for review,
never resent.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import select
from stdnum import luhn

from faults.conftest import FAULTS, Worker, wait_done
from phoneops.core.db import session_scope
from phoneops.core.security import SYSTEM
from phoneops.simulators._server import SimAdmin

SERVICE = "1739"


def imei(serial: int) -> str:
    body = f"35442211{serial:06d}"
    return body + luhn.calc_check_digit(body)


# --- GSM Fusion ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [7, 11])
def test_imei_batch_at_20_percent_faults_places_each_imei_at_most_once(
    gsm: tuple[str, SimAdmin], env: object, worker: Worker, seed: int
) -> None:
    from phoneops.imei import inputs, submission
    from phoneops.imei.catalogue import store_services
    from phoneops.imei.client import Service
    from phoneops.imei.models import ImeiOrder
    from phoneops.simulators.gsm_fusion import DEFAULT_API_KEY, DEFAULT_USER

    url, sim = gsm
    sim.reset()
    env(GSM_FUSION_BASE_URL=url, GSM_FUSION_USERNAME=DEFAULT_USER, GSM_FUSION_API_KEY=DEFAULT_API_KEY,  # type: ignore[operator]
        IMEI_CONCURRENCY="6")
    with session_scope() as session:
        store_services(session, [Service(SERVICE, "Apple", "iPhone check", Decimal("0.08"), "1 min", "")])
    sim.configure(faults={**FAULTS, "seed": seed})
    values = [imei(i) for i in range(60)]
    with session_scope() as session:
        batch, _ = submission.create_batch(session, SYSTEM, [inputs.InputRow(v) for v in values], SERVICE)
        batch_id, job_id = batch.id, batch.job_id
    assert job_id is not None
    job = wait_done(job_id)
    assert job.status == "succeeded", job.error

    stats = sim.stats()
    injected = stats["injected"]
    assert injected["faults"] >= 10 and any(k.endswith("_after") for k in injected), injected
    assert stats["max_orders_per_imei"] <= 1, stats["orders_per_imei"]  # 0 double-paid
    at_provider = {o["imei"]: o["order_id"] for o in sim.orders()}
    with session_scope() as session:
        rows = {r.imei: r for r in session.scalars(select(ImeiOrder).where(ImeiOrder.batch_id == batch_id))}
    assert set(rows) == set(values)
    for value, row in rows.items():
        assert row.state in ("placed", "review"), (value, row.state, row.error)
        if row.state == "placed":  # the product's order is the provider's order
            assert at_provider.get(value) == row.order_id
        else:  # lost answer: flagged, never resent; the provider holds at most the one order
            assert row.error
    placed = sum(r.state == "placed" for r in rows.values())
    assert placed >= 40  # most orders went through; the others are honest reviews
    assert set(at_provider) >= {v for v, r in rows.items() if r.state == "placed"}
    assert job.result["placed"] == placed
    paid = Decimal("1000.00") - Decimal(stats["balance"][DEFAULT_USER])
    assert paid == Decimal("0.08") * len(at_provider)  # charged once per order the provider holds


# --- hlrlookup.com -------------------------------------------------------------------------------------


def _hlr_env(url: str, env: object) -> None:
    from phoneops.hlr import risky
    from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET

    env(HLR_BASE_URL=url, HLR_BATCH_BASE_URL=url, HLR_API_KEY=DEFAULT_API_KEY,  # type: ignore[operator]
        HLR_API_SECRET=DEFAULT_API_SECRET, HLR_POLL_EVERY_SECONDS="0.05", HLR_POLL_MAX_SECONDS="60")
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)


def _start_lookup(numbers: list[str], **options: object) -> tuple[int, str]:
    from phoneops.core import storage
    from phoneops.hlr.lookups import FileSource, create_lookup

    body = ("phone\n" + "\n".join(numbers) + "\n").encode()
    with session_scope() as session:
        file_id = storage.get_storage().save_bytes(session, SYSTEM, body, kind="upload", original_name="l.csv").id
    with session_scope() as session:
        lookup = create_lookup(session, SYSTEM, FileSource(file_id, "phone", "GB"), confirm=True, **options)
        assert lookup.job_id is not None
        return lookup.id, lookup.job_id


def _items(lookup_id: int) -> dict[str, tuple[str, str | None]]:
    """E.164 -> (state, live status stored)."""
    from phoneops.hlr.models import HlrLookupItem, HlrResult
    from phoneops.numbers.vault import get_vault

    vault = get_vault()
    with session_scope() as session:
        rows = session.execute(
            select(HlrLookupItem.sealed, HlrLookupItem.blind_index, HlrLookupItem.state, HlrResult.live_status)
            .outerjoin(HlrResult, HlrResult.id == HlrLookupItem.result_id)
            .where(HlrLookupItem.lookup_id == lookup_id)
        ).all()
    return {vault.open(sealed, index): (state, live) for sealed, index, state, live in rows}


@pytest.mark.parametrize(("mode", "seed"), [("batch", 3), ("realtime", 2)])
def test_hlr_lookup_at_20_percent_faults_charges_each_number_at_most_once(
    hlr: tuple[str, SimAdmin], env: object, worker: Worker, mode: str, seed: int
) -> None:
    from phoneops.simulators.hlr_outcomes import outcome

    url, sim = hlr
    sim.reset()
    _hlr_env(url, env)
    sim.configure(faults={**FAULTS, "seed": seed})
    numbers = [f"+447911{800000 + i:06d}" for i in range(480 if mode == "realtime" else 60)]
    options = {"mode": "realtime"} if mode == "realtime" else {"mode": "batch", "batch_size": 10}
    lookup_id, job_id = _start_lookup(numbers, **options)
    job = wait_done(job_id)
    assert job.status == "succeeded", job.error

    stats = sim.stats()
    assert stats["injected"]["faults"] >= 3, stats["injected"]
    charged = stats["lookups_per_number"]
    assert max(charged.values(), default=0) <= 1, charged  # 0 double-paid
    items = _items(lookup_id)
    assert set(items) == set(numbers)
    for number, (state, live) in items.items():
        if state == "done":  # the stored result is the provider's answer for that number, paid once
            assert live == outcome(number.lstrip("+"))["live_status"]
            assert charged.get(number.lstrip("+")) == 1
        else:  # real-time answer lost after a charge: in review, never resent
            assert mode == "realtime" and state == "review", (number, state)
    done = sum(state == "done" for state, _ in items.values())
    if mode == "batch":  # batches are reconciled for free: every number gets its result
        assert done == len(numbers)
    else:
        assert done >= len(numbers) // 2
    assert job.counters["looked_up"] == done
