"""OS rules changed: what they mean for the numbers the tracker saw, previewed and then applied.

The tracker's verdict for a number is the strongest status the OS rules give any OS it was seen with (its traffic
rows, those a retention purge folded into facts included, and its latest live event). When the rules change,
`preview` says how many numbers would move and from which list to which (through the number core's precedence,
docs/lists.md: a manual decision and an HLR verdict stay where they are); `start` runs the `voluum.reclassify` job,
which applies the new verdicts as re-evaluations (the one automatic verdict that may loosen the tracker's earlier
one), in committed steps with progress, each change an event in the number's history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from phoneops.core.audit import audit
from phoneops.core.db import session_scope
from phoneops.core.errors import Conflict
from phoneops.core.jobs import ACTIVE, JobContext, create_job
from phoneops.core.models import Job
from phoneops.core.security import Principal
from phoneops.numbers.lists import Authority, Verdict, apply_verdicts, list_states, precedence, reveal
from phoneops.numbers.osrules import ListStatus, OsRule, strongest
from phoneops.numbers.rules import current_rules
from phoneops.voluum.agents import click_verdict, latest_agents, names_no_os
from phoneops.voluum.facts import traffic_indexes, traffic_os_versions
from phoneops.voluum.models import LiveEvent
from phoneops.voluum.provider import job_actor

KIND = "voluum.reclassify"
REASON, SOURCE = "OS_VERSION", "OS_RULES"
STEP = 2000


def _seen_indexes(session: Session) -> list[bytes]:
    """Every number the tracker saw with an OS (traffic rows and live events), in a stable order."""
    found = traffic_indexes(session)  # purged traffic rows too (docs/retention.md)
    found.update(session.scalars(select(LiveEvent.blind_index)))
    return sorted(found)


def verdicts_for(session: Session, indexes: Sequence[bytes], rules: Sequence[OsRule]) -> dict[bytes, str | None]:
    """The tracker verdict of each number under `rules`: the strongest over every OS it was seen with (a
    traffic row whose OS field names no OS read through the number's latest User-Agent, as the sync reads it)."""
    texts: dict[bytes, set[str]] = {index: set() for index in indexes}
    for index, os_text in traffic_os_versions(session, indexes):  # purged traffic rows too
        texts[index].add(os_text)
    live: dict[bytes, ListStatus | None] = {}
    for index, family, version, payload in session.execute(
        select(LiveEvent.blind_index, LiveEvent.os, LiveEvent.os_version, LiveEvent.payload)
        .where(LiveEvent.blind_index.in_(list(indexes)))
    ):
        agent = payload.get("userAgent") if isinstance(payload, dict) else None
        os_text = " ".join(part for part in (family, version) if part)
        live[index] = click_verdict(os_text, agent if isinstance(agent, str) else None, rules).status
    agents = latest_agents(session, (index for index, seen in texts.items() if any(map(names_no_os, seen))))
    cache: dict[tuple[str, str | None], Any] = {}
    out: dict[bytes, str | None] = {}
    for index, seen in texts.items():
        found = [cache.setdefault(key, click_verdict(*key, rules).status)
                 for key in ((text, agents.get(index) if names_no_os(text) else None) for text in seen)]
        best = strongest(*found, live.get(index))
        out[index] = best.value if best else None
    return out


def _chunks(items: Sequence[bytes], size: int = STEP) -> Iterator[Sequence[bytes]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def preview(session: Session, rules: Sequence[OsRule] | None = None) -> dict[str, Any]:
    """How many numbers the rules (default: those in force) would move, from which list to which."""
    rules = list(rules) if rules is not None else current_rules(session)
    moves: Counter[tuple[str, str]] = Counter()
    total = 0
    for chunk in _chunks(_seen_indexes(session)):
        states = list_states(session, chunk)
        for index, status in verdicts_for(session, chunk, rules).items():
            state = states.get(index)
            if state is None:
                continue
            total += 1
            after, _ = precedence(state, Verdict("+0", status, Authority.auto, REASON, SOURCE, reevaluate=True))
            if after.status != state.status:
                moves[(state.status or "none", after.status or "none")] += 1
    return {"numbers": total, "moving": sum(moves.values()),
            "moves": [{"from": a, "to": b, "count": n} for (a, b), n in sorted(moves.items())]}


def running_job(session: Session) -> Job | None:
    return session.scalar(select(Job).where(Job.kind == KIND, Job.status.in_(ACTIVE)).limit(1))


def start(session: Session, actor: Principal, *, note: str = "") -> Job:
    """Re-evaluate every number the tracker saw under the rules in force (a background job)."""
    running = running_job(session)
    if running is not None:
        raise Conflict(f"a re-evaluation is already running (job {running.id}); wait for it to end")
    total = len(_seen_indexes(session))
    job = create_job(session, actor, KIND, {"actor": actor.username, "note": note[:200]},
                     title="Re-evaluate numbers under the OS rules", total=total)
    audit(session, actor, "voluum.reclassify.start", "job", job.id, {"numbers": total})
    return job


def run_job(ctx: JobContext) -> dict[str, Any]:
    """The `voluum.reclassify` job: one committed step per 2,000 numbers; resumes after the last one done."""
    actor = job_actor(ctx)
    with session_scope() as session:
        indexes = _seen_indexes(session)
        rules = current_rules(session)
    done = int(ctx.checkpoint.get("done", 0))
    totals: dict[str, Any] = dict(ctx.checkpoint.get("totals", {"changed": 0, "events": 0}))
    for chunk in _chunks(indexes[done:]):
        with session_scope() as session:
            plain = reveal(session, chunk)
            verdicts = [Verdict(plain[index], status, Authority.auto, REASON, SOURCE,
                                {"rules": "re-evaluated"}, reevaluate=True)
                        for index, status in verdicts_for(session, chunk, rules).items() if index in plain]
            result = apply_verdicts(session, actor, verdicts)
            done += len(chunk)
            totals = {"changed": totals["changed"] + result.changed, "events": totals["events"] + result.events}
            for key, count in result.per_status.items():
                totals[f"to_{key}"] = int(totals.get(f"to_{key}", 0)) + count
            ctx.step(session, checkpoint={"done": done, "totals": totals}, done=done, total=len(indexes),
                     counters=totals, message=f"{done} of {len(indexes)} numbers re-evaluated")
    return {"numbers": len(indexes), **totals}
