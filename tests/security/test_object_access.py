"""Object-level access: object x owner x role, through the HTTP API (phoneops.core.access holds the rules).

Two parts:

- `OBJECT_ROUTES` classifies every route that reaches one stored object by its id (a path parameter) by the
  rule that governs it, `(Obj, Act)`; routes with a path parameter that is not an object id are listed in
  `NOT_OBJECTS` with the reason. A new route with a path parameter and no entry fails
  `test_every_object_route_is_classified` (the table cannot silently fall behind).
- `CASES`: for each kind of object and action, an object owned by operator `op-a` is created through the API
  and acted on by its owner, another operator, a viewer and an admin; each answer is checked, and where
  numbers are shown, whether they come masked.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from phoneops.core.access import RULES, Act, Obj
from phoneops.core.routes import iter_routes

F, RUN, JOB, ROWS, SAMPLE, TOKEN = Obj.file, Obj.run, Obj.job, Obj.job_rows, Obj.sample, Obj.token
READ, DOWNLOAD, CANCEL, ARCHIVE, DELETE = Act.read, Act.download, Act.cancel, Act.archive, Act.delete

# (method, path) -> the object rule(s) the route applies. Route-level roles come first (tests/core/test_routes.py).
OBJECT_ROUTES: dict[tuple[str, str], tuple[tuple[Obj, Act], ...]] = {
    ("GET", "/api/files/{file_id}/download"): ((F, DOWNLOAD),),
    ("GET", "/files/{file_id}/download"): ((F, DOWNLOAD),),
    ("GET", "/api/jobs/{job_id}"): ((JOB, READ),),
    ("GET", "/jobs/{job_id}"): ((JOB, READ),),
    ("POST", "/api/jobs/{job_id}/cancel"): ((JOB, CANCEL),),
    ("DELETE", "/api/tokens/{token_id}"): ((TOKEN, DELETE),),
    ("POST", "/account/tokens/{token_id}/revoke"): ((TOKEN, DELETE),),
    ("GET", "/api/voluum/runs/{job_id}/download"): ((RUN, DOWNLOAD),),
    ("POST", "/api/voluum/runs/{job_id}/archive"): ((RUN, ARCHIVE),),
    ("POST", "/api/voluum/runs/{job_id}/restore"): ((RUN, ARCHIVE),),
    ("DELETE", "/api/voluum/runs/{job_id}"): ((RUN, DELETE),),
    ("POST", "/voluum/runs/{job_id}/archive"): ((RUN, ARCHIVE),),
    ("POST", "/voluum/runs/{job_id}/restore"): ((RUN, ARCHIVE),),
    ("POST", "/voluum/runs/{job_id}/delete"): ((RUN, DELETE),),
    ("GET", "/api/cleaning/files/{file_id}"): ((SAMPLE, READ),),
    ("GET", "/cleaning/files/{file_id}"): ((SAMPLE, READ),),
    ("GET", "/api/cleaning/runs/{run_id}/download/{which}"): ((F, DOWNLOAD),),  # operators: the list's own rows
    ("GET", "/cleaning/runs/{run_id}/download/{which}"): ((F, DOWNLOAD),),
    ("DELETE", "/api/cleaning/files/{file_id}"): ((F, DELETE),),
    ("POST", "/cleaning/files/{file_id}/delete"): ((F, DELETE),),
    ("GET", "/api/ongage/csv-jobs/{job_id}/rows"): ((ROWS, READ),),
    ("GET", "/ongage/csv-jobs/{job_id}"): ((JOB, READ), (ROWS, READ)),
    ("GET", "/api/ongage/csv-jobs/{job_id}/rows.csv"): ((ROWS, DOWNLOAD),),
    ("POST", "/api/ongage/csv-jobs/{job_id}/cancel"): ((JOB, CANCEL),),
    ("POST", "/ongage/csv-jobs/{job_id}/{action}"): ((JOB, CANCEL),),  # action=cancel; start/pause/resume: operators
    ("POST", "/api/hlr/lookups/{lookup_id}/cancel"): ((JOB, CANCEL),),
    ("POST", "/hlr/lookups/{lookup_id}/cancel"): ((JOB, CANCEL),),
    ("GET", "/api/hlr/lookups/{lookup_id}/clean.csv"): ((F, DOWNLOAD),),  # operators (route level)
    ("GET", "/api/hlr/lookups/{lookup_id}/raw.csv"): ((F, DOWNLOAD),),
    ("GET", "/hlr/lookups/{lookup_id}/download/{which}"): ((F, DOWNLOAD),),
    ("GET", "/api/numbers/exports/{job_id}/download"): ((F, DOWNLOAD),),  # masked; plaintext exports admins
    ("GET", "/api/numbers/imports/{import_id}/result"): ((JOB, READ),),
}

# Routes whose path parameters are not ids of an object that belongs to someone (shared reference data,
# settings, a day, an action name), or objects every role of the route may act on as a team.
NOT_OBJECTS: dict[tuple[str, str], str] = {}
_SHARED_PATTERNS = (
    (r"/(api/)?(broadcasts|voluum/traffic)/days/\{day\}", "a day of shared totals"),
    (r"/api/broadcasts/days/\{day\}/history\.\{fmt\}", "a day of shared totals (no numbers)"),
    (r"/(api/)?numbers/lists/\{status\}(/export\.csv)?", "a list name; numbers masked below admin (numbers domain)"),
    (r"/api/numbers/\{number\}", "a number the caller already knows; its story is shared reference data"),
    (r"/numbers/n/\{key\}", "a number's page (blind index); the number masked below admin by the numbers domain"),
    (r"/(api/)?hlr/risky(-operators)?/\{operator_id\}(/delete)?", "shared reference data (admins edit)"),
    (r"/(api/)?imei/services/\{package_id\}", "the provider's catalogue"),
    (r"/(api|admin)/users/\{username\}(/(disable|enable|toggle|role|password))?", "user administration (admins)"),
    (r"/api/privacy/erasures/\{erasure_id\}", "privacy ledger (admins)"),
    (r"/(api/)?numbers/imports/\{import_id\}(/(apply|discard|undo|\{action\}))?",
     "a list import: samples masked below admin; apply, discard and undo only by its operator or an admin "
     "(numbers.imports, tested in tests/numbers/test_imports_undo.py)"),
    (r"/numbers/optouts/feeds/\{feed\}", "a provider feed name (MessageWhiz, Ongage), not a stored object"),
    (r"/(api|admin)/webhooks/(\{endpoint_id\}(/(disable|enable|test|toggle|remove))?|deliveries/\{delivery_id\}(/resend)?)",
     "webhook endpoints and deliveries (admins only; no numbers)"),
    (r"/(api/)?imei/(batches|orders)/\{(batch_id|row_id)\}(/(resume|refresh|attach-order|write-off))?",
     "IMEI results hold no phone numbers; a team's shared work"),
    (r"/review/(hlr|imei)/\{(lookup_id|row_id)\}/(release|write-off|attach)",
     "paid work needing review: a team's shared decision (operators, route level)"),
    (r"/(api/)?hlr/lookups/\{lookup_id\}(/(results|confirm|resume|release-review|write-off-review))?",
     "a team's shared lookup; numbers in results masked below admin by the HLR domain"),
    (r"/api/cleaning/files/\{file_id\}/(runs|encrypt|decrypt|archive|restore)",
     "a team's shared file; acting on it is the operator role's (route level)"),
    (r"/cleaning/files/\{file_id\}/(run|archive|restore)", "a team's shared file (route level)"),
    (r"/api/cleaning/runs/\{run_id\}(/stats)?", "counts only"),
    (r"/(api/)?ongage/csv-jobs/\{job_id\}(/(start|pause|resume|pace))?",
     "a team's shared job; starting and pacing is the operator role's (route level)"),
    (r"/broadcasts/days/\{day\}/costs", "a day of shared totals"),
    (r"/(api/)?broadcasts/rates/\{day\}(/delete)?", "a day's exchange rate: shared reference data (admins edit)"),
)


def _classify_rest(path: str) -> str | None:
    for pattern, why in _SHARED_PATTERNS:
        if re.fullmatch(pattern, path):
            return why
    return None


def test_every_object_route_is_classified(app: Any) -> None:
    missing = []
    for route in iter_routes(app):
        if "{" not in route.path or route.path.startswith("/static"):
            continue
        for method in route.methods - {"HEAD", "OPTIONS"}:
            key = (method, route.path)
            if key in OBJECT_ROUTES or key in NOT_OBJECTS or _classify_rest(route.path):
                continue
            missing.append(key)
    assert not missing, ("routes reaching an object by id without an object-level rule; add them to OBJECT_ROUTES "
                         f"(or NOT_OBJECTS with the reason): {sorted(missing)}")
    for rules in OBJECT_ROUTES.values():
        assert all(rule in RULES for rule in rules)


# --- object x owner x role ---------------------------------------------------------------------------

CALLERS = ("owner", "other", "viewer", "admin")


@dataclass
class World:
    client: Any
    headers: dict[str, dict[str, str]]


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[World], str]  # creates the object as op-a; returns the URL to call
    method: str
    expect: dict[str, int]  # caller -> status
    masked_for: tuple[str, ...] = ()  # callers who get the numbers masked
    plaintext: str = ""  # a value that must (not) appear in full


NUMBER = "07400123456"
E164 = "+447400123456"


def _upload(world: World, kind_data: bytes = b"phone\n07400123456\n") -> str:
    up = world.client.post("/api/files", headers=world.headers["owner"], files={"file": ("mine.csv", kind_data)})
    assert up.status_code == 201, up.text
    return f"/api/files/{up.json()['id']}/download"


def _export_file(world: World) -> str:
    from phoneops.core.db import session_scope
    from phoneops.core.models import User
    from phoneops.core.security import principal_for
    from phoneops.core.storage import get_storage

    with session_scope() as session:
        owner = session.query(User).filter_by(username="op-a").one()
        row = get_storage().save_bytes(session, principal_for(owner, "token"), b"number\n+447400123456\n",
                                       kind="export", original_name="export.csv")
        file_id = row.id
    return f"/api/files/{file_id}/download"


def _run(world: World, *, mode: str, plaintext: bool) -> str:
    """A finished smart cleaning started by op-a whose result file holds numbers in full or masked."""
    from phoneops.core.db import session_scope
    from phoneops.core.jobs import create_job
    from phoneops.core.models import Job, User
    from phoneops.core.security import principal_for
    from phoneops.core.storage import get_storage
    from phoneops.voluum.smart import SMART_KIND

    body = E164 if plaintext else "+447*******56"
    with session_scope() as session:
        actor = principal_for(session.query(User).filter_by(username="op-a").one(), "token")
        stored = get_storage().save_bytes(session, actor, f"number\n{body}\n".encode(), kind="voluum-result",
                                          original_name="result.csv")
        job = create_job(session, actor, SMART_KIND, {"mode": mode, "plaintext": plaintext})
        job_id = job.id
        session.flush()
        row = session.get(Job, job_id)
        assert row is not None
        row.status, row.result = "succeeded", {"file_id": stored.id}
    return f"/api/voluum/runs/{job_id}/download"


def _sample_job(world: World) -> str:
    started = world.client.post("/api/jobs/sample", headers=world.headers["owner"], json={"steps": 3})
    assert started.status_code == 202, started.text
    return f"/api/jobs/{started.json()['id']}/cancel"


def _erasure(world: World) -> str:
    asked = world.client.post("/api/privacy/erasures", headers=world.headers["admin"], json={"number": E164})
    assert asked.status_code == 202, asked.text
    return f"/api/jobs/{asked.json()['job_id']}/cancel"


def _cleaning_file(world: World) -> str:
    up = world.client.post("/api/cleaning/files", headers=world.headers["owner"],
                           files={"file": ("people.csv", b"name,phone,email\nann,07400 123456,ann@example.com\n")})
    assert up.status_code == 201, up.text
    return f"/api/cleaning/files/{up.json()['id']}"


def _ongage_rows(world: World) -> str:
    data = (b"List_ID,Email,Country,Source,Mobile,conversion_type,Original_source,HLR_Status,Uuid\n"
            b"L1,ann@example.com,GB,GB_REG,447400123456,REG,sms,LIVE,uuid-1\n")
    up = world.client.post("/api/ongage/csv-jobs", headers=world.headers["owner"],
                           files={"file": ("contacts.csv", data, "text/csv")})
    assert up.status_code in (200, 201), up.text
    return f"/api/ongage/csv-jobs/{up.json()['id']}/rows"


def _token(world: World) -> str:
    made = world.client.post("/api/tokens", headers=world.headers["owner"], json={"name": "spare"})
    assert made.status_code == 201, made.text
    return f"/api/tokens/{made.json()['id']}"


CASES = [
    Case("upload download", _upload, "GET", {"owner": 200, "other": 200, "viewer": 403, "admin": 200}),
    Case("export download", _export_file, "GET", {"owner": 200, "other": 403, "viewer": 403, "admin": 200}),
    Case("run in full", lambda w: _run(w, mode="file", plaintext=True), "GET",
         {"owner": 200, "other": 403, "viewer": 403, "admin": 200}),
    Case("run masked", lambda w: _run(w, mode="country", plaintext=False), "GET",
         {"owner": 200, "other": 200, "viewer": 200, "admin": 200}),
    Case("run archive", lambda w: _run(w, mode="file", plaintext=True).replace("/download", "/archive"), "POST",
         {"owner": 200, "other": 403, "viewer": 403, "admin": 200}),
    Case("run delete", lambda w: _run(w, mode="country", plaintext=False).removesuffix("/download"), "DELETE",
         {"owner": 200, "other": 403, "viewer": 403, "admin": 200}),
    Case("job cancel", _sample_job, "POST", {"owner": 200, "other": 403, "viewer": 403, "admin": 200}),
    Case("erasure cancel", _erasure, "POST", {"owner": 403, "other": 403, "viewer": 403, "admin": 409}),
    Case("cleaning sample", _cleaning_file, "GET", {"owner": 200, "other": 200, "viewer": 200, "admin": 200},
         masked_for=("viewer",), plaintext="07400 123456"),
    Case("ongage rows", _ongage_rows, "GET", {"owner": 200, "other": 200, "viewer": 200, "admin": 200},
         masked_for=("viewer",), plaintext="ann@example.com"),
    Case("token revoke", _token, "DELETE", {"owner": 200, "other": 404, "viewer": 404, "admin": 200}),
]


@pytest.fixture
def world(client: Any, users: Any) -> World:
    headers = {
        "owner": {"Authorization": f"Bearer {users.create('operator', 'op-a')}"},
        "other": {"Authorization": f"Bearer {users.create('operator', 'op-b')}"},
        "viewer": users.headers("viewer"),
        "admin": users.headers("admin"),
    }
    return World(client, headers)


def test_object_owner_role_table(world: World) -> None:
    """Every case x caller in one test (users and their password hashes are made once)."""
    wrong = []
    for case in CASES:
        for caller in CALLERS:
            url = case.make(world)  # a fresh object for each caller (a cancel or revoke changes it)
            answer = world.client.request(case.method, url, headers=world.headers[caller])
            where = f"{case.name} as {caller}"
            if answer.status_code != case.expect[caller]:
                wrong.append(f"{where}: {answer.status_code} (expected {case.expect[caller]}) {answer.text[:200]}")
                continue
            if case.plaintext and answer.status_code == 200:
                shown = case.plaintext in answer.text
                if caller in case.masked_for and shown:
                    wrong.append(f"{where} sees {case.plaintext!r} in full")
                if caller not in case.masked_for and not shown:
                    wrong.append(f"{where} does not see {case.plaintext!r}: {answer.text[:200]}")
    assert not wrong, "\n".join(wrong)


def test_an_erasure_is_never_cancelled_half_way(world: World) -> None:
    url = _erasure(world)
    refused = world.client.post(url, headers=world.headers["admin"])
    assert refused.status_code == 409 and "cannot be cancelled" in refused.json()["error"]["message"]
    job = world.client.get(url.removesuffix("/cancel"), headers=world.headers["admin"]).json()
    assert job["status"] in ("queued", "running")


def test_samples_are_sealed_at_rest(world: World) -> None:
    from phoneops.cleaning.models import CleaningFile
    from phoneops.core.db import session_scope

    url = _cleaning_file(world)
    file_id = int(url.rsplit("/", 1)[1])
    with session_scope() as session:
        record = session.get(CleaningFile, file_id)
        assert record is not None and record.sample == []
        assert record.sample_sealed and "07400" not in record.sample_sealed and "ann@" not in record.sample_sealed
    detail = world.client.get(url, headers=world.headers["owner"]).json()
    assert detail["sample"] == [["ann", "07400 123456", "ann@example.com"]]
    masked = world.client.get(url, headers=world.headers["viewer"]).json()["sample"][0]
    assert masked[0] == "ann" and masked[1] != "07400 123456" and masked[1].endswith("56")
    assert masked[2] == "a***@example.com"
    page = world.client.get(f"/cleaning/files/{file_id}", headers={**world.headers["viewer"], "Accept": "text/html"})
    assert page.status_code == 200 and "07400 123456" not in page.text and "ann@example.com" not in page.text
