"""Schemathesis against the app's own OpenAPI schema, in process, as an admin: no 5xx, every error in the shape.

Every operation gets a bounded number of generated requests, valid and invalid ones (schemathesis'
positive and negative modes), on SQLite and PostgreSQL. No provider is configured here, so a feature
that needs one answers 503 `provider_not_configured`: the one 5xx the API documents as an expected
answer. Anything else >= 500, or an error body not in the shape, is a bug.

(The schemathesis pytest plugin's lazy `from_fixture` does not run on pytest 9, so the test drives the
operations' hypothesis strategies itself.)
"""

from __future__ import annotations

import uuid
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from security_kit import crash_site, error_shape_problem
from sqlalchemy import select

EXAMPLES = 5  # per operation and mode: ~130 operations x 2 modes x 2 databases


def _admin_token_revoked() -> bool:
    from phoneops.core.db import session_scope
    from phoneops.core.models import ApiToken, User

    with session_scope() as s:
        revoked = s.scalars(select(ApiToken.revoked_at).join(User, User.id == ApiToken.user_id)
                            .where(User.role == "admin")).all()
    return any(r is not None for r in revoked)


def _fuzz(operation: Any, mode: GenerationMode, users: Any, problems: list[str], seen: dict[int, int]) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case: Any) -> None:
        try:
            response = case.call(headers=users.headers("admin"))
        except Exception as exc:  # the in-process client re-raises what the app did not handle
            problems.append(f"unhandled {crash_site(exc)}: {case.method} {case.formatted_path} ({mode.value})")
            return
        status = response.status_code
        seen[status] = seen.get(status, 0) + 1
        where = f"{case.method} {case.formatted_path} ({mode.value}) -> {status}: {response.content[:300]!r}"
        if status == 401 and _admin_token_revoked():
            # the fuzzer revoked the admin's own token (DELETE /api/tokens/{id}): take a fresh one
            users.create("admin", username=f"admin-{uuid.uuid4().hex[:12]}")
            return
        if status >= 400:
            problem = error_shape_problem(response)
            if problem:
                problems.append(f"{problem}: {where}")
            elif status >= 500 and (status != 503 or response.json()["error"]["code"] != "provider_not_configured"):
                problems.append(f"server error: {where}")

    try:
        run()
    except Unsatisfiable:
        assert mode is GenerationMode.NEGATIVE, operation.label  # nothing to break in it


def test_api_fuzz(app: Any, users: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=users.headers("admin"))
    problems: list[str] = []
    seen: dict[int, int] = {}
    operations = 0
    for result in schema.get_all_operations():
        operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz(result.ok(), mode, users, problems, seen)
    assert operations > 100
    assert seen.get(200, 0) + seen.get(201, 0) > 100 and seen.get(422, 0) > 100  # it reached the endpoints
    assert not problems, "\n".join(sorted(set(problems)))
