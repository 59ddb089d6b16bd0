"""Object-level access: one table says who may read, download, cancel or delete each kind of object.

Route-level roles (`phoneops.core.deps`) say who may call a route at all; this module decides, for the
object the route reaches, by role *and* owner:

- `RULES[(kind, action)]` gives the lowest role an **owner** needs, the lowest role **anyone else** needs,
  and the lowest role that sees **numbers in full** (everyone below sees them masked, owners included only
  when the rule says so);
- `check(...)` raises `Forbidden` when the caller may not; `reveals(...)` says whether numbers are shown in
  full; `mask_number` / `mask_email` are how the masked copy looks everywhere.

Stored files add one more dimension, their kind (`FILE_ROLES`): raw uploads hold numbers (operators and up),
exports and smart-cleaning results may hold numbers in full (admins), broadcast history holds none (viewers).

Owners are given as a user id (files, jobs, IMEI batches) or a user name (cleaning files, HLR lookups,
Ongage CSV jobs): `owns` accepts either.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.orm import Session

from phoneops.core.errors import Forbidden, NotFound
from phoneops.core.models import ApiToken
from phoneops.core.security import Principal, Role


class Obj(StrEnum):
    file = "file"  # a stored file (core.models.StoredFile)
    run = "run"  # a Voluum smart cleaning or REG search and its result file
    job = "job"  # any background job: core jobs, HLR lookups, Ongage CSV jobs, IMEI batches
    job_rows = "job_rows"  # the per-row detail of a job (Ongage CSV rows: numbers and e-mails)
    sample = "sample"  # the first rows of an uploaded file, shown on its page
    token = "token"  # noqa: S105 - an API token (the kind of object, not a secret)


class Act(StrEnum):
    read = "read"
    download = "download"
    cancel = "cancel"
    archive = "archive"  # hide from the usual list, reversible (restore)
    delete = "delete"


@dataclass(frozen=True, slots=True)
class Rule:
    owner: Role | None  # an owner with at least this role may (None: owning gives no right)
    others: Role | None  # anyone else with at least this role may (None: nobody else)
    plaintext: Role = Role.admin  # non-owners see numbers in full from this role up (else masked/refused)
    owner_plaintext: bool = True  # the owner sees their own numbers in full
    why: str = ""


V, OP, A = Role.viewer, Role.operator, Role.admin

RULES: dict[tuple[Obj, Act], Rule] = {
    (Obj.file, Act.read): Rule(V, V, why="file names and sizes hold no numbers"),
    (Obj.file, Act.download): Rule(V, OP, why="per kind: see FILE_ROLES; owners always"),
    (Obj.file, Act.delete): Rule(OP, A),
    (Obj.run, Act.read): Rule(V, V),
    (Obj.run, Act.download): Rule(V, V, plaintext=A,
                                  why="masked results for anyone; a result holding numbers in full: owner or admin"),
    (Obj.run, Act.cancel): Rule(OP, A),
    (Obj.run, Act.archive): Rule(OP, A, why="only who started it, or an admin (restoring too)"),
    (Obj.run, Act.delete): Rule(OP, A, why="only who started it, or an admin: its input and result files go"),
    (Obj.job, Act.read): Rule(V, V),
    (Obj.job, Act.cancel): Rule(OP, A, why="only who started it, or an admin"),
    (Obj.job_rows, Act.read): Rule(V, V, plaintext=OP, why="numbers and e-mails masked for viewers"),
    (Obj.job_rows, Act.download): Rule(OP, OP, plaintext=OP),
    (Obj.sample, Act.read): Rule(V, V, plaintext=OP, why="viewers see the first rows masked"),
    (Obj.token, Act.read): Rule(V, A),
    (Obj.token, Act.delete): Rule(V, A),
}

# Who may fetch a stored file through the generic routes (/api/files/{id}/download, /files/{id}/download),
# by its kind; its owner always may. Kinds not listed get DEFAULT_FILE_ROLE.
# Domain routes (numbers exports, Voluum runs, HLR and cleaning results, broadcast history) apply their
# own masking-aware rules: they are how a viewer gets a masked copy.
DEFAULT_FILE_ROLE = Role.operator
FILE_ROLES: dict[str, Role] = {
    "export": Role.admin,
    "voluum-result": Role.admin,
    "broadcast_history": Role.viewer,  # per-campaign totals and message texts, no phone numbers
}


def owns(principal: Principal, owner: int | str | None) -> bool:
    """Whether `owner` (a user id or a user name) is the caller; system-owned objects have no owner."""
    if owner is None or principal.user_id is None:
        return False
    if isinstance(owner, int):
        return owner == principal.user_id
    return owner == principal.username


def rule(obj: Obj, act: Act) -> Rule:
    return RULES[(obj, act)]


def allowed(principal: Principal, obj: Obj, act: Act, owner: int | str | None, *, plaintext: bool = False,
            file_kind: str | None = None) -> bool:
    """May `principal` do `act` on an object of kind `obj` owned by `owner`?

    `plaintext`: the object holds numbers in full (non-owners then need the rule's plaintext role);
    `file_kind`: for stored files, the kind that sets who else may download."""
    r = rule(obj, act)
    if owns(principal, owner) and r.owner is not None and principal.can(r.owner):
        return True
    others = r.others
    if obj is Obj.file and act is Act.download and file_kind is not None:
        others = FILE_ROLES.get(file_kind, DEFAULT_FILE_ROLE)
    if others is None or not principal.can(others):
        return False
    return not plaintext or principal.can(r.plaintext)


def check(principal: Principal, obj: Obj, act: Act, owner: int | str | None, *, plaintext: bool = False,
          file_kind: str | None = None, what: str = "") -> None:
    """Raise Forbidden (with the rule in words) unless `allowed`."""
    if allowed(principal, obj, act, owner, plaintext=plaintext, file_kind=file_kind):
        return
    what = what or obj.value.replace("_", " ")
    if obj is Obj.file and act is Act.download:
        needed = FILE_ROLES.get(file_kind or "", DEFAULT_FILE_ROLE)
        raise Forbidden(f"this file holds phone numbers: only its owner or the {needed.value} role may download it")
    r = rule(obj, act)
    if plaintext and r.others is not None and principal.can(r.others):
        raise Forbidden(f"this {what} holds numbers in full: only its owner or the {r.plaintext.value} role "
                        f"may {act.value} it")
    whom = f"the {r.others.value} role" if r.others is not None else "nobody else"
    raise Forbidden(f"only the user who started this {what} or {whom} may {act.value} it"
                    if obj in (Obj.job, Obj.run) else f"only its owner or {whom} may {act.value} this {what}")


def reveals(principal: Principal, obj: Obj, owner: int | str | None = None) -> bool:
    """Whether numbers (and e-mails) in this object are shown to `principal` in full (else masked)."""
    r = rule(obj, Act.read)
    if r.owner_plaintext and owns(principal, owner):
        return True
    return principal.can(r.plaintext)


def token_for(session: Session, principal: Principal, token_id: int, act: Act = Act.delete) -> ApiToken:
    """An API token `principal` may `act` on; someone else's token is a 404, as if it did not exist."""
    token = session.get(ApiToken, token_id)
    if token is None or not allowed(principal, Obj.token, act, token.user_id):
        raise NotFound(f"no token {token_id}")
    return token


def mask_number(value: str) -> str:
    """What someone who may not see a number gets: its country code and last two digits."""
    text = str(value)
    if len(text) <= 6:
        return "*" * len(text)
    return text[:4] + "*" * (len(text) - 6) + text[-2:]


def mask_email(value: str) -> str:
    """An e-mail with the local part hidden but its first letter: j***@example.com."""
    local, at, domain = str(value).partition("@")
    if not at:
        return mask_number(value)
    return (local[:1] + "***" if local else "***") + "@" + domain


def mask_cell(value: str) -> str:
    """A cell of an uploaded file shown to someone who may not see numbers: every digit run of 5+ is masked,
    e-mails lose their local part; other text (names, dates, countries) stays."""
    import re

    text = str(value)
    if "@" in text and re.fullmatch(r"[^@\s]+@[^@\s]+", text.strip()):
        return mask_email(text.strip())
    return re.sub(r"\+?\d[\d\s().-]{4,}\d", lambda m: mask_number(m.group(0)), text)
