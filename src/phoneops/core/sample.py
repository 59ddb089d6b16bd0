"""The sample job `sample.count`: counts to N, one committed step at a time.

It exists to prove the job engine: each step writes its effect and its checkpoint in one
transaction, so a worker killed anywhere resumes where it stopped and the effects happen once.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from phoneops.core.db import session_scope
from phoneops.core.errors import ValidationFailed
from phoneops.core.jobs import JobContext, create_job, job_handler
from phoneops.core.models import Job, SampleTick
from phoneops.core.security import Principal

KIND = "sample.count"


def start_sample(session: Session, actor: Principal, steps: int, delay: float = 0.05) -> Job:
    if not 1 <= steps <= 100_000:
        raise ValidationFailed("steps must be between 1 and 100000")
    if not 0 <= delay <= 10:
        raise ValidationFailed("delay must be between 0 and 10 seconds")
    return create_job(session, actor, KIND, {"steps": steps, "delay": delay}, total=steps)


@job_handler(KIND, title="Sample counting job")
def _count(ctx: JobContext) -> dict[str, Any]:
    steps = int(ctx.params["steps"])
    delay = float(ctx.params.get("delay", 0.05))
    start = int(ctx.checkpoint.get("next", 0))
    for step in range(start, steps):
        time.sleep(delay)
        with session_scope() as session:
            session.add(SampleTick(job_id=ctx.job_id, step=step, worker=ctx.worker))
            ctx.step(session, checkpoint={"next": step + 1}, done=step + 1, total=steps,
                     counters={"steps": step + 1, "resumed_at": start})
    return {"steps": steps}
