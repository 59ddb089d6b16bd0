"""Voluum bound to our settings: the shared client, what a tracker value holds, windows of time, errors.

The domain's logic is split by meaning: `traffic` (report sync and OS classification), `conversions`
(REG/FTD sync, the converted-numbers filter), `lookups` (offers and campaigns), `costs` (cost pushes),
`live` (SNS -> SQS live events), `smart` (smart cleaning and REG search) and `find` (everything known about
a number). Every module gets its Voluum client and its phone reader from here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from phoneops.core.dates import parse_day as parse_day  # a day, as the domain's callers read it
from phoneops.core.errors import ProviderNotConfigured, ValidationFailed
from phoneops.core.http import (
    ClientCache,
    ProviderError,
    ProviderRateLimited,
    ProviderTimeout,
    ProviderUnavailable,
)
from phoneops.core.jobs import JobContext, RetryLater
from phoneops.core.logging import register_secret
from phoneops.core.security import Principal, Role
from phoneops.numbers.crypto import InvalidToken, looks_like_token
from phoneops.numbers.normalize import normalize
from phoneops.numbers.vault import get_vault
from phoneops.settings import Settings, get_settings
from phoneops.voluum.client import VoluumClient

PROVIDER_NAME = "Voluum"
CREDENTIAL_VARIABLES = ["VOLUUM_ACCESS_ID", "VOLUUM_ACCESS_KEY"]
MAX_RANGE_DAYS = 366


# --- the client ---------------------------------------------------------------------------------------


def is_configured(settings: Settings | None = None) -> bool:
    return (settings or get_settings()).providers().get("voluum", False)


def credentials(settings: Settings | None = None) -> tuple[str, str, str]:
    """(base URL, access id, access key), or `ProviderNotConfigured` (503) naming the missing variables."""
    settings = settings or get_settings()
    key = settings.voluum_access_key.get_secret_value() if settings.voluum_access_key else ""
    if not settings.voluum_access_id or not key:
        raise ProviderNotConfigured(PROVIDER_NAME, list(CREDENTIAL_VARIABLES))
    register_secret(key)
    return settings.voluum_base_url, settings.voluum_access_id, key


_clients: ClientCache[VoluumClient] = ClientCache()


def get_client(settings: Settings | None = None) -> VoluumClient:
    """One client per process and credentials (its session token is shared by every caller)."""
    creds = credentials(settings)
    return _clients.get(creds, lambda: VoluumClient(*creds))


reset_clients = _clients.reset


def is_transient(exc: ProviderError) -> bool:
    return isinstance(exc, ProviderUnavailable | ProviderRateLimited | ProviderTimeout)


def park_or_fail(ctx: JobContext, exc: ProviderError) -> RetryLater:
    """For a job that met a provider error: a `RetryLater` while Voluum is down (the job waits, with a
    growing delay, as long as the outage lasts), else the error itself to fail the job with Voluum's message."""
    if not is_transient(exc):
        raise exc
    return RetryLater.outage(ctx, "Voluum", exc.message, exc.retry_after)


def job_actor(ctx: JobContext) -> Principal:
    """Who a background job acts for (its creator's name, as written in the job's params)."""
    return Principal(ctx.created_by, str(ctx.params.get("actor") or "system"), Role.operator, via="job")


# --- what a tracker value holds ------------------------------------------------------------------------

PHONE, TOKEN, PLACEHOLDER, EMPTY, INVALID, BAD_TOKEN = "phone", "token", "placeholder", "empty", "invalid", "bad_token"
ERASED = "erased"  # a number erased on request (privacy ledger): stored without it, never brought back
NUMBER_KINDS = (PHONE, TOKEN, PLACEHOLDER, EMPTY, INVALID, BAD_TOKEN, ERASED)
_PLACEHOLDER = re.compile(r"\{\{.*\}\}|^\{.*\}$|^\[.*\]$|^<.*>$")


@dataclass(frozen=True, slots=True)
class PhoneValue:
    """What a tracker's phone value holds: a number (`e164`, `index`) or why not (`kind`)."""

    e164: str | None
    index: bytes | None
    country: str | None
    kind: str

    @property
    def ok(self) -> bool:
        return self.e164 is not None


class PhoneReader:
    """Reads custom-variable-1 values: E.164 numbers (bare digits read as the original's int-converted form),
    link tokens decrypted (new and original format), placeholders such as ``{{phoneNumber}}`` and empties
    recognised. Memoised: trackers repeat the same value on many rows. `prime` reads many values at once
    (one vectorised normalisation and one blind-index pass), which is what large reports need."""

    def __init__(self, region: str, *, tracker: bool = False) -> None:
        self.region = region
        # A tracker's digits carry their country code (`customVariable1` holds int-converted E.164): read them
        # international-first, a campaign's country settling a value valid both ways, never `region` alone.
        self.tracker = tracker
        self._vault = get_vault()
        self._seen: dict[str, PhoneValue] = {}
        self._erased: frozenset[bytes] = frozenset()

    def exclude_erased(self, session: Session) -> None:
        """Read numbers erased on request (the privacy ledger) as `erased`: a re-sync must not bring them back."""
        from phoneops.privacy.erase import erased_blind_indexes

        erased = erased_blind_indexes(session)
        if erased != self._erased:
            self._erased = erased
            self._seen.clear()

    def read(self, value: Any, country: str | None = None) -> PhoneValue:
        """One value; `country` (ISO code, e.g. a conversion's campaign country) settles tracker digits that
        are a valid number both as written internationally and as a national number of that country."""
        text = _text_of(value)
        country = _region(country) if self.tracker else None
        key = f"{text}\x00{country}" if country else text
        found = self._seen.get(key)
        if found is None:
            early = self._candidate(text)
            if isinstance(early, PhoneValue):
                found = early
            elif self.tracker and early[0].isascii() and early[0].isdigit():
                found = self._tracker_digits(early[0], early[1], country)
            else:
                normalized = normalize(early[0], self.region)
                found = self._finish(normalized.e164, normalized.country, early[1])
            self._remember(key, found)
        return found

    def _tracker_digits(self, digits: str, kind: str, country: str | None) -> PhoneValue:
        international = normalize("+" + digits.lstrip("0") if digits.startswith("00") else "+" + digits,
                                  self.region)
        national = normalize(digits, country) if country else None
        if (international.e164 and national is not None and national.e164 and national.e164 != international.e164
                and _dialled_nationally(digits, national.e164)):
            # Valid both ways: the campaign's country settles it, but only when these digits are how the
            # number is dialled in that country (German national numbers start with the trunk 0, so
            # 447400123456 from a German campaign stays the UK number it is written as).
            pick = international if international.country == country else national
        elif international.e164:
            pick = international
        elif national is not None and national.e164:
            pick = national
        else:
            return PhoneValue(None, None, None, INVALID)
        return self._finish(pick.e164, pick.country, kind)

    def prime(self, values: Iterable[Any]) -> None:
        """Read every distinct value not seen yet in one go (later `read` calls hit the memo)."""
        pending: dict[str, tuple[str, str]] = {}
        for value in values:
            text = _text_of(value)
            if text in self._seen or text in pending:
                continue
            early = self._candidate(text)
            if isinstance(early, PhoneValue):
                self._remember(text, early)
            elif self.tracker and early[0].isascii() and early[0].isdigit():
                self._remember(text, self._tracker_digits(early[0], early[1], None))
            else:
                pending[text] = early
        if not pending:
            return
        from phoneops.numbers.normalize import normalize_column

        frame = normalize_column([candidate for candidate, _ in pending.values()], self.region)
        e164s: list[str | None] = frame["e164"].to_list()
        countries: list[str | None] = frame["country"].to_list()
        valid = sorted({e for e in e164s if e})
        indexes = dict(zip(valid, self._vault.index_many(valid), strict=True))
        for (text, (_, kind)), e164, country in zip(pending.items(), e164s, countries, strict=True):
            self._remember(text, self._finish(e164, country, kind, indexes.get(e164 or "")))

    def _remember(self, text: str, value: PhoneValue) -> None:
        if len(self._seen) > 1_000_000:
            self._seen.clear()
        self._seen[text] = value

    def _candidate(self, text: str) -> PhoneValue | tuple[str, str]:
        """What needs no normalising (empty, placeholder, unreadable token), else (text to normalise, kind)."""
        if not text or text.lower() in ("<na>", "null", "none", "nan"):
            return PhoneValue(None, None, None, EMPTY)
        if _PLACEHOLDER.search(text):
            return PhoneValue(None, None, None, PLACEHOLDER)
        if looks_like_token(text):
            try:
                return self._vault.cipher.decrypt(text), TOKEN
            except InvalidToken:
                return PhoneValue(None, None, None, BAD_TOKEN)
        return text, PHONE

    def _finish(self, e164: str | None, country: str | None, kind: str, index: bytes | None = None) -> PhoneValue:
        if e164 is None:
            return PhoneValue(None, None, None, INVALID)
        index = index or self._vault.index(e164)
        if index in self._erased:
            return PhoneValue(None, None, None, ERASED)
        return PhoneValue(e164, index, country, kind)


def _text_of(value: Any) -> str:
    return "" if value is None else str(value).strip()


def phone_reader(settings: Settings | None = None) -> PhoneReader:
    """The syncs' reader of tracker values (international-first; see `PhoneReader`)."""
    return PhoneReader((settings or get_settings()).default_region, tracker=True)


def _dialled_nationally(digits: str, e164: str) -> bool:
    """Whether `digits` are exactly the national dialling form of `e164` (trunk prefix included)."""
    import phonenumbers

    national = phonenumbers.format_number(phonenumbers.parse(e164, None), phonenumbers.PhoneNumberFormat.NATIONAL)
    return re.sub(r"\D", "", national) == digits


def _region(country: str | None) -> str | None:
    import phonenumbers

    code = (country or "").strip().upper()
    return code if code in phonenumbers.SUPPORTED_REGIONS else None


def region_or_default(region: str | None) -> str:
    """A default region for reading national numbers: the one given, else `DEFAULT_REGION`."""
    import phonenumbers

    value = (region or get_settings().default_region).strip().upper()
    if value not in phonenumbers.SUPPORTED_REGIONS:
        raise ValidationFailed(f"unknown region code {value!r} (use an ISO 3166 code such as GB or US)")
    return value


# --- days and hours -----------------------------------------------------------------------------------


def parse_moment(value: str | datetime | date, field: str = "time") -> datetime:
    """An aware UTC datetime from ISO text (a date alone is its midnight UTC; naive times are UTC)."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, datetime.min.time())
    else:
        try:
            moment = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValidationFailed(f"{field} must be a date or an ISO time (got {value!r})") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def day_range(start: date, end: date, *, allow_future: bool = False) -> list[date]:
    """Every day from `start` to `end` inclusive (month and year boundaries are just days)."""
    if end < start:
        raise ValidationFailed(f"the range ends ({end}) before it starts ({start})")
    today = datetime.now(UTC).date()
    if not allow_future and end > today:
        raise ValidationFailed(f"the range ends in the future ({end}); the last day possible is {today}")
    count = (end - start).days + 1
    if count > MAX_RANGE_DAYS:
        raise ValidationFailed(f"at most {MAX_RANGE_DAYS} days at once (asked for {count})")
    return [start + timedelta(days=n) for n in range(count)]


def day_start(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), tzinfo=UTC)


def floor_hour(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def ceil_hour(moment: datetime) -> datetime:
    floored = floor_hour(moment)
    return floored if floored == moment.astimezone(UTC) else floored + timedelta(hours=1)


def chunks(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def to_int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


def text(value: Any, limit: int) -> str:
    return "" if value is None else str(value)[:limit]


def insert_for(session: Session, model: type[Any]) -> Any:
    """`INSERT` in the session's dialect (PostgreSQL or SQLite), for `ON CONFLICT` clauses."""
    from sqlalchemy.dialects import postgresql, sqlite

    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)
