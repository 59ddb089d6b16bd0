"""One number in flight in one lookup at a time: two lookups sharing numbers never pay the provider for one
number at once. The rival's work is injected, deterministically, in the window of the other's claim or call
(no sleeps); the simulator's own books say what was paid. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, true, update
from sqlalchemy.exc import IntegrityError
from tests.hlr.test_hlr_lookups import hlr_env

from phoneops.core import jobs, storage
from phoneops.core.db import session_scope
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.hlr import jobs as hlr_jobs
from phoneops.hlr import lookups
from phoneops.hlr.client import HlrClient
from phoneops.hlr.lookups import FileSource, create_lookup, get_lookup, item_counts
from phoneops.hlr.models import HlrLookupItem
from phoneops.settings import get_settings
from phoneops.simulators._server import SimAdmin

pytestmark = pytest.mark.usefixtures("db_url")
__all__ = ["hlr_env"]  # settings pointing at the simulator (tests/hlr/test_hlr_lookups.py)

SHARED = [f"+447911{n:06d}" for n in range(6000, 6006)]
A_ONLY = [f"+447911{n:06d}" for n in range(6100, 6103)]
B_ONLY = [f"+447911{n:06d}" for n in range(6200, 6204)]


def lookup_of(numbers: list[str], mode: str) -> int:
    """A confirmed lookup whose job is queued (run here with `run_once`, as a worker would)."""
    with session_scope() as session:
        body = ("phone\n" + "\n".join(numbers) + "\n").encode()
        file_id = storage.get_storage().save_bytes(session, SYSTEM, body, kind="upload", original_name="l.csv").id
    with session_scope() as session:
        return create_lookup(session, SYSTEM, FileSource(file_id, "phone", "GB"), mode=mode, confirm=True).id


def job_of(lookup_id: int) -> Job:
    with session_scope() as session:
        job = session.get(Job, get_lookup(session, lookup_id).job_id)
        assert job is not None
        session.expunge(job)
        return job


def run_once(lookup_id: int) -> str | None:
    """One worker run of the lookup's job; a parked job's delay is taken as passed."""
    job_id = job_of(lookup_id).id
    with session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(run_after=None))
    return jobs.run_job(job_id)


def counts(lookup_id: int) -> dict[str, int]:
    with session_scope() as session:
        return item_counts(session, lookup_id)


def digits(numbers: list[str]) -> dict[str, int]:
    return {n.lstrip("+"): 1 for n in numbers}


def assert_paid_once(sim: SimAdmin, numbers: list[str]) -> None:
    stats = sim.stats()
    assert stats["charges_per_number"] == digits(numbers), stats["charges_per_number"]
    assert stats["lookups_per_number"] == digits(numbers)


def assert_final_with_reason(lookup_id: int) -> None:
    with session_scope() as session:
        items = session.execute(select(HlrLookupItem.state, HlrLookupItem.outcome, HlrLookupItem.note)
                                .where(HlrLookupItem.lookup_id == lookup_id)).all()
    for state, outcome, note in items:
        assert (state in ("done", "cached") and outcome) or (state in ("review", "failed") and note), (state, note)


def in_doubt_rival(hlr_env: SimAdmin) -> int:
    """Lookup A (real time) whose call is paid but answered 500: its numbers stay in flight (`sending`) and its
    job is parked, to settle them through the provider's private cache on its next run."""
    hlr_env.configure(error_next=1, fault_after_commit=True, fault_scope="realtime")
    rival = lookup_of(SHARED + A_ONLY, "realtime")
    assert run_once(rival) == "queued"
    assert counts(rival) == {"sending": len(SHARED + A_ONLY)}
    return rival


def assert_waits_for(lookup_id: int, rival: int) -> None:
    reason = f"for {len(SHARED)} numbers being looked up by lookup #{rival}"
    job = job_of(lookup_id)
    assert job.status == "queued" and job.run_after is not None and reason in (job.message or ""), job.message
    with session_scope() as session:
        assert (get_lookup(session, lookup_id).message or "").startswith(f"waiting {reason}")
    assert counts(lookup_id) == {"done": len(B_ONLY), "pending": len(SHARED)}


def settle_both(hlr_env: SimAdmin, rival: int, waiting: int) -> None:
    """The rival settles, then the waiting lookup resumes and takes its results for free."""
    assert run_once(rival) == "succeeded"
    assert counts(rival) == {"done": len(SHARED + A_ONLY)}
    assert run_once(waiting) == "succeeded"
    assert counts(waiting) == {"done": len(B_ONLY), "cached": len(SHARED)}
    assert_paid_once(hlr_env, SHARED + A_ONLY + B_ONLY)
    for lookup_id in (rival, waiting):
        assert_final_with_reason(lookup_id)


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_a_rival_claim_in_the_window_of_a_claim_is_not_paid_twice(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """B selects its pending numbers; before it commits its intent, lookup A claims the shared ones and its call
    is left in doubt (paid, answer lost). B's conditional claim must not take them: it claims its own, pays
    them, waits for A visibly, and gets the shared ones free from A's results once A settled."""
    hlr_env.configure(error_next=1, fault_after_commit=True, fault_scope="realtime")
    rival = lookup_of(SHARED + A_ONLY, "realtime")
    waiting = lookup_of(SHARED + B_ONLY, mode)
    real_fresh = hlr_jobs.fresh_results
    raced: list[int] = []

    def rival_claims_in_the_window(session: Any, indexes: Any, ttl_days: int) -> dict[bytes, int]:
        found = real_fresh(session, indexes, ttl_days)  # B has selected its numbers, not yet claimed them
        if not raced:
            raced.append(rival)
            assert run_once(rival) == "queued"  # A: claimed, paid, answer lost: in flight, parked
        return found

    monkeypatch.setattr(hlr_jobs, "fresh_results", rival_claims_in_the_window)
    assert run_once(waiting) == "queued"
    assert raced == [rival] and counts(rival) == {"sending": len(SHARED + A_ONLY)}
    assert_waits_for(waiting, rival)
    assert run_once(waiting) == "queued"  # A still in flight: B waits again, pays nothing
    assert_waits_for(waiting, rival)
    settle_both(hlr_env, rival, waiting)


def test_a_rival_that_settles_in_the_window_of_a_claim_answers_it_free(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """B selects its pending numbers; before it commits its intent, A looks the shared ones up and settles.
    Nothing is in flight any more, but the claim's condition sees A's fresh results: B takes them from our
    database (not even the provider's private cache is asked) and pays only its own."""
    rival = lookup_of(SHARED + A_ONLY, "realtime")
    waiting = lookup_of(SHARED + B_ONLY, "realtime")
    real_fresh = hlr_jobs.fresh_results
    raced: list[int] = []

    def rival_settles_in_the_window(session: Any, indexes: Any, ttl_days: int) -> dict[bytes, int]:
        found = real_fresh(session, indexes, ttl_days)
        if not raced:
            raced.append(rival)
            assert run_once(rival) == "succeeded"
        return found

    monkeypatch.setattr(hlr_jobs, "fresh_results", rival_settles_in_the_window)
    assert run_once(waiting) == "succeeded"
    assert raced == [rival] and counts(waiting) == {"done": len(B_ONLY), "cached": len(SHARED)}
    assert_paid_once(hlr_env, SHARED + A_ONLY + B_ONLY)
    assert hlr_env.stats()["private_cache_hits"] == {}
    assert_final_with_reason(rival)
    assert_final_with_reason(waiting)


@pytest.mark.parametrize("mode", ["realtime", "batch"])
def test_a_lookup_waiting_for_a_number_in_flight_resumes_and_takes_it_free(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    """While A's paid call is at the provider, B runs: it pays its own numbers only, waits for A's, then, A
    settled, resumes and finishes with A's results (neither the provider nor its cache is asked for them)."""
    rival = lookup_of(SHARED + A_ONLY, "realtime")
    waiting = lookup_of(SHARED + B_ONLY, mode)
    real_call = HlrClient.lookup_call
    during: list[int] = []

    def b_runs_during_a_call(self: HlrClient, numbers: list[str], **options: Any) -> Any:
        if not during:
            during.append(len(numbers))
            assert run_once(waiting) == "queued"
            assert_waits_for(waiting, rival)
        return real_call(self, numbers, **options)

    monkeypatch.setattr(HlrClient, "lookup_call", b_runs_during_a_call)
    assert run_once(rival) == "succeeded"
    assert during == [len(SHARED + A_ONLY)]
    assert run_once(waiting) == "succeeded"
    assert counts(waiting) == {"done": len(B_ONLY), "cached": len(SHARED)}
    assert_paid_once(hlr_env, SHARED + A_ONLY + B_ONLY)
    assert hlr_env.stats()["private_cache_hits"] == {}
    assert_final_with_reason(rival)
    assert_final_with_reason(waiting)


def test_claims_passing_the_condition_at_once_are_stopped_by_the_index(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch, logs: list[dict[str, Any]]
) -> None:
    """PostgreSQL READ COMMITTED lets two concurrent claims both pass NOT EXISTS. Played here by a claim whose
    condition sees nothing in flight: the partial unique index refuses the number A holds, the claim rolls
    back and starts again without it."""
    rival = in_doubt_rival(hlr_env)
    waiting = lookup_of(SHARED + B_ONLY, "realtime")
    with pytest.raises(IntegrityError), session_scope() as session:  # the index itself
        session.execute(update(HlrLookupItem).where(HlrLookupItem.lookup_id == waiting,
                                                    HlrLookupItem.state == "pending").values(state="sending"))
    real_condition = hlr_jobs.not_in_flight_elsewhere
    blind: list[int] = []

    def blind_first_claim() -> Any:
        blind.append(1)
        return true() if len(blind) <= 2 else real_condition()  # the first attempt's SELECT and UPDATE

    monkeypatch.setattr(hlr_jobs, "not_in_flight_elsewhere", blind_first_claim)
    assert run_once(waiting) == "queued"
    assert any(e["event"] == "hlr.claim_raced" and e["lookup_id"] == waiting for e in logs)
    assert_waits_for(waiting, rival)
    settle_both(hlr_env, rival, waiting)


def test_a_number_held_by_a_stopped_lookup_goes_to_review_then_is_released_free(hlr_env: SimAdmin) -> None:
    """A stopped with its call open (cancelled while in doubt): nobody settles it until A is resumed, so B does
    not wait for ever; its shared numbers end in review, naming A, and B finishes. A resumed and settled,
    B's numbers released from review are answered by A's results, free."""
    rival = in_doubt_rival(hlr_env)
    with session_scope() as session:
        lookups.cancel_lookup(session, SYSTEM, rival)
    waiting = lookup_of(SHARED + B_ONLY, "realtime")
    assert run_once(waiting) == "succeeded"
    assert counts(waiting) == {"done": len(B_ONLY), "review": len(SHARED)}
    with session_scope() as session:
        assert get_lookup(session, waiting).review == len(SHARED)
        notes = set(session.scalars(select(HlrLookupItem.note).where(HlrLookupItem.lookup_id == waiting,
                                                                     HlrLookupItem.state == "review")))
    assert notes == {hlr_jobs.STOPPED_RIVAL.format(lookup=rival)[:200]}
    assert_final_with_reason(waiting)
    lease = get_settings().job_lease_seconds
    with session_scope() as session:  # the cancelled run's lease has run out
        job = session.get(Job, get_lookup(session, rival).job_id)
        assert job is not None and job.finished_at is not None
        job.finished_at = job.finished_at - timedelta(seconds=lease + 1)
    with session_scope() as session:
        lookups.resume_lookup(session, SYSTEM, rival)
    assert run_once(rival) == "succeeded"
    with session_scope() as session:
        lookups.release_review(session, SYSTEM, waiting)
    assert run_once(waiting) == "succeeded"
    assert counts(waiting) == {"done": len(B_ONLY), "cached": len(SHARED)}
    assert_paid_once(hlr_env, SHARED + A_ONLY + B_ONLY)


def test_the_migration_keeps_one_number_in_flight_and_sends_the_others_to_review(db_url: str) -> None:
    """Numbers in flight in two lookups at once (before the index) cannot all stay `sending`: the oldest intent
    stays open, the others go to review with a note and count in their lookup's `review`."""
    from phoneops.core.migrate import downgrade, upgrade
    from phoneops.hlr.models import HlrCall, HlrLookup

    downgrade(db_url, "0014_i16_hlr_excluded")
    try:
        ids: list[int] = []
        with session_scope() as session:
            for title in ("first", "second", "third"):
                lookup = HlrLookup(title=title, source_kind="file", created_by="test", status="running")
                session.add(lookup)
                session.flush()
                call = HlrCall(lookup_id=lookup.id, kind="realtime", state="sending", numbers=2)
                session.add(call)
                session.flush()
                for index in (b"n1", b"n2" if title != "third" else b"n3"):
                    session.add(HlrLookupItem(lookup_id=lookup.id, blind_index=index.ljust(32, b"."), sealed=b"x",
                                              state="sending", call_id=call.id))
                ids.append(lookup.id)
    finally:
        upgrade(db_url)
    with session_scope() as session:
        rows = session.execute(select(HlrLookupItem.lookup_id, HlrLookupItem.blind_index, HlrLookupItem.state,
                                      HlrLookupItem.note).order_by(HlrLookupItem.id)).all()
        reviews = [get_lookup(session, i).review for i in ids]
    first, second, third = ids
    assert [(lookup_id, bytes(index)[:2], state) for lookup_id, index, state, _ in rows] == [
        (first, b"n1", "sending"), (first, b"n2", "sending"),
        (second, b"n1", "review"), (second, b"n2", "review"),
        (third, b"n1", "review"), (third, b"n3", "sending"),
    ]
    assert all(f"lookup #{first} kept it" in (note or "") for _, _, state, note in rows if state == "review")
    assert reviews == [0, 2, 1]
