"""HLR lookups through the service functions, against the simulator over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

from phoneops.core import jobs, storage
from phoneops.core.db import session_scope, utcnow
from phoneops.core.errors import Conflict, ProviderNotConfigured, ValidationFailed
from phoneops.core.models import Job
from phoneops.core.security import SYSTEM
from phoneops.hlr import lookups, risky
from phoneops.hlr.lookups import FileSource, ListSource, create_lookup, get_lookup, item_counts
from phoneops.hlr.models import HlrCall, HlrLookupItem, HlrResult
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts, lookup, set_status
from phoneops.settings import get_settings, reset_settings_cache
from phoneops.simulators._server import SimAdmin
from phoneops.simulators.hlr_lookup import DEFAULT_API_KEY, DEFAULT_API_SECRET

pytestmark = pytest.mark.usefixtures("db_url")


def uk(count: int, start: int = 0) -> list[str]:
    """Real, valid UK mobile numbers (+447911 000000 ...)."""
    return [f"+447911{start + i:06d}" for i in range(count)]


def digits(number: str) -> str:
    return number.lstrip("+")


@pytest.fixture
def hlr_env(hlr_sim: SimAdmin, hlr_sim_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimAdmin]:
    """Settings pointing at the simulator; the original's risky operators in the (wiped) table."""
    from phoneops.settings import reset_settings_cache

    for name, value in {
        "HLR_BASE_URL": hlr_sim_url,
        "HLR_BATCH_BASE_URL": hlr_sim_url,
        "HLR_API_KEY": DEFAULT_API_KEY,
        "HLR_API_SECRET": DEFAULT_API_SECRET,
        "HLR_POLL_EVERY_SECONDS": "0.02",
        "HLR_POLL_MAX_SECONDS": "20",
    }.items():
        monkeypatch.setenv(name, value)
    reset_settings_cache()
    with session_scope() as session:
        risky.restore_seed(session, SYSTEM)
    yield hlr_sim
    reset_settings_cache()


def stored_csv(numbers: list[str], header: str | None = "phone", extra: list[str] | None = None) -> str:
    lines = ([f"{header},name"] if header else []) + [f"{n},x" for n in numbers] + (extra or [])
    with session_scope() as session:
        return (
            storage.get_storage()
            .save_bytes(session, SYSTEM, ("\n".join(lines) + "\n").encode(), kind="upload", original_name="list.csv")
            .id
        )


def start(numbers: list[str] | None = None, *, file_id: str | None = None, **options: Any) -> int:
    """Create a lookup (confirmed) and run its job inline; returns the lookup id."""
    file_id = file_id or stored_csv(numbers or [])
    with session_scope() as session:
        return create_lookup(session, SYSTEM, FileSource(file_id, "phone", "GB"), confirm=True, **options).id


def run(lookup_id: int) -> Job:
    with session_scope() as session:
        job_id = get_lookup(session, lookup_id).job_id
    assert job_id is not None
    for _ in range(5):  # a parked job (RetryLater) is run again, as the queue would
        jobs.run_job(job_id)
        with session_scope() as session:
            if session.get(Job, job_id).status != "queued":  # type: ignore[union-attr]
                break
    with session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None
        session.expunge(job)
        return job


def counts(lookup_id: int) -> dict[str, int]:
    with session_scope() as session:
        return item_counts(session, lookup_id)


def paid(sim: SimAdmin) -> dict[str, int]:
    return dict(sim.stats()["lookups_per_number"])


# --- estimate and confirmation ---------------------------------------------------------------------------


def test_estimate_counts_rows_invalid_duplicates_and_fresh_results(hlr_env: SimAdmin) -> None:
    numbers = uk(6)
    file_id = stored_csv([*numbers, numbers[0], "07911 000001"], extra=["not a number,x", "+44770090012,x"])
    first = start(numbers[:2], mode="realtime")
    assert run(first).status == "succeeded"
    with session_scope() as session:
        created = create_lookup(session, SYSTEM, FileSource(file_id, "phone", "GB"), start=False)
        assert lookups.estimate(created) == {
            "rows": 10,
            "invalid": 2,
            "duplicates": 2,
            "numbers": 6,
            "fresh": 2,
            "to_lookup": 4,
            "in_review": 0,
            "recently_paid": 0,
            "credits_estimate": "4",
            "opted_out": 0,
            "not_mobile": 0,
            "not_mobile_types": {},
            "include_non_mobile": False,
            "credits_saved": "0",
            "budget": 1000,
            "ttl_days": 30,
            "needs_confirmation": False,
        }
        assert created.status == "ready" and created.job_id is None
    assert paid(hlr_env) == {digits(n): 1 for n in numbers[:2]}


def test_above_the_budget_nothing_is_paid_until_confirmed(hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HLR_CONFIRM_ABOVE_CREDITS", "3")
    reset_settings_cache()
    file_id = stored_csv(uk(5))
    with session_scope() as session:
        created = create_lookup(session, SYSTEM, FileSource(file_id, None, "GB"))
        lookup_id = created.id
        assert created.status == "awaiting_confirmation" and created.job_id is None
        assert "above the confirmation budget of 3" in (created.message or "")
    assert hlr_env.stats()["total_paid_lookups"] == 0
    with session_scope() as session:
        lookups.confirm_lookup(session, SYSTEM, lookup_id)
    assert run(lookup_id).status == "succeeded"
    with session_scope() as session:
        done = get_lookup(session, lookup_id)
        assert done.confirmed_by == "system" and done.status == "succeeded"
        with pytest.raises(Conflict):
            lookups.confirm_lookup(session, SYSTEM, lookup_id)
    assert hlr_env.stats()["total_paid_lookups"] == 5


def statuses(lookup_id: int) -> tuple[str, str | None, str]:
    """The lookup's own status, its job's (None without one) and the status the pages show."""
    with session_scope() as session:
        lookup = get_lookup(session, lookup_id)
        job = lookups.lookup_job(session, lookup)
        return lookup.status, job.status if job is not None else None, lookups.effective_status(lookup, job)


def rival_after_our_read(monkeypatch: pytest.MonkeyPatch, rival: Callable[[Any, Any, int], Any]) -> list[int]:
    """Another request (its own session and commit) runs `rival` on the lookup once, right after this request's
    `lookups.get_lookup` read it: between what this request checks and what it writes. Returns the ids raced
    (the real `get_lookup` is put back by the test)."""
    raced: list[int] = []

    def racing(session: Any, wanted: int) -> Any:
        found = get_lookup(session, wanted)  # what this request's checks look at
        if not raced:
            raced.append(wanted)
            with session_scope() as other:
                rival(other, SYSTEM, wanted)
        return found

    monkeypatch.setattr(lookups, "get_lookup", racing)
    return raced


@pytest.mark.parametrize("action", ["confirm", "resume"])
def test_a_lookup_started_twice_at_once_gets_one_job(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch, action: str
) -> None:
    """Two requests start the same lookup (two clicks on Confirm, Resume from two pages): the rival's start
    commits after this request read the lookup and checked it could start, before it wrote. Both used to
    start a job, and two jobs of one lookup claim and pay the same numbers; now the second start is refused
    and nothing is paid twice."""
    numbers = uk(20, 1500)
    with session_scope() as session:
        lookup_id = create_lookup(session, SYSTEM, FileSource(stored_csv(numbers), "phone", "GB"), start=False).id
        if action == "resume":  # stopped before it ran: resumable
            lookups.cancel_lookup(session, SYSTEM, lookup_id)
    start_it = lookups.confirm_lookup if action == "confirm" else lookups.resume_lookup
    raced = rival_after_our_read(monkeypatch, start_it)
    with pytest.raises(Conflict, match="just started by another request"), session_scope() as session:
        start_it(session, SYSTEM, lookup_id)
    monkeypatch.setattr(lookups, "get_lookup", get_lookup)
    assert raced == [lookup_id]
    with session_scope() as session:
        started = [j.id for j in session.scalars(select(Job).where(Job.kind == lookups.KIND))
                   if j.params.get("lookup_id") == lookup_id]
        assert len(started) == 1 and get_lookup(session, lookup_id).job_id == started[0]
    assert run(lookup_id).status == "succeeded"
    assert paid(hlr_env) == {digits(n): 1 for n in numbers}


def test_a_cancel_racing_a_confirm_stops_the_run_the_confirm_started(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel and Confirm at once (two pages, two users): the confirm commits after the cancel read the lookup
    (waiting, no job) and before it wrote. The cancel used to write "cancelled" over the confirm's start and
    leave the confirm's job to run and pay; now it sees the change, cancels that job too, and nothing is
    paid."""
    numbers = uk(12, 1700)
    with session_scope() as session:
        lookup_id = create_lookup(session, SYSTEM, FileSource(stored_csv(numbers), "phone", "GB"), start=False).id
    raced = rival_after_our_read(monkeypatch, lookups.confirm_lookup)
    with session_scope() as session:
        assert lookups.cancel_lookup(session, SYSTEM, lookup_id).status == "cancelled"
    monkeypatch.setattr(lookups, "get_lookup", get_lookup)
    assert raced == [lookup_id]
    assert statuses(lookup_id) == ("cancelled", "cancelled", "cancelled")
    assert run(lookup_id).status == "cancelled"
    assert paid(hlr_env) == {}  # the confirm's run never called the provider
    with session_scope() as session:  # and the user can still start it again on purpose
        lookups.resume_lookup(session, SYSTEM, lookup_id)
    assert run(lookup_id).status == "succeeded"
    assert paid(hlr_env) == {digits(n): 1 for n in numbers}


def test_a_cancel_that_loses_the_race_to_the_lookups_end_says_it_had_already_ended(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancel clicked as the lookup finishes: its job runs to the end after the cancel read the lookup (job
    queued) and before the cancel reached the job. The cancel used to answer with the job's own conflict ("job
    N is already succeeded", a job the user never saw); now it reads the lookup again and says the lookup had
    already ended, and the finished lookup, its results and its payments stay as they were."""
    numbers = uk(6, 1900)
    with session_scope() as session:
        lookup_id = create_lookup(session, SYSTEM, FileSource(stored_csv(numbers), "phone", "GB")).id
    raced = rival_after_our_read(monkeypatch, lambda session, actor, wanted: run(wanted))
    with pytest.raises(Conflict, match=r"already ended \(succeeded\): there is nothing to cancel"), \
            session_scope() as session:
        lookups.cancel_lookup(session, SYSTEM, lookup_id)
    monkeypatch.setattr(lookups, "get_lookup", get_lookup)
    assert raced == [lookup_id]
    assert statuses(lookup_id) == ("succeeded", "succeeded", "succeeded")
    assert paid(hlr_env) == {digits(n): 1 for n in numbers}
    with session_scope() as session:  # asked again later: the same answer, nothing written
        with pytest.raises(Conflict, match=r"already ended \(succeeded\)"):
            lookups.cancel_lookup(session, SYSTEM, lookup_id)
        assert get_lookup(session, lookup_id).status == "succeeded"


def test_sources_and_their_errors(hlr_env: SimAdmin) -> None:
    with session_scope() as session:
        with pytest.raises(ValidationFailed, match="no column 'msisdn'"):
            create_lookup(session, SYSTEM, FileSource(stored_csv(uk(2)), "msisdn", "GB"))
        with pytest.raises(ValidationFailed, match="no valid phone number"):
            create_lookup(session, SYSTEM, FileSource(stored_csv(["hello"]), None, "GB"))
        with pytest.raises(ValidationFailed, match="unknown region"):
            create_lookup(session, SYSTEM, FileSource(stored_csv(uk(2)), None, "XX"))
        with pytest.raises(ValidationFailed, match="mode must be"):
            create_lookup(session, SYSTEM, FileSource(stored_csv(uk(2)), None, "GB"), mode="turbo")
        # A headerless file, national numbers, the phone in the second column given by number.
        no_header = (
            storage.get_storage()
            .save_bytes(session, SYSTEM, b"a,07911000001\nb,07911000002\n", kind="upload", original_name="n.csv")
            .id
        )
        created = create_lookup(session, SYSTEM, FileSource(no_header, "2", "GB"), start=False)
        assert (created.rows, created.numbers) == (2, 2)
        apply_verdicts(session, SYSTEM, [Verdict(n, "monitor", Authority.auto, "OS", "VOLUUM") for n in uk(3)])
        apply_verdicts(session, SYSTEM, [Verdict("+4915112000000", "monitor", Authority.auto, "OS", "VOLUUM")])
        from_list = create_lookup(session, SYSTEM, ListSource("monitor", "GB"), start=False)
        assert (from_list.numbers, from_list.source, from_list.title) == (
            3,
            {"status": "monitor", "country": "GB"},
            "HLR lookup of the monitor (GB)",
        )


def test_without_credentials_the_provider_is_switched_off(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from phoneops.settings import reset_settings_cache

    monkeypatch.delenv("HLR_API_KEY", raising=False)
    reset_settings_cache()
    with session_scope() as session, pytest.raises(ProviderNotConfigured, match="HLR_API_KEY, HLR_API_SECRET"):
        create_lookup(session, SYSTEM, FileSource(stored_csv(uk(2)), None, "GB"))


# --- paying once ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "realtime"])
def test_10000_numbers_4000_fresh_make_exactly_6000_paid_lookups(hlr_env: SimAdmin, mode: str) -> None:
    numbers = uk(10_000)
    earlier = start(numbers[:4_500], mode=mode)
    assert run(earlier).status == "succeeded"
    with session_scope() as session:  # 500 of those results are older than the TTL: looked up again
        stale = select(HlrResult.id).where(HlrResult.lookup_id == earlier).order_by(HlrResult.id).limit(500)
        session.execute(
            update(HlrResult).where(HlrResult.id.in_(stale)).values(looked_up_at=utcnow() - timedelta(days=31))
        )
    hlr_env.reset()
    lookup_id = start(numbers, mode=mode, batch_size=4_000)
    with session_scope() as session:
        created = get_lookup(session, lookup_id)
        assert (created.numbers, created.fresh, created.to_lookup) == (10_000, 4_000, 6_000)
    assert run(lookup_id).status == "succeeded"
    stats = hlr_env.stats()
    assert stats["total_paid_lookups"] == 6_000
    assert stats["max_lookups_per_number"] == 1
    fresh = {digits(n) for n in numbers[500:4_500]}
    assert not fresh & set(stats["lookups_per_number"])
    assert counts(lookup_id) == {"cached": 4_000, "done": 6_000}
    with session_scope() as session:
        done = get_lookup(session, lookup_id)
        assert done.status == "succeeded" and done.looked_up == 6_000
        assert done.credits_spent == int(stats["credits_spent"])
        assert sum(done.breakdown["outcomes"].values()) == 10_000
        assert done.clean_file_id and done.raw_file_id


def test_outcomes_go_through_the_number_core(hlr_env: SimAdmin) -> None:
    live, dead, absent, risky_live, kept = uk(5, 100)
    hlr_env.configure(
        overrides={
            digits(live): {"live_status": "LIVE", "current_network_details": {"name": "EE Limited", "mccmnc": "23430"}},
            digits(dead): {"live_status": "DEAD"},
            digits(absent): {"live_status": "ABSENT_SUBSCRIBER"},
            digits(risky_live): {
                "live_status": "LIVE",
                "current_network": "AVAILABLE",
                "current_network_details": {"name": "Sky UK Limited", "mccmnc": "23457"},
            },
            digits(kept): {"live_status": "DEAD"},
        }
    )
    with session_scope() as session:
        set_status(session, SYSTEM, kept, "whitelist", "VIP", region="GB")  # manual outranks HLR
        apply_verdicts(session, SYSTEM, [Verdict(live, "blacklist", Authority.hlr, "HLR_FAILED", "HLR")])
        apply_verdicts(session, SYSTEM, [Verdict(absent, "whitelist", Authority.auto, "OS", "VOLUUM")])
    lookup_id = start([live, dead, absent, risky_live, kept], mode="realtime")
    assert run(lookup_id).status == "succeeded"
    with session_scope() as session:
        status = {
            n: (v.status, v.reason, v.authority)
            for n in (live, dead, absent, risky_live, kept)
            for v in [lookup(session, SYSTEM, n, "GB")]
        }
        assert status == {
            live: (None, None, None),  # an earlier HLR decision is lifted by a LIVE result (docs/lists.md)
            dead: ("blacklist", "HLR_FAILED", "hlr"),
            absent: ("monitor", "HLR_MONITORED", "hlr"),  # HLR tightens the tracker's whitelist
            risky_live: ("blacklist", "HLR_RISKY_NETWORK", "hlr"),
            kept: ("whitelist", "VIP", "manual"),
        }
        history = lookup(session, SYSTEM, dead, "GB").history
        assert history[0]["source"] == "HLR" and history[0]["evidence"]["live_status"] == "DEAD"
        done = get_lookup(session, lookup_id)
        clean = storage.get_storage().path_for(done.clean_file_id or "").read_text().split()
        assert clean == ["phone_number", live]
        raw = storage.get_storage().path_for(done.raw_file_id or "").read_text().splitlines()
        assert raw[0].startswith("phone_number,state,looked_up_at,live_status")
        assert any(line.startswith(risky_live) and ",YES,blacklist,HLR_RISKY_NETWORK," in line for line in raw)


def test_risky_operator_by_mccmnc_and_rules_edited_by_admins(hlr_env: SimAdmin) -> None:
    from phoneops.hlr import outcomes

    a, b = uk(2, 200)
    hlr_env.configure(
        overrides={
            digits(a): {"live_status": "LIVE", "current_network_details": {"name": "Renamed Net", "mccmnc": "23499"}},
            digits(b): {"live_status": "INCONCLUSIVE"},
        }
    )
    with session_scope() as session:
        risky.add_operator(session, SYSTEM, mccmnc="23499", note="test")
        with pytest.raises(Conflict):
            risky.add_operator(session, SYSTEM, mccmnc="23499")
        outcomes.set_rules(session, SYSTEM, {"INCONCLUSIVE": {"action": "ignore"}})
    lookup_id = start([a, b], mode="realtime")
    assert run(lookup_id).status == "succeeded"
    with session_scope() as session:
        assert lookup(session, SYSTEM, a, "GB").reason == "HLR_RISKY_NETWORK"
        from phoneops.core.errors import NotFound

        with pytest.raises(NotFound):  # ignored: never entered the number core
            lookup(session, SYSTEM, b, "GB")
        assert get_lookup(session, lookup_id).breakdown["outcomes"] == {"blacklist HLR_RISKY_NETWORK": 1, "ignore": 1}
        assert {r["live_status"]: r["overridden"] for r in outcomes.rules_table(session)}["INCONCLUSIVE"]
        outcomes.reset_rules(session, SYSTEM)
        assert outcomes.current_rules(session) == outcomes.DEFAULT_RULES


# --- failures ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["batch", "realtime"])
def test_out_of_credit_stops_keeps_results_and_resumes_after_top_up(hlr_env: SimAdmin, mode: str) -> None:
    numbers = uk(200, 300)
    hlr_env.configure(balance=130, overrides={digits(n): {"live_status": "LIVE"} for n in numbers})
    lookup_id = start(numbers, mode=mode, batch_size=150)
    job = run(lookup_id)
    assert job.status == "failed"
    assert job.error and "out of credit: 70 numbers are not looked up yet" in job.error and "top up" in job.error
    assert counts(lookup_id) == {"done": 130, "pending": 70}
    with session_scope() as session:
        stopped = get_lookup(session, lookup_id)
        assert stopped.status == "needs_credit" and stopped.looked_up == 130
        assert stopped.raw_file_id  # what was obtained can be downloaded already
        assert session.scalar(select(func.count(HlrResult.id)).where(HlrResult.lookup_id == lookup_id)) == 130
    hlr_env.configure(balance=1000)
    with session_scope() as session:
        lookups.resume_lookup(session, SYSTEM, lookup_id)
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 200}
    stats = hlr_env.stats()
    assert stats["total_paid_lookups"] == 200 and stats["max_lookups_per_number"] == 1


def test_429_backs_off_and_nothing_is_paid_twice(hlr_env: SimAdmin) -> None:
    hlr_env.configure(throttle_next=3, retry_after_s=0.0)
    lookup_id = start(uk(170, 500), mode="realtime")
    assert run(lookup_id).status == "succeeded"
    stats = hlr_env.stats()
    assert stats["throttled"] == 3
    assert stats["total_paid_lookups"] == 170 and stats["max_lookups_per_number"] == 1
    hlr_env.reset()
    hlr_env.configure(throttle_next=2, retry_after_s=0.0, fault_scope="batch")
    lookup_id = start(uk(30, 700))
    assert run(lookup_id).status == "succeeded"
    assert hlr_env.stats()["total_paid_lookups"] == 30


def test_a_5xx_after_paying_is_settled_through_the_private_cache(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The provider looked 80 numbers up (and charged them), then answered 500: asked again with the private
    cache on, they come back free; every number is charged exactly once and the spend counts all of them."""
    monkeypatch.setattr("phoneops.hlr.engine.PARK_SECONDS", 0.0)
    hlr_env.configure(error_next=1, fault_after_commit=True)  # the first call is looked up, then answers 500
    numbers = uk(100, 900)
    lookup_id = start(numbers, mode="realtime")
    job = run(lookup_id)  # parked once, then resumed at once (inline) to the end
    assert job.status == "succeeded", job.error
    assert counts(lookup_id) == {"done": 100}
    stats = hlr_env.stats()
    assert stats["lookups_per_number"] == {digits(n): 1 for n in numbers} and stats["max_charges_per_number"] == 1
    assert len(stats["private_cache_hits"]) == 80
    with session_scope() as session:
        done = get_lookup(session, lookup_id)
        assert done.review == 0 and float(done.credits_spent) == stats["credits_spent"] > 90  # NO_COVERAGE is free
        call = session.scalars(select(HlrCall).where(HlrCall.lookup_id == lookup_id).order_by(HlrCall.id)).first()
        assert call is not None and call.state == "settled" and float(call.credits) > 70


def _lost_call(lookup_id: int, size: int) -> None:
    """What a worker killed mid-call leaves: an intent committed `sending`, never settled."""
    with session_scope() as session:
        call = HlrCall(lookup_id=lookup_id, kind="realtime", state="sending", numbers=size)
        session.add(call)
        session.flush()
        first = session.scalars(
            select(HlrLookupItem.id).where(HlrLookupItem.lookup_id == lookup_id).order_by(HlrLookupItem.id).limit(size)
        ).all()
        session.execute(
            update(HlrLookupItem).where(HlrLookupItem.id.in_(first)).values(state="sending", call_id=call.id)
        )


@pytest.mark.parametrize("reached", [False, True], ids=["never-reached", "reached"])
def test_an_interrupted_realtime_call_is_charged_exactly_once(hlr_env: SimAdmin, reached: bool) -> None:
    """Whether or not the lost call reached the provider, each of its numbers is charged once, and the
    lookup's spend equals what the provider charged."""
    from phoneops.hlr.provider import client

    numbers = uk(90, 1200)
    with session_scope() as session:
        lookup_id = create_lookup(session, SYSTEM, FileSource(stored_csv(numbers), "phone", "GB"), mode="realtime",
                                  start=False).id
    if reached:  # the lost call went through: the provider charged it and kept the results in our cache
        with client() as hlr:
            hlr.lookup_call(numbers[:80], cache_days_private=30, cache_days_global=30, save_to_cache="YES")
    _lost_call(lookup_id, 80)
    with session_scope() as session:
        lookups.confirm_lookup(session, SYSTEM, lookup_id)
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 90}
    stats = hlr_env.stats()
    assert stats["lookups_per_number"] == {digits(n): 1 for n in numbers} and stats["max_charges_per_number"] == 1
    assert len(stats["private_cache_hits"]) == (80 if reached else 0)
    with session_scope() as session:
        assert float(get_lookup(session, lookup_id).credits_spent) == stats["credits_spent"] > 80
    with session_scope() as session, pytest.raises(Conflict, match="no number in review"):
        lookups.release_review(session, SYSTEM, lookup_id)


def test_a_run_cancelled_during_its_call_is_not_resumed_over_it(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real-time lookup is cancelled while its call is at the provider, then resumed at once. Cancelling
    ends the job at once, but its worker is still in the call and settles it when the answer comes back. A
    new run started meanwhile re-asks the same numbers (the intent is still `sending`) and settles the same
    call too: every number and credit counted twice (charged twice if the provider handles both at once).
    A resume waits until the cancelled run's lease would have run out, as after a killed worker."""
    from phoneops.hlr.client import HlrClient

    numbers = uk(10, 1600)
    lookup_id = start(numbers, mode="realtime")
    real_call = HlrClient.lookup_call
    resumed: list[str] = []

    def cancelled_and_resumed_meanwhile(self: HlrClient, *args: Any, **kwargs: Any) -> Any:
        answer = real_call(self, *args, **kwargs)  # the provider looked them up; the answer is on its way
        if not resumed:
            resumed.append("resumed")
            with session_scope() as session:
                lookups.cancel_lookup(session, SYSTEM, lookup_id)
            try:
                with session_scope() as session:
                    lookups.resume_lookup(session, SYSTEM, lookup_id)
            except Conflict as exc:
                resumed[0] = exc.message
            else:
                run(lookup_id)  # the new run, on another worker, while the first is still in its call
        return answer

    monkeypatch.setattr(HlrClient, "lookup_call", cancelled_and_resumed_meanwhile)
    assert run(lookup_id).status == "cancelled"  # the first run: its paid answer is still kept
    assert "may still be in a paid call" in resumed[0]
    stats = hlr_env.stats()
    assert stats["lookups_per_number"] == {digits(n): 1 for n in numbers} and stats["max_charges_per_number"] == 1
    with session_scope() as session:
        done = get_lookup(session, lookup_id)
        assert done.looked_up == 10 and float(done.credits_spent) == stats["credits_spent"]
        assert session.scalar(select(func.count(HlrResult.id)).where(HlrResult.lookup_id == lookup_id)) == 10
        session.execute(update(Job).where(Job.id == done.job_id).values(  # the cancelled run's lease is over
            finished_at=utcnow() - timedelta(seconds=get_settings().job_lease_seconds + 1)))
    with session_scope() as session:
        lookups.resume_lookup(session, SYSTEM, lookup_id)
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 10} and hlr_env.stats()["credits_spent"] == stats["credits_spent"]


def test_a_call_in_doubt_while_the_provider_is_down_stays_open_then_settles(
    hlr_env: SimAdmin, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("phoneops.hlr.engine.PARK_SECONDS", 0.0)
    numbers = uk(30, 1300)
    lookup_id = start(numbers, mode="realtime")
    _lost_call(lookup_id, 30)
    hlr_env.configure(error_next=1)  # the settling call fails before reaching: still in doubt, parked
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 30}
    assert hlr_env.stats()["lookups_per_number"] == {digits(n): 1 for n in numbers}


def test_every_batch_intent_state_is_reconciled_without_paying_twice(hlr_env: SimAdmin) -> None:
    """Kill points of the batch flow, rebuilt by hand: each resumes to exactly one lookup per number."""
    from phoneops.hlr.provider import client

    groups = [uk(10, 1400 + 20 * i) for i in range(4)]
    with client() as hlr:
        started = hlr.create_batch("started.csv")
        hlr.upload_source(started.id, groups[2])
        hlr.start_batch(started.id)  # the worker died after the paid start, before recording it
        not_started = hlr.create_batch("not-started.csv")
        hlr.upload_source(not_started.id, groups[1])  # died before the start left
        uploaded = hlr.create_batch("uploaded.csv")  # died before recording the upload
        hlr.upload_source(uploaded.id, groups[3])
    states = [("new", None), ("starting", not_started.id), ("starting", started.id), ("created", uploaded.id)]
    lookup_id = start([n for g in groups for n in g], batch_size=10)
    with session_scope() as session:
        for (state, batch_id), group in zip(states, groups, strict=True):
            call = HlrCall(lookup_id=lookup_id, kind="batch", state=state, numbers=10, provider_batch_id=batch_id)
            session.add(call)
            session.flush()
            indexes = list(
                session.scalars(
                    select(HlrLookupItem.id).where(HlrLookupItem.lookup_id == lookup_id).order_by(HlrLookupItem.id)
                )
            )[groups.index(group) * 10 :][:10]
            session.execute(
                update(HlrLookupItem).where(HlrLookupItem.id.in_(indexes)).values(state="sending", call_id=call.id)
            )
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 40}
    stats = hlr_env.stats()
    assert stats["total_paid_lookups"] == 40 and stats["max_lookups_per_number"] == 1


@pytest.mark.parametrize("unstarted", ["NEW", "CREATED"])
def test_a_start_in_doubt_is_sent_again_whatever_the_status_names(hlr_env: SimAdmin, unstarted: str) -> None:
    """Killed around the paid start: the start is re-issued; the provider's answer (started now, or refused as
    already started) decides — never a status name we guess. Both batches end looked up once."""
    from phoneops.hlr.provider import client

    hlr_env.configure(unstarted_status=unstarted, restart_answer="already_started")
    groups = [uk(10, 3000), uk(10, 3020)]
    with client() as hlr:
        started = hlr.create_batch("started.csv")
        hlr.upload_source(started.id, groups[0])
        assert hlr.start_batch(started.id) is True  # the start reached the provider, then the worker died
        assert hlr.start_batch(started.id) is False  # the provider refuses a second start: proof it runs
        not_started = hlr.create_batch("not-started.csv")
        hlr.upload_source(not_started.id, groups[1])  # the worker died before the start left
        assert hlr.get_batch(not_started.id).status == unstarted
    lookup_id = start([n for g in groups for n in g], batch_size=10)
    with session_scope() as session:
        items = list(session.scalars(select(HlrLookupItem.id).where(HlrLookupItem.lookup_id == lookup_id)
                                     .order_by(HlrLookupItem.id)))
        for index, batch_id in enumerate((started.id, not_started.id)):
            call = HlrCall(lookup_id=lookup_id, kind="batch", state="starting", numbers=10, provider_batch_id=batch_id)
            session.add(call)
            session.flush()
            session.execute(update(HlrLookupItem).where(HlrLookupItem.id.in_(items[index * 10:][:10]))
                            .values(state="sending", call_id=call.id))
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 20}
    assert hlr_env.stats()["lookups_per_number"] == {digits(n): 1 for g in groups for n in g}


def test_a_started_batch_that_never_moves_is_started_again_on_resume(hlr_env: SimAdmin) -> None:
    """An intent recorded `started` whose batch never started at the provider (as a provider losing the start
    would leave it): the resumed job sends the start again instead of waiting forever."""
    from phoneops.hlr.provider import client

    hlr_env.configure(unstarted_status="QUEUED")
    numbers = uk(10, 3100)
    with client() as hlr:
        batch = hlr.create_batch("lost-start.csv")
        hlr.upload_source(batch.id, numbers)
    lookup_id = start(numbers, batch_size=10)
    with session_scope() as session:
        call = HlrCall(lookup_id=lookup_id, kind="batch", state="started", numbers=10, provider_batch_id=batch.id,
                       started_at=utcnow(), poll_since=utcnow())
        session.add(call)
        session.flush()
        session.execute(update(HlrLookupItem).where(HlrLookupItem.lookup_id == lookup_id)
                        .values(state="sending", call_id=call.id))
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 10}
    assert hlr_env.stats()["lookups_per_number"] == {digits(n): 1 for n in numbers}


def test_the_estimate_counts_numbers_in_review_and_recently_paid_apart(
    hlr_env: SimAdmin, client: Any, users: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hlr_env.configure(fail_batches=True)
    in_review = uk(5, 3200)
    failed = start(in_review)
    assert run(failed).status == "failed" and counts(failed) == {"review": 5}
    hlr_env.configure(fail_batches=False)
    paid_before = uk(4, 3300)
    assert run(start(paid_before)).status == "succeeded"
    # 10 days later, with a freshness limit of 5 days: the 4 are older than the TTL, within the 30-day window
    with session_scope() as session:
        for result in session.scalars(select(HlrResult)):
            result.looked_up_at = result.looked_up_at - timedelta(days=10)
    hlr_env.advance(10 * 86_400)
    monkeypatch.setenv("HLR_CACHE_TTL_DAYS", "5")
    reset_settings_cache()
    before_new = hlr_env.stats()["credits_spent"]
    new = uk(3, 3400)
    operator = users.headers("operator")  # the new lookup as an operator makes it: through the API
    body = ("phone\n" + "".join(f"{n}\n" for n in [*in_review, *paid_before, *new])).encode()
    stored = client.post("/api/files", files={"file": ("again.csv", body, "text/csv")}, headers=operator)
    assert stored.status_code == 201, stored.text
    created = client.post("/api/hlr/lookups", json={"file_id": stored.json()["id"], "phone_column": "phone"},
                          headers=operator)
    assert created.status_code == 201, created.text
    lookup, estimate = created.json(), created.json()["estimate"]
    assert (estimate["to_lookup"], estimate["in_review"], estimate["recently_paid"]) == (12, 5, 4)
    assert estimate["needs_confirmation"] and lookup["status"] == "awaiting_confirmation" and lookup["job"] is None
    assert "5 numbers are in review" in (lookup["message"] or "") and "4 numbers were paid" in (lookup["message"] or "")
    lookup_id = lookup["id"]
    assert hlr_env.stats()["credits_spent"] == before_new  # nothing is paid silently
    before = hlr_env.stats()["credits_spent"]
    confirmed = client.post(f"/api/hlr/lookups/{lookup_id}/confirm", headers=operator)
    assert confirmed.status_code == 200, confirmed.text
    assert run(lookup_id).status == "succeeded"
    # The 5 in review were never looked up (the batch failed before): looked up now, once; the 4 again.
    stats = hlr_env.stats()
    assert all(stats["lookups_per_number"][digits(n)] == 1 for n in [*in_review, *new])
    assert all(stats["lookups_per_number"][digits(n)] == 2 for n in paid_before)
    with session_scope() as session:
        assert float(get_lookup(session, lookup_id).credits_spent) == stats["credits_spent"] - before


def test_polling_gives_up_after_the_maximum_then_resumes(
    hlr_env: SimAdmin, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from phoneops.core.logging import configure_logging
    from phoneops.hlr.cli import app
    from phoneops.settings import get_settings, reset_settings_cache

    monkeypatch.setenv("DATABASE_URL", db_url)  # the CLI reads its database from the environment
    monkeypatch.setenv("HLR_POLL_MAX_SECONDS", "0.2")
    reset_settings_cache()
    hlr_env.configure(batch_items_per_second=1.0)
    lookup_id = start(uk(50, 2000))
    job = run(lookup_id)
    assert job.status == "failed"
    assert (
        job.error and "is still PROCESSING" in job.error and "after 0.2 s of polling (HLR_POLL_MAX_SECONDS" in job.error
    )
    assert f"phoneops hlr resume {lookup_id}" in job.error  # says what to do
    with session_scope() as session:
        assert get_lookup(session, lookup_id).status == "failed"
    hlr_env.advance(3600)
    resumed = CliRunner().invoke(app, ["resume", str(lookup_id), "--no-wait"])  # what the message says to do
    settings = get_settings()
    configure_logging(settings.log_json, settings.log_level)  # the runner's captured stderr is closed now
    assert resumed.exit_code == 0, resumed.output
    assert run(lookup_id).status == "succeeded"
    assert counts(lookup_id) == {"done": 50}
    assert hlr_env.stats()["total_paid_lookups"] == 50


def test_a_failed_batch_keeps_its_results_and_reviews_the_rest(hlr_env: SimAdmin) -> None:
    hlr_env.configure(fail_batches=True)
    lookup_id = start(uk(20, 2100))
    job = run(lookup_id)
    assert job.status == "failed" and job.error and "ended FAILED" in job.error
    assert counts(lookup_id) == {"review": 20}
    assert hlr_env.stats()["total_paid_lookups"] == 0


def test_numbers_in_review_are_listed_and_written_off_with_a_reason(hlr_env: SimAdmin, client: Any, users: Any) -> None:
    hlr_env.configure(fail_batches=True)
    lookup_id = start(uk(6, 3500))
    assert run(lookup_id).status == "failed" and counts(lookup_id) == {"review": 6}
    listed = client.get("/api/imei/review", headers=users.headers("viewer")).json()["hlr"]
    assert listed == [{"lookup_id": lookup_id, "title": listed[0]["title"], "status": "failed", "numbers": 6}]
    operator = users.headers("operator")
    url = f"/api/hlr/lookups/{lookup_id}/write-off-review"
    assert client.post(url, json={"reason": ""}, headers=operator).status_code == 422
    assert client.post(url, json={"reason": "x"}, headers=users.headers("viewer")).status_code == 403
    assert counts(lookup_id) == {"review": 6}  # refused: untouched
    done = client.post(url, json={"reason": "provider confirmed the batch never ran"}, headers=operator)
    assert done.status_code == 200, done.text
    assert counts(lookup_id) == {"failed": 6} and done.json()["review"] == 0
    assert client.post(url, json={"reason": "again"}, headers=operator).status_code == 409
    assert client.get("/api/imei/review", headers=users.headers("viewer")).json()["hlr"] == []
    assert hlr_env.stats()["total_paid_lookups"] == 0
